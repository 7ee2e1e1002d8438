"""gRPC backend (grpcio, raw bytes, no protobuf): the methods the gRPC tests call.

  python3 grpc_backend.py --port 9200 [--tls CERT KEY]

Prints "grpc_backend ready on 127.0.0.1:PORT" once serving. Methods of service
test.Echo (messages are raw bytes):
  Unary         answers the request; "fail:<text>" aborts with INVALID_ARGUMENT <text>;
                metadata x-sleep-ms sleeps first; the answer's trailing metadata has
                x-trailer: done and the initial metadata x-seen-authority (the :authority),
                x-deadline-left-ms (the time left of the call's deadline, when it has one)
                and every request metadata x-echo-* as it came
  ServerStream  the request is "<count>:<size>": count messages of size bytes each,
                message i filled with the byte i % 256
  Bidi          every message comes back as it is, in order
"""

import argparse
import signal
import threading
import time
from concurrent import futures

import grpc


def authority(context, md) -> str:
    """The call's :authority. grpcio keeps pseudo-headers out of invocation_metadata(): it is
    the host of the call details (a private attribute; empty when grpcio changes it)."""
    if md.get(":authority"):
        return md[":authority"]
    try:
        host = context._rpc_event.call_details.host  # pylint: disable=protected-access
    except AttributeError:
        return ""
    return host.decode(errors="replace") if isinstance(host, bytes) else str(host or "")


def unary(request, context):
    md = dict(context.invocation_metadata())
    ms = int(md.get("x-sleep-ms", "0"))
    if ms:
        time.sleep(ms / 1000)
    if request.startswith(b"fail:"):
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, request[5:].decode())
    initial = [("x-seen-authority", authority(context, md))]
    left = context.time_remaining()
    if left is not None and left < 1e6:  # the client's deadline as the server sees it
        initial.append(("x-deadline-left-ms", str(int(left * 1000))))
    initial += [(k, v) for k, v in context.invocation_metadata() if k.startswith("x-echo-")]
    context.send_initial_metadata(initial)
    context.set_trailing_metadata((("x-trailer", "done"),))
    return request


def server_stream(request, context):
    count, size = (int(x) for x in request.decode().split(":"))
    for i in range(count):
        yield bytes([i % 256]) * size


def bidi(request_iterator, context):
    for msg in request_iterator:
        yield msg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    a = ap.parse_args()
    ident = lambda b: b  # noqa: E731 - raw bytes both ways
    handler = grpc.method_handlers_generic_handler("test.Echo", {
        "Unary": grpc.unary_unary_rpc_method_handler(unary, ident, ident),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream, ident, ident),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi, ident, ident),
    })
    opts = [("grpc.max_receive_message_length", 64 << 20),
            ("grpc.max_send_message_length", 64 << 20)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=opts)
    server.add_generic_rpc_handlers((handler,))
    addr = f"{a.host}:{a.port}"
    if a.tls:
        with open(a.tls[0], "rb") as f:
            cert = f.read()
        with open(a.tls[1], "rb") as f:
            key = f.read()
        server.add_secure_port(addr, grpc.ssl_server_credentials(((key, cert),)))
    else:
        server.add_insecure_port(addr)
    server.start()
    print(f"grpc_backend ready on {addr}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop(0)


if __name__ == "__main__":
    main()
