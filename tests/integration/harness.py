"""Shared helpers for greyhold's integration tests.

The tests run the real daemon (GREYHOLD_BIN, set by `make check`) in the
foreground on a free loopback TCP port and/or a unix socket, with a fresh
LMDB directory under a temporary directory, and talk to it with a small
policy-protocol client.  The daemon's stderr (its decision log) goes to a
file the tests read.

Everything a test starts is stopped and removed by cleanups registered on
the test case, and an atexit hook kills any daemon still running, so a
failing or interrupted test leaves no process and no directory behind.

GREYHOLD_WRAPPER (e.g. "valgrind --error-exitcode=99 --leak-check=full")
runs the daemon under a memory checker; a sanitizer or valgrind report in
the daemon log fails the test (see the end of this file).

Standard library only.
"""

import atexit
import ctypes
import ctypes.util
import itertools
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

READY_TIMEOUT = 10.0
REPLY_TIMEOUT = 10.0

_live_daemons = set()


def greyhold_bin():
    """Path of the daemon under test."""
    path = os.environ.get("GREYHOLD_BIN")
    if not path:
        here = os.path.dirname(os.path.abspath(__file__))
        path = os.path.join(here, "..", "..", "src", "greyhold")
    path = os.path.abspath(path)
    if not os.access(path, os.X_OK):
        raise RuntimeError("greyhold binary not found at %s; set GREYHOLD_BIN"
                           % path)
    return path


def ctl_bin(must_exist=True):
    """Path of greyholdctl, built next to the daemon under test.

    With must_exist, a missing or non-executable one is an error; without,
    the caller checks (and may skip)."""
    path = os.path.join(os.path.dirname(greyhold_bin()), "greyholdctl")
    if must_exist and not os.access(path, os.X_OK):
        raise RuntimeError("greyholdctl not found at %s (build it next to "
                           "GREYHOLD_BIN)" % path)
    return path


def write_file(path, text, mode=0o644):
    """Write text to path (replacing it) and chmod it to mode: readable by
    everyone by default, whatever the umask, since some tests run
    greyholdctl or postgrey as nobody."""
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def read_text(path):
    """A log file's text (undecodable bytes replaced), "" if absent."""
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


# Tests never reach a real DNS server: unless a test names its own
# (loopback) resolver, the daemon gets one where nothing listens, so its
# lookups are refused at once and it decides as it does when DNS is down.
NO_DNS_RESOLVER = "127.0.0.1:1"


def sets_resolver(config, args):
    """Whether a config file or -o arguments name a resolver."""
    if any(str(a).startswith("resolver=") for a in args):
        return True
    if config in (None, "/dev/null"):
        return False
    try:
        with open(config) as f:
            return any(line.split("=")[0].strip() == "resolver"
                       for line in f if "=" in line)
    except OSError:
        return False


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    """A TCP port that was free a moment ago (bound to port 0, then closed)."""
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def ipv6_loopback_available():
    if not socket.has_ipv6:
        return False
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        return False
    try:
        s.bind(("::1", 0))
        return True
    except OSError:
        return False
    finally:
        s.close()


# ---- time ---------------------------------------------------------------

def sleep_until(deadline):
    while True:
        left = deadline - time.time()
        if left <= 0:
            return
        time.sleep(left)


def align_to_second(frac=0.1):
    """Sleep until the wall clock's fractional second is `frac`.

    The daemon counts whole seconds (time(2)); starting a timed sequence
    just after a second boundary makes "N seconds later" land in second
    +N with almost a second of slack for scheduling jitter.
    """
    now = time.time()
    target = math.floor(now) + frac
    if target < now + 0.02:
        target += 1.0
    sleep_until(target)
    return target


# ---- requests -------------------------------------------------------------

_instance_counter = itertools.count(1)


def make_request(client_address="192.0.2.10", sender="alice@example.org",
                 recipient="bob@example.com", protocol_state="RCPT",
                 client_name=None, **extra):
    """A request as Postfix 3.x sends it, as an ordered dict of str -> str.

    Keyword arguments override or add attributes; an attribute set to None
    is left out.
    """
    n = next(_instance_counter)
    if client_name is None:
        client_name = "mx%d.example.net" % (n % 7)
    attrs = {
        "request": "smtpd_access_policy",
        "protocol_state": protocol_state,
        "protocol_name": "ESMTP",
        "client_address": client_address,
        "client_name": client_name,
        "client_port": str(40000 + n % 20000),
        "reverse_client_name": client_name,
        "server_address": "192.0.2.1",
        "server_port": "25",
        "helo_name": "helo.example.net",
        "sender": sender,
        "recipient": recipient,
        "recipient_count": "0",
        "queue_id": "",
        "instance": "%x.%x.%x.0" % (os.getpid(), n, int(time.time())),
        "size": str(1000 + n),
        "etrn_domain": "",
        "stress": "",
        "sasl_method": "",
        "sasl_username": "",
        "sasl_sender": "",
        "ccert_subject": "",
        "ccert_issuer": "",
        "ccert_fingerprint": "",
        "ccert_pubkey_fingerprint": "",
        "encryption_protocol": "TLSv1.3",
        "encryption_cipher": "TLS_AES_256_GCM_SHA384",
        "encryption_keysize": "256",
        "policy_context": "",
        "compatibility_level": "3.6",
        "mail_version": "3.7.11",
    }
    for key, value in extra.items():
        attrs[key] = value
    return {k: v for k, v in attrs.items() if v is not None}


def encode_request(attrs):
    """Bytes of one request: name=value lines, then an empty line.

    attrs is a dict or a list of (name, value) pairs; values may be str or
    bytes (bytes are sent as they are, for hostile input).
    """
    items = attrs.items() if isinstance(attrs, dict) else attrs
    out = bytearray()
    for name, value in items:
        if isinstance(name, str):
            name = name.encode("utf-8", "surrogateescape")
        if isinstance(value, str):
            value = value.encode("utf-8", "surrogateescape")
        out += name + b"=" + value + b"\n"
    out += b"\n"
    return bytes(out)


REPLY_RE = re.compile(r"\Aaction=[^\n]*\n\n\Z")
# How a reply with the default greylist_action and greylist_text starts.
GREYLISTED = "action=DEFER_IF_PERMIT Greylisted"


def reply_action(reply):
    """'DEFER_IF_PERMIT', 'DUNNO', '450', ... from 'action=X text\\n\\n'."""
    line = reply.split("\n", 1)[0]
    assert line.startswith("action="), reply
    return line[len("action="):].split(" ", 1)[0]


def seconds_left(reply):
    """The N in 'try again in N seconds' (the default greylist_text)."""
    m = re.search(r"try again in (\d+) seconds", reply)
    return int(m.group(1)) if m else None


# ---- client -----------------------------------------------------------------

class ConnectionClosed(Exception):
    """The daemon closed the connection before a whole reply arrived."""

    def __init__(self, partial):
        super().__init__("connection closed by the daemon (partial data %r)"
                         % partial)
        self.partial = partial


class PolicyClient:
    """One connection to the daemon speaking the policy protocol."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @classmethod
    def connect(cls, address, family=socket.AF_INET, timeout=REPLY_TIMEOUT):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        except BaseException:
            sock.close()
            raise
        return cls(sock)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def send_request(self, attrs):
        self.send(encode_request(attrs))

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    def _recv(self, timeout):
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(65536)
        except ConnectionResetError:
            return b""

    def read_reply(self, timeout=REPLY_TIMEOUT):
        """Read one reply (ending in an empty line) and return it as str."""
        deadline = time.monotonic() + timeout
        while b"\n\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no complete reply within %.1fs (got %r)"
                                     % (timeout, self.buf))
            try:
                data = self._recv(left)
            except socket.timeout:
                continue
            if not data:
                partial, self.buf = self.buf, b""
                raise ConnectionClosed(partial)
            self.buf += data
        end = self.buf.index(b"\n\n") + 2
        reply, self.buf = self.buf[:end], self.buf[end:]
        return reply.decode("utf-8", "replace")

    def request(self, attrs, timeout=REPLY_TIMEOUT):
        self.send_request(attrs)
        return self.read_reply(timeout)

    def read_until_closed(self, timeout=5.0):
        """Read until the daemon closes; returns every byte received.

        A reset counts as closed.  Raises socket.timeout if the connection
        is still open after `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        got, self.buf = self.buf, b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("connection still open after %.1fs "
                                     "(received %r)" % (timeout, got))
            try:
                data = self._recv(left)
            except socket.timeout:
                continue
            if not data:
                return got
            got += data

    def assert_silent(self, seconds=0.3):
        """Nothing arrives and the connection stays open for `seconds`."""
        if self.buf:
            raise AssertionError("unexpected data %r" % self.buf)
        self.sock.settimeout(seconds)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return
        except ConnectionResetError:
            data = b""
        if data:
            raise AssertionError("unexpected data %r" % data)
        raise AssertionError("connection closed unexpectedly")


# ---- LMDB write lock (to hold the store thread back) ------------------------

def answers_ping(port, timeout=1.0):
    """Whether a Redis-protocol server on 127.0.0.1:port answers PING
    (+PONG, or -NOAUTH when it wants a password: up either way)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"PING\r\n")
            return s.recv(100).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


class ServerProcess:
    """The life of a helper server (redis-server, redis-sentinel) that a
    test starts: spawned with its output in workdir/LOG_NAME, signalled,
    stopped with SIGTERM (SIGKILL after 5 s), killed and reaped by PID."""

    def __init__(self, workdir, log_name):
        self.workdir = workdir
        self.proc = None
        self.log_path = os.path.join(workdir, log_name)

    def spawn(self, argv):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log,
                                         cwd=self.workdir)

    def wait_answering(self, port, timeout, probe_timeout=1.0):
        """True once it answers PING on port; False if it exits first or
        does not answer within timeout seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if answers_ping(port, probe_timeout):
                return True
            time.sleep(0.02)
        return False

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        return read_text(self.log_path)

    def signal(self, sig):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def kill(self):
        """SIGKILL by PID and reap."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.signal(signal.SIGCONT)     # in case a test left it stopped
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.kill()


class LmdbWriteLock:
    """Holds the LMDB write lock of a greyhold dbdir from this process.

    LMDB lets a second process open the environment; its write transaction
    makes the daemon's store thread wait, which keeps requests "in flight"
    for as long as the test needs.  Uses liblmdb through ctypes; raises
    unittest.SkipTest when the library cannot be loaded.
    """

    def __init__(self, dbdir):
        name = ctypes.util.find_library("lmdb")
        lib = None
        for candidate in (name, "liblmdb.so.0", "liblmdb.so"):
            if not candidate:
                continue
            try:
                lib = ctypes.CDLL(candidate)
                break
            except OSError:
                continue
        if lib is None:
            raise unittest.SkipTest("liblmdb not loadable through ctypes")
        self.lib = lib
        lib.mdb_strerror.restype = ctypes.c_char_p
        self.env = ctypes.c_void_p()
        self.txn = None
        self._check(lib.mdb_env_create(ctypes.byref(self.env)), "env_create")
        self._check(lib.mdb_env_set_maxdbs(self.env, 8), "set_maxdbs")
        rc = lib.mdb_env_open(self.env, os.fsencode(dbdir), 0, 0o600)
        if rc != 0:
            lib.mdb_env_close(self.env)
            self._check(rc, "env_open")

    def _check(self, rc, what):
        if rc != 0:
            raise RuntimeError("mdb_%s: %s" % (what,
                               self.lib.mdb_strerror(rc).decode()))

    def acquire(self):
        txn = ctypes.c_void_p()
        self._check(self.lib.mdb_txn_begin(self.env, None, 0,
                                           ctypes.byref(txn)), "txn_begin")
        self.txn = txn

    def release(self):
        if self.txn is not None:
            self.lib.mdb_txn_abort(self.txn)
            self.txn = None

    def close(self):
        self.release()
        if self.env:
            self.lib.mdb_env_close(self.env)
            self.env = ctypes.c_void_p()


# ---- the daemon -------------------------------------------------------------

class DaemonError(Exception):
    pass


class Daemon:
    """One greyhold process (restartable on the same dbdir)."""

    def __init__(self, workdir, args=(), inet="127.0.0.1", unix=None,
                 config="/dev/null", dbdir=None, port=None):
        self.workdir = workdir
        self.args = list(args)
        self.inet_host = inet          # None: no TCP listener
        self.unix = unix               # path of a unix socket, or None
        self.config = config           # None: no -c (the built-in default)
        self.dbdir = dbdir or os.path.join(workdir, "db")
        self.fixed_port = port
        self.port = None
        self.proc = None
        self.log_path = os.path.join(workdir, "greyhold.log")
        self.out_path = os.path.join(workdir, "greyhold.out")
        self.run_log_start = 0         # log offset where this run began
        self.returncode = None

    # -- addresses

    @property
    def family(self):
        if self.inet_host is None:
            return socket.AF_UNIX
        return socket.AF_INET6 if ":" in self.inet_host else socket.AF_INET

    @property
    def address(self):
        if self.inet_host is None:
            return self.unix
        return (self.inet_host, self.port)

    def inet_spec(self):
        host = self.inet_host
        if ":" in host:
            host = "[%s]" % host
        return "%s:%d" % (host, self.port)

    # -- lifetime

    def argv(self):
        argv = wrapper_argv() + [greyhold_bin(), "-f", "--dbdir", self.dbdir]
        if self.config is not None:
            argv += ["-c", self.config]
        if self.inet_host is not None:
            argv += ["--inet", self.inet_spec()]
        if self.unix is not None:
            argv += ["--unix", self.unix]
        if not sets_resolver(self.config, self.args):
            argv += ["-o", "resolver=" + NO_DNS_RESOLVER]
        return argv + self.args

    def start(self, timeout=READY_TIMEOUT):
        """Start and wait until a policy request is answered."""
        timeout *= timeout_scale()
        if self.running():
            raise DaemonError("already running")
        for attempt in range(5):
            if self.inet_host is not None:
                self.port = self.fixed_port or free_port(
                    self.family, self.inet_host)
            self._spawn()
            try:
                self.wait_ready(timeout)
                return self
            except DaemonError:
                self._reap()
                text = self.run_log()
                if (self.fixed_port is None and self.returncode is not None
                        and "address already in use" in text.lower()):
                    continue        # lost a race for the port: try another
                raise
        raise DaemonError("could not find a free port")

    def _spawn(self):
        with open(self.log_path, "ab") as f:
            self.run_log_start = f.tell()
        self.returncode = None
        err = open(self.log_path, "ab")
        out = open(self.out_path, "ab")
        try:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=err,
                                         cwd=self.workdir)
        finally:
            err.close()
            out.close()
        _live_daemons.add(self)

    def wait_ready(self, timeout=READY_TIMEOUT):
        """Poll until the daemon accepts a connection and answers on it."""
        deadline = time.monotonic() + timeout
        last_error = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.returncode = self.proc.returncode
                raise DaemonError("greyhold exited with %d during start:\n%s"
                                  % (self.returncode, self.run_log()))
            try:
                with self.client(timeout=2) as c:
                    reply = c.request(make_request(protocol_state="CONNECT"),
                                      timeout=max(0.5, deadline -
                                                  time.monotonic()))
                if reply == "action=DUNNO\n\n":
                    return
                last_error = "unexpected probe reply %r" % reply
            except (OSError, ConnectionClosed) as e:
                last_error = e
            time.sleep(0.02)
        raise DaemonError("greyhold not ready after %.0fs (%s):\n%s"
                          % (timeout, last_error, self.run_log()))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def pid(self):
        return self.proc.pid

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=10.0):
        """Wait for exit; the exit code (negative: killed by that signal)."""
        self.returncode = self.proc.wait(timeout)
        _live_daemons.discard(self)
        return self.returncode

    def stop(self, timeout=10.0):
        """SIGTERM and wait; SIGKILL if it does not exit in time.

        Returns the exit code of the SIGTERM stop (None if it had to be
        killed).
        """
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                code = None
        else:
            code = self.wait(0)
        self.check_sanitizer_log()
        return code

    def kill(self):
        """SIGKILL and reap."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        self._reap()

    def _reap(self):
        if self.proc is not None:
            try:
                self.returncode = self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        _live_daemons.discard(self)

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5 * timeout_scale())
            except subprocess.TimeoutExpired:
                pass
        self.kill()
        self.check_sanitizer_log()

    def check_sanitizer_log(self):
        """Fail if the log holds a sanitizer or valgrind report.

        Reads only what was not checked before, so one report fails once.
        """
        text = self.log()
        start = getattr(self, "_sanitizer_checked", 0)
        self._sanitizer_checked = len(text)
        report = sanitizer_report(text[start:])
        if report:
            raise AssertionError("memory error report in the greyhold log "
                                 "(%s):\n%s" % (self.log_path, report))

    # -- clients

    def client(self, timeout=REPLY_TIMEOUT):
        return PolicyClient.connect(self.address, self.family, timeout)

    def unix_client(self, timeout=REPLY_TIMEOUT):
        return PolicyClient.connect(self.unix, socket.AF_UNIX, timeout)

    def ask(self, attrs, timeout=REPLY_TIMEOUT):
        """One request on a fresh connection."""
        with self.client() as c:
            return c.request(attrs, timeout)

    # -- log

    def log(self):
        """Everything the daemon wrote to stderr, over all runs."""
        return read_text(self.log_path)

    def run_log(self):
        """What the current (or last) run wrote."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.run_log_start)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_mark(self):
        try:
            return os.path.getsize(self.log_path)
        except FileNotFoundError:
            return 0

    def log_since(self, mark):
        with open(self.log_path, "rb") as f:
            f.seek(mark)
            return f.read().decode("utf-8", "replace")

    def wait_log(self, pattern, mark=0, timeout=5.0):
        """Wait for a line matching regex `pattern` after offset `mark`."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log_since(mark).splitlines():
                m = rx.search(line)
                if m:
                    return line
            if time.monotonic() > deadline:
                raise AssertionError("no log line matching %r within %.0fs; "
                                     "log:\n%s" % (pattern, timeout,
                                                   self.log_since(mark)))
            time.sleep(0.02)

    def decision_lines(self, mark=0):
        return [line for line in self.log_since(mark).splitlines()
                if line.startswith("greyhold: action=")]


def _kill_leftovers():
    for d in list(_live_daemons):
        try:
            d.kill()
        except Exception:
            pass


atexit.register(_kill_leftovers)


# ---- test case base ---------------------------------------------------------

class GreyholdTestCase(unittest.TestCase):
    """Temp dirs and daemons that are cleaned up however the test ends."""

    def tmpdir(self):
        path = tempfile.mkdtemp(prefix="greyhold-it-")
        self.addCleanup(shutil.rmtree, path, True)
        return path

    def daemon(self, args=(), start=True, **kw):
        workdir = kw.pop("workdir", None) or self.tmpdir()
        d = Daemon(workdir, args=args, **kw)
        self.addCleanup(self._dump_log_on_failure, d)
        self.addCleanup(d.cleanup)
        if start:
            d.start()
        return d

    def _dump_log_on_failure(self, d):
        # Show the daemon's log when the test failed, to explain why.
        outcome = getattr(self, "_outcome", None)
        result = getattr(outcome, "result", None)
        failed = False
        if result is not None:
            for test, _ in list(result.failures) + list(result.errors):
                if test is self:
                    failed = True
        if outcome is not None and not getattr(outcome, "success", True):
            failed = True
        if failed or os.environ.get("GREYHOLD_TEST_SHOW_LOG"):
            text = d.log()
            if len(text) > 6000:
                text = "...\n" + text[-6000:]
            print("\n---- greyhold log (%s) ----\n%s---- end ----"
                  % (self.id(), text))

    def connect(self, daemon, **kw):
        c = daemon.client(**kw)
        self.addCleanup(c.close)
        return c

    def assertClosedSilently(self, client, timeout=5.0, what=""):
        """The daemon closes the connection without sending anything."""
        try:
            got = client.read_until_closed(timeout)
        except socket.timeout as e:
            self.fail("%s: connection not closed: %s" % (what, e))
        self.assertEqual(got, b"", "%s: daemon sent data before closing"
                         % what)

    def assertDefer(self, reply, msg=None):
        self.assertRegex(reply, REPLY_RE)
        self.assertTrue(reply.startswith("action=DEFER_IF_PERMIT "),
                        msg or "expected a deferral, got %r" % reply)

    def assertDunno(self, reply, msg=None):
        self.assertEqual(reply, "action=DUNNO\n\n",
                         msg or "expected DUNNO, got %r" % reply)


def main():
    unittest.main(verbosity=2)


# ---- sanitizers and memory checkers -----------------------------------------
#
# A build with --enable-sanitizers writes AddressSanitizer, LeakSanitizer
# and UndefinedBehaviorSanitizer reports to stderr, i.e. the daemon log;
# GREYHOLD_WRAPPER (e.g. "valgrind --error-exitcode=99 --leak-check=full")
# prefixes the daemon's command line, and valgrind's reports land there too.
# Daemon.stop() and Daemon.cleanup() fail the test on any such report.

_SANITIZER_RES = [
    re.compile(r"^.*ERROR: AddressSanitizer.*$", re.M),
    re.compile(r"^.*ERROR: LeakSanitizer.*$", re.M),
    re.compile(r"^.*WARNING: ThreadSanitizer.*$", re.M),
    # UBSan: "file.c:12:5: runtime error: ..." (never a greyhold log line,
    # which could quote the words from a hostile request).
    re.compile(r"^(?!greyhold: ).*runtime error:.*$", re.M),
    re.compile(r"^==\d+== ERROR SUMMARY: [1-9]\d* errors.*$", re.M),
]


def sanitizer_report(text):
    """The sanitizer/valgrind report in a log text (with some context), or
    '' when there is none."""
    for rx in _SANITIZER_RES:
        m = rx.search(text)
        if m:
            start = max(0, m.start() - 200)
            return text[start:m.end() + 3000]
    return ""


def wrapper_argv():
    """GREYHOLD_WRAPPER split into words (empty when unset)."""
    import shlex
    return shlex.split(os.environ.get("GREYHOLD_WRAPPER", ""))


def timeout_scale():
    """How much slower the daemon runs: 1, or more under a wrapper such as
    valgrind (GREYHOLD_TIMEOUT_SCALE overrides)."""
    value = os.environ.get("GREYHOLD_TIMEOUT_SCALE")
    if value:
        return float(value)
    return 5.0 if wrapper_argv() else 1.0


# ---- process figures (/proc) ------------------------------------------------

def proc_status(pid):
    """VmRSS, RssAnon, VmHWM, ... of a process in kB, from /proc/PID/status."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            name, _, value = line.partition(":")
            parts = value.split()
            if len(parts) == 2 and parts[1] == "kB":
                out[name] = int(parts[0])
    return out


def rss_kb(pid):
    return proc_status(pid).get("VmRSS", 0)


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def percentile(values, p):
    """The p-th percentile (0..100) of a list of numbers (nearest rank:
    the ceil(p * n / 100)-th smallest, as greyholdctl report computes it;
    integer arithmetic, so 7% of 100 is the 7th and not the 8th)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = -(-len(ordered) * p // 100)
    return ordered[int(max(1, min(len(ordered), rank))) - 1]


def memory_checked():
    """Whether the daemon runs under ASan/TSan or a wrapper such as
    valgrind, whose own memory (quarantine, shadow) swamps the daemon's:
    memory bounds must then allow for it."""
    global _memory_checked
    if _memory_checked is None:
        try:
            with open(greyhold_bin(), "rb") as f:
                data = f.read()
            _memory_checked = (b"__asan_init" in data or
                               b"__tsan_init" in data)
        except OSError:
            _memory_checked = False
    return _memory_checked or bool(wrapper_argv())


_memory_checked = None


def rss_bound_kb(kb):
    """A bound on memory growth in kB, with room for a memory checker's own
    memory when there is one (ASan's quarantine alone is 256 MB)."""
    return kb + (512 * 1024 if memory_checked() else 0)
