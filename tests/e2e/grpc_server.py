"""A gRPC backend for the e2e tests (Debian's python3-grpcio; generic handlers, so no protoc): service
kroute.Echo with a unary method Echo and a server-streaming method Count, both on raw bytes.

Usage: grpc_server.py NAME HOST:PORT [CERT KEY]. With CERT and KEY (PEM files) it speaks TLS (GRPCS),
else h2c (GRPC). Echo answers JSON: the backend's name, the request and its metadata.
Count answers the request's number of messages, "NAME:i". Prints "ready" once it listens; runs until
its stdin closes.
"""
import json
import sys
from concurrent import futures

import grpc


def main() -> None:
    name, address = sys.argv[1], sys.argv[2]

    def echo(request: bytes, context: grpc.ServicerContext) -> bytes:
        return json.dumps({
            "name": name,
            "request": request.decode(),
            "metadata": {k: v for k, v in context.invocation_metadata() if isinstance(v, str)},
        }).encode()

    def count(request: bytes, context: grpc.ServicerContext):
        for i in range(int(request.decode())):
            yield f"{name}:{i}".encode()

    handler = grpc.method_handlers_generic_handler("kroute.Echo", {
        "Echo": grpc.unary_unary_rpc_method_handler(echo),
        "Count": grpc.unary_stream_rpc_method_handler(count),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), handlers=[handler])
    if len(sys.argv) > 4:
        with open(sys.argv[3], "rb") as c, open(sys.argv[4], "rb") as k:
            server.add_secure_port(address, grpc.ssl_server_credentials([(k.read(), c.read())]))
    else:
        server.add_insecure_port(address)
    server.start()
    print("ready", flush=True)
    sys.stdin.read()
    server.stop(0)


if __name__ == "__main__":
    main()
