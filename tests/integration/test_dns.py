#!/usr/bin/env python3
"""The daemon's asynchronous resolver (src/daemon/dns.c) against real
DNS servers on loopback, through tests/dns/dnsq.

- unbound serving local-data: A, AAAA, MX, TXT (several strings joined;
  one over 512 bytes, so UDP truncates and the resolver retries over
  TCP), PTR, NXDOMAIN and NODATA with the SOA's negative TTL, a TTL of
  1 s that expires, and what a cache hit costs against a query;
- a scriptable server (dnsserver.py) for the unfriendly cases: no answer
  (TEMPFAIL within dns_timeout, other lookups unaffected), answers with a
  wrong ID, SERVFAIL, REFUSED, FORMERR, TC over UDP with the answer over
  TCP; it
  counts queries, so the cache is seen answering without one;
- the outstanding cap fails lookups at once; dns_close() answers every
  outstanding lookup TEMPFAIL exactly once; no callback ever runs inside
  dns_lookup() (dnsq aborts on SYNC or DOUBLE).

Standard library only.
"""

import errno
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dnsserver  # noqa: E402
import harness  # noqa: E402
import unbound_server  # noqa: E402
from dnsserver import A, AAAA, MX, PTR, TXT  # noqa: E402

ANSWER_RE = re.compile(r"^answer (\d+) (\S+) (\S+) (\S+) ttl=(\d+) us=(\d+)"
                       r"(.*)$")


def dnsq_bin():
    builddir = os.path.dirname(os.path.dirname(harness.greyhold_bin()))
    path = os.path.join(builddir, "tests", "dns", "dnsq")
    if not os.access(path, os.X_OK):
        raise RuntimeError("dnsq not built at %s" % path)
    return path


def unescape_txt(field):
    """The bytes of one "..." record as dnsq prints it."""
    out = bytearray()
    i = 0
    while i < len(field):
        c = field[i]
        if c == "\\" and field[i + 1] == "x":
            out.append(int(field[i + 2:i + 4], 16))
            i += 4
        elif c == "\\":
            out.append(ord(field[i + 1]))
            i += 2
        else:
            out.append(ord(c))
            i += 1
    return bytes(out)


class Answer:
    def __init__(self, m):
        self.seq = int(m.group(1))
        self.type = m.group(2)
        self.name = m.group(3)
        self.status = m.group(4)
        self.ttl = int(m.group(5))
        self.us = int(m.group(6))
        rest = m.group(7).strip()
        if self.type == "TXT":
            self.records = [unescape_txt(t) for t in
                            re.findall(r'"((?:[^"\\]|\\.)*)"', rest)]
        else:
            self.records = rest.split() if rest else []


class Run:
    """One dnsq run: its answers by sequence number, and its counters."""

    def __init__(self, proc):
        self.out = proc.stdout + proc.stderr
        self.rc = proc.returncode
        self.answers = {}
        self.refused = []
        self.counters = {}
        for line in proc.stdout.splitlines():
            m = ANSWER_RE.match(line)
            if m:
                a = Answer(m)
                self.answers[a.seq] = a
            elif line.startswith("refused "):
                self.refused.append(line)
            elif line.startswith("counters "):
                self.counters = {k: int(v) for k, v in
                                 re.findall(r"(\w+)=(\d+)", line)}

    def __getitem__(self, seq):
        return self.answers[seq]


def dnsq(options, items, timeout=30):
    argv = [dnsq_bin()]
    for key, value in options.items():
        argv += ["-o", "%s=%s" % (key, value)]
    proc = subprocess.run(argv + list(items), capture_output=True, text=True,
                          timeout=timeout)
    return Run(proc)


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100.0))]


# ---- unbound ---------------------------------------------------------------------

BIG_TXT = ["a" * 250, "b" * 250, "c" * 100]     # 600 bytes: over 512
LATENCY_NAMES = 300

UNBOUND_DATA = [
    '"a.test. 300 IN A 192.0.2.1"',
    '"a.test. 300 IN A 192.0.2.2"',
    '"a.test. 300 IN AAAA 2001:db8::1"',
    '"a.test. 300 IN MX 10 Mail.A.test."',
    '"a.test. 300 IN MX 20 mx2.a.test."',
    "'spf.test. 300 IN TXT \"v=spf1 ip4:192.0.2.0/24\" \" -all\"'",
    "'spf.test. 300 IN TXT \"other record\"'",
    "'big.test. 300 IN TXT %s'" % " ".join('"%s"' % s for s in BIG_TXT),
    '"1.2.0.192.in-addr.arpa. 300 IN PTR host.test."',
    '"short.test. 1 IN A 192.0.2.9"',
] + ['"n%d.test. 300 IN A 192.0.2.%d"' % (i, i % 250 + 1)
     for i in range(LATENCY_NAMES)]


@unittest.skipIf(unbound_server.skip_reason(), unbound_server.skip_reason())
class UnboundTests(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="greyhold-dns-")
        cls.ub = unbound_server.Unbound(
            cls.tmp, UNBOUND_DATA, zones=["test.", "2.0.192.in-addr.arpa."])
        cls.ub.start()
        cls.opts = {"resolver": cls.ub.address, "dns_timeout": "2s"}

    @classmethod
    def tearDownClass(cls):
        cls.ub.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_record_types(self):
        r = dnsq(self.opts, ["A:a.test", "AAAA:a.test", "MX:a.test",
                             "TXT:spf.test", "TXT:big.test",
                             "PTR:1.2.0.192.in-addr.arpa", "A:nx.test",
                             "MX:spf.test"])
        self.assertEqual(r.rc, 0, r.out)
        self.assertEqual((r[1].status, r[1].ttl), ("OK", 300))
        self.assertEqual(sorted(r[1].records), ["192.0.2.1", "192.0.2.2"])
        self.assertEqual(r[2].records, ["2001:db8::1"])
        # Exchanges in lower case, without the trailing dot.
        self.assertEqual(sorted(r[3].records),
                         ["10:mail.a.test", "20:mx2.a.test"])
        # One string per record: the character-strings joined, no spaces
        # added (RFC 7208 3.3); records kept apart.
        self.assertEqual(sorted(r[4].records),
                         [b"other record", b"v=spf1 ip4:192.0.2.0/24 -all"])
        # Over 512 bytes: only complete after the retry over TCP.
        self.assertEqual(r[5].status, "OK")
        self.assertEqual(r[5].records, ["".join(BIG_TXT).encode()])
        self.assertEqual(r[6].records, ["host.test"])
        # Negative answers last the SOA's negative TTL (RFC 2308).
        self.assertEqual((r[7].status, r[7].ttl, r[7].records),
                         ("NXDOMAIN", unbound_server.NEG_TTL, []))
        self.assertEqual((r[8].status, r[8].ttl), ("NODATA",
                                                   unbound_server.NEG_TTL))
        self.assertEqual(r.counters["sent"], 8)

    def test_repeat_comes_from_cache_and_ttl_1s_expires(self):
        r = dnsq(self.opts, ["A:short.test", "wait", "A:SHORT.test.",
                             "MX:nx.test", "wait", "MX:nx.test",
                             "sleep:1100", "A:short.test"])
        self.assertEqual(r.rc, 0, r.out)
        self.assertEqual(r[1].records, ["192.0.2.9"])
        self.assertEqual(r[2].records, ["192.0.2.9"])
        self.assertEqual(r[4].status, "NXDOMAIN")
        self.assertEqual(r[5].records, ["192.0.2.9"])
        # Queries: short, nx, short again after its second: 3 of 5.
        self.assertEqual((r.counters["sent"], r.counters["hits"]), (3, 2))

    def test_latency_cache_hit_and_miss(self):
        names = ["A:n%d.test" % i for i in range(LATENCY_NAMES)]
        items = []
        for n in names:          # one at a time: latency, not throughput
            items += [n, "wait"]
        items += items           # the same again: all from the cache
        r = dnsq(self.opts, items, timeout=60)
        self.assertEqual(r.rc, 0, r.out[-2000:])
        miss = [r[i].us for i in range(1, LATENCY_NAMES + 1)]
        hit = [r[i].us for i in range(LATENCY_NAMES + 1,
                                      2 * LATENCY_NAMES + 1)]
        self.assertTrue(all(r[i].status == "OK"
                            for i in range(1, 2 * LATENCY_NAMES + 1)))
        self.assertEqual(r.counters["hits"], LATENCY_NAMES)
        self.assertEqual(r.counters["sent"], LATENCY_NAMES)
        sys.stderr.write(
            "latency over %d lookups (us): miss p50 %d p99 %d, "
            "hit p50 %d p99 %d\n" % (LATENCY_NAMES, percentile(miss, 50),
                                     percentile(miss, 99), percentile(hit, 50),
                                     percentile(hit, 99)))
        self.assertLess(percentile(hit, 50), percentile(miss, 50))


# ---- the scriptable server ----------------------------------------------------------

class ServerTests(unittest.TestCase):

    def setUp(self):
        srv = dnsserver.DnsServer()
        srv.add("a.test", A, [dnsserver.a("192.0.2.1")], ttl=300)
        srv.add("short.test", A, [dnsserver.a("192.0.2.9")], ttl=1)
        for name in ("silent.test", "silent2.test", "silent3.test"):
            srv.add(name, A, behaviour=dnsserver.SILENT)
        srv.add("wrongid.test", A, [dnsserver.a("192.0.2.7")],
                behaviour=dnsserver.WRONG_ID)
        srv.add("wrongfirst.test", A, [dnsserver.a("192.0.2.8")],
                behaviour=dnsserver.WRONG_ID_FIRST)
        srv.add("servfail.test", A, behaviour=dnsserver.SERVFAIL)
        srv.add("refused.test", A, behaviour=dnsserver.REFUSED)
        srv.add("formerr.test", A, behaviour=dnsserver.FORMERR)
        srv.add("tc.test", TXT, [dnsserver.txt("x" * 200, "y" * 200),
                                 dnsserver.txt("z" * 250)],
                behaviour=dnsserver.TRUNCATE_UDP)
        srv.start()
        self.addCleanup(srv.stop)
        self.srv = srv
        self.opts = {"resolver": srv.address, "dns_timeout": "1s",
                     "dns_budget": "1s"}

    def test_cache_answers_repeat_without_a_query(self):
        r = dnsq(self.opts, ["A:a.test", "wait", "A:a.test", "A:A.Test",
                             "A:nx.test", "wait", "A:nx.test"])
        self.assertEqual(r.rc, 0, r.out)
        self.assertEqual([r[i].status for i in range(1, 6)],
                         ["OK", "OK", "OK", "NXDOMAIN", "NXDOMAIN"])
        self.assertEqual(self.srv.queries("a.test", A), 1)
        self.assertEqual(self.srv.queries("nx.test", A), 1)
        self.assertEqual(r[4].ttl, dnsserver.NEG_TTL)
        self.assertEqual(r.counters["hits"], 3)

    def test_concurrent_lookups_of_one_name_share_a_query(self):
        # The recipients of one message ask the same thing at once: one
        # query answers them all, each with its own copy.
        r = dnsq(self.opts, ["A:a.test", "A:A.test", "A:a.test.",
                             "A:short.test", "AAAA:a.test"])
        self.assertEqual(r.rc, 0, r.out)
        self.assertEqual([r[i].records for i in (1, 2, 3)],
                         [["192.0.2.1"]] * 3)
        self.assertEqual(self.srv.queries("a.test", A), 1)
        self.assertEqual(self.srv.queries("short.test", A), 1)
        self.assertEqual(self.srv.queries("a.test", AAAA), 1)
        self.assertEqual(r.counters["sent"], 3)

    def test_shared_query_times_out_for_everyone_once(self):
        r = dnsq(self.opts, ["A:silent.test", "A:silent.test", "wait",
                             "A:a.test"])
        self.assertEqual(r.rc, 0, r.out)
        self.assertEqual([r[1].status, r[2].status], ["TEMPFAIL"] * 2)
        self.assertEqual(r[3].status, "OK")
        self.assertEqual(r.counters["timeouts"], 2)

    def test_no_cache_asks_every_time(self):
        opts = dict(self.opts, dns_cache_size="0")
        r = dnsq(opts, ["A:a.test", "wait", "A:a.test"])
        self.assertEqual(r.rc, 0, r.out)
        self.assertEqual(self.srv.queries("a.test", A), 2)

    def test_ttl_of_one_second_expires(self):
        r = dnsq(self.opts, ["A:short.test", "wait", "A:short.test",
                             "sleep:1100", "A:short.test"])
        self.assertEqual(r.rc, 0, r.out)
        self.assertEqual([r[i].records for i in (1, 2, 3)],
                         [["192.0.2.9"]] * 3)
        self.assertEqual(self.srv.queries("short.test", A), 2)

    def test_silent_server_times_out_without_stalling_others(self):
        start = time.monotonic()
        r = dnsq(self.opts, ["A:silent.test", "A:a.test"])
        elapsed = time.monotonic() - start
        self.assertEqual(r.rc, 0, r.out)
        self.assertEqual(r[1].status, "TEMPFAIL")
        # Within dns_timeout (1s), with some slack for a loaded machine.
        self.assertGreater(r[1].us, 500000)
        self.assertLess(r[1].us, 1600000)
        self.assertLess(elapsed, 5)
        # The other lookup did not wait for it.
        self.assertEqual(r[2].status, "OK")
        self.assertLess(r[2].us, 300000)
        self.assertEqual(r.counters["timeouts"], 1)
        self.assertGreaterEqual(self.srv.queries("silent.test", A), 1)

    def test_wrong_id_is_ignored(self):
        r = dnsq(self.opts, ["A:wrongid.test", "A:wrongfirst.test"])
        self.assertEqual(r.rc, 0, r.out)
        # Only a wrong-ID answer: as good as none.
        self.assertEqual(r[1].status, "TEMPFAIL")
        # A wrong-ID answer, then the right one: the right one counts.
        self.assertEqual(r[2].status, "OK")
        self.assertEqual(r[2].records, ["192.0.2.8"])

    def test_servfail_is_tempfail_at_once_and_briefly_cached(self):
        r = dnsq(self.opts, ["A:servfail.test", "wait", "A:servfail.test",
                             "sleep:2100", "A:servfail.test"])
        self.assertEqual(r.rc, 0, r.out)
        self.assertEqual([r[i].status for i in (1, 2, 3)], ["TEMPFAIL"] * 3)
        self.assertLess(r[1].us, 500000)
        # The repeat came from the cache; after 2s the server is asked
        # again (c-ares asks up to twice per lookup).
        self.assertIn(self.srv.queries("servfail.test", A), (2, 4))
        self.assertEqual(r.counters["hits"], 1)
        # Failures count answers from servers, not from the cache.
        self.assertEqual(r.counters["failures"], 2)

    def test_refused_is_tempfail_formerr_permfail(self):
        r = dnsq(self.opts, ["A:refused.test", "A:formerr.test"])
        self.assertEqual(r.rc, 0, r.out)
        # A resolver that refuses us says nothing about the name, and
        # c-ares 1.18 reports it, after trying every server, like a
        # server it could not reach.
        self.assertEqual(r[1].status, "TEMPFAIL")
        self.assertLess(r[1].us, 500000)
        # FORMERR: the query itself is wrong, asking again will not help.
        self.assertEqual(r[2].status, "PERMFAIL")

    def test_truncated_udp_answer_is_retried_over_tcp(self):
        r = dnsq(self.opts, ["TXT:tc.test"])
        self.assertEqual(r.rc, 0, r.out)
        self.assertEqual(r[1].status, "OK")
        self.assertEqual(sorted(r[1].records),
                         [b"x" * 200 + b"y" * 200, b"z" * 250])
        self.assertEqual(self.srv.queries("tc.test", TXT, "udp"), 1)
        self.assertEqual(self.srv.queries("tc.test", TXT, "tcp"), 1)

    def test_outstanding_cap_fails_fast(self):
        opts = dict(self.opts, dns_max_outstanding="2")
        r = dnsq(opts, ["A:silent.test", "A:silent2.test", "A:silent3.test",
                        "A:a.test"])
        self.assertEqual(r.rc, 0, r.out)
        for seq in (3, 4):
            self.assertEqual(r[seq].status, "TEMPFAIL")
            self.assertLess(r[seq].us, 200000)
        self.assertEqual(r.counters["overflows"], 2)
        self.assertEqual(self.srv.queries("silent3.test"), 0)
        self.assertEqual(self.srv.queries("a.test"), 0)

    def test_close_answers_outstanding_lookups_once(self):
        start = time.monotonic()
        r = dnsq(self.opts, ["A:silent.test", "A:silent2.test", "close",
                             "A:a.test"])
        self.assertEqual(r.rc, 0, r.out)
        self.assertEqual([r[1].status, r[2].status], ["TEMPFAIL"] * 2)
        self.assertEqual(len(r.refused), 1, r.out)
        self.assertIn("a.test rc=-%d" % errno.ESHUTDOWN, r.refused[0])
        self.assertLess(time.monotonic() - start, 1.0)

    def test_close_from_inside_a_callback(self):
        # After the barrier, dnsq runs the rest from a.test's callback:
        # the lookup and dns_close() happen inside the resolver's delivery.
        r = dnsq(self.opts, ["A:a.test", "A:a.test", "wait",
                             "A:silent.test", "close", "A:a.test"])
        self.assertEqual(r.rc, 0, r.out)
        self.assertEqual([r[1].status, r[2].status, r[3].status],
                         ["OK", "OK", "TEMPFAIL"])
        self.assertEqual(len(r.refused), 1, r.out)

    def test_bad_names_are_refused(self):
        r = dnsq(self.opts, ["A:bad name.test", "A:" + "a" * 254,
                             "A:back\\slash.test", "A:a.test"])
        self.assertEqual(r.rc, 0, r.out)
        self.assertEqual(len(r.refused), 3, r.out)
        self.assertTrue(all(line.endswith("rc=-22") for line in r.refused))
        self.assertEqual(r[4].status, "OK")

    def test_bad_resolver_setting_is_refused(self):
        for value in ("ns.example.org", "127.0.0.1:0", "[::1"):
            proc = subprocess.run([dnsq_bin(), "-o", "resolver=" + value,
                                   "A:a.test"], capture_output=True,
                                  text=True, timeout=10)
            self.assertEqual(proc.returncode, 1)
            self.assertIn("resolver", proc.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
