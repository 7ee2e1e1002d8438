#!/usr/bin/env python3
"""tests/bench/emfile_client.py - the client side of tests/bench/emfile.sh (loopback only).

    emfile_client.py PORT PROXY_PID LOG KEEP FLOOD HOLD_S

Drives a weir-proxy that runs out of file descriptors and prints what a user sees:
  1. KEEP keep-alive connections each get one answered GET (the "existing" connections);
  2. FLOOD more connections are opened and left silent: more than the proxy's file limit,
     so it accepts until accept() fails with EMFILE and the rest wait in the kernel backlog;
  3. for HOLD_S seconds GETs go round the existing connections (one at a time); then the
     flood is held HOLD_S / 2 more seconds with no request at all;
  4. all but the last RELEASE_KEEP flood connections close; each remaining one, accepted
     late, sends a GET, and so does a brand-new connection.
Counted from outside the proxy: the log lines that mention accept (LOG), its CPU time
(utime + stime of PROXY_PID, all threads, from /proc) and open descriptors (/proc/PID/fd).
Exit status 0 when every request was answered with 200, 1 otherwise.
"""
import os
import socket
import sys
import time

RELEASE_KEEP = 50
TIMEOUT_S = 5.0
REQUEST = b"GET / HTTP/1.1\r\nHost: emfile.test\r\n\r\n"


def cpu_s(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class AcceptLines:
    """Counts the log's lines that mention accept, up to the log's size at each call (the
    count itself may take seconds when the proxy logs at full speed: it is not timed)."""

    def __init__(self, log):
        self.f, self.done, self.count, self.tail = open(log, "rb"), 0, 0, b""

    def upto(self, size):
        while self.done < size:
            data = self.tail + self.f.read(min(size - self.done, 1 << 24))
            if len(data) == len(self.tail):
                break
            self.done += len(data) - len(self.tail)
            lines = data.split(b"\n")
            self.tail = lines.pop()
            self.count += sum(1 for line in lines if b"accept" in line)
        return self.count


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def get(s):
    """One GET on s; the status code, or a short reason when there is none."""
    try:
        s.settimeout(TIMEOUT_S)
        s.sendall(REQUEST)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                return "closed"
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            chunk = s.recv(4096)
            if not chunk:
                return "short body"
            body += chunk
        return int(head.split(b" ", 2)[1])
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return e.strerror or str(e)


def tally(results):
    ok = sum(1 for r in results if r == 200)
    other = {}
    for r in results:
        if r != 200:
            other[str(r)] = other.get(str(r), 0) + 1
    return ok, other


def main():
    port, pid, log = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    keep, flood, hold = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
    failed = False

    existing = [connect(port) for _ in range(keep)]
    ok, other = tally([get(s) for s in existing])
    failed |= ok != keep
    print(f"existing connections: {keep}, first GET: {ok} x 200 {other or ''}")
    print(f"proxy descriptors before the flood: {open_fds(pid)}")

    lines = AcceptLines(log)
    lines0 = lines.upto(os.path.getsize(log))
    flood_socks, tflood = [], time.monotonic()
    for _ in range(flood):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        flood_socks.append(s)
    time.sleep(1)
    print(f"flood: {flood} silent connections opened; proxy descriptors now: {open_fds(pid)}")

    t0, cpu0, size1 = time.monotonic(), cpu_s(pid), os.path.getsize(log)
    results, worst = [], 0.0
    while time.monotonic() - t0 < hold:
        for s in existing:
            t = time.monotonic()
            results.append(get(s))
            worst = max(worst, time.monotonic() - t)
    t1, cpu1, size2 = time.monotonic(), cpu_s(pid), os.path.getsize(log)
    lines1, lines2 = lines.upto(size1), lines.upto(size2)
    ok, other = tally(results)
    failed |= ok != len(results)
    print(f"hold with requests: {t1 - t0:.1f} s, GETs on existing connections: {len(results)}, "
          f"200: {ok} {other or ''}, slowest {worst * 1000:.1f} ms")
    print(f"  proxy CPU {cpu1 - cpu0:.2f} s ({(cpu1 - cpu0) * 1e6 / max(len(results), 1):.0f} us "
          f"per request), accept log lines {lines2 - lines1}")
    t2 = time.monotonic()
    time.sleep(max(hold / 2 - (t2 - t1), 0.5))
    t3, cpu2, size3 = time.monotonic(), cpu_s(pid), os.path.getsize(log)
    lines3 = lines.upto(size3)
    print(f"hold without requests: {t3 - t1:.1f} s, proxy CPU {cpu2 - cpu1:.2f} s, "
          f"accept log lines {lines3 - lines2}")
    print(f"accept log lines from the flood to the end of the hold: {lines3 - lines0} "
          f"({(lines3 - lines0) / (t3 - tflood):.1f} a second over {t3 - tflood:.1f} s)")

    for s in flood_socks[:-RELEASE_KEEP]:
        s.close()
    late = flood_socks[-RELEASE_KEEP:]
    t = time.monotonic()
    ok, other = tally([get(s) for s in late])
    failed |= ok != len(late)
    print(f"after closing {flood - RELEASE_KEEP} flood connections: GETs on the last "
          f"{len(late)} (held in the backlog): {ok} x 200 {other or ''} in "
          f"{(time.monotonic() - t) * 1000:.0f} ms")
    fresh = connect(port)
    t = time.monotonic()
    r = get(fresh)
    failed |= r != 200
    print(f"a new connection: GET -> {r} in {(time.monotonic() - t) * 1000:.0f} ms")
    ok, other = tally([get(s) for s in existing])
    failed |= ok != keep
    print(f"existing connections, one more GET each: {ok} x 200 {other or ''}")
    print(f"proxy descriptors at the end: {open_fds(pid)}; accept log lines in all: "
          f"{lines.upto(os.path.getsize(log)) - lines0}")
    for s in existing + late + [fresh]:
        s.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
