"""A small scriptable DNS server on loopback, for tests.

Answers over UDP and TCP on the same port, each name the way the test
asks, including the unfriendly ways a resolver must survive:

    srv = DnsServer()                       # 127.0.0.1, a free port
    srv.add("a.test", A, [a("192.0.2.1")], ttl=60)
    srv.add("silent.test", A, behaviour=SILENT)      # never answers
    srv.add("bad.test", A, [a("192.0.2.9")], behaviour=WRONG_ID)
    srv.add("sf.test", A, behaviour=SERVFAIL)
    srv.add("big.test", TXT, [txt("x" * 200)] * 5, behaviour=TRUNCATE_UDP)
    srv.start(); ... srv.queries("a.test", A) ...; srv.stop()

Names not added get NXDOMAIN with an SOA (negative TTL NEG_TTL);
a name added for another type gets NODATA with the same SOA.
Behaviours:
    ANSWER          the records (or NODATA if none)
    SILENT          no reply at all
    WRONG_ID        the answer with a wrong message ID, nothing else
    WRONG_ID_FIRST  first a wrong-ID answer carrying WRONG_ID_ADDR, then
                    the right answer
    SERVFAIL        rcode 2
    REFUSED         rcode 5
    FORMERR         rcode 1
    TRUNCATE_UDP    over UDP an empty answer with TC set; over TCP the
                    records (a resolver must retry over TCP)
queries() counts what arrived, by name, type and transport.

Standard library only.
"""

import socket
import struct
import threading

A, PTR, MX, TXT, AAAA, SOA = 1, 12, 15, 16, 28, 6
TYPES = {"A": A, "AAAA": AAAA, "MX": MX, "TXT": TXT, "PTR": PTR}

ANSWER = "answer"
SILENT = "silent"
WRONG_ID = "wrong-id"
WRONG_ID_FIRST = "wrong-id-first"
SERVFAIL = "servfail"
REFUSED = "refused"
FORMERR = "formerr"
TRUNCATE_UDP = "truncate-udp"

NEG_TTL = 120
WRONG_ID_ADDR = "203.0.113.66"


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            raw = label.encode("ascii")
            out += bytes([len(raw)]) + raw
    return out + b"\0"


def a(text):
    return (A, socket.inet_pton(socket.AF_INET, text))


def aaaa(text):
    return (AAAA, socket.inet_pton(socket.AF_INET6, text))


def mx(pref, host):
    return (MX, struct.pack("!H", pref) + encode_name(host))


def ptr(host):
    return (PTR, encode_name(host))


def txt(*strings):
    data = b""
    for s in strings:
        raw = s.encode("latin-1") if isinstance(s, str) else s
        assert len(raw) < 256
        data += bytes([len(raw)]) + raw
    return (TXT, data)


def soa_rdata(zone, minimum):
    return (encode_name("ns." + zone) + encode_name("admin." + zone) +
            struct.pack("!IIIII", 1, 3600, 600, 86400, minimum))


def parse_query(msg):
    """(id, flags, qname lower case, qtype, question bytes) or None."""
    if len(msg) < 12:
        return None
    qid, flags, qd = struct.unpack("!HHH", msg[:6])
    if qd != 1:
        return None
    pos = 12
    labels = []
    while pos < len(msg):
        n = msg[pos]
        if n == 0 or n & 0xC0:
            break
        labels.append(msg[pos + 1:pos + 1 + n].decode("ascii", "replace"))
        pos += 1 + n
    if pos + 5 > len(msg) or msg[pos] != 0:
        return None
    qtype = struct.unpack("!H", msg[pos + 1:pos + 3])[0]
    question = msg[12:pos + 5]
    return qid, flags, ".".join(labels).lower(), qtype, question


def build_reply(qid, qflags, question, rcode=0, answers=(), authority=(),
                tc=False):
    """answers/authority: [(type, ttl, rdata)] owned by the question name."""
    flags = 0x8000 | 0x0400 | (qflags & 0x0100) | 0x0080 | rcode
    if tc:
        flags |= 0x0200
    out = struct.pack("!HHHHHH", qid, flags, 1, len(answers),
                      len(authority), 0) + question
    for rtype, ttl, rdata in list(answers) + list(authority):
        out += struct.pack("!HHHIH", 0xC00C, rtype, 1, ttl, len(rdata)) + rdata
    return out


class Entry:
    def __init__(self, records, ttl, behaviour):
        self.records = records
        self.ttl = ttl
        self.behaviour = behaviour


class DnsServer:
    def __init__(self, host="127.0.0.1", zone="test"):
        self.host = host
        self.zone = zone
        self.entries = {}          # (name, qtype) -> Entry
        self.counts = {}           # (name, qtype, "udp"/"tcp") -> n
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = []
        self.udp, self.tcp = self._bind()
        self.port = self.udp.getsockname()[1]

    def _bind(self):
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        for _ in range(50):
            udp = socket.socket(family, socket.SOCK_DGRAM)
            udp.bind((self.host, 0))
            tcp = socket.socket(family, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp.bind((self.host, udp.getsockname()[1]))
            except OSError:
                udp.close()
                tcp.close()
                continue
            tcp.listen(16)
            return udp, tcp
        raise RuntimeError("no port free for UDP and TCP both")

    @property
    def address(self):
        if ":" in self.host:
            return "[%s]:%d" % (self.host, self.port)
        return "%s:%d" % (self.host, self.port)

    def add(self, name, qtype, records=(), ttl=300, behaviour=ANSWER):
        with self.lock:
            self.entries[(name.lower().rstrip("."), qtype)] = Entry(
                list(records), ttl, behaviour)

    def queries(self, name=None, qtype=None, transport=None):
        with self.lock:
            return sum(n for (qn, qt, tr), n in self.counts.items()
                       if (name is None or qn == name.lower().rstrip("."))
                       and (qtype is None or qt == qtype)
                       and (transport is None or tr == transport))

    def start(self):
        # Closing a socket does not wake a thread blocked on it: poll.
        self.udp.settimeout(0.1)
        self.tcp.settimeout(0.1)
        for target in (self._serve_udp, self._serve_tcp):
            t = threading.Thread(target=target, daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=2)
        for s in (self.udp, self.tcp):
            s.close()

    # ---- answering -----------------------------------------------------

    def _replies(self, msg, transport):
        """The datagrams/messages to send back for one query."""
        q = parse_query(msg)
        if q is None:
            return []
        qid, qflags, qname, qtype, question = q
        with self.lock:
            key = (qname, qtype, transport)
            self.counts[key] = self.counts.get(key, 0) + 1
            entry = self.entries.get((qname, qtype))
            name_known = any(n == qname for n, _ in self.entries)
        soa = [(SOA, 3600, soa_rdata(self.zone, NEG_TTL))]
        if entry is None:
            return [build_reply(qid, qflags, question,
                                rcode=0 if name_known else 3, authority=soa)]
        answers = [(t, entry.ttl, rdata) for t, rdata in entry.records]
        b = entry.behaviour
        if b == SILENT:
            return []
        if b == SERVFAIL:
            return [build_reply(qid, qflags, question, rcode=2)]
        if b == REFUSED:
            return [build_reply(qid, qflags, question, rcode=5)]
        if b == FORMERR:
            return [build_reply(qid, qflags, question, rcode=1)]
        if b == TRUNCATE_UDP and transport == "udp":
            return [build_reply(qid, qflags, question, tc=True)]
        right = build_reply(qid, qflags, question, answers=answers,
                            authority=[] if answers else soa)
        wrong_id = (qid + 1) & 0xFFFF
        if b == WRONG_ID:
            return [build_reply(wrong_id, qflags, question, answers=answers)]
        if b == WRONG_ID_FIRST:
            bogus = [(A, entry.ttl, a(WRONG_ID_ADDR)[1])]
            return [build_reply(wrong_id, qflags, question, answers=bogus),
                    right]
        return [right]

    def _serve_udp(self):
        while not self.stopping.is_set():
            try:
                msg, peer = self.udp.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            for reply in self._replies(msg, "udp"):
                try:
                    self.udp.sendto(reply, peer)
                except OSError:
                    pass

    def _serve_tcp(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.tcp.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve_conn, args=(conn,),
                                 daemon=True)
            t.start()

    def _serve_conn(self, conn):
        conn.settimeout(5)
        try:
            while True:
                head = self._recv_exact(conn, 2)
                if head is None:
                    return
                msg = self._recv_exact(conn, struct.unpack("!H", head)[0])
                if msg is None:
                    return
                for reply in self._replies(msg, "tcp"):
                    conn.sendall(struct.pack("!H", len(reply)) + reply)
        except OSError:
            pass
        finally:
            conn.close()

    @staticmethod
    def _recv_exact(conn, n):
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data


def query_udp(host, port, name, qtype, timeout=1.0):
    """Send one query, return the raw reply or None (readiness checks)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(struct.pack("!HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) +
                 encode_name(name) + struct.pack("!HH", qtype, 1),
                 (host, port))
        return s.recvfrom(4096)[0]
    except OSError:
        return None
    finally:
        s.close()
