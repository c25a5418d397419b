"""Whitelists through the real daemon: static files, reloads, the live
whitelist driven by greyholdctl, auto-whitelisting and the X-Greylist
header.

Every daemon runs with --delay 2 on a temporary port and database.  Each
request carries its own recipient unless a test means to repeat a triplet,
so one request's deferral never turns into another's pass.  The live
whitelist is polled by the daemon once a second; tests give it 3 s.
"""

import email.utils
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import (GreyholdTestCase, REPLY_RE, align_to_second,  # noqa: E402
                     make_request, reply_action, sleep_until)
from harness import ctl_bin, write_file  # noqa: E402

DELAY = 2
LIVE_WAIT = 3.0         # the daemon polls the live whitelist every second
NOWHERE = "mx.nowhere.example"

_seq = itertools.count(1)


def unique_rcpt(tag="r"):
    return "%s%d@rcpt.example" % (tag, next(_seq))


def req(client, name=NOWHERE, recipient=None, sender="alice@sender.example",
        **kw):
    if recipient is None:
        recipient = unique_rcpt()
    kw.setdefault("reverse_client_name", name)
    return make_request(client_address=client, client_name=name,
                        sender=sender, recipient=recipient, **kw)


class WhitelistCase(GreyholdTestCase):

    def wl_daemon(self, clients="", recipients="", args=(), local=None,
                  **kw):
        """A daemon whose only lists are the given texts (files in its
        workdir); returns (daemon, clients_path, recipients_path)."""
        workdir = self.tmpdir()
        cpath = os.path.join(workdir, "wl_clients")
        rpath = os.path.join(workdir, "wl_recipients")
        write_file(cpath, clients)
        write_file(rpath, recipients)
        if local is not None:
            write_file(cpath + ".local", local)
        d = self.daemon(["--delay", str(DELAY), "--whitelist-clients", cpath,
                         "--whitelist-recipients", rpath] + list(args),
                        workdir=workdir, **kw)
        return d, cpath, rpath

    def ask(self, d, request, client=None):
        """One request; returns (reply, its decision log line)."""
        mark = d.log_mark()
        if client is None:
            reply = d.ask(request)
        else:
            reply = client.request(request)
        self.assertRegex(reply, REPLY_RE)
        # This request's own line: other connections may log meanwhile.
        line = d.wait_log(r"^greyhold: action=.*, recipient=%s$"
                          % re.escape(request["recipient"]), mark)
        return reply, line

    def expect_pass(self, d, request, reason, client=None):
        reply, line = self.ask(d, request, client)
        what = "%s [%s] -> %s" % (request["client_name"],
                                  request["client_address"],
                                  request["recipient"])
        self.assertEqual(reply, "action=DUNNO\n\n", "%s: %r" % (what, reply))
        self.assertTrue(line.startswith("greyhold: action=pass, reason=%s, "
                                        % reason),
                        "%s: log line %r" % (what, line))
        return line

    def expect_defer(self, d, request, reason="new", client=None):
        reply, line = self.ask(d, request, client)
        what = "%s [%s] -> %s" % (request["client_name"],
                                  request["client_address"],
                                  request["recipient"])
        self.assertEqual(reply_action(reply), "DEFER_IF_PERMIT",
                         "%s: %r" % (what, reply))
        self.assertTrue(line.startswith("greyhold: action=greylist, reason=%s"
                                        % reason),
                        "%s: log line %r" % (what, line))
        return line

    def ctl(self, d, *args):
        return subprocess.run([ctl_bin(), "-c", "/dev/null", "--db", d.dbdir]
                              + list(args), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=20,
                              universal_newlines=True)

    def ctl_ok(self, d, *args):
        r = self.ctl(d, *args)
        self.assertEqual(r.returncode, 0, "greyholdctl %s: %s%s"
                         % (" ".join(args), r.stdout, r.stderr))
        return r

    def ctl_json_list(self, d):
        """`greyholdctl --json whitelist list`, parsed."""
        r = subprocess.run([ctl_bin(), "-c", "/dev/null", "--db", d.dbdir,
                            "--json", "whitelist", "list"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=20, universal_newlines=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        try:
            entries = json.loads(r.stdout)
        except ValueError as e:
            self.fail("whitelist list --json is not JSON (%s): %r"
                      % (e, r.stdout))
        self.assertIsInstance(entries, list)
        return entries

    def poll(self, d, make, want, timeout=LIVE_WAIT):
        """Ask make() until the reply's action is `want`; returns (seconds
        it took, reply, log line)."""
        start = time.monotonic()
        while True:
            reply, line = self.ask(d, make())
            if reply_action(reply) == want:
                return time.monotonic() - start, reply, line
            if time.monotonic() - start > timeout:
                self.fail("no %s within %.1fs; last reply %r, log %r"
                          % (want, timeout, reply, line))
            time.sleep(0.1)


# ---- static lists ------------------------------------------------------------

CLIENTS = """\
# greyhold test client list
192.0.2.55
198.18.0.0/15          # CIDR
10.1                   # partial IPv4: /16
trusted.example        # hostname suffix
/^mx\\d+\\.regex\\.example$/
2001:db8:77::/48
"""


class StaticLists(WhitelistCase):

    def test_each_kind_passes_at_once(self):
        workdir = self.tmpdir()
        replaced = os.path.join(workdir, "from_config")
        write_file(replaced, "192.0.2.66\n")
        conf = os.path.join(workdir, "greyhold.conf")
        # The config names a list that --whitelist-clients replaces; its
        # recipient list stays.
        rpath = os.path.join(workdir, "recipients")
        write_file(rpath, "postmaster@\n")
        write_file(conf, "whitelist_clients = %s\nwhitelist_recipients = %s\n"
                   % (replaced, rpath))
        cpath = os.path.join(workdir, "clients")
        write_file(cpath, CLIENTS)
        write_file(cpath + ".local", "203.0.113.77\n")
        d = self.daemon(["--delay", str(DELAY), "--whitelist-clients", cpath],
                        config=conf, workdir=workdir)

        for addr, name in [("192.0.2.55", "unknown"),
                           ("198.19.255.254", "unknown"),
                           ("198.18.0.0", "mx.nowhere.example"),
                           ("10.1.200.1", "unknown"),
                           ("10.1.0.1", "unknown"),
                           ("192.0.2.200", "mx.trusted.example"),
                           ("192.0.2.200", "trusted.example"),
                           ("192.0.2.201", "MX12.Regex.Example"),
                           ("2001:db8:77:1::25", "unknown"),
                           ("203.0.113.77", "unknown")]:
            line = self.expect_pass(d, req(addr, name), "client whitelist")
            self.assertIn("client_name=%s, client_address=%s," % (name, addr),
                          line)
            self.assertNotIn("(live)", line)

        for addr, name, extra in [
                ("192.0.2.66", "unknown", {}),        # list replaced
                ("10.2.0.1", "unknown", {}),          # outside the /16
                ("198.20.0.0", "unknown", {}),        # past the /15
                ("192.0.2.202", "mxa.regex.example", {}),
                ("192.0.2.203", "nottrusted.example", {}),
                ("192.0.2.204", "trusted.example.evil.example", {}),
                # an unverified reverse name never counts
                ("192.0.2.205", "unknown",
                 {"reverse_client_name": "mx.trusted.example"}),
                ("192.0.2.99", NOWHERE, {})]:
            self.expect_defer(d, req(addr, name, **extra))

        for r in ["postmaster@example.com", "PostMaster+x@Example.COM"]:
            line = self.expect_pass(d, req("192.0.2.99", recipient=r),
                                    "recipient whitelist")
            self.assertNotIn("(live)", line)
        self.expect_defer(d, req("192.0.2.99", recipient="postmasterx@a.example"))

    def test_bad_line_at_start_is_fatal(self):
        workdir = self.tmpdir()
        cpath = os.path.join(workdir, "clients")
        argv = [harness.greyhold_bin(), "-f", "-c", "/dev/null",
                "--dbdir", os.path.join(workdir, "db"),
                "-o", "resolver=" + harness.NO_DNS_RESOLVER,
                "--inet", "127.0.0.1:%d" % harness.free_port(),
                "--delay", str(DELAY), "--whitelist-clients", cpath]
        cases = [
            ("192.0.2.1\n# ok\n300.1.1.1\n", None, "%s:3:" % cpath),
            ("192.0.2.1\n", "example.com\n# fine\n1.2.3.4/33\n",
             "%s.local:3:" % cpath),
            ("/(unclosed/\n", None, "%s:1:" % cpath),
        ]
        for main, local, where in cases:
            with self.subTest(where=where):
                write_file(cpath, main)
                if local is not None:
                    write_file(cpath + ".local", local)
                elif os.path.exists(cpath + ".local"):
                    os.unlink(cpath + ".local")
                r = subprocess.run(argv, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, timeout=10,
                                   universal_newlines=True)
                self.assertNotEqual(r.returncode, 0, r.stderr)
                self.assertIn(where, r.stderr)

    def test_sighup_applies_edits_and_keeps_lists_on_error(self):
        d, cpath, _ = self.wl_daemon(clients="192.0.2.55\n")
        self.expect_defer(d, req("192.0.2.77"))

        write_file(cpath, "192.0.2.55\n192.0.2.77\n")
        mark = d.log_mark()
        d.send_signal(signal.SIGHUP)
        d.wait_log(r"configuration reloaded", mark)
        self.expect_pass(d, req("192.0.2.77"), "client whitelist")

        # A broken file: the error names FILE:LINE, the old lists stay
        # whole (no entry of the new file before the bad line applies).
        write_file(cpath, "192.0.2.55\n192.0.2.77\n192.0.2.88\n300.1.1.1\n")
        mark = d.log_mark()
        d.send_signal(signal.SIGHUP)
        line = d.wait_log(r"reload failed", mark)
        self.assertIn("%s:4:" % cpath, line)
        self.assertTrue(d.running())
        self.expect_pass(d, req("192.0.2.77"), "client whitelist")
        self.expect_pass(d, req("192.0.2.55"), "client whitelist")
        self.expect_defer(d, req("192.0.2.88"))

        write_file(cpath, "192.0.2.88\n")
        mark = d.log_mark()
        d.send_signal(signal.SIGHUP)
        d.wait_log(r"configuration reloaded", mark)
        self.expect_pass(d, req("192.0.2.88"), "client whitelist")
        self.expect_defer(d, req("192.0.2.77"))


# ---- live whitelist ------------------------------------------------------------

class LiveWhitelist(WhitelistCase):

    def test_add_list_del(self):
        d, _, _ = self.wl_daemon()
        self.expect_defer(d, req("198.51.100.7"))

        r = self.ctl_ok(d, "whitelist", "add", "client", "198.51.100.0/24",
                        "--comment", "partner relay")
        self.assertIn("198.51.100.0/24", r.stdout)
        self.ctl_ok(d, "whitelist", "add", "recipient", "vip@example.com")
        took, _, line = self.poll(d, lambda: req("198.51.100.7"), "DUNNO")
        self.assertIn("reason=client whitelist (live), ", line)
        print("\n  live add applied after %.2fs" % took, end=" ")
        self.expect_pass(d, req("198.51.100.250"), "client whitelist (live)")
        self.expect_pass(d, req("192.0.2.99", recipient="VIP+x@example.com"),
                         "recipient whitelist (live)")
        self.expect_defer(d, req("198.51.101.1"))

        entries = self.ctl_json_list(d)
        by_entry = {(e["kind"], e["entry"]): e for e in entries}
        self.assertIn(("client", "198.51.100.0/24"), by_entry)
        self.assertIn(("recipient", "vip@example.com"), by_entry)
        e = by_entry[("client", "198.51.100.0/24")]
        self.assertEqual(e["comment"], "partner relay")
        self.assertEqual(e["expires"], 0)
        self.assertFalse(e["expired"])
        self.assertLessEqual(abs(e["added"] - time.time()), 60)

        self.ctl_ok(d, "whitelist", "del", "client", "198.51.100.0/24")
        took, _, line = self.poll(d, lambda: req("198.51.100.7"),
                                  "DEFER_IF_PERMIT")
        print("del applied after %.2fs" % took, end=" ")
        self.assertTrue(line.startswith("greyhold: action=greylist"), line)
        # the recipient entry is untouched
        self.expect_pass(d, req("192.0.2.99", recipient="vip@example.com"),
                         "recipient whitelist (live)")

    def test_ctl_errors(self):
        d, _, _ = self.wl_daemon()
        r = self.ctl(d, "whitelist", "del", "client", "192.0.2.1")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        for bad in [("client", "1.2.3.4/33"), ("client", "300.1.1.1"),
                    ("recipient", "foo@bar@baz"), ("client", "/(unclosed/"),
                    ("sender", "192.0.2.1")]:
            with self.subTest(entry=bad):
                r = self.ctl(d, "whitelist", "add", *bad)
                self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
                self.assertTrue(r.stderr.strip(), "no error message")
        r = self.ctl(d, "whitelist", "add", "client", "192.0.2.1",
                     "--expires", "soon")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        # nothing was stored by the failed commands
        self.assertEqual(self.ctl_json_list(d), [])
        # the daemon is unaffected
        self.expect_defer(d, req("192.0.2.1"))

    def test_entry_expires(self):
        d, _, _ = self.wl_daemon()
        added = time.time()
        self.ctl_ok(d, "whitelist", "add", "client", "100.64.0.0/24",
                    "--expires", "2s")
        self.poll(d, lambda: req("100.64.0.9"), "DUNNO")
        took, _, _ = self.poll(d, lambda: req("100.64.0.9"),
                               "DEFER_IF_PERMIT", timeout=5.0)
        gone = time.time() - added
        print("\n  2s entry stopped matching %.2fs after the add" % gone,
              end=" ")
        # Whole seconds: expiry is 1-2 s after the add, noticed within 1 s.
        self.assertGreaterEqual(gone, 1.0)
        entries = self.ctl_json_list(d)
        self.assertEqual(len(entries), 1, entries)
        self.assertTrue(entries[0]["expired"], entries)
        self.assertGreater(entries[0]["expires"], 0)


# ---- auto-whitelisting -----------------------------------------------------------

class AutoWhitelist(WhitelistCase):

    def pass_once(self, d, client):
        """Greylist one triplet of client and let its retry pass."""
        align_to_second(0.1)
        first = req(client, recipient="first@rcpt.example")
        self.expect_defer(d, first)
        sleep_until(time.time() + DELAY + 0.05)
        self.expect_pass(d, first, "triplet found")

    def test_one_pass_whitelists_client(self):
        d, _, _ = self.wl_daemon(args=["--auto-whitelist-clients=1"])
        self.pass_once(d, "192.0.2.120")
        # new triplets from the client (and its /24, keyed like triplets)
        self.expect_pass(d, req("192.0.2.120"), "client AWL")
        self.expect_pass(d, req("192.0.2.120", sender="other@x.example"),
                         "client AWL")
        self.expect_pass(d, req("192.0.2.121"), "client AWL")
        self.expect_defer(d, req("192.0.3.120"))

    def test_default_five_passes_needed(self):
        d, _, _ = self.wl_daemon()
        self.pass_once(d, "192.0.2.130")
        self.expect_defer(d, req("192.0.2.130"))

    def test_zero_disables(self):
        d, _, _ = self.wl_daemon(args=["--auto-whitelist-clients=0"])
        self.pass_once(d, "192.0.2.140")
        self.expect_defer(d, req("192.0.2.140"))


# ---- X-Greylist header -------------------------------------------------------------

PREPEND_RE = re.compile(
    r"\Aaction=PREPEND X-Greylist: delayed (\d+) seconds by greyhold-(\S+) "
    r"at (\S+); ((?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d "
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
    r"\d\d:\d\d:\d\d \+0000)\n\n\Z")


class XGreylistHeader(WhitelistCase):

    def test_once_per_message(self):
        host = "gh-test.example"
        d, _, _ = self.wl_daemon(args=["--x-greylist-header",
                                       "-o", "hostname=%s" % host])
        client, sender = "192.0.2.150", "bounce@lists.example"
        r = ["a@rcpt.example", "b@rcpt.example", "c@rcpt.example"]

        def msg(recipient, instance):
            return req(client, sender=sender, recipient=recipient,
                       instance=instance)

        align_to_second(0.1)
        with self.connect(d) as c:
            for x in r:
                self.expect_defer(d, msg(x, "i0"), client=c)
        sleep_until(time.time() + DELAY + 0.05)

        with self.connect(d) as c:
            reply, line = self.ask(d, msg(r[0], "i1"), client=c)
            m = PREPEND_RE.match(reply)
            self.assertIsNotNone(m, reply)
            self.assertGreaterEqual(int(m.group(1)), DELAY)
            self.assertLessEqual(int(m.group(1)), DELAY + 3)
            self.assertEqual(m.group(3), host)
            stamp = email.utils.parsedate_to_datetime(m.group(4)).timestamp()
            self.assertLess(abs(stamp - time.time()), 10)
            self.assertTrue(line.startswith("greyhold: action=pass, "
                                            "reason=triplet found, delay="),
                            line)

            # second recipient of the same message, also its first pass
            line = self.expect_pass(d, msg(r[1], "i1"), "triplet found",
                                    client=c)
            self.assertIn("delay=", line)

            # another message: the header again
            reply, _ = self.ask(d, msg(r[2], "i2"), client=c)
            self.assertRegex(reply, PREPEND_RE)

            # a triplet that passed before gets no header
            self.expect_pass(d, msg(r[0], "i3"), "triplet found", client=c)

    def test_off_by_default(self):
        d, _, _ = self.wl_daemon()
        first = req("192.0.2.160", recipient="x@rcpt.example")
        align_to_second(0.1)
        self.expect_defer(d, first)
        sleep_until(time.time() + DELAY + 0.05)
        self.expect_pass(d, first, "triplet found")


# ---- reload atomicity ------------------------------------------------------------

class Hammer(threading.Thread):
    """Pipelines batches of requests on a few connections and checks each
    reply against what the request may get."""

    STATIC = "192.0.2.55"       # always in the file: always DUNNO
    SOMETIMES = "192.0.2.56"    # in the file every other reload
    LIVE = "198.51.100.7"       # added and deleted live
    NEVER = "192.0.2.99"        # never whitelisted, always a new triplet

    def __init__(self, daemon, conns=3, batch=4):
        super().__init__(daemon=True)
        self.d = daemon
        self.nconns = conns
        self.batch = batch
        self.stop = threading.Event()
        self.sent = 0
        self.answered = 0
        self.errors = []
        self.seen = {}

    def expected(self, client):
        if client == self.STATIC:
            return {"DUNNO"}
        if client == self.NEVER:
            return {"DEFER_IF_PERMIT"}
        return {"DUNNO", "DEFER_IF_PERMIT"}

    def run(self):
        conns = []
        clients = [self.STATIC, self.NEVER, self.SOMETIMES, self.LIVE]
        try:
            for _ in range(self.nconns):
                conns.append(self.d.client())
            k = 0
            while not self.stop.is_set() and len(self.errors) < 5:
                for c in conns:
                    asked = []
                    for _ in range(self.batch):
                        client = clients[k % len(clients)]
                        k += 1
                        c.send_request(req(client, recipient=unique_rcpt("h")))
                        asked.append(client)
                        self.sent += 1
                    for client in asked:
                        reply = c.read_reply(timeout=10)
                        self.answered += 1
                        if not REPLY_RE.match(reply):
                            self.errors.append("malformed %r" % reply)
                            continue
                        action = reply_action(reply)
                        self.seen.setdefault(client, set()).add(action)
                        if action not in self.expected(client):
                            self.errors.append("%s got %r" % (client, reply))
        except Exception as e:       # a missing reply or a closed connection
            self.errors.append("%s: %s" % (type(e).__name__, e))
        finally:
            for c in conns:
                c.close()


class ReloadAtomicity(WhitelistCase):

    def test_reloads_and_live_changes_under_load(self):
        d, cpath, _ = self.wl_daemon(clients="192.0.2.55\n")
        h = Hammer(d)
        mark = d.log_mark()
        h.start()
        self.addCleanup(h.stop.set)
        try:
            for i in range(10):
                write_file(cpath, "192.0.2.55\n192.0.2.56\n" if i % 2 == 0
                           else "# odd\n192.0.2.55\n")
                d.send_signal(signal.SIGHUP)
                if i % 2 == 0:
                    self.ctl_ok(d, "whitelist", "add", "client",
                                "198.51.100.0/24")
                else:
                    self.ctl_ok(d, "whitelist", "del", "client",
                                "198.51.100.0/24")
                time.sleep(0.25)
            time.sleep(0.5)
        finally:
            h.stop.set()
            h.join(20)
        self.assertFalse(h.is_alive(), "hammer thread stuck")
        self.assertEqual(h.errors, [])
        self.assertEqual(h.answered, h.sent)
        self.assertGreater(h.sent, 100)
        print("\n  %d requests answered during 10 reloads and 10 live changes"
              % h.answered, end=" ")
        # every reload happened (none lost while busy)
        deadline = time.monotonic() + 5
        while (d.log_since(mark).count("configuration reloaded") < 10
               and time.monotonic() < deadline):
            time.sleep(0.05)
        self.assertEqual(d.log_since(mark).count("configuration reloaded"),
                         10)
        self.assertNotIn("reload failed", d.log_since(mark))
        self.assertTrue(d.running())
        self.expect_pass(d, req(Hammer.STATIC), "client whitelist")


if __name__ == "__main__":
    harness.main()
