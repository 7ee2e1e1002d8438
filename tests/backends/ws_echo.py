"""WebSocket echo backend: every text and binary message comes back unchanged.

  python3 ws_echo.py --host 127.0.0.1 --port 9102

Prints "ws_echo ready on HOST:PORT" once listening. Any path is accepted. Messages up to
16 MiB; no server pings (idle-timeout tests need silence)."""

import argparse
import asyncio
import signal

import websockets
from websockets.asyncio.server import serve


async def echo(ws) -> None:
    try:
        async for msg in ws:
            await ws.send(msg)
    except websockets.ConnectionClosed:
        pass


async def run(host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with serve(echo, host, port, max_size=16 << 20, ping_interval=None,
                     compression=None, max_queue=64):
        print(f"ws_echo ready on {host}:{port}", flush=True)
        await stop.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    a = ap.parse_args()
    asyncio.run(run(a.host, a.port))


if __name__ == "__main__":
    main()
