"""Route table lifecycle: a proxy started before any table is live but not ready; requests in
flight when a table is swapped finish on the table they started with."""

import os
import threading
import time

import proxyutil as pu


def table(backends, gen, with_slow=True):
    routes = [{"path": "/keep", "match": "prefix", "backend": 0}]
    if with_slow:
        routes.insert(0, {"path": "/slow", "match": "prefix", "backend": 0})
    return {"version": 1, "generation": gen,
            "hosts": [{"name": "", "routes": routes}],
            "backends": [{"name": "r/echo:80", "endpoints": [
                {"address": "127.0.0.1", "port": backends["echo"]}]}]}


def test_not_ready_until_a_table_arrives(proxy_bin, backends, tmp_path):
    routes = tmp_path / "not-yet"  # does not exist when the proxy starts
    p = pu.Proxy(str(routes), str(tmp_path / "proxy.log"))
    try:
        deadline = time.monotonic() + 10
        health = None
        while time.monotonic() < deadline:
            try:
                health = pu.http_get(p.admin_port, "/healthz", timeout=1)[0]
                break
            except OSError:
                time.sleep(0.05)
        assert health == 200, p.log_tail()
        assert pu.http_get(p.admin_port, "/readyz")[0] == 503
        os.makedirs(routes)
        pu.write_table(str(routes), table(backends, 7))
        p.wait_ready(10)
        p.wait_generation(7)
        assert pu.get(p.http_port, "/keep/x").status == 200
    finally:
        p.stop()


def test_in_flight_request_finishes_on_old_table(fresh_proxy, backends):
    proxy = fresh_proxy(table(backends, 1))
    result = {}

    def slow():
        result["resp"] = pu.get(proxy.http_port, "/slow/x?do=sleep&ms=1500")

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.4)
    pu.write_table(proxy.routes_dir, table(backends, 2, with_slow=False))
    proxy.wait_generation(2)
    assert pu.get(proxy.http_port, "/slow/y").status == 404  # new table: route gone
    t.join(10)
    resp = result.get("resp")
    assert resp is not None and resp.status == 200, resp
    assert resp.json()["path"] == "/slow/x"
