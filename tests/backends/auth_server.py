"""Forward-auth server for the weir-proxy integration tests (auth-url).

  python3 auth_server.py --host 127.0.0.1 --port N [--cert PEM --key PEM]

Prints "auth_server ready on HOST:PORT" once listening. Any path answers by the
X-Test-Auth header the client sent (the proxy passes the client's headers on):

  ok        200 with X-Auth-User: alice, X-Auth-Email: alice@example.test,
            X-Not-Listed: secret, Set-Cookie: sess=s1; Path=/ and Set-Cookie: seen=1
  deny      403 with Set-Cookie: denied=1
  okplain   200 with X-Auth-User: the client's X-Test-Who (default "plain"), no cookie
  noplain   401 without any cookie
  err       500
  slow      200 (as ok) after the number of ms in X-Test-Delay (default 1000)
  (other)   401 with WWW-Authenticate: Bearer realm="t" and Set-Cookie: tried=1

A request carrying the cookie "sess=s1" is also allowed (a cookie flow). The last
requests are kept: GET /_log (sent directly, not through the proxy) answers them as
JSON [{"method", "target", "headers": [[name, value], ...], "body_len", "sni"}] (sni: the
TLS server name the client sent, None without TLS or SNI), newest last,
and DELETE /_log clears them.
"""

import argparse
import asyncio
import json
import signal
import ssl

from aiohttp import web

LOG_MAX = 200


def make_app(sni: dict) -> web.Application:
    log = []

    def ok_response(status: int = 200) -> web.Response:
        resp = web.Response(status=status, text="ok")
        resp.headers["X-Auth-User"] = "alice"
        resp.headers["X-Auth-Email"] = "alice@example.test"
        resp.headers["X-Not-Listed"] = "secret"
        resp.headers.add("Set-Cookie", "sess=s1; Path=/")
        resp.headers.add("Set-Cookie", "seen=1")
        return resp

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.path == "/_log":
            if request.method == "DELETE":
                log.clear()
                return web.Response(text="cleared")
            return web.json_response(log)
        body = await request.read()
        log.append({"method": request.method, "target": request.raw_path,
                    "headers": [[k.decode("latin-1"), v.decode("latin-1")]
                                for k, v in request.raw_headers],
                    "body_len": len(body),
                    "sni": sni.get(id(request.transport.get_extra_info("ssl_object")))})
        del log[:-LOG_MAX]
        what = request.headers.get("X-Test-Auth", "")
        if what == "ok" or "sess=s1" in request.headers.get("Cookie", ""):
            return ok_response()
        if what == "okplain":
            resp = web.Response(status=200, text="ok")
            resp.headers["X-Auth-User"] = request.headers.get("X-Test-Who", "plain")
            return resp
        if what == "noplain":
            return web.Response(status=401, text="no")
        if what == "deny":
            resp = web.Response(status=403, text="no")
            resp.headers.add("Set-Cookie", "denied=1")
            return resp
        if what == "err":
            return web.Response(status=500, text="broken")
        if what == "slow":
            await asyncio.sleep(int(request.headers.get("X-Test-Delay", "1000")) / 1000)
            return ok_response()
        resp = web.Response(status=401, text="who are you")
        resp.headers["WWW-Authenticate"] = 'Bearer realm="t"'
        resp.headers.add("Set-Cookie", "tried=1")
        return resp

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def run(host: str, port: int, cert: str = None, key: str = None) -> None:
    sni = {}  # id(SSLObject) -> the server name it was asked for
    runner = web.AppRunner(make_app(sni), access_log=None, handle_signals=False)
    await runner.setup()
    ctx = None
    if cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)

        def on_sni(obj, name, _ctx):
            sni[id(obj)] = name

        ctx.sni_callback = on_sni
    await web.TCPSite(runner, host, port, reuse_address=True, backlog=1024,
                      ssl_context=ctx).start()
    print(f"auth_server ready on {host}:{port}", flush=True)
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
    ap.add_argument("--cert", help="serve HTTPS with this PEM certificate (chain)")
    ap.add_argument("--key", help="the PEM private key of --cert")
    a = ap.parse_args()
    asyncio.run(run(a.host, a.port, a.cert, a.key))


if __name__ == "__main__":
    main()
