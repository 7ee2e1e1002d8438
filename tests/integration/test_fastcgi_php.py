"""A real FastCGI server behind weir-proxy: Debian's php-fpm (package php-fpm, installed by
scripts/install-deps.sh) runs a pool on a loopback port with a temporary document root, and a
route with backend_protocol FCGI, fastcgi-index index.php and SCRIPT_FILENAME built from
$fastcgi_script_name sends the requests to it. What PHP sees ($_SERVER, $_GET, $_POST,
php://input) and what it answers (status, headers, cookies, large bodies, its 404 and its 500)
are checked as a client gets them."""

import concurrent.futures
import glob
import hashlib
import os
import socket
import subprocess
import time

import pytest

import proxyutil as pu
import pattern

HOST = "php.test"

INDEX_PHP = r"""<?php
$in = file_get_contents('php://input');
if (isset($_GET['status'])) {
    http_response_code((int)$_GET['status']);
    header('X-App: php');
    setcookie('sess', 'abc123', ['path' => '/', 'httponly' => true]);
    setcookie('theme', 'dark');
}
header('Content-Type: application/json');
$keys = ['REQUEST_METHOD', 'QUERY_STRING', 'REQUEST_URI', 'SCRIPT_NAME', 'SCRIPT_FILENAME',
         'DOCUMENT_URI', 'HTTP_HOST', 'CONTENT_TYPE', 'CONTENT_LENGTH', 'SERVER_PROTOCOL',
         'REMOTE_ADDR', 'SERVER_PORT', 'SERVER_NAME', 'GATEWAY_INTERFACE', 'PHP_SELF',
         'HTTP_X_TEST', 'APP_ENV'];
$server = [];
foreach ($keys as $k) {
    $server[$k] = $_SERVER[$k] ?? null;
}
echo json_encode(['server' => $server, 'get' => $_GET, 'post' => $_POST,
                  'input_len' => strlen($in), 'input_md5' => md5($in)]);
"""

# the body pattern of tests/backends/pattern.py: byte i is i % 251
BIG_PHP = r"""<?php
header('Content-Type: application/octet-stream');
$n = (int)$_GET['n'];
$period = '';
for ($i = 0; $i < 251; $i++) {
    $period .= chr($i);
}
$block = str_repeat($period, 400);
for ($off = 0; $off < $n; $off += strlen($block)) {
    echo substr($block, 0, min(strlen($block), $n - $off));
}
"""

FATAL_PHP = "<?php\nundefined_function_for_the_test();\n"


def php_fpm_binary():
    found = sorted(glob.glob("/usr/sbin/php-fpm*"))
    if not found:
        pytest.fail("php-fpm not found (/usr/sbin/php-fpm*): install the Debian package "
                    "php-fpm (scripts/install-deps.sh does)", pytrace=False)
    return found[-1]


def wait_port(port, proc, log_path, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with open(log_path) as f:
                ready = "ready to handle connections" in f.read()
        except FileNotFoundError:
            ready = False
        if ready:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                pass
        time.sleep(0.05)
    pu.stop_process(proc)
    logs = ""
    for path in (log_path, log_path + ".out"):
        if os.path.exists(path):
            with open(path, errors="replace") as f:
                logs += f"--- {path}\n{f.read()[-2000:]}"
    raise RuntimeError(f"php-fpm did not get ready on 127.0.0.1:{port}\n{logs}")


@pytest.fixture(scope="module")
def php(tmp_path_factory):
    """php-fpm in the foreground: (port, document root, dir of its logs)."""
    binary = php_fpm_binary()
    d = tmp_path_factory.mktemp("php")
    root = d / "root"
    root.mkdir()
    (root / "index.php").write_text(INDEX_PHP)
    (root / "big.php").write_text(BIG_PHP)
    (root / "fatal.php").write_text(FATAL_PHP)
    (root / "sub").mkdir()
    (root / "sub" / "index.php").write_text(INDEX_PHP)
    port = pu.free_port()
    log = str(d / "php-fpm.log")
    as_root = os.geteuid() == 0
    conf = d / "php-fpm.conf"
    conf.write_text(f"""[global]
pid = {d}/php-fpm.pid
error_log = {log}
daemonize = no

[app]
listen = 127.0.0.1:{port}
{"user = root" if as_root else ""}
pm = static
pm.max_children = 2
catch_workers_output = yes
clear_env = yes
php_admin_flag[display_errors] = off
php_admin_flag[log_errors] = on
php_admin_value[error_log] = {d}/php-errors.log
""")
    cmd = [binary, "-F", "-n", "-y", str(conf), "-p", str(d)] + (["-R"] if as_root else [])
    with open(log + ".out", "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        wait_port(port, proc, log)
        yield port, str(root), str(d)
    finally:
        pu.stop_process(proc)


@pytest.fixture(scope="module")
def pproxy(proxy_bin, php, tmp_path_factory):
    port, root, _ = php
    d = tmp_path_factory.mktemp("php-proxy")
    routes = d / "routes"
    routes.mkdir()
    policy = {"backend_protocol": "FCGI", "body_limit": 0,
              "fastcgi": {"index": "index.php",
                          "params": [{"name": "SCRIPT_FILENAME",
                                      "value": root + "$fastcgi_script_name"},
                                     {"name": "APP_ENV", "value": "php-test"}]}}
    pu.write_table(str(routes), {
        "version": 1,
        "generation": 1,
        "hosts": [{"name": "", "routes": [
            {"path": "/", "match": "prefix", "backend": 0, "source": "php/app",
             "policy": policy}]}],
        "backends": [{"name": "php/fpm:9000",
                      "endpoints": [{"address": "127.0.0.1", "port": port}]}],
    })
    p = pu.Proxy(str(routes), str(d / "proxy.log"), workers=2)
    try:
        p.wait_ready()
        yield p
    finally:
        p.stop()


def get(p, path, extra=""):
    return pu.get(p.http_port, path, host=HOST, extra=extra)


def test_get_script_with_query(pproxy, php):
    _, root, _ = php
    r = get(pproxy, "/index.php?x=1&y=two", "X-Test: hello\r\n")
    assert r.status == 200, r
    assert r.get("Content-Type") == "application/json", r
    got = r.json()
    s = got["server"]
    assert s["REQUEST_METHOD"] == "GET" and s["QUERY_STRING"] == "x=1&y=two", s
    assert s["REQUEST_URI"] == "/index.php?x=1&y=two", s
    assert s["SCRIPT_NAME"] == "/index.php" and s["PHP_SELF"] == "/index.php", s
    assert s["SCRIPT_FILENAME"] == root + "/index.php", s
    assert s["HTTP_HOST"] == HOST and s["SERVER_NAME"] == HOST, s
    assert s["HTTP_X_TEST"] == "hello" and s["APP_ENV"] == "php-test", s
    assert s["SERVER_PORT"] == str(pproxy.http_port) and s["REMOTE_ADDR"] == "127.0.0.1", s
    assert s["GATEWAY_INTERFACE"] == "CGI/1.1" and s["SERVER_PROTOCOL"] == "HTTP/1.1", s
    assert got["get"] == {"x": "1", "y": "two"}, got
    assert got["post"] == [] and got["input_len"] == 0, got


def test_directory_gets_fastcgi_index(pproxy, php):
    _, root, _ = php
    for path, script in (("/", "/index.php"), ("/sub/", "/sub/index.php"),
                         ("/?q=3", "/index.php")):
        r = get(pproxy, path)
        assert r.status == 200, (path, r)
        s = r.json()["server"]
        assert s["SCRIPT_NAME"] == script, (path, s)
        assert s["SCRIPT_FILENAME"] == root + script, (path, s)


def test_post_form_is_parsed(pproxy):
    body = b"name=weir&lang=c&list%5B%5D=1&list%5B%5D=2"
    r = pu.request(pproxy.http_port,
                   f"POST /index.php HTTP/1.1\r\nHost: {HOST}\r\n"
                   f"Content-Type: application/x-www-form-urlencoded\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    assert r.status == 200, r
    got = r.json()
    assert got["post"] == {"name": "weir", "lang": "c", "list": ["1", "2"]}, got
    assert got["input_len"] == len(body), got
    assert got["input_md5"] == hashlib.md5(body).hexdigest(), got
    s = got["server"]
    assert s["REQUEST_METHOD"] == "POST" and s["CONTENT_LENGTH"] == str(len(body)), s
    assert s["CONTENT_TYPE"] == "application/x-www-form-urlencoded", s


def test_post_large_raw_body(pproxy):
    body = pattern.chunk(3, 1 << 20)
    r = pu.request(pproxy.http_port,
                   f"POST /index.php HTTP/1.1\r\nHost: {HOST}\r\n"
                   f"Content-Type: application/octet-stream\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n".encode() + body, timeout=30)
    assert r.status == 200, r
    got = r.json()
    assert got["input_len"] == len(body), got
    assert got["input_md5"] == hashlib.md5(body).hexdigest(), got


def test_post_chunked_body_reaches_php(pproxy):
    """PHP reads CONTENT_LENGTH bytes of STDIN: a chunked request body needs its length sent
    (nginx reads the whole body first and sends CONTENT_LENGTH)."""
    parts = [b"a=1&", b"b=" + b"x" * 70000]
    wire = b"".join(f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in parts) + b"0\r\n\r\n"
    r = pu.request(pproxy.http_port,
                   f"POST /index.php HTTP/1.1\r\nHost: {HOST}\r\n"
                   f"Content-Type: application/x-www-form-urlencoded\r\n"
                   f"Transfer-Encoding: chunked\r\n\r\n".encode() + wire)
    assert r.status == 200, r
    got = r.json()
    body = b"".join(parts)
    assert got["input_len"] == len(body), got["server"]
    assert got["input_md5"] == hashlib.md5(body).hexdigest(), got["server"]
    assert got["post"]["a"] == "1" and len(got["post"]["b"]) == 70000, got["server"]


def test_status_header_and_cookie_from_php(pproxy):
    r = get(pproxy, "/index.php?status=201")
    assert r.status == 201, r
    assert r.get("X-App") == "php", r
    cookies = r.get_all("Set-Cookie")
    assert len(cookies) == 2 and cookies[0].startswith("sess=abc123"), r
    assert cookies[1] == "theme=dark", r
    assert "httponly" in cookies[0].lower() and "path=/" in cookies[0].lower(), r
    assert r.json()["get"] == {"status": "201"}, r


def test_large_php_output(pproxy):
    n = 2000000
    r, total, digest = pu.get_digest(pproxy.http_port, f"/big.php?n={n}", HOST)
    assert r.status == 200, r
    assert total == n
    assert digest == pattern.sha256(n)


def test_fatal_error_is_php_500(pproxy, php):
    r = get(pproxy, "/fatal.php")
    assert r.status == 500, r
    with open(os.path.join(php[2], "php-errors.log"), errors="replace") as f:
        assert "undefined_function_for_the_test" in f.read()


def test_missing_script_is_php_404(pproxy):
    r = get(pproxy, "/missing.php")
    assert r.status == 404, r
    assert r.body == b"File not found.\n", r


def test_head_request(pproxy):
    c = pu.RawConn(pproxy.http_port)
    try:
        c.send(f"HEAD /index.php?h=1 HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        r = c.read_response("HEAD")
        assert r.status == 200 and r.body == b"", r
        c.send(f"GET /index.php?after=1 HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        r2 = c.read_response()
        assert r2.status == 200 and r2.json()["get"] == {"after": "1"}, r2
    finally:
        c.close()


def test_concurrent_requests_on_two_children(pproxy):
    def one(i):
        r = get(pproxy, f"/index.php?i={i}")
        assert r.status == 200, r
        assert r.json()["get"] == {"i": str(i)}, r
        return i

    with concurrent.futures.ThreadPoolExecutor(20) as ex:
        assert sorted(ex.map(one, range(40))) == list(range(40))
