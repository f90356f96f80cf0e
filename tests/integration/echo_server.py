"""Echo backends for the integration tests: one process, one listener per NAME=HOST:PORT argument.

Every HTTP request gets a JSON reply saying which backend answered and what it received (method, path,
Host, headers, body length). `headers` has one value per name (the last); `header_list` every header line
as [name, value] in the order received. An Upgrade: websocket request gets a WebSocket that echoes text frames,
prefixed with the backend's name. Prints "ready" on stdout once every listener is bound.

With ECHO_TLS_CERT and ECHO_TLS_KEY (PEM files) in the environment every listener speaks TLS, and the
reply also says which SNI name the client sent, the subject of its certificate (asked for, and
checked against ECHO_TLS_CLIENT_CA when set), and the TLS version and cipher.
"""
import os
import ssl
import base64
import hashlib
import http.server
import json
import socket
import socketserver
import struct
import sys
import threading
import time
import urllib.parse

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def make_handler(name):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; with Nagle on, the body waits for the ACK of the
        # headers, which nginx delays by up to 40 ms on a keep-alive connection. Real servers set
        # TCP_NODELAY (nginx itself does), so the test pods do too.
        disable_nagle_algorithm = True

        def log_message(self, *args):
            pass

        def reply(self):
            query = behaviour_query(self.path)
            if self.path.startswith(SEEN_PATH):
                self.answer_seen()
                return
            body = self.read_body(query)
            if self.headers.get("Upgrade", "").lower() == "websocket":
                self.websocket()
                return
            if self.path.startswith(CONTROL_PREFIX):
                self.control()
                return
            if self.misbehave(name, query, body):
                return
            status, delay = controls(name, self.headers)
            if "status" in query and applies(name, query):
                status = int(query["status"])
            received = {
                "name": name,
                "method": self.command,
                "proto": self.request_version,
                "path": self.path,
                "host": self.headers.get("Host"),
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "header_list": [[k, v] for k, v in self.headers.items()],
                "body_length": len(body),
                "peer": list(self.client_address[:2]),
                "sni": getattr(self.connection, "sni", None),
                "client_subject": client_subject(self.connection),
                "tls": tls_parameters(self.connection),
            }
            remember(name, received)
            if delay:
                time.sleep(delay)
            data = json.dumps(received).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Backend", name)
            for header in respond_headers(self.path):
                self.send_header(*header)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = reply

        def control(self):
            data = json.dumps(recorded(name)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def websocket(self):
            key = self.headers.get("Sec-WebSocket-Key", "")
            accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", accept)
            self.end_headers()
            self.wfile.flush()
            while True:
                frame = read_frame(self.rfile)
                if frame is None:
                    break
                opcode, payload = frame
                if opcode == 8:
                    write_frame(self.wfile, 8, payload[:2])
                    break
                if opcode == 9:
                    write_frame(self.wfile, 10, payload)
                elif opcode in (1, 2):
                    write_frame(self.wfile, opcode, name.encode() + b":" + payload)
            self.close_connection = True

        # ---- query-driven behaviour (see the block below make_handler) ----

        def read_body(self, query):
            """The request body, Content-Length or chunked, read in pieces; with ?record=ID, how much of it
            has arrived so far is kept for GET /_echo/seen/ID while it is read."""
            record = query.get("record")
            if record is not None:
                seen_update(record, requests=1)
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                body = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return body
                    body += self.read_piece(size, record)
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.read_piece(length, record) if length else b""

        def read_piece(self, length, record):
            data = b""
            while len(data) < length:
                piece = self.rfile.read1(min(65536, length - len(data)))
                if not piece:
                    break
                data += piece
                if record is not None:
                    seen_update(record, body_bytes=len(piece))
            return data

        def answer_seen(self):
            data = json.dumps(SEEN.get(self.path[len(SEEN_PATH):], {})).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def misbehave(self, name, query, body):
            """?delay=S waits S seconds before answering; ?stream=N answers in N pieces, ?interval=S apart
            (True: answered here)."""
            if not applies(name, query):
                return False
            if "fail_first" in query and failing(query):
                if query.get("fail_with", "500") == "reset":
                    # A TCP reset instead of an answer: what a crashing server gives a proxy.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                else:
                    code = query.get("fail_with", "500")
                    if code == "hang":  # too slow: 500 after ?hang=S seconds (default 3)
                        time.sleep(float(query.get("hang", 3)))
                        code = "500"
                    self.send_response(int(code))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                return True
            if "delay" in query:
                time.sleep(float(query["delay"]))
            if "stream" not in query:
                return False
            pieces = [f"chunk {i} from {name}\n".encode() for i in range(int(query["stream"]))]
            self.send_response(int(query.get("status", 200)))
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(sum(len(p) for p in pieces)))
            self.end_headers()
            for i, piece in enumerate(pieces):
                if i:
                    time.sleep(float(query.get("interval", 0.5)))
                self.wfile.write(piece)
                self.wfile.flush()
            return True

    return Handler


# ---- Test controls (added for custom-http-errors and mirror-target; backwards compatible) ----------
#
# X-Echo-Status: <status> or <service>=<status>: answer with that status (the body stays the JSON);
#     with <service>=, only the listeners of that Service (names "<service>/<pod>") do.
# X-Echo-Delay: <seconds> or <service>=<seconds>: wait that long before answering (the request is
#     recorded first).
# GET /_echo/requests: the last 200 requests this listener received (the JSON each got), oldest first;
#     not recorded itself. Mirrors and error backends are checked with it.

CONTROL_PREFIX = "/_echo/"
RECORD_LIMIT = 200
_records = {}
_records_lock = threading.Lock()


def _control_value(name, header):
    """The value of a control header for the listener `name`, or None."""
    if not header:
        return None
    service = name.split("/")[0]
    for item in header.split(","):
        item = item.strip()
        if "=" in item:
            target, value = item.split("=", 1)
            if target.strip() == service:
                return value.strip()
        else:
            return item
    return None


def controls(name, headers):
    """(status, delay in seconds) this listener answers a request with."""
    status = _control_value(name, headers.get("X-Echo-Status"))
    delay = _control_value(name, headers.get("X-Echo-Delay"))
    return (int(status) if status else 200), (float(delay) if delay else 0.0)


def remember(name, received):
    with _records_lock:
        records = _records.setdefault(name, [])
        records.append(dict(received, time=time.time()))
        del records[:-RECORD_LIMIT]


def recorded(name):
    with _records_lock:
        return list(_records.get(name, []))


# ---- query-driven behaviour --------------------------------------------------------------------------
# Only requests whose query asks for it behave differently; every other request is answered as before.
#   ?status=CODE        answer with CODE instead of 200 (the JSON body stays)
#   ?delay=SECONDS      wait before answering
#   ?stream=N           answer in N writes of "chunk I from NAME\n" (with Content-Length; no JSON and
#                       no X-Backend header),
#   &interval=SECONDS   this far apart (default 0.5)
#   ?only=NAME          status/delay/stream only in the listener of this name (or pod name: after the '/')
#   ?record=ID          count the request and the body bytes as they arrive; GET /_echo/seen/ID (sent to
#                       the pod directly) answers {"requests": n, "body_bytes": n} for this listener's process
#   ?respond_header=N:V the reply carries the header N: V too (repeatable, in order)
#   ?fail_first=N&key=K the first N requests with key K (counted per process) fail: answered with
#   &fail_with=CODE     CODE (default 500), with a TCP reset when CODE is "reset", or with 500 after
#                       ?hang=S seconds (default 3) when CODE is "hang"; later ones are not
# Request bodies may be chunked (nginx streams them so with proxy_request_buffering off).

SEEN_PATH = "/_echo/seen/"
SEEN = {}
SEEN_LOCK = threading.Lock()


FAILED = {}
FAILED_LOCK = threading.Lock()


def failing(query):
    """Whether this request of ?fail_first=N&key=K is one of the first N of its key (and counts it)."""
    with FAILED_LOCK:
        seen = FAILED.get(query.get("key", ""), 0)
        FAILED[query.get("key", "")] = seen + 1
    return seen < int(query["fail_first"])


def behaviour_query(path):
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(path).query))


def respond_headers(path):
    """The (name, value) headers ?respond_header=NAME:VALUE asks the reply to carry, in order."""
    pairs = urllib.parse.parse_qsl(urllib.parse.urlsplit(path).query)
    return [tuple(v.split(":", 1)) for k, v in pairs if k == "respond_header" and ":" in v]


def applies(name, query):
    return "only" not in query or query["only"] in (name, name.split("/")[-1])


def seen_update(record, requests=0, body_bytes=0):
    with SEEN_LOCK:
        seen = SEEN.setdefault(record, {"requests": 0, "body_bytes": 0})
        seen["requests"] += requests
        seen["body_bytes"] += body_bytes


def read_exact(stream, n):
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def read_frame(stream):
    head = read_exact(stream, 2)
    if head is None:
        return None
    opcode = head[0] & 0x0F
    masked = head[1] & 0x80
    length = head[1] & 0x7F
    if length == 126:
        length = struct.unpack("!H", read_exact(stream, 2))[0]
    elif length == 127:
        length = struct.unpack("!Q", read_exact(stream, 8))[0]
    mask = read_exact(stream, 4) if masked else b"\0\0\0\0"
    payload = read_exact(stream, length) if length else b""
    if payload is None or mask is None:
        return None
    return opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def write_frame(stream, opcode, payload):
    header = bytes([0x80 | opcode])
    if len(payload) < 126:
        header += bytes([len(payload)])
    elif len(payload) < 65536:
        header += bytes([126]) + struct.pack("!H", len(payload))
    else:
        header += bytes([127]) + struct.pack("!Q", len(payload))
    stream.write(header + payload)
    stream.flush()


def client_subject(connection):
    """The CN of the client's certificate on a TLS connection, else None."""
    cert = connection.getpeercert() if isinstance(connection, ssl.SSLSocket) else None
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return None


def tls_parameters(connection):
    """[TLS version, cipher] of a TLS connection, else None."""
    if not isinstance(connection, ssl.SSLSocket):
        return None
    return [connection.version(), connection.cipher()[0]]


def tls_context():
    """The TLS server context from ECHO_TLS_* (None: plain HTTP)."""
    if not os.environ.get("ECHO_TLS_CERT"):
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.environ["ECHO_TLS_CERT"], os.environ["ECHO_TLS_KEY"])
    if os.environ.get("ECHO_TLS_CLIENT_CA"):
        context.load_verify_locations(os.environ["ECHO_TLS_CLIENT_CA"])
        context.verify_mode = ssl.CERT_OPTIONAL

    def remember_sni(sock, name, _context):
        sock.sni = name

    context.sni_callback = remember_sni
    return context


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512
    tls = None

    def get_request(self):
        sock, address = self.socket.accept()
        if self.tls is not None:
            # The handshake runs in the request's thread (finish_request), not in the accept loop.
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def finish_request(self, request, client_address):
        if isinstance(request, ssl.SSLSocket):
            try:
                request.do_handshake()
            except (ssl.SSLError, OSError):
                return  # a client that refused our certificate: what the tests check, not an error here
        super().finish_request(request, client_address)


class Server6(Server):
    address_family = socket.AF_INET6


def main():
    servers = []
    Server.tls = tls_context()
    for arg in sys.argv[1:]:
        name, address = arg.split("=", 1)
        host, port = address.rsplit(":", 1)
        host = host.strip("[]")
        cls = Server6 if ":" in host else Server
        servers.append(cls((host, int(port)), make_handler(name)))
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print("ready", flush=True)
    sys.stdin.read()  # until the test closes our stdin (or dies)


if __name__ == "__main__":
    main()
