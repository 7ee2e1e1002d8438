"""A page for the browser test of HTTP/2 through weir: HTML, small JSON answers and a
WebSocket echo from one aiohttp server.

  python3 h2_page.py --port 9300

Prints "h2_page ready on 127.0.0.1:PORT". GET /page: an HTML page whose script fetches
/data/1../data/6 at once, opens a WebSocket to /ws on the same origin, sends "ping" and waits
for "echo:ping", fetches /data/7 while the socket is open, then sets window.result to
"ok <n>" (n: the JSON answers read) or "error <why>"; the socket stays open until
window.closeSocket() is called. GET /data/N: {"n": N}. /ws: each text message comes back
as "echo:<message>".
"""

import argparse

from aiohttp import web

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>weir h2</title></head><body>
<p id="status">running</p>
<script>
window.result = null;
async function run() {
  const got = await Promise.all([1, 2, 3, 4, 5, 6].map(
      n => fetch('/data/' + n).then(r => r.json())));
  const ws = new WebSocket('wss://' + location.host + '/ws');
  window.closeSocket = () => ws.close();
  const echo = await new Promise((resolve, reject) => {
    ws.onopen = () => ws.send('ping');
    ws.onmessage = e => resolve(e.data);
    ws.onerror = () => reject(new Error('websocket error'));
    setTimeout(() => reject(new Error('websocket timeout')), 10000);
  });
  if (echo !== 'echo:ping') throw new Error('bad echo ' + echo);
  const more = await fetch('/data/7').then(r => r.json());
  return got.length + (more.n === 7 ? 1 : 0);
}
run().then(n => { window.result = 'ok ' + n; },
           e => { window.result = 'error ' + e.message; })
     .finally(() => { document.getElementById('status').textContent = window.result; });
</script></body></html>
"""


async def page(request):
    return web.Response(text=PAGE, content_type="text/html")


async def data(request):
    return web.json_response({"n": int(request.match_info["n"])})


async def ws(request):
    sock = web.WebSocketResponse()
    await sock.prepare(request)
    async for msg in sock:
        if msg.type == web.WSMsgType.TEXT:
            await sock.send_str("echo:" + msg.data)
    return sock


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    a = ap.parse_args()
    app = web.Application()
    app.router.add_get("/page", page)
    app.router.add_get("/data/{n}", data)
    app.router.add_get("/ws", ws)
    web.run_app(app, host=a.host, port=a.port, print=lambda *_: print(
        f"h2_page ready on {a.host}:{a.port}", flush=True), handle_signals=True)


if __name__ == "__main__":
    main()
