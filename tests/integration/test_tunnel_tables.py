"""An open WebSocket does not keep the route table it started on alive: while the table changes
and new tunnels open (each on the newest table), the proxy holds about one table's memory, not
one table per open tunnel. Found by tests/bench/soak.py: with 200 tunnels opening and closing
while the table changed 1,000 times, weir-proxy's RSS grew by the tables they pinned."""

import contextlib
import json
import time

from websockets.sync.client import connect

import proxyutil as pu

HOSTS = 3000  # about 0.5 MB of routes.json, a few MB once loaded
TUNNELS = 25  # one per table generation


def table(backends, gen):
    hosts = [{"name": f"h{i}.tables.test", "routes": [
        {"path": f"/app-{i}", "match": "prefix", "backend": 1, "source": f"t/ing-{i}",
         "policy": {"request_headers": [{"name": "X-Host-Index", "value": str(i)}]}}]}
        for i in range(HOSTS)]
    hosts.append({"name": "", "routes": [{"path": "/ws", "match": "prefix", "backend": 0}]})
    return {"version": 1, "generation": gen, "hosts": hosts,
            "backends": [{"name": "t/ws:80", "endpoints": [
                             {"address": "127.0.0.1", "port": backends["ws"]}]},
                         {"name": "t/echo:80", "endpoints": [
                             {"address": "127.0.0.1", "port": backends["echo"]}]}]}


def open_tunnel(proxy, stack, i):
    ws = stack.enter_context(connect(f"ws://127.0.0.1:{proxy.http_port}/ws/t{i}", proxy=None,
                                     ping_interval=None, close_timeout=5, open_timeout=10))
    ws.send(f"hello {i}")
    assert ws.recv(timeout=5) == f"hello {i}"
    return ws


def test_open_tunnels_do_not_pin_old_tables(fresh_proxy, backends, tmp_path):
    proxy = fresh_proxy(table(backends, 1), workers=1)
    routes = str(tmp_path / "routes")
    with contextlib.ExitStack() as stack:
        first = open_tunnel(proxy, stack, 0)
        # The cost of one more table, allocator warm-up included: two swaps with no tunnel
        # holding anything.
        for gen in (2, 3):
            pu.write_table(routes, table(backends, gen))
            proxy.wait_generation(gen)
            assert pu.get(proxy.http_port, "/app-7", host="h7.tables.test").status == 200
        time.sleep(0.3)
        before = proxy.rss_kb()
        conns = []
        for i in range(TUNNELS):
            gen = 4 + i
            pu.write_table(routes, table(backends, gen))
            proxy.wait_generation(gen)
            conns.append(open_tunnel(proxy, stack, i + 1))
        time.sleep(0.3)
        grown = proxy.rss_kb() - before
        # Every tunnel still carries its messages, the first one included.
        for i, ws in enumerate([first] + conns):
            ws.send(f"again {i}")
            assert ws.recv(timeout=5) == f"again {i}"
        one_table = (len(json.dumps(table(backends, 1))) // 1024) or 1
        assert grown < 4 * one_table, (
            f"RSS grew by {grown} kB after {TUNNELS} tunnels opened on {TUNNELS} successive "
            f"tables of {one_table} kB of JSON each")


def tls_table(backends, certs, gen, host_cert):
    """wss for a.test with the certificate of host_cert."""
    return {"version": 1, "generation": gen,
            "hosts": [{"name": "a.test", "cert": 0, "routes": [
                {"path": "/ws", "match": "prefix", "backend": 0}]}],
            "backends": [{"name": "t/ws:80", "endpoints": [
                {"address": "127.0.0.1", "port": backends["ws"]}]}],
            "certs": [{"name": f"t/{host_cert}", "cert_pem": certs[host_cert][0],
                       "key_pem": certs[host_cert][1]}]}


def test_wss_tunnel_outlives_its_table_and_certificate(fresh_proxy, backends, certs, tmp_path):
    """The table a wss tunnel started on, with the certificate its handshake used, is replaced
    twice (so it is freed): the tunnel still carries messages both ways, and a new connection
    gets the new certificate."""
    import asyncio
    import socket
    import ssl

    from websockets.asyncio.client import connect as aconnect

    proxy = fresh_proxy(tls_table(backends, certs, 1, "a.test"), workers=1)
    routes = str(tmp_path / "routes")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE

    def peer_cert():
        with socket.create_connection(("127.0.0.1", proxy.https_port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="a.test") as s:
                return s.getpeercert(binary_form=True)

    async def run():
        async with aconnect("wss://a.test/ws/old", ssl=ctx, host="127.0.0.1",
                            port=proxy.https_port, proxy=None, compression=None,
                            ping_interval=None, open_timeout=10) as ws:
            await ws.send("before")
            assert await asyncio.wait_for(ws.recv(), 10) == "before"
            for gen in (2, 3):
                pu.write_table(routes, tls_table(backends, certs, gen, "b.test"))
                proxy.wait_generation(gen)
                # a new handshake makes the worker follow the swap
                assert peer_cert() == certs["b.test"][2]
            for i in range(20):
                msg = bytes(range(256)) * (i + 1) if i % 2 else f"after {i}"
                await ws.send(msg)
                assert await asyncio.wait_for(ws.recv(), 10) == msg

    asyncio.run(run())
