"""The Redis backend behind Redis Sentinel (store = sentinel://...).

Each test starts its own cluster on loopback: one primary, one replica and
three sentinels (redis-sentinel, quorum 2, down-after 1 s, failover
timeout 3 s, so a failover takes a few seconds), and greyhold daemons
pointing at the sentinels.  Then: kill -9 the primary under continuous
load (both daemons follow the promoted replica, the time from the kill to
the first good answer from the new primary is printed, nothing crashes or
leaks descriptors, a triplet first seen and replicated before the failover
passes after it on either MX, the metrics count the failover); SIGSTOP the
primary (a hung primary); a planned failover (SENTINEL FAILOVER); all
sentinels down at start (a clear error, failure_action meanwhile,
recovery when they come up); a wrong master name (a clear error); the
data nodes' and the sentinels' passwords kept apart; greyholdctl's Redis
commands and its stats through the sentinels.

Skipped when redis-server, redis-cli or redis-sentinel is missing, unless
GREYHOLD_REQUIRE_E2E=1 (then that is a failure).  Standard library only.
"""

import os
import re
import shutil
import signal
import subprocess
import threading
import time
import unittest
import urllib.request

import harness
from harness import (GreyholdTestCase, ctl_bin, free_port, make_request,
                     reply_action)

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")
REDIS_SENTINEL = shutil.which("redis-sentinel")
MASTER = "ghmaster"
FAILURE = "451 4.3.0 store failure"
START_TIMEOUT = 5.0
# A failover: down-after 1 s, then an election; bounded well above that.
FAILOVER_TIMEOUT = 20.0


def require_sentinel():
    missing = [name for name, path in (("redis-server", REDIS_SERVER),
                                       ("redis-cli", REDIS_CLI),
                                       ("redis-sentinel", REDIS_SENTINEL))
               if not path]
    if not missing:
        return
    why = ("%s not installed (Debian: redis-server, redis-sentinel)"
           % " and ".join(missing))
    if os.environ.get("GREYHOLD_REQUIRE_E2E") == "1":
        raise AssertionError(why + ", and GREYHOLD_REQUIRE_E2E=1")
    raise unittest.SkipTest(why)


class Proc(harness.ServerProcess):
    """One redis-server or redis-sentinel on a loopback port."""

    def __init__(self, workdir, name, argv_fn):
        super().__init__(workdir, name + ".log")
        self.name = name
        self.argv_fn = argv_fn
        self.port = free_port()
        self.password = None        # requirepass, for cli()

    def start(self):
        self.spawn(self.argv_fn(self))
        if not self.wait_answering(self.port, START_TIMEOUT,
                                   probe_timeout=0.5):
            raise RuntimeError("%s did not start:\n%s"
                               % (self.name, self.log()))
        return self

    def cli(self, *args):
        auth = (["--no-auth-warning", "-a", self.password] if self.password
                else [])
        out = subprocess.run([REDIS_CLI, "-h", "127.0.0.1", "-p",
                              str(self.port)] + auth + [str(a) for a in args],
                             check=True, capture_output=True, timeout=10)
        return out.stdout.decode("utf-8", "replace").strip()


def redis_argv(replica_of=None, password=None):
    def argv(p):
        a = [REDIS_SERVER, "--port", str(p.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--daemonize", "no",
             "--dir", p.workdir, "--logfile", ""]
        if replica_of is not None:
            a += ["--replicaof", "127.0.0.1", str(replica_of.port)]
        if password is not None:
            a += ["--requirepass", password, "--masterauth", password]
        return a
    return argv


def sentinel_argv(primary_port, data_password=None, password=None):
    def argv(p):
        conf = os.path.join(p.workdir, p.name + ".conf")
        with open(conf, "w") as f:
            f.write("port %d\nbind 127.0.0.1\ndaemonize no\n"
                    "dir %s\nlogfile \"\"\n"
                    "sentinel monitor %s 127.0.0.1 %d 2\n"
                    "sentinel down-after-milliseconds %s 1000\n"
                    "sentinel failover-timeout %s 3000\n"
                    "sentinel parallel-syncs %s 1\n"
                    % (p.port, p.workdir, MASTER, primary_port, MASTER,
                       MASTER, MASTER))
            if data_password is not None:
                f.write("sentinel auth-pass %s %s\n" % (MASTER, data_password))
            if password is not None:
                f.write("requirepass %s\n" % password)
        return [REDIS_SENTINEL, conf]
    return argv


def req(client="192.0.2.10", sender="alice@example.org",
        recipient="bob@example.com"):
    return make_request(client_address=client, sender=sender,
                        recipient=recipient, client_name="mail.example.net")


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


class Load:
    """Policy requests from a few threads to each daemon in turn, each a
    new triplet, until stopped; every reply is kept with its times and
    daemon."""

    def __init__(self, daemons, threads=4):
        self.daemons = daemons
        self.stopping = threading.Event()
        self.replies = []           # (sent, answered, daemon index, reply)
        self.errors = []
        self.numbers = []           # requests answered, by number
        self.sent_to = {}           # number: daemon index
        self.sent_at = {}           # number: when sent
        self.threads = [threading.Thread(target=self.run, args=(t,),
                                         daemon=True) for t in range(threads)]

    def start(self):
        for t in self.threads:
            t.start()

    def run(self, first):
        n = first
        while not self.stopping.is_set():
            self.one(n)
            n += len(self.threads)
            time.sleep(0.02)

    def one(self, n, prefix="load"):
        i = n % len(self.daemons)
        sent = time.monotonic()
        try:
            r = self.daemons[i].ask(req(recipient="%s%d@example.com"
                                        % (prefix, n)), timeout=10)
            self.replies.append((sent, time.monotonic(), i, r))
            if prefix == "load":
                self.sent_to[n], self.sent_at[n] = i, sent
                self.numbers.append(n)
        except Exception as e:      # noqa: BLE001 (a crash shows here)
            self.errors.append("%s: %r" % (i, e))

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(15)


class SentinelTestCase(GreyholdTestCase):

    def setUp(self):
        require_sentinel()

    def proc(self, workdir, name, argv_fn):
        p = Proc(workdir, name, argv_fn)
        self.addCleanup(self._dump_on_failure, p)
        self.addCleanup(p.stop)
        return p

    def _dump_on_failure(self, p):
        outcome = getattr(self, "_outcome", None)
        if outcome is not None and not getattr(outcome, "success", True):
            print("\n---- %s log ----\n%s---- end ----"
                  % (p.name, p.log()[-2000:]))

    def cluster(self, start_sentinels=True, data_password=None,
                sentinel_password=None):
        """Primary, replica (synced), three sentinels."""
        w = self.tmpdir()
        primary = self.proc(w, "primary", redis_argv(None, data_password))
        primary.password = data_password
        primary.start()
        replica = self.proc(w, "replica", redis_argv(primary, data_password))
        replica.password = data_password
        replica.start()
        deadline = time.monotonic() + 10
        while "master_link_status:up" not in replica.cli("INFO",
                                                         "replication"):
            self.assertLess(time.monotonic(), deadline, "replica never synced")
            time.sleep(0.05)
        sentinels = [self.proc(w, "sentinel%d" % i,
                               sentinel_argv(primary.port, data_password,
                                             sentinel_password))
                     for i in range(3)]
        for s in sentinels:
            s.password = sentinel_password
        if start_sentinels:
            self.start_sentinels(sentinels, replica)
        return primary, replica, sentinels

    def start_sentinels(self, sentinels, replica):
        for s in sentinels:
            s.start()
        # Each knows the replica (and the others) before anything is killed.
        deadline = time.monotonic() + 10
        for s in sentinels:
            while True:
                info = s.cli("SENTINEL", "master", MASTER)
                m = re.search(r"num-other-sentinels\n(\d+)", info)
                r = re.search(r"num-slaves\n(\d+)", info)
                if m and r and int(m.group(1)) == 2 and int(r.group(1)) == 1:
                    break
                self.assertLess(time.monotonic(), deadline,
                                "sentinels never met:\n%s" % info)
                time.sleep(0.1)

    def store(self, sentinels, master=MASTER):
        return "store=sentinel://%s/%s" % (
            ",".join("127.0.0.1:%d" % s.port for s in sentinels), master)

    def sentinel_daemon(self, sentinels, args=(), master=MASTER, **kw):
        return self.daemon(["--delay", "1", "-o", "failure_action=" + FAILURE,
                            "-o", self.store(sentinels, master)] + list(args),
                           **kw)

    def wait_until(self, what, fn, timeout):
        deadline = time.monotonic() + timeout
        while True:
            v = fn()
            if v:
                return v
            if time.monotonic() > deadline:
                self.fail("%s: not within %.0fs" % (what, timeout))
            time.sleep(0.05)

    def metrics(self, port):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                    timeout=5) as r:
            return r.read().decode()


class Failover(SentinelTestCase):

    def test_kill_primary_under_load(self):
        primary, replica, sentinels = self.cluster()
        mports = [free_port(), free_port()]
        mx = [self.sentinel_daemon(sentinels, ["-o", "metrics_listen="
                                               "127.0.0.1:%d" % p])
              for p in mports]
        for d in mx:
            d.wait_log(r"redis: connected to the primary 127\.0\.0\.1:%d "
                       r"of '%s'" % (primary.port, MASTER))
        self.assertEqual(reply_action(mx[0].ask(req())), "DEFER_IF_PERMIT")
        # Replicated before the kill: what a failover keeps.
        self.assertEqual(primary.cli("WAIT", 1, 2000), "1")
        text = self.metrics(mports[0])
        self.assertIn('greyhold_redis_primary_info{addr="127.0.0.1:%d"} 1'
                      % primary.port, text)
        self.assertIn("greyhold_redis_failovers_total 0", text)
        time.sleep(0.3)
        fds = [fd_count(d.pid()) for d in mx]

        load = Load(mx)
        load.start()
        self.addCleanup(load.stop)
        time.sleep(0.5)
        marks = [d.log_mark() for d in mx]
        killed = time.monotonic()
        primary.kill()
        # Besides the load (whose threads may all sit on requests held at
        # the kill), a request every 0.25 s until the new primary is in.
        probes = Load(mx, threads=0)
        while not all("connected to the primary 127.0.0.1:%d" % replica.port
                      in d.log_since(m) for d, m in zip(mx, marks)):
            self.assertLess(time.monotonic() - killed, FAILOVER_TIMEOUT,
                            "no daemon followed the failover")
            t = threading.Thread(target=probes.one, daemon=True,
                                 args=(len(probes.threads), "probe"))
            probes.threads.append(t)
            t.start()
            time.sleep(0.25)
        probes.stop()
        self.assertEqual(probes.errors, [])
        # A new triplet greylisted by each after the kill: only the new
        # primary can have answered it.
        def good(k):
            return [a for s, a, i, r in load.replies + probes.replies
                    if s > killed and i == k and
                    reply_action(r) == "DEFER_IF_PERMIT"]
        self.wait_until("good answers from both MX after the failover",
                        lambda: good(0) and good(1), 10)
        load.stop()
        self.assertEqual(load.errors, [])
        first_good = min(good(0) + good(1))
        # Sent after the kill, before the new primary answered anything.
        during = [(s, a, reply_action(r)) for s, a, i, r in
                  load.replies + probes.replies if killed < s < first_good]
        failed = [s for s, a, r in during if r != "DEFER_IF_PERMIT"]
        # Decided by the new primary after waiting for it (an answer takes
        # milliseconds otherwise).
        replayed = [s for s, a, r in during
                    if r == "DEFER_IF_PERMIT" and a - s > 0.3]
        print("\nsentinel failover: %.2fs from kill -9 of the primary to the "
              "first good answer from the new primary; of the %d requests "
              "sent meanwhile %d waited and were decided there, %d got the "
              "failure action" % (first_good - killed, len(during),
                                  len(replayed), len(failed)))
        # Every reply is a greylisting or the failure action, nothing else.
        self.assertEqual(set(reply_action(r) for s, a, i, r in
                             load.replies + probes.replies)
                         - {"DEFER_IF_PERMIT", "451"}, set())
        # A request that arrived without a primary waited for the new one.
        self.assertTrue(replayed, during)
        # Each request was decided exactly once, on the daemon it reached.
        for k, (d, mark) in enumerate(zip(mx, marks)):
            seen = re.findall(r"recipient=(load\d+)@", "\n".join(
                d.decision_lines(mark)))
            asked = ["load%d" % n for n in load.numbers
                     if load.sent_to[n] == k and load.sent_at[n] > killed]
            self.assertTrue(asked)
            self.assertEqual([x for x in asked if seen.count(x) != 1], [],
                             "not decided exactly once on mx%d" % (k + 1))

        # First seen (and replicated) before the failover: passes on both.
        for d in mx:
            self.assertEqual(d.ask(req()), "action=DUNNO\n\n")
        for d in mx:
            self.assertTrue(d.running(), d.run_log())
        text = self.metrics(mports[1])
        self.assertIn('greyhold_redis_primary_info{addr="127.0.0.1:%d"} 1'
                      % replica.port, text)
        self.assertIn("greyhold_redis_failovers_total 1", text)
        m = re.search(r"^greyhold_redis_no_primary_seconds_total ([0-9.]+)$",
                      text, re.M)
        self.assertTrue(m and float(m.group(1)) > 0.5, text)
        self.assertIn("greyhold_redis_no_primary_seconds 0.000", text)
        self.stats_shows(mports[1], replica)
        # No descriptor leaked: the same count once the switch is over.
        for d, before in zip(mx, fds):
            self.wait_until("fd count back to %d" % before,
                            lambda: fd_count(d.pid()) == before, 5)

    def stats_shows(self, mport, primary):
        """greyholdctl stats prints the daemon's Sentinel metrics.  It
        reads LMDB for the rest, so it is given one (--db) besides the
        config that names the daemon's metrics_listen."""
        if not os.access(ctl_bin(must_exist=False), os.X_OK):
            return
        lmdb = self.daemon()
        lmdb.stop()
        conf = os.path.join(self.tmpdir(), "greyhold.conf")
        with open(conf, "w") as f:
            f.write("metrics_listen = 127.0.0.1:%d\n" % mport)
        r = subprocess.run([ctl_bin(), "-c", conf, "--db", lmdb.dbdir,
                            "stats"], capture_output=True,
                           universal_newlines=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r'greyhold_redis_primary_info\{addr='
                         r'"127\.0\.0\.1:%d"\} +1\n' % primary.port)
        self.assertRegex(r.stdout, r"greyhold_redis_failovers_total +1\n")
        self.assertRegex(r.stdout, r"greyhold_redis_no_primary_seconds_total"
                         r" +[0-9.]+\n")

    def test_hung_primary(self):
        primary, replica, sentinels = self.cluster()
        d = self.sentinel_daemon(sentinels)
        d.wait_log(r"connected to the primary 127\.0\.0\.1:%d" % primary.port)
        self.assertEqual(reply_action(d.ask(req())), "DEFER_IF_PERMIT")
        self.assertEqual(primary.cli("WAIT", 1, 2000), "1")
        mark = d.log_mark()
        stopped = time.monotonic()
        primary.signal(signal.SIGSTOP)
        self.addCleanup(primary.kill)
        d.wait_log(r"connected to the primary 127\.0\.0\.1:%d" % replica.port,
                   mark, timeout=FAILOVER_TIMEOUT)
        print("\nsentinel: hung primary left after %.2fs"
              % (time.monotonic() - stopped))
        self.assertEqual(d.ask(req()), "action=DUNNO\n\n")
        self.assertTrue(d.running())

    def test_planned_failover_demotes_the_primary(self):
        """SENTINEL FAILOVER: the old primary lives on and becomes a
        replica; the daemon must follow the sentinels, not stay with it."""
        primary, replica, sentinels = self.cluster()
        d = self.sentinel_daemon(sentinels)
        d.wait_log(r"connected to the primary 127\.0\.0\.1:%d" % primary.port)
        self.assertEqual(reply_action(d.ask(req())), "DEFER_IF_PERMIT")
        self.assertEqual(primary.cli("WAIT", 1, 2000), "1")
        load = Load([d], threads=2)
        load.start()
        self.addCleanup(load.stop)
        mark = d.log_mark()
        sentinels[0].cli("SENTINEL", "FAILOVER", MASTER)
        d.wait_log(r"connected to the primary 127\.0\.0\.1:%d" % replica.port,
                   mark, timeout=FAILOVER_TIMEOUT)
        time.sleep(0.5)
        load.stop()
        self.assertEqual(load.errors, [])
        actions = [reply_action(r) for s, a, i, r in load.replies]
        print("\nsentinel: planned failover, %d requests, %d got the failure "
              "action" % (len(actions), actions.count("451")))
        self.assertEqual(set(actions) - {"DEFER_IF_PERMIT", "451"}, set())
        # Decided on the new primary, never on the demoted one.
        self.assertEqual(d.ask(req()), "action=DUNNO\n\n")
        self.assertEqual(reply_action(d.ask(req(client="198.51.100.55"))),
                         "DEFER_IF_PERMIT")
        self.assertIn("198.51.100", replica.cli("KEYS", "greyhold:*"))


class Discovery(SentinelTestCase):

    def test_all_sentinels_down_at_start(self):
        primary, replica, sentinels = self.cluster(start_sentinels=False)
        d = self.sentinel_daemon(sentinels)
        d.wait_log(r"redis: no connection to sentinel://.*no sentinel named "
                   r"the primary of '%s'; last: 127\.0\.0\.1:\d+: "
                   r"Connection refused" % MASTER)
        # The failure action meanwhile, without waiting long for it.
        t0 = time.monotonic()
        self.assertEqual(d.ask(req()), "action=%s\n\n" % FAILURE)
        self.assertLess(time.monotonic() - t0, 3.0)
        # It keeps trying: the next round is logged too.
        mark = d.log_mark()
        d.wait_log(r"no sentinel named the primary", mark, timeout=8)
        self.start_sentinels(sentinels, replica)
        d.wait_log(r"connected to the primary 127\.0\.0\.1:%d" % primary.port,
                   mark, timeout=10)
        self.assertEqual(reply_action(d.ask(req(client="192.0.2.99"))),
                         "DEFER_IF_PERMIT")

    def test_wrong_master_name(self):
        primary, replica, sentinels = self.cluster()
        d = self.sentinel_daemon(sentinels, master="nosuchmaster")
        d.wait_log(r"no sentinel knows a master named 'nosuchmaster' "
                   r"\(check the name in store\)")
        self.assertEqual(d.ask(req()), "action=%s\n\n" % FAILURE)
        self.assertTrue(d.running())

    def test_passwords_kept_apart(self):
        """redis_password goes to the data nodes, redis_sentinel_password
        to the sentinels; one in place of the other is refused, clearly."""
        primary, replica, sentinels = self.cluster(
            data_password="data-secret", sentinel_password="sentinel-secret")
        d = self.sentinel_daemon(sentinels, [
            "-o", "redis_password=data-secret",
            "-o", "redis_sentinel_password=sentinel-secret"])
        d.wait_log(r"connected to the primary 127\.0\.0\.1:%d" % primary.port)
        self.assertEqual(reply_action(d.ask(req())), "DEFER_IF_PERMIT")
        wrong = self.sentinel_daemon(sentinels, [
            "-o", "redis_password=data-secret",
            "-o", "redis_sentinel_password=data-secret"])
        line = wrong.wait_log(r"no sentinel named the primary of '%s'; last: "
                              r"127\.0\.0\.1:\d+: AUTH: WRONGPASS" % MASTER)
        self.assertIn("(redis_sentinel_user, redis_sentinel_password)", line)
        self.assertNotIn("secret", wrong.run_log())
        self.assertEqual(wrong.ask(req()), "action=%s\n\n" % FAILURE)


class Ctl(SentinelTestCase):
    """greyholdctl's Redis commands find the primary through the
    sentinels, as the daemon does."""

    def ctl(self, conf, *args, expected=0):
        r = subprocess.run([ctl_bin(), "-c", conf] + list(args),
                           capture_output=True, universal_newlines=True,
                           timeout=30)
        self.assertEqual(r.returncode, expected, "greyholdctl %s -> %d\n%s%s"
                         % (" ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def conf(self, store):
        w = self.tmpdir()
        path = os.path.join(w, "greyhold.conf")
        with open(path, "w") as f:
            f.write("%s\ndelay = 60s\n" % store.replace("=", " = ", 1))
        return path

    def test_whitelist_through_sentinels(self):
        if not os.access(ctl_bin(must_exist=False), os.X_OK):
            self.skipTest("greyholdctl not built next to GREYHOLD_BIN")
        primary, replica, sentinels = self.cluster()
        # The first sentinel listed is down: the next one answers.
        dead = free_port()
        store = "store=sentinel://127.0.0.1:%d,%s/%s" % (
            dead, ",".join("127.0.0.1:%d" % s.port for s in sentinels),
            MASTER)
        conf = self.conf(store)
        d = self.daemon(config=conf)
        inside = req(client="198.51.100.7")
        self.assertEqual(reply_action(d.ask(inside)), "DEFER_IF_PERMIT")
        self.ctl(conf, "whitelist", "add", "client", "198.51.100.0/24")
        self.assertIn("198.51.100.0/24",
                      primary.cli("HKEYS", "greyhold:whitelist"))
        self.wait_until("the daemon sees the entry",
                        lambda: d.ask(inside) == "action=DUNNO\n\n", 5)
        self.assertIn("198.51.100.0/24",
                      self.ctl(conf, "whitelist", "list").stdout)

        r = self.ctl(self.conf(self.store(sentinels, "nosuchmaster")),
                     "whitelist", "list", expected=2)
        self.assertIn("no sentinel knows a master named 'nosuchmaster'",
                      r.stderr)
        for s in sentinels:
            s.stop()
        r = self.ctl(conf, "whitelist", "list", expected=2)
        self.assertIn("no sentinel named the primary of '%s'; last: "
                      "127.0.0.1:%d: Connection refused"
                      % (MASTER, sentinels[-1].port), r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
