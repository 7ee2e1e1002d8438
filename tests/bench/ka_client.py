#!/usr/bin/env python3
"""tests/bench/ka_client.py - keep-alive connections for the idle-memory benchmark.

  ka_client.py warm PORT CONNS   one GET / on each of CONNS connections, closed again
  ka_client.py idle PORT CONNS   one GET / on each of CONNS connections, all kept open;
                                 prints "connected N" (N answered 200), then holds them
                                 until stdin reaches EOF (or 600 s pass)

Loopback only (127.0.0.1). Requests go one at a time, so the proxy never holds more
than one request in flight: what stays in its RSS is the cost of idle connections.
"""
import select
import socket
import sys


def one_request(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise OSError("closed before the response head")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            raise OSError("closed in the response body")
        body += chunk
    return s, status


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("warm", "idle"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    mode, port, conns = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    kept, ok, err = [], 0, ""
    for _ in range(conns):
        try:
            s, status = one_request(port)
        except OSError as e:
            err = str(e)
            break
        ok += status == 200
        if mode == "idle":
            kept.append(s)
        else:
            s.close()
    if err:
        print(f"stopped after {ok}: {err}", flush=True)
    print(f"connected {ok}", flush=True)
    if mode == "idle":
        select.select([sys.stdin], [], [], 600)
        for s in kept:
            s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
