"""unbound serving local-data on a loopback port, for tests.

    ub = Unbound(workdir, ['"a.test. 300 IN A 192.0.2.1"', ...],
                 zones=["test.", "2.0.192.in-addr.arpa."])
    ub.start()          # foreground, unprivileged, waits until it answers
    ... ub.address ...  # "127.0.0.1:PORT"
    ub.stop()

local-data lines are given as unbound.conf writes them, quoted:
'"a.test. 300 IN A 192.0.2.1"', or in single quotes when the data has
double quotes (TXT strings): "'t.test. TXT \"v=spf1\" \" -all\"'".  Each
zone is made static (names without data are NXDOMAIN, other types
NODATA) after removing unbound's built-in answer for it (nodefault), and
gets an SOA whose negative TTL is Unbound.NEG_TTL unless the data has one.
skip_reason() says why a test cannot run (no unbound binary).

Standard library only.
"""

import os
import shutil
import subprocess
import time

import dnsserver
import harness

NEG_TTL = 60


def unbound_bin():
    for path in ("/usr/sbin/unbound", shutil.which("unbound") or ""):
        if path and os.access(path, os.X_OK):
            return path
    return None


def skip_reason():
    if unbound_bin() is None:
        return "unbound is not installed (Debian package unbound)"
    return None


class Unbound:
    def __init__(self, workdir, local_data, zones=("test.",)):
        self.workdir = workdir
        self.local_data = list(local_data)
        self.zones = list(zones)
        self.port = harness.free_port()
        self.proc = None
        self.log_path = os.path.join(workdir, "unbound.log")

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def config_text(self):
        lines = [
            "server:",
            "  interface: 127.0.0.1@%d" % self.port,
            "  port: %d" % self.port,
            "  do-ip6: no",
            "  do-daemonize: no",
            '  username: ""',
            '  chroot: ""',
            '  directory: "%s"' % self.workdir,
            '  pidfile: "%s"' % os.path.join(self.workdir, "unbound.pid"),
            "  use-syslog: no",
            '  logfile: ""',
            "  verbosity: 1",
            "  num-threads: 1",
            "  so-reuseport: no",
            "  access-control: 127.0.0.0/8 allow",
            "  module-config: \"iterator\"",
        ]
        for zone in self.zones:
            lines.append('  local-zone: "%s" nodefault' % zone)
        for zone in self.zones:
            lines.append('  local-zone: "%s" static' % zone)
            has_soa = any(d.strip("'\"").split()[0] == zone and " SOA " in d
                          for d in self.local_data)
            if not has_soa:
                lines.append('  local-data: "%s 3600 IN SOA ns.%s admin.%s '
                             '1 3600 600 86400 %d"'
                             % (zone, zone, zone, NEG_TTL))
        for d in self.local_data:
            lines.append("  local-data: %s" % d)
        return "\n".join(lines) + "\n"

    def start(self, timeout=10.0):
        conf = os.path.join(self.workdir, "unbound.conf")
        with open(conf, "w") as f:
            f.write(self.config_text())
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([unbound_bin(), "-d", "-c", conf],
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("unbound exited: %s" % self.log())
            if dnsserver.query_udp("127.0.0.1", self.port, self.zones[0],
                                   dnsserver.SOA, timeout=0.2):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("unbound did not answer within %.0fs: %s"
                           % (timeout, self.log()))

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None
