"""The Redis backend (store = redis://...) against a real redis-server.

Each test starts its own redis-server on a free loopback port, without
persistence, in a temporary directory, and stops it by its PID at the end.
The engine scenarios run the same request sequence against an LMDB daemon
and a Redis daemon side by side and expect identical replies and identical
decision log lines.  Then: two daemons sharing one Redis, a flushed script
cache, a replica promoted to primary, privacy mode, Redis killed and
restarted, Redis hung (SIGSTOP), pipelining, the live whitelist in Redis,
greyholdctl on a Redis store (whitelist add/del/list reach every daemon;
the other commands refuse), and AUTH/ACL/SELECT.

Skipped when redis-server is not installed, unless GREYHOLD_REQUIRE_E2E=1
(then that is a failure).  Standard library only.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import unittest

import harness
from harness import (GreyholdTestCase, REPLY_RE, align_to_second, free_port,
                     make_request, reply_action, sleep_until)
from harness import ctl_bin

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")
START_TIMEOUT = 5.0
# The daemon gives up on a command after 2 s, checked every 0.25 s.
REQUEST_TIMEOUT = 2.0
NAME = "mail.example.net"


def require_redis():
    missing = [name for name, path in (("redis-server", REDIS_SERVER),
                                       ("redis-cli", REDIS_CLI)) if not path]
    if not missing:
        return
    why = "%s not installed (Debian: redis-server)" % " and ".join(missing)
    if os.environ.get("GREYHOLD_REQUIRE_E2E") == "1":
        raise AssertionError(why + ", and GREYHOLD_REQUIRE_E2E=1")
    raise unittest.SkipTest(why)


class RedisServer(harness.ServerProcess):
    """One redis-server process on a loopback port, no persistence."""

    def __init__(self, workdir, extra=()):
        super().__init__(workdir, "redis.log")
        self.extra = list(extra)
        self.port = None

    def start(self, port=None):
        for _ in range(5):
            self.port = port or free_port()
            self.spawn([REDIS_SERVER, "--port", str(self.port), "--bind",
                        "127.0.0.1", "--save", "", "--appendonly", "no",
                        "--daemonize", "no", "--dir", self.workdir,
                        "--logfile", ""] + self.extra)
            if self.wait_answering(self.port, START_TIMEOUT):
                return self
            self.kill()
            if port is not None:
                break
        raise RuntimeError("redis-server did not start:\n%s" % self.log())

    def url(self, db=0):
        return "redis://127.0.0.1:%d/%d" % (self.port, db)

    def cli(self, *args, db=0, auth=()):
        """Run redis-cli; returns its stdout (raw protocol-free text)."""
        argv = [REDIS_CLI, "-h", "127.0.0.1", "-p", str(self.port),
                "-n", str(db), "--no-auth-warning"]
        if auth:
            user, password = auth
            if user:
                argv += ["--user", user]
            argv += ["--pass", password]
        out = subprocess.run(argv + [str(a) for a in args], check=True,
                             capture_output=True, timeout=10)
        return out.stdout.decode("utf-8", "replace").strip()


def req(client="192.0.2.10", sender="alice@example.org",
        recipient="bob@example.com"):
    return make_request(client_address=client, sender=sender,
                        recipient=recipient, client_name=NAME)


class RedisTestCase(GreyholdTestCase):

    def setUp(self):
        require_redis()

    def redis(self, extra=()):
        r = RedisServer(self.tmpdir(), extra)
        self.addCleanup(self._dump_redis_log_on_failure, r)
        self.addCleanup(r.stop)
        return r.start()

    def _dump_redis_log_on_failure(self, r):
        outcome = getattr(self, "_outcome", None)
        if outcome is not None and not getattr(outcome, "success", True):
            print("\n---- redis-server log ----\n%s---- end ----"
                  % r.log()[-3000:])

    def redis_daemon(self, redis, args=(), db=0, settings=(), **kw):
        opts = ["-o", "store=%s" % redis.url(db)]
        for s in settings:
            opts += ["-o", s]
        return self.daemon(list(args) + opts, **kw)

    def ask(self, d, request, timeout=harness.REPLY_TIMEOUT):
        """(reply, decision log line) for one request on a fresh connection."""
        mark = d.log_mark()
        reply = d.ask(request, timeout)
        self.assertRegex(reply, REPLY_RE)
        line = d.wait_log(r"^greyhold: action=", mark)
        return reply, line

    def wait_reply(self, d, request, want, timeout, interval=0.2):
        """Ask until want(reply) holds; returns the reply, or fails."""
        deadline = time.monotonic() + timeout
        while True:
            reply = d.ask(request)
            if want(reply):
                return reply
            if time.monotonic() > deadline:
                self.fail("no reply like that within %.0fs; last %r"
                          % (timeout, reply))
            time.sleep(interval)


class SameAnswersAsLmdb(RedisTestCase):
    """The script must decide exactly like engine.c + db.c."""

    def run_side_by_side(self, args, steps, attempts=3):
        """steps: (second offset, request, expected reply action, expected
        log prefix after "greyhold: ").  Every request goes to both daemons
        in the same whole second; replies and log lines must match.

        The engine counts whole seconds, so a step that spills into the next
        second (a loaded machine, a sanitizer build) proves nothing either
        way: the scenario then starts again on fresh state, a few times.
        A mismatch within a step's second fails at once."""
        for attempt in range(attempts):
            if self._side_by_side_once(args, steps):
                return
            print("side by side: a step spilled into the next second; "
                  "starting again (%d)" % (attempt + 1))
        self.fail("every attempt spilled into the next second")

    def _side_by_side_once(self, args, steps):
        redis = self.redis()
        lmdb_d = self.daemon(args)
        redis_d = self.redis_daemon(redis, args)
        t0 = align_to_second(0.1)
        for offset, request, action, logged in steps:
            sleep_until(t0 + offset)
            got_l = self.ask(lmdb_d, request)
            got_r = self.ask(redis_d, request)
            if time.time() >= t0 + offset + 0.8:
                lmdb_d.stop()
                redis_d.stop()
                return False
            what = "t+%ss %s %s -> %s" % (offset, request["client_address"],
                                          request["recipient"], got_l)
            self.assertEqual(got_r, got_l, what)
            self.assertEqual(reply_action(got_l[0]), action, what)
            self.assertTrue(got_l[1].startswith("greyhold: " + logged),
                            "%s: expected %r" % (what, logged))
        return True

    def test_engine_scenarios(self):
        r1 = req()
        same_net = req(client="192.0.2.77")
        other_rcpt = req(recipient="carol@example.com")
        other_net = req(client="192.0.3.10")
        v6 = req(client="2001:db8:1:2::10")
        v6_same_64 = req(client="2001:db8:1:2::ffff")
        defer, dunno = "DEFER_IF_PERMIT", "DUNNO"
        self.run_side_by_side(
            ["--delay", "2", "-o", "retry_window=3s",
             "--auto-whitelist-clients=0"],
            [
                (0, r1, defer, "action=greylist, reason=new,"),
                (0, same_net, defer,
                 "action=greylist, reason=early-retry (2s missing),"),
                (0, v6, defer, "action=greylist, reason=new,"),
                (1, r1, defer,
                 "action=greylist, reason=early-retry (1s missing),"),
                (1, other_rcpt, defer, "action=greylist, reason=new,"),
                (2, r1, dunno,
                 "action=pass, reason=triplet found, delay=2,"),
                (2, same_net, dunno, "action=pass, reason=triplet found, "
                 "client_name"),
                (2, other_net, defer, "action=greylist, reason=new,"),
                (2, v6_same_64, dunno,
                 "action=pass, reason=triplet found, delay=2,"),
                (3, other_rcpt, dunno,
                 "action=pass, reason=triplet found, delay=2,"),
                # other_net first seen at +2: at +6 the window (3 s) is over
                (6, other_net, defer,
                 "action=greylist, reason=new (seen too long ago),"),
                (6, other_net, defer,
                 "action=greylist, reason=early-retry (2s missing),"),
                (6, r1, dunno, "action=pass, reason=triplet found, "
                 "client_name"),
            ])

    def test_auto_whitelist(self):
        defer, dunno = "DEFER_IF_PERMIT", "DUNNO"
        unknown = req(client="unknown")
        self.run_side_by_side(
            ["--delay", "2", "--auto-whitelist-clients=1"],
            [
                (0, req(), defer, "action=greylist, reason=new,"),
                (0, unknown, defer, "action=greylist, reason=new,"),
                (2, req(), dunno,
                 "action=pass, reason=triplet found, delay=2,"),
                # One counted pass whitelists the client's /24.
                (2, req(sender="x@example.net", recipient="y@example.com"),
                 dunno, "action=pass, reason=client AWL,"),
                (2, req(client="192.0.2.200", recipient="z@example.com"),
                 dunno, "action=pass, reason=client AWL,"),
                (2, req(client="198.51.100.1"), defer,
                 "action=greylist, reason=new,"),
                # Clients without an address are never auto-whitelisted.
                (2, unknown, dunno,
                 "action=pass, reason=triplet found, delay=2,"),
                (2, req(client="unknown", recipient="w@example.com"), defer,
                 "action=greylist, reason=new,"),
            ])

    # Two identities per request, without DNS: the client network, and the
    # verified name's organisational domain, aligned because the sender is
    # in that domain (smart.h; no SPF, so the name identity never
    # auto-whitelists).  decide.c (the store thread and the loop's peek)
    # and greylist.lua must give the same replies and log lines.

    @staticmethod
    def named(net, org, rcpt="bob@example.com", host=None):
        """A request from net.10 named HOST.ORG, sender in ORG."""
        return make_request(client_address="%s.10" % net,
                            client_name="%s.%s" % (host or "mx" + net.split(
                                ".")[-1], org),
                            sender="b@%s" % org, recipient=rcpt)

    def test_two_identities(self):
        defer, dunno = "DEFER_IF_PERMIT", "DUNNO"
        n = self.named
        pool = "identity=name:pool.test, "
        self.run_side_by_side(
            ["--delay", "2", "-o", "retry_window=4s",
             "--auto-whitelist-clients=0"],
            [
                (0, n("198.51.100", "pool.test"), defer,
                 "action=greylist, reason=new,"),
                (0, n("198.51.100", "pool.test"), defer,
                 "action=greylist, reason=early-retry (2s missing),"),
                # Restarts: one identity restarting is "new", both "restart".
                (0, n("198.51.110", "q.test"), defer,
                 "action=greylist, reason=new,"),
                (0, n("198.51.120", "r.test"), defer,
                 "action=greylist, reason=new,"),
                # The network only: no name ("unknown" is not one).
                (0, make_request(client_address="198.51.130.10",
                                 client_name="unknown", sender="b@t.test"),
                 defer, "action=greylist, reason=new,"),
                # Another network of the pool: new there, early by name.
                (1, n("198.51.101", "pool.test"), defer,
                 "action=greylist, reason=early-retry (1s missing),"),
                # Both early: the fewest seconds left, whichever identity.
                (1, n("198.51.101", "pool.test"), defer,
                 "action=greylist, reason=early-retry (1s missing),"),
                (1, n("198.51.130", "t.test"), defer,
                 "action=greylist, reason=early-retry (1s missing),"),
                (1, n("198.51.130", "t.test"), defer,
                 "action=greylist, reason=early-retry (1s missing),"),
                # A third network passes by the name; its own triplet is
                # recorded as passed, so its next retry passes by itself.
                (2, n("198.51.102", "pool.test"), dunno,
                 "action=pass, reason=triplet found, delay=2, " + pool),
                (2, n("198.51.102", "pool.test"), dunno,
                 "action=pass, reason=triplet found, client_name"),
                # Early under its network, passed under the name.
                (2, n("198.51.101", "pool.test"), dunno,
                 "action=pass, reason=triplet found, " + pool),
                (2, n("198.51.101", "pool.test"), dunno,
                 "action=pass, reason=triplet found, client_name"),
                # Its own network's triplet decides first.
                (3, n("198.51.100", "pool.test"), dunno,
                 "action=pass, reason=triplet found, delay=3, client_name"),
                # Another recipient: a triplet of its own under both.
                (3, n("198.51.100", "pool.test", "carol@example.com"), defer,
                 "action=greylist, reason=new,"),
                (3, n("198.51.130", "t.test"), dunno,
                 "action=pass, reason=triplet found, delay=3, client_name"),
                # q.test: another network restarts the name: "new".
                (5, n("198.51.111", "q.test"), defer,
                 "action=greylist, reason=new,"),
                # ... and the first network, restarted, is early by name.
                (5, n("198.51.110", "q.test"), defer,
                 "action=greylist, reason=early-retry (2s missing),"),
                # r.test: both identities restart.
                (5, n("198.51.120", "r.test"), defer,
                 "action=greylist, reason=new (seen too long ago),"),
                (5, n("198.51.103", "pool.test"), dunno,
                 "action=pass, reason=triplet found, " + pool),
            ])

    def test_two_identities_auto_whitelist(self):
        defer, dunno = "DEFER_IF_PERMIT", "DUNNO"
        n = self.named
        self.run_side_by_side(
            ["--delay", "2", "--auto-whitelist-clients=1"],
            [
                (0, n("198.51.100", "pool.test"), defer,
                 "action=greylist, reason=new,"),
                # A pass by the name counts for the passing network...
                (2, n("198.51.101", "pool.test"), dunno,
                 "action=pass, reason=triplet found, delay=2, "
                 "identity=name:pool.test, "),
                (2, n("198.51.101", "pool.test", "carol@example.com"), dunno,
                 "action=pass, reason=client AWL,"),
                # ... not for the name (no SPF proof): another network of
                # the pool, another recipient, is greylisted.
                (2, n("198.51.102", "pool.test", "dave@example.com"), defer,
                 "action=greylist, reason=new,"),
                (2, n("198.51.100", "pool.test"), dunno,
                 "action=pass, reason=triplet found, delay=2, client_name"),
                (2, n("198.51.100", "pool.test", "erin@example.com"), dunno,
                 "action=pass, reason=client AWL,"),
            ])


class SharedState(RedisTestCase):

    def test_two_daemons_share_one_redis(self):
        redis = self.redis()
        mx1 = self.redis_daemon(redis, ["--delay", "1"])
        mx2 = self.redis_daemon(redis, ["--delay", "1"])
        reply, line = self.ask(mx1, req())
        self.assertEqual(reply_action(reply), "DEFER_IF_PERMIT")
        first = time.time()
        # The other MX knows the triplet already.
        reply, line = self.ask(mx2, req())
        self.assertTrue(line.startswith("greyhold: action=greylist, "
                                        "reason=early-retry"), line)
        sleep_until(first + 1.05)
        reply, line = self.ask(mx2, req())
        self.assertEqual(reply, "action=DUNNO\n\n")
        self.assertRegex(line, r"^greyhold: action=pass, reason=triplet "
                         r"found, delay=[12], ")
        reply, line = self.ask(mx1, req())
        self.assertTrue(line.startswith("greyhold: action=pass, "
                                        "reason=triplet found, client_name"),
                        line)

    def test_host_name_is_looked_up(self):
        redis = self.redis()
        d = self.daemon(["--delay", "60", "-o",
                         "store=redis://localhost:%d" % redis.port])
        self.wait_reply(d, req(),
                        lambda r: r.startswith("action=DEFER_IF_PERMIT"),
                        timeout=5)

    def test_request_right_after_start_waits_for_the_name(self):
        """Requests that arrive while the host name of the store is being
        looked up wait for the connection (not the failure action)."""
        redis = self.redis()
        for run in range(10):
            d = self.daemon(["--delay", "60", "-o",
                             "store=redis://localhost:%d" % redis.port],
                            start=False, port=free_port())
            d.port = d.fixed_port
            d._spawn()
            deadline = time.monotonic() + harness.READY_TIMEOUT
            while True:
                try:
                    c = self.connect(d)
                    break
                except OSError:
                    self.assertLess(time.monotonic(), deadline)
                    time.sleep(0.001)
            rcpt = "first%d@example.com" % run
            c.send_request(req(recipient=rcpt))
            reply = c.read_reply()
            self.assertTrue(reply.startswith("action=DEFER_IF_PERMIT"),
                            "run %d: %r" % (run, reply))
            d.wait_log(r"^greyhold: action=greylist, reason=new, .*%s" % rcpt)
            d.stop()

    def test_unix_socket_and_database(self):
        path = os.path.join(self.tmpdir(), "redis.sock")
        redis = self.redis(["--unixsocket", path, "--unixsocketperm", "700"])
        d = self.daemon(["--delay", "60", "-o",
                         "store=unix://%s?db=2" % path])
        self.wait_reply(d, req(),
                        lambda r: r.startswith("action=DEFER_IF_PERMIT"),
                        timeout=5)
        self.assertEqual(redis.cli("DBSIZE", db=2), "1")

    def test_privacy_keys_hold_no_addresses(self):
        check = subprocess.run([harness.greyhold_bin(), "-n", "-c",
                                "/dev/null", "-o", "privacy=yes"],
                               capture_output=True, timeout=10)
        if b"built without" in check.stdout + check.stderr:
            self.skipTest("greyhold built without privacy support")
        redis = self.redis()
        workdir = self.tmpdir()
        d = self.redis_daemon(
            redis, ["--delay", "60"], workdir=workdir,
            settings=["privacy=yes", "privacy_key_file=%s"
                      % os.path.join(workdir, "privacy.key")])
        reply, line = self.ask(d, req())
        self.assertTrue(line.startswith("greyhold: action=greylist, "
                                        "reason=new,"), line)
        reply, line = self.ask(d, req(client="192.0.2.99"))
        self.assertTrue(line.startswith("greyhold: action=greylist, "
                                        "reason=early-retry"), line)
        self.assertEqual(redis.cli("DBSIZE"), "1")
        keys = redis.cli("--scan")
        self.assertTrue(keys.startswith("greyhold:t:{"), keys)
        for text in ("192.0.2", "alice", "example"):
            self.assertNotIn(text, keys)

    def test_script_cache_flushed(self):
        redis = self.redis()
        d = self.redis_daemon(redis, ["--delay", "60"])
        self.assertEqual(reply_action(d.ask(req())), "DEFER_IF_PERMIT")
        redis.cli("SCRIPT", "FLUSH")
        # EVALSHA gets NOSCRIPT; the daemon sends EVAL, which reloads it.
        reply, line = self.ask(d, req())
        self.assertTrue(line.startswith("greyhold: action=greylist, "
                                        "reason=early-retry"), line)
        reply, line = self.ask(d, req(recipient="other@example.com"))
        self.assertTrue(line.startswith("greyhold: action=greylist, "
                                        "reason=new"), line)
        self.assertNotIn("store failure", d.log())

    def test_replica_promoted(self):
        """A daemon whose address leads to a replica (a primary demoted in
        a failover) fails over to the failure action, drops the
        connection on READONLY, and works once that server is primary."""
        primary = self.redis()
        replica = self.redis(["--replicaof", "127.0.0.1", str(primary.port)])
        d = self.redis_daemon(replica, ["--delay", "60"])
        mark = d.log_mark()
        self.assertEqual(d.ask(req()), "action=DUNNO\n\n")
        d.wait_log(r"redis: request failed \(Read-only file system: "
                   r"READONLY", mark)
        replica.cli("REPLICAOF", "NO", "ONE")
        self.wait_reply(d, req(),
                        lambda r: r.startswith("action=DEFER_IF_PERMIT"),
                        timeout=8)


class Resp:
    """A minimal RESP client on one socket, for what redis-cli cannot do
    well (binary-safe arguments, typed replies, several calls in one
    second)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), 5)
        self.buf = b""

    def close(self):
        self.sock.close()

    def call(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if not isinstance(a, bytes):
                a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        return self._reply()

    def _line(self):
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("redis closed the connection")
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.sock.recv(65536)
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RuntimeError("unexpected reply %r" % line)


SCENARIOS = "decide_scenarios.txt"
SCRIPT = os.path.join("src", "daemon", "greylist.lua")
# tests/decide_scenarios.txt: parameters for every row.
TABLE_DELAY, TABLE_WINDOW, TABLE_MAX_AGE = 300, 172800, 3024000
ENGINE_REFRESH = 3600
GRACE = 3600


def srcdir():
    return os.environ.get("GREYHOLD_SRCDIR") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..")


def scenario_rows():
    path = os.path.join(srcdir(), "tests", SCENARIOS)
    rows = []
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            f_ = line.split()
            if len(f_) != 10:
                raise AssertionError("bad scenario line %r" % line)
            rows.append(dict(name=f_[0], awl=int(f_[1]), client=f_[2],
                             triplet=f_[3], action=f_[4], reason=f_[5],
                             left=int(f_[6]), delay=int(f_[7]),
                             client_after=f_[8], triplet_after=f_[9]))
    return rows


def record_at(text, now):
    """"first,last,passes" relative to now -> the script's value."""
    first, last, passes = (int(x) for x in text.split(","))
    return b"1 %d %d %d" % (now + first, now + last, passes)


class ScriptAgreesWithTable(RedisTestCase):
    """Every row of tests/decide_scenarios.txt through the Lua script that
    greyhold embeds, on a real redis-server: the same verdict, and the
    same records written (or not), as decide() in the library."""

    def test_every_scenario(self):
        redis = self.redis()
        with open(os.path.join(srcdir(), SCRIPT), "rb") as f:
            script = f.read()
        r = Resp(redis.port)
        self.addCleanup(r.close)
        sha = r.call("SCRIPT", "LOAD", script)
        rows = scenario_rows()
        self.assertGreaterEqual(len(rows), 20)
        for row in rows:
            with self.subTest(row=row["name"]):
                self.run_row(r, sha, row)

    def run_row(self, r, sha, row, attempts=5):
        """The rows are relative to now, and now is the server's clock:
        a row whose EVAL ran in another second than its preload is run
        again."""
        ckey, tkey = b"greyhold:c:{192.0.2.0/24}", \
            b"greyhold:t:{192.0.2.0/24}\0a@example.org\0b@example.com"
        for _ in range(attempts):
            r.call("FLUSHALL")
            now = int(r.call("TIME")[0])
            for key, text in ((ckey, row["client"]), (tkey, row["triplet"])):
                if text != "-":
                    r.call("SET", key, record_at(text, now))
            got = r.call("EVALSHA", sha, 2, ckey, tkey, TABLE_DELAY,
                         TABLE_WINDOW, TABLE_MAX_AGE, row["awl"],
                         ENGINE_REFRESH, GRACE,
                         "1" if row["awl"] > 0 else "0")
            if int(r.call("TIME")[0]) == now:
                break
        else:
            self.fail("every attempt spilled into the next second")
        action, reason, left, delay, wrote, corrupt, matched = got
        self.assertEqual((["pass", "defer"][action], reason.decode(), left,
                          delay),
                         (row["action"], row["reason"], row["left"],
                          row["delay"]), "verdict")
        self.assertEqual((corrupt, matched), (0, 0))
        for key, before, after in ((ckey, row["client"], row["client_after"]),
                                   (tkey, row["triplet"],
                                    row["triplet_after"])):
            value, ttl = r.call("GET", key), r.call("TTL", key)
            if after == "=":
                # Not written: as preloaded, and still without a TTL.
                if before == "-":
                    self.assertIsNone(value, key)
                else:
                    self.assertEqual(value, record_at(before, now), key)
                    self.assertEqual(ttl, -1, "%r was written" % key)
            else:
                self.assertEqual(value, record_at(after, now), key)
                self.assertGreater(ttl, 0, key)
        self.assertEqual(wrote, int(row["client_after"] != "=" or
                                    row["triplet_after"] != "="))


FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
SKEW = 600      # seconds the skewed MX's clock is ahead


class ClockSkew(RedisTestCase):
    """Two MX hosts whose clocks differ by minutes share one Redis: the
    Redis server's clock decides, so a retry on the other MX is neither
    early by the skew nor greylisted again."""

    def skewed_daemon(self, redis, args):
        if not os.path.exists(FAKETIME_LIB):
            self.skipTest("libfaketime not installed (Debian: libfaketime)")
        if harness.memory_checked():
            self.skipTest("LD_PRELOAD does not mix with sanitizers/wrappers")
        env = ["env", "LD_PRELOAD=" + FAKETIME_LIB, "FAKETIME=+%ds" % SKEW,
               "FAKETIME_DONT_FAKE_MONOTONIC=1"]
        # The preload works: the process sees the clock SKEW s ahead.
        out = subprocess.run(env + ["date", "+%s"], capture_output=True,
                             universal_newlines=True, timeout=10).stdout
        self.assertAlmostEqual(int(out), time.time() + SKEW, delta=5)
        d = self.daemon(list(args) + ["-o", "store=%s" % redis.url()],
                        start=False)
        plain_argv = d.argv
        d.argv = lambda: env + plain_argv()
        return d.start()

    def test_retry_on_a_skewed_mx(self):
        redis = self.redis()
        args = ["--delay", "3", "--auto-whitelist-clients=0",
                "-o", "x_greylist_header=yes"]
        mx1 = self.redis_daemon(redis, args)
        mx2 = self.skewed_daemon(redis, args)
        early = req(recipient="early@example.com")
        late = req(recipient="late@example.com")
        for attempt in range(3):
            t0 = align_to_second(0.1)
            reply, line = self.ask(mx1, early)
            self.assertTrue(line.startswith("greyhold: action=greylist, "
                                            "reason=new,"), line)
            reply, line = self.ask(mx2, late)
            self.assertTrue(line.startswith("greyhold: action=greylist, "
                                            "reason=new,"), line)
            # Early on the other MX: deferred, with the seconds left on
            # the one clock (not passed because mx2 runs 10 min ahead).
            reply, line = self.ask(mx2, early)
            if time.time() < t0 + 0.8:
                break
            redis.cli("FLUSHALL")       # spilled into the next second
        else:
            self.fail("every attempt spilled into the next second")
        self.assertEqual(reply_action(reply), "DEFER_IF_PERMIT", line)
        self.assertEqual(harness.seconds_left(reply), 3, reply)
        self.assertTrue(line.startswith("greyhold: action=greylist, "
                                        "reason=early-retry (3s missing),"),
                        line)
        sleep_until(t0 + 3)
        # First seen on the skewed MX, retried on the other after the
        # delay: passes (not "seen in the future", greylisted again).
        reply, line = self.ask(mx1, late)
        self.assertTrue(reply.startswith("action=PREPEND X-Greylist: "
                                         "delayed 3 seconds"), reply)
        self.assertTrue(line.startswith("greyhold: action=pass, "
                                        "reason=triplet found, delay=3,"),
                        line)
        reply, line = self.ask(mx2, early)
        self.assertTrue(line.startswith("greyhold: action=pass, "
                                        "reason=triplet found, delay=3,"),
                        line)
        # The skewed MX still dates its own header by its own clock.
        m = re.search(r"; (.*)$", reply.split("\n")[0])
        stamp = time.mktime(time.strptime(m.group(1),
                                          "%a, %d %b %Y %H:%M:%S +0000"))
        stamp -= time.timezone
        self.assertAlmostEqual(stamp, time.time() + SKEW, delta=5)


class Outages(RedisTestCase):

    def test_redis_killed_and_restarted(self):
        redis = self.redis()
        d = self.redis_daemon(redis, ["--delay", "60"])
        self.assertEqual(reply_action(d.ask(req())), "DEFER_IF_PERMIT")
        mark = d.log_mark()
        # A request in flight when Redis dies is answered at once, not
        # after the request timeout (SIGSTOP only keeps it in flight).
        redis.signal(signal.SIGSTOP)
        c = self.connect(d)
        c.send_request(req(recipient="in-flight@example.com"))
        time.sleep(0.3)
        killed = time.monotonic()
        redis.kill()
        self.assertEqual(c.read_reply(), "action=DUNNO\n\n")
        self.assertLess(time.monotonic() - killed, 1.0)
        # Answers keep coming, with the failure action, at once.
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < 2.5:
            t = time.monotonic()
            reply = d.ask(req(recipient="r%d@example.com" % n))
            self.assertEqual(reply, "action=DUNNO\n\n")
            self.assertLess(time.monotonic() - t, REQUEST_TIMEOUT)
            n += 1
            time.sleep(0.05)
        elapsed = time.monotonic() - start
        log = d.log_since(mark)
        errors = re.findall(r"^greyhold: action=error, reason=store failure",
                            log, re.M)
        self.assertEqual(len(errors), n + 1, log)     # + the one in flight
        # The backend's own complaints: at most about one a second each.
        for what in ("redis: request failed", "redis: no connection"):
            count = log.count(what)
            self.assertGreaterEqual(count, 1, log)
            self.assertLessEqual(count, int(elapsed) + 2,
                                 "%s logged %d times in %.1fs" % (what, count,
                                                                  elapsed))
        # Back on the same port, empty: greylisting resumes by itself.
        redis.start(port=redis.port)
        reply = self.wait_reply(
            d, req(), lambda r: r.startswith("action=DEFER_IF_PERMIT"),
            timeout=8)
        d.wait_log(r"redis: connected to", mark)

    def test_hung_redis_answers_within_the_timeout(self):
        redis = self.redis()
        d = self.redis_daemon(redis, ["--delay", "60"])
        self.assertEqual(reply_action(d.ask(req())), "DEFER_IF_PERMIT")
        redis.signal(signal.SIGSTOP)
        try:
            t = time.monotonic()
            reply = d.ask(req(recipient="hung@example.com"))
            waited = time.monotonic() - t
            self.assertEqual(reply, "action=DUNNO\n\n")
            self.assertGreaterEqual(waited, REQUEST_TIMEOUT - 0.1)
            self.assertLess(waited, REQUEST_TIMEOUT + 1.0)
            # Now known to be down: no more waiting.
            t = time.monotonic()
            self.assertEqual(d.ask(req(recipient="next@example.com")),
                             "action=DUNNO\n\n")
            self.assertLess(time.monotonic() - t, 0.5)
        finally:
            redis.signal(signal.SIGCONT)
        self.wait_reply(
            d, req(recipient="after@example.com"),
            lambda r: r.startswith("action=DEFER_IF_PERMIT"), timeout=8)


class Pipelining(RedisTestCase):

    def test_many_requests_in_flight_on_several_connections(self):
        redis = self.redis()
        d = self.redis_daemon(redis, ["--delay", "60"])
        conns, per_conn = 8, 60
        replies = [None] * conns
        errors = []

        def run(i):
            try:
                with d.client() as c:
                    data = b"".join(
                        harness.encode_request(req(
                            client="198.51.%d.1" % i,
                            recipient="u%d@example.com" % j))
                        for j in range(per_conn))
                    c.send(data)
                    replies[i] = [c.read_reply() for _ in range(per_conn)]
            except Exception as e:      # reported below
                errors.append(e)

        threads = [threading.Thread(target=run, args=(i,))
                   for i in range(conns)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(errors, [])
        for i in range(conns):
            self.assertEqual(len(replies[i]), per_conn)
            for r in replies[i]:
                self.assertEqual(reply_action(r), "DEFER_IF_PERMIT", r)
        # One triplet record each, nothing else (no pass, no client record).
        self.assertEqual(redis.cli("DBSIZE"), str(conns * per_conn))
        log = d.log()
        self.assertEqual(log.count("action=greylist, reason=new,"),
                         conns * per_conn)
        self.assertNotIn("store failure", log)


class LiveWhitelist(RedisTestCase):

    def test_entry_put_with_redis_cli_applies_within_two_seconds(self):
        redis = self.redis()
        d = self.redis_daemon(redis, ["--delay", "60"])
        client = "203.0.113.5"
        reply, line = self.ask(d, req(client=client))
        self.assertEqual(reply_action(reply), "DEFER_IF_PERMIT")
        # What greyholdctl's redis_admin writes: the entry, then the
        # generation (redis_admin does both in one script).
        now = int(time.time())
        redis.cli("HSET", "greyhold:whitelist", "c:" + client,
                  "%d,0,added by the test, with commas" % now)
        redis.cli("INCR", "greyhold:wl_generation")
        start = time.monotonic()
        self.wait_reply(d, req(client=client),
                        lambda r: r == "action=DUNNO\n\n", timeout=3,
                        interval=0.1)
        self.assertLess(time.monotonic() - start, 2.5)
        reply, line = self.ask(d, req(client=client))
        self.assertTrue(line.startswith("greyhold: action=pass, reason=client "
                                        "whitelist (live),"), line)
        # An expired entry does not count; removal applies the same way.
        redis.cli("HSET", "greyhold:whitelist", "r:bob@example.com",
                  "%d,%d," % (now - 10, now - 1))
        redis.cli("HDEL", "greyhold:whitelist", "c:" + client)
        redis.cli("INCR", "greyhold:wl_generation")
        self.wait_reply(d, req(client=client),
                        lambda r: r.startswith("action=DEFER_IF_PERMIT"),
                        timeout=3, interval=0.1)


class CtlOnRedis(RedisTestCase):
    """greyholdctl with a config whose store is Redis: the live whitelist
    commands work on that Redis, the others refuse."""

    def setUp(self):
        super().setUp()
        if not os.access(ctl_bin(must_exist=False), os.X_OK):
            self.skipTest("greyholdctl not built next to GREYHOLD_BIN")
        self.workdir = self.tmpdir()

    def config(self, redis):
        """The config file the daemons and greyholdctl read."""
        wl_clients = os.path.join(self.workdir, "wl_clients")
        wl_rcpts = os.path.join(self.workdir, "wl_recipients")
        for path in (wl_clients, wl_rcpts):
            open(path, "w").close()
        path = os.path.join(self.workdir, "greyhold.conf")
        with open(path, "w") as f:
            f.write("store = %s\ndelay = 60s\nwhitelist_clients = %s\n"
                    "whitelist_recipients = %s\n"
                    % (redis.url(), wl_clients, wl_rcpts))
        return path

    def ctl(self, conf, *args, expected=0):
        r = subprocess.run([ctl_bin(), "-c", conf] + list(args),
                           capture_output=True, universal_newlines=True,
                           timeout=30)
        self.assertEqual(r.returncode, expected, "greyholdctl %s -> %d\n%s%s"
                         % (" ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def test_whitelist_commands_reach_every_daemon(self):
        redis = self.redis()
        conf = self.config(redis)
        mx1 = self.daemon(config=conf)
        mx2 = self.daemon(config=conf)
        inside = req(client="198.51.100.7")
        for d in (mx1, mx2):
            reply, line = self.ask(d, inside)
            self.assertEqual(reply_action(reply), "DEFER_IF_PERMIT", line)

        # An entry the daemon would reject is refused, and nothing written.
        r = self.ctl(conf, "whitelist", "add", "client", "198.51.100.0/33",
                     expected=2)
        self.assertTrue(r.stderr.strip(), "no error message")
        self.assertEqual(redis.cli("EXISTS", "greyhold:whitelist"), "0")

        self.ctl(conf, "whitelist", "add", "client", "198.51.100.0/24",
                 "--comment", "partner")
        added = time.monotonic()
        for d in (mx1, mx2):
            self.wait_reply(d, inside, lambda r: r == "action=DUNNO\n\n",
                            timeout=3, interval=0.1)
        self.assertLess(time.monotonic() - added, 2.5)
        for d in (mx1, mx2):
            reply, line = self.ask(d, inside)
            self.assertTrue(line.startswith(
                "greyhold: action=pass, reason=client whitelist (live),"),
                line)
        # Outside the network: still greylisted.
        reply, line = self.ask(mx1, req(client="198.51.101.7"))
        self.assertEqual(reply_action(reply), "DEFER_IF_PERMIT", line)

        listed = json.loads(self.ctl(conf, "--json", "whitelist",
                                     "list").stdout)
        self.assertEqual(len(listed), 1, listed)
        self.assertEqual(listed[0]["kind"], "client")
        self.assertEqual(listed[0]["entry"], "198.51.100.0/24")
        self.assertEqual(listed[0]["comment"], "partner")
        self.assertEqual(listed[0]["expires"], 0)
        self.assertFalse(listed[0]["expired"])
        self.assertIn("198.51.100.0/24",
                      self.ctl(conf, "whitelist", "list").stdout)

        r = self.ctl(conf, "whitelist", "del", "client", "198.51.100.0/24")
        self.assertIn("deleted", r.stdout)
        for d in (mx1, mx2):
            self.wait_reply(d, inside,
                            lambda r: r.startswith("action=DEFER_IF_PERMIT"),
                            timeout=3, interval=0.1)
        self.ctl(conf, "whitelist", "del", "client", "198.51.100.0/24",
                 expected=1)
        self.assertEqual(json.loads(self.ctl(conf, "--json", "whitelist",
                                             "list").stdout), [])

    def test_stats_shows_the_store_and_the_daemons_counters(self):
        redis = self.redis()
        conf = self.config(redis)
        r = self.ctl(conf, "stats", expected=0)
        self.assertIn("store:           %s" % redis.url(), r.stdout)
        self.assertIn("metrics not enabled", r.stdout)
        x = json.loads(self.ctl(conf, "--json", "stats", expected=0).stdout)
        self.assertEqual(x["store"], redis.url())
        self.assertFalse(x["daemon"]["metrics_configured"])
        self.assertEqual(redis.cli("DBSIZE"), "0")

    def test_other_commands_refuse_a_redis_store(self):
        redis = self.redis()
        conf = self.config(redis)
        for args in (("list",), ("dump",),
                     ("check", "192.0.2.1", "a@example.org",
                      "b@example.com")):
            with self.subTest(args=args):
                r = self.ctl(conf, *args, expected=2)
                self.assertIn("store = %s" % redis.url(), r.stderr)
                self.assertIn("'whitelist add'", r.stderr)
                self.assertEqual(r.stdout, "")
        self.assertEqual(redis.cli("DBSIZE"), "0")

    def test_redis_down(self):
        redis = self.redis()
        conf = self.config(redis)
        redis.stop()
        r = self.ctl(conf, "whitelist", "list", expected=2)
        self.assertIn("cannot connect to %s" % redis.url(), r.stderr)


class Authentication(RedisTestCase):

    def test_password_acl_user_and_database(self):
        redis = self.redis(["--requirepass", "default-secret",
                            "--user", "mx", "on", ">mx-secret", "~*", "&*",
                            "+@all"])
        by_password = self.redis_daemon(
            redis, ["--delay", "60"], db=3,
            settings=["redis_password=default-secret"])
        by_user = self.redis_daemon(
            redis, ["--delay", "60"], db=3,
            settings=["redis_user=mx", "redis_password=mx-secret"])
        wrong = self.redis_daemon(
            redis, ["--delay", "60"], settings=["redis_password=wrong"])

        self.assertEqual(reply_action(by_password.ask(req())),
                         "DEFER_IF_PERMIT")
        reply, line = self.ask(by_user, req())
        self.assertTrue(line.startswith("greyhold: action=greylist, "
                                        "reason=early-retry"), line)
        auth = ("", "default-secret")
        self.assertEqual(redis.cli("DBSIZE", db=3, auth=auth), "1")
        self.assertEqual(redis.cli("DBSIZE", db=0, auth=auth), "0")

        self.assertEqual(wrong.ask(req()), "action=DUNNO\n\n")
        wrong.wait_log(r"redis: no connection .*WRONGPASS")

    def test_minimal_acl_user_from_the_manual(self):
        """The ACL that greyhold(8) "Configuring Redis" documents is
        enough: the script reads TIME, so it must be allowed."""
        with open(os.path.join(srcdir(), "man", "greyhold.8")) as f:
            text = f.read()
        m = re.search(r"^user greyhold on (.*?)\n\.Ed", text, re.M | re.S)
        self.assertIsNotNone(m, "no ACL example in greyhold.8")
        rules = m.group(1).replace("\\e", "\\").split()
        self.assertIn(">SECRET", rules)
        redis = self.redis(["--user", "greyhold", "on"] + rules)
        d = self.redis_daemon(redis, ["--delay", "60"], settings=[
            "redis_user=greyhold", "redis_password=SECRET"])
        reply, line = self.ask(d, req())
        self.assertTrue(line.startswith("greyhold: action=greylist, "
                                        "reason=new,"), line)
        reply, line = self.ask(d, req())
        self.assertTrue(line.startswith("greyhold: action=greylist, "
                                        "reason=early-retry"), line)


if __name__ == "__main__":
    harness.main()
