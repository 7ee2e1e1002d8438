"""FastCGI responder backend for the weir-proxy integration tests (backend_protocol FCGI).

  python3 fcgi_backend.py --host 127.0.0.1 --port 9104

Prints "fcgi_backend ready on HOST:PORT" once listening. Python stdlib only; one thread per
connection. It speaks the responder side of FastCGI 1.0: BEGIN_REQUEST (any role is accepted
and reported), the PARAMS stream (1- and 4-byte name and value lengths), the STDIN stream up
to its empty record; then STDOUT records (at most 65535 content bytes each, padded to a
multiple of 8), an empty STDOUT record and END_REQUEST (appStatus 0, protocolStatus
REQUEST_COMPLETE). The connection is closed after the request unless BEGIN_REQUEST set
FCGI_KEEP_CONN, then the next request is served on it. GET_VALUES is answered, other
management records get UNKNOWN_TYPE, ABORT_REQUEST ends the request.

The answer is picked by the DOCUMENT_URI param (the request path; SCRIPT_NAME when absent):

  /echo...         200, application/json: {"params": {name: value}, "stdin_len",
                   "stdin_sha256", "flags" (of BEGIN_REQUEST), "role"} (also on HEAD)
  /status/NNN      "Status: NNN Some Reason" and a small body ("Status: NNN" with reason=0)
  /badstatus       "Status: abc" (not a status: a proxy answers 502)
  /badheader       a CGI head line without a colon (a proxy answers 502)
  /padded          the answer in records with padding of 0 to 255 bytes (not to 8)
  /lingering?ms=N  a whole answer and END_REQUEST, then the connection stays open N ms
                   (default 5000) before it is closed
  /redirect        only "Location: /elsewhere" (no Status: a CGI gateway answers 302)
  /noheaders       no Status, just Content-Type (200)
  /big?n=N         N bytes of the pattern in pattern.py in STDOUT records of varying
                   sizes (1 byte, 65535 bytes, odd sizes), no Content-Length
  /length          "Content-Length: 11" in the CGI head and exactly 11 bytes
  /shortlength     "Content-Length: 5" in the CGI head, then 11 bytes ("hello world")
  /longlength      "Content-Length: 100" in the CGI head, then 11 bytes and END_REQUEST
  /splithead       the CGI head in many small STDOUT records (some 1 byte, record headers
                   split across TCP writes), LF line ends, then a body
  /stderr          a STDERR record "php warning: something", then a 200 answer with a
                   second STDERR record "php notice: second" between STDOUT records
  /noempty         a 200 answer without the empty STDOUT record before END_REQUEST
  /truncate        the head and part of the body, then (after 200 ms) a close without
                   END_REQUEST
  /nohead          the connection is closed right after the request is read
  /garbage         an HTTP/1.1 answer instead of FastCGI records (version byte 'H')
  /status101       "Status: 101 Switching Protocols" (a proxy must refuse it)
  /slow?ms=N       the /echo answer after N ms (at most 60000)
  /bighead?n=N     an X-Big header of N bytes ("b") in the CGI head, then a body
  anything else    "Status: 404 Not Found"

Imported, FcgiServer runs the same responder on a thread and keeps every request it read
in .requests (dicts with "params", "role", "flags", "stdin_len", "stdin_sha256") and counts
the connections it accepted in .connections.
"""

import argparse
import hashlib
import json
import os
import socket
import socketserver
import struct
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pattern  # noqa: E402

VERSION = 1
BEGIN_REQUEST = 1
ABORT_REQUEST = 2
END_REQUEST = 3
PARAMS = 4
STDIN = 5
STDOUT = 6
STDERR = 7
DATA = 8
GET_VALUES = 9
GET_VALUES_RESULT = 10
UNKNOWN_TYPE = 11

RESPONDER = 1
KEEP_CONN = 1
REQUEST_COMPLETE = 0

HEADER = struct.Struct("!BBHHBB")
MAX_CONTENT = 65535
MAX_PARAMS = 1 << 20  # bytes of PARAMS stream accepted per request
MAX_N = 1 << 30


class ProtocolError(Exception):
    pass


# ------------------------------------------------------------------------ the wire format

def record(rtype: int, req_id: int, content: bytes = b"", padding: int = None) -> bytes:
    """One record; padding defaults to what makes the record a multiple of 8 bytes."""
    if len(content) > MAX_CONTENT:
        raise ValueError("record content too long")
    if padding is None:
        padding = -len(content) % 8
    return HEADER.pack(VERSION, rtype, req_id, len(content), padding, 0) + content + \
        b"\0" * padding


def stream(rtype: int, req_id: int, data: bytes, size: int = MAX_CONTENT) -> bytes:
    """data as records of at most size content bytes (no terminating empty record)."""
    return b"".join(record(rtype, req_id, data[i:i + size]) for i in range(0, len(data), size))


def encode_length(n: int) -> bytes:
    return bytes([n]) if n < 128 else struct.pack("!I", n | 0x80000000)


def encode_pairs(pairs) -> bytes:
    """Name-value pairs (bytes or str) in the PARAMS encoding."""
    out = []
    for name, value in pairs:
        name = name.encode("latin-1") if isinstance(name, str) else name
        value = value.encode("latin-1") if isinstance(value, str) else value
        out.append(encode_length(len(name)) + encode_length(len(value)) + name + value)
    return b"".join(out)


def decode_pairs(data: bytes) -> list:
    """The (name, value) bytes pairs of a whole PARAMS stream; ProtocolError when malformed."""
    pairs = []
    i = 0

    def length():
        nonlocal i
        if i >= len(data):
            raise ProtocolError("truncated name-value length")
        if data[i] < 128:
            i += 1
            return data[i - 1]
        if i + 4 > len(data):
            raise ProtocolError("truncated 4-byte name-value length")
        n = struct.unpack("!I", data[i:i + 4])[0] & 0x7FFFFFFF
        i += 4
        return n

    while i < len(data):
        nlen = length()
        vlen = length()
        if i + nlen + vlen > len(data):
            raise ProtocolError("name-value pair overruns the PARAMS stream")
        pairs.append((data[i:i + nlen], data[i + nlen:i + nlen + vlen]))
        i += nlen + vlen
    return pairs


class Reader:
    """Reads whole records from a socket."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = b""

    def _need(self, n: int) -> bool:
        while len(self.buf) < n:
            data = self.sock.recv(65536)
            if not data:
                return False
            self.buf += data
        return True

    def read(self):
        """(type, request id, content) or None at a clean EOF between records."""
        if not self._need(HEADER.size):
            if self.buf:
                raise ProtocolError("EOF inside a record header")
            return None
        version, rtype, req_id, clen, plen, _ = HEADER.unpack(self.buf[:HEADER.size])
        if version != VERSION:
            raise ProtocolError(f"record version {version}")
        total = HEADER.size + clen + plen
        if not self._need(total):
            raise ProtocolError("EOF inside a record")
        content = self.buf[HEADER.size:HEADER.size + clen]
        self.buf = self.buf[total:]
        return rtype, req_id, content


# ------------------------------------------------------------------------ the responder

class Request:
    def __init__(self, req_id: int, role: int, flags: int):
        self.id = req_id
        self.role = role
        self.flags = flags
        self.params_raw = bytearray()
        self.params = {}
        self.stdin_len = 0
        self.stdin_hash = hashlib.sha256()

    def info(self) -> dict:
        return {"params": {k.decode("latin-1"): v.decode("latin-1")
                           for k, v in self.params.items()},
                "stdin_len": self.stdin_len, "stdin_sha256": self.stdin_hash.hexdigest(),
                "flags": self.flags, "role": self.role}


def read_request(rd: Reader, sock: socket.socket):
    """The next request on the connection with all its PARAMS and STDIN read; None at EOF.
    Management records met on the way are answered."""
    req = None
    params_done = False
    while True:
        rec = rd.read()
        if rec is None:
            if req is not None:
                raise ProtocolError("EOF inside a request")
            return None
        rtype, req_id, content = rec
        if req_id == 0:
            if rtype == GET_VALUES:
                want = dict(decode_pairs(content))
                known = {b"FCGI_MAX_CONNS": b"100", b"FCGI_MAX_REQS": b"100",
                         b"FCGI_MPXS_CONNS": b"0"}
                sock.sendall(record(GET_VALUES_RESULT, 0, encode_pairs(
                    (k, known[k]) for k in want if k in known)))
            else:
                sock.sendall(record(UNKNOWN_TYPE, 0, bytes([rtype]) + b"\0" * 7))
            continue
        if rtype == BEGIN_REQUEST:
            if req is not None:
                raise ProtocolError("BEGIN_REQUEST inside a request (no multiplexing here)")
            if len(content) != 8:
                raise ProtocolError(f"BEGIN_REQUEST body of {len(content)} bytes")
            role, flags = struct.unpack("!HB", content[:3])
            req = Request(req_id, role, flags)
            continue
        if req is None or req_id != req.id:
            raise ProtocolError(f"record type {rtype} for unknown request {req_id}")
        if rtype == ABORT_REQUEST:
            return req  # answered right away, with what was read
        if rtype == PARAMS:
            if params_done:
                raise ProtocolError("PARAMS after the end of the PARAMS stream")
            if not content:
                params_done = True
                req.params = dict(decode_pairs(bytes(req.params_raw)))
            else:
                req.params_raw += content
                if len(req.params_raw) > MAX_PARAMS:
                    raise ProtocolError("PARAMS stream too long")
        elif rtype == STDIN:
            if not params_done:
                raise ProtocolError("STDIN before the end of PARAMS")
            if not content:
                return req
            req.stdin_len += len(content)
            req.stdin_hash.update(content)
        elif rtype == DATA:
            pass
        else:
            raise ProtocolError(f"unexpected record type {rtype}")


def big_sizes():
    """Record sizes for /big: 1-byte, maximal and odd-sized records, repeating."""
    while True:
        for n in (1, MAX_CONTENT, 7, 1000, 1, 1, MAX_CONTENT, 3, 40000, 8, 65534, 4093, 2):
            yield n


class Answer:
    """Collects the records of one answer; send() writes them in one go."""

    def __init__(self, sock: socket.socket, req_id: int):
        self.sock = sock
        self.id = req_id
        self.out = []

    def stdout(self, data: bytes, size: int = MAX_CONTENT) -> None:
        self.out.append(stream(STDOUT, self.id, data, size))

    def stderr(self, data: bytes) -> None:
        self.out.append(stream(STDERR, self.id, data))

    def end(self, empty_stdout: bool = True) -> None:
        if empty_stdout:
            self.out.append(record(STDOUT, self.id))
        self.out.append(record(END_REQUEST, self.id,
                               struct.pack("!IB3x", 0, REQUEST_COMPLETE)))

    def send(self) -> None:
        self.sock.sendall(b"".join(self.out))
        self.out = []


def cgi_head(*lines: str) -> bytes:
    return "".join(f"{ln}\r\n" for ln in lines).encode("latin-1") + b"\r\n"


def respond(sock: socket.socket, req: Request) -> bool:
    """Answer req; False when the connection must be closed without more (no END_REQUEST)."""
    p = req.params
    path = (p.get(b"DOCUMENT_URI") or p.get(b"SCRIPT_NAME") or b"/").decode("latin-1")
    query = urllib.parse.parse_qs(p.get(b"QUERY_STRING", b"").decode("latin-1"))

    def num(name, default, cap=MAX_N):
        try:
            return max(0, min(int(query.get(name, [default])[0]), cap))
        except ValueError:
            return default

    a = Answer(sock, req.id)
    if path.startswith("/slow"):
        time.sleep(num("ms", 100, 60000) / 1000)
        path = "/echo"
    if path.startswith("/echo"):
        body = json.dumps(req.info()).encode()
        a.stdout(cgi_head("Status: 200 OK", "Content-Type: application/json",
                          "X-Fcgi-Backend: yes") + body)
    elif path.startswith("/status/") and path[8:11].isdigit():
        code = int(path[8:11])
        status = f"Status: {code}" if query.get("reason") == ["0"] else \
            f"Status: {code} Some Reason"
        a.stdout(cgi_head(status, "Content-Type: text/plain") + f"status {code}\n".encode())
    elif path == "/badstatus":
        a.stdout(cgi_head("Status: abc", "Content-Type: text/plain") + b"bad status\n")
    elif path == "/badheader":
        a.stdout(cgi_head("Content-Type: text/plain", "this line has no colon")
                 + b"bad header\n")
    elif path == "/padded":
        a.stdout(cgi_head("Status: 200 OK", "Content-Type: text/plain"), 5)
        body = b"".join(b"%04d," % i for i in range(2000))
        pads = (0, 255, 1, 7, 100, 254, 3)
        for i in range(0, len(body), 997):
            a.out.append(record(STDOUT, req.id, body[i:i + 997], pads[(i // 997) % len(pads)]))
        a.out.append(record(STDOUT, req.id, b"", 255))
        a.out.append(record(END_REQUEST, req.id, struct.pack("!IB3x", 0, REQUEST_COMPLETE), 200))
        a.send()
        return True
    elif path == "/lingering":
        a.stdout(cgi_head("Status: 200 OK", "Content-Type: text/plain") + b"done\n")
        a.end()
        a.send()
        time.sleep(num("ms", 5000, 60000) / 1000)
        return True
    elif path == "/status101":
        a.stdout(cgi_head("Status: 101 Switching Protocols", "Upgrade: websocket",
                          "Connection: Upgrade"))
    elif path == "/redirect":
        a.stdout(cgi_head("Location: /elsewhere"))
    elif path == "/noheaders":
        a.stdout(cgi_head("Content-Type: text/plain") + b"no status line here\n")
    elif path == "/big":
        n = num("n", 0)
        a.stdout(cgi_head("Content-Type: application/octet-stream"))
        a.send()
        off = 0
        sizes = big_sizes()
        while off < n:
            size = min(next(sizes), n - off)
            a.out.append(record(STDOUT, req.id, pattern.chunk(off, size)))
            off += size
            if len(a.out) >= 64:
                a.send()
    elif path == "/length":
        a.stdout(cgi_head("Status: 200 OK", "Content-Type: text/plain", "Content-Length: 11")
                 + b"hello world")
    elif path == "/shortlength":
        a.stdout(cgi_head("Content-Type: text/plain", "Content-Length: 5") + b"hello world")
    elif path == "/longlength":
        a.stdout(cgi_head("Content-Type: text/plain", "Content-Length: 100") + b"hello world")
    elif path == "/splithead":
        head = (b"Status: 200 OK\nContent-Type: text/plain\nX-Split: one\n"
                b"X-Split-Two: two\n\nsplit body\n")
        pieces = []
        i = 0
        for size in (1, 1, 3, 1, 9, 1, 2, 17, 1, 5):
            pieces.append(head[i:i + size])
            i += size
        pieces.append(head[i:])
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for piece in pieces:
            if not piece:
                continue
            rec = record(STDOUT, req.id, piece)
            # the record header itself arrives in two TCP segments
            sock.sendall(rec[:3])
            time.sleep(0.005)
            sock.sendall(rec[3:])
            time.sleep(0.005)
    elif path == "/stderr":
        a.stderr(b"php warning: something")
        a.stdout(cgi_head("Status: 200 OK", "Content-Type: text/plain"))
        a.stderr(b"php notice: second")
        a.stdout(b"body after stderr\n")
    elif path == "/noempty":
        a.stdout(cgi_head("Content-Type: text/plain") + b"no empty stdout\n")
        a.end(empty_stdout=False)
        a.send()
        return True
    elif path == "/truncate":
        a.stdout(cgi_head("Status: 200 OK", "Content-Type: application/octet-stream")
                 + b"x" * 5000)
        a.send()
        time.sleep(0.2)
        return False
    elif path == "/nohead":
        return False
    elif path == "/garbage":
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
        return False
    elif path == "/bighead":
        n = num("n", 0, 1 << 20)
        a.stdout(cgi_head("Status: 200 OK", "Content-Type: text/plain", "X-Big: " + "b" * n)
                 + b"bighead body\n")
    else:
        a.stdout(cgi_head("Status: 404 Not Found", "Content-Type: text/plain")
                 + b"fcgi_backend: no such path\n")
    a.end()
    a.send()
    return True


def serve_connection(sock: socket.socket, log: list, lock: threading.Lock) -> None:
    rd = Reader(sock)
    try:
        while True:
            req = read_request(rd, sock)
            if req is None:
                return
            with lock:
                log.append(req.info())
            if not respond(sock, req) or not req.flags & KEEP_CONN:
                return
    except ProtocolError as e:
        print(f"fcgi_backend: protocol error: {e}", file=sys.stderr, flush=True)
    except OSError:
        pass
    finally:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 1024


class FcgiServer:
    """The responder on a background thread; .port, .requests (every request read, in
    order), .connections (how many were accepted), .close()."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.requests = []
        self.connections = 0
        self.lock = threading.Lock()
        owner = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                with owner.lock:
                    owner.connections += 1
                serve_connection(self.request, owner.requests, owner.lock)

        self.server = _Server((host, port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def requests_for(self, uri_prefix: str) -> list:
        with self.lock:
            return [r for r in self.requests
                    if r["params"].get("DOCUMENT_URI", "").startswith(uri_prefix)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    a = ap.parse_args()
    srv = FcgiServer(a.host, a.port)
    print(f"fcgi_backend ready on {a.host}:{srv.port}", flush=True)
    try:
        srv.thread.join()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
