#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz/corpus/<harness>/seed-*: inputs taken
from the existing tests (test_smuggling.py cases, tests/golden YAML, the route
tables of examples/ and tests/fixtures/, tables the controller compiles from
the golden cases) plus request-smuggling inputs written from the published
attack classes. Regression inputs (crash-*, named after what they found) live
beside the seeds and are never rewritten. Usage: make_corpus.py [BUILD_DIR]
(BUILD_DIR holds weir-controller, for the compiled tables; default ./build)."""
import hashlib
import json
import os
import pathlib
import ssl
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
CORPUS = HERE / "corpus"
MAX_SEED = 8192


def put(harness, data):
    if isinstance(data, str):
        data = data.encode()
    if len(data) > MAX_SEED:
        return
    d = CORPUS / harness
    d.mkdir(parents=True, exist_ok=True)
    (d / ("seed-" + hashlib.sha1(data).hexdigest()[:16])).write_bytes(data)


def H(head, body=b""):
    """A request: head lines joined with CRLF, a blank line, then body."""
    return b"\r\n".join(x.encode() if isinstance(x, str) else x for x in head) + b"\r\n\r\n" + body


POST = "POST /echo/s HTTP/1.1"
GET2 = H(["GET /echo/smuggled HTTP/1.1", "Host: t"])

REQUESTS = [
    # Valid, pipelined, and the features the server reads.
    H(["GET /a/b?x=1 HTTP/1.1", "Host: example.com:8080", "X-A:  v1  ", "X-Empty:"]),
    H(["GET / HTTP/1.0"]),
    H(["GET / HTTP/1.0", "Connection: keep-alive"]),
    H(["GET /ws HTTP/1.1", "Host: t", "Connection: keep-alive, Upgrade", "Upgrade: websocket",
       "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="]),
    H(["GET /a HTTP/1.1", "Host: a"]) + H(["GET /b HTTP/1.1", "Host: a"]),
    H([POST, "Host: a", "Content-Length: 5"], b"hello") + H(["GET /c HTTP/1.1", "Host: a"]),
    H([POST, "Host: a", "Transfer-Encoding: chunked"], b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    + H(["GET /d HTTP/1.1", "Host: a"]),
    H([POST, "Host: a", "Transfer-Encoding: chunked"], b"5;ext=1;q=\"x\"\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n"),
    H([POST, "Host: a", "Expect: 100-continue", "Content-Length: 3"], b"abc"),
    H(["OPTIONS * HTTP/1.1", "Host: a"]),
    H(["CONNECT a:443 HTTP/1.1", "Host: a:443"]),
    H(["GET http://a/x HTTP/1.1", "Host: a"]),
    H(["HEAD / HTTP/1.1", "Host: a", "Connection: close"]),
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    H(["GET / HTTP/2.0", "Host: a"]),
    # test_smuggling.py
    H([POST, "Host: t", "Content-Length: 5", "Transfer-Encoding: chunked"], b"0\r\n\r\n" + GET2),
    H([POST, "Host: t", "Content-Length: 5", "Content-Length: 6"], b"hello!"),
    H([POST, "Host: t", "Transfer-Encoding: chunked"], b"zz\r\nhello\r\n0\r\n\r\n"),
    H(["GET /echo/s HTTP/1.1", "Host: t", "X-Folded: a", "  b"]),
    b"GET /echo/s HTTP/1.1\r\nHost: t\r\nX-A: 1\nX-B: 2\r\n\r\n",
    H(["GET /echo/s HTTP/1.1", "Host: t", "X-Big: " + "a" * 6000]),
    # CL.TE: the front uses Content-Length, the back Transfer-Encoding.
    H([POST, "Host: t", "Content-Length: 13", "Transfer-Encoding: chunked"], b"0\r\n\r\nSMUGGLED"),
    # TE.CL: the front uses Transfer-Encoding, the back Content-Length.
    H([POST, "Host: t", "Content-Length: 3", "Transfer-Encoding: chunked"],
      b"8\r\nSMUGGLED\r\n0\r\n\r\n"),
    H([POST, "Host: t", "Transfer-Encoding: chunked", "Content-Length: 4"],
      b"5c\r\nGPOST / HTTP/1.1\r\nContent-Length: 15\r\n\r\nx=1\r\n0\r\n\r\n"),
    # TE.TE: obfuscated Transfer-Encoding one side may not see.
    H([POST, "Host: t", "Transfer-Encoding: xchunked"], b"0\r\n\r\n"),
    H([POST, "Host: t", "Transfer-Encoding : chunked"], b"0\r\n\r\n"),
    H([POST, "Host: t", "Transfer-Encoding: chunked", "Transfer-Encoding: x"], b"0\r\n\r\n"),
    H([POST, "Host: t", "Transfer-Encoding: chunked", "Transfer-Encoding: chunked"], b"0\r\n\r\n"),
    H([POST, "Host: t", "Transfer-Encoding:\tchunked"], b"0\r\n\r\n"),
    H([POST, "Host: t", " Transfer-Encoding: chunked"], b"0\r\n\r\n"),
    H([POST, "Host: t", "X: X\nTransfer-Encoding: chunked"], b"0\r\n\r\n"),
    H([POST, "Host: t", "Transfer-Encoding", ": chunked"], b"0\r\n\r\n"),
    H([POST, "Host: t", "Transfer-Encoding: chunked, identity"], b"0\r\n\r\n"),
    H([POST, "Host: t", "Transfer-Encoding: identity, chunked"], b"0\r\n\r\n"),
    H([POST, "Host: t", "Transfer-Encoding: gzip, chunked"], b"0\r\n\r\n"),
    H([POST, "Host: t", "Transfer-encoding: cHuNkEd"], b"0\r\n\r\n"),
    H([POST, "Host: t", "Transfer-Encoding: \"chunked\""], b"0\r\n\r\n"),
    H([POST, "Host: t", "Transfer-Encoding: chunked "], b"0\r\n\r\n"),
    H([POST, "Host: t", "Transfer-Encoding: chunked\x0b"], b"0\r\n\r\n"),
    H([POST, "Host: t", "Transfer-Encoding\x00: chunked"], b"0\r\n\r\n"),
    H([POST, "Host: t", "Transfer_Encoding: chunked"], b"0\r\n\r\n"),
    # Duplicate and odd Content-Length.
    H([POST, "Host: t", "Content-Length: 5", "Content-Length: 5"], b"hello"),
    H([POST, "Host: t", "Content-Length: 5, 5"], b"hello"),
    H([POST, "Host: t", "Content-Length: +5"], b"hello"),
    H([POST, "Host: t", "Content-Length: -1"], b"hello"),
    H([POST, "Host: t", "Content-Length: 0x5"], b"hello"),
    H([POST, "Host: t", "Content-Length: 05"], b"hello"),
    H([POST, "Host: t", "Content-Length:  5 "], b"hello"),
    H([POST, "Host: t", "Content-Length: 5 5"], b"hello"),
    H([POST, "Host: t", "Content-Length: 99999999999999999999"], b"hello"),
    H([POST, "Host: t", "Content-Length: 18446744073709551616"], b"hello"),
    H([POST, "Host: t", "Content-Length: 999999999999999999"], b"hello"),
    H([POST, "Host: t", "Content-Length:"], b"hello"),
    H(["GET / HTTP/1.1", "Host: t", "Content-Length: 44"], GET2),
    # obs-fold (a continuation line) in front of the framing headers.
    H([POST, "Host: t", "Transfer-Encoding:", " chunked"], b"0\r\n\r\n"),
    H([POST, "Host: t", "Content-Length:", "\t5"], b"hello"),
    H([POST, "Host: t", "X: a", " Content-Length: 5"], b"hello"),
    # Bare CR, bare LF, stray blank lines.
    b"GET / HTTP/1.1\rHost: t\r\n\r\n",
    b"GET / HTTP/1.1\nHost: t\n\n",
    b"GET / HTTP/1.1\r\nHost: t\r\n\n",
    b"\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: t\r\nX: a\rb\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: t\r\n\r\r\n",
    H([POST, "Host: t", "Transfer-Encoding: chunked"], b"5\nhello\n0\n\n"),
    H([POST, "Host: t", "Transfer-Encoding: chunked"], b"5\rhello\r\n0\r\n\r\n"),
    H([POST, "Host: t", "Transfer-Encoding: chunked"], b"5\r\nhello\r\n0\r\n\n"),
    # Chunk sizes: overflow, signs, prefixes, spaces, missing CRLF.
    H([POST, "Host: t", "Transfer-Encoding: chunked"], b"ffffffffffffffffff\r\nx\r\n0\r\n\r\n"),
    H([POST, "Host: t", "Transfer-Encoding: chunked"], b"10000000000000000\r\nx\r\n0\r\n\r\n"),
    H([POST, "Host: t", "Transfer-Encoding: chunked"], b"7fffffffffffffff\r\nx\r\n0\r\n\r\n"),
    H([POST, "Host: t", "Transfer-Encoding: chunked"], b"-1\r\nx\r\n0\r\n\r\n"),
    H([POST, "Host: t", "Transfer-Encoding: chunked"], b"0x5\r\nhello\r\n0\r\n\r\n"),
    H([POST, "Host: t", "Transfer-Encoding: chunked"], b"+5\r\nhello\r\n0\r\n\r\n"),
    H([POST, "Host: t", "Transfer-Encoding: chunked"], b" 5\r\nhello\r\n0\r\n\r\n"),
    H([POST, "Host: t", "Transfer-Encoding: chunked"], b"5 \r\nhello\r\n0\r\n\r\n"),
    H([POST, "Host: t", "Transfer-Encoding: chunked"], b"5\r\nhelloXX0\r\n\r\n"),
    H([POST, "Host: t", "Transfer-Encoding: chunked"], b"3\r\nhello\r\n0\r\n\r\n"),
    H([POST, "Host: t", "Transfer-Encoding: chunked"], b"0000000000000000000005\r\nhello\r\n0\r\n\r\n"),
    H([POST, "Host: t", "Transfer-Encoding: chunked"], b"5;" + b"e" * 300 + b"\r\nhello\r\n0\r\n\r\n"),
    H([POST, "Host: t", "Transfer-Encoding: chunked"], b"0\r\nTransfer-Encoding: x\r\nContent-Length: 9\r\n\r\n"),
    # NUL bytes in the start line, a header, the chunk size and the body.
    b"GET /a\x00b HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: t\x00.evil\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: t\r\nX-A: b\x00c\r\n\r\n",
    H([POST, "Host: t", "Transfer-Encoding: chunked"], b"5\x00\r\nhello\r\n0\r\n\r\n"),
    H([POST, "Host: t", "Content-Length: 3"], b"\x00\x00\x00"),
    # Host ambiguity, odd methods and versions, many headers.
    H(["GET / HTTP/1.1", "Host: a", "Host: b"]),
    H(["GET / HTTP/1.1"]),
    H(["GET / HTTP/1.1", "Host:"]),
    H(["G\x7fT / HTTP/1.1", "Host: a"]),
    H(["GET / HTTP/1.10", "Host: a"]),
    H(["GET / HTTP/0.9", "Host: a"]),
    H(["GET  /  HTTP/1.1", "Host: a"]),
    H(["GET / HTTP/1.1", "Host : a"]),
    H(["GET / HTTP/1.1", "Ho st: a"]),
    H(["GET / HTTP/1.1", "Host: a"] + ["X-%d: v" % i for i in range(130)]),
]

RESPONSES = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
    b"HTTP/1.0 200 OK\r\n\r\nuntil close",
    b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
    b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x02hi",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nbody",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
    b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 999 Weird\r\nContent-Length: 1\r\n\r\nx",
    b"HTTP/2 200\r\n\r\n",
    b"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
    b"HTTP/1.1 200 OK\r\nSet-Cookie: a=b\r\nSet-Cookie: c=d\r\nContent-Length: 1\r\n\r\nz ",
]


def fcgi_record(rtype, content=b"", pad=0, rid=1):
    """One FastCGI record: version 1, rtype, request id rid, content, pad bytes."""
    return (bytes([1, rtype, rid >> 8, rid & 0xFF, len(content) >> 8, len(content) & 0xFF, pad, 0])
            + content + b"\0" * pad)


def fcgi_end(status=0):
    return fcgi_record(3, bytes([0, 0, 0, 0, status, 0, 0, 0]))


# What FastCGI applications answer (the records of fastcgi_decode); the first
# byte of a fuzz_fastcgi input picks the CGI head cap and the split.
FASTCGI = [
    fcgi_record(6, b"Status: 200 OK\r\nContent-Type: text/html\r\n\r\nhello", 3)
    + fcgi_record(6) + fcgi_end(),
    fcgi_record(6, b"Location: /x\n\n") + fcgi_record(7, b"warning\nmore") + fcgi_end(),
    fcgi_record(6, b"Sta") + fcgi_record(6, b"tus: 404 Not Found\n") + fcgi_record(6, b"\n")
    + fcgi_record(6, b"body" * 100, 4) + fcgi_record(8, b"mgmt", 4, rid=0) + fcgi_end(),
    fcgi_record(6, b"Content-Length: 3\n\nabc") + fcgi_end(),
    fcgi_record(6, b"Status: 101 Switching Protocols\n\n") + fcgi_end(),
    fcgi_record(6, b"X: 1\n\n") + fcgi_end(2),
    fcgi_end(1),
    fcgi_record(6, b"X: " + b"a" * 5000 + b"\n\n") + fcgi_end(),
]


def client_hellos():
    """ClientHellos as Python's TLS stack sends them, with and without SNI."""
    out = []
    for sni in ("www.example.com", "A.Example.COM", None, ".".join(["x" * 60] * 4)):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        inc, outg = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(inc, outg, server_hostname=sni)
        try:
            obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        out.append(outg.read())
    hello = out[0]
    out.append(hello[:5])          # record header only
    out.append(hello[:len(hello) // 2])
    out.append(b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00")
    out.append(b"GET / HTTP/1.1\r\n\r\n")
    return out


WATCH = [
    '{"type":"ADDED","object":{"metadata":{"name":"a","namespace":"ns","resourceVersion":"5"},'
    '"spec":{}}}\n\n{"type":"MODIFIED","object":{"metadata":{"name":"a","namespace":"ns",'
    '"resourceVersion":"6","managedFields":[{}],"annotations":{"kubectl.kubernetes.io/'
    'last-applied-configuration":"{}","k":"v"}}}}\r\n   \n',
    '{"type":"BOOKMARK","object":{"kind":"Ingress","metadata":{"resourceVersion":"9"}}}\n'
    '{"type":"DELETED","object":{"metadata":{"name":"a","namespace":"ns","resourceVersion":"10"}}}\n',
    '{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired"}}\n',
    '{"type":"ERROR","object":{"code":500,"message":"x"}}\n',
    '{"type":"ADDED","object":{"metadata":{"resourceVersion":"1"}}}\n',
    '{"type":"ADDED","object":[]}\n{"type":1,"object":{}}\n{"object":{}}\nnot json\n',
    '{"type":"ADDED","object":{"metadata":{"name":"a\\u0000b","namespace":"ns"},"data":"line\\n\\u00e9"}}\n',
    '{"type":"ADDED","object":{"metadata":{"name":"a"}}}{"type":"ADDED"}\n',
    '{"type":"ADDED","object":{"metadata":{"name":"' + "n" * 600 + '","namespace":"' + "s" * 600 + '"}}}\n',
    # List pages (parse_page), as the API server writes them.
    '{"kind":"IngressList","apiVersion":"networking.k8s.io/v1","metadata":{"resourceVersion":"77",'
    '"continue":"eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ"},"items":[{"metadata":{"name":"a","namespace":"ns",'
    '"uid":"u","resourceVersion":"5","generation":1,"creationTimestamp":"2026-01-01T00:00:00Z",'
    '"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\\"x\\":1}\\n","k":"v"},'
    '"managedFields":[{"manager":"kubectl","operation":"Apply","fieldsType":"FieldsV1",'
    '"fieldsV1":{"f:spec":{"f:rules":{}}}}]},"spec":{"rules":[{"host":"a.test"}]},'
    '"status":{"loadBalancer":{}}},{"metadata":{"managedFields":[],"name":"b"}}]}',
    '{"metadata":{"resourceVersion":"3"},"items":null}',
    '{"items":[{"metadata":{"name":"x"}}],"\\u0069tems":[{"metadata":{"name":"y",'
    '"managedFields":[{"a":"}]"}]}}, 7, null]}',
]


def yaml_annotations(text):
    """key=value lines of the annotations in the YAML text of a golden case."""
    import yaml
    lines = []
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError:
        return ""  # the bad-yaml cases
    for doc in docs:
        if not isinstance(doc, dict):
            continue
        ann = (doc.get("metadata") or {}).get("annotations") or {}
        for k, v in ann.items():
            v = str(v).replace("\n", "\\n")
            for p in ("nginx.ingress.kubernetes.io/", "weir.dev/"):
                if k.startswith(p):
                    k = ("~" if p == "weir.dev/" else "") + k[len(p):]
            lines.append(f"{k}={v}")
    return "\n".join(lines)


def h2_frame(ftype, flags, sid, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + sid.to_bytes(4, "big") + payload


def hpack_lit(name, value):
    """A literal header field without indexing, new name (lengths below 127)."""
    return bytes([0, len(name)]) + name + bytes([len(value)]) + value


def h2_head(path=b"/echo", method=b"GET", extra=b""):
    """HPACK for :method (literal value unless GET/POST), :scheme http, :path, :authority."""
    m = {b"GET": b"\x82", b"POST": b"\x83"}.get(method, b"\x02" + bytes([len(method)]) + method)
    return m + b"\x86" + b"\x04" + bytes([len(path)]) + path + b"\x01\x07h2.fuzz" + extra


def h2_sessions():
    """Inputs of fuzz_h2_session: mode byte, answer length (2 bytes), the stub data path's
    HTTP/1.1 answer, then the client's frames after the preface."""
    settings = h2_frame(4, 0, 0, b"\x00\x04\x00\x01\x00\x00")  # INITIAL_WINDOW_SIZE 65536
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello"
    chunked = (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
               b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nConnection: keep-alive\r\n\r\n"
               b"5\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n")
    grpc = (b"HTTP/1.1 200 OK\r\nContent-Type: application/grpc\r\nTransfer-Encoding: chunked"
            b"\r\n\r\n5\r\n\x00\x00\x00\x00\x00\r\n0\r\ngrpc-status: 0\r\n\r\n")
    eof_body = b"HTTP/1.1 404 Not Found\r\n\r\nuntil the end"
    bad = b"HTTP/1.1 2x0 Nope\r\nContent-Length: -1\r\n\r\n"
    cookie = hpack_lit(b"cookie", b"a=1") + hpack_lit(b"cookie", b"b=2")
    get = h2_frame(1, 0x5, 1, h2_head(extra=cookie + hpack_lit(b"x-a", b"v")))
    post = (h2_frame(1, 0x4, 1, h2_head(b"/up", b"POST", hpack_lit(b"content-length", b"5"))) +
            h2_frame(0, 0, 1, b"hel") + h2_frame(0, 0, 1, b"lo") +
            h2_frame(1, 0x5, 1, hpack_lit(b"x-trailer", b"t")))
    two = get + h2_frame(1, 0x5, 3, h2_head(b"/two")) + h2_frame(8, 0, 0, b"\x00\x01\x00\x00")
    block = h2_head(b"/cont", extra=hpack_lit(b"x-pad", b"p" * 60))
    cont = (h2_frame(1, 0x1, 1, block[:9]) + h2_frame(9, 0, 1, block[9:30]) +
            h2_frame(9, 0x4, 1, block[30:]))
    rapid = b"".join(h2_frame(1, 0x5, sid, h2_head()) + h2_frame(3, 0, sid, b"\x00\x00\x00\x08")
                     for sid in range(1, 40, 2))
    connect = h2_frame(1, 0x4, 1, b"\x02\x07CONNECT\x87\x04\x05/chat\x01\x07h2.fuzz" +
                       hpack_lit(b":protocol", b"websocket") +
                       hpack_lit(b"sec-websocket-version", b"13"))
    plain_connect = h2_frame(1, 0x4, 1, b"\x02\x07CONNECT\x01\x0bh2.fuzz:443")
    padded = h2_frame(1, 0x5 | 0x8, 1, b"\x03" + h2_head(b"/pad") + b"\x00\x00\x00")
    prio = h2_frame(1, 0x5 | 0x20, 1, b"\x00\x00\x00\x00\x10" + h2_head(b"/prio"))
    control = (h2_frame(6, 0, 0, b"12345678") + h2_frame(2, 0, 3, b"\x00\x00\x00\x01\x10") +
               get + h2_frame(7, 0, 0, b"\x00\x00\x00\x01\x00\x00\x00\x00"))
    big_head = h2_frame(1, 0x5, 1, h2_head(extra=hpack_lit(b"x-big", b"b" * 120) * 3))
    cases = [(0, ok, get), (1, ok, get), (0, chunked, post), (1, chunked, two), (3, grpc, two),
             (0, eof_body, get), (1, bad, get), (0, ok, cont), (1, ok, rapid), (2, ok, rapid),
             (0, ok, connect), (1, ok, plain_connect), (1, ok, padded), (1, ok, prio),
             (0, ok, control), (4, ok, big_head), (8, ok, big_head), (17, chunked, post),
             (16, ok, get)]
    for mode, answer, frames in cases:
        yield bytes([mode]) + len(answer).to_bytes(2, "big") + answer + settings + frames


def main():
    build = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else REPO / "build")
    for s in h2_sessions():
        put("h2_session", s)
    for r in REQUESTS:
        put("http_request", r)
    for r in RESPONSES:
        put("http_response", r)
        put("http_response", r + b" ")  # the other parity: an answer to HEAD
    for h in client_hellos():
        put("tls_sni", h)
    for w in WATCH:
        put("k8s_watch", w)
    for i, r in enumerate(FASTCGI):
        put("fastcgi", bytes([i * 37 % 256]) + r)
    put("route_table", (REPO / "examples/routes.json").read_bytes())
    for f in sorted((REPO / "tests/fixtures/tables").glob("*.json")):
        put("route_table", f.read_bytes())
    # an index naming id lists; after the NUL, the text every list id reads as
    a_id, b_id = "a" * 64, "0123456789abcdef" * 4
    for key, lst in (("host_lists", f'[\n  "{a_id}",\n  "{b_id}"\n]\n'),
                     ("backend_lists", f'[\n  "{b_id}",\n  ""\n]\n'),
                     ("cert_lists", '[]')):
        put("route_table", f'{{\n  "version": 2,\n  "generation": 3,\n  "{key}": [\n'
                           f'    "{a_id}",\n    "{b_id}"\n  ]\n}}\n\0{lst}')
    for case in sorted((REPO / "tests/golden").iterdir()):
        yamls = sorted(case.glob("*.yaml")) if case.is_dir() else []
        if not yamls:
            continue
        text = "\n---\n".join(f.read_text() for f in yamls)
        put("manifests", text)
        ann = yaml_annotations(text)
        if ann:
            put("annotations", ann)
        exe = build / "weir-controller"
        if exe.exists():
            with tempfile.TemporaryDirectory() as pub:
                subprocess.run([str(exe), "--manifests", str(case), "--publish", pub, "--once",
                                "--metrics-port", "0"], capture_output=True, timeout=30)
                p = pathlib.Path(pub) / "routes.json"
                if p.exists():
                    put("route_table", p.read_bytes())
    for f in sorted((REPO / "examples/manifests").glob("*.yaml")):
        put("manifests", f.read_bytes())
    for v in ("60", "60s", "1500ms", "5m", "1h", "4294967295ms", "1m", "512k", "0", "true",
              "X-A: 1\\nX-B: two", "10.0.0.0/8, ::1/128", "$remote_addr$arg_x$cookie_y"):
        put("annotations", v)


if __name__ == "__main__":
    main()
