"""greyhold under systemd, with the test playing systemd's part.

sd_notify: the daemon must say READY=1 only once it answers, RELOADING=1
and READY=1 around a SIGHUP, WATCHDOG=1 at half the watchdog interval and
STOPPING=1 on SIGTERM.  Socket activation: given a listening socket as fd 3
with LISTEN_FDS/LISTEN_PID, it must serve on that socket and not bind its
configured listeners.  The shipped units must pass systemd-analyze verify.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import harness


class NotifySocket:
    """A datagram socket standing in for systemd's $NOTIFY_SOCKET."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.messages = []

    def wait_for(self, needle, timeout=10.0):
        deadline = time.monotonic() + timeout
        for m in self.messages:
            if needle in m:
                self.messages.remove(m)
                return m
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                msg = self.sock.recv(4096).decode()
            except socket.timeout:
                break
            if needle in msg:
                return msg
            self.messages.append(msg)
        raise AssertionError("no %r from the daemon within %.0fs (got %r)"
                             % (needle, timeout, self.messages))

    def close(self):
        self.sock.close()


def ask(address, family=socket.AF_INET):
    with harness.PolicyClient.connect(address, family) as c:
        return c.request(harness.make_request())


class SystemdTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="greyhold-systemd.")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.log = open(os.path.join(self.tmp, "greyhold.log"), "w+")
        self.addCleanup(self.log.close)
        self.proc = None
        self.addCleanup(self.stop)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def start(self, args, env_extra, preexec=None, shell_pid_var=None):
        env = dict(os.environ)
        env.update(env_extra)
        cmd = [harness.greyhold_bin(), "-f", "-c", "/dev/null",
               "--dbdir", os.path.join(self.tmp, "db")] + args
        if shell_pid_var:
            # LISTEN_PID must be the daemon's own pid: let a shell set it
            # to $$ and exec the daemon in its place.
            cmd = ["/bin/sh", "-c", '%s=$$ exec "$@"' % shell_pid_var,
                   "sh"] + cmd
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log,
                                     stderr=self.log, preexec_fn=preexec,
                                     close_fds=preexec is None)

    def logtext(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def test_notify_ready_reload_watchdog_stopping(self):
        ns = NotifySocket(os.path.join(self.tmp, "notify"))
        self.addCleanup(ns.close)
        port = harness.free_port()
        self.start(["--inet", "127.0.0.1:%d" % port],
                   {"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "2000000"})
        ns.wait_for("READY=1")
        # READY means serving: the very next connection is answered.
        self.assertEqual(harness.reply_action(ask(("127.0.0.1", port))),
                         "DEFER_IF_PERMIT")
        ns.wait_for("WATCHDOG=1", timeout=4)
        ns.wait_for("WATCHDOG=1", timeout=4)
        self.proc.send_signal(signal.SIGHUP)
        ns.wait_for("RELOADING=1")
        ns.wait_for("READY=1")
        self.proc.send_signal(signal.SIGTERM)
        ns.wait_for("STOPPING=1")
        self.assertEqual(self.proc.wait(timeout=15), 0, self.logtext())

    def test_status_line_counts_requests(self):
        ns = NotifySocket(os.path.join(self.tmp, "notify"))
        self.addCleanup(ns.close)
        port = harness.free_port()
        self.start(["--inet", "127.0.0.1:%d" % port],
                   {"NOTIFY_SOCKET": ns.path})
        ns.wait_for("READY=1")
        ask(("127.0.0.1", port))
        msg = ns.wait_for("requests", timeout=15)
        self.assertIn("STATUS=1 requests, 1 greylisted", msg)

    def test_socket_activation_tcp(self):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        self.addCleanup(listener.close)
        fd = listener.fileno()
        configured = harness.free_port()

        def as_fd3():
            os.dup2(fd, 3)

        self.start(["--inet", "127.0.0.1:%d" % configured],
                   {"LISTEN_FDS": "1"}, preexec=as_fd3,
                   shell_pid_var="LISTEN_PID")
        reply = None
        deadline = time.monotonic() + 10
        while reply is None and time.monotonic() < deadline:
            try:
                reply = ask(listener.getsockname())
            except (ConnectionError, socket.timeout):
                time.sleep(0.1)
        self.assertIsNotNone(reply, self.logtext())
        self.assertEqual(harness.reply_action(reply), "DEFER_IF_PERMIT")
        self.assertIn("socket activation", self.logtext())
        # The configured listener was not bound.
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", configured), timeout=2)

    def test_socket_activation_unix(self):
        path = os.path.join(self.tmp, "policy.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(16)
        self.addCleanup(listener.close)
        fd = listener.fileno()

        def as_fd3():
            os.dup2(fd, 3)

        self.start([], {"LISTEN_FDS": "1"}, preexec=as_fd3,
                   shell_pid_var="LISTEN_PID")
        reply = None
        deadline = time.monotonic() + 10
        while reply is None and time.monotonic() < deadline:
            try:
                reply = ask(path, socket.AF_UNIX)
            except (ConnectionError, socket.timeout, FileNotFoundError):
                time.sleep(0.1)
        self.assertIsNotNone(reply, self.logtext())
        self.assertEqual(harness.reply_action(reply), "DEFER_IF_PERMIT")

    def test_listen_fds_for_another_pid_is_ignored(self):
        port = harness.free_port()
        self.start(["--inet", "127.0.0.1:%d" % port],
                   {"LISTEN_FDS": "1", "LISTEN_PID": "1"})
        deadline = time.monotonic() + 10
        reply = None
        while reply is None and time.monotonic() < deadline:
            try:
                reply = ask(("127.0.0.1", port))
            except (ConnectionError, socket.timeout):
                time.sleep(0.1)
        self.assertIsNotNone(reply, self.logtext())
        self.assertNotIn("socket activation", self.logtext())

    def test_units_verify(self):
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            self.skipTest("systemd-analyze not installed")
        src = os.environ.get("GREYHOLD_SRCDIR",
                             os.path.join(os.path.dirname(__file__), "..", ".."))
        unitdir = os.path.join(self.tmp, "units")
        os.mkdir(unitdir)
        sbindir = os.path.dirname(harness.greyhold_bin())
        with open(os.path.join(src, "systemd", "greyhold.service.in")) as f:
            unit = f.read().replace("@sbindir@", sbindir)
        with open(os.path.join(unitdir, "greyhold.service"), "w") as f:
            f.write(unit)
        shutil.copy(os.path.join(src, "systemd", "greyhold.socket"), unitdir)
        units = [os.path.join(unitdir, u)
                 for u in ("greyhold.service", "greyhold.socket")]
        r = subprocess.run([analyze, "verify", "--man=no"] + units,
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stderr.strip(), "", r.stderr)
        r = subprocess.run([analyze, "security", "--offline=true", units[0]],
                           capture_output=True, text=True)
        score = [l for l in r.stdout.splitlines() if "Overall exposure" in l]
        print("systemd-analyze security: %s" % (score[0] if score else r.stdout[-200:]))


if __name__ == "__main__":
    unittest.main(verbosity=2)
