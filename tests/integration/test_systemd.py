"""greyhold under systemd, with the test playing systemd's part.

sd_notify: the daemon must say READY=1 only once it answers, RELOADING=1
and READY=1 around a SIGHUP, WATCHDOG=1 at half the watchdog interval and
STOPPING=1 on SIGTERM.  Socket activation: given a listening socket as fd 3
with LISTEN_FDS/LISTEN_PID, it must serve on that socket and not bind its
configured listeners.  The shipped units must pass systemd-analyze verify.

Postfix's chroot: greyhold-postfix.socket puts the policy socket inside
Postfix's queue directory.  The test does what systemd does for that unit
(create the socket as root with the unit's owner, group and mode, read
from the shipped file), hands it to greyhold running as an unprivileged
user, and checks that a client running as user postfix gets an answer
while another unprivileged user is refused.
"""

import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import harness


class NotifySocket:
    """A datagram socket standing in for systemd's $NOTIFY_SOCKET."""

    def __init__(self, path, daemon_log):
        self.path = path
        self.daemon_log = daemon_log    # what to show when a message is late
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
        raise AssertionError("no %r from the daemon within %.0fs (got %r); "
                             "its log:\n%s" % (needle, timeout, self.messages,
                                               self.daemon_log()))

    def close(self):
        self.sock.close()


def srcdir():
    return os.environ.get("GREYHOLD_SRCDIR",
                          os.path.join(os.path.dirname(__file__), "..", ".."))


def unit_settings(path):
    """{(section, key): [value, ...]} of a unit file, values in file order.

    Enough of systemd's syntax for our units: [Section] headers, Key=value
    lines, '#' and ';' comments.  (No line continuations: the test fails
    on one rather than misread it.)
    """
    settings = {}
    section = None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            assert not line.endswith("\\"), "continuation line in %s" % path
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
                continue
            key, sep, value = line.partition("=")
            assert sep and section, "cannot read %r in %s" % (line, path)
            settings.setdefault((section, key.strip()), []).append(value.strip())
    return settings


def unit_value(settings, section, key, default=None):
    """The value systemd uses for a single-valued setting: the last one."""
    values = settings.get((section, key))
    return values[-1] if values else default


def identity(user, group=None):
    """uid, gid and supplementary groups of a user, as systemd's User= and
    Group= (and su, and Postfix's set_ugid) give them."""
    pw = pwd.getpwnam(user)
    gid = grp.getgrnam(group).gr_gid if group else pw.pw_gid
    return pw.pw_uid, gid, os.getgrouplist(user, gid)


def python_for(who):
    """A Python interpreter that the user `who` (an identity()) may run:
    ours may sit under root's home (pyenv)."""
    for python in (sys.executable, "/usr/bin/python3"):
        try:
            r = subprocess.run([python, "-I", "-c", "pass"], cwd="/",
                               preexec_fn=become(*who), capture_output=True)
        except OSError:         # exec refused: a directory it cannot enter
            continue
        if r.returncode == 0:
            return python
    raise unittest.SkipTest("no Python that uid %d may run" % who[0])


def become(uid, gid, groups):
    def drop():
        os.setgroups(groups)
        os.setgid(gid)
        os.setuid(uid)
    return drop


# Postfix's queue directory: a chrooted smtpd sees it as /, and even an
# unchrooted one resolves "unix:NAME" in check_policy_service relative to it.
POSTFIX_QUEUE = "/var/spool/postfix"

# One policy request over a unix socket, in a separate interpreter so it
# runs as another user; exit 13 when connect() is refused with EACCES.
CLIENT = r"""
import socket, sys
request = sys.stdin.buffer.read()
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
try:
    s.connect(sys.argv[1])
except PermissionError as e:
    print(e)
    sys.exit(13)
s.sendall(request)
reply = b""
while not reply.endswith(b"\n\n"):
    chunk = s.recv(4096)
    if not chunk:
        break
    reply += chunk
sys.stdout.write(reply.decode())
"""


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

    def start(self, args, env_extra, preexec=None, shell_pid_var=None,
              binary=None):
        env = dict(os.environ)
        env.update(env_extra)
        cmd = [binary or harness.greyhold_bin(), "-f", "-c", "/dev/null",
               "--dbdir", os.path.join(self.tmp, "db"),
               "-o", "resolver=" + harness.NO_DNS_RESOLVER] + args
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
        ns = NotifySocket(os.path.join(self.tmp, "notify"), self.logtext)
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
        ns = NotifySocket(os.path.join(self.tmp, "notify"), self.logtext)
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
        # The socket is systemd's: greyhold, which could remove it here,
        # leaves it for its next start.
        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.proc.wait(timeout=15), 0, self.logtext())
        self.assertTrue(os.path.exists(path), "greyhold removed the socket")

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

    @unittest.skipUnless(os.getuid() == 0,
                         "needs root to play systemd and run as other users")
    def test_postfix_socket_unit(self):
        try:
            postfix = identity("postfix")
        except KeyError:
            self.skipTest("no user postfix (the postfix package)")
        sock = unit_settings(os.path.join(srcdir(), "systemd",
                                          "greyhold-postfix.socket"))
        svc = unit_settings(os.path.join(srcdir(), "systemd",
                                         "greyhold.service.in"))
        self.assertEqual(unit_value(sock, "Socket", "Service",
                                    "greyhold.service"), "greyhold.service")
        listen = sock.get(("Socket", "ListenStream"), [])
        self.assertEqual(len(listen), 1, listen)
        listen = listen[0]
        self.assertTrue(listen.startswith(POSTFIX_QUEUE + "/"), listen)

        # systemd's part, as root: missing parent directories get
        # DirectoryMode=, the socket SocketUser=, SocketGroup= and
        # SocketMode= (systemd's defaults: 0755, root, root, 0666).
        os.chmod(self.tmp, 0o755)
        root = os.path.join(self.tmp, "root")
        queue = root + POSTFIX_QUEUE
        os.makedirs(queue)
        for d in (root, root + "/var", root + "/var/spool", queue):
            os.chmod(d, 0o755)          # as the postfix package leaves them
        path = root + listen
        dirmode = int(unit_value(sock, "Socket", "DirectoryMode", "0755"), 8)
        d = os.path.dirname(path)
        missing = []
        while not os.path.isdir(d):
            missing.append(d)
            d = os.path.dirname(d)
        for d in reversed(missing):
            os.mkdir(d)
            os.chmod(d, dirmode)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(listener.close)
        listener.bind(path)
        owner = unit_value(sock, "Socket", "SocketUser", "root")
        group = unit_value(sock, "Socket", "SocketGroup", "root")
        os.chown(path, pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid)
        os.chmod(path, int(unit_value(sock, "Socket", "SocketMode", "0666"), 8))
        listener.listen(16)

        # The service's part: greyhold as the unit's User= (nobody when
        # systemd-sysusers has not created it here), never root.
        user = unit_value(svc, "Service", "User")
        self.assertNotIn(user, (None, "", "root", "0"))
        try:
            service = identity(user, unit_value(svc, "Service", "Group"))
        except KeyError:
            user, service = "nobody", identity("nobody")
        self.assertNotIn(postfix[1], service[2],
                         "%s is in group postfix: the test proves nothing"
                         % user)
        # The build tree may sit in a directory the user cannot enter.
        binary = os.path.join(self.tmp, "greyhold")
        shutil.copy(harness.greyhold_bin(), binary)
        os.chmod(binary, 0o755)
        os.mkdir(os.path.join(self.tmp, "db"), 0o700)
        os.chown(os.path.join(self.tmp, "db"), service[0], service[1])
        # And so may the compiled-in whitelists (make distcheck's prefix):
        # an unreadable one stops the daemon, so give it the shipped ones
        # where an installed system has them readable.
        lists = []
        for name in ("whitelist_clients", "whitelist_recipients"):
            copy = os.path.join(self.tmp, name)
            shutil.copy(os.path.join(srcdir(), "etc", name), copy)
            os.chmod(copy, 0o644)
            lists += ["-o", "%s=%s" % (name, copy)]
        ns = NotifySocket(os.path.join(self.tmp, "notify"), self.logtext)
        self.addCleanup(ns.close)
        os.chmod(ns.path, 0o666)
        fd = listener.fileno()
        drop = become(*service)

        def as_service():
            os.dup2(fd, 3)
            drop()

        self.start(lists, {"LISTEN_FDS": "1", "NOTIFY_SOCKET": ns.path},
                   preexec=as_service, shell_pid_var="LISTEN_PID",
                   binary=binary)
        ns.wait_for("READY=1")
        self.assertIn("socket activation", self.logtext())

        request = harness.encode_request(harness.make_request())

        def client(who):
            return subprocess.run(
                [python_for(who), "-I", "-c", CLIENT, path], input=request,
                capture_output=True, preexec_fn=become(*who), cwd="/",
                timeout=30)

        r = client(postfix)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(harness.reply_action(r.stdout.decode()),
                         "DEFER_IF_PERMIT", self.logtext())
        r = client(identity("nobody"))
        self.assertEqual(r.returncode, 13, r.stdout + r.stderr)

        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.proc.wait(timeout=15), 0, self.logtext())
        print("postfix socket: %s %s:%s, greyhold as %s"
              % (listen, owner, group, user))

    def test_postfix_socket_documented(self):
        """greyhold(8) and README give the main.cf line for the shipped
        socket unit."""
        sock = unit_settings(os.path.join(srcdir(), "systemd",
                                          "greyhold-postfix.socket"))
        listen = unit_value(sock, "Socket", "ListenStream")
        relative = os.path.relpath(listen, POSTFIX_QUEUE)
        for doc in ("man/greyhold.8", "README"):
            with open(os.path.join(srcdir(), doc)) as f:
                text = f.read()
            for needle in ("check_policy_service unix:%s" % relative,
                           "greyhold-postfix.socket", listen):
                self.assertTrue(needle in text, "%s lacks %r" % (doc, needle))

    def test_units_verify(self):
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            self.skipTest("systemd-analyze not installed")
        src = srcdir()
        unitdir = os.path.join(self.tmp, "units")
        os.mkdir(unitdir)
        sbindir = os.path.dirname(harness.greyhold_bin())
        with open(os.path.join(src, "systemd", "greyhold.service.in")) as f:
            unit = f.read().replace("@sbindir@", sbindir)
        with open(os.path.join(unitdir, "greyhold.service"), "w") as f:
            f.write(unit)
        sockets = ("greyhold.socket", "greyhold-postfix.socket")
        for u in sockets:
            shutil.copy(os.path.join(src, "systemd", u), unitdir)
        units = [os.path.join(unitdir, u)
                 for u in ("greyhold.service",) + sockets]
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
