"""Certificates across reloads (issue 7): a reload that keeps a certificate serves it from the
context the earlier table built (the proxy's log says how many it decoded), a changed one is
decoded and served at once, and a connection made with an older table's certificate keeps
working."""

import re
import time

import proxyutil as pu
from proxyutil import RawConn
from test_tls import tls_conn


def table(backends, certs, gen, b_cert_host, path="/"):
    cert = {h: {"name": f"ns/{h}", "cert_pem": certs[h][0], "key_pem": certs[h][1]}
            for h in ("a.test", b_cert_host)}
    names = list(cert)
    return {"version": 1, "generation": gen,
            "certs": [cert[h] for h in names],
            "hosts": [{"name": h, "cert": names.index(c),
                       "routes": [{"path": path, "match": "prefix", "backend": 0}]}
                      for h, c in (("a.test", "a.test"), ("b.test", b_cert_host))],
            "backends": [{"name": "ns/echo:80", "endpoints": [
                {"address": "127.0.0.1", "port": backends["echo"]}]}]}


def loaded_line(proxy, gen, timeout=10.0):
    """The proxy's log line for the load of generation gen."""
    want = re.compile(rf"route table loaded: generation {gen} [^\n]*")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(proxy.log_path, "rb") as f:
            m = want.search(f.read().decode(errors="replace"))
        if m:
            return m.group(0)
        time.sleep(0.05)
    raise AssertionError(f"no load of generation {gen} in the log:\n{proxy.log_tail()}")


def served_cert(proxy, host):
    s = tls_conn(proxy, host)
    try:
        return s.getpeercert(binary_form=True)
    finally:
        s.close()


def get_over(s, host, path):
    c = RawConn(0, sock=s)
    c.send(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    return c.read_response()


def test_reload_reuses_kept_certificates(fresh_proxy, backends, certs):
    proxy = fresh_proxy(table(backends, certs, 1, "b.test"))
    assert "2 certificates (2 decoded" in loaded_line(proxy, 1)
    assert served_cert(proxy, "a.test") == certs["a.test"][2]
    # a keep-alive HTTPS connection started on generation 1
    old = tls_conn(proxy, "b.test")
    try:
        assert get_over(old, "b.test", "/x").status == 200

        # generation 2 changes a route only: no certificate is decoded again
        pu.write_table(proxy.routes_dir, table(backends, certs, 2, "b.test", path="/v2"))
        proxy.wait_generation(2)
        assert "2 certificates (0 decoded" in loaded_line(proxy, 2)
        assert served_cert(proxy, "a.test") == certs["a.test"][2]
        assert served_cert(proxy, "b.test") == certs["b.test"][2]

        # generation 3 gives b.test another certificate: that one is decoded
        pu.write_table(proxy.routes_dir, table(backends, certs, 3, "default.test", path="/v2"))
        proxy.wait_generation(3)
        assert "2 certificates (1 decoded" in loaded_line(proxy, 3)
        assert served_cert(proxy, "b.test") == certs["default.test"][2]
        assert served_cert(proxy, "a.test") == certs["a.test"][2]

        # the connection made with generation 1's certificate still works; its
        # requests follow the current table (generation 3: only /v2)
        assert get_over(old, "b.test", "/v2/x").status == 200
        assert get_over(old, "b.test", "/x").status == 404
    finally:
        old.close()
