"""Greylisting semantics of the real daemon, seen through replies and log.

Delays are 1-2 s.  The daemon counts whole seconds, so a retry that must
land within the delay starts just after a second boundary
(align_to_second), and a retry that must pass waits for the whole delay
after the first reply was received (then the daemon's whole-second
difference is at least the delay).
"""

import itertools
import re
import time

import harness
from harness import (GreyholdTestCase, REPLY_RE, align_to_second,
                     make_request, reply_action, seconds_left, sleep_until)

CLIENT = "192.0.2.10"
SENDER = "alice@example.org"
RCPT = "bob@example.com"


_names = itertools.count(1)


def req(client=CLIENT, sender=SENDER, recipient=RCPT, name=None, **kw):
    """A request; its client_name (not part of the key) is unique, so its
    decision line can be told from any other."""
    if name is None:
        name = "mx%d.example.net" % next(_names)
    return make_request(client_address=client, sender=sender,
                        recipient=recipient, client_name=name, **kw)


def fields(r):
    """The fields a decision line ends with, for request r."""
    return ("client_name=%s, client_address=%s, sender=%s, recipient=%s"
            % (r["client_name"], r["client_address"], r["sender"],
               r["recipient"]))


class GreylistTestCase(GreyholdTestCase):

    def ask(self, d, request):
        """Ask; return (reply, decision log line for it)."""
        mark = d.log_mark()
        reply = d.ask(request)
        self.assertRegex(reply, REPLY_RE)
        # The log is written after the reply, maybe after the next one:
        # find this request's line by its unique client_name.
        line = d.wait_log(r"^greyhold: action=.*, client_name=%s, "
                          % re.escape(request["client_name"]), mark)
        return reply, line

    def expect_defer(self, d, request, reason="new"):
        reply, line = self.ask(d, request)
        self.assertEqual(reply_action(reply), "DEFER_IF_PERMIT",
                         "%s -> %r" % (request["recipient"], reply))
        self.assertTrue(line.startswith("greyhold: action=greylist, reason=%s"
                                        % reason), line)
        return reply, line

    def expect_pass(self, d, request, reason="triplet found"):
        reply, line = self.ask(d, request)
        self.assertEqual(reply, "action=DUNNO\n\n",
                         "%s from %s, sender %r -> %r" % (
                             request["recipient"], request["client_address"],
                             request["sender"], reply))
        self.assertTrue(line.startswith("greyhold: action=pass, reason=%s"
                                        % reason), line)
        return line

    def seed(self, d, requests, delay):
        """First sight of each request, then wait until all may pass."""
        last = None
        for r in requests:
            self.expect_defer(d, r)
            last = time.time()
        sleep_until(last + delay + 0.05)


class Lifecycle(GreylistTestCase):

    def test_defer_early_retry_pass_and_known(self):
        d = self.daemon(["--delay", "2"])
        align_to_second(0.1)

        r = req()
        reply, line = self.expect_defer(d, r)
        t0 = time.time()
        self.assertRegex(reply, r"^action=DEFER_IF_PERMIT .*(retry|try again)"
                         r".* 2 seconds\n\n$")
        self.assertEqual(reply, "action=DEFER_IF_PERMIT Greylisted, please "
                         "try again in 2 seconds\n\n")
        self.assertEqual(line, "greyhold: action=greylist, reason=new, "
                         + fields(r))

        # One second later: still deferred, one second left.
        sleep_until(t0 + 1.0)
        r = req()
        reply, line = self.expect_defer(d, r, "early-retry")
        self.assertEqual(seconds_left(reply), 1, reply)
        self.assertEqual(line, "greyhold: action=greylist, reason=early-retry "
                         "(1s missing), " + fields(r))

        # After the delay: passes, and the log says after how long.
        sleep_until(t0 + 2.0)
        r = req()
        line = self.expect_pass(d, r)
        m = re.match(r"^greyhold: action=pass, reason=triplet found, "
                     r"delay=(\d+), (.*)$", line)
        self.assertIsNotNone(m, line)
        self.assertIn(int(m.group(1)), (2, 3), line)
        self.assertEqual(m.group(2), fields(r))

        # Known from now on; the log no longer carries a delay.
        r = req()
        line = self.expect_pass(d, r)
        self.assertEqual(line, "greyhold: action=pass, reason=triplet found, "
                         + fields(r))

        # Each of the three parts belongs to the key.
        self.expect_defer(d, req(recipient="carol@example.com"))
        self.expect_defer(d, req(sender="mallory@example.org",
                                 recipient="bob@example.com"))
        self.expect_defer(d, req(client="192.0.3.10"))
        # ...and those were new triplets, not the passed one spoiled.
        self.expect_pass(d, req())

    def test_same_subnet_passes_other_subnet_is_deferred(self):
        d = self.daemon(["--delay", "1"])
        self.seed(d, [req(client="192.0.2.10")], 1)
        self.expect_pass(d, req(client="192.0.2.10"))
        # Same /24, another host: the default keys by subnet.
        r = req(client="192.0.2.77")
        line = self.expect_pass(d, r)
        self.assertTrue(line.endswith(fields(r)), line)
        self.expect_pass(d, req(client="192.0.2.254"))
        # Another /24 is another triplet.
        self.expect_defer(d, req(client="192.0.3.10"))
        self.expect_defer(d, req(client="198.51.100.10"))

    def test_lookup_by_host(self):
        d = self.daemon(["--delay", "1", "--lookup-by-host"])
        self.seed(d, [req(client="192.0.2.10")], 1)
        self.expect_pass(d, req(client="192.0.2.10"))
        self.expect_defer(d, req(client="192.0.2.77"))
        self.expect_defer(d, req(client="192.0.2.11"))

    def test_ipv6_keyed_by_64(self):
        d = self.daemon(["--delay", "1"])
        self.seed(d, [req(client="2001:db8:1:2::10")], 1)
        self.expect_pass(d, req(client="2001:db8:1:2::10"))
        self.expect_pass(d, req(client="2001:db8:1:2:ffff:ffff:ffff:ffff"))
        self.expect_pass(d, req(client="2001:DB8:1:2:0:0:0:99"))
        self.expect_defer(d, req(client="2001:db8:1:3::10"))
        self.expect_defer(d, req(client="2001:db9:1:2::10"))

    def test_cidr_options(self):
        d = self.daemon(["--delay", "1", "--ipv4cidr", "16",
                         "--ipv6cidr", "48"])
        self.seed(d, [req(client="192.0.2.10"),
                      req(client="2001:db8:1:2::10")], 1)
        self.expect_pass(d, req(client="192.0.99.1"))
        self.expect_defer(d, req(client="192.1.2.10"))
        self.expect_pass(d, req(client="2001:db8:1:ff00::1"))
        self.expect_defer(d, req(client="2001:db8:2:2::10"))


class SenderNormalisation(GreylistTestCase):

    def test_variants_of_a_passed_sender_pass(self):
        d = self.daemon(["--delay", "1"])
        srs = "SRS0=HhJk=TT=example.org=alice@forwarder.example"
        verp = "list-bounces-12345@lists.example"
        self.seed(d, [req(), req(sender=srs), req(sender=verp)], 1)
        self.expect_pass(d, req())
        for variant in ["alice+news@example.org",
                        "alice+x+y@example.org",
                        "ALICE@Example.ORG",
                        "prvs=1234abcdef=alice@example.org",
                        "prvs=0987fedcba=alice+tag@example.org",
                        "msprvs1=19863zXJ1TnOq=alice@example.org"]:
            with self.subTest(sender=variant):
                line = self.expect_pass(d, req(sender=variant))
                # The log shows the sender as sent.
                self.assertIn("sender=%s," % variant, line)
        with self.subTest(sender="SRS0"):
            self.expect_pass(d, req(sender=srs))
            self.expect_pass(
                d,
                req(sender="SRS0=zzzz=QQ=example.org=alice@forwarder.example"))
        with self.subTest(sender="VERP"):
            self.expect_pass(d, req(sender=verp))
            self.expect_pass(d, req(sender="list-bounces-67890@lists.example"))
        with self.subTest(recipient="case"):
            self.expect_pass(d, req(recipient="Bob@Example.COM"))
        # Other senders are still other triplets.
        for other in ["bob@example.org", "alice@example.net",
                      "alicex@example.org", "prvs=1234abcdef=dave@example.org",
                      "SRS0=HhJk=TT=example.org=erin@forwarder.example"]:
            with self.subTest(other=other):
                self.expect_defer(d, req(sender=other))

    def test_null_sender(self):
        d = self.daemon(["--delay", "1"])
        r = req(sender="")
        reply, line = self.expect_defer(d, r)
        self.assertEqual(line, "greyhold: action=greylist, reason=new, "
                         + fields(r))
        self.assertIn(", sender=, ", line)
        sleep_until(time.time() + 1.05)
        self.expect_pass(d, req(sender=""))
        # <> is a sender of its own: a named sender is another triplet.
        self.expect_defer(d, req(sender="postmaster@example.org"))
        self.expect_defer(d, req(sender="@"))


class Replies(GreylistTestCase):

    def test_greylist_text_with_seconds_and_domain(self):
        d = self.daemon(["--delay", "2", "--greylist-text",
                         "Greylisted for %s seconds, see "
                         "https://example.net/%r.html (100%%)"])
        reply, _ = self.expect_defer(d, req(recipient="Bob@RCPT.Example"))
        self.assertEqual(reply, "action=DEFER_IF_PERMIT Greylisted for 2 "
                         "seconds, see https://example.net/rcpt.example.html "
                         "(100%)\n\n")

    def test_recipient_domain_cannot_inject_into_reply(self):
        d = self.daemon(["--delay", "2", "--greylist-text", "[%r]"])
        reply, _ = self.expect_defer(
            d, req(recipient="bob@Ex am\tple;action=OK\r"))
        self.assertRegex(reply, REPLY_RE)
        m = re.match(r"^action=DEFER_IF_PERMIT \[([^\]]*)\]\n\n$", reply)
        self.assertIsNotNone(m, reply)
        self.assertRegex(m.group(1), r"^[a-z0-9._-]*$")

    def test_greylist_action_450(self):
        d = self.daemon(["--delay", "2", "--greylist-action", "450"])
        reply, _ = self.expect_defer_any(d, req())
        self.assertEqual(reply, "action=450 Greylisted, please try again in 2 "
                         "seconds\n\n")

    def test_greylist_action_defer(self):
        d = self.daemon(["--delay", "2", "--greylist-action=DEFER"])
        reply, _ = self.expect_defer_any(d, req())
        self.assertTrue(reply.startswith("action=DEFER Greylisted"), reply)

    def expect_defer_any(self, d, request):
        reply, line = self.ask(d, request)
        self.assertTrue(line.startswith("greyhold: action=greylist, "
                                        "reason=new, "), line)
        return reply, line


class RetryWindow(GreylistTestCase):

    def test_retry_after_the_window_starts_over(self):
        d = self.daemon(["--delay", "1", "-o", "retry_window=3s"])
        align_to_second(0.1)
        self.expect_defer(d, req())
        t0 = time.time()
        sleep_until(t0 + 4.0)
        # More than 3 s after first sight without a pass: greylisted anew
        # ("new"; the record may also have been swept already).
        r = req()
        reply, line = self.expect_defer(d, r, "new")
        self.assertRegex(line, r"^greyhold: action=greylist, reason=new"
                         r"( \(seen too long ago\))?, " + re.escape(fields(r)))
        self.assertEqual(seconds_left(reply), 1, reply)
        # The clock restarted: one delay later it passes.
        sleep_until(time.time() + 1.05)
        self.expect_pass(d, req())

    def test_retry_within_the_window_passes(self):
        d = self.daemon(["--delay", "1", "-o", "retry_window=3s"])
        align_to_second(0.1)
        self.expect_defer(d, req())
        sleep_until(time.time() + 2.0)
        line = self.expect_pass(d, req())
        self.assertRegex(line, r"reason=triplet found, delay=[23], ")


class AutoWhitelist(GreylistTestCase):

    def test_client_passed_once_is_whitelisted(self):
        d = self.daemon(["--delay", "1", "--auto-whitelist-clients=1"])
        self.seed(d, [req()], 1)
        self.expect_pass(d, req())
        other = req(sender="zed@elsewhere.example",
                    recipient="yan@example.com")
        line = self.expect_pass(d, other, "client AWL")
        self.assertEqual(line, "greyhold: action=pass, reason=client AWL, "
                         + fields(other))
        # The client is its /24.
        self.expect_pass(d, req(client="192.0.2.200", sender="q@q.example",
                                recipient="r1@example.com"), "client AWL")
        # Other clients are not.
        self.expect_defer(d, req(client="192.0.3.10",
                                 recipient="r2@example.com"))

    def test_passes_count_once_per_hour(self):
        # Two passes within the hour count once, so 2 are not reached.
        d = self.daemon(["--delay", "1", "--auto-whitelist-clients=2"])
        self.seed(d, [req(), req(recipient="second@example.com")], 1)
        self.expect_pass(d, req())
        self.expect_pass(d, req(recipient="second@example.com"))
        self.expect_defer(d, req(recipient="third@example.com"))

    def test_auto_whitelist_off(self):
        d = self.daemon(["--delay", "1", "--auto-whitelist-clients=0"])
        self.seed(d, [req()], 1)
        self.expect_pass(d, req())
        self.expect_defer(d, req(recipient="other@example.com"))


class DecisionLog(GreylistTestCase):

    def test_every_decision_is_one_line_of_postgreys_shape(self):
        d = self.daemon(["--delay", "1", "--auto-whitelist-clients=1"])
        mark = d.log_mark()
        self.seed(d, [req()], 1)
        # The daemon counts whole seconds: with a delay of 1 s, a retry
        # in the next second would pass however soon it came.
        align_to_second(0.1)
        self.expect_defer(d, req(recipient="b@example.com"))
        self.expect_defer(d, req(recipient="b@example.com"), "early-retry")
        self.expect_pass(d, req())
        self.expect_pass(d, req(recipient="c@example.com"), "client AWL")
        d.ask(req(protocol_state="DATA"))
        lines = d.decision_lines(mark)
        shape = re.compile(
            r"^greyhold: action=(greylist|pass), reason=(new|early-retry "
            r"\(\d+s missing\)|triplet found, delay=\d+|triplet found|"
            r"client AWL), client_name=[^,]*, client_address=[^,]*, "
            r"sender=[^,]*, recipient=[^,]*$")
        self.assertEqual(len(lines), 5, lines)
        for line in lines:
            self.assertRegex(line, shape)

    def test_untrusted_fields_are_escaped_and_cut(self):
        d = self.daemon(["--delay", "2"])
        mark = d.log_mark()
        d.ask(req(name="a" * 1000, sender="tab\there\\x@ex\u00e9.example",
                  recipient="r\x7f@example.com"))
        line = d.wait_log(r"recipient=r", mark)
        self.assertIn("client_name=" + "a" * 256 + "..., client_address=",
                      line)
        self.assertIn("sender=tab\\x09here\\\\x@ex\\xc3\\xa9.example,", line)
        self.assertTrue(line.endswith("recipient=r\\x7f@example.com"), line)
        # Still one line each.
        for text in d.log_since(mark).splitlines():
            self.assertTrue(text.startswith("greyhold: "), text)


if __name__ == "__main__":
    harness.main()
