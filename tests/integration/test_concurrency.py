"""Many clients at once across the proxy's workers: every answer complete and to the right
request."""

import asyncio
import json


async def client(port, i, n):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    bad = []
    try:
        for k in range(n):
            body = (b"%d-%d" % (i, k)) * (k + 1)
            writer.write(b"POST /echo/c%d/%d HTTP/1.1\r\nHost: conc.test\r\nContent-Length: %d"
                         b"\r\n\r\n" % (i, k, len(body)) + body)
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)
            status = int(head.split()[1])
            length = None
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            data = await asyncio.wait_for(reader.readexactly(length), 20)
            info = json.loads(data)
            if status != 200 or info["path"] != f"/echo/c{i}/{k}" or \
                    info["body_len"] != len(body):
                bad.append((i, k, status, info.get("path")))
    finally:
        writer.close()
    return bad


async def run_all(port, conns, n):
    results = await asyncio.gather(*(client(port, i, n) for i in range(conns)))
    return [b for r in results for b in r]


def test_200_concurrent_keepalive_clients(proxy):
    bad = asyncio.run(asyncio.wait_for(run_all(proxy.http_port, 200, 10), 120))
    assert bad == [], bad[:5]
