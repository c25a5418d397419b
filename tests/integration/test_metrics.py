#!/usr/bin/env python3
"""Integration tests of the Prometheus endpoint (metrics_listen).

The real daemon serves /metrics on a loopback port while the tests drive
it, and every counter is checked against what the test itself did:

- under continuous load from several client threads, /metrics answers
  quickly (its latency is printed), the exposition is valid Prometheus
  text format every time, counters never go down between two scrapes,
  and once the load stops each greyhold_requests_total{action,reason}
  moved by exactly the number of requests of that kind the test sent
  (new, restart, early_retry, delayed, known, client_awl, the static and
  live whitelists, not_rcpt, authenticated); the latency histogram
  counted every answer; connections, reloads (SIGHUP with a good and two
  bad configurations), whitelist entries (files and live, the live ones
  added with greyholdctl) and the store's batches, jobs and commits
  moved as they should;
- store errors: a map full at db_max_size=1M answers with failure_action
  and counts failure/store_error once per failed request;
- connection counters: max_connections refusals, protocol errors (three
  kinds of malformed input) and idle_timeout closes;
- the HTTP side: /other is a 404, oversized, binary and half-sent
  requests are closed without an answer, and none of it harms the
  policy service or the next scrape;
- scraping every 10 ms leaves a policy client's latency alone (p99 with
  and without scrapes printed; only a generous bound asserted).

Standard library only.
"""

import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import (GreyholdTestCase, REPLY_RE,  # noqa: E402
                     align_to_second, encode_request, free_port,
                     make_request, percentile, sleep_until, timeout_scale)
from harness import GREYLISTED, ctl_bin, write_file  # noqa: E402

DUNNO = "action=DUNNO\n\n"
MAX_HTTP_REQUEST = 4096     # METRICS_HTTP_MAX_REQUEST in metrics_http.h

# Every action/reason pair greyhold_requests_total carries (metrics.c).
RESULTS = [
    ("greylist", "new"), ("greylist", "restart"),
    ("greylist", "early_retry"), ("pass", "delayed"), ("pass", "known"),
    ("pass", "client_awl"), ("pass", "client_whitelist"),
    ("pass", "recipient_whitelist"), ("pass", "live_client_whitelist"),
    ("pass", "live_recipient_whitelist"), ("dunno", "not_rcpt"),
    ("dunno", "authenticated"), ("failure", "store_error"),
]


def req_series(action, reason):
    return 'greyhold_requests_total{action="%s",reason="%s"}' % (action,
                                                                 reason)


WL_FILES = 'greyhold_whitelist_entries{source="files"}'
WL_LIVE = 'greyhold_whitelist_entries{source="live"}'
HIST = "greyhold_request_duration_seconds"


# ---- HTTP -------------------------------------------------------------------

class HttpResponse:
    def __init__(self, raw, seconds):
        self.raw = raw
        self.seconds = seconds
        head, sep, self.body = raw.partition(b"\r\n\r\n")
        if not sep:
            raise AssertionError("no end of HTTP header in %r" % raw[:300])
        lines = head.decode("latin-1").split("\r\n")
        m = re.match(r"HTTP/1\.[01] (\d{3}) ", lines[0])
        if not m:
            raise AssertionError("bad status line %r" % lines[0])
        self.status = int(m.group(1))
        self.headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()

    @property
    def text(self):
        return self.body.decode("utf-8")


def http_raw(port, data, timeout=5.0, shutdown=False):
    """Send data to the metrics port and read until the daemon closes.

    Returns (bytes received, seconds from connect to close).  A reset
    counts as closed.
    """
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    got = b""
    try:
        try:
            s.sendall(data)
            if shutdown:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass        # closed while we sent: the point of some tests
        deadline = t0 + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("metrics connection still open after "
                                     "%.1fs (got %r)" % (timeout, got[:200]))
            s.settimeout(left)
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return got, time.monotonic() - t0
            got += chunk
    finally:
        s.close()


def http_get(port, path="/metrics", timeout=5.0):
    req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: "
           "greyhold-test\r\nAccept: text/plain;version=0.0.4\r\n\r\n"
           % (path, port)).encode()
    raw, seconds = http_raw(port, req, timeout)
    return HttpResponse(raw, seconds)


# ---- Prometheus text format -------------------------------------------------

NAME_RE = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
SAMPLE_RE = re.compile(r"^(%s)(\{[^}]*\})? (\S+)$" % NAME_RE)
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def parse_labels(text, line):
    """'{a="x",b="y"}' -> (('a','x'), ('b','y')), strictly."""
    inner = text[1:-1]
    labels = []
    pos = 0
    while pos < len(inner):
        m = LABEL_RE.match(inner, pos)
        if not m:
            raise AssertionError("bad label set in %r" % line)
        labels.append((m.group(1), m.group(2)))
        pos = m.end()
        if pos < len(inner):
            if inner[pos] != ",":
                raise AssertionError("bad label separator in %r" % line)
            pos += 1
    names = [n for n, _ in labels]
    if len(set(names)) != len(names):
        raise AssertionError("repeated label name in %r" % line)
    return tuple(labels)


def parse_value(text, line):
    if text in ("+Inf", "-Inf", "NaN"):
        return float(text)
    if not re.match(r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$", text):
        raise AssertionError("bad sample value in %r" % line)
    return float(text)


def family_of(name, types):
    """The metric family a sample name belongs to."""
    if name in types:
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[:-len(suffix)]
        if name.endswith(suffix) and types.get(base) == "histogram":
            return base
    return None


class Exposition:
    """A parsed and validated Prometheus text exposition (format 0.0.4).

    Checks: every line is a HELP, TYPE or sample line; each family has
    one HELP and one TYPE line, both before its first sample, and its
    lines are not interleaved with another family's; every sample line is
    NAME{labels} VALUE with well-formed labels and value and belongs to a
    declared family; no series appears twice; counter names end in
    _total; histogram buckets are cumulative, end at le="+Inf" and agree
    with _count.
    """

    def __init__(self, text):
        self.samples = {}               # 'name{labels}' -> value
        self.types = {}                 # family -> type
        self.family_of_series = {}
        if not text.endswith("\n"):
            raise AssertionError("exposition does not end with a newline")
        helps = set()
        current = None
        finished = set()
        first_sample = set()
        for line in text[:-1].split("\n"):
            if line == "":
                continue
            if line.startswith("#"):
                m = re.match(r"^# (HELP|TYPE) (%s) (.*)$" % NAME_RE, line)
                if not m:
                    if re.match(r"^# (HELP|TYPE)", line):
                        raise AssertionError("bad %r" % line)
                    continue            # a plain comment
                kind, name, rest = m.groups()
                if name != current:
                    if current is not None:
                        finished.add(current)
                    if name in finished:
                        raise AssertionError("family %s split up (at %r)"
                                             % (name, line))
                    current = name
                if name in first_sample:
                    raise AssertionError("%s line after the samples of %s"
                                         % (kind, name))
                if kind == "HELP":
                    if name in helps:
                        raise AssertionError("second HELP for %s" % name)
                    if not rest.strip():
                        raise AssertionError("empty HELP for %s" % name)
                    helps.add(name)
                else:
                    if name in self.types:
                        raise AssertionError("second TYPE for %s" % name)
                    if rest not in TYPES:
                        raise AssertionError("unknown TYPE %r" % line)
                    self.types[name] = rest
                continue
            m = SAMPLE_RE.match(line)
            if not m:
                raise AssertionError("not a sample line: %r" % line)
            name, labels, value = m.groups()
            fam = family_of(name, self.types)
            if fam is None:
                raise AssertionError("sample before (or without) its TYPE "
                                     "line: %r" % line)
            if fam not in helps:
                raise AssertionError("sample before (or without) its HELP "
                                     "line: %r" % line)
            if fam != current:
                raise AssertionError("sample of %s among the lines of %s: "
                                     "%r" % (fam, current, line))
            first_sample.add(fam)
            parsed = parse_labels(labels, line) if labels else ()
            key = name + (labels or "")
            if key in self.samples:
                raise AssertionError("series twice: %s" % key)
            self.samples[key] = parse_value(value, line)
            self.family_of_series[key] = fam
            self._check_histogram_sample(fam, name, parsed, line)
        for fam, kind in self.types.items():
            if fam not in helps:
                raise AssertionError("TYPE without HELP: %s" % fam)
            if fam not in first_sample:
                raise AssertionError("family without samples: %s" % fam)
            if kind == "counter" and not fam.endswith("_total"):
                raise AssertionError("counter %s does not end in _total"
                                     % fam)
            if kind == "histogram":
                self._check_histogram(fam)

    def _check_histogram_sample(self, fam, name, labels, line):
        if self.types[fam] != "histogram":
            return
        has_le = any(n == "le" for n, _ in labels)
        if name.endswith("_bucket") != has_le:
            raise AssertionError("histogram sample with/without le: %r"
                                 % line)

    def _check_histogram(self, fam):
        buckets = []
        for key, value in self.samples.items():
            m = re.match(r'^%s_bucket\{le="([^"]+)"\}$' % re.escape(fam), key)
            if m:
                buckets.append((parse_value(m.group(1), key), value))
        if not buckets or buckets[-1][0] != math.inf:
            raise AssertionError("%s: no le=\"+Inf\" bucket last" % fam)
        for (b1, v1), (b2, v2) in zip(buckets, buckets[1:]):
            if not b1 < b2:
                raise AssertionError("%s: bucket bounds not ascending" % fam)
            if v2 < v1:
                raise AssertionError("%s: buckets not cumulative" % fam)
        count = self.samples.get(fam + "_count")
        if count is None or fam + "_sum" not in self.samples:
            raise AssertionError("%s: no _sum or _count" % fam)
        if buckets[-1][1] != count:
            raise AssertionError("%s: +Inf bucket %g != count %g"
                                 % (fam, buckets[-1][1], count))

    def __getitem__(self, key):
        if key not in self.samples:
            raise AssertionError("no series %s in the exposition" % key)
        return self.samples[key]

    def monotonic_series(self):
        """Series that may only go up (counters and histograms)."""
        return [k for k, fam in self.family_of_series.items()
                if self.types[fam] in ("counter", "histogram")]


def assert_counters_up(old, new):
    """Counters and histogram series of `new` are >= those of `old`."""
    for key in old.monotonic_series():
        if new[key] < old[key]:
            raise AssertionError("counter %s went down: %g -> %g"
                                 % (key, old[key], new[key]))


# ---- policy load ------------------------------------------------------------

class LoadThread(threading.Thread):
    """One connection sending requests continuously, WINDOW pipelined at
    a time: new triplets (greylist/new) and CONNECT-stage requests
    (dunno/not_rcpt), every reply checked and counted."""

    WINDOW = 8

    def __init__(self, daemon, index):
        super().__init__(daemon=True)
        self.d = daemon
        self.index = index
        self.stop = threading.Event()
        self.new = 0
        self.not_rcpt = 0
        self.errors = []
        self.answered = threading.Event()

    def run(self):
        client = "198.51.100.%d" % (10 + self.index)
        n = 0
        try:
            with self.d.client() as c:
                while not self.stop.is_set():
                    kinds = []
                    data = b""
                    for _ in range(self.WINDOW):
                        n += 1
                        if n % 4 == 0:
                            kinds.append("not_rcpt")
                            data += encode_request(make_request(
                                client_address=client,
                                protocol_state="CONNECT"))
                        else:
                            kinds.append("new")
                            data += encode_request(make_request(
                                client_address=client,
                                sender="load%d-%d@example.org"
                                % (self.index, n),
                                recipient="rcpt%d@example.com" % n))
                    c.send(data)
                    for kind in kinds:
                        reply = c.read_reply()
                        if kind == "new" and reply.startswith(GREYLISTED):
                            self.new += 1
                        elif kind == "not_rcpt" and reply == DUNNO:
                            self.not_rcpt += 1
                        else:
                            self.errors.append("%s got %r" % (kind, reply))
                    self.answered.set()
        except Exception as e:     # reported by the test
            self.errors.append("load thread %d: %r" % (self.index, e))
            self.answered.set()


class Scraper(threading.Thread):
    """Scrapes /metrics every `interval` seconds; keeps every parsed
    exposition and its latency, and the first error."""

    def __init__(self, port, interval=0.05):
        super().__init__(daemon=True)
        self.port = port
        self.interval = interval
        self.stop = threading.Event()
        self.latencies = []
        self.expositions = []
        self.errors = []

    def run(self):
        while not self.stop.is_set():
            try:
                r = http_get(self.port)
                if r.status != 200:
                    raise AssertionError("scrape status %d" % r.status)
                self.expositions.append(Exposition(r.text))
                self.latencies.append(r.seconds)
            except Exception as e:
                self.errors.append("scrape %d: %r"
                                   % (len(self.latencies) + 1, e))
                return
            self.stop.wait(self.interval)


# A scraper in its own process (no GIL shared with the measured client).
SCRAPER_PROCESS = r"""
import socket, sys, time
port, interval = int(sys.argv[1]), float(sys.argv[2])
req = b"GET /metrics HTTP/1.0\r\n\r\n"
n, worst, errors = 0, 0.0, 0
print("ready", flush=True)
import select
while not select.select([sys.stdin], [], [], 0)[0]:
    t0 = time.monotonic()
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(req)
        got = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        s.close()
        if not got.startswith(b"HTTP/1.0 200 "):
            errors += 1
    except OSError:
        errors += 1
    dt = time.monotonic() - t0
    n += 1
    worst = max(worst, dt)
    time.sleep(max(0.0, interval - dt))
print("%d %.6f %d" % (n, worst, errors), flush=True)
"""


# ---- the tests --------------------------------------------------------------

class MetricsTestCase(GreyholdTestCase):

    def metrics_daemon(self, config_text="", args=()):
        work = self.tmpdir()
        conf = os.path.join(work, "greyhold.conf")
        write_file(conf, config_text)
        port = free_port()
        d = self.daemon(args=["-o", "metrics_listen=127.0.0.1:%d" % port]
                        + list(args), workdir=work, config=conf,
                        dbdir=os.path.join(work, "db"))
        d.metrics_port = port
        d.conf = conf
        d.work = work
        self.wait_metrics(d)
        return d

    def wait_metrics(self, d, timeout=5.0):
        deadline = time.monotonic() + timeout * timeout_scale()
        while True:
            try:
                return self.scrape(d)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def scrape(self, d):
        r = http_get(d.metrics_port, timeout=5 * timeout_scale())
        self.assertEqual(r.status, 200, r.raw[:300])
        self.assertEqual(r.headers.get("content-type"),
                         "text/plain; version=0.0.4")
        self.assertEqual(int(r.headers.get("content-length", -1)),
                         len(r.body))
        return Exposition(r.text)

    def wait_for(self, d, what, predicate, timeout=5.0):
        """Scrape until predicate(exposition) holds; returns it."""
        deadline = time.monotonic() + timeout * timeout_scale()
        while True:
            m = self.scrape(d)
            if predicate(m):
                return m
            if time.monotonic() > deadline:
                self.fail("metrics: %s not reached within %.0fs" % (what,
                                                                    timeout))
            time.sleep(0.05)

    def assertDeltas(self, before, after, expected):
        got = {k: after[k] - before[k] for k in expected}
        self.assertEqual(got, expected)

    # ---- every counter under load -------------------------------------------

    def test_counters_move_as_expected_while_scraped_under_load(self):
        work = self.tmpdir()
        wl_clients = os.path.join(work, "wl_clients")
        wl_rcpts = os.path.join(work, "wl_recipients")
        write_file(wl_clients, "# static client whitelist\n100.64.1.1\n"
                   "goodmx.example.net\n")
        write_file(wl_rcpts, "postmaster@\n")
        good_conf = ("whitelist_clients = %s\nwhitelist_recipients = %s\n"
                     "retry_window = 2s\n" % (wl_clients, wl_rcpts))
        d = self.metrics_daemon(good_conf, args=[
            "--delay", "1", "--auto-whitelist-clients=1"])
        base = self.scrape(d)
        self.assertEqual(base[WL_FILES], 3)
        self.assertEqual(base[WL_LIVE], 0)
        self.assertEqual(sum(base[req_series(*r)] for r in RESULTS),
                         base[HIST + "_count"])

        nconn = [0]
        answers = [0]

        def ask(attrs):
            nconn[0] += 1
            reply = d.ask(attrs)
            answers[0] += 1
            self.assertRegex(reply, REPLY_RE)
            return reply

        # Several clients send continuously; /metrics is scraped meanwhile.
        loads = [LoadThread(d, i) for i in range(4)]
        for t in loads:
            t.start()
        for t in loads:
            self.assertTrue(t.answered.wait(10 * timeout_scale()))
        scraper = Scraper(d.metrics_port)
        scraper.start()
        self.addCleanup(scraper.stop.set)
        for t in loads:
            self.addCleanup(t.stop.set)
        under_load = self.scrape(d)
        self.assertGreaterEqual(under_load["greyhold_connections_open"], 4)

        # Second x: new triplets, an early retry, the whitelists.
        x = align_to_second()
        tA = dict(client_address="192.0.2.10", sender="a@example.org",
                  recipient="b@example.com")
        tK = dict(client_address="unknown", sender="k@example.org",
                  recipient="b@example.com")      # never auto-whitelisted
        # tR waits past retry_window; the expiry sweep cannot remove it
        # first (its first pass ran over the empty database at start, the
        # next one starts 10 minutes later).
        tR = dict(client_address="198.18.0.5", sender="r@example.org",
                  recipient="b@example.com")
        for t in (tA, tK, tR):
            self.assertDefer(ask(make_request(**t)))
        self.assertDefer(ask(make_request(**tA)))          # early_retry
        self.assertLess(time.time(), x + 0.9, "second x overran: the "
                        "early retry may have been a first pass")
        self.assertDunno(ask(make_request(client_address="100.64.1.1")))
        self.assertDunno(ask(make_request(
            client_address="198.18.5.5", client_name="goodmx.example.net")))
        self.assertDunno(ask(make_request(
            client_address="198.18.5.6", recipient="postmaster@example.com")))
        self.assertDunno(ask(make_request(client_address="198.18.5.7",
                                          sasl_username="carol")))
        self.assertDunno(ask(make_request(protocol_state="DATA")))

        # Second x+1: first passes, a known retry, the auto-whitelist.
        sleep_until(x + 1)
        self.assertDunno(ask(make_request(**tA)))          # delayed
        self.assertDunno(ask(make_request(**tK)))          # delayed
        self.assertDunno(ask(make_request(**tK)))          # known
        self.assertDunno(ask(make_request(                 # client_awl
            client_address="192.0.2.11", sender="a2@example.org")))

        # The live whitelist, changed with greyholdctl while the load runs.
        for kind, entry in (("client", "203.0.113.0/24"),
                            ("recipient", "vip@example.com")):
            # (-c /dev/null: the file's retry_window is below the built-in
            # delay, which only the daemon's command line lowers)
            r = subprocess.run([ctl_bin(), "-c", "/dev/null", "--db", d.dbdir,
                                "whitelist", "add", kind, entry],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE,
                               universal_newlines=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
        self.wait_for(d, "2 live whitelist entries",
                      lambda m: m[WL_LIVE] == 2)
        self.assertDunno(ask(make_request(client_address="203.0.113.9")))
        self.assertDunno(ask(make_request(client_address="198.18.5.8",
                                          recipient="vip@example.com")))

        # SIGHUP: a good reload with one more whitelist entry, then a bad
        # configuration and a bad whitelist file, both refused.
        with open(wl_clients, "a") as f:
            f.write("100.64.2.2\n")
        d.send_signal(signal.SIGHUP)
        m = self.wait_for(d, "1 reload", lambda m:
                          m["greyhold_reloads_total"] -
                          base["greyhold_reloads_total"] == 1)
        self.assertEqual(m[WL_FILES], 4)
        self.assertDunno(ask(make_request(client_address="100.64.2.2")))
        write_file(d.conf, good_conf + "no_such_key = 1\n")
        d.send_signal(signal.SIGHUP)
        self.wait_for(d, "1 reload failure", lambda m:
                      m["greyhold_reload_failures_total"] -
                      base["greyhold_reload_failures_total"] == 1)
        write_file(d.conf, good_conf)
        with open(wl_clients, "a") as f:
            f.write("192.0.2.0/99\n")
        d.send_signal(signal.SIGHUP)
        m = self.wait_for(d, "2 reload failures", lambda m:
                          m["greyhold_reload_failures_total"] -
                          base["greyhold_reload_failures_total"] == 2)
        self.assertEqual(m[WL_FILES], 4, "a refused reload changed the "
                         "whitelist count")

        # Second x+3: past retry_window (2s), the pending tR starts over.
        sleep_until(x + 3)
        self.assertDefer(ask(make_request(**tR)))          # restart

        time.sleep(0.3)
        for t in loads:
            t.stop.set()
        for t in loads:
            t.join(10 * timeout_scale())
        scraper.stop.set()
        scraper.join(10 * timeout_scale())
        errors = [e for t in loads for e in t.errors] + scraper.errors
        self.assertEqual(errors, [])
        final = self.wait_for(d, "no connection open", lambda m:
                              m["greyhold_connections_open"] == 0)

        load_new = sum(t.new for t in loads)
        load_not_rcpt = sum(t.not_rcpt for t in loads)
        total = answers[0] + load_new + load_not_rcpt
        lat = sorted(scraper.latencies)
        print("\n  %d scrapes under load from %d clients (%d answers): "
              "latency min %.1f ms, median %.1f ms, p99 %.1f ms, max %.1f ms"
              % (len(lat), len(loads), total, 1000 * lat[0],
                 1000 * percentile(lat, 50), 1000 * percentile(lat, 99),
                 1000 * lat[-1]))
        self.assertGreaterEqual(len(lat), 10)
        self.assertLess(percentile(lat, 50), 0.25 * timeout_scale())
        self.assertLess(lat[-1], 2.0 * timeout_scale())

        # Counters never went down between two consecutive scrapes.
        series = [base] + scraper.expositions + [final]
        for old, new in zip(series, series[1:]):
            assert_counters_up(old, new)

        expected = {req_series(*r): 0 for r in RESULTS}
        expected.update({
            req_series("greylist", "new"): load_new + 3,
            req_series("greylist", "restart"): 1,
            req_series("greylist", "early_retry"): 1,
            req_series("pass", "delayed"): 2,
            req_series("pass", "known"): 1,
            req_series("pass", "client_awl"): 1,
            req_series("pass", "client_whitelist"): 3,
            req_series("pass", "recipient_whitelist"): 1,
            req_series("pass", "live_client_whitelist"): 1,
            req_series("pass", "live_recipient_whitelist"): 1,
            req_series("dunno", "not_rcpt"): load_not_rcpt + 1,
            req_series("dunno", "authenticated"): 1,
            HIST + "_count": total,
            HIST + '_bucket{le="+Inf"}': total,
            "greyhold_connections_accepted_total": nconn[0] + len(loads),
            "greyhold_connections_refused_total": 0,
            "greyhold_protocol_errors_total": 0,
            "greyhold_idle_closed_total": 0,
            "greyhold_reloads_total": 1,
            "greyhold_reload_failures_total": 2,
            "greyhold_store_errors_total": 0,
        })
        self.assertDeltas(base, final, expected)
        self.assertEqual(sum(final[req_series(*r)] for r in RESULTS),
                         final[HIST + "_count"])
        self.assertGreater(final[HIST + "_sum"], base[HIST + "_sum"])
        self.assertEqual((final[WL_FILES], final[WL_LIVE]), (4, 2))

        # The store decided (at least) every request that had to write:
        # new triplets, the restart and the two first passes; early
        # retries and known triplets may be decided on the event loop.
        jobs = (final["greyhold_store_jobs_total"] -
                base["greyhold_store_jobs_total"])
        batches = (final["greyhold_store_batches_total"] -
                   base["greyhold_store_batches_total"])
        commits = (final["greyhold_store_commits_total"] -
                   base["greyhold_store_commits_total"])
        must_write = load_new + 3 + 1 + 2
        greylisting = must_write + 1 + 1 + 1
        print("  store: %d jobs in %d batches, %d commits (%.1f ms in "
              "commits), largest batch %d, map %d bytes"
              % (jobs, batches, commits,
                 1000 * (final["greyhold_store_commit_seconds_total"] -
                         base["greyhold_store_commit_seconds_total"]),
                 final["greyhold_store_batch_size_max"],
                 final["greyhold_store_map_size_bytes"]))
        self.assertGreaterEqual(jobs, must_write)
        self.assertLessEqual(jobs, greylisting)
        self.assertGreaterEqual(batches, 1)
        self.assertLessEqual(batches, jobs)
        self.assertGreaterEqual(commits, 1)
        self.assertLessEqual(commits, batches)
        self.assertGreater(final["greyhold_store_commit_seconds_total"],
                           base["greyhold_store_commit_seconds_total"])
        self.assertGreaterEqual(final["greyhold_store_batch_size_max"], 1)
        self.assertGreater(final["greyhold_store_map_size_bytes"], 0)
        self.assertEqual(final["greyhold_store_map_size_bytes"] % 4096, 0)

    # ---- store errors -------------------------------------------------------

    def test_store_errors_count_as_failure(self):
        d = self.metrics_daemon("db_max_size = 1M\n")
        base = self.scrape(d)
        greylisted = failed = 0
        t0 = time.monotonic()
        n = 0
        with d.client() as c:
            while time.monotonic() - t0 < 30 * timeout_scale():
                c.send(b"".join(encode_request(make_request(
                    client_address="192.0.2.10",
                    sender="fill%d@example.org" % i,
                    recipient="fill-%06d-%s@example.net" % (i, "x" * 150)))
                    for i in range(n, n + 64)))
                replies = [c.read_reply() for _ in range(64)]
                n += 64
                for r in replies:
                    if r.startswith(GREYLISTED):
                        greylisted += 1
                    else:
                        self.assertEqual(r, DUNNO)   # failure_action
                        failed += 1
                if failed >= 64:
                    break
        self.assertGreater(failed, 0, "the map never filled at 1 MiB")
        m = self.scrape(d)
        print("\n  map full at 1 MiB after %d triplets (%.1fs): %d failed "
              "answers, %d failed batches, map %d bytes"
              % (greylisted, time.monotonic() - t0, failed,
                 m["greyhold_store_errors_total"],
                 m["greyhold_store_map_size_bytes"]))
        self.assertDeltas(base, m, {
            req_series("greylist", "new"): greylisted,
            req_series("failure", "store_error"): failed,
            HIST + "_count": n,
        })
        self.assertGreaterEqual(m["greyhold_store_errors_total"], 1)
        self.assertLessEqual(m["greyhold_store_errors_total"], failed)
        self.assertGreater(m["greyhold_store_map_size_bytes"], 0)
        # The cap, plus at most the expiry reserve (max(1/16 cap, 1 MiB)).
        self.assertLessEqual(m["greyhold_store_map_size_bytes"], 2 << 20)
        # Still serving, still counting.
        self.assertDunno(d.ask(make_request(protocol_state="CONNECT")))
        self.assertEqual(self.scrape(d)[HIST + "_count"] - base[HIST +
                                                                "_count"],
                         n + 1)

    # ---- connections --------------------------------------------------------

    def test_connection_counters(self):
        d = self.metrics_daemon(args=["-o", "max_connections=3",
                                      "-o", "idle_timeout=1"])
        base = self.wait_for(d, "the start probe closed",
                             lambda m: m["greyhold_connections_open"] == 0)

        # Protocol errors: a NUL byte, an unknown request, a request cut
        # off by the client; each connection closed without an answer.
        bad = [b"request=smtpd_access_policy\nsender=a\x00b\n\n",
               encode_request(make_request(request="other_policy")),
               b"request=smtpd_access_policy\nsender=a@example.org\n"]
        for data in bad:
            with d.client() as c:
                c.send(data)
                if not data.endswith(b"\n\n"):
                    c.shutdown_write()
                self.assertClosedSilently(c, what=repr(data[:30]))
        m = self.wait_for(d, "3 protocol errors, nothing open", lambda m:
                          m["greyhold_connections_open"] == 0 and
                          m["greyhold_protocol_errors_total"] -
                          base["greyhold_protocol_errors_total"] == 3)

        # max_connections: three connections open, a fourth is closed.
        conns = [self.connect(d) for _ in range(3)]
        for c in conns:
            self.assertDunno(c.request(make_request(protocol_state="DATA")))
        extra = self.connect(d)
        self.assertClosedSilently(extra, what="connection over the limit")
        m = self.scrape(d)
        self.assertEqual(m["greyhold_connections_open"], 3)
        self.assertDeltas(base, m, {
            "greyhold_connections_accepted_total": 6,
            "greyhold_connections_refused_total": 1,
            "greyhold_protocol_errors_total": 3,
            "greyhold_idle_closed_total": 0,
        })

        # idle_timeout=1: the three idle connections are closed.
        t0 = time.monotonic()
        for c in conns:
            self.assertClosedSilently(c, timeout=5 * timeout_scale(),
                                      what="idle connection")
        idle_seconds = time.monotonic() - t0
        m = self.wait_for(d, "idle connections closed", lambda m:
                          m["greyhold_connections_open"] == 0)
        print("\n  3 idle connections closed after %.2fs (idle_timeout=1s)"
              % idle_seconds)
        self.assertDeltas(base, m, {
            "greyhold_connections_accepted_total": 6,
            "greyhold_connections_refused_total": 1,
            "greyhold_protocol_errors_total": 3,
            "greyhold_idle_closed_total": 3,
            req_series("dunno", "not_rcpt"): 3,
            HIST + "_count": 3,
        })

    # ---- the HTTP endpoint --------------------------------------------------

    def test_http_endpoint_refuses_what_is_not_a_scrape(self):
        d = self.metrics_daemon()
        port = d.metrics_port
        before = self.scrape(d)

        # A request that never ends is dropped after the scrape timeout;
        # many of them do not block a real scrape meanwhile.
        slow = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.addCleanup(slow.close)
        slow.sendall(b"GET /metr")
        t_slow = time.monotonic()
        idle = []
        for _ in range(40):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            self.addCleanup(s.close)
            idle.append(s)
        r = http_get(port)
        self.assertEqual(r.status, 200)
        self.assertLess(r.seconds, 1.0 * timeout_scale())

        r = http_get(port, "/other")
        self.assertEqual(r.status, 404)
        self.assertNotIn(b"greyhold_", r.body)
        r = http_get(port, "/metrics/x")
        self.assertEqual(r.status, 404)
        raw, _ = http_raw(port, b"POST /metrics HTTP/1.0\r\n\r\n")
        self.assertTrue(raw.startswith(b"HTTP/1.0 404 "), raw[:100])

        # Oversized: closed as soon as the buffer is full, no answer.
        raw, seconds = http_raw(port, b"GET /metrics HTTP/1.0\r\nX-Pad: " +
                                b"a" * (2 * MAX_HTTP_REQUEST))
        self.assertEqual(raw, b"", "answer to an oversized request")
        self.assertLess(seconds, 3.0, "oversized request not closed at once")
        # Binary garbage with NUL bytes, then the client's end: closed.
        raw, seconds = http_raw(port, bytes(range(256)) * 4, shutdown=True)
        self.assertNotIn(b"200 OK", raw)
        self.assertLess(seconds, 3.0)
        # Garbage lines: not GET /metrics, so a 404.
        raw, _ = http_raw(port, b"\xff\xfe garbage\r\n\r\n")
        self.assertTrue(raw.startswith(b"HTTP/1.0 404 "), raw[:100])

        # The half-sent request is closed by the 5 s scrape timeout.
        slow.settimeout(10)
        got = b""
        while True:
            try:
                chunk = slow.recv(4096)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                break
            got += chunk
        slow_seconds = time.monotonic() - t_slow
        print("\n  half-sent scrape closed after %.1fs" % slow_seconds)
        self.assertEqual(got, b"")
        self.assertGreater(slow_seconds, 3.0)
        self.assertLess(slow_seconds, 8.0)
        for s in idle:
            s.close()

        # The daemon is unharmed: it answers Postfix and the next scrape.
        self.assertTrue(d.running())
        self.assertDefer(d.ask(make_request()))
        after = self.scrape(d)
        assert_counters_up(before, after)
        self.assertEqual(after[req_series("greylist", "new")] -
                         before[req_series("greylist", "new")], 1)
        self.assertEqual(after["greyhold_protocol_errors_total"],
                         before["greyhold_protocol_errors_total"])

    # ---- scraping does not disturb the policy path --------------------------

    def client_latencies(self, d, seconds):
        """Per-request latency of one client for `seconds`: a new triplet
        (store path) and an early retry (event-loop path), alternately."""
        out = []
        tag = next(self.rounds)
        deadline = time.monotonic() + seconds
        with d.client() as c:
            i = 0
            while time.monotonic() < deadline:
                if i % 2 == 0:
                    req = make_request(sender="p%d-%d@example.org" % (tag, i))
                else:
                    req = make_request(sender="same@example.org")
                data = encode_request(req)
                t0 = time.perf_counter()
                c.send(data)
                reply = c.read_reply()
                out.append(time.perf_counter() - t0)
                self.assertTrue(reply.startswith(GREYLISTED), reply)
                i += 1
        return out

    @staticmethod
    def end_process(proc):
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()

    def test_scrapes_do_not_disturb_the_policy_path(self):
        d = self.metrics_daemon("durability = relaxed\n")
        self.rounds = iter(range(1000))
        self.client_latencies(d, 0.2)           # warm up
        quiet = self.client_latencies(d, 2.0)

        scraper = subprocess.Popen(
            [sys.executable, "-c", SCRAPER_PROCESS, str(d.metrics_port),
             "0.01"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            universal_newlines=True)
        self.addCleanup(self.end_process, scraper)
        self.assertEqual(scraper.stdout.readline().strip(), "ready")
        time.sleep(0.05)
        t0 = time.monotonic()
        scraped = self.client_latencies(d, 2.0)
        seconds = time.monotonic() - t0
        scraper.stdin.close()
        n, worst, errors = scraper.stdout.readline().split()
        scraper.wait(10)
        n, worst, errors = int(n), float(worst), int(errors)

        def figures(lat):
            return (1000 * percentile(lat, 50), 1000 * percentile(lat, 99),
                    1000 * max(lat))
        print("\n  policy client for 2 s: without scrapes %d requests, p50 "
              "%.3f ms p99 %.3f ms max %.3f ms; with a scrape every 10 ms "
              "(%d scrapes, slowest %.1f ms) %d requests, p50 %.3f ms p99 "
              "%.3f ms max %.3f ms"
              % ((len(quiet),) + figures(quiet) + (n, 1000 * worst,
                                                   len(scraped)) +
                 figures(scraped)))
        self.assertEqual(errors, 0)
        self.assertGreaterEqual(n, seconds / 0.01 / 4,
                                "too few scrapes overlapped the client")
        p99_quiet = percentile(quiet, 99)
        p99_scraped = percentile(scraped, 99)
        self.assertLess(p99_scraped, max(5 * p99_quiet, p99_quiet + 0.02)
                        * timeout_scale())


if __name__ == "__main__":
    harness.main()
