"""greyholdctl load of dumps in any order, through the real binary on a
real LMDB database.

load sorts a dump by (database, key) before it writes, in bounded memory:
runs of --memory MiB go to a nameless temporary file in $TMPDIR (or the
database directory) and are merged.  These tests load dumps of some
30000 records with --memory 1, so that the records are sorted in several
runs merged from that file, and check what a user relies on: the same
database whatever the order of the dump, the merge rules against records
already there, the state after a bad line (everything before it loaded),
and no temporary file left behind, whether the load succeeds, fails or is
killed.  No daemon runs: load needs none.
"""

import os
import random
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import GreyholdTestCase, ctl_bin, write_file  # noqa: E402

HEADER = "greyhold-dump 1\n"
N = 30000       # triplets in the big dumps: several runs at --memory 1


def parse_dump(text):
    lines = text.split("\n")
    assert lines[0] == HEADER.strip(), lines[0]
    return [tuple(line.split("\t")) for line in lines[1:] if line]


def record_lines(n, seed):
    """n triplet lines of every kind of key, client records, hashed
    records of a privacy database and live whitelist entries: one line
    per record, keys unique, times and counts from the seed."""
    rnd = random.Random(seed)
    lines = []
    for i in range(n):
        first = 1700000000 + rnd.randrange(10 ** 6)
        last = first + rnd.randrange(10 ** 5)
        passes = rnd.randrange(4)
        kind = i % 10
        if kind == 0:       # identities as stored: n:ORG and s:ORG
            client = "n:pool%d.example" % (i % 97)
        elif kind == 1:
            client = "s:mail%d.example" % (i % 89)
        elif kind == 2:
            client = "2001:db8:%x::/64" % (i % 4096)
        else:
            client = "10.%d.%d.0/24" % (i % 251, i % 13)
        sender = "" if kind == 3 else "s%d%%09tab@x%d.org" % (i, i % 7)
        rcpt = "r%d%%C3%%A9@example.com" % (i % 1000)
        lines.append("T\t%d\t%d\t%d\t%s\t%s\t%s\n"
                     % (first, last, passes, client, sender, rcpt))
    for i in range(n // 20):
        lines.append("C\t%d\t%d\t%d\t172.%d.%d.0/24\n"
                     % (1700000000 + i, 1700000500 + i, 1 + i % 9,
                        16 + i % 16, i // 16))
    for i in range(n // 30):
        hexes = ["%032x" % rnd.getrandbits(128) for _ in range(3)]
        lines.append("TH\t%d\t%d\t%d\t%s\n" % (1700000000, 1700000100 + i,
                                              i % 3, "\t".join(hexes)))
        lines.append("CH\t%d\t%d\t%d\t%032x\n"
                     % (1700000000, 1700000200, 1 + i % 5,
                        rnd.getrandbits(128)))
    lines.append("W\tclient\t1700000000\t0\t198.51.100.0/24\tpartner\n")
    lines.append("W\trecipient\t1700000000\t0\tpostmaster@\t\n")
    return lines


def merged(records):
    """{key: (first, last, passes)} of T/C/TH/CH lines by the merge rules:
    earliest first-seen, latest last-seen, largest count."""
    out = {}
    for line in records:
        f = line.rstrip("\n").split("\t")
        if f[0] not in ("T", "C", "TH", "CH"):
            continue
        key = (f[0],) + tuple(f[4:])
        first, last, passes = int(f[1]), int(f[2]), int(f[3])
        if key in out:
            a, b, c = out[key]
            first, last, passes = min(a, first), max(b, last), max(c, passes)
        out[key] = (first, last, passes)
    return out


class LoadSorted(GreyholdTestCase):

    def setUp(self):
        self.work = self.tmpdir()
        self.conf = os.path.join(self.work, "greyhold.conf")
        write_file(self.conf, "")
        self.sortdir = os.path.join(self.work, "sorttmp")
        os.mkdir(self.sortdir)

    def ctl(self, db, *args, stdin=None, tmpdir=None, expected=0):
        env = dict(os.environ)
        env["TMPDIR"] = tmpdir if tmpdir is not None else self.sortdir
        if not env["TMPDIR"]:
            del env["TMPDIR"]
        r = subprocess.run([ctl_bin(), "-c", self.conf, "--db", db] +
                           list(args), input=stdin, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=120)
        self.assertEqual(r.returncode, expected, "greyholdctl %s -> %d\n%s%s"
                         % (" ".join(args), r.returncode, r.stdout[-2000:],
                            r.stderr[-2000:]))
        return r

    def load(self, db, lines, *opts, **kw):
        path = os.path.join(self.work, "in.dump")
        write_file(path, HEADER + "".join(lines))
        return self.ctl(db, "--json", "load", *opts, path, **kw)

    def db(self, name):
        return os.path.join(self.work, name)

    def dump(self, db):
        return self.ctl(db, "dump").stdout

    def assertNoTempFiles(self, *dbs):
        self.assertEqual(os.listdir(self.sortdir), [])
        for db in dbs:
            self.assertEqual(sorted(os.listdir(db)),
                             ["data.mdb", "lock.mdb"])

    def test_shuffled_dump_loads_as_the_sorted_one(self):
        lines = record_lines(N, 1)
        shuffled = list(lines)
        random.Random(2).shuffle(shuffled)
        got_sorted = self.load(self.db("a"), lines, "--memory", "1")
        got_shuffled = self.load(self.db("b"), shuffled, "--memory", "1")
        records = len(lines) - 2
        for got in (got_sorted, got_shuffled):
            self.assertIn('"records":%d,"added":%d,' % (records, records),
                          got.stdout)
            self.assertIn('"whitelist":2', got.stdout)
        first = self.dump(self.db("a"))
        self.assertEqual(self.dump(self.db("b")), first)
        rows = parse_dump(first)
        self.assertEqual(len(rows), len(lines))
        self.assertEqual(merged(lines), merged("\t".join(r) for r in rows))
        # the database's own dump (in key order) loads to the same again
        got = self.load(self.db("c"), [first[len(HEADER):]])
        self.assertEqual(self.dump(self.db("c")), first)
        self.assertNoTempFiles(self.db("a"), self.db("b"), self.db("c"))

    def test_merge_into_existing_keeps_the_max(self):
        base = record_lines(N, 3)
        # the same keys with other times and counts, half of them, and
        # some keys twice (the merge applies among the dump's own lines)
        again = [line for line in record_lines(N, 4)
                 if not line.startswith(("TH", "CH"))]
        dup = again[::7]
        new = [line.replace("@example.com", "@new.example")
               for line in record_lines(N // 10, 5)[:N // 10]]
        more = again[::2] + dup + new
        random.Random(6).shuffle(base)
        random.Random(7).shuffle(more)
        self.load(self.db("m"), base, "--memory", "1")
        got = self.load(self.db("m"), more, "--memory", "1")
        want = merged(base + more)
        rows = parse_dump(self.dump(self.db("m")))
        self.assertEqual(merged("\t".join(r) for r in rows), want)
        new_keys = len(want) - len(merged(base))
        self.assertEqual(new_keys, len(new))
        wl = sum(1 for line in more if line.startswith("W"))
        self.assertIn('"records":%d,"added":%d,'
                      % (len(more) - wl, new_keys), got.stdout)
        # loading the same again changes nothing
        got = self.load(self.db("m"), more, "--memory", "1")
        self.assertIn('"added":0,"merged":0,', got.stdout)
        self.assertNoTempFiles(self.db("m"))

    def test_bad_line_loads_every_line_before_it(self):
        lines = record_lines(N, 8)
        random.Random(9).shuffle(lines)
        cut = len(lines) * 2 // 3
        bad = "T\t1\tx\t0\t192.0.2.0/24\ta@x.org\tb@y.org\n"
        text = lines[:cut] + [bad] + lines[cut:]
        r = self.load(self.db("e"), text, "--memory", "1", expected=2)
        lineno = cut + 2        # the header is line 1
        self.assertIn("in.dump:%d: bad time or pass count" % lineno,
                      r.stderr)
        before = [line for line in lines[:cut] if not line.startswith("W")]
        self.assertIn("stopped at line %d; the %d records before it were "
                      "loaded" % (lineno, len(before)), r.stderr)
        rows = parse_dump(self.dump(self.db("e")))
        self.assertEqual(merged("\t".join(r) for r in rows),
                         merged(lines[:cut]))
        self.assertEqual(sum(1 for r in rows if r[0] == "W"),
                         sum(1 for line in lines[:cut]
                             if line.startswith("W")))
        # the bad line last: everything else is there
        r = self.load(self.db("f"), lines + [bad], "--memory", "1",
                      expected=2)
        self.assertIn(":%d: bad time" % (len(lines) + 2), r.stderr)
        rows = parse_dump(self.dump(self.db("f")))
        self.assertEqual(len(rows), len(lines))
        self.assertNoTempFiles(self.db("e"), self.db("f"))

    def test_runs_go_to_tmpdir_else_the_database_directory(self):
        lines = record_lines(N, 10)
        # a dump that fits in memory needs no temporary file at all
        missing = os.path.join(self.work, "missing")
        self.load(self.db("s"), lines[:100], tmpdir=missing)
        # one that does not: the error names the directory, and no
        # triplet or client record is written
        r = self.load(self.db("t"), lines, "--memory", "1", tmpdir=missing,
                      expected=2)
        self.assertIn("cannot sort the dump in %s: No such file or "
                      "directory; no triplet or client record was loaded"
                      % missing, r.stderr)
        self.assertEqual(parse_dump(self.dump(self.db("t"))), [])
        # without TMPDIR, next to the database, and gone afterwards
        self.load(self.db("u"), lines, "--memory", "1", tmpdir="")
        self.assertEqual(len(parse_dump(self.dump(self.db("u")))),
                         len(lines))
        self.assertNoTempFiles(self.db("s"), self.db("t"), self.db("u"))
        # --memory takes mebibytes, at least one
        for bad in ("0", "x", "-1"):
            r = self.load(self.db("v"), lines[:10], "--memory", bad,
                          expected=2)
            self.assertIn("--memory", r.stderr)
        self.assertFalse(os.path.exists(self.db("v")))

    def test_temporary_file_has_no_name_even_when_killed(self):
        lines = [line for line in record_lines(N, 11)
                 if not line.startswith("W")]
        env = dict(os.environ, TMPDIR=self.sortdir)
        p = subprocess.Popen([ctl_bin(), "-c", self.conf, "--db",
                              self.db("k"), "load", "--memory", "1"],
                             stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=env,
                             universal_newlines=True)
        self.addCleanup(p.wait, 30)
        self.addCleanup(p.stdin.close)
        self.addCleanup(p.kill)
        p.stdin.write(HEADER + "".join(lines))
        p.stdin.flush()         # load now waits for more input
        fds = os.path.join("/proc", str(p.pid), "fd")
        deadline = time.monotonic() + 30
        spill = []
        while not spill and time.monotonic() < deadline:
            for fd in os.listdir(fds):
                try:
                    target = os.readlink(os.path.join(fds, fd))
                except OSError:
                    continue
                if target.startswith(self.sortdir + "/"):
                    spill.append(target)
            time.sleep(0.05)
        self.assertEqual(len(spill), 1, "no run written under TMPDIR")
        self.assertTrue(spill[0].endswith("(deleted)"), spill[0])
        self.assertEqual(os.listdir(self.sortdir), [])
        p.send_signal(signal.SIGKILL)
        self.assertEqual(p.wait(30), -signal.SIGKILL)
        self.assertEqual(os.listdir(self.sortdir), [])
        # nothing was written: the records wait for the end of the input
        r = self.ctl(self.db("k"), "dump")
        self.assertEqual(r.stdout, HEADER)


if __name__ == "__main__":
    unittest.main(verbosity=2)
