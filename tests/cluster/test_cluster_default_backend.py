"""--default-backend-service against a real kube-apiserver: a second weir (controller with
the flag, and its own proxy) sends requests no Ingress matches to that Service, sends the
custom-http-errors pages there with X-Code, and follows the Service: once it is deleted,
unmatched requests get 404."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import kweir  # noqa: E402
from kweir import NS, endpointslice, http_get, ingress, served_by, service, wait_for  # noqa: E402

ROUTE_TIMEOUT = 30  # s for a change to reach the proxy


def test_default_backend_service(cluster, api, base, sa_kubeconfig, backends, tmp_path):
    b2 = backends["weir-b2"]
    api.apply(service("svc-defbe"))
    api.apply(endpointslice("svc-defbe", [b2.addrs[0]]))
    api.apply(service("svc-noeps"))
    w = kweir.Weir(cluster, sa_kubeconfig, tmp_path / "weir-defbe")
    try:
        w.start_proxy()
        w.start_controller(["--default-backend-service", f"{NS}/svc-defbe"])
        wait_for(lambda: served_by(w.http_port, "nobody.weir.test", "/x") == "weir-b2",
                 ROUTE_TIMEOUT, "unmatched request -> the default backend service")

        # a route whose Service has no endpoints answers 503; listed: the error page
        api.apply(ingress("errs", "errs.weir.test", [("/", "Prefix", "svc-noeps", 80)],
                          annotations={"nginx.ingress.kubernetes.io/custom-http-errors":
                                       "503"}))

        def error_page():
            # Before the route is published the request is unmatched and the
            # default backend answers it too, without X-Code: wait for the page.
            st, body, _ = http_get(w.http_port, "errs.weir.test", "/shop?id=1")
            return (st == 200 and isinstance(body, dict) and body.get("name") == "weir-b2"
                    and body.get("headers", {}).get("X-Code") == "503")

        wait_for(error_page, ROUTE_TIMEOUT, "503 replaced by the default backend's page")
        st, body, _ = http_get(w.http_port, "errs.weir.test", "/shop?id=1")
        h = body["headers"]
        assert body["path"] == "/", body
        assert (h["X-Code"], h["X-Original-URI"], h["X-Namespace"], h["X-Ingress-Name"],
                h["X-Service-Name"], h["X-Service-Port"]) == (
            "503", "/shop?id=1", NS, "errs", "svc-noeps", "80"), h

        # the flag's Service is watched: deleting it leaves unmatched requests to 404
        api.delete("Service", "svc-defbe", NS)
        wait_for(lambda: http_get(w.http_port, "nobody.weir.test", "/x")[0] == 404,
                 ROUTE_TIMEOUT, "404 once the default backend service is gone")
        assert w.controller_alive(), w.log_tail("weir-controller")
    finally:
        w.stop_controller()
        w.stop_proxy()
        for kind, name in (("Ingress", "errs"), ("Service", "svc-noeps"),
                           ("Service", "svc-defbe"), ("EndpointSlice", "svc-defbe-1")):
            try:
                api.delete(kind, name, NS)
            except Exception:  # noqa: BLE001 - already gone
                pass
