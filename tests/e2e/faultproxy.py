"""A TCP proxy that injects network faults between a client (kroute-agent) and a real server (kube-apiserver).

Modes, switched at any time with set_mode():
- "forward":   pass bytes both ways. A connection whose upstream refuses is reset, as the server's own
               port would do.
- "refuse":    every new connection is reset right after it is accepted, and every open one is reset when
               the mode begins: a server that is gone, with its port closed.
- "blackhole": new connections are accepted and held; nothing is read or forwarded on them nor on the ones
               already open. The client sees a peer that never answers (a network partition): TCP itself
               stays up, so only the client's own timeouts and probes can notice. Back in "forward", held
               and paused connections carry on with whatever was sent meanwhile, as after a healed network.

Every accepted connection is counted with the time and mode (`attempts`), which is how tests see whether a
client retries in a tight loop or with backoff. One selector thread does all the work; connections and
buffers are bounded (`max_connections`, `BUFFER` bytes per direction), and stop() closes everything.

HttpFaultProxy works one level up, on requests: the client speaks plain HTTP to it and it forwards each
request over HTTPS with credentials of its own (the test cluster's admin), except that in a fault mode it
answers a request for a Lease itself with what a broken server or a proxy in between might send:
- "bad-lease":  200 with a Lease whose spec is the number 5;
- "deep-error": 500 with a JSON body nested 10,000 arrays deep.
"""

from __future__ import annotations

import errno
import http.client
import http.server
import json
import selectors
import socket
import ssl
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field

FORWARD = "forward"
REFUSE = "refuse"
BLACKHOLE = "blackhole"
MODES = (FORWARD, REFUSE, BLACKHOLE)

BUFFER = 1 << 20  # bytes held per direction before the proxy stops reading that side


def _reset(sock: socket.socket) -> None:
    """Close with an RST rather than a FIN (SO_LINGER 0), as a closed port or a dead peer answers."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


@dataclass
class _Pipe:
    """One direction of a connection: what was read from `source` and is not yet written to `sink`."""
    source: socket.socket
    sink: socket.socket
    buffer: bytearray = field(default_factory=bytearray)
    eof: bool = False  # source said FIN; once the buffer drains, the sink gets one too

    @property
    def done(self) -> bool:
        return self.eof and not self.buffer


class _Connection:
    def __init__(self, client: socket.socket):
        self.client = client
        self.upstream: socket.socket | None = None
        self.connecting = False
        self.pipes: list[_Pipe] = []

    def sockets(self) -> list[socket.socket]:
        return [s for s in (self.client, self.upstream) if s is not None]


class FaultProxy:
    def __init__(self, upstream: tuple[str, int], host: str = "127.0.0.1", max_connections: int = 256):
        self.upstream = upstream
        self.max_connections = max_connections
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, 0))
        self._listener.listen(128)
        self._listener.setblocking(False)
        self.host, self.port = self._listener.getsockname()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._lock = threading.Lock()
        self._mode = FORWARD
        self._applied_mode = FORWARD
        self._stop = False
        self._connections: list[_Connection] = []
        self._attempts: deque[tuple[float, str]] = deque(maxlen=100_000)
        self._thread = threading.Thread(target=self._run, name=f"faultproxy:{self.port}", daemon=True)

    # ---- control (any thread) ---------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._selector.register(self._listener, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            self._stop = True
        self._wake()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        for conn in self._connections:
            for s in conn.sockets():
                s.close()
        self._connections.clear()
        for s in (self._listener, self._wake_r, self._wake_w):
            s.close()
        self._selector.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def mode(self) -> str:
        with self._lock:
            return self._mode

    def set_mode(self, mode: str, timeout: float = 5) -> None:
        """Switches mode; returns once the proxy thread has applied it (old connections reset or paused)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        with self._lock:
            self._mode = mode
        self._wake()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self._applied_mode == mode:
                    return
            time.sleep(0.005)
        raise TimeoutError(f"fault proxy did not switch to {mode} within {timeout}s")

    def attempts(self, since: float = 0.0, until: float = float("inf")) -> list[tuple[float, str]]:
        """Accepted connections (time.monotonic(), mode at the time) in [since, until)."""
        with self._lock:
            return [a for a in self._attempts if since <= a[0] < until]

    def open_connections(self) -> int:
        with self._lock:
            return len(self._connections)

    # ---- the proxy thread -------------------------------------------------------------------------

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._stop:
                    return
                mode = self._mode
            if mode != self._applied_mode:
                self._apply(mode)
            for key, events in self._selector.select(timeout=0.5):
                if key.data == "wake":
                    try:
                        while self._wake_r.recv(4096):
                            pass
                    except BlockingIOError:
                        pass
                elif key.data == "accept":
                    self._accept(mode)
                else:
                    self._service(key.data, key.fileobj, events)

    def _apply(self, mode: str) -> None:
        if mode == REFUSE:
            for conn in list(self._connections):
                self._close(conn, reset=True)
        elif mode == BLACKHOLE:
            for conn in self._connections:
                for s in conn.sockets():
                    self._unwatch(s)
        else:
            for conn in list(self._connections):
                if conn.upstream is None:
                    self._connect_upstream(conn)  # held while dark: connect it now
                else:
                    self._rewatch(conn)
        with self._lock:
            self._applied_mode = mode

    def _accept(self, mode: str) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            with self._lock:
                self._attempts.append((time.monotonic(), mode))
                full = len(self._connections) >= self.max_connections
            if mode == REFUSE or full:
                _reset(client)
                continue
            client.setblocking(False)
            conn = _Connection(client)
            with self._lock:
                self._connections.append(conn)
            if mode == FORWARD:
                self._connect_upstream(conn)
            # BLACKHOLE: held, unwatched, until the mode changes.

    def _connect_upstream(self, conn: _Connection) -> None:
        upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        upstream.setblocking(False)
        conn.upstream = upstream
        conn.pipes = [_Pipe(conn.client, upstream), _Pipe(upstream, conn.client)]
        result = upstream.connect_ex(self.upstream)
        if result not in (0, errno.EINPROGRESS):
            self._close(conn, reset=True)
            return
        conn.connecting = result != 0
        self._rewatch(conn)

    def _events_for(self, conn: _Connection, sock: socket.socket) -> int:
        if conn.connecting:
            return selectors.EVENT_WRITE if sock is conn.upstream else 0
        events = 0
        for pipe in conn.pipes:
            if pipe.source is sock and not pipe.eof and len(pipe.buffer) < BUFFER:
                events |= selectors.EVENT_READ
            if pipe.sink is sock and pipe.buffer:
                events |= selectors.EVENT_WRITE
        return events

    def _rewatch(self, conn: _Connection) -> None:
        for sock in conn.sockets():
            events = self._events_for(conn, sock)
            try:
                key = self._selector.get_key(sock)
            except (KeyError, ValueError):
                key = None
            if events == 0:
                if key is not None:
                    self._selector.unregister(sock)
            elif key is None:
                self._selector.register(sock, events, conn)
            elif key.events != events:
                self._selector.modify(sock, events, conn)

    def _unwatch(self, sock: socket.socket) -> None:
        try:
            self._selector.unregister(sock)
        except (KeyError, ValueError):
            pass

    def _service(self, conn: _Connection, sock: socket.socket, events: int) -> None:
        if conn.connecting:
            failure = conn.upstream.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) if conn.upstream else 1
            if failure:
                self._close(conn, reset=True)  # upstream refused: so does the proxy
                return
            conn.connecting = False
        for pipe in conn.pipes:
            if pipe.source is sock and events & selectors.EVENT_READ and not pipe.eof:
                try:
                    data = sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    data = None
                except OSError:
                    self._close(conn, reset=True)
                    return
                if data == b"":
                    pipe.eof = True
                elif data:
                    pipe.buffer += data
            if pipe.sink is sock and events & selectors.EVENT_WRITE and pipe.buffer:
                try:
                    sent = sock.send(pipe.buffer)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError:
                    self._close(conn, reset=True)
                    return
                del pipe.buffer[:sent]
        for pipe in conn.pipes:
            if pipe.done:
                try:
                    pipe.sink.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
        if all(pipe.done for pipe in conn.pipes):
            self._close(conn, reset=False)
            return
        self._rewatch(conn)

    def _close(self, conn: _Connection, reset: bool) -> None:
        for sock in conn.sockets():
            self._unwatch(sock)
            if reset:
                _reset(sock)
            else:
                sock.close()
        with self._lock:
            if conn in self._connections:
                self._connections.remove(conn)


BAD_LEASE = "bad-lease"
DEEP_ERROR = "deep-error"
HTTP_MODES = (FORWARD, BAD_LEASE, DEEP_ERROR)
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host", "authorization",
               "content-length"}


class HttpFaultProxy:
    def __init__(self, upstream: tuple[str, int], tls: ssl.SSLContext):
        self.upstream = upstream
        self.tls = tls
        self.mode = FORWARD
        self.faults = 0  # requests answered by a fault mode
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection; a body ends with the connection

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                proxy._handle(self)

            do_PUT = do_POST = do_PATCH = do_DELETE = do_GET  # noqa: N815

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="http-fault-proxy", daemon=True)

    def start(self) -> HttpFaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> HttpFaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_mode(self, mode: str) -> None:
        assert mode in HTTP_MODES, mode
        self.mode = mode

    def _handle(self, request: http.server.BaseHTTPRequestHandler) -> None:
        mode = self.mode
        if mode != FORWARD and "/leases/" in request.path and request.command == "GET":
            self.faults += 1
            if mode == BAD_LEASE:
                name = request.path.rsplit("/", 1)[-1]
                self._answer(request, 200, json.dumps({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                                       "metadata": {"name": name}, "spec": 5}).encode())
            else:
                self._answer(request, 500, b"[" * 10000 + b"]" * 10000)
            return
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        upstream = http.client.HTTPSConnection(*self.upstream, context=self.tls, timeout=900)
        try:
            upstream.request(request.command, request.path, body=body, headers=headers)
            response = upstream.getresponse()
            request.send_response(response.status)
            for k, v in response.getheaders():
                if k.lower() not in _HOP_BY_HOP:
                    request.send_header(k, v)
            request.end_headers()
            # Watches stream: pass on what has arrived, not what a full buffer holds.
            while chunk := response.read1(65536):
                request.wfile.write(chunk)
                request.wfile.flush()
        except (OSError, http.client.HTTPException, ValueError):
            # Either side went away (http.client reports a cut chunked stream as ValueError): the other one
            # sees its connection end.
            pass
        finally:
            upstream.close()

    @staticmethod
    def _answer(request: http.server.BaseHTTPRequestHandler, status: int, body: bytes) -> None:
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)
