"""An auth service for the external-auth e2e tests, like oauth2-proxy's /oauth2/auth: run in a pod's
network namespace as `auth_server.py ADDRESS PORT GARBAGE_PORT`; prints "ready" once it listens.

Any path but the ones below checks the request's credentials: a cookie session=good or "Authorization:
Bearer good" gets 200 with X-Auth-Request-User/-Email and a Set-Cookie; the cookie session=forbidden
gets 403; anything else 401 with WWW-Authenticate and a Set-Cookie of its own.
  /slow...            waits 30 s before answering (longer than nginx's auth timeout)
  /nocookie...        answers as above without Set-Cookie (nginx caches no answer that sets one)
  GET /_auth/requests what every other request carried (method, path, headers, body length), oldest first
  GET /_auth/reset    forgets them
GARBAGE_PORT answers every connection with bytes that are not HTTP, then closes it."""
import http.server
import json
import socket
import socketserver
import sys
import threading
import time

_requests = []
_lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def answer(self, status, headers=(), body=b""):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        if self.path == "/_auth/requests":
            with _lock:
                body = json.dumps(_requests).encode()
            return self.answer(200, [("Content-Type", "application/json")], body)
        if self.path == "/_auth/reset":
            with _lock:
                _requests.clear()
            return self.answer(200)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with _lock:
            _requests.append({"method": self.command, "path": self.path, "body_length": len(body),
                              "headers": {k.lower(): v for k, v in self.headers.items()}})
        if self.path.startswith("/slow"):
            time.sleep(30)
        cookies = self.headers.get("Cookie") or ""
        authorization = self.headers.get("Authorization") or ""
        cookie = [] if self.path.startswith("/nocookie") else [("Set-Cookie", "refreshed=1; Path=/")]
        if "session=forbidden" in cookies:
            return self.answer(403, body=b"forbidden\n")
        if "session=good" in cookies or authorization == "Bearer good":
            return self.answer(200, [("X-Auth-Request-User", "alice"), ("X-Auth-Request-Email", "alice@example.com"),
                                     ("X-Not-Listed", "secret"), *cookie])
        if "session=private" in cookies:
            return self.answer(200, [("X-Auth-Request-User", "bob"), ("Cache-Control", "private")])
        cookie = [] if self.path.startswith("/nocookie") else [("Set-Cookie", "csrf=abc; Path=/")]
        return self.answer(401, [("WWW-Authenticate", 'Bearer realm="test"'), *cookie], b"who are you\n")

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = handle_any


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def garbage(address, port):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((address, port))
    listener.listen(64)

    def serve():
        while True:
            conn, _ = listener.accept()
            try:
                conn.recv(65536)
                conn.sendall(b"\x00\x01garbage, not HTTP at all\r\n\r\n")
            finally:
                conn.close()

    threading.Thread(target=serve, daemon=True).start()


def main():
    address, port, garbage_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    server = Server((address, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    garbage(address, garbage_port)
    print("ready", flush=True)
    sys.stdin.read()  # runs until its stdin closes


if __name__ == "__main__":
    main()
