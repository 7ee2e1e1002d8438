"""HTTP echo backend for the weir-proxy integration tests and the local quick start.

  python3 echo_http.py --host 127.0.0.1 --port 9101 [--name NAME] [--cert PEM --key PEM]
                       [--delay-ms N]

Prints "echo_http ready on HOST:PORT" once listening. Every request gets a JSON answer
{"name", "method", "path", "query" (both as sent, not decoded), "headers": [[name, value], ...] (as received: order and
case kept, repeats kept), "body_len", "body_sha256"}. The body is read as a stream (any size,
never stored). The query parameter "do" selects other behaviours:

  do=cookies        three Set-Cookie headers (a=1, b=2, c=3) and unknown/repeated headers
                    (X-Unknown-Resp, X-Repeat: 1, X-Repeat: 2), then the JSON echo
  do=stream&n=N     a chunked response of N bytes of the pattern in pattern.py
  do=fixed&n=N      a Content-Length response of N bytes of the pattern
  do=sleep&ms=N     wait N ms (at most 60000), then the JSON echo
  do=abort          close the connection without any answer (RST)
  do=hsts           a Strict-Transport-Security: max-age=5 header, then the JSON echo
  do=status&code=N  status N with the JSON echo (none for 204 and 304)
  do=bighead&n=N    an X-Big header of N bytes ("b"), then the JSON echo
  do=drip&n=N&ms=M  a chunked response of N Server-Sent Events ("data: i"), M ms apart
  stream, fixed, status and drip also take type=T (Content-Type, default
  application/octet-stream; text/event-stream for drip), etag=E (ETag) and ce=C
  (Content-Encoding)
"""

import argparse
import asyncio
import hashlib
import json
import os
import signal
import ssl
import sys

from aiohttp import web

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pattern  # noqa: E402

MAX_N = 8 << 30


async def echo_body(request: web.Request, name: str) -> dict:
    h = hashlib.sha256()
    total = 0
    async for data in request.content.iter_any():
        h.update(data)
        total += len(data)
    return {
        "name": name,
        "method": request.method,
        "path": request.raw_path.split("?", 1)[0],
        "query": request.raw_path.split("?", 1)[1] if "?" in request.raw_path else "",
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.raw_headers],
        "body_len": total,
        "body_sha256": h.hexdigest(),
    }


def head_extras(request: web.Request, resp: web.StreamResponse, default_type: str) -> None:
    """Content-Type (type=), ETag (etag=) and Content-Encoding (ce=) from the query."""
    resp.headers["Content-Type"] = request.query.get("type", default_type)
    if "etag" in request.query:
        resp.headers["ETag"] = request.query["etag"]
    if "ce" in request.query:
        resp.headers["Content-Encoding"] = request.query["ce"]


def make_app(name: str, delay_ms: int = 0) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        do = request.query.get("do", "")
        if do == "abort":
            request.transport.abort()
            raise asyncio.CancelledError()
        if do in ("stream", "fixed"):
            n = min(int(request.query.get("n", "0")), MAX_N)
            async for _ in request.content.iter_any():
                pass
            resp = web.StreamResponse(status=200)
            head_extras(request, resp, "application/octet-stream")
            if do == "fixed":
                resp.content_length = n
            else:
                resp.enable_chunked_encoding()
            await resp.prepare(request)
            for c in pattern.chunks(n, 256 * 1024):
                await resp.write(c)
            await resp.write_eof()
            return resp
        if do == "drip":
            n = min(int(request.query.get("n", "3")), 1000)
            ms = min(int(request.query.get("ms", "200")), 60000)
            resp = web.StreamResponse(status=200)
            head_extras(request, resp, "text/event-stream")
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            for i in range(n):
                if i:
                    await asyncio.sleep(ms / 1000)
                await resp.write(f"data: {i}\n\n".encode())
            await resp.write_eof()
            return resp
        if do == "sleep":
            ms = min(int(request.query.get("ms", "100")), 60000)
            await asyncio.sleep(ms / 1000)
        info = await echo_body(request, name)
        body = json.dumps(info).encode()
        resp = web.Response(body=body, content_type="application/json")
        if do == "cookies":
            for c in ("a=1; Path=/", "b=2; HttpOnly", "c=3"):
                resp.headers.add("Set-Cookie", c)
            resp.headers.add("X-Unknown-Resp", "kept as is")
            resp.headers.add("X-Repeat", "1")
            resp.headers.add("X-Repeat", "2")
        if do == "hsts":
            resp.headers.add("Strict-Transport-Security", "max-age=5")
        if do == "bighead":
            resp.headers.add("X-Big", "b" * min(int(request.query.get("n", "0")), 1 << 20))
        if do == "status":
            code = int(request.query.get("code", "200"))
            resp = web.Response(status=code, body=None if code in (204, 304) else body)
            head_extras(request, resp, "application/json")
        return resp

    app = web.Application(client_max_size=MAX_N)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def run(host: str, port: int, name: str, cert: str = None, key: str = None,
              delay_ms: int = 0) -> None:
    runner = web.AppRunner(make_app(name, delay_ms), access_log=None, handle_signals=False)
    await runner.setup()
    ctx = None
    if cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
    await web.TCPSite(runner, host, port, reuse_address=True, backlog=1024,
                      ssl_context=ctx).start()
    print(f"echo_http ready on {host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="echo")
    ap.add_argument("--cert", help="serve HTTPS with this PEM certificate (chain)")
    ap.add_argument("--key", help="the PEM private key of --cert")
    ap.add_argument("--delay-ms", type=int, default=0,
                    help="wait this long before answering any request (a slow endpoint)")
    a = ap.parse_args()
    asyncio.run(run(a.host, a.port, a.name, a.cert, a.key, a.delay_ms))


if __name__ == "__main__":
    main()
