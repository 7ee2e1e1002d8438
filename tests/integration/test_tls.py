"""TLS termination with SNI: the certificate presented and the route used follow the name."""

import json
import socket
import ssl

import pytest

from proxyutil import RawConn


def tls_conn(proxy, sni):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", proxy.https_port), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname=sni)
    return s


@pytest.mark.parametrize("host,name", [("a.test", "A"), ("b.test", "B")])
def test_sni_picks_cert_and_route(proxy, certs, host, name):
    s = tls_conn(proxy, host)
    try:
        assert s.getpeercert(binary_form=True) == certs[host][2], f"wrong cert for {host}"
        c = RawConn(0, sock=s)
        c.send(f"GET /tls/x HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        r = c.read_response()
    finally:
        s.close()
    assert r.status == 200, r
    info = json.loads(r.body)
    assert info["name"] == name, f"{host} routed to backend {info['name']}"
    hs = {k.lower(): v for k, v in info["headers"]}
    assert hs.get("x-forwarded-proto") == "https", info["headers"]
    assert hs.get("x-forwarded-port") == str(proxy.https_port), info["headers"]


def test_unknown_sni_gets_default_cert(proxy, certs):
    s = tls_conn(proxy, "zzz.unknown.test")
    try:
        assert s.getpeercert(binary_form=True) == certs["default.test"][2]
    finally:
        s.close()


def test_same_cert_for_host_without_own_cert_and_no_sni(proxy, certs):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", proxy.https_port), timeout=10)
    s = ctx.wrap_socket(raw)  # no SNI at all
    try:
        assert s.getpeercert(binary_form=True) == certs["default.test"][2]
        c = RawConn(0, sock=s)
        c.send(b"GET /echo/nosni HTTP/1.1\r\nHost: whatever.test\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and json.loads(r.body)["path"] == "/echo/nosni"
    finally:
        s.close()


def test_websocket_over_tls(proxy):
    # The asyncio client, not websockets.sync: the sync client reads the
    # socket on a thread of its own while the caller's thread writes, and an
    # OpenSSL connection must not be used by two threads at once. Under load
    # that race lost the upgrade request or ended the read early (seen with
    # strace on the client: its SSL_read gave up with EAGAIN while the other
    # thread's SSL_write ran), which was the "handshake response never came"
    # flake.
    import asyncio
    from websockets.asyncio.client import connect

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE

    async def run():
        async with connect("wss://a.test/ws/tls", ssl=ctx, host="127.0.0.1",
                           port=proxy.https_port, proxy=None, compression=None,
                           max_size=None, ping_interval=None, open_timeout=10) as ws:
            for i in range(50):
                msg = bytes(range(256)) * (i + 1) if i % 2 else "tls %d " % i * (i + 1)
                await ws.send(msg)
                assert await asyncio.wait_for(ws.recv(), 10) == msg

    asyncio.run(run())
