"""greyholdctl through the real binaries, against a database a running
daemon writes at the same time.

greyholdctl is taken from the directory of GREYHOLD_BIN.  Each test runs
its own daemon on a temporary port and database, with a config file that
both the daemon and greyholdctl read (so both key and decide alike).
Test records are put in with `load` (times chosen by the test) or made by
the daemon from requests.

The postgrey tests run Debian's postgrey and db_dump/db_load (packages
postgrey and db-util); they are skipped, saying why, when those are not
installed.  postgrey is started by this test only, on a free port, and
stopped by its process id; its own policy_test_time attribute back-dates
the history it learns, so no test waits for a greylisting delay.
"""

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import (GreyholdTestCase, REPLY_RE, free_port,  # noqa: E402
                     make_request, reply_action)
from harness import ctl_bin, percentile, write_file  # noqa: E402
import unbound_server  # noqa: E402

HEADER = "greyhold-dump 1\n"
DAY = 86400


def parse_dump(text):
    """Dump text -> list of tuples (without the header)."""
    lines = text.split("\n")
    assert lines[0] == HEADER.strip(), lines[0]
    return [tuple(line.split("\t")) for line in lines[1:] if line]


def t_line(first, last, passes, client, sender, rcpt):
    return "T\t%d\t%d\t%d\t%s\t%s\t%s\n" % (first, last, passes, client,
                                            sender, rcpt)


def c_line(first, last, passes, client):
    return "C\t%d\t%d\t%d\t%s\n" % (first, last, passes, client)


def is_pass(reply):
    return reply_action(reply) in ("DUNNO", "PREPEND")


class CtlCase(GreyholdTestCase):
    """A daemon with a config file, and greyholdctl on the same database."""

    def setUp(self):
        self.workdir = self.tmpdir()
        self.wl_clients = os.path.join(self.workdir, "wl_clients")
        self.wl_rcpts = os.path.join(self.workdir, "wl_recipients")
        write_file(self.wl_clients, "")
        write_file(self.wl_rcpts, "")

    def config(self, **settings):
        """Write the config both sides read; returns its path.  It names
        a resolver (by default one where nothing listens), so neither the
        daemon nor greyholdctl check ever asks the system's."""
        values = {"delay": "2s", "auto_whitelist_clients": "2",
                  "whitelist_clients": self.wl_clients,
                  "whitelist_recipients": self.wl_rcpts,
                  "resolver": harness.NO_DNS_RESOLVER}
        values.update(settings)
        path = os.path.join(self.workdir, "greyhold.conf")
        write_file(path, "".join("%s = %s\n" % kv for kv in values.items()))
        return path

    def start(self, **settings):
        self.conf = self.config(**settings)
        self.d = self.daemon(workdir=self.workdir, config=self.conf)
        self.dbdir = self.d.dbdir
        return self.d

    def ctl(self, *args, db=None, conf=None, stdin=None, timeout=60,
            preexec_fn=None, binary=None):
        argv = [binary or ctl_bin(), "-c", conf or self.conf,
                "--db", db or self.dbdir]
        return subprocess.run(argv + list(args), input=stdin,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=timeout,
                              preexec_fn=preexec_fn)

    def ctl_rc(self, expected, *args, **kw):
        r = self.ctl(*args, **kw)
        self.assertEqual(r.returncode, expected, "greyholdctl %s -> %d\n%s%s"
                         % (" ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def ctl_json(self, *args, expected=0, **kw):
        r = self.ctl_rc(expected, "--json", *args, **kw)
        try:
            return json.loads(r.stdout)
        except ValueError as e:
            self.fail("greyholdctl --json %s: not JSON (%s): %r"
                      % (" ".join(args), e, r.stdout))

    def load(self, text, db=None):
        return self.ctl_json("load", stdin=HEADER + text, db=db)

    def dump(self, db=None):
        return self.ctl_rc(0, "dump", db=db).stdout

    def ask(self, **kw):
        reply = self.d.ask(make_request(**kw))
        self.assertRegex(reply, REPLY_RE)
        return reply


# ---- triplets: list, show, delete, pass, check -------------------------------

class TripletCommands(CtlCase):

    def test_list_and_filters(self):
        self.start()
        now = int(time.time())
        self.ask(client_address="192.0.2.7", sender="Ann+news@Example.org",
                 recipient="Bob@example.com")
        self.ask(client_address="2001:db8::5", sender="",
                 recipient="carl@example.com")
        self.load(t_line(now - 5 * DAY, now - 4 * DAY, 3, "198.51.100.0/24",
                         "old@example.net", "bob@example.com"))
        rows = self.ctl_json("list")
        got = {(r["client"], r["sender"], r["recipient"]): r for r in rows}
        self.assertEqual(set(got), {
            ("192.0.2.0/24", "ann@example.org", "bob@example.com"),
            ("2001:db8::/64", "", "carl@example.com"),
            ("198.51.100.0/24", "old@example.net", "bob@example.com")})
        new = got[("192.0.2.0/24", "ann@example.org", "bob@example.com")]
        self.assertEqual(new["state"], "pending")
        self.assertEqual(new["passes"], 0)
        self.assertLessEqual(abs(new["first_seen"] - now), 5)
        old = got[("198.51.100.0/24", "old@example.net", "bob@example.com")]
        self.assertEqual((old["state"], old["passes"], old["first_seen"]),
                         ("passed", 3, now - 5 * DAY))

        def keys(*args):
            return sorted((r["client"], r["sender"])
                          for r in self.ctl_json("list", *args))
        self.assertEqual(keys("--client", "192.0.2.200"),
                         [("192.0.2.0/24", "ann@example.org")])
        self.assertEqual(keys("--client", "192.0.0.0/16"),
                         [("192.0.2.0/24", "ann@example.org")])
        self.assertEqual(keys("--client", "2001:db8::/32"),
                         [("2001:db8::/64", "")])
        self.assertEqual(keys("--client", "203.0.113.1"), [])
        # the sender filter is normalised like the daemon's keys
        self.assertEqual(keys("--sender", "ANN+other@example.org"),
                         [("192.0.2.0/24", "ann@example.org")])
        self.assertEqual(keys("--sender", "<>"), [("2001:db8::/64", "")])
        self.assertEqual(len(keys("--recipient", "BOB@example.com")), 2)
        self.assertEqual(keys("--state", "passed"),
                         [("198.51.100.0/24", "old@example.net")])
        self.assertEqual(len(keys("--state", "pending")), 2)
        self.assertEqual(keys("--older-than", "3d"),
                         [("198.51.100.0/24", "old@example.net")])
        self.assertEqual(len(keys("--limit", "2")), 2)
        self.assertEqual(keys("--recipient", "bob@example.com", "--state",
                              "pending", "--client", "192.0.2.1"),
                         [("192.0.2.0/24", "ann@example.org")])
        # human table
        r = self.ctl_rc(0, "list")
        self.assertIn("CLIENT", r.stdout.splitlines()[0])
        self.assertEqual(len(r.stdout.splitlines()), 4)
        self.assertIn("<>", r.stdout)
        r = self.ctl_rc(0, "list", "--client", "203.0.113.1")
        self.assertEqual(r.stdout, "no triplets match\n")

    def test_show_delete_pass(self):
        self.start()
        triplet = ("192.0.2.7", "Ann@example.org", "bob@example.com")
        self.assertEqual(reply_action(self.ask(
            client_address=triplet[0], sender=triplet[1],
            recipient=triplet[2])), "DEFER_IF_PERMIT")
        shown = self.ctl_json("show", *triplet)
        self.assertEqual(shown["key"], {"client": "192.0.2.0/24",
                                        "sender": "ann@example.org",
                                        "recipient": "bob@example.com"})
        self.assertEqual(shown["triplet"]["state"], "pending")
        self.assertIsNone(shown["client"])
        r = self.ctl_rc(0, "show", *triplet)
        self.assertIn("pending", r.stdout)
        self.ctl_rc(1, "show", "192.0.2.7", "x@example.org", "y@example.org")

        # delete: the daemon sees a new triplet again
        r = self.ctl_rc(0, "delete", *triplet)
        self.assertIn("deleted", r.stdout)
        self.ctl_rc(1, "delete", *triplet)
        self.ctl_rc(1, "show", *triplet)
        mark = self.d.log_mark()
        self.ask(client_address=triplet[0], sender=triplet[1],
                 recipient=triplet[2])
        self.assertIn("reason=new,", self.d.wait_log("action=", mark))

        # pass: the retry passes at once, before the delay
        self.assertEqual(self.ctl_json("pass", *triplet),
                         {"passed": True, "was_present": True})
        mark = self.d.log_mark()
        self.assertEqual(self.ask(client_address="192.0.2.99",
                                  sender=triplet[1], recipient=triplet[2]),
                         "action=DUNNO\n\n")
        self.assertIn("reason=triplet found", self.d.wait_log("action=", mark))
        # a triplet never seen can be passed too
        self.assertEqual(self.ctl_json("pass", "203.0.113.5", "",
                                       "ops@example.com"),
                         {"passed": True, "was_present": False})
        self.assertEqual(self.ask(client_address="203.0.113.5", sender="",
                                  recipient="ops@example.com"),
                         "action=DUNNO\n\n")

        # pass --client: auto-whitelisted with auto_whitelist_clients passes
        self.assertEqual(self.ctl_json("pass", "--client", "198.51.100.9"),
                         {"client": "198.51.100.0/24", "passes": 2})
        mark = self.d.log_mark()
        self.assertEqual(self.ask(client_address="198.51.100.200",
                                  sender="new@example.org",
                                  recipient="z@example.com"),
                         "action=DUNNO\n\n")
        self.assertIn("reason=client AWL", self.d.wait_log("action=", mark))
        rows = self.ctl_json("list", "--clients", "--state", "listed")
        self.assertEqual([r["client"] for r in rows], ["198.51.100.0/24"])

    def test_check_explains_and_changes_nothing(self):
        write_file(self.wl_clients, "mail.trusted.example\n198.18.0.0/24\n")
        write_file(self.wl_rcpts, "abuse@\n")
        self.start()
        triplet = ("192.0.2.7", "ann@example.org", "bob@example.com")
        before = self.dump()
        x = self.ctl_json("check", *triplet, expected=1)
        self.assertEqual((x["action"], x["reason"]), ("defer", "new"))
        self.assertEqual(x["seconds_left"], 2)
        self.assertTrue(x["reply"].startswith("action=DEFER_IF_PERMIT "))
        self.assertIsNone(x["triplet"])
        self.assertFalse(x["changed"])
        self.assertEqual(self.dump(), before, "check changed the database")

        # the daemon agrees, then check sees the early retry
        self.assertEqual(reply_action(self.ask(
            client_address=triplet[0], sender=triplet[1],
            recipient=triplet[2])), "DEFER_IF_PERMIT")
        x = self.ctl_json("check", *triplet, expected=1)
        self.assertEqual(x["reason"], "early-retry")
        self.assertIn(x["seconds_left"], (1, 2))
        self.assertEqual(x["triplet"]["state"], "pending")
        r = self.ctl_rc(1, "check", *triplet)
        self.assertIn("verdict:    defer (early-retry)", r.stdout)
        self.assertIn("(nothing was changed)", r.stdout)
        time.sleep(2.1)
        x = self.ctl_json("check", *triplet)
        self.assertEqual((x["action"], x["reason"], x["reply"]),
                         ("pass", "triplet found", "action=DUNNO"))
        self.assertEqual(x["triplet"]["passes"], 0, "check wrote a pass")
        self.assertEqual(self.ask(client_address=triplet[0],
                                  sender=triplet[1], recipient=triplet[2]),
                         "action=DUNNO\n\n")

        # whitelists, in the daemon's order, with the rule that matched
        other = ("203.0.113.1", "x@example.org", "y@example.com")
        x = self.ctl_json("check", *other, "--client-name",
                          "mx1.mail.trusted.example")
        self.assertEqual(x["reason"], "client whitelist")
        self.ctl_rc(1, "check", *other, "--client-name", "mail.untrusted.example")
        x = self.ctl_json("check", "198.18.0.9", "x@example.org",
                          "y@example.com")
        self.assertEqual(x["reason"], "client whitelist")
        x = self.ctl_json("check", "203.0.113.1", "x@example.org",
                          "abuse@example.com")
        self.assertEqual(x["reason"], "recipient whitelist")
        self.assertEqual(self.ctl_json("whitelist", "add", "recipient",
                                       "y@example.com", "--comment", "vip"),
                         {"added": True, "kind": "recipient",
                          "entry": "y@example.com"})
        x = self.ctl_json("check", *other)
        self.assertEqual(x["reason"], "recipient whitelist (live)")
        self.assertEqual(x["rule"], "live recipient entry y@example.com: vip")
        x = self.ctl_json("check", *other, "--sasl-username", "ann")
        self.assertEqual(x["reason"], "authenticated")
        self.assertEqual(self.ctl_json("whitelist", "del", "recipient",
                                       "y@example.com"), {"deleted": True})
        self.assertEqual(self.ctl_json("whitelist", "del", "recipient",
                                       "y@example.com", expected=1),
                         {"deleted": False})
        self.ctl_rc(1, "check", *other)
        # the auto-whitelist
        self.ctl_rc(0, "pass", "--client", "203.0.113.77")
        x = self.ctl_json("check", "203.0.113.9", "q@example.org",
                          "r@example.com")
        self.assertEqual(x["reason"], "client AWL")
        self.assertEqual(x["client"]["passes"], 2)
        r = self.ctl_rc(0, "check", "203.0.113.9", "q@example.org",
                        "r@example.com")
        self.assertIn("verdict:    pass (client AWL)", r.stdout)


# ---- expire, forget, stats ----------------------------------------------------

class MaintenanceCommands(CtlCase):

    def test_expire(self):
        self.start(retry_window="1d", max_age="10d")
        now = int(time.time())
        self.load(t_line(now - 2 * DAY, now - 2 * DAY, 0, "192.0.2.0/24",
                         "stale@example.org", "a@example.com") +
                  t_line(now - 30 * DAY, now - 11 * DAY, 4, "192.0.2.0/24",
                         "gone@example.org", "a@example.com") +
                  t_line(now - 60, now - 60, 0, "192.0.2.0/24",
                         "fresh@example.org", "a@example.com") +
                  t_line(now - 30 * DAY, now - 9 * DAY, 4, "192.0.2.0/24",
                         "kept@example.org", "a@example.com") +
                  c_line(now - 20 * DAY, now - 12 * DAY, 9, "198.51.100.0/24") +
                  c_line(now - 20 * DAY, now - DAY, 9, "203.0.113.0/24"))
        before = self.dump()
        self.assertEqual(self.ctl_json("expire", "--dry-run"),
                         {"dry_run": True, "triplets": 2, "clients": 1})
        self.assertEqual(self.dump(), before, "--dry-run changed something")
        r = self.ctl_rc(0, "expire")
        self.assertEqual(r.stdout, "expired 2 triplets and 1 client record\n")
        left = parse_dump(self.dump())
        self.assertEqual(sorted(row[5] for row in left if row[0] == "T"),
                         ["fresh@example.org", "kept@example.org"])
        self.assertEqual([row[4] for row in left if row[0] == "C"],
                         ["203.0.113.0/24"])
        self.assertEqual(self.ctl_json("expire"),
                         {"dry_run": False, "triplets": 0, "clients": 0})

    def test_forget(self):
        self.start()
        now = int(time.time())
        self.load(t_line(now, now, 0, "192.0.2.0/24", "ann@example.org",
                         "bob@example.com") +
                  t_line(now, now, 1, "198.51.100.0/24", "bob@example.com",
                         "carl@example.net") +
                  t_line(now, now, 1, "198.51.100.0/24", "dan@example.org",
                         "erin@example.net") +
                  t_line(now, now, 1, "2001:db8::/64", "dan@example.org",
                         "bob@example.com") +
                  c_line(now, now, 5, "198.51.100.0/24") +
                  c_line(now, now, 5, "203.0.113.0/24"))
        self.ctl_rc(0, "whitelist", "add", "recipient", "bob@example.com")
        # an address: as sender or recipient, any case, any +extension
        got = self.ctl_json("forget", "Bob+lists@Example.com")
        self.assertEqual(got, {"forgotten": "Bob+lists@Example.com",
                               "triplets": 3, "clients": 0,
                               "live_whitelist_entries": 1})
        r = self.ctl_rc(1, "forget", "BOB@example.com")
        self.assertIn("1 live whitelist entry names it", r.stdout)
        left = [row[5:] for row in parse_dump(self.dump()) if row[0] == "T"]
        self.assertEqual(left, [("dan@example.org", "erin@example.net")])
        # an IP: the triplets of every network holding it and its client
        r = self.ctl_rc(0, "forget", "198.51.100.23")
        self.assertEqual(r.stdout, "removed 1 triplet and 1 client record "
                         "about 198.51.100.23\n")
        self.assertEqual([row[0] + row[4] for row in parse_dump(self.dump())
                          if row[0] in "TC"], ["C203.0.113.0/24"])
        self.ctl_rc(1, "forget", "nobody@example.org")

    def test_stats(self):
        port = free_port()
        self.start(metrics_listen="127.0.0.1:%d" % port)
        now = int(time.time())
        self.load(t_line(now - 3 * DAY, now - DAY, 2, "192.0.2.0/24",
                         "a@example.org", "b@example.com") +
                  c_line(now, now, 7, "192.0.2.0/24") +
                  c_line(now, now, 1, "198.51.100.0/24"))
        for i in range(3):
            self.ask(client_address="203.0.113.%d" % i,
                     recipient="r%d@example.com" % i)
        s = self.ctl_json("stats")
        self.assertEqual(s["triplets"]["total"], 4)
        self.assertEqual((s["triplets"]["pending"], s["triplets"]["passed"]),
                         (3, 1))
        self.assertEqual(s["triplets"]["oldest_first_seen"], now - 3 * DAY)
        self.assertEqual((s["clients"]["total"],
                          s["clients"]["auto_whitelisted"]), (2, 1))
        self.assertGreater(s["file_size"], 0)
        self.assertGreater(s["map_size"], 0)
        self.assertLessEqual(s["map_used"], s["map_size"])
        self.assertTrue(s["daemon"]["reachable"], s["daemon"])
        metrics = s["daemon"]["metrics"]
        key = ('greyhold_requests_total{action="greylist",reason="new"}')
        self.assertEqual(metrics.get(key), 3, sorted(metrics))
        r = self.ctl_rc(0, "stats")
        self.assertIn("triplets:        4 (3 pending, 1 passed", r.stdout)
        self.assertIn("live counters from http://127.0.0.1:%d/metrics" % port,
                      r.stdout)
        self.d.stop()
        s = self.ctl_json("stats")
        self.assertFalse(s["daemon"]["reachable"])
        self.assertIn("error", s["daemon"])
        r = self.ctl_rc(0, "stats")
        self.assertIn("metrics not reachable", r.stdout)
        r = self.ctl_rc(0, "stats", conf=self.config())
        self.assertIn("metrics not enabled", r.stdout)


# ---- privacy: keyed hashes ---------------------------------------------------------

class Privacy(CtlCase):

    def test_commands_hash_like_the_daemon(self):
        self.start(privacy="yes")
        triplet = ("192.0.2.7", "Ann+x@Example.org", "bob@example.com")
        self.assertEqual(reply_action(self.ask(
            client_address=triplet[0], sender=triplet[1],
            recipient=triplet[2])), "DEFER_IF_PERMIT")
        rows = self.ctl_json("list")
        self.assertEqual(len(rows), 1)
        self.assertRegex(rows[0]["sender"], r"^h:[0-9a-f]{32}$")
        # filters, show and check hash their arguments as the daemon does
        self.assertEqual(len(self.ctl_json("list", "--sender",
                                           "ann@example.org")), 1)
        self.assertEqual(len(self.ctl_json("list", "--recipient",
                                           "BOB@example.com")), 1)
        self.assertEqual(len(self.ctl_json("list", "--client",
                                           "192.0.2.200")), 1)
        self.assertEqual(self.ctl_json("list", "--client", "192.0.3.1"), [])
        shown = self.ctl_json("show", "192.0.2.99", "ann@example.org",
                              "bob@example.com")
        self.assertTrue(shown["hashed"])
        self.assertEqual(shown["key"]["sender"], "ann@example.org")
        self.assertEqual(shown["triplet"]["state"], "pending")
        x = self.ctl_json("check", *triplet, expected=1)
        self.assertEqual(x["reason"], "early-retry")
        # pass and pass --client write keys the daemon finds
        self.ctl_rc(0, "pass", *triplet)
        self.assertEqual(self.ask(client_address=triplet[0],
                                  sender=triplet[1], recipient=triplet[2]),
                         "action=DUNNO\n\n")
        self.ctl_rc(0, "pass", "--client", "198.51.100.1")
        mark = self.d.log_mark()
        self.assertEqual(self.ask(client_address="198.51.100.2",
                                  recipient="new@example.com"),
                         "action=DUNNO\n\n")
        self.assertIn("reason=client AWL", self.d.wait_log("action=", mark))
        # dump and load keep the hashes
        first = self.dump()
        self.assertIn("\nTH\t", first)
        self.assertIn("\nCH\t", first)
        fresh = os.path.join(self.tmpdir(), "copy")
        self.load(first[len(HEADER):], db=fresh)
        self.assertEqual(self.dump(db=fresh), first)
        # forget finds hashed records by address and by IP
        got = self.ctl_json("forget", "ann@example.org")
        self.assertEqual(got["triplets"], 1)
        self.ask(client_address="192.0.2.8", recipient="x@example.com")
        got = self.ctl_json("forget", "198.51.100.77")
        self.assertEqual((got["triplets"], got["clients"]), (0, 1))
        got = self.ctl_json("forget", "192.0.2.1")
        self.assertEqual((got["triplets"], got["clients"]), (1, 1))
        self.d.stop()
        with open(os.path.join(self.dbdir, "data.mdb"), "rb") as f:
            data = f.read()
        for needle in (b"ann@", b"bob@", b"192.0.2", b"198.51.100",
                       b"example.com"):
            self.assertNotIn(needle, data)


# ---- dump and load --------------------------------------------------------------

class DumpLoad(CtlCase):

    WEIRD = (t_line(100, 200, 0, "192.0.2.0/24", "tab%09in@x.org",
                    "pct%25and%5Cback@y.org") +
             t_line(100, 200, 1, "192.0.2.0/24", "", "utf%C3%A9@y.org") +
             t_line(5, 7, 2, "unknown", "a@x.org", "b@y.org") +
             c_line(1000, 2000, 3, "2001:db8::/64") +
             "W\trecipient\t1000\t0\tpostmaster@\tmoved from %25old%25 host\n"
             "W\tclient\t1000\t99999999999\t198.51.100.0/24\t\n")

    def test_round_trip_into_fresh_dir(self):
        self.start()
        for i in range(20):
            self.ask(client_address="10.0.%d.1" % i,
                     sender="s%d@example.org" % i, recipient="r@example.com")
        self.load(self.WEIRD)
        first = self.dump()
        fresh = os.path.join(self.tmpdir(), "copy")     # does not exist yet
        got = self.load(first[len(HEADER):], db=fresh)
        self.assertEqual((got["records"], got["added"], got["whitelist"]),
                         (24, 24, 2))
        self.assertEqual(self.dump(db=fresh), first)
        # idempotent: a second load changes nothing
        got = self.load(first[len(HEADER):], db=fresh)
        self.assertEqual((got["added"], got["merged"], got["unchanged"]),
                         (0, 0, 24))
        self.assertEqual(self.dump(db=fresh), first)
        # dump to a file (mode 0600), load from a file
        path = os.path.join(self.workdir, "backup.txt")
        got = self.ctl_json("dump", path)
        self.assertEqual((got["triplets"], got["clients"], got["whitelist"]),
                         (23, 1, 2))
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        with open(path) as f:
            self.assertEqual(f.read(), first)
        self.assertEqual(self.ctl_json("load", path, db=fresh)["unchanged"], 24)
        # a dump that cannot be taken leaves an earlier one alone
        self.ctl_rc(2, "dump", path, db=os.path.join(self.workdir, "nodb"))
        with open(path) as f:
            self.assertEqual(f.read(), first)
        self.assertIn("%09", first)
        self.assertNotIn("\\", first)

    def test_merge_rules(self):
        self.start()
        base = t_line(1000, 2000, 1, "192.0.2.0/24", "a@x.org", "b@y.org")
        self.load(base + c_line(1000, 2000, 1, "198.51.100.0/24"))
        got = self.load(
            t_line(500, 1500, 0, "192.0.2.0/24", "a@x.org", "b@y.org") +
            t_line(1500, 3000, 4, "192.0.2.0/24", "a@x.org", "b@y.org") +
            c_line(1500, 1800, 0, "198.51.100.0/24"))
        self.assertEqual((got["added"], got["merged"], got["unchanged"]),
                         (0, 2, 1))
        rows = parse_dump(self.dump())
        self.assertEqual(rows[0], ("T", "500", "3000", "4", "192.0.2.0/24",
                                   "a@x.org", "b@y.org"))
        self.assertEqual(rows[1], ("C", "1000", "2000", "1",
                                   "198.51.100.0/24"))

    def test_load_errors(self):
        self.start()
        good = t_line(1, 2, 0, "192.0.2.0/24", "a@x.org", "b@y.org")
        cases = [
            ("", "no dump header"),
            ("not a dump\n" + good, "not a greyhold dump"),
            ("greyhold-dump 2\n" + good, "version 2 is not supported"),
            (HEADER + "T\t1\t2\t0\t192.0.2.0/24\ta@x.org\n",
             ":2: a T line has 7 fields"),
            (HEADER + good + "T\tx\t2\t0\tc\ts\tr\n", ":3: bad time"),
            (HEADER + "T\t1\t2\t0\tc\ts%zz\tr\n", ":2: field 6: bad %XX"),
            (HEADER + "T\t1\t2\t0\tc\ts\\x\tr\n", "field 6"),
            (HEADER + "T\t1\t2\t0\t\ts\tr\n", "client, sender or recipient"),
            (HEADER + "T\t1\t2\t0\tc%00\ts\tr\n", "contains %00"),
            (HEADER + "X\t1\n", "unknown record type"),
            (HEADER + "W\tsender\t1\t0\te\t\n", "neither client nor"),
            (HEADER + "W\tclient\t1\t0\t1.2.3.4/33\t\n", "whitelist entry"),
            (HEADER + "T\t1\t2\t99999999999\tc\ts\tr\n", "bad time or pass"),
        ]
        for text, message in cases:
            with self.subTest(message=message):
                r = self.ctl_rc(2, "load", stdin=text)
                self.assertIn(message, r.stderr)
        # everything before the bad line was loaded
        r = self.ctl_rc(2, "load", stdin=HEADER + good + "# note\n\nbogus\n")
        self.assertIn("stdin:5: ", r.stderr)
        self.assertIn("the 1 records before it were loaded", r.stderr)
        self.assertEqual(len(parse_dump(self.dump())), 1)
        self.ctl_rc(2, "load", os.path.join(self.workdir, "missing"))


# ---- errors ------------------------------------------------------------------

class Errors(CtlCase):

    def test_usage_errors(self):
        self.start()
        bad = [
            (), ("frobnicate",), ("list", "extra"), ("list", "--state", "x"),
            ("list", "--older-than", "soon"), ("list", "--limit", "0"),
            ("list", "--clients", "--sender", "a@b"),
            ("list", "--clients", "--state", "passed"),
            ("list", "--client", "300.1.2.3/8"), ("list", "--bogus"),
            ("show", "192.0.2.1", "a@b"), ("delete",), ("check", "1.2.3.4"),
            ("pass", "--client", "not-an-ip"), ("pass", "a", "b"),
            ("forget",), ("forget", "example.org"), ("expire", "--now"),
            ("stats", "x"), ("dump", "a", "b"), ("import-postgrey",),
            ("import-postgrey", "--delay", "0", "/tmp"),
            ("whitelist", "add", "sender", "x"),
            ("-o", "no_such_key=1", "list"), ("-o", "delay", "list"),
            ("-o", "delay=soon", "list"),
        ]
        for args in bad:
            with self.subTest(args=args):
                r = self.ctl_rc(2, *args)
                self.assertTrue(r.stderr.strip(), "no error message")
        r = subprocess.run([ctl_bin(), "--bogus"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True)
        self.assertEqual(r.returncode, 2)
        r = self.ctl_rc(2, "list", conf=os.path.join(self.workdir, "nope"))
        self.assertIn("nope", r.stderr)
        # help lists every command
        r = subprocess.run([ctl_bin(), "--help"], stdout=subprocess.PIPE,
                           universal_newlines=True)
        for word in ("list", "show", "check", "delete", "pass", "forget",
                     "expire", "stats", "dump", "load", "import-postgrey",
                     "whitelist add"):
            self.assertIn("  " + word, r.stdout)

    def test_missing_database(self):
        self.conf = self.config()
        missing = os.path.join(self.workdir, "nodb")
        for args in (("list",), ("stats",), ("show", "1.2.3.4", "a", "b"),
                     ("delete", "1.2.3.4", "a", "b"), ("expire",),
                     ("forget", "a@b.c"), ("dump",), ("whitelist", "list")):
            with self.subTest(args=args):
                r = self.ctl_rc(2, *args, db=missing)
                self.assertIn("does not exist", r.stderr)
                self.assertFalse(os.path.exists(missing), "created the dir")
        empty = self.tmpdir()
        r = self.ctl_rc(2, "list", db=empty)
        self.assertIn("no greyhold database", r.stderr)
        self.assertEqual(os.listdir(empty), [], "created files")

    @unittest.skipUnless(os.getuid() == 0, "needs root to run as nobody")
    def test_permission_denied(self):
        self.start()
        os.chmod(self.workdir, 0o755)       # only the dbdir (0700) is closed

        # The build tree may sit in a directory nobody cannot enter (a
        # fresh clone under mktemp -d): run a copy from the open workdir.
        binary = os.path.join(self.workdir, "greyholdctl")
        shutil.copy(ctl_bin(), binary)
        os.chmod(binary, 0o755)

        def as_nobody():
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
        r = self.ctl_rc(2, "list", conf="/dev/null", preexec_fn=as_nobody,
                        binary=binary)
        self.assertIn("Permission denied", r.stderr)

    def test_schema_mismatch(self):
        self.start()
        self.d.stop()
        lock = harness.LmdbWriteLock(self.dbdir)
        try:
            lib = lock.lib
            lock.acquire()

            class Val(ctypes.Structure):
                _fields_ = [("size", ctypes.c_size_t),
                            ("data", ctypes.c_void_p)]
            dbi = ctypes.c_uint()
            self.assertEqual(lib.mdb_dbi_open(lock.txn, b"meta", 0,
                                              ctypes.byref(dbi)), 0)
            kbuf = ctypes.create_string_buffer(b"schema", 6)
            vbuf = ctypes.create_string_buffer(b"\x63\0\0\0", 4)
            k = Val(6, ctypes.cast(kbuf, ctypes.c_void_p))
            v = Val(4, ctypes.cast(vbuf, ctypes.c_void_p))
            self.assertEqual(lib.mdb_put(lock.txn, dbi, ctypes.byref(k),
                                         ctypes.byref(v), 0), 0)
            self.assertEqual(lib.mdb_txn_commit(lock.txn), 0)
            lock.txn = None
        finally:
            lock.close()
        for args in (("list",), ("load",)):
            r = self.ctl_rc(2, *args, stdin=HEADER)
            self.assertIn("schema version 99", r.stderr)


# ---- smart greylisting: check with DNS, identity keys --------------------------

# A real resolver on loopback (never the system's): example.org's own
# server is 100.64.1.10 (mail.example.org); cust.test's SPF includes a
# provider pool's record, whose hosts are o1/o9.pool.test.  The SPF probe
# asks for 192.0.2.1, which no record here covers, so passes are proven.
SMART_DATA = [
    "'example.org. 300 IN TXT \"v=spf1 ip4:100.64.1.0/24 -all\"'",
    "'cust.test. 300 IN TXT \"v=spf1 include:_spf.pool.test -all\"'",
    "'_spf.pool.test. 300 IN TXT \"v=spf1 ip4:198.51.100.0/24 "
    "ip4:203.0.113.0/24 -all\"'",
    '"99.1.64.100.bl.test. 300 IN A 127.0.0.2"',
    '"10.1.64.100.wl.test. 300 IN A 127.0.10.2"',
]


@unittest.skipIf(unbound_server.skip_reason(), unbound_server.skip_reason())
class SmartCheck(CtlCase):
    """check explains identities, SPF and trust with a real unbound on
    loopback, and decides as the daemon (asked the same request) does."""

    @classmethod
    def setUpClass(cls):
        cls.ubdir = tempfile.mkdtemp(prefix="greyhold-it-ub-")
        cls.ub = unbound_server.Unbound(
            cls.ubdir, SMART_DATA,
            zones=["example.org.", "test.", "64.100.in-addr.arpa."])
        cls.ub.start()

    @classmethod
    def tearDownClass(cls):
        cls.ub.stop()
        shutil.rmtree(cls.ubdir, True)

    def start_smart(self, **settings):
        settings.setdefault("resolver", self.ub.address)
        return self.start(**settings)

    def test_trusted_sender_explained_and_the_daemon_agrees(self):
        self.start_smart()
        req = ("100.64.1.10", "ann@example.org", "bob@example.com",
               "--client-name", "mail.example.org")
        before = self.dump()
        x = self.ctl_json("check", *req)
        self.assertEqual((x["action"], x["reason"], x["reply"]),
                         ("pass", "trusted-spf", "action=DUNNO"))
        sm = x["smart"]
        self.assertEqual((sm["name"]["org"], sm["name"]["why"]),
                         ("example.org", "ok"))
        self.assertEqual(sm["sender_org"], "example.org")
        self.assertEqual(sm["spf"]["result"], "pass")
        self.assertTrue(sm["spf"]["proven"])
        self.assertEqual(sm["spf"]["probe"], "fail")
        self.assertEqual(sm["spf"]["authorised_by"], "example.org")
        self.assertIn("ip4:100.64.1.0/24", sm["spf"]["why"])
        self.assertEqual(sm["trust"], "trusted-spf")
        self.assertIn("example.org is the sender's", sm["trust_why"])
        self.assertIsNone(x["identity"])
        self.assertEqual(self.dump(), before, "check changed the database")
        r = self.ctl_rc(0, "check", *req)
        self.assertIn("spf:        pass: ", r.stdout)
        self.assertIn("proven: the probe for a documentation address "
                      "gives fail; authorised by example.org", r.stdout)
        self.assertIn("trust:      trusted-spf: SPF proves the sender",
                      r.stdout)
        self.assertIn("verdict:    pass (trusted-spf)", r.stdout)
        mark = self.d.log_mark()
        self.assertEqual(self.ask(client_address="100.64.1.10",
                                  client_name="mail.example.org",
                                  sender="ann@example.org",
                                  recipient="bob@example.com"),
                         "action=DUNNO\n\n")
        self.assertIn("reason=trusted-spf, identity=name:example.org",
                      self.d.wait_log("action=", mark))

        # Without DNS, or with a resolver that refuses, nothing is proven:
        # plain greylisting, as the daemon does when DNS fails.
        x = self.ctl_json("check", *req, "--no-dns", expected=1)
        self.assertEqual((x["action"], x["reason"]), ("defer", "new"))
        self.assertEqual(x["smart"]["spf"],
                         {"evaluated": False, "why_not": "--no-dns"})
        self.assertFalse(x["smart"]["dns"]["asked"])
        self.assertEqual(x["smart"]["trust"], "greylist")
        # the aligned name needs no DNS: it is an identity all the same
        self.assertEqual([i["identity"] for i in x["identities"]],
                         ["network", "name:example.org"])
        r = self.ctl_rc(1, "check", *req, "--no-dns")
        self.assertIn("spf:        not evaluated (--no-dns)", r.stdout)
        self.assertIn("identity:   name:example.org, sender ann@example.org",
                      r.stdout)
        x = self.ctl_json("-o", "resolver=" + harness.NO_DNS_RESOLVER,
                          "check", *req, expected=1)
        self.assertEqual(x["smart"]["spf"]["result"], "temperror")
        self.assertFalse(x["smart"]["spf"]["proven"])
        self.assertEqual(x["reason"], "new")
        self.assertIn("SPF does not prove the sender", x["smart"]["trust_why"])

    def test_dns_lists_explained(self):
        self.start_smart(dnswl="wl.test:2", dnsbl="bl.test")
        x = self.ctl_json("check", "100.64.1.10", "x@other.test",
                          "bob@example.com")
        self.assertEqual((x["action"], x["reason"]), ("pass", "dnswl (wl.test)"))
        self.assertEqual(x["smart"]["dns"]["lists"], [
            {"zone": "wl.test", "kind": "allow", "answer": "vouches",
             "listed": True},
            {"zone": "bl.test", "kind": "block", "answer": "not listed",
             "listed": False}])
        x = self.ctl_json("check", "100.64.1.99", "x@other.test",
                          "bob@example.com", expected=1)
        self.assertEqual(x["smart"]["dns"]["lists"][1]["answer"], "listed")
        self.assertEqual(x["smart"]["delay"], 30 * 60)
        self.assertIn("bl.test lists the client", x["smart"]["trust_why"])
        self.assertEqual(x["seconds_left"], 30 * 60)
        r = self.ctl_rc(1, "check", "100.64.1.99", "x@other.test",
                        "bob@example.com")
        self.assertIn("blocklist bl.test: listed", r.stdout)

    def test_dynamic_name_gives_no_identity(self):
        self.start_smart()
        x = self.ctl_json("check", "100.64.1.10", "ann@example.org",
                          "bob@example.com", "--client-name",
                          "100-64-1-10.dyn.example.org", expected=1)
        name = x["smart"]["name"]
        self.assertEqual((name["org"], name["why"], name["identity"]),
                         (None, "dynamic", False))
        # SPF proves the sender, but a dynamic name is nobody's server
        self.assertTrue(x["smart"]["spf"]["proven"])
        self.assertEqual(x["smart"]["trust"], "greylist")
        self.assertIn("no name identity (dynamic)", x["smart"]["trust_why"])
        self.assertEqual([i["identity"] for i in x["identities"]],
                         ["network"])
        r = self.ctl_rc(1, "check", "100.64.1.10", "ann@example.org",
                        "bob@example.com", "--client-name",
                        "100-64-1-10.dyn.example.org")
        self.assertIn("name:       none for 100-64-1-10.dyn.example.org "
                      "(dynamic: ", r.stdout)
        x = self.ctl_json("check", "100.64.1.10", "ann@example.org",
                          "bob@example.com", expected=1)
        self.assertEqual(x["smart"]["name"]["why"], "unknown")

    def test_pool_retry_passes_by_its_name_identity(self):
        self.start_smart()
        now = int(time.time())
        # The first attempt came from another address of the pool: its
        # triplet under the name identity was first seen a minute ago.
        self.load(t_line(now - 60, now - 60, 0, "n:pool.test", "b@cust.test",
                         "r@example.com") +
                  t_line(now - 60, now - 60, 0, "198.51.100.0/24",
                         "b@cust.test", "r@example.com"))
        req = ("203.0.113.9", "b@cust.test", "r@example.com",
               "--client-name", "o9.pool.test")
        x = self.ctl_json("check", *req)
        self.assertEqual((x["action"], x["reason"], x["identity"]),
                         ("pass", "triplet found", "name:pool.test"))
        self.assertIsNone(x["triplet"], "the network's triplet is new")
        name = x["smart"]["name"]
        self.assertEqual((name["org"], name["aligned"], name["identity"],
                          name["auto_whitelist"]),
                         ("pool.test", True, True, True))
        self.assertEqual(x["smart"]["spf"]["authorised_by"], "_spf.pool.test")
        ids = {i["identity"]: i for i in x["identities"]}
        self.assertEqual(ids["name:pool.test"]["key"],
                         {"client": "name:pool.test", "sender": "b@cust.test",
                          "recipient": "r@example.com"})
        self.assertEqual(ids["name:pool.test"]["triplet"]["first_seen"],
                         now - 60)
        r = self.ctl_rc(0, "check", *req)
        self.assertIn("verdict:    pass (triplet found) by identity "
                      "name:pool.test", r.stdout)
        self.assertIn("aligned: SPF passed through a record in the name's "
                      "domain", r.stdout)
        # the daemon decides the same
        mark = self.d.log_mark()
        self.assertTrue(is_pass(self.ask(client_address="203.0.113.9",
                                         client_name="o9.pool.test",
                                         sender="b@cust.test",
                                         recipient="r@example.com")))
        self.assertIn("identity=name:pool.test, ",
                      self.d.wait_log("action=pass", mark))
        # that pass recorded the network's triplet as passed too: the next
        # retry is passed by the fast path, before any DNS (a dead
        # resolver changes nothing)
        x = self.ctl_json("-o", "resolver=" + harness.NO_DNS_RESOLVER,
                          "check", *req)
        self.assertEqual((x["reason"], x["identity"]),
                         ("triplet found", None))
        self.assertEqual(x["triplet"]["state"], "passed")
        self.assertTrue(x["smart"]["fast_path"])
        self.assertEqual(x["smart"]["spf"]["evaluated"], False)
        # a pool host never seen, with --no-dns: no SPF, so no alignment
        x = self.ctl_json("check", "198.51.100.77", "c@cust.test",
                          "r@example.com", "--client-name", "o1.pool.test",
                          "--no-dns", expected=1)
        self.assertFalse(x["smart"]["name"]["aligned"])
        self.assertEqual(len(x["identities"]), 1)

    def test_identity_records_in_list_show_delete_forget_stats(self):
        self.start_smart()
        # The daemon records a pool's first attempt under its name too.
        self.assertFalse(is_pass(self.ask(client_address="198.51.100.7",
                                          client_name="o1.pool.test",
                                          sender="b@cust.test",
                                          recipient="r@example.com")))
        now = int(time.time())
        self.load(t_line(now, now, 0, "s:cust.test", "news@cust.test",
                         "r@example.com") +
                  t_line(now, now, 0, "n:pool.test", "news@cust.test",
                         "r@example.com") +
                  c_line(now, now, 1, "n:pool.test"))
        rows = self.ctl_json("list")
        clients = sorted(r["client"] for r in rows)
        self.assertEqual(clients, ["198.51.100.0/24", "name:pool.test",
                                   "name:pool.test", "spf:cust.test"])

        def keys(*args):
            return sorted((r["client"], r["sender"])
                          for r in self.ctl_json("list", *args))
        self.assertEqual(keys("--client", "name:pool.test"),
                         [("name:pool.test", "b@cust.test"),
                          ("name:pool.test", "news@cust.test")])
        self.assertEqual(keys("--client", "n:POOL.test"),
                         keys("--client", "name:pool.test"))
        self.assertEqual(keys("--client", "spf:cust.test"),
                         [("spf:cust.test", "news@cust.test")])
        self.assertEqual(keys("--client", "name:cust.test"), [])
        self.assertEqual(keys("--client", "198.51.100.1"),
                         [("198.51.100.0/24", "b@cust.test")])
        # a sender matches identities' records by its reduced form too
        self.assertEqual(keys("--sender", "b@mail.cust.test"),
                         [("name:pool.test", "b@cust.test")])
        self.assertEqual(len(keys("--sender", "b@cust.test")), 2)
        self.assertEqual([r["client"] for r in
                          self.ctl_json("list", "--clients")],
                         ["name:pool.test"])
        r = self.ctl_rc(0, "list", "--client", "name:pool.test")
        self.assertEqual(len(r.stdout.splitlines()), 3)
        self.assertTrue(r.stdout.splitlines()[1].startswith("name:pool.test "))
        # show and delete take the identity as the client, the sender
        # reduced to its organisational domain as the daemon keys it
        shown = self.ctl_json("show", "name:pool.test",
                              "b@mail.cust.test", "r@example.com")
        self.assertEqual(shown["key"]["client"], "name:pool.test")
        self.assertEqual(shown["key"]["sender"], "b@cust.test")
        self.assertEqual(shown["triplet"]["state"], "pending")
        r = self.ctl_rc(0, "show", "name:pool.test", "b@cust.test",
                        "r@example.com")
        self.assertIn("key:        client name:pool.test, sender b@cust.test",
                      r.stdout)
        # stats counts identity records apart
        st = self.ctl_json("stats")
        self.assertEqual((st["triplets"]["total"],
                          st["triplets"]["name_identity"],
                          st["triplets"]["spf_identity"]), (4, 2, 1))
        self.assertEqual(st["clients"]["name_identity"], 1)
        # forget finds an identity's sender by its reduced form only there
        self.load(t_line(now, now, 0, "192.0.2.0/24", "news@cust.test",
                         "x@example.com"))
        got = self.ctl_json("forget", "news@mail3.cust.test")
        self.assertEqual(got["triplets"], 2)
        self.assertEqual(keys("--sender", "news@cust.test"),
                         [("192.0.2.0/24", "news@cust.test")])
        self.assertEqual(self.ctl_json("delete", "spf:cust.test",
                                       "news@cust.test",
                                       "r@example.com", expected=1),
                         {"deleted": False})
        self.assertEqual(self.ctl_json("delete", "name:pool.test",
                                       "b@cust.test", "r@example.com"),
                         {"deleted": True})
        self.assertEqual(keys("--client", "name:pool.test"), [])
        # forget by IP leaves identity records alone: they hold no address
        self.assertEqual(self.ctl_json("forget", "198.51.100.7")["clients"],
                         0)
        self.assertEqual([r["client"] for r in
                          self.ctl_json("list", "--clients")],
                         ["name:pool.test"])

    def test_dump_load_round_trip_identity_records(self):
        self.start_smart()
        self.assertFalse(is_pass(self.ask(client_address="198.51.100.7",
                                          client_name="o1.pool.test",
                                          sender="b@cust.test",
                                          recipient="r@example.com")))
        self.load(t_line(100, 200, 3, "s:cust.test", "", "r@example.com") +
                  t_line(100, 200, 0, "n:xn--bcher-kva.test",
                         "odd%09sender@cust.test", "r@example.com") +
                  c_line(100, 300, 4, "n:pool.test") +
                  c_line(100, 300, 2, "s:cust.test"))
        first = self.dump()
        self.assertIn("\tn:pool.test\tb@cust.test\tr@example.com\n", first)
        self.assertIn("\nC\t100\t300\t4\tn:pool.test\n", first)
        fresh = os.path.join(self.tmpdir(), "copy")
        got = self.load(first[len(HEADER):], db=fresh)
        self.assertEqual(got["added"], len(parse_dump(first)))
        self.assertEqual(self.dump(db=fresh), first)
        self.assertEqual(self.load(first[len(HEADER):],
                                   db=fresh)["unchanged"],
                         len(parse_dump(first)))
        self.assertEqual(self.dump(db=fresh), first)
        # the daemon's own record is found under the loaded copy's key
        shown = self.ctl_json("show", "name:pool.test", "b@cust.test",
                              "r@example.com", db=fresh)
        self.assertEqual(shown["triplet"]["state"], "pending")

    def test_privacy_hashes_identity_keys_alike(self):
        self.start_smart(privacy="yes")
        self.assertFalse(is_pass(self.ask(client_address="198.51.100.7",
                                          client_name="o1.pool.test",
                                          sender="b@cust.test",
                                          recipient="r@example.com")))
        rows = self.ctl_json("list", "--client", "name:pool.test")
        self.assertEqual(len(rows), 1)
        self.assertRegex(rows[0]["client"], r"^h:[0-9a-f]{32}$")
        self.assertEqual(len(self.ctl_json("list", "--client",
                                           "198.51.100.1")), 1)
        shown = self.ctl_json("show", "name:pool.test", "b@cust.test",
                              "r@example.com")
        self.assertTrue(shown["hashed"])
        self.assertEqual(shown["triplet"]["state"], "pending")
        first = self.dump()
        fresh = os.path.join(self.tmpdir(), "copy")
        self.load(first[len(HEADER):], db=fresh)
        self.assertEqual(self.dump(db=fresh), first)
        time.sleep(2.1)
        x = self.ctl_json("check", "203.0.113.9", "b@cust.test",
                          "r@example.com", "--client-name", "o9.pool.test")
        self.assertEqual(x["identity"], "name:pool.test")
        self.assertTrue(x["hashed"])


# ---- a running daemon under load ------------------------------------------------

class Traffic(threading.Thread):
    """Requests on two connections, as fast as the daemon answers."""

    def __init__(self, d):
        super().__init__(daemon=True)
        self.d = d
        self.stop_event = threading.Event()
        self.samples = []       # (start, latency)
        self.errors = []

    def run(self):
        try:
            clients = [self.d.client(timeout=30) for _ in range(2)]
        except OSError as e:
            self.errors.append("connect: %r" % e)
            return
        i = 0
        try:
            while not self.stop_event.is_set():
                for c in clients:
                    req = make_request(
                        client_address="10.%d.%d.9" % (i % 7, i % 200),
                        sender="s%d@traffic.example" % (i % 3000),
                        recipient="r%d@example.com" % (i % 5))
                    start = time.monotonic()
                    reply = c.request(req, timeout=30)
                    self.samples.append((start, time.monotonic() - start))
                    if (not REPLY_RE.match(reply) or reply_action(reply)
                            not in ("DUNNO", "DEFER_IF_PERMIT")):
                        self.errors.append("bad reply %r" % reply)
                    i += 1
        except Exception as e:      # noqa: BLE001 - reported by the test
            self.errors.append(repr(e))
        finally:
            for c in clients:
                c.close()

    def latencies(self, start=0.0, end=float("inf")):
        return sorted(lat for t, lat in self.samples if start <= t <= end)


class UnderLoad(CtlCase):

    N = 50000

    def bulk_dump(self, now):
        lines = [HEADER]
        for i in range(self.N):
            old = i % 5 == 0        # a fifth is expired
            first = now - 3 * DAY if old else now - 600
            lines.append(t_line(first, first, 0 if old else i % 2,
                                "172.16.%d.0/24" % (i % 250),
                                "user%d@bulk.example" % i,
                                "rcpt%d@example.org" % (i % 97)))
        return "".join(lines)

    def test_cli_while_daemon_serves(self):
        self.start(delay="300s")
        now = int(time.time())
        path = os.path.join(self.workdir, "bulk.txt")
        write_file(path, self.bulk_dump(now))
        traffic = Traffic(self.d)
        traffic.start()
        self.addCleanup(traffic.stop_event.set)
        time.sleep(0.5)
        phases = {}

        def timed(name, *args, expected=0):
            start = time.monotonic()
            r = self.ctl_rc(expected, *args)
            phases[name] = (start, time.monotonic())
            return r

        got = json.loads(timed("load", "--json", "load", path).stdout)
        self.assertEqual(got["added"], self.N)
        rows = json.loads(timed("list", "--json", "list", "--client",
                                "172.16.3.1", "--limit", "50").stdout)
        self.assertEqual(len(rows), 50)
        out = os.path.join(self.workdir, "out.txt")
        timed("dump", "dump", out)
        with open(out) as f:
            dumped = [line for line in f if "\t172.16." in line]
        self.assertEqual(len(dumped), self.N)
        stats = json.loads(timed("stats", "--json", "stats").stdout)
        # (the daemon's own sweep may already be removing expired ones)
        self.assertGreaterEqual(stats["triplets"]["total"],
                                self.N - self.N // 5)
        timed("pass", "pass", "172.16.1.7", "user1@bulk.example",
              "rcpt1@example.org")
        timed("delete", "delete", "172.16.2.7", "user2@bulk.example",
              "rcpt2@example.org")
        got = json.loads(timed("forget", "--json", "forget",
                               "172.16.9.200").stdout)
        self.assertEqual(got["triplets"], self.N // 250)
        timed("expire", "expire")
        self.assertEqual(self.ctl_json("list", "--older-than", "2d"), [])
        got = json.loads(timed("reload", "--json", "load", path).stdout)
        self.assertEqual(got["records"], self.N)
        self.assertEqual(got["added"], self.N // 5 + self.N // 250 + 1,
                         "reloading adds back what was removed")
        time.sleep(0.3)
        traffic.stop_event.set()
        traffic.join(30)

        self.assertEqual(traffic.errors, [])
        load_start, load_end = phases["load"]
        everything = traffic.latencies(load_start, phases["reload"][1])
        self.assertGreater(len(traffic.samples), 200,
                           "too few requests answered")
        during_load = traffic.latencies(load_start, load_end)
        before = traffic.latencies(0, load_start)
        figures = ", ".join("%s %.2fs" % (k, v[1] - v[0])
                            for k, v in phases.items())
        print("\n  greyholdctl: %s (%d records: load %.0f/s, dump %.0f/s)"
              % (figures, self.N, self.N / (load_end - load_start),
                 self.N / (phases["dump"][1] - phases["dump"][0])))
        print("  daemon latency: before the CLI ran %d replies, max %.1f ms; "
              "while it ran %d replies, max %.1f ms, p99 %.1f ms; during "
              "the 50k load %d replies, max %.1f ms, p99 %.1f ms"
              % (len(before), (before[-1] if before else 0) * 1000,
                 len(everything), everything[-1] * 1000,
                 percentile(everything, 99) * 1000, len(during_load),
                 (during_load[-1] if during_load else 0) * 1000,
                 percentile(during_load, 99) * 1000))
        self.assertLess(everything[-1], 2.0, "the daemon stalled")
        self.assertGreater(len(during_load), 0, "no reply during the load")
        self.assertNotIn("error", self.d.run_log().lower())
        # the daemon's own records survived next to the CLI's
        triplets = self.ctl_json("list", "--client", "10.0.0.0/8")
        self.assertGreater(len(triplets), 0)


# ---- postgrey ---------------------------------------------------------------------

def need(program, package):
    path = shutil.which(program)
    if path is None:
        raise unittest.SkipTest("%s not found (Debian package %s)"
                                % (program, package))
    return path


class Postgrey:
    """One postgrey process of this test (started and stopped by pid)."""

    def __init__(self, dbdir, workdir, delay, awl):
        self.dbdir = dbdir
        self.port = free_port()
        empty = os.path.join(workdir, "pg_empty_whitelist")
        write_file(empty, "")
        argv = [need("postgrey", "postgrey"), "--inet=127.0.0.1:%d"
                % self.port, "--dbdir=" + dbdir, "--delay=%d" % delay,
                "--max-age=35", "--retry-window=2",
                "--auto-whitelist-clients=%d" % awl,
                "--whitelist-clients=" + empty,
                "--whitelist-recipients=" + empty]
        if os.getuid() == 0:
            # postgrey drops privileges: give its dbdir to that user
            os.chown(dbdir, 65534, 65534)
            argv += ["--user=nobody", "--group=nogroup"]
        self.log = open(os.path.join(workdir, "postgrey.log"), "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log)
        self.wait_ready()

    def wait_ready(self, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("postgrey exited with %d (see %s)"
                                   % (self.proc.returncode, self.log.name))
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("postgrey not listening after %ds" % timeout)

    def ask(self, attrs):
        with harness.PolicyClient.connect(("127.0.0.1", self.port)) as c:
            return c.request(attrs)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


class PostgreyImport(CtlCase):

    DELAY = 60

    def postgrey(self, dbdir):
        pg = Postgrey(dbdir, self.workdir, self.DELAY, 2)
        self.addCleanup(pg.stop)
        return pg

    def test_import_round_trip_with_real_postgrey(self):
        need("db_dump", "db-util")
        need("postgrey", "postgrey")
        now = int(time.time())
        os.chmod(self.workdir, 0o755)   # postgrey runs as nobody
        pgdir = os.path.join(self.workdir, "postgrey")
        os.mkdir(pgdir)
        pg = self.postgrey(pgdir)

        # (name, client, sender, recipient, history, probe, expected)
        # history: times (seconds before now) at which postgrey saw the
        # triplet; None is the real clock.  The probe is asked at the end,
        # from probe_client, with probe_sender.
        cases = [
            ("pending, delay over", "192.0.2.10", "a@x.org", "r1@y.org",
             [600], None, None, True),
            ("pending, delay not over", "192.0.2.11", "a@x.org", "r2@y.org",
             [None], None, None, False),
            ("passed", "198.51.100.10", "b@x.org", "r3@y.org",
             [7200, 7000], None, None, True),
            ("pending past the retry window", "203.0.113.10", "c@x.org",
             "r4@y.org", [3 * DAY], None, None, False),
            ("passed 20 days ago", "198.18.0.10", "d@x.org", "r5@y.org",
             [20 * DAY, 20 * DAY - 100], None, None, True),
            ("+extension folded", "198.18.1.10", "Ann+news@Example.ORG",
             "r6@y.org", [7200, 7000], None, "ann+other@example.org", True),
            ("BATV folded", "198.18.2.10", "prvs=1234567890=bob@x.org",
             "r7@y.org", [7200, 7000], None, "prvs=0987654321=bob@x.org",
             True),
            ("IPv6 /64", "2001:db8:1::10", "e@x.org", "r8@y.org",
             [7200, 7000], "2001:db8:1::99", None, True),
            ("slashes in local parts", "198.18.3.10", "f/g@x.org",
             "h/i@y.org", [7200, 7000], None, None, True),
            ("null sender", "198.18.4.10", "", "r9@y.org", [7200, 7000],
             None, None, True),
            ("VERP digits folded", "198.18.5.10", "list-123-bounce@x.org",
             "r10@y.org", [7200, 7000], None, "list-456-bounce@x.org", True),
            ("same /24", "198.18.6.10", "j@x.org", "r11@y.org", [7200, 7000],
             "198.18.6.200", None, True),
            ("auto-whitelisted client", "198.18.7.10", "k@x.org", "r12@y.org",
             [5 * 3600, 5 * 3600 - 100], None, None, None),
            ("auto-whitelisted client", "198.18.7.10", "l@x.org", "r13@y.org",
             [3 * 3600, 3 * 3600 - 100], None, None, None),
            ("auto-whitelisted client, new triplet", "198.18.7.10", None,
             "new@y.org", [], None, "m@x.org", True),
            ("unknown", "198.18.8.10", None, "new@y.org", [], None,
             "n@x.org", False),
        ]
        for name, client, sender, rcpt, history, _, _, _ in cases:
            for ago in history:
                extra = {} if ago is None else {
                    "policy_test_time": str(now - ago)}
                pg.ask(make_request(client_address=client, sender=sender,
                                    recipient=rcpt, **extra))
        pg.stop()

        # postgrey's own answers, on a copy of its database
        shutil.copytree(pgdir, pgdir + ".copy", symlinks=True)
        if os.getuid() == 0:
            for root, dirs, files in os.walk(pgdir + ".copy"):
                for n in dirs + files + ["."]:
                    os.chown(os.path.join(root, n), 65534, 65534)
        self.conf = self.config(delay="%ds" % self.DELAY)
        self.dbdir = os.path.join(self.workdir, "db")
        before = self.files_of(pgdir)
        got = self.ctl_json("import-postgrey", pgdir)
        self.assertEqual((got["passed"], got["pending"], got["clients"],
                          got["skipped_expired"], got["skipped_unreadable"]),
                         (11, 2, 10, 1, 0), got)
        self.assertEqual(self.files_of(pgdir), before,
                         "the import changed postgrey's files")
        self.assertEqual(got["added"], 11 + 2 + 10)
        self.d = self.daemon(workdir=self.workdir, config=self.conf,
                             dbdir=self.dbdir)
        pg2 = self.postgrey(pgdir + ".copy")

        for name, client, sender, rcpt, history, pclient, psender, want \
                in cases:
            if want is None:
                continue
            attrs = make_request(client_address=pclient or client,
                                 sender=psender if psender is not None
                                 else sender, recipient=rcpt)
            theirs = pg2.ask(attrs)
            ours = self.d.ask(attrs)
            self.assertRegex(ours, REPLY_RE)
            with self.subTest(case=name):
                self.assertEqual(is_pass(theirs), want,
                                 "postgrey: %r" % theirs)
                self.assertEqual(is_pass(ours), is_pass(theirs),
                                 "greyhold %r, postgrey %r" % (ours, theirs))

    @staticmethod
    def files_of(path):
        return {n: (st.st_size, st.st_mtime_ns, st.st_uid) for n, st in
                ((n, os.stat(os.path.join(path, n))) for n in os.listdir(path))}

    def test_import_after_postgrey_was_killed(self):
        """What a killed postgrey knew is only in its log: still imported."""
        need("db_dump", "db-util")
        need("postgrey", "postgrey")
        os.chmod(self.workdir, 0o755)
        pgdir = os.path.join(self.workdir, "postgrey")
        os.mkdir(pgdir)
        pg = self.postgrey(pgdir)
        for i in range(5):
            pg.ask(make_request(client_address="192.0.2.%d" % i,
                                recipient="r%d@example.com" % i))
        pg.proc.kill()
        pg.proc.wait(10)
        self.conf = self.config()
        self.dbdir = os.path.join(self.workdir, "db")
        got = self.ctl_json("import-postgrey", pgdir)
        self.assertEqual((got["pending"], got["added"]), (5, 5), got)
        self.assertFalse([n for n in os.listdir(os.environ.get("TMPDIR",
                                                               "/tmp"))
                          if n.startswith("greyholdctl-postgrey.")],
                         "temporary directory left behind")

    def test_import_key_formats(self):
        """Keys of older postgreys, --lookup-by-host and --privacy."""
        db_load = need("db_load", "db-util")
        need("db_dump", "db-util")
        now = int(time.time())
        pgdir = self.tmpdir()
        pairs = [
            ("192.0.2/old@x.org/r@y.org", "%d,%d" % (now - 900, now - 100)),
            ("198.51.100.7/32/host@x.org/r@y.org", "%d,%d" % (now - 50, now)),
            ("da39a3ee5e6b4b0d3255bfef95601890afd80709", "%d,%d" % (now, now)),
            ("203.0.113.0/bad@x.org/r@y.org", "garbage"),
            ("2001:db8:0:0:0:0:0:0/v6@x.org/r@y.org", "%d,%d,host" % (now, now)),
        ]
        text = "".join("%s\n%s\n" % kv for kv in pairs)
        subprocess.run([db_load, "-T", "-t", "btree",
                        os.path.join(pgdir, "postgrey.db")], input=text,
                       universal_newlines=True, check=True)
        subprocess.run([db_load, "-T", "-t", "btree",
                        os.path.join(pgdir, "postgrey_clients.db")],
                       input="198.51.100.7\n3,%d\n" % now,
                       universal_newlines=True, check=True)
        self.conf = self.config(delay="300s")
        self.dbdir = os.path.join(self.workdir, "db")
        got = self.ctl_json("import-postgrey", pgdir)
        self.assertEqual((got["passed"], got["pending"], got["clients"],
                          got["skipped_hashed"], got["skipped_unreadable"]),
                         (1, 2, 1, 1, 1), got)
        rows = sorted(row for row in parse_dump(self.dump()))
        self.assertEqual(rows, sorted([
            ("C", str(now), str(now), "3", "198.51.100.0/24"),
            ("T", str(now - 900), str(now - 100), "1", "192.0.2.0/24",
             "old@x.org", "r@y.org"),
            ("T", str(now - 50), str(now), "0", "198.51.100.0/24",
             "host@x.org", "r@y.org"),
            ("T", str(now), str(now), "0", "2001:db8::/64", "v6@x.org",
             "r@y.org")]))
        # --delay: postgrey's delay decides which triplets had passed
        again = self.ctl_json("import-postgrey", "--delay", "30", pgdir)
        self.assertEqual(again["passed"], 2)
        self.assertEqual(again["merged"], 1)
        r = self.ctl_rc(2, "import-postgrey", self.workdir)
        self.assertIn("postgrey.db", r.stderr)


if __name__ == "__main__":
    harness.main()
