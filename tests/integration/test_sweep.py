"""The expiry sweep's pace, through the real binaries: a database loaded
with greyholdctl, the daemon started on it, its progress read from the
metrics endpoint (greyhold_store_expired_total) and the result from
greyholdctl stats.

A daemon started on a database full of expired records (it was down for
days, or max_age was lowered, or an old dump was loaded) must clear them
within seconds, not at the old fixed pace of 2000 records a second
(N / 2000 s: 75 s for the 150k here), while fresh records stay and
requests keep being answered.
"""

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import (GreyholdTestCase, ctl_bin, free_port,  # noqa: E402
                     make_request, timeout_scale, write_file)

DAY = 86400
N_OLD = 150000          # pending for 3 days: expired (retry_window 2d)
N_FRESH = 50000         # passed an hour ago: kept
# The old fixed pace (2000 a second) needs N_OLD / 2000 = 75 s at least.
BOUND = 20.0
EXPIRED_RE = re.compile(r"^greyhold_store_expired_total (\d+)$", re.M)


def metrics_expired(port):
    """greyhold_store_expired_total from the metrics endpoint."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Connection: close\r\n\r\n")
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    m = EXPIRED_RE.search(b"".join(chunks).decode("utf-8", "replace"))
    if not m:
        raise AssertionError("no greyhold_store_expired_total in the metrics")
    return int(m.group(1))


def dump_text(now):
    """N_OLD expired and N_FRESH fresh triplets, mixed in key order (the
    sweep goes through the table in key order)."""
    lines = ["greyhold-dump 1\n"]
    for i in range(N_OLD + N_FRESH):
        fresh = i % 4 == 3
        first = now - 3600 if fresh else now - 3 * DAY
        lines.append("T\t%d\t%d\t%d\t10.%d.%d.0/24\tsender%d@old.example"
                     "\trcpt%d@example.org\n"
                     % (first, first, 1 if fresh else 0, (i >> 8) & 255,
                        i & 255, i, i % 101))
    return "".join(lines)


class Answers(threading.Thread):
    """Asks the daemon once every 20 ms and keeps each answer's latency."""

    def __init__(self, daemon):
        super().__init__(daemon=True)
        self.d = daemon
        self.stop_event = threading.Event()
        self.latencies = []
        self.at = []
        self.errors = []

    def run(self):
        i = 0
        try:
            with self.d.client() as c:
                while not self.stop_event.is_set():
                    i += 1
                    start = time.monotonic()
                    reply = c.request(make_request(
                        client_address="198.51.100.%d" % (i % 200 + 1),
                        sender="probe%d@new.example" % i,
                        recipient="someone@example.org"))
                    self.latencies.append(time.monotonic() - start)
                    self.at.append(start)
                    if not reply.startswith("action="):
                        self.errors.append(reply)
                    self.stop_event.wait(0.02)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.errors.append(repr(e))


class SweepPace(GreyholdTestCase):

    def test_daemon_clears_expired_backlog_fast_and_keeps_fresh(self):
        work = self.tmpdir()
        wl = os.path.join(work, "wl")
        write_file(wl, "")
        conf = os.path.join(work, "greyhold.conf")
        write_file(conf, "whitelist_clients = %s\nwhitelist_recipients = %s\n"
                   "resolver = %s\n" % (wl, wl, harness.NO_DNS_RESOLVER))
        dbdir = os.path.join(work, "db")
        path = os.path.join(work, "backlog.txt")
        write_file(path, dump_text(int(time.time())))
        r = subprocess.run([ctl_bin(), "-c", conf, "--db", dbdir, "--json",
                            "load", path], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True,
                           timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["added"], N_OLD + N_FRESH)

        port = free_port()
        d = self.daemon(args=["-o", "metrics_listen=127.0.0.1:%d" % port],
                        workdir=work, config=conf, dbdir=dbdir)
        start = time.monotonic()
        answers = Answers(d)
        answers.start()
        self.addCleanup(answers.stop_event.set)
        bound = BOUND * timeout_scale()
        seen = []
        while True:
            try:
                expired = metrics_expired(port)
            except OSError:
                expired = None  # the endpoint is still starting
            elapsed = time.monotonic() - start
            seen.append((round(elapsed, 1), expired))
            if expired is not None and expired >= N_OLD:
                break
            if elapsed > bound:
                self.fail("the sweep removed %s of %d expired records in "
                          "%.0f s (the old 2000/s pace needs %d s); "
                          "progress: %s" % (expired, N_OLD, elapsed,
                                            N_OLD // 2000, seen[::8]))
            time.sleep(0.25)
        answers.stop_event.set()
        answers.join(10)
        lat = answers.latencies
        slow = sorted(zip(lat, answers.at), reverse=True)[:5]
        print("\n  %d expired records cleared in %.1f s (%.0f/s); requests "
              "meanwhile: %d, median %.1f ms, slowest %s"
              % (N_OLD, elapsed, N_OLD / elapsed, len(lat),
                 1000 * harness.percentile(lat, 50) if lat else 0,
                 ", ".join("%.1f ms at %.1f s" % (1000 * l, t - start)
                           for l, t in slow)))
        self.assertEqual(expired, N_OLD, "the sweep removed fresh records")
        self.assertEqual(answers.errors, [])
        self.assertGreater(len(answers.latencies), 0)

        r = subprocess.run([ctl_bin(), "-c", conf, "--db", dbdir, "--json",
                            "stats"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        stats = json.loads(r.stdout)
        # The fresh records, and the probes' own new triplets.
        self.assertEqual(stats["triplets"]["total"],
                         N_FRESH + len(answers.latencies))
        self.assertEqual(stats["triplets"]["expired"], 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
