#!/usr/bin/env python3
"""Smart greylisting through the real daemon, with real DNS on loopback.

unbound (unbound_server.py) serves the test zones: SPF records reached
through include, redirect, mx, a and a macro; an include chain one
lookup too long; DNS allow- and blocklist entries.  dnsserver.py plays
the unfriendly servers: one that never answers, one that truncates over
UDP.  Every request goes to the daemon on its socket, and every test
checks both the reply and the decision log line:

- a provider pool's retry from another address of the pool, in another
  /24, passes through the name identity (a customer's record including
  the pool's, and a return path naming the sending host, without SPF);
- a dynamic-looking name, a bot with a forged sender and a snowshoe
  sender with its own SPF record get no grouping;
- the sender's own SPF-proven server is trusted at first sight, a record
  that passes for a documentation address proves nothing;
- SPF through redirect, include with a macro, mx, a; an 11-lookup
  include chain is a permerror (the 10-lookup one passes);
- DNS that never answers costs at most dns_budget, refused DNS nothing,
  a truncated UDP answer is fetched over TCP;
- DNS lists (allowlist trust level, "blocked" answer, blocklist delay)
  and the metrics they move;
- two daemons on one Redis share the name identity; privacy mode hashes
  the identity keys.

Clients whose SPF must be proven are in 100.64.0.0/10 and 198.18.0.0/15,
never in the documentation ranges (the SPF probe uses 192.0.2.1).
Skipped without unbound (Debian package unbound); the Redis test also
without redis-server.  Standard library only.
"""

import math
import os
import re
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dnsserver  # noqa: E402
import harness  # noqa: E402
import unbound_server  # noqa: E402
from dnsserver import TXT  # noqa: E402
from harness import (GreyholdTestCase, align_to_second, make_request,  # noqa
                     reply_action, seconds_left, sleep_until)

DELAY = 2
GREYLISTED = "action=DEFER_IF_PERMIT Greylisted"


def txt(name, text):
    return "'%s. 300 IN TXT \"%s\"'" % (name, text)


def rr(name, rtype, data):
    return '"%s. 300 IN %s %s"' % (name, rtype, data)


def include_chain(domain, n, last):
    """domain's record includes c1.domain, which includes c2.domain, ...:
    n includes in all (n DNS-querying terms); the last holds `last`."""
    data = [txt(domain, "v=spf1 include:c1.%s -all" % domain)]
    for i in range(1, n):
        data.append(txt("c%d.%s" % (i, domain),
                        "v=spf1 include:c%d.%s -all" % (i + 1, domain)))
    data.append(txt("c%d.%s" % (n, domain), "v=spf1 %s -all" % last))
    return data


def list_entry(zone, client, answer):
    """A DNS list's A record for an IPv4 client."""
    name = ".".join(reversed(client.split("."))) + "." + zone
    return rr(name, "A", answer)


ZONE_DATA = [
    # A pool (Office 365 style): customers include the pool's record.
    txt("cust.test", "v=spf1 include:_spf.pool.test -all"),
    txt("_spf.pool.test", "v=spf1 ip4:100.70.0.0/16 ip4:100.71.0.0/16 -all"),
    # A forged sender's domain: its own servers only.
    txt("victim.test", "v=spf1 ip4:100.80.0.0/16 -all"),
    # A snowshoe sender: its own record lists its own (verified) hosts.
    txt("brand1.test", "v=spf1 ip4:100.100.0.0/16 ip4:100.101.0.0/16 -all"),
    # Trusted: the domain's own server.
    txt("trusted.test", "v=spf1 ip4:100.64.1.0/24 -all"),
    # Records that pass for anyone (the probe's address included).
    txt("open.test", "v=spf1 +all"),
    txt("half.test", "v=spf1 ip4:128.0.0.0/1 -all"),
    # The other half: the probe (192.0.2.1) is not in it, its width is.
    txt("lowhalf.test", "v=spf1 ip4:0.0.0.0/1 -all"),
    # redirect=
    txt("redir.test", "v=spf1 redirect=_spf.redir.test"),
    txt("_spf.redir.test", "v=spf1 ip4:100.64.3.0/24 -all"),
    # include: whose record uses a macro: exists:%{i}._spf.%{d}
    txt("inc.test", "v=spf1 include:mac.inc.test -all"),
    txt("mac.inc.test", "v=spf1 exists:%{i}._spf.%{d} -all"),
    rr("100.64.4.10._spf.mac.inc.test", "A", "127.0.0.2"),
    # mx and a:
    txt("mxd.test", "v=spf1 mx -all"),
    rr("mxd.test", "MX", "10 mx1.mxd.test."),
    rr("mx1.mxd.test", "A", "100.64.5.20"),
    txt("arec.test", "v=spf1 a:out.arec.test -all"),
    rr("out.arec.test", "A", "100.64.6.30"),
    # The listed-but-otherwise-trusted client's domain.
    txt("listed.test", "v=spf1 ip4:100.64.11.0/24 -all"),
    # DNS lists: wl.test (dnswl.org style trust in the last octet), bl.test.
    list_entry("wl.test", "100.64.10.2", "127.0.10.2"),
    list_entry("wl.test", "100.64.10.1", "127.0.10.1"),
    list_entry("wl.test", "100.64.10.3", "127.0.0.255"),
    list_entry("wl.test", "100.64.11.10", "127.0.10.3"),
    list_entry("bl.test", "100.64.11.10", "127.0.0.2"),
] + include_chain("chain.test", 11, "ip4:100.64.7.0/24") \
  + include_chain("ch10.test", 10, "ip4:100.64.9.0/24")


def req(client, name, sender, recipient="bob@example.com"):
    return make_request(client_address=client, client_name=name,
                        sender=sender, recipient=recipient)


def http_get_metrics(port, timeout=5.0):
    """The body of GET /metrics (a raw socket: no proxy settings apply)."""
    with socket.create_connection(("127.0.0.1", port), timeout) as s:
        s.sendall(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.") and b" 200 " in head, head[:200]
    return body.decode("utf-8", "replace")


def metric(text, name, **labels):
    """The value of one series (0 when absent)."""
    want = ",".join('%s="%s"' % kv for kv in labels.items())
    series = "%s{%s}" % (name, want) if labels else name
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


@unittest.skipIf(unbound_server.skip_reason(), unbound_server.skip_reason())
class SmartCase(GreyholdTestCase):

    @classmethod
    def setUpClass(cls):
        import shutil
        import tempfile
        cls.ub_dir = tempfile.mkdtemp(prefix="greyhold-smart-")
        cls.ub = unbound_server.Unbound(cls.ub_dir, ZONE_DATA,
                                        zones=["test."])
        try:
            cls.ub.start()
        except BaseException:
            shutil.rmtree(cls.ub_dir, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        import shutil
        cls.ub.stop()
        shutil.rmtree(cls.ub_dir, ignore_errors=True)

    def smart_daemon(self, args=(), resolver=None, **kw):
        return self.daemon(["--delay", str(DELAY), "-o", "resolver=%s"
                            % (resolver or self.ub.address)] + list(args),
                           **kw)

    def ask(self, d, request):
        """(reply, decision log line) for one request."""
        mark = d.log_mark()
        reply = d.ask(request)
        self.assertRegex(reply, harness.REPLY_RE)
        line = d.wait_log(r"^greyhold: action=", mark)
        return reply, line

    def expect(self, d, request, action, log_prefix, absent=()):
        """Ask; the reply's action and the log line's start must match
        ("{n}" in log_prefix stands for any number of seconds)."""
        reply, line = self.ask(d, request)
        self.assertEqual(reply_action(reply), action,
                         "%r -> %r (log: %s)" % (request["client_name"],
                                                 reply, line))
        rx = re.escape("greyhold: " + log_prefix).replace(
            re.escape("{n}"), r"\d+")
        self.assertRegex(line, "^" + rx)
        for text in absent:
            self.assertNotIn(text, line)
        return reply, line

    def wait_delay(self):
        """Sleep until DELAY whole seconds have passed since the second
        the latest first attempt was recorded in (the daemon counts whole
        seconds: the first attempts start just after a second boundary,
        align_to_second(), so this is seldom much over DELAY)."""
        sleep_until(math.floor(time.time()) + DELAY + 0.15)


class PoolRetries(SmartCase):

    def test_pool_retry_from_another_address_passes(self):
        d = self.smart_daemon()
        # Office 365 style: SPF proves b@cust.test through _spf.pool.test.
        pool1 = req("100.70.0.7", "o1.pool.test", "b@cust.test")
        pool2 = req("100.71.3.9", "o9.pool.test", "b@cust.test")
        # Mailchimp style: the return path names the sending host; no SPF.
        mc1 = req("100.72.1.1", "mail123.atl31.mcsv.test",
                  "bounce-x1@mail123.atl31.mcsv.test")
        mc2 = req("100.73.2.2", "mail200.atl11.mcsv.test",
                  "bounce-x1@mail200.atl11.mcsv.test")
        # Another recipient: grouped only with itself.
        pool_other = req("100.71.3.9", "o9.pool.test", "b@cust.test",
                         "carol@example.com")
        align_to_second()
        self.expect(d, pool1, "DEFER_IF_PERMIT", "action=greylist, "
                    "reason=new, client_name=o1.pool.test")
        self.expect(d, mc1, "DEFER_IF_PERMIT", "action=greylist, "
                    "reason=new, client_name=mail123.atl31.mcsv.test")
        # Too early from a third address of the pool (another /24 again):
        # the same triplet, not a new one.  (Not from pool2's network: that
        # would record pool2's own triplet, which then passes by itself.)
        self.expect(d, req("100.71.200.9", "o4.pool.test", "b@cust.test"),
                    "DEFER_IF_PERMIT", "action=greylist, reason=early-retry ("
                    "{n}s missing), client_name=o4.pool.test")
        self.wait_delay()
        self.expect(d, pool2, "DUNNO", "action=pass, reason=triplet found, "
                    "delay={n}, identity=name:pool.test, client_name="
                    "o9.pool.test, client_address=100.71.3.9, "
                    "sender=b@cust.test")
        self.expect(d, mc2, "DUNNO", "action=pass, reason=triplet found, "
                    "delay={n}, identity=name:mcsv.test, ")
        self.expect(d, pool_other, "DEFER_IF_PERMIT",
                    "action=greylist, reason=new,")


class NoGrouping(SmartCase):

    def test_dynamic_bots_and_snowshoe_are_not_grouped(self):
        d = self.smart_daemon()
        pairs = [
            # Dynamic-looking names (the address in the name).
            (req("100.64.5.6", "c-100-64-5-6.hsd1.ca.comcast.test",
                 "joe@comcast.test"),
             req("100.65.7.8", "c-100-65-7-8.hsd1.ca.comcast.test",
                 "joe@comcast.test")),
            # A bot forging a sender whose SPF fails for it.
            (req("100.90.1.1", "bot1.botnet.test", "b@cust.test"),
             req("100.91.2.2", "bot7.botnet.test", "b@cust.test")),
            # ... and one whose SPF is none (no record).
            (req("100.92.1.1", "bot1.botnet.test", "x@nospf.test"),
             req("100.93.2.2", "bot7.botnet.test", "x@nospf.test")),
            # Snowshoe: verified names, SPF passes through the sender's own
            # record, but the sender is not the names' domain.
            (req("100.100.1.1", "s1.snow.test", "news@brand1.test"),
             req("100.101.1.1", "s2.snow.test", "news@brand1.test")),
        ]
        align_to_second()
        for a, _ in pairs:
            self.expect(d, a, "DEFER_IF_PERMIT", "action=greylist, "
                        "reason=new, client_name=%s" % a["client_name"])
        self.wait_delay()
        for _, b in pairs:
            self.expect(d, b, "DEFER_IF_PERMIT", "action=greylist, "
                        "reason=new, client_name=%s" % b["client_name"],
                        absent=["identity="])
        # The snowshoe sender is not trusted either, though SPF passes.
        self.expect(d, req("100.100.1.1", "s1.snow.test", "news@brand1.test",
                           "dave@example.com"), "DEFER_IF_PERMIT",
                    "action=greylist, reason=new,")
        # The first attempts themselves still pass after the delay.
        self.expect(d, pairs[0][0], "DUNNO",
                    "action=pass, reason=triplet found,",
                    absent=["identity="])


class Trust(SmartCase):

    def test_spf_proven_own_server_is_trusted(self):
        d = self.smart_daemon()
        self.expect(d, req("100.64.1.10", "mail.trusted.test",
                           "a@trusted.test"), "DUNNO",
                    "action=pass, reason=trusted-spf, identity=name:"
                    "trusted.test, client_name=mail.trusted.test, "
                    "client_address=100.64.1.10, sender=a@trusted.test")
        # Outside the record's range: SPF fails, greylisted as usual.
        self.expect(d, req("100.64.2.99", "mail2.trusted.test",
                           "a@trusted.test"), "DEFER_IF_PERMIT",
                    "action=greylist, reason=new,")
        # Records that also pass for 192.0.2.1 prove nothing.
        self.expect(d, req("100.64.2.10", "mail.open.test", "a@open.test"),
                    "DEFER_IF_PERMIT", "action=greylist, reason=new,")
        self.expect(d, req("198.18.0.10", "mail.half.test", "a@half.test"),
                    "DEFER_IF_PERMIT", "action=greylist, reason=new,")
        # ...and so does a range wider than a /8 that misses 192.0.2.1.
        self.expect(d, req("100.64.2.11", "mail.lowhalf.test",
                           "a@lowhalf.test"),
                    "DEFER_IF_PERMIT", "action=greylist, reason=new,")

    def test_overlong_sender_is_not_judged_by_a_cut(self):
        """A sender longer than any valid one (SPF_SENDER_MAX, 320 bytes)
        whose first 320 bytes end in "@trusted.test": its domain is
        trusted.test.evil.test, which proves nothing, so it is greylisted
        (not trusted as trusted.test's own server)."""
        d = self.smart_daemon()
        local = "x" * (320 - len("@trusted.test"))
        sender = local + "@trusted.test.evil.test"
        self.expect(d, req("100.64.1.10", "mail.trusted.test", sender),
                    "DEFER_IF_PERMIT", "action=greylist, reason=new, "
                    "client_name=mail.trusted.test", absent=["identity="])

    def test_spf_mechanisms_through_unbound(self):
        d = self.smart_daemon()
        trusted = [
            ("100.64.3.10", "mail.redir.test", "a@redir.test"),    # redirect
            ("100.64.4.10", "mail.inc.test", "a@inc.test"),   # include+macro
            ("100.64.5.20", "mx1.mxd.test", "a@mxd.test"),          # mx
            ("100.64.6.30", "out.arec.test", "a@arec.test"),        # a:
            ("100.64.9.10", "mail.ch10.test", "a@ch10.test"),   # 10 lookups
        ]
        for client, name, sender in trusted:
            org = sender.split("@")[1]
            self.expect(d, req(client, name, sender), "DUNNO",
                        "action=pass, reason=trusted-spf, identity=name:%s, "
                        "client_name=%s" % (org, name))
        # The macro's name for another address does not exist: no pass.
        self.expect(d, req("100.64.4.11", "mail2.inc.test", "a@inc.test"),
                    "DEFER_IF_PERMIT", "action=greylist, reason=new,")
        # 11 DNS-querying terms: permerror, plain greylisting.
        self.expect(d, req("100.64.7.10", "mail.chain.test", "a@chain.test"),
                    "DEFER_IF_PERMIT", "action=greylist, reason=new, "
                    "client_name=mail.chain.test")


class DnsTrouble(SmartCase):

    TRUSTED = ("100.64.8.10", "mail.trunc.test", "a@trunc.test")

    def server(self):
        srv = dnsserver.DnsServer()
        self.addCleanup(srv.stop)
        return srv

    def test_silent_server_costs_at_most_the_budget(self):
        srv = self.server()
        srv.add("trunc.test", TXT, behaviour=dnsserver.SILENT)
        srv.start()
        d = self.smart_daemon(["-o", "dns_budget=1s", "-o",
                               "dns_timeout=1s"], resolver=srv.address)
        mark = d.log_mark()
        stuck = self.connect(d)
        t0 = time.monotonic()
        stuck.send_request(req(*self.TRUSTED))
        # Meanwhile another request, whose lookups are answered, is not
        # held up by the stuck one.
        self.expect(d, req("100.64.8.11", "x.plain.test", "a@plain.test"),
                    "DEFER_IF_PERMIT", "action=greylist, reason=new, "
                    "client_name=x.plain.test")
        self.assertLess(time.monotonic() - t0, 0.5 * harness.timeout_scale())
        reply = stuck.read_reply()
        elapsed = time.monotonic() - t0
        self.assertTrue(reply.startswith(GREYLISTED), reply)
        line = d.wait_log(r"^greyhold: action=.*client_name=mail\.trunc",
                          mark)
        self.assertTrue(line.startswith("greyhold: action=greylist, "
                                        "reason=new, client_name="
                                        "mail.trunc.test"), line)
        self.assertGreaterEqual(srv.queries("trunc.test", TXT), 1)
        # Waited for the budget (the server is silent), not much longer.
        self.assertGreater(elapsed, 0.8)
        self.assertLess(elapsed, 1.0 + 1.0 * harness.timeout_scale())

    def test_pending_evidence_across_reload_reset_and_stop(self):
        """While a request waits for its evidence: a reload keeps it (the
        answer comes), a connection reset by the client drops it (no
        answer, nothing else disturbed), and SIGTERM answers it before
        the daemon exits cleanly.  A sanitizer build fails on any
        use-after-free of the slot, the connection or the evidence."""
        import signal
        srv = self.server()
        srv.add("trunc.test", TXT, behaviour=dnsserver.SILENT)
        srv.start()
        d = self.smart_daemon(["-o", "dns_budget=1s", "-o",
                               "dns_timeout=1s", "-o", "dnsbl=bl.test"],
                              resolver=srv.address)
        mark = d.log_mark()
        reloaded = self.connect(d)
        reloaded.send_request(req("100.64.21.10", "mail.trunc.test",
                                  "a@trunc.test"))
        time.sleep(0.2)
        d.send_signal(signal.SIGHUP)
        reset = self.connect(d)
        reset.send_request(req("100.64.22.10", "mail.trunc.test",
                               "a@trunc.test"))
        time.sleep(0.2)
        # RST, not FIN: the daemon closes the connection at once.
        reset.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                              b"\x01\x00\x00\x00\x00\x00\x00\x00")
        reset.close()
        self.assertTrue(reloaded.read_reply().startswith(GREYLISTED))
        d.wait_log(r"configuration reloaded", mark)

        # The negative cache now answers trunc.test at once: a silent
        # name of its own keeps the next request waiting.
        srv.add("slow.test", TXT, behaviour=dnsserver.SILENT)
        stopped = self.connect(d)
        stopped.send_request(req("100.64.23.10", "mail.slow.test",
                                 "a@slow.test"))
        time.sleep(0.2)
        d.send_signal(signal.SIGTERM)
        self.assertTrue(stopped.read_reply().startswith(GREYLISTED))
        self.assertEqual(d.wait(10 * harness.timeout_scale()), 0)
        d.check_sanitizer_log()
        log = d.log_since(mark)
        self.assertIn("client_address=100.64.21.10", log)
        self.assertIn("client_address=100.64.23.10", log)
        self.assertNotIn("client_address=100.64.22.10", log)

    def test_refused_resolver_decides_at_once(self):
        d = self.smart_daemon(resolver=harness.NO_DNS_RESOLVER)
        t0 = time.monotonic()
        self.expect(d, req("100.64.1.10", "mail.trusted.test",
                           "a@trusted.test"), "DEFER_IF_PERMIT",
                    "action=greylist, reason=new, "
                    "client_name=mail.trusted.test")
        self.assertLess(time.monotonic() - t0,
                        0.5 * harness.timeout_scale())

    def test_truncated_udp_answer_is_fetched_over_tcp(self):
        srv = self.server()
        srv.add("trunc.test", TXT,
                [dnsserver.txt("v=spf1 ip4:100.64.8.0/24 -all")],
                behaviour=dnsserver.TRUNCATE_UDP)
        srv.start()
        d = self.smart_daemon(resolver=srv.address)
        self.expect(d, req(*self.TRUSTED), "DUNNO",
                    "action=pass, reason=trusted-spf, "
                    "identity=name:trunc.test, client_name=mail.trunc.test")
        self.assertGreaterEqual(srv.queries("trunc.test", TXT, "udp"), 1)
        self.assertGreaterEqual(srv.queries("trunc.test", TXT, "tcp"), 1)


    def test_due_refresh_of_a_passed_triplet_does_not_wait_for_dns(self):
        # A passed triplet whose hourly refresh is due, and one whose
        # retry is a first pass: the first needs a write but no evidence
        # could change it, the second still waits (a blocklist could
        # lengthen its delay).  The resolver never answers.
        srv = self.server()
        srv.add("trunc.test", TXT, behaviour=dnsserver.SILENT)
        srv.start()
        dbdir = os.path.join(self.tmpdir(), "db")
        os.mkdir(dbdir, 0o700)
        now = int(time.time())
        dump = ("greyhold-dump 1\n"
                "T\t%d\t%d\t1\t100.64.8.0/24\ta@trunc.test\tknown@example.com\n"
                "T\t%d\t%d\t0\t100.64.8.0/24\ta@trunc.test\tfirst@example.com\n"
                % (now - 20000, now - 7200, now - 600, now - 600))
        load = subprocess.run([harness.ctl_bin(), "-c", "/dev/null", "--db",
                               dbdir, "load"], input=dump,
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(load.returncode, 0, load.stderr)
        d = self.smart_daemon(["-o", "dns_budget=2s", "-o", "dns_timeout=2s"],
                              resolver=srv.address, dbdir=dbdir)
        t0 = time.monotonic()
        self.expect(d, req("100.64.8.10", "mail.trunc.test", "a@trunc.test",
                           "known@example.com"), "DUNNO",
                    "action=pass, reason=triplet found, client_name=")
        self.assertLess(time.monotonic() - t0, 0.5 * harness.timeout_scale())
        t0 = time.monotonic()
        self.expect(d, req("100.64.8.10", "mail.trunc.test", "a@trunc.test",
                           "first@example.com"), "DUNNO",
                    "action=pass, reason=triplet found, delay={n}, "
                    "client_name=")
        self.assertGreater(time.monotonic() - t0, 1.5)


class DnsLists(SmartCase):

    def test_allow_and_blocklists_and_their_metrics(self):
        port = harness.free_port()
        d = self.smart_daemon(["-o", "dnswl=wl.test:2", "-o", "dnsbl=bl.test",
                               "-o", "dnsbl_delay=45s", "-o",
                               "metrics_listen=127.0.0.1:%d" % port])
        before = http_get_metrics(port)
        pool1 = req("100.70.0.7", "o1.pool.test", "b@cust.test")
        pool2 = req("100.71.3.9", "o9.pool.test", "b@cust.test")
        align_to_second()
        self.expect(d, pool1, "DEFER_IF_PERMIT", "action=greylist, "
                    "reason=new,")
        # Trust 2 >= 2: allowlisted.
        self.expect(d, req("100.64.10.2", "h.plain.test", "a@plain.test"),
                    "DUNNO", "action=pass, reason=dnswl (wl.test), "
                    "client_name=h.plain.test, client_address=100.64.10.2")
        # Trust 1 < 2, and dnswl.org's "blocked" answer: greylisted.
        # (One /24: a recipient each, or the second is the first's retry.)
        for client in ("100.64.10.1", "100.64.10.3"):
            self.expect(d, req(client, "h.plain.test", "a@plain.test",
                               "u%s@example.com" % client.split(".")[3]),
                        "DEFER_IF_PERMIT", "action=greylist, reason=new, "
                        "client_name=h.plain.test, client_address=%s"
                        % client)
        # The sender's own SPF-proven server, and also on the allowlist,
        # but blocklisted: neither trust applies, and the delay is longer.
        reply, line = self.expect(
            d, req("100.64.11.10", "mail.listed.test", "a@listed.test"),
            "DEFER_IF_PERMIT", "action=greylist, reason=new, "
            "dnsbl=bl.test, client_name=mail.listed.test")
        self.assertEqual(seconds_left(reply), 45, reply)
        self.expect(d, req("100.64.1.10", "mail.trusted.test",
                           "a@trusted.test"), "DUNNO",
                    "action=pass, reason=trusted-spf,")
        self.wait_delay()
        self.expect(d, pool2, "DUNNO", "action=pass, reason=triplet found, "
                    "delay={n}, identity=name:pool.test,")
        # Still listed after the normal delay: not yet.
        reply, line = self.expect(
            d, req("100.64.11.10", "mail.listed.test", "a@listed.test"),
            "DEFER_IF_PERMIT", "action=greylist, reason=early-retry (")
        self.assertRegex(line, r"\(4\ds missing\), dnsbl=bl\.test, "
                         r"client_name=mail\.listed\.test,")
        self.assertGreater(seconds_left(reply), 40, reply)

        after = http_get_metrics(port)
        name = "greyhold_requests_total"
        for reason in ("trusted_spf", "dnswl", "pool"):
            self.assertEqual(metric(after, name, action="pass", reason=reason)
                             - metric(before, name, action="pass",
                                      reason=reason), 1, reason)
        for series in ("greyhold_dns_lookups_total",
                       "greyhold_dns_queries_total"):
            self.assertGreater(metric(after, series), metric(before, series),
                               series)
        self.assertGreater(metric(after, "greyhold_dns_cache_hits_total"), 0)


class SharedRedis(SmartCase):

    def test_pool_retry_on_another_mx_passes(self):
        import test_redis
        test_redis.require_redis()
        workdir = self.tmpdir()
        redis = test_redis.RedisServer(workdir)
        self.addCleanup(redis.stop)
        redis.start()
        store = ["-o", "store=%s" % redis.url()]
        mx_a = self.smart_daemon(store)
        mx_b = self.smart_daemon(store)
        align_to_second()
        self.expect(mx_a, req("100.70.0.7", "o1.pool.test", "b@cust.test"),
                    "DEFER_IF_PERMIT", "action=greylist, reason=new,")
        # The other MX knows the triplet (asked from a third pool address).
        self.expect(mx_b, req("100.71.200.9", "o4.pool.test", "b@cust.test"),
                    "DEFER_IF_PERMIT", "action=greylist, reason=early-retry (")
        self.wait_delay()
        self.expect(mx_b, req("100.71.3.9", "o9.pool.test", "b@cust.test"),
                    "DUNNO", "action=pass, reason=triplet found, delay={n}, "
                    "identity=name:pool.test, client_name=o9.pool.test")
        # A third pool address, on MX A, finds the passed name identity.
        self.expect(mx_a, req("100.70.9.9", "o5.pool.test", "b@cust.test"),
                    "DUNNO", "action=pass, reason=triplet found,")


class Privacy(SmartCase):

    def test_pool_retry_passes_and_keys_are_hashed(self):
        d = self.smart_daemon(["-o", "privacy=yes"])
        align_to_second()
        self.expect(d, req("100.70.0.7", "o1.pool.test", "b@cust.test"),
                    "DEFER_IF_PERMIT", "action=greylist, reason=new,")
        self.wait_delay()
        self.expect(d, req("100.71.3.9", "o9.pool.test", "b@cust.test"),
                    "DUNNO", "action=pass, reason=triplet found, delay={n}, "
                    "identity=name:pool.test,")
        dump = subprocess.run([harness.ctl_bin(), "-c", "/dev/null", "--db",
                               d.dbdir, "dump"], capture_output=True,
                              timeout=10)
        self.assertEqual(dump.returncode, 0, dump.stderr)
        self.assertGreaterEqual(len(dump.stdout.splitlines()), 2,
                                dump.stdout)
        d.stop()
        with open(os.path.join(d.dbdir, "data.mdb"), "rb") as f:
            data = f.read()
        for needle in (b"pool", b"cust", b"100.70", b"100.71", b"bob@"):
            self.assertNotIn(needle, dump.stdout)
            self.assertNotIn(needle, data)


if __name__ == "__main__":
    unittest.main(verbosity=2)
