"""The daemon's life: persistence, crashes, signals, config checking, flags,
and the pid file (written safely as root, removed after a clean stop by
the unprivileged user)."""

import itertools
import os
import pwd
import re
import signal
import socket
import subprocess
import threading
import time

import harness
from harness import (GreyholdTestCase, ConnectionClosed, LmdbWriteLock,
                     encode_request, free_port, greyhold_bin, make_request,
                     reply_action, sleep_until)
from harness import write_file


def req(n, tag="life", **kw):
    """A request with a triplet of its own (client /24, sender, recipient)."""
    return make_request(client_address="10.%d.%d.1" % (n // 250 % 250,
                                                        n % 250),
                        sender="s%d@%s.example" % (n, tag),
                        recipient="r%d@%s.example" % (n, tag), **kw)


def run_greyhold(args, timeout=10):
    if not harness.sets_resolver(None, args):
        args = args + ["-o", "resolver=" + harness.NO_DNS_RESOLVER]
    return subprocess.run([greyhold_bin()] + args, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def decisions_by_recipient(d, mark):
    out = {}
    for line in d.decision_lines(mark):
        m = re.search(r", recipient=(\S+)$", line)
        if m:
            out.setdefault(m.group(1), []).append(line)
    return out


class Persistence(GreyholdTestCase):

    def test_state_survives_restart(self):
        d = self.daemon(["--delay", "2"])
        self.assertEqual(reply_action(d.ask(req(1))), "DEFER_IF_PERMIT")
        t0 = time.time()
        self.assertEqual(d.stop(), 0)
        self.assertIn("stopped", d.run_log())
        d.start()
        sleep_until(t0 + 2.05)
        mark = d.log_mark()
        self.assertEqual(d.ask(req(1)), "action=DUNNO\n\n")
        line = d.wait_log("recipient=r1@life.example", mark)
        self.assertRegex(line, r"action=pass, reason=triplet found, delay=\d+")
        # A passed triplet stays passed across another restart.
        self.assertEqual(d.stop(), 0)
        d.start()
        self.assertEqual(d.ask(req(1)), "action=DUNNO\n\n")

    def kill_loop(self, extra_args, rounds, workers=4):
        """Kill -9 right after deferrals were answered, `rounds` times.

        Every deferral a client received must have been stored: after the
        delay the same triplet passes as "triplet found" (never "new").
        """
        d = self.daemon(["--delay", "2", "--auto-whitelist-clients=0"] +
                        extra_args)
        answered = []
        lock = threading.Lock()
        seq = itertools.count(1)
        unexpected = []

        for rnd in range(rounds):
            if rnd > 0:
                d.start()
            stop = threading.Event()
            trigger = threading.Event()
            target = 2 + rnd % 6
            in_round = [0]

            def worker():
                try:
                    c = d.client(timeout=5)
                except OSError:
                    return
                with c:
                    while not stop.is_set():
                        r = req(next(seq), "kill")
                        try:
                            reply = c.request(r, timeout=5)
                        except (ConnectionClosed, OSError):
                            return
                        with lock:
                            if reply_action(reply) != "DEFER_IF_PERMIT":
                                unexpected.append((r["recipient"], reply))
                            answered.append(r)
                            in_round[0] += 1
                            if in_round[0] >= target:
                                trigger.set()

            threads = [threading.Thread(target=worker, daemon=True)
                       for _ in range(workers)]
            for t in threads:
                t.start()
            self.assertTrue(trigger.wait(10), "round %d: no deferrals" % rnd)
            d.kill()
            stop.set()
            for t in threads:
                t.join(10)
            self.assertEqual(d.returncode, -signal.SIGKILL)
        last_answer = time.time()
        self.assertEqual(unexpected, [])
        self.assertGreaterEqual(len(answered), 2 * rounds)

        d.start()
        sleep_until(last_answer + 2.05)
        mark = d.log_mark()
        replies = {}
        errors = []

        def verify(part):
            try:
                with d.client() as c:
                    for i in range(0, len(part), 50):
                        chunk = part[i:i + 50]
                        c.send(b"".join(encode_request(r) for r in chunk))
                        for r in chunk:
                            replies[r["recipient"]] = c.read_reply()
            except Exception as e:      # reported below
                errors.append(repr(e))

        parts = [answered[i::4] for i in range(4)]
        threads = [threading.Thread(target=verify, args=(p,), daemon=True)
                   for p in parts]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(errors, [])
        lost = sorted(r["recipient"] for r in answered
                      if replies.get(r["recipient"]) != "action=DUNNO\n\n")
        self.assertEqual(lost, [], "answered deferrals not found after "
                         "kill -9 (%d of %d)" % (len(lost), len(answered)))
        # The log is written after the replies: give it a moment.
        deadline = time.monotonic() + 5
        while True:
            logged = decisions_by_recipient(d, mark)
            if (all(r["recipient"] in logged for r in answered)
                    or time.monotonic() > deadline):
                break
            time.sleep(0.05)
        for r in answered:
            lines = logged.get(r["recipient"], [])
            self.assertEqual(len(lines), 1, lines)
            self.assertRegex(lines[0], r"action=pass, reason=triplet found, "
                             r"delay=\d+, ")
        return len(answered)

    def test_kill_9_loses_no_answered_deferral(self):
        self.kill_loop([], rounds=20)

    def test_kill_9_with_relaxed_durability(self):
        # Relaxed commits without fsync: a process crash still loses
        # nothing (only a power cut may).
        self.kill_loop(["-o", "durability=relaxed"], rounds=6)


class Reload(GreyholdTestCase):

    def test_sighup_applies_new_config_without_dropping_connections(self):
        work = self.tmpdir()
        conf = os.path.join(work, "greyhold.conf")
        write_file(conf, "# test\ndelay = 2\ngreylist_text = Old text %s\n"
                   "greylist_action = DEFER\n")
        d = self.daemon(["--greylist-action", "450"], config=conf)
        c = self.connect(d)
        idle = self.connect(d)
        self.assertEqual(c.request(req(1)), "action=450 Old text 2\n\n")

        write_file(conf, "delay = 1\ngreylist_text = New text %s for %r\n"
                   "greylist_action = DEFER\n")
        mark = d.log_mark()
        d.send_signal(signal.SIGHUP)
        d.wait_log(r"configuration reloaded", mark)
        # Same connection, new text and new delay; the command line still
        # wins over the file (450, not DEFER).
        self.assertEqual(c.request(req(2)),
                         "action=450 New text 1 for life.example\n\n")
        self.assertEqual(idle.request(make_request(protocol_state="DATA")),
                         "action=DUNNO\n\n")
        self.assertTrue(d.running())
        self.assertNotIn("error", d.log_since(mark))

    def test_sighup_with_broken_config_keeps_the_old_one(self):
        work = self.tmpdir()
        conf = os.path.join(work, "greyhold.conf")
        write_file(conf, "delay = 2\ngreylist_text = Good text %s\n")
        d = self.daemon([], config=conf)
        c = self.connect(d)
        self.assertEqual(c.request(req(1)),
                         "action=DEFER_IF_PERMIT Good text 2\n\n")

        for n, broken in enumerate([
                "greylist_text = Bad text %s\ndelay = soon\n",
                "greylist_text = Bad text %s\ncolour = blue\n",
                "greylist_text = Bad text %s\nthis line has no equals\n",
                "greylist_text = Bad text %s\ndelay = 3d\n"]):
            with self.subTest(broken=broken):
                write_file(conf, broken)
                mark = d.log_mark()
                d.send_signal(signal.SIGHUP)
                line = d.wait_log(r"reload failed", mark)
                self.assertIn("error:", line)
                if n < 3:
                    self.assertIn("%s:2:" % conf, line)
                else:   # across keys (see the -n tests for where)
                    self.assertIn("retry_window", line)
                # Old config, same connection.
                self.assertEqual(c.request(req(10 + n)),
                                 "action=DEFER_IF_PERMIT Good text 2\n\n")
                self.assertTrue(d.running())

        # A fixed file is taken again.
        write_file(conf, "delay = 2\ngreylist_text = Fixed %s\n")
        mark = d.log_mark()
        d.send_signal(signal.SIGHUP)
        d.wait_log(r"configuration reloaded", mark)
        self.assertEqual(c.request(req(20)),
                         "action=DEFER_IF_PERMIT Fixed 2\n\n")


class Stopping(GreyholdTestCase):

    def test_sigterm_answers_requests_in_flight(self):
        d = self.daemon(["--delay", "2"])
        # Hold the LMDB write lock: the store thread waits, so requests
        # stay in flight while the signal arrives.
        db = LmdbWriteLock(d.dbdir)
        self.addCleanup(db.close)
        db.acquire()

        singles = [self.connect(d) for _ in range(6)]
        for n, c in enumerate(singles):
            c.send_request(req(n, "flight"))
        piped = self.connect(d)
        piped.send(b"".join(encode_request(req(100 + n, "flight"))
                            for n in range(12)))
        idle = self.connect(d)
        # The loop is not blocked by the store: early answers still flow.
        self.assertEqual(d.ask(make_request(protocol_state="DATA")),
                         "action=DUNNO\n\n")
        singles[0].assert_silent(0.5)   # the store answers are held

        mark = d.log_mark()
        d.send_signal(signal.SIGTERM)
        d.wait_log(r"received SIGTERM", mark)
        # Idle connections close at once; the listener is gone.
        self.assertEqual(idle.read_until_closed(3), b"")
        with self.assertRaises(OSError):
            socket.create_connection(d.address, timeout=2).close()
        self.assertTrue(d.running(), "exited with requests unanswered")

        db.release()
        for n, c in enumerate(singles):
            self.assertEqual(reply_action(c.read_reply()), "DEFER_IF_PERMIT",
                             "single %d" % n)
            self.assertEqual(c.read_until_closed(5), b"")
        for n in range(12):
            self.assertEqual(reply_action(piped.read_reply()),
                             "DEFER_IF_PERMIT", "pipelined %d" % n)
        self.assertEqual(piped.read_until_closed(5), b"")
        self.assertEqual(d.wait(10), 0)
        self.assertIn("greyhold: stopped", d.log_since(mark))
        # And what was answered was stored.
        self.assertEqual(len(d.decision_lines(mark)), 18)

    def test_sigterm_writes_every_decision_line_in_order(self):
        # Decision lines are written by the log writer thread; a burst
        # answered just before SIGTERM must still be in the log, each
        # line once, in the order the store decided them: a connection's
        # requests in turn.  (Smart greylisting off: with it, a new
        # triplet is decided when its DNS evidence is in, in any order.)
        d = self.daemon(["--delay", "2", "-o", "name_identity=no",
                         "-o", "trust_spf_aligned=no"])
        clients = [self.connect(d) for _ in range(4)]
        per_client = 400
        mark = d.log_mark()
        for k, c in enumerate(clients):
            c.send(b"".join(encode_request(req(k * per_client + n, "burst"))
                            for n in range(per_client)))
        for k, c in enumerate(clients):
            for n in range(per_client):
                self.assertEqual(reply_action(c.read_reply()),
                                 "DEFER_IF_PERMIT", "client %d #%d" % (k, n))
        d.send_signal(signal.SIGTERM)
        self.assertEqual(d.wait(10), 0)
        seen = decisions_by_recipient(d, mark)
        position = {line: i for i, line in enumerate(d.decision_lines(mark))}
        for k in range(len(clients)):
            order = []
            for n in range(per_client):
                rcpt = "r%d@burst.example" % (k * per_client + n)
                lines = seen.get(rcpt, [])
                self.assertEqual(len(lines), 1, "%s: %r" % (rcpt, lines))
                self.assertIn("action=greylist, reason=new, ", lines[0])
                order.append(position[lines[0]])
            self.assertEqual(order, sorted(order), "client %d" % k)
        # Nothing of greyhold's after its last line (a memory checker's
        # report may follow).
        ours = [line for line in d.log_since(mark).splitlines()
                if line.startswith("greyhold: ")]
        self.assertEqual(ours[-1], "greyhold: stopped", ours[-3:])

    def test_sigterm_with_idle_connections_is_prompt(self):
        d = self.daemon(["--delay", "2"])
        clients = [self.connect(d) for _ in range(5)]
        clients[0].request(req(1))
        start = time.monotonic()
        d.send_signal(signal.SIGTERM)
        self.assertEqual(d.wait(8), 0)
        self.assertLess(time.monotonic() - start, 3)
        for c in clients:
            self.assertEqual(c.read_until_closed(3), b"")

    def test_sigint_stops_cleanly(self):
        d = self.daemon(["--delay", "2"])
        d.send_signal(signal.SIGINT)
        self.assertEqual(d.wait(8), 0)
        self.assertIn("received SIGINT", d.log())

    def test_sigterm_with_a_half_received_request(self):
        # The daemon stops reading at SIGTERM, so the rest of a request
        # can never arrive: waiting for it only delays the stop.
        d = self.daemon(["--delay", "2"])
        c = self.connect(d)
        c.send(encode_request(req(1))[:60])
        time.sleep(0.2)
        start = time.monotonic()
        d.send_signal(signal.SIGTERM)
        try:
            rc = d.wait(4)
        except subprocess.TimeoutExpired:
            d.kill()
            self.fail("not stopped 4 s after SIGTERM: a connection holding "
                      "part of a request keeps the daemon in its drain "
                      "timeout although it no longer reads")
        self.assertEqual(rc, 0)
        self.assertLess(time.monotonic() - start, 5,
                        "SIGTERM waited for a request that cannot complete")


class ConfigChecking(GreyholdTestCase):

    def test_check_config_good(self):
        work = self.tmpdir()
        conf = os.path.join(work, "good.conf")
        write_file(conf, "# a comment\n\ndelay = 5m\nretry_window = 2d\n"
                   "max_age = 35d\ninet = 127.0.0.1:10023, [::1]:10023\n"
                   "greylist_text = Greylisted, retry in %s seconds\n"
                   "unix_mode = 0660\nidle_timeout = 10m\n")
        for args in (["-n", "-c", conf], ["--check-config", "-c", conf],
                     ["-n", "-c", "/dev/null"],
                     ["-n", "-c", conf, "-o", "delay=10s", "--delay", "20"]):
            with self.subTest(args=args):
                p = run_greyhold(args)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertIn("configuration OK", p.stdout)

    def test_check_config_bad(self):
        work = self.tmpdir()
        cases = [
            ("delay = 300s\n# ok\nretry_window = forever\n", 3,
             "retry_window"),
            ("delay = 300s\ncolour = blue\n", 2, "colour"),
            ("just words\n", 1, "name = value"),
            ("idle_timeout = 0\n", 1, "idle_timeout"),
            ("max_connections = 100001\n", 1, "max_connections"),
            ("greylist_text = 50%% off %d\n", 1, "greylist_text"),
            ("greylist_action = please defer\n", 1, "greylist_action"),
            ("unix_mode = 0999\n", 1, "unix_mode"),
        ]
        for text, lineno, word in cases:
            with self.subTest(text=text):
                conf = os.path.join(work, "bad.conf")
                write_file(conf, text)
                p = run_greyhold(["-n", "-c", conf])
                self.assertEqual(p.returncode, 1, p.stderr)
                self.assertIn("%s:%d:" % (conf, lineno), p.stderr)
                self.assertIn(word, p.stderr)
                self.assertNotIn("configuration OK", p.stdout)
        # A bad command-line value.
        p = run_greyhold(["-n", "-c", "/dev/null", "-o", "delay=abc"])
        self.assertEqual(p.returncode, 1)
        self.assertIn("delay", p.stderr)
        # A config file named with -c must exist.
        p = run_greyhold(["-n", "-c", os.path.join(work, "missing.conf")])
        self.assertEqual(p.returncode, 1)
        self.assertIn("missing.conf", p.stderr)

    def test_check_config_cross_key_errors_name_the_line(self):
        work = self.tmpdir()
        conf = os.path.join(work, "bad.conf")
        # Cross-key checks name the keys and point at a line of the file.
        write_file(conf, "delay = 1h\nretry_window = 30m\n")
        p = run_greyhold(["-n", "-c", conf])
        self.assertEqual(p.returncode, 1)
        self.assertIn("retry_window", p.stderr)
        self.assertIn("%s:2:" % conf, p.stderr)
        # Only delay is in the file: the line to fix is the delay line,
        # not a built-in default the admin never wrote.
        write_file(conf, "# longer delay\ndelay = 3d\n")
        p = run_greyhold(["-n", "-c", conf])
        self.assertEqual(p.returncode, 1)
        self.assertIn("delay", p.stderr)
        self.assertIn("%s:2:" % conf, p.stderr,
                      "cross-key error does not name the file line")

    def test_bad_config_at_start(self):
        work = self.tmpdir()
        conf = os.path.join(work, "bad.conf")
        write_file(conf, "delay = 2\nretry_window = soon\n")
        port = free_port()
        p = run_greyhold(["-f", "-c", conf, "--dbdir",
                          os.path.join(work, "db"),
                          "--inet", "127.0.0.1:%d" % port])
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("%s:2:" % conf, p.stderr)
        self.assertIn("retry_window", p.stderr)
        self.assertFalse(os.path.exists(os.path.join(work, "db")))
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()

    def test_listen_failure_at_start(self):
        work = self.tmpdir()
        busy = socket.socket()
        self.addCleanup(busy.close)
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        p = run_greyhold(["-f", "-c", "/dev/null", "--dbdir",
                          os.path.join(work, "db"),
                          "--inet", "127.0.0.1:%d" % port])
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("cannot listen on inet:127.0.0.1:%d" % port, p.stderr)

    def test_command_line_errors_exit_2(self):
        for args in (["--no-such-flag"], ["-Z"], ["-f", "extra-argument"],
                     ["-o", "no_such_key=1"], ["-o", "delay"],
                     ["--delay"]):
            with self.subTest(args=args):
                p = run_greyhold(args + ["-n", "-c", "/dev/null"]
                                 if args != ["--delay"] else args)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertNotEqual(p.stderr, "")
                self.assertNotIn("configuration OK", p.stdout)

    def test_help_and_version(self):
        p = run_greyhold(["--help"])
        self.assertEqual(p.returncode, 0)
        self.assertIn("usage: greyhold", p.stdout)
        p = run_greyhold(["--version"])
        self.assertEqual(p.returncode, 0)
        self.assertRegex(p.stdout, r"^greyhold \d+\.\d+")


def nobody():
    """The nobody account, or None when the tests cannot switch users."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        return None


def proc_uid(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[2])     # effective uid
    return None


class Pidfile(GreyholdTestCase):
    """--pidfile with --user, started as root as an init script would."""

    def setUp(self):
        self.pw = nobody()
        if self.pw is None:
            self.skipTest("needs root and a 'nobody' user")
        self.work = self.tmpdir()
        # The unprivileged daemon must reach its database below here.
        os.chmod(self.work, 0o755)

    def run_dir(self, owner_uid, mode=0o755):
        path = os.path.join(self.work, "run-%d" % owner_uid)
        os.mkdir(path)
        os.chown(path, owner_uid, -1)
        os.chmod(path, mode)
        return path

    def start(self, pidfile):
        return self.daemon(args=["--user", "nobody", "--pidfile", pidfile],
                           workdir=self.work)

    def test_removed_after_clean_stop_in_the_users_directory(self):
        # Like /run/greyhold from the unit's RuntimeDirectory=.
        pidfile = os.path.join(self.run_dir(self.pw.pw_uid), "greyhold.pid")
        d = self.start(pidfile)
        pid = d.pid()
        self.assertEqual(proc_uid(pid), self.pw.pw_uid,
                         "the daemon did not drop privileges")
        with open(pidfile) as f:
            self.assertEqual(f.read(), "%d\n" % pid)
        st = os.lstat(pidfile)
        self.assertEqual(st.st_mode & 0o7777, 0o644)
        self.assertEqual(st.st_uid, self.pw.pw_uid)
        self.assertEqual(d.stop(), 0)
        self.assertFalse(os.path.lexists(pidfile),
                         "pid file left behind after a clean stop")

    def test_root_only_directory_keeps_the_file_root_owned(self):
        # Like /run itself: only root may write there.
        pidfile = os.path.join(self.run_dir(0), "greyhold.pid")
        mark = 0
        d = self.start(pidfile)
        pid = d.pid()
        self.assertEqual(proc_uid(pid), self.pw.pw_uid)
        with open(pidfile) as f:
            self.assertEqual(f.read(), "%d\n" % pid)
        st = os.lstat(pidfile)
        # nobody may not rewrite a pid that root's scripts will signal.
        self.assertEqual(st.st_uid, 0)
        self.assertEqual(st.st_mode & 0o7777, 0o644)
        # The admin is told at start that it cannot be removed at exit.
        self.assertRegex(d.log_since(mark), r"pidfile %s: user nobody "
                         r"cannot remove it" % re.escape(pidfile))
        self.assertEqual(d.stop(), 0)

    def test_refuses_to_follow_a_symlink_or_write_through_a_hard_link(self):
        piddir = self.run_dir(self.pw.pw_uid, 0o1777)
        victim = os.path.join(self.work, "victim")
        cases = {"symlink": os.symlink, "hard link": os.link}
        for name, make_link in cases.items():
            with self.subTest(planted=name):
                write_file(victim, "precious\n")
                os.chmod(victim, 0o600)
                pidfile = os.path.join(piddir, "greyhold-%s.pid"
                                       % name.replace(" ", "-"))
                make_link(victim, pidfile)
                port = free_port()
                p = run_greyhold(["-f", "-c", "/dev/null", "--dbdir",
                                  os.path.join(self.work, "db"), "--inet",
                                  "127.0.0.1:%d" % port, "--user", "nobody",
                                  "--pidfile", pidfile])
                self.assertEqual(p.returncode, 1, p.stderr)
                self.assertIn("pidfile %s" % pidfile, p.stderr)
                self.assertIn("refusing", p.stderr)
                with open(victim) as f:
                    self.assertEqual(f.read(), "precious\n")
                st = os.stat(victim)
                self.assertEqual((st.st_uid, st.st_mode & 0o7777),
                                 (0, 0o600))
                self.assertTrue(os.path.islink(pidfile) or
                                os.path.samefile(pidfile, victim))
                with self.assertRaises(OSError):
                    socket.create_connection(("127.0.0.1", port),
                                             timeout=1).close()


if __name__ == "__main__":
    harness.main()
