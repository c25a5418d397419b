"""greyhold speaks Postfix's policy delegation protocol.

Framing (one reply per request, persistent and pipelined connections,
requests split across reads), early answers, hostile input, connection
limits and timeouts, and the three kinds of listener.
"""

import os
import random
import socket
import stat
import time
import unittest

import harness
from harness import (GreyholdTestCase, ConnectionClosed, REPLY_RE,
                     encode_request, make_request, reply_action)

# A text that names the recipient domain, so a reply shows which request
# it answers.
TEXT_ARGS = ["--delay", "2", "--greylist-text", "wait %s s for %r"]


def rcpt(i, tag="t"):
    """A request with its own triplet; its deferral says 'for d<i>.<tag>'."""
    return make_request(client_address="198.51.100.%d" % (i % 250 + 1),
                        sender="s%d@sender.example" % i,
                        recipient="r%d@d%d.%s" % (i, i, tag))


def expected_for(i, kind, tag="t"):
    if kind == "rcpt":
        return "defer", "for d%d.%s\n\n" % (i, tag)
    return "dunno", None


def request_of_kind(i, kind, tag="t"):
    if kind == "rcpt":
        return rcpt(i, tag)
    if kind == "data":
        return make_request(protocol_state="DATA",
                            recipient="r%d@d%d.%s" % (i, i, tag))
    if kind == "sasl":
        return make_request(sasl_username="user%d" % i, sasl_method="PLAIN",
                            recipient="r%d@d%d.%s" % (i, i, tag))
    raise ValueError(kind)


KINDS = ["rcpt", "data", "rcpt", "sasl", "rcpt", "rcpt", "data"]


def send_ignoring_reset(client, data):
    """Send hostile input; the daemon may close before it has all of it."""
    try:
        client.send(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


class ProtocolTestCase(GreyholdTestCase):

    def check_reply(self, reply, i, kind, tag="t"):
        self.assertRegex(reply, REPLY_RE)
        want, suffix = expected_for(i, kind, tag)
        if want == "defer":
            self.assertTrue(reply.startswith("action=DEFER_IF_PERMIT wait "),
                            "request %d (%s): %r" % (i, kind, reply))
            self.assertTrue(reply.endswith(suffix),
                            "request %d (%s) answered with %r" % (i, kind,
                                                                  reply))
        else:
            self.assertEqual(reply, "action=DUNNO\n\n",
                             "request %d (%s)" % (i, kind))


class Framing(ProtocolTestCase):

    def setUp(self):
        self.d = self.daemon(TEXT_ARGS)

    def test_exactly_one_reply_per_request(self):
        c = self.connect(self.d)
        for i, kind in enumerate(KINDS):
            c.send_request(request_of_kind(i, kind, "one"))
            reply = c.read_reply()
            self.check_reply(reply, i, kind, "one")
            # Nothing more arrives after the reply, and the connection
            # stays open for the next request.
            c.assert_silent(0.15)

    def test_many_requests_on_one_persistent_connection(self):
        c = self.connect(self.d)
        for i in range(150):
            kind = KINDS[i % len(KINDS)]
            self.check_reply(c.request(request_of_kind(i, kind, "many")), i,
                             kind, "many")
        c.assert_silent(0.1)

    def test_requests_split_at_random_points(self):
        rng = random.Random(20240611)
        kinds = [KINDS[i % len(KINDS)] for i in range(30)]
        stream = b"".join(encode_request(request_of_kind(i, k, "split"))
                          for i, k in enumerate(kinds))
        c = self.connect(self.d)
        pos = 0
        while pos < len(stream):
            n = rng.randint(1, 300)
            c.send(stream[pos:pos + n])
            pos += n
            time.sleep(0.002)   # separate segments, so separate reads
        for i, kind in enumerate(kinds):
            self.check_reply(c.read_reply(), i, kind, "split")
        c.assert_silent(0.1)

    def test_request_sent_byte_by_byte(self):
        data = encode_request(rcpt(1, "bytes"))
        c = self.connect(self.d)
        for b in range(len(data) - 1):
            c.send(data[b:b + 1])
            time.sleep(0.0005)
        # Not answered before the empty line is complete.
        c.assert_silent(0.3)
        c.send(data[-1:])
        self.check_reply(c.read_reply(), 1, "rcpt", "bytes")
        # And the next one, byte by byte too, on the same connection.
        data = encode_request(request_of_kind(2, "data", "bytes"))
        for b in range(len(data)):
            c.send(data[b:b + 1])
        self.check_reply(c.read_reply(), 2, "data", "bytes")

    def test_pipelined_requests_answered_in_order(self):
        # Immediate answers (DUNNO) would overtake store answers if order
        # were not kept; 40 requests also exceed the per-connection
        # in-flight limit, so reading has to pause and resume.
        kinds = [KINDS[i % len(KINDS)] for i in range(40)]
        c = self.connect(self.d)
        c.send(b"".join(encode_request(request_of_kind(i, k, "pipe"))
                        for i, k in enumerate(kinds)))
        for i, kind in enumerate(kinds):
            self.check_reply(c.read_reply(), i, kind, "pipe")
        c.assert_silent(0.1)

    def test_pipelined_requests_on_several_connections(self):
        clients = [self.connect(self.d) for _ in range(4)]
        for n, c in enumerate(clients):
            c.send(b"".join(encode_request(rcpt(100 * n + i, "multi"))
                            for i in range(20)))
        for n, c in enumerate(clients):
            for i in range(20):
                self.check_reply(c.read_reply(), 100 * n + i, "rcpt", "multi")


class EarlyAnswers(ProtocolTestCase):

    def setUp(self):
        self.d = self.daemon(["--delay", "2"])

    def test_non_rcpt_protocol_states_get_dunno(self):
        c = self.connect(self.d)
        base = dict(sender="early@sender.example",
                    recipient="early@rcpt.example")
        for state in ["CONNECT", "EHLO", "HELO", "MAIL", "DATA",
                      "END-OF-MESSAGE", "VRFY", "ETRN", "rcpt", ""]:
            with self.subTest(state=state):
                self.assertEqual(
                    c.request(make_request(protocol_state=state, **base)),
                    "action=DUNNO\n\n")
        with self.subTest(state="(absent)"):
            self.assertEqual(
                c.request(make_request(protocol_state=None, **base)),
                "action=DUNNO\n\n")
        # None of them created the triplet: the RCPT request is "new".
        mark = self.d.log_mark()
        self.assertEqual(reply_action(c.request(make_request(**base))),
                         "DEFER_IF_PERMIT")
        line = self.d.wait_log("recipient=early@rcpt.example", mark)
        self.assertIn("action=greylist, reason=new,", line)

    def test_authenticated_client_gets_dunno(self):
        base = dict(sender="auth@sender.example",
                    recipient="auth@rcpt.example",
                    client_address="203.0.113.5", client_name="auth.example")
        mark = self.d.log_mark()
        reply = self.d.ask(make_request(sasl_username="alice",
                                        sasl_method="PLAIN", **base))
        self.assertEqual(reply, "action=DUNNO\n\n")
        line = self.d.wait_log("reason=authenticated", mark)
        self.assertEqual(
            line, "greyhold: action=pass, reason=authenticated, "
            "client_name=auth.example, client_address=203.0.113.5, "
            "sender=auth@sender.example, recipient=auth@rcpt.example")
        # Not stored either.
        mark = self.d.log_mark()
        self.assertEqual(reply_action(self.d.ask(make_request(**base))),
                         "DEFER_IF_PERMIT")
        self.assertIn("reason=new,", self.d.wait_log("auth@rcpt", mark))

    def test_empty_sasl_username_is_greylisted(self):
        # Postfix sends "sasl_username=" (empty) for every client that did
        # not authenticate.
        reply = self.d.ask(make_request(sasl_username="",
                                        recipient="anon@rcpt.example"))
        self.assertEqual(reply_action(reply), "DEFER_IF_PERMIT")

    def test_unknown_attributes_are_ignored(self):
        base = dict(sender="unk@sender.example", recipient="unk@rcpt.example",
                    client_address="203.0.113.77")
        attrs = list(make_request(**base).items())
        attrs.reverse()            # request= last: order does not matter
        attrs += [("x_future_attribute", "1"),
                  ("x_future_attribute", "repeated unknown is fine"),
                  ("another", "value=with=equals signs"),
                  ("spaces in name", "ok"),
                  ("utf8", "gr\u00fc\u00df e"),
                  ("empty", "")]
        c = self.connect(self.d)
        mark = self.d.log_mark()
        self.assertEqual(reply_action(c.request(attrs)), "DEFER_IF_PERMIT")
        self.assertIn("reason=new,", self.d.wait_log("unk@rcpt", mark))
        # The extras did not change the triplet: the plain request is a
        # retry of the same one.
        mark = self.d.log_mark()
        self.assertEqual(reply_action(c.request(make_request(**base))),
                         "DEFER_IF_PERMIT")
        self.assertIn("reason=early-retry", self.d.wait_log("unk@rcpt", mark))


class OddValues(ProtocolTestCase):
    """Unusual but well-formed requests get one answer; nothing crashes."""

    def test_odd_values_are_answered(self):
        d = self.daemon(["--delay", "2"])
        cases = [
            dict(client_address="unknown"),        # postgrey crashed on this
            dict(client_address=None),
            dict(client_address=""),
            dict(client_address="::ffff:192.0.2.1"),
            dict(client_address="2001:db8::1%eth0"),
            dict(client_address="300.1.2.3"),
            dict(sender=None),
            dict(recipient=None),
            dict(recipient=""),
            dict(recipient="no-at-sign"),
            dict(sender="@@@", recipient="@"),
            dict(sender="a" * 1500 + "@example.org"),
            dict(recipient="b" * 1500 + "@example.com"),
            dict(sender="prvs==", recipient="x@y"),
            dict(sender="SRS1=x==y=z@q", recipient="x@y"),
            dict(sender="+@example.org"),
            dict(client_name=b"\xff\xfe odd\x01name", helo_name="[]"),
            dict(sender="\u00e9l\u00e8ve@\u00e9cole.example"),
        ]
        c = self.connect(d)
        for n, extra in enumerate(cases):
            with self.subTest(case=n, extra=repr(extra)[:80]):
                r = make_request(**extra)
                reply = c.request(r)
                self.assertRegex(reply, REPLY_RE)
                self.assertIn(reply_action(reply), ("DEFER_IF_PERMIT",
                                                    "DUNNO"))
        self.assertTrue(d.running())
        self.assertEqual(d.ask(make_request(protocol_state="DATA")),
                         "action=DUNNO\n\n")


class HostileInput(ProtocolTestCase):
    """Malformed input closes that connection, silently, and only that one."""

    def setUp(self):
        self.d = self.daemon(["--delay", "2"])
        self.n = 0

    def check_hostile(self, payload, what, answered_first=False):
        self.n += 1
        # A bystander in the middle of its own request, and one idle.
        first = encode_request(rcpt(self.n, "bystander"))
        bystander = self.connect(self.d)
        bystander.send(first[:len(first) // 2])
        idle = self.connect(self.d)

        victim = self.connect(self.d)
        if answered_first:
            self.assertEqual(
                victim.request(make_request(protocol_state="CONNECT")),
                "action=DUNNO\n\n")
        send_ignoring_reset(victim, payload)
        self.assertClosedSilently(victim, what=what)

        bystander.send(first[len(first) // 2:])
        self.assertEqual(reply_action(bystander.read_reply()),
                         "DEFER_IF_PERMIT", what)
        self.assertEqual(
            idle.request(make_request(protocol_state="CONNECT")),
            "action=DUNNO\n\n", what)
        self.assertEqual(reply_action(self.d.ask(rcpt(self.n, "after"))),
                         "DEFER_IF_PERMIT", what)
        self.assertTrue(self.d.running(), what)

    def good(self, **kw):
        return encode_request(make_request(**kw))

    def test_nul_byte(self):
        self.check_hostile(self.good(client_name="a\x00b"), "NUL in value")
        self.check_hostile(b"request=smtpd_access_policy\n\x00\n\n",
                           "NUL alone")
        self.check_hostile(self.good().replace(b"request=", b"req\x00uest="),
                           "NUL in name")

    def test_line_without_equals(self):
        self.check_hostile(
            b"request=smtpd_access_policy\nprotocol_state=RCPT\nhello\n\n",
            "line without '='")

    def test_empty_attribute_name(self):
        self.check_hostile(self.good()[:-1] + b"=value\n\n", "empty name")

    def test_unknown_request_value(self):
        mark = self.d.log_mark()
        self.check_hostile(
            self.good(request="smtpd_access_policy_v2"), "unknown request=")
        # Logged like other malformed input (and rate-limited with it).
        self.d.wait_log(r"warning: .*malformed policy request \(unknown "
                        r"request=smtpd_access_policy_v2\), closing connection",
                        mark)
        self.check_hostile(self.good(request=""), "empty request=")

    def test_missing_request_attribute(self):
        self.check_hostile(self.good(request=None), "no request=")

    def test_empty_request(self):
        self.check_hostile(b"\n", "empty request")

    def test_repeated_known_attribute(self):
        data = self.good(recipient="a@example.com")
        self.check_hostile(data[:-1] + b"recipient=b@example.com\n\n",
                           "recipient= twice")

    def test_line_longer_than_2048_bytes(self):
        filler = b"x_filler=" + b"a" * (2049 - 9)
        self.assertEqual(len(filler), 2049)
        self.check_hostile(self.good()[:-1] + filler + b"\n\n",
                           "2049-byte line")
        self.check_hostile(b"request=smtpd_access_policy\nx=" +
                           b"b" * 100000, "endless line")

    def test_request_larger_than_16k(self):
        lines = b"".join(b"x_fill%d=%s\n" % (i, b"c" * 1990)
                         for i in range(9))
        data = self.good()[:-1] + lines + b"\n"
        self.assertGreater(len(data), 17 * 1024)
        self.check_hostile(data, "17 KiB request")

    def test_more_than_100_attributes(self):
        attrs = list(make_request().items())
        attrs += [("x_a%d" % i, "1") for i in range(101 - len(attrs))]
        self.assertEqual(len(attrs), 101)
        self.check_hostile(encode_request(attrs), "101 attributes")

    def test_random_garbage(self):
        rng = random.Random(4242)
        payloads = [
            bytes(rng.randrange(256) for _ in range(5000)),
            bytes(rng.randrange(256) for _ in range(300)) + b"\n\n",
            b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(
                rng.randrange(256) for _ in range(500)),
            b"\n\n\n\n",
            b"=\n\n",
        ]
        for n, payload in enumerate(payloads):
            with self.subTest(payload=n):
                self.check_hostile(payload, "garbage %d" % n)

    def test_hostile_request_after_good_ones_on_same_connection(self):
        self.check_hostile(b"request=smtpd_access_policy\nnonsense\n\n",
                           "after a good request", answered_first=True)

    def test_protocol_error_is_logged(self):
        mark = self.d.log_mark()
        self.check_hostile(b"request=smtpd_access_policy\nhello\n\n",
                           "logged")
        self.d.wait_log(r"warning: .*malformed policy request \(line "
                        r"without '='\), closing connection", mark)

    def test_limits_are_inclusive(self):
        c = self.connect(self.d)
        # A 2048-byte line is allowed.
        filler = b"x_filler=" + b"a" * (2048 - 9)
        data = encode_request(rcpt(1, "limits"))[:-1] + filler + b"\n\n"
        self.assertEqual(reply_action(self._raw(c, data)), "DEFER_IF_PERMIT")
        # 100 attributes are allowed.
        attrs = list(rcpt(2, "limits").items())
        attrs += [("x_a%d" % i, "1") for i in range(100 - len(attrs))]
        self.assertEqual(len(attrs), 100)
        self.assertEqual(reply_action(c.request(attrs)), "DEFER_IF_PERMIT")
        # A 15 KiB request is allowed.
        lines = b"".join(b"x_fill%d=%s\n" % (i, b"c" * 1900)
                         for i in range(7))
        data = encode_request(rcpt(3, "limits"))[:-1] + lines + b"\n"
        self.assertLess(len(data), 16384)
        self.assertEqual(reply_action(self._raw(c, data)), "DEFER_IF_PERMIT")

    @staticmethod
    def _raw(c, data):
        c.send(data)
        return c.read_reply()


class IdleTimeout(ProtocolTestCase):

    def setUp(self):
        self.d = self.daemon(["--delay", "2", "-o", "idle_timeout=1"])

    def test_idle_connection_is_closed(self):
        c = self.connect(self.d)
        start = time.monotonic()
        self.assertClosedSilently(c, timeout=8, what="idle connection")
        elapsed = time.monotonic() - start
        self.assertGreater(elapsed, 0.5)
        self.assertLess(elapsed, 6)

    def test_idle_after_a_request_is_closed(self):
        c = self.connect(self.d)
        self.assertEqual(c.request(make_request(protocol_state="CONNECT")),
                         "action=DUNNO\n\n")
        start = time.monotonic()
        self.assertClosedSilently(c, timeout=8, what="idle after request")
        self.assertLess(time.monotonic() - start, 6)

    def test_half_sent_request_is_closed_when_idle(self):
        c = self.connect(self.d)
        c.send(encode_request(rcpt(1, "slow"))[:100])
        self.assertClosedSilently(c, timeout=8, what="partial request")

    def test_connection_waiting_for_an_answer_is_not_idle(self):
        # A request the store has not answered yet (another process holds
        # the LMDB write lock, as greyholdctl may) is the daemon's turn,
        # not the client's: the idle timer must not close the connection
        # and drop the answer.
        db = harness.LmdbWriteLock(self.d.dbdir)
        self.addCleanup(db.close)
        db.acquire()
        c = self.connect(self.d)
        c.send_request(rcpt(1, "waiting"))
        try:
            c.assert_silent(2.5)
        except AssertionError as e:
            self.fail("idle_timeout=1 closed a connection whose request was "
                      "still waiting for the store (%s); its answer is lost"
                      % e)
        finally:
            db.release()
        self.assertEqual(reply_action(c.read_reply()), "DEFER_IF_PERMIT")

    def test_busy_connection_is_not_closed(self):
        c = self.connect(self.d)
        start = time.monotonic()
        i = 0
        while time.monotonic() - start < 2.6:
            # Each read restarts the idle timer.
            self.assertEqual(c.request(make_request(protocol_state="CONNECT")),
                             "action=DUNNO\n\n", "request %d" % i)
            i += 1
            time.sleep(0.25)
        self.assertGreaterEqual(i, 5)


class ConnectionLimit(ProtocolTestCase):

    def test_max_connections(self):
        d = self.daemon(["--delay", "2", "-o", "max_connections=5"])
        time.sleep(0.3)   # let the readiness probe's connection go away
        clients = []
        for n in range(5):
            for attempt in range(30):
                c = self.connect(d)
                try:
                    reply = c.request(rcpt(n, "limit"))
                    break
                except ConnectionClosed:
                    # The start probe was still counted; try again.
                    c.close()
                    time.sleep(0.1)
            else:
                self.fail("connection %d never accepted" % n)
            self.assertEqual(reply_action(reply), "DEFER_IF_PERMIT")
            clients.append(c)

        mark = d.log_mark()
        sixth = self.connect(d)
        start = time.monotonic()
        send_ignoring_reset(sixth, encode_request(rcpt(6, "limit")))
        self.assertClosedSilently(sixth, timeout=5, what="6th connection")
        self.assertLess(time.monotonic() - start, 3)
        d.wait_log(r"connection limit \(5\) reached", mark)

        # The first five are still served.
        for n, c in enumerate(clients):
            self.assertEqual(reply_action(c.request(rcpt(n, "limit"))),
                             "DEFER_IF_PERMIT", "connection %d" % n)

        # Closing one frees its place.
        clients.pop().close()
        deadline = time.monotonic() + 5
        while True:
            c = d.client()
            try:
                reply = c.request(rcpt(9, "limit"))
                c.close()
                break
            except ConnectionClosed:
                c.close()
                if time.monotonic() > deadline:
                    self.fail("no connection accepted after one closed")
                time.sleep(0.1)
        self.assertEqual(reply_action(reply), "DEFER_IF_PERMIT")


class HalfClose(ProtocolTestCase):

    def setUp(self):
        self.d = self.daemon(TEXT_ARGS)

    def test_half_closed_connection_gets_its_answers(self):
        kinds = ["rcpt", "data", "rcpt", "rcpt", "sasl", "rcpt"]
        c = self.connect(self.d)
        c.send(b"".join(encode_request(request_of_kind(i, k, "half"))
                        for i, k in enumerate(kinds)))
        c.shutdown_write()
        for i, kind in enumerate(kinds):
            self.check_reply(c.read_reply(), i, kind, "half")
        # Then the daemon closes its side.
        self.assertEqual(c.read_until_closed(5), b"")

    def test_half_closed_inside_a_request(self):
        c = self.connect(self.d)
        c.send(encode_request(rcpt(1, "cut")) +
               encode_request(rcpt(2, "cut"))[:50])
        c.shutdown_write()
        self.check_reply(c.read_reply(), 1, "rcpt", "cut")
        self.assertEqual(c.read_until_closed(5), b"")


@unittest.skipUnless(harness.ipv6_loopback_available(), "no IPv6 loopback")
class IPv6Listener(ProtocolTestCase):

    def test_ipv6_listener(self):
        d = self.daemon(["--delay", "2"], inet="::1")
        self.assertIn("listening on inet:[::1]:%d" % d.port, d.log())
        c = self.connect(d)
        self.assertEqual(c.sock.family, socket.AF_INET6)
        req = make_request(client_address="2001:db8::25",
                           recipient="v6@rcpt.example")
        self.assertEqual(reply_action(c.request(req)), "DEFER_IF_PERMIT")
        self.assertEqual(reply_action(c.request(req)), "DEFER_IF_PERMIT")
        # (The log may be written after the reply: wait for the line.)
        d.wait_log(r"reason=early-retry .*recipient=v6@rcpt\.example$")
        self.assertEqual(c.request(make_request(protocol_state="DATA")),
                         "action=DUNNO\n\n")


class UnixListener(ProtocolTestCase):

    def sock_path(self):
        return os.path.join(self.tmpdir(), "greyhold.sock")

    def test_unix_socket_with_mode_0600(self):
        path = self.sock_path()
        d = self.daemon(["--delay", "2", "-o", "unix_mode=0600"], inet=None,
                        unix=path)
        st = os.stat(path)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        c = self.connect(d)
        self.assertEqual(c.sock.family, socket.AF_UNIX)
        self.assertEqual(reply_action(c.request(rcpt(1, "unix"))),
                         "DEFER_IF_PERMIT")
        self.assertEqual(c.request(make_request(protocol_state="DATA")),
                         "action=DUNNO\n\n")

    def test_unix_socket_default_mode_and_removal(self):
        path = self.sock_path()
        d = self.daemon(["--delay", "2"], inet=None, unix=path)
        # greyhold.conf(5): unix_mode defaults to 0660 (Postfix's group).
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o660)
        self.assertEqual(d.stop(), 0)
        self.assertFalse(os.path.exists(path),
                         "socket file left behind after SIGTERM")

    def test_stale_socket_file_is_replaced(self):
        path = self.sock_path()
        d = self.daemon(["--delay", "2"], inet=None, unix=path)
        d.kill()
        self.assertTrue(os.path.exists(path))
        d.start()
        self.assertEqual(reply_action(d.ask(rcpt(1, "stale"))),
                         "DEFER_IF_PERMIT")

    def test_unix_and_inet_together_share_state(self):
        path = self.sock_path()
        d = self.daemon(["--delay", "2"], unix=path)
        req = rcpt(1, "both")
        with d.client() as c:
            self.assertEqual(reply_action(c.request(req)), "DEFER_IF_PERMIT")
        with d.unix_client() as c:
            self.assertEqual(reply_action(c.request(req)), "DEFER_IF_PERMIT")
        d.wait_log(r"reason=early-retry .*recipient=r1@d1\.both$")


if __name__ == "__main__":
    harness.main()
