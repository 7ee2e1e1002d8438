#!/usr/bin/env python3
"""weir-proxy memory and reload time with several route table generations alive.

Serves a routes.json with many TLS hosts (e.g. the one table_load_bench writes: 10,000 hosts,
a certificate each), then GENS times: opens an HTTPS connection (its handshake holds the
current table, as a long download or a tunnel would), replaces one host's certificate with a
fresh one, writes the table as the controller does (temp file + rename) and waits until the
proxy serves the new generation. Prints the time from the rename to the new generation being
served (admin /metrics polled every 5 ms) and the proxy's RSS with all generations alive.

  cmake --build build --target table_load_bench weir-proxy
  mkdir -p /tmp/t10k && build/table_load_bench --hosts 10000 --gens 0 --dir /tmp/t10k
  python3 tests/bench/reload_rss.py --build build --table /tmp/t10k/routes.json [--gens 3]
"""

import argparse
import datetime
import json
import os
import shutil
import socket
import ssl
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import proxyutil as pu  # noqa: E402


def fresh_cert(host):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode())


def generation(proxy):
    return proxy.metric("weir_proxy_route_table_generation")


def hold_connection(proxy, host):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", proxy.https_port), timeout=30)
    return ctx.wrap_socket(raw, server_hostname=host)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--table", required=True, help="a routes.json with TLS hosts")
    ap.add_argument("--gens", type=int, default=3)
    a = ap.parse_args()
    pu.PROXY_BIN = os.path.join(os.path.abspath(a.build), "weir-proxy")
    with open(a.table) as f:
        table = json.load(f)
    work = tempfile.mkdtemp(prefix="weir-reload-rss-")
    routes = os.path.join(work, "routes")
    os.makedirs(routes)
    shutil.copy(a.table, os.path.join(routes, "routes.json"))
    proxy = pu.Proxy(routes, os.path.join(work, "proxy.log"), workers=1)
    held = []
    try:
        t0 = time.monotonic()
        proxy.wait_ready(600)
        gen = int(generation(proxy))
        print(f"{os.path.basename(pu.PROXY_BIN)} {a.build}: {len(table['hosts'])} hosts, "
              f"{len(table.get('certs', []))} certificates; first load served after "
              f"{time.monotonic() - t0:.2f} s, RSS {pu.rss_tree_kb(proxy.pid)} KiB")
        for g in range(1, a.gens + 1):
            host = table["hosts"][g % len(table["hosts"])]
            held.append(hold_connection(proxy, host["name"]))
            c = host["cert"]
            table["certs"][c]["cert_pem"], table["certs"][c]["key_pem"] = \
                fresh_cert(host["name"])
            table["generation"] = gen + g
            pu.write_table(routes, table)
            t = time.monotonic()
            while generation(proxy) != gen + g:
                if time.monotonic() - t > 600:
                    raise SystemExit(f"generation {gen + g} never served:\n{proxy.log_tail()}")
                time.sleep(0.005)
            took = time.monotonic() - t
            time.sleep(0.5)  # let the reload thread's transient memory settle
            print(f"reload {g} (one certificate changed): served after {took:.2f} s, RSS "
                  f"{pu.rss_tree_kb(proxy.pid)} KiB with {g + 1} generations alive")
        for s in held:
            s.close()
        held = []
        time.sleep(1.0)
        # a request lets the worker drop its view of old tables
        pu.get(proxy.http_port, "/")
        time.sleep(0.5)
        print(f"connections closed: RSS {pu.rss_tree_kb(proxy.pid)} KiB")
    finally:
        for s in held:
            s.close()
        proxy.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
