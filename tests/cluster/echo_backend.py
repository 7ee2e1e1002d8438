"""HTTP + WebSocket echo backend for the cluster tests (runs inside a test network namespace).

  python3 echo_backend.py --name b1 --listen 10.213.1.2:8080 --listen 10.213.1.3:8080

Any path: a WebSocket upgrade is echoed message by message; any other request gets a JSON body
{"name", "server" (the local address:port that accepted it), "method", "path", "query", "host",
"headers"}. GET /slow?ms=N waits N ms (max 30000) first.
"""

import argparse
import asyncio
import json
import signal

from aiohttp import WSMsgType, web


def make_app(name: str) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        sock = request.transport.get_extra_info("sockname") if request.transport else None
        server = f"{sock[0]}:{sock[1]}" if sock else "?"
        if request.headers.get("Upgrade", "").lower() == "websocket":
            ws = web.WebSocketResponse(heartbeat=None)
            await ws.prepare(request)
            await ws.send_str(json.dumps({"hello": name, "server": server}))
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await ws.send_str(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    await ws.send_bytes(msg.data)
                else:
                    break
            return ws
        if request.path == "/slow":
            ms = min(int(request.query.get("ms", "100")), 30000)
            await asyncio.sleep(ms / 1000)
        body = await request.read()
        return web.json_response({
            "name": name,
            "server": server,
            "method": request.method,
            "path": request.path,
            "query": request.query_string,
            "host": request.headers.get("Host", ""),
            "headers": {k: v for k, v in request.headers.items()},
            "body_len": len(body),
        })

    app = web.Application(client_max_size=64 << 20)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def run(name: str, listens: list[str]) -> None:
    runner = web.AppRunner(make_app(name), access_log=None)
    await runner.setup()
    for hp in listens:
        host, port = hp.rsplit(":", 1)
        await web.TCPSite(runner, host.strip("[]"), int(port), reuse_address=True).start()
    print(f"echo backend {name} on {' '.join(listens)}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--listen", action="append", required=True, help="ADDR:PORT, repeatable")
    a = ap.parse_args()
    asyncio.run(run(a.name, a.listen))


if __name__ == "__main__":
    main()
