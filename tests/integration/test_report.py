"""greyholdctl report over real decision logs.

The first test runs the daemon with --delay 1, plays a scripted stream of
requests (triplets that pass after the delay, triplets never retried, an
early retry, a whitelisted client, an authenticated client, a null
sender and a sender with non-ASCII bytes), stops it, and checks every
figure of `greyholdctl report` and `greyholdctl --json report` on its
log against what the script did.  Delays are judged by the second each
request was answered in (the daemon counts whole seconds of time(2));
each request must start and end in the same second, which the script
arranges by starting every step just after a second boundary.

The other tests feed hand-written files (syslog and postgrey lines,
rotated logs, standard input, garbage) and check the command's
behaviour on bad input.  greyholdctl is taken from the directory of
GREYHOLD_BIN.
"""

import gzip
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import (GreyholdTestCase, align_to_second, make_request,  # noqa: E402
                     reply_action, sleep_until)
from harness import ctl_bin, percentile, write_file  # noqa: E402


def logged(text):
    """text as the daemon's log_escape() writes it."""
    out = []
    for b in text.encode("utf-8"):
        if b == 0x5c:
            out.append("\\\\")
        elif 0x20 <= b < 0x7f:
            out.append(chr(b))
        else:
            out.append("\\x%02x" % b)
    return "".join(out)


GREYLIST_REASONS = ["new", "new (seen too long ago)", "early-retry"]
PASS_REASONS = ["triplet found", "client whitelist", "client whitelist (live)",
                "recipient whitelist", "recipient whitelist (live)",
                "client AWL", "authenticated"]


class ReportCase(GreyholdTestCase):

    def report(self, *args, stdin=None, expected=0):
        argv = [ctl_bin(), "-c", "/dev/null"] + list(args)
        r = subprocess.run(argv, input=stdin, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=120)
        self.assertEqual(r.returncode, expected, "%s -> %d\n%s%s"
                         % (" ".join(argv), r.returncode,
                            r.stdout.decode("utf-8", "replace"),
                            r.stderr.decode("utf-8", "replace")))
        return (r.stdout.decode("utf-8", "surrogateescape"),
                r.stderr.decode("utf-8", "replace"))

    def report_json(self, *args, **kw):
        out, _ = self.report(*args, **kw)
        try:
            return json.loads(out)
        except ValueError as e:
            self.fail("not JSON (%s): %r" % (e, out))

    def assertTotals(self, totals, expected):
        """expected: {(action, reason): count}; every other reason 0."""
        for action, reasons in (("greylist", GREYLIST_REASONS),
                                ("pass", PASS_REASONS),
                                ("error", ["store failure"])):
            got = totals[action]["reasons"]
            self.assertEqual(sorted(got), sorted(reasons), action)
            for reason in reasons:
                self.assertEqual(got[reason],
                                 expected.get((action, reason), 0),
                                 "%s %s" % (action, reason))
            self.assertEqual(totals[action]["total"],
                             sum(n for (a, _), n in expected.items()
                                 if a == action), action)
        self.assertEqual(totals["decisions"], sum(expected.values()))


class Script:
    """Requests sent, with the second each was answered in."""

    def __init__(self, test, daemon):
        self.test = test
        self.d = daemon
        self.sent = []          # (kind, triplet, second)

    def ask(self, client, name, sender, rcpt, expect, **extra):
        attrs = make_request(client_address=client, client_name=name,
                             sender=sender, recipient=rcpt, **extra)
        before = int(time.time())
        reply = self.d.ask(attrs)
        after = int(time.time())
        self.test.assertEqual(before, after, "a request straddled a second "
                              "boundary; the machine is too slow for this "
                              "test's timing")
        action = reply_action(reply)
        self.test.assertEqual(action, expect, "%s %s %s: %r"
                              % (client, sender, rcpt, reply))
        self.sent.append(((client, sender, rcpt), before))
        return before


class FromDaemon(ReportCase):
    """The report of a real daemon's log against the script that made it."""

    WL_CLIENT = "198.51.100.2"

    def run_script(self):
        work = self.tmpdir()
        wl_clients = os.path.join(work, "wl_clients")
        wl_rcpts = os.path.join(work, "wl_recipients")
        write_file(wl_clients, self.WL_CLIENT + "\n")
        write_file(wl_rcpts, "")
        conf = os.path.join(work, "greyhold.conf")
        write_file(conf, "auto_whitelist_clients = 0\n"
                         "whitelist_clients = %s\n"
                         "whitelist_recipients = %s\n"
                         % (wl_clients, wl_rcpts))
        d = self.daemon(args=["--delay", "1"], config=conf, workdir=work)
        s = Script(self, d)
        good, good_name = "192.0.2.10", "mail.example.org"
        spam, spam_name = "203.0.113.5", "spam.bad.example"
        other, other_name = "203.0.113.77", "unknown"
        A = (good, "alice@example.org", "bob@example.com")
        B = (good, "carol@example.org", "dave@example.com")
        C = (spam, "spam1@bad.example", "bob@example.com")
        D = (spam, "", "eve@example.com")
        E = (spam, "jos\u00e9@bad.example", "bob@example.com")
        F = (other, "x@y.example", "zed@example.com")
        G = (good, "frank@example.org", "bob@example.com")
        names = {good: good_name, spam: spam_name, other: other_name}

        def ask(t, expect, **kw):
            return s.ask(t[0], names.get(t[0], "mx.example"), t[1], t[2],
                         expect, **kw)

        start = align_to_second(0.1)
        # Second 0: first sight of six triplets, three early retries.
        first = {}
        for t in (A, B, C, D, E, F):
            first[t] = ask(t, "DEFER_IF_PERMIT")
        ask(A, "DEFER_IF_PERMIT")          # early-retry
        ask(C, "DEFER_IF_PERMIT")          # early-retry
        ask(E, "DEFER_IF_PERMIT")          # early-retry
        # Not greylisted at all: a whitelisted and an authenticated client.
        s.ask(self.WL_CLIENT, "partner.example", "p@partner.example",
              "bob@example.com", "DUNNO")
        s.ask(self.WL_CLIENT, "partner.example", "q@partner.example",
              "dave@example.com", "DUNNO")
        s.ask("192.0.2.99", "laptop.example", "me@example.com",
              "you@example.net", "DUNNO", sasl_username="me",
              sasl_method="PLAIN")
        # Second 1: A passes (delay 1), then passes again (known).
        sleep_until(start + 1)
        pass_a = ask(A, "DUNNO")
        ask(A, "DUNNO")
        # Second 3: B passes (delay 3); G is new and never retried.
        sleep_until(start + 3)
        pass_b = ask(B, "DUNNO")
        first[G] = ask(G, "DEFER_IF_PERMIT")
        self.assertEqual(d.stop(), 0)
        delays = [pass_a - first[A], pass_b - first[B]]
        return {
            "log": d.log_path,
            "A": A, "B": B, "C": C, "D": D, "E": E, "F": F, "G": G,
            "first": first, "delays": delays, "names": names,
            "requests": len(s.sent),
        }

    def deferral_line(self, lines, t, name):
        """1-based number of the first 'new' line of triplet t in the log."""
        want = ("greyhold: action=greylist, reason=new, client_name=%s, "
                "client_address=%s, sender=%s, recipient=%s"
                % (name, t[0], logged(t[1]), t[2]))
        for i, line in enumerate(lines, 1):
            if line == want:
                return i
        self.fail("no line %r in the log" % want)

    def test_report_matches_the_script(self):
        run = self.run_script()
        log = run["log"]
        with open(log, "rb") as f:
            lines = f.read().decode("utf-8", "surrogateescape").splitlines()
        A, B, C, D, E, F, G = (run[k] for k in "ABCDEFG")
        names = run["names"]
        delays = run["delays"]
        # The escaped sender, as the daemon logs it.
        e_sender = "jos\\xc3\\xa9@bad.example"
        self.assertEqual(logged(E[1]), e_sender)

        r = self.report_json("--json", "report", log)
        self.assertEqual(r["input"]["files"], [log])
        self.assertEqual(r["input"]["lines"], len(lines))
        self.assertEqual(r["input"]["decision_lines"], run["requests"])
        self.assertEqual(r["input"]["greyhold_lines"], run["requests"])
        self.assertEqual(r["input"]["postgrey_lines"], 0)
        self.assertEqual(r["input"]["untagged_lines"], 0)
        self.assertEqual(r["input"]["skipped_lines"],
                         len(lines) - run["requests"])
        self.assertEqual(r["input"]["unparseable_lines"], 0)
        self.assertIsNone(r["input"]["first_unparseable"])

        self.assertTotals(r["totals"], {
            ("greylist", "new"): 7,             # A B C D E F G
            ("greylist", "early-retry"): 3,     # A C E
            ("pass", "triplet found"): 3,       # A first, A again, B
            ("pass", "client whitelist"): 2,
            ("pass", "authenticated"): 1,
        })

        self.assertEqual(r["triplets"], {
            "deferred": 7, "passed_later": 2, "never_passed": 5,
            "unmatched_first_passes": 0, "limit": 1000000,
            "limit_reached": False, "untracked_deferrals": 0,
            "untracked_client_deferrals": 0})

        pd = r["pass_delays"]
        self.assertEqual(pd["count"], 2)
        self.assertEqual(pd["min"], min(delays))
        self.assertEqual(pd["max"], max(delays))
        for p in (50, 90, 99):
            self.assertEqual(pd["p%d" % p], percentile(delays, p))
        self.assertEqual([b["label"] for b in pd["histogram"]],
                         ["<5m", "5-10m", "10-30m", "30m-1h", "1-4h", ">4h"])
        self.assertEqual([b["count"] for b in pd["histogram"]],
                         [2, 0, 0, 0, 0, 0])
        self.assertEqual(pd["histogram"][1]["from"], 300)
        self.assertEqual(pd["histogram"][1]["to"], 600)
        self.assertIsNone(pd["histogram"][5]["to"])

        # Clients: the spam client most deferred (C 2, D 1, E 2), then the
        # good one (A 2, B 1, G 1; passes A, A, B), then the other.
        self.assertEqual(r["top_clients"], [
            {"client_address": C[0], "client_name": names[C[0]],
             "deferrals": 5, "passes": 0},
            {"client_address": A[0], "client_name": names[A[0]],
             "deferrals": 4, "passes": 3},
            {"client_address": F[0], "client_name": names[F[0]],
             "deferrals": 1, "passes": 0},
        ])

        expect_never = []
        for t, n in ((C, 2), (D, 1), (E, 2), (F, 1), (G, 1)):
            expect_never.append({
                "client_address": t[0], "client_name": names[t[0]],
                "sender": e_sender if t is E else t[1], "recipient": t[2],
                "deferrals": n,
                "first_deferral": {"time": None, "file": log,
                                   "line": self.deferral_line(
                                       lines, t, names[t[0]])}})
        self.assertEqual(r["never_passed"], expect_never)

        # --top limits the client list; --json may follow the command.
        r2 = self.report_json("report", "--json", "--top", "1", log)
        self.assertEqual(len(r2["top_clients"]), 1)
        self.assertEqual(r2["top_clients"][0]["client_address"], C[0])
        self.assertEqual(r2["never_passed"], r["never_passed"])

        # The same figures in the text report.
        text, _ = self.report("report", log)
        self.assertIn("Input: %d lines from 1 file\n" % len(lines), text)
        self.assertRegex(text, r"decision lines: +%d \(greyhold %d, "
                         r"postgrey 0, untagged 0\)" % (run["requests"],
                                                       run["requests"]))
        self.assertRegex(text, r"unparseable: +0\n")
        for action, reason, n in (("greylist", "new", 7),
                                  ("greylist", "early-retry", 3),
                                  ("greylist", r"new \(seen too long ago\)", 0),
                                  ("pass", "triplet found", 3),
                                  ("pass", "client whitelist", 2),
                                  ("pass", "authenticated", 1),
                                  ("pass", "client AWL", 0),
                                  ("error", "store failure", 0)):
            self.assertRegex(text, r"\n  %s +%s +%d\n" % (action, reason, n))
        self.assertIn("total: 16 (greylist 10, pass 6, error 0)", text)
        self.assertRegex(text, r"deferred: +7\n")
        self.assertRegex(text, r"passed later: +2\n")
        self.assertRegex(text, r"never passed: +5\n")
        self.assertIn("count 2, min %ds, p50 %ds, p90 %ds, p99 %ds, max %ds"
                      % (min(delays), percentile(delays, 50),
                         percentile(delays, 90), percentile(delays, 99),
                         max(delays)), text)
        self.assertRegex(text, r"\n  <5m +2  #+\n")
        self.assertRegex(text, r"\n  >4h +0\n")
        self.assertIn("Top deferred clients (3 of 3)", text)
        rows = re.findall(r"^ +(\d+) +(\d+)  (\S+) +(\S+)$", text, re.M)
        self.assertEqual(rows, [("5", "0", C[0], names[C[0]]),
                                ("4", "3", A[0], names[A[0]]),
                                ("1", "0", F[0], names[F[0]])])
        self.assertIn("Never passed: 5 triplets deferred and not passed "
                      "later (likely spam)", text)
        never = text.split("likely spam)\n", 1)[1].splitlines()[1:]
        self.assertEqual(len(never), 5)
        for row, t, n in zip(never, (C, D, E, F, G), (2, 1, 2, 1, 1)):
            cols = row.split()
            self.assertEqual(cols, [
                "%s:%d" % (log, self.deferral_line(lines, t, names[t[0]])),
                str(n), t[0], names[t[0]],
                "<>" if t is D else e_sender if t is E else t[1], t[2]])
        # A passed: it is in no list of the never passed.
        self.assertNotIn(A[1], text.split("likely spam)")[1])


# ---- hand-written input ------------------------------------------------------

OLD_LOG = (
    "Nov 27 10:00:00 mx postfix/smtpd[1]: connect from a.example[192.0.2.1]\n"
    "Nov 27 10:00:01 mx greyhold[7]: action=greylist, reason=new, "
    "client_name=a.example, client_address=192.0.2.1, sender=s@a.example, "
    "recipient=r@example.com\n"
    # postgrey leaves the null sender out, and may put a queue id first.
    "Nov 27 10:00:02 mx postgrey[9]: 4Fq1Zx0Y2Kz1: action=greylist, "
    "reason=new, client_name=b.example, client_address=192.0.2.2, "
    "recipient=r@example.com\n"
    "Nov 27 10:00:03 mx greyhold[7]: action=pass, reason=tri\n"
)

NEW_LOG = (
    "Nov 28 10:00:00 mx greyhold[7]: action=pass, reason=triplet found, "
    "delay=86399, client_name=a.example, client_address=192.0.2.1, "
    "sender=s@a.example, recipient=r@example.com\n"
    "greyhold: action=pass, reason=triplet found, delay=90061, "
    "client_name=c.example, client_address=192.0.2.3, sender=t@c.example, "
    "recipient=r@example.com\n"
    "action=greylist, reason=early-retry (5s missing), client_name=b.example, "
    "client_address=192.0.2.2, sender=, recipient=r@example.com\n"
    "\x00\x01garbage\n"
)


class FromFiles(ReportCase):

    def files(self):
        work = self.tmpdir()
        old = os.path.join(work, "mail.log.1")
        new = os.path.join(work, "mail.log")
        write_file(old, OLD_LOG)
        write_file(new, NEW_LOG)
        return work, old, new

    def check_rotated(self, r, files):
        self.assertEqual(r["input"]["files"], files)
        self.assertEqual(r["input"]["lines"], 8)
        self.assertEqual(r["input"]["decision_lines"], 5)
        self.assertEqual(r["input"]["greyhold_lines"], 3)
        self.assertEqual(r["input"]["postgrey_lines"], 1)
        self.assertEqual(r["input"]["untagged_lines"], 1)
        self.assertEqual(r["input"]["skipped_lines"], 2)
        self.assertEqual(r["input"]["unparseable_lines"], 1)
        self.assertEqual(r["input"]["first_unparseable"],
                         {"file": files[0], "line": 4})
        self.assertTotals(r["totals"], {("greylist", "new"): 2,
                                        ("greylist", "early-retry"): 1,
                                        ("pass", "triplet found"): 2})
        self.assertEqual(r["triplets"]["deferred"], 2)
        self.assertEqual(r["triplets"]["passed_later"], 1)
        self.assertEqual(r["triplets"]["never_passed"], 1)
        self.assertEqual(r["triplets"]["unmatched_first_passes"], 1)
        pd = r["pass_delays"]
        # Above a day, percentiles are to the minute.
        self.assertEqual((pd["count"], pd["min"], pd["p50"], pd["p90"],
                          pd["p99"], pd["max"]),
                         (2, 86399, 86399, 90060, 90060, 90061))
        self.assertEqual([b["count"] for b in pd["histogram"]],
                         [0, 0, 0, 0, 0, 2])
        self.assertEqual(r["top_clients"], [
            {"client_address": "192.0.2.2", "client_name": "b.example",
             "deferrals": 2, "passes": 0},
            {"client_address": "192.0.2.1", "client_name": "a.example",
             "deferrals": 1, "passes": 1},
        ])
        self.assertEqual(r["never_passed"], [
            {"client_address": "192.0.2.2", "client_name": "b.example",
             "sender": "", "recipient": "r@example.com", "deferrals": 2,
             "first_deferral": {"time": "Nov 27 10:00:02",
                                "file": files[0], "line": 3}}])

    def test_rotated_logs_postgrey_and_foreign_lines(self):
        _, old, new = self.files()
        self.check_rotated(self.report_json("--json", "report", old, new),
                           [old, new])
        # Standard input as "-", among files.
        with open(new, "rb") as f:
            data = f.read()
        self.check_rotated(self.report_json("--json", "report", old, "-",
                                            stdin=data), [old, "-"])
        text, _ = self.report("report", old, new)
        self.assertIn("unparseable:        1 (decision lines that did not "
                      "parse; the first at %s:4)" % old, text)
        self.assertRegex(text, r"\n  Nov 27 10:00:02 +2  192\.0\.2\.2 +"
                         r"b\.example +<> +r@example\.com\n")
        self.assertIn("first passes whose deferral is not in the log: 1",
                      text)

    def test_standard_input_by_default(self):
        r = self.report_json("--json", "report", stdin=NEW_LOG.encode())
        self.assertEqual(r["input"]["files"], ["-"])
        self.assertEqual(r["input"]["decision_lines"], 3)
        text, _ = self.report("report", stdin=b"")
        self.assertIn("Input: 0 lines from 1 file", text)
        self.assertIn("Pass delays (delay= of first passes)\n  none", text)
        self.assertIn("Never passed: 0 triplets", text)

    def test_terminal_safe_text(self):
        # postgrey does not escape: raw bytes reach the report escaped.
        line = (b"postgrey[1]: action=greylist, reason=new, "
                b"client_name=x\x1b[31m, client_address=192.0.2.5, "
                b"sender=a\xff@b, recipient=c@d\n")
        text, _ = self.report("report", stdin=line)
        self.assertNotIn("\x1b", text)
        self.assertIn("x\\x1b[31m", text)
        self.assertIn("a\\xff@b", text)
        r = self.report_json("--json", "report", stdin=line)
        self.assertEqual(r["never_passed"][0]["sender"], "a\u00ff@b")

    def test_bad_input_and_usage(self):
        work, old, _ = self.files()
        out, err = self.report("report", old, os.path.join(work, "nope"),
                               expected=2)
        self.assertEqual(out, "")
        self.assertIn("cannot open", err)
        gz = os.path.join(work, "mail.log.2.gz")
        with gzip.open(gz, "wb") as f:
            f.write(OLD_LOG.encode())
        out, err = self.report("report", gz, expected=2)
        self.assertEqual(out, "")
        self.assertIn("zcat", err)
        for args in (("--top", "x"), ("--top", "-1"), ("--bogus",)):
            _, err = self.report("report", *args, old, expected=2)
            self.assertIn("usage: greyholdctl report", err)

    def test_tracking_limit(self):
        """Past a million triplets the report counts and says so."""
        limit, extra = 1000000, 25
        work = self.tmpdir()
        path = os.path.join(work, "big.log")
        defer = ("greyhold: action=greylist, reason=new, client_name=, "
                 "client_address=192.0.2.1, sender=, recipient=r%d\n")
        passed = ("greyhold: action=pass, reason=triplet found, delay=%d, "
                  "client_name=, client_address=192.0.2.1, sender=, "
                  "recipient=r%d\n")
        with open(path, "w") as f:
            f.writelines(defer % i for i in range(limit + extra))
            # Every tracked triplet passes (so the never-passed list stays
            # short); the untracked ones have no deferral to match.
            f.writelines(passed % (600, i) for i in range(limit + extra))
        r = self.report_json("--json", "report", path)
        t = r["triplets"]
        self.assertTrue(t["limit_reached"])
        self.assertEqual(t["deferred"], limit)
        self.assertEqual(t["passed_later"], limit)
        self.assertEqual(t["never_passed"], 0)
        self.assertEqual(t["untracked_deferrals"], extra)
        self.assertEqual(t["untracked_client_deferrals"], 0)
        self.assertEqual(t["unmatched_first_passes"], extra)
        self.assertEqual(r["totals"]["greylist"]["reasons"]["new"],
                         limit + extra)
        self.assertEqual(r["pass_delays"]["count"], limit + extra)
        self.assertEqual(r["pass_delays"]["p99"], 600)
        self.assertEqual(r["top_clients"], [
            {"client_address": "192.0.2.1", "client_name": "",
             "deferrals": limit + extra, "passes": limit + extra}])
        text, _ = self.report("report", path)
        self.assertIn("TRACKING LIMIT REACHED", text)
        self.assertIn("%d deferrals of further triplets" % extra, text)

if __name__ == "__main__":
    harness.main()
