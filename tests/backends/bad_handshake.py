"""A broken WebSocket backend: answers every upgrade with 101 and a wrong Sec-WebSocket-Accept.

  python3 bad_handshake.py --host 127.0.0.1 --port 9103

Prints "bad_handshake ready on HOST:PORT" once listening. A correct proxy must not pass this
101 on: the client gets 502."""

import argparse
import asyncio
import base64
import signal

WRONG_ACCEPT = base64.b64encode(b"definitely-wrong-accept").decode()


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\n"
                     b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: " + WRONG_ACCEPT.encode() + b"\r\n\r\n")
        await writer.drain()
        await asyncio.wait_for(reader.read(65536), 10)
    except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def run(host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await asyncio.start_server(handle, host, port, reuse_address=True)
    print(f"bad_handshake ready on {host}:{port}", flush=True)
    async with server:
        await stop.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    a = ap.parse_args()
    asyncio.run(run(a.host, a.port))


if __name__ == "__main__":
    main()
