"""The database map grows under a serving daemon.

greyholdctl load (or import-postgrey) writing into the environment a
daemon serves grows LMDB's map from another process.  The daemon must
adopt the new size without ever changing it while one of its own
transactions is open (lmdb.h forbids that; doing it from the loop thread
while the store thread was inside a batch crashed the daemon).  Here the
daemon answers a steady mix of retries (decided on the loop thread from its
read snapshot) and new triplets (decided by the store thread) while
greyholdctl loads enough records to double the map twice, several rounds
over, and must answer every request and stay up.
"""

import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import GreyholdTestCase  # noqa: E402

ROUNDS = int(os.environ.get("GREYHOLD_GROWTH_ROUNDS", "2"))
PRELOAD = 4000          # passed triplets the retries go to
GROWTH = 300000         # records greyholdctl loads (16 MiB map -> 64 MiB)
LOAD_SECONDS = 6


def sibling(name):
    return os.path.join(os.path.dirname(harness.greyhold_bin()), name)


def loadgen_bin():
    path = os.path.join(os.path.dirname(os.path.dirname(harness.greyhold_bin())),
                        "tests", "bench", "loadgen")
    if not os.access(path, os.X_OK):
        raise unittest.SkipTest("loadgen not built at %s" % path)
    return path


class MapGrowth(GreyholdTestCase):

    def setUp(self):
        self.work = self.tmpdir()
        self.small = os.path.join(self.work, "small.dump")
        self.big = os.path.join(self.work, "big.dump")
        # The retry pool (seed 1) and the growth records (seed 2) differ.
        for path, n, seed in ((self.small, PRELOAD, 1), (self.big, GROWTH, 2)):
            subprocess.run([loadgen_bin(), "--write-dump", path,
                            "--preloaded", str(n), "--seed", str(seed),
                            "--preload-old", "0", "--preload-pending", "0",
                            ],
                           check=True, stdout=subprocess.DEVNULL)

    def ctl(self, dbdir, *args, stdin=None):
        with open(stdin) as f:
            return subprocess.run([sibling("greyholdctl"), "-c", "/dev/null",
                                   "--db", dbdir] + list(args), stdin=f,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE,
                                  universal_newlines=True, timeout=300)

    def map_mib(self, dbdir):
        r = subprocess.run([sibling("greyholdctl"), "-c", "/dev/null",
                            "--db", dbdir, "--json", "stats"],
                           stdout=subprocess.PIPE, universal_newlines=True,
                           timeout=60, check=True)
        return json.loads(r.stdout)["map_size"] >> 20

    def one_round(self, n):
        dbdir = os.path.join(self.work, "db%d" % n)
        os.mkdir(dbdir, 0o700)
        r = self.ctl(dbdir, "load", stdin=self.small)
        self.assertEqual(r.returncode, 0, r.stderr)
        before = self.map_mib(dbdir)
        d = self.daemon(dbdir=dbdir)
        # Half retries of preloaded passed triplets, half new ones, on 16
        # connections, for longer than the growth load takes.
        gen = subprocess.Popen([loadgen_bin(), "-q", "-c", "16",
                                "-d", str(LOAD_SECONDS), "--preloaded", str(PRELOAD),
                                "--preload-old", "0", "--preload-pending", "0",
                                "--seed", "1", "--new-fraction", "0.5",
                                "--timeout", "20", "--attrs", "minimal",
                                d.inet_spec()],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               universal_newlines=True)
        try:
            r = self.ctl(dbdir, "load", stdin=self.big)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertTrue(d.running(), "greyhold died while the map grew")
        finally:
            out, err = gen.communicate(timeout=LOAD_SECONDS + 60)
        self.assertTrue(d.running(), "greyhold died while the map grew")
        after = self.map_mib(dbdir)
        self.assertGreaterEqual(after, 4 * before,
                                "the load did not grow the map (%d -> %d MiB)"
                                % (before, after))
        result = [line for line in out.splitlines()
                  if line.startswith("RESULT")]
        self.assertTrue(result, "loadgen printed no result: %s %s"
                        % (out, err))
        self.assertIn(" errors=0 ", result[-1] + " ", result[-1])
        self.assertIn(" mismatches=0", result[-1], result[-1])
        # Still answering, from both paths, after the growth.
        reply = d.ask(harness.make_request(client_address="198.51.100.7",
                                           sender="after@example.org"))
        self.assertIn("action=", reply)
        d.stop()
        self.assertEqual(d.returncode, 0)

    def test_daemon_survives_map_growth_by_another_process(self):
        for n in range(ROUNDS):
            with self.subTest(round=n):
                self.one_round(n)


if __name__ == "__main__":
    unittest.main(verbosity=2)
