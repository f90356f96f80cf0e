"""kroute's proxy settings per rule (ingress-nginx's proxy-* annotations and client-body-buffer-size): real
Ingresses through the agent, nginx with the module, and echo pods that misbehave on request (tests/integration/
echo_server.py's query: delay, status, stream, record). Each test checks what a client sees: a 504 at the
rule's own timeout, a retry on another endpoint, 413 for bodies over the rule's limit (Content-Length and
chunked, HTTP/1.1 and HTTP/2), a response streamed or buffered, a request body the pod sees before the client
has sent all of it. Bad values give a Warning Event and ingress-nginx's default. nginx never reloads."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import uuid
from typing import Iterator

import pytest

from agent_fixtures import wait_for
from netns import Pod
from stack import Stack, module_stack  # noqa: F401
from test_annotations import NGINX, annotated, apply_and_wait, served
from test_hostile import Steady, wait_warning, with_healthy_route

# the proxy-setting record codes (routetable/policy/proxy_setting.h)
CONNECT, READ, SEND, NEXT, TRIES, NEXT_TIMEOUT, BODY, BODY_BUFFER, BUFFERING, BUFFER, BUFFERS, REQUEST_BUFFERING, \
    TEMP_FILE = range(1, 14)


# ---- helpers ------------------------------------------------------------------------------------------


def settings(stack: Stack, host: str, path: str = "/") -> dict[int, int]:
    """The rule's proxy settings as the table holds them: {code: value}."""
    found = stack.lookup(host, path) or {}
    return {p["code"]: p.get("number", 0) for p in found.get("policies", []) if p["kind"] == "proxy-setting"}


def wait_settings(stack: Stack, host: str, expected: dict[int, int]) -> None:
    wait_for(f"proxy settings {expected} for {host}", lambda: settings(stack, host) == expected, timeout=15,
             interval=0.05)


def timed(stack: Stack, host: str, path: str, timeout: float = 15) -> tuple[int, float]:
    began = time.monotonic()
    status = stack.request(host, path, timeout=timeout).status
    return status, time.monotonic() - began


def seen(pod: Pod, record: str) -> dict[str, int]:
    """What the pod's echo server counted for ?record=`record` (asked directly, not through nginx)."""
    with socket.create_connection((pod.address, 8080), timeout=5) as sock:
        sock.sendall(f"GET /_echo/seen/{record} HTTP/1.1\r\nHost: pod\r\nConnection: close\r\n\r\n".encode())
        data = read_all(sock)
    return json.loads(data.split(b"\r\n\r\n", 1)[1] or b"{}")


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while True:
        piece = sock.recv(65536)
        if not piece:
            return data
        data += piece


def raw(stack: Stack, host: str, head: str, body: bytes = b"") -> socket.socket:
    """A connection to nginx that has sent `head` (request line and headers, without the blank line) and
    `body` so far; the caller sends the rest."""
    assert stack.nginx is not None
    sock = socket.create_connection(("127.0.0.1", stack.nginx.port), timeout=15)
    sock.sendall(f"{head}\r\nHost: {host}\r\n\r\n".encode() + body)
    return sock


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def chunked(body: bytes) -> bytes:
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"


def post(stack: Stack, host: str, size: int, chunked_body: bool = False) -> int:
    """POSTs `size` bytes with Content-Length (or chunked); the status."""
    body = b"x" * size
    if chunked_body:
        sock = raw(stack, host, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close")
    else:
        sock = raw(stack, host, f"POST / HTTP/1.1\r\nContent-Length: {size}\r\nConnection: close")
    with sock:
        try:
            sock.sendall(chunked(body) if chunked_body else body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # nginx answered 413 and closed before the whole body was sent
        return status_of(read_all(sock))


def curl_h2(stack: Stack, host: str, size: int, chunked_body: bool) -> int:
    """POSTs (or PUTs from a pipe: no length, so the body is sent without content-length) `size` bytes over
    HTTP/2 with TLS; the status curl saw."""
    assert stack.nginx is not None
    port = stack.nginx.tls_port
    url = f"https://{host}:{port}/"
    upload = ["-T", "-"] if chunked_body else ["--data-binary", "@-"]
    out = subprocess.run(["curl", "-sk", "--http2", "--max-time", "15", "--resolve", f"{host}:{port}:127.0.0.1",
                          "-o", "/dev/null", "-w", "%{http_version} %{http_code}", *upload, url],
                         input=b"x" * size, capture_output=True, timeout=30)
    version, code = out.stdout.decode().split()
    assert version == "2", out
    return int(code)


def drop_syns(pod: Pod, port: int) -> None:
    """Inside the pod, TCP SYNs to `port` are dropped: a connect there hangs until the proxy gives up."""
    rules = (f"table inet kroute_test {{\n chain input {{\n  type filter hook input priority 0; policy accept;\n"
             f"  tcp dport {port} drop\n }}\n}}\n")
    subprocess.run(["ip", "netns", "exec", pod.namespace, "nft", "-f", "-"], input=rules, text=True, check=True,
                   capture_output=True)


# ---- the stack ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(module_stack: Stack) -> Iterator[Stack]:  # noqa: F811
    """The module's stack: Services one (1 pod), pair (2), trio (3) and blackhole (a pod that drops SYNs);
    the nginx processes of its start must be the same at its end."""
    s = with_healthy_route(module_stack, "one")
    s.backend("pair", replicas=2)
    s.backend("trio", replicas=3)
    s.backend("blackhole")
    drop_syns(s.backends["blackhole"].pods[0], 8080)
    assert s.nginx is not None
    pids = s.nginx.pids()
    yield s
    assert s.nginx is not None
    assert s.nginx.pids() == pids, "nginx's master or workers changed during the module"


# ---- timeouts -----------------------------------------------------------------------------------------


def test_read_timeout_answers_504_at_the_rules_timeout_while_a_rule_without_it_waits(stack: Stack) -> None:
    apply_and_wait(stack, annotated(stack, "read", "read.proxy.test", [("/", "Prefix", "one")],
                                    {"proxy-read-timeout": "1"}),
                   annotated(stack, "read-default", "read-default.proxy.test", [("/", "Prefix", "one")]))
    wait_settings(stack, "read.proxy.test", {READ: 1000})
    status, took = timed(stack, "read.proxy.test", "/?delay=3")
    assert status == 504 and 0.9 <= took < 2.5, (status, took)
    status, took = timed(stack, "read-default.proxy.test", "/?delay=3")
    assert status == 200 and took >= 2.9, (status, took)
    # a backend that answers in time is served
    served(stack.request("read.proxy.test", "/?delay=0.2"), "one", "/?delay=0.2")


def test_connect_timeout_of_the_rule_against_an_endpoint_that_drops_syns(stack: Stack) -> None:
    apply_and_wait(stack, annotated(stack, "connect", "connect.proxy.test", [("/", "Prefix", "blackhole")],
                                    {"proxy-connect-timeout": "1"}),
                   annotated(stack, "connect-default", "connect-default.proxy.test",
                             [("/", "Prefix", "blackhole")]))
    wait_settings(stack, "connect.proxy.test", {CONNECT: 1000})
    status, took = timed(stack, "connect.proxy.test", "/")
    assert status == 504 and 0.9 <= took < 2.5, (status, took)
    # nginx.conf's default: 5 s
    status, took = timed(stack, "connect-default.proxy.test", "/")
    assert status == 504 and 4.9 <= took < 7, (status, took)


# ---- retries ------------------------------------------------------------------------------------------


def test_next_upstream_tries_another_endpoint_on_a_listed_status(stack: Stack) -> None:
    apply_and_wait(stack, annotated(stack, "next", "next.proxy.test", [("/", "Prefix", "pair")],
                                    {"proxy-next-upstream": "error timeout http_502"}),
                   annotated(stack, "next-default", "next-default.proxy.test", [("/", "Prefix", "pair")]))
    wait_settings(stack, "next.proxy.test", {NEXT: 1 | 2 | 16})
    failing, healthy = stack.backends["pair"].pods
    path = f"/?status=502&only={failing.name}"
    replies = [stack.request("next.proxy.test", path) for _ in range(10)]
    assert [r.status for r in replies] == [200] * 10, [r.status for r in replies]
    assert {r.pod for r in replies} == {healthy.name}
    # without the annotation, "error timeout": the failing endpoint's 502 reaches the client
    statuses = [stack.request("next-default.proxy.test", path).status for _ in range(10)]
    assert 502 in statuses and 200 in statuses, statuses


@pytest.mark.parametrize("tries, expected", [("2", 2), ("1", 1), ("0", 3)])
def test_next_upstream_tries_caps_the_endpoints_tried(stack: Stack, tries: str, expected: int) -> None:
    name = f"tries-{tries}"
    host = f"{name}.proxy.test"
    apply_and_wait(stack, annotated(stack, name, host, [("/", "Prefix", "trio")],
                                    {"proxy-next-upstream": "http_503", "proxy-next-upstream-tries": tries}))
    wait_settings(stack, host, {NEXT: 32, TRIES: int(tries)})
    record = uuid.uuid4().hex
    assert stack.request(host, f"/?status=503&record={record}").status == 503
    counts = [seen(pod, record).get("requests", 0) for pod in stack.backends["trio"].pods]
    assert sum(counts) == expected and max(counts) == 1, counts


def test_next_upstream_off_and_next_upstream_timeout(stack: Stack) -> None:
    apply_and_wait(stack, annotated(stack, "next-off", "next-off.proxy.test", [("/", "Prefix", "trio")],
                                    {"proxy-next-upstream": "off"}),
                   annotated(stack, "next-timeout", "next-timeout.proxy.test", [("/", "Prefix", "trio")],
                             {"proxy-next-upstream": "http_503", "proxy-next-upstream-timeout": "1"}))
    wait_settings(stack, "next-off.proxy.test", {NEXT: 2048})
    wait_settings(stack, "next-timeout.proxy.test", {NEXT: 32, NEXT_TIMEOUT: 1000})
    record = uuid.uuid4().hex
    assert stack.request("next-off.proxy.test", f"/?status=503&record={record}").status == 503
    assert sum(seen(pod, record).get("requests", 0) for pod in stack.backends["trio"].pods) == 1
    # each try takes 0.6 s: the second starts before the 1 s limit, a third would start after it
    record = uuid.uuid4().hex
    assert stack.request("next-timeout.proxy.test", f"/?status=503&delay=0.6&record={record}").status == 503
    assert sum(seen(pod, record).get("requests", 0) for pod in stack.backends["trio"].pods) == 2


# ---- body size ----------------------------------------------------------------------------------------


def test_body_size_413_for_content_length_and_chunked_bodies(stack: Stack) -> None:
    host = "body.proxy.test"
    apply_and_wait(stack, annotated(stack, "body", host, [("/", "Prefix", "one")], {"proxy-body-size": "2k"}))
    wait_settings(stack, host, {BODY: 2048})
    assert post(stack, host, 2048) == 200
    assert post(stack, host, 2049) == 413
    assert post(stack, host, 2000, chunked_body=True) == 200
    assert post(stack, host, 3000, chunked_body=True) == 413
    # HTTP/2: with content-length, and without (the body's DATA frames are counted)
    assert curl_h2(stack, host, 2000, chunked_body=False) == 200
    assert curl_h2(stack, host, 3000, chunked_body=False) == 413
    assert curl_h2(stack, host, 2000, chunked_body=True) == 200
    assert curl_h2(stack, host, 3000, chunked_body=True) == 413


def test_body_size_zero_is_unlimited_and_a_rule_may_allow_more_than_the_default(stack: Stack) -> None:
    apply_and_wait(stack, annotated(stack, "body-zero", "body-zero.proxy.test", [("/", "Prefix", "one")],
                                    {"proxy-body-size": "0"}),
                   annotated(stack, "body-big", "body-big.proxy.test", [("/", "Prefix", "one")],
                             {"proxy-body-size": "5m", "client-body-buffer-size": "1m"}),
                   annotated(stack, "body-default", "body-default.proxy.test", [("/", "Prefix", "one")]))
    wait_settings(stack, "body-zero.proxy.test", {BODY: 0})
    wait_settings(stack, "body-big.proxy.test", {BODY: 5 << 20, BODY_BUFFER: 1 << 20})
    three_mib = 3 << 20
    for host in ("body-zero.proxy.test", "body-big.proxy.test"):
        reply = stack.request(host, "/", method="POST", body=b"y" * three_mib, timeout=30)
        assert reply.status == 200 and reply.echo["body_length"] == three_mib, (host, reply.status)
        assert post(stack, host, three_mib, chunked_body=True) == 200
    assert post(stack, "body-big.proxy.test", 6 << 20) == 413
    # the default, 1m (nginx.conf's kroute_client_max_body_size), holds for both kinds of bodies
    assert post(stack, "body-default.proxy.test", 1 << 20) == 200
    assert post(stack, "body-default.proxy.test", (1 << 20) + 1) == 413
    assert post(stack, "body-default.proxy.test", 2 << 20, chunked_body=True) == 413


# ---- buffering ----------------------------------------------------------------------------------------


def first_and_last_bytes(stack: Stack, host: str, path: str) -> tuple[float, float, bytes]:
    """Seconds until the first chunk of a streamed response reached the client, and until its end."""
    began = time.monotonic()
    first = None
    data = b""
    with raw(stack, host, f"GET {path} HTTP/1.1\r\nConnection: close") as sock:
        while True:
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
            if first is None and b"chunk 0" in data:
                first = time.monotonic() - began
    assert first is not None, data[:500]
    return first, time.monotonic() - began, data


def test_proxy_buffering_off_streams_the_first_bytes_before_the_response_ends(stack: Stack) -> None:
    apply_and_wait(stack, annotated(stack, "stream-off", "stream-off.proxy.test", [("/", "Prefix", "one")],
                                    {"proxy-buffering": "off"}),
                   annotated(stack, "stream-on", "stream-on.proxy.test", [("/", "Prefix", "one")],
                             {"proxy-buffering": "on"}))
    # "off" is the default (ingress-nginx's), so only "on" makes a record
    wait_settings(stack, "stream-on.proxy.test", {BUFFERING: 1})
    assert settings(stack, "stream-off.proxy.test") == {}
    path = "/?stream=4&interval=0.5"
    first, last, data = first_and_last_bytes(stack, "stream-off.proxy.test", path)
    assert status_of(data) == 200 and b"chunk 3" in data
    assert first < 0.4 and last >= 1.4, (first, last)
    # buffered: the small chunks wait in nginx's buffer until the response is complete
    first, last, data = first_and_last_bytes(stack, "stream-on.proxy.test", path)
    assert status_of(data) == 200 and b"chunk 3" in data
    assert first >= 1.4, (first, last)


@pytest.mark.parametrize("chunked_body", [False, True], ids=["content-length", "chunked"])
def test_request_buffering_off_sends_the_body_while_the_client_sends_it(stack: Stack, chunked_body: bool) -> None:
    apply_and_wait(stack, annotated(stack, "upload-off", "upload-off.proxy.test", [("/", "Prefix", "one")],
                                    {"proxy-request-buffering": "off"}),
                   annotated(stack, "upload-on", "upload-on.proxy.test", [("/", "Prefix", "one")]))
    wait_settings(stack, "upload-off.proxy.test", {REQUEST_BUFFERING: 0})
    pod = stack.backends["one"].pods[0]
    half = b"z" * 1000
    framing = "Transfer-Encoding: chunked" if chunked_body else "Content-Length: 2000"
    first = (b"%x\r\n%s\r\n" % (len(half), half)) if chunked_body else half
    rest = chunked(half) if chunked_body else half
    for host, streams in (("upload-off.proxy.test", True), ("upload-on.proxy.test", False)):
        record = uuid.uuid4().hex
        with raw(stack, host, f"POST /?record={record} HTTP/1.1\r\n{framing}\r\nConnection: close", first) as sock:
            if streams:
                wait_for("the pod to see the first half of the body",
                         lambda: seen(pod, record).get("body_bytes", 0) >= 1000, timeout=5, interval=0.05)
            else:
                time.sleep(1)
                assert seen(pod, record) == {}, "nginx passed on a body it should have buffered"
            sock.sendall(rest)
            response = read_all(sock)
        assert status_of(response) == 200, response[:300]
        assert b'"body_length": 2000' in response, response[-400:]


# ---- changes under load, bad values -------------------------------------------------------------------


class Uploads(Steady):
    """Steady with a 64 KiB POST to `host` in a loop: every answer must be 200."""

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self.statuses.append(self.stack.request(self.host, "/?delay=0.01", method="POST",
                                                        body=b"u" * 65536, timeout=10).status)
            except OSError as e:
                self.errors.append(repr(e))


def test_changing_every_setting_under_load_keeps_every_request_2xx_and_nginx_running(stack: Stack) -> None:
    host = "live.proxy.test"
    live = annotated(stack, "live", host, [("/", "Prefix", "pair")])
    apply_and_wait(stack, live)
    assert stack.nginx is not None
    pids = stack.nginx.pids()
    steps: list[tuple[dict[str, str], dict[int, int]]] = [
        ({"proxy-body-size": "8m", "client-body-buffer-size": "128k"}, {BODY: 8 << 20, BODY_BUFFER: 128 << 10}),
        ({"proxy-connect-timeout": "2", "proxy-read-timeout": "20", "proxy-send-timeout": "20"},
         {CONNECT: 2000, READ: 20000, SEND: 20000}),
        ({"proxy-next-upstream": "error timeout http_503 non_idempotent", "proxy-next-upstream-tries": "2",
          "proxy-next-upstream-timeout": "5"}, {NEXT: 1 | 2 | 32 | 1024, TRIES: 2, NEXT_TIMEOUT: 5000}),
        ({"proxy-buffering": "on", "proxy-buffer-size": "16k", "proxy-buffers-number": "8",
          "proxy-max-temp-file-size": "0"}, {BUFFERING: 1, BUFFER: 16 << 10, BUFFERS: 8, TEMP_FILE: 0}),
        ({"proxy-request-buffering": "off"}, {REQUEST_BUFFERING: 0}),
        ({"proxy-body-size": "0", "proxy-buffering": "on", "proxy-buffers-number": "2"},
         {BODY: 0, BUFFERING: 1, BUFFERS: 2}),
        ({}, {}),
    ]
    with Steady(stack), Uploads(stack, host):
        for annotations, expected in steps:
            live["metadata"]["annotations"] = {f"{NGINX}/{k}": v for k, v in annotations.items()}
            stack.api.replace(live)
            wait_settings(stack, host, expected)
            time.sleep(0.5)
    assert stack.nginx.pids() == pids, "nginx's master or workers changed"


@pytest.mark.parametrize("annotation, value", [
    ("proxy-read-timeout", "-5"), ("proxy-read-timeout", "5s"), ("proxy-connect-timeout", "0"),
    ("proxy-send-timeout", "abc"), ("proxy-next-upstream-timeout", "-1"), ("proxy-next-upstream-tries", "-1"),
    ("proxy-body-size", "10x"), ("proxy-body-size", "-1"), ("proxy-body-size", "1b"),
    ("client-body-buffer-size", "1g"), ("proxy-buffer-size", "0"), ("proxy-buffers-number", "1"),
    ("proxy-max-temp-file-size", "lots"), ("proxy-buffering", "maybe"), ("proxy-request-buffering", "yes"),
    ("proxy-next-upstream", "bogus"), ("proxy-next-upstream", "error off"), ("proxy-next-upstream", ""),
])
def test_bad_values_give_an_event_and_the_default(stack: Stack, annotation: str, value: str) -> None:
    name = f"bad-{annotation}-{abs(hash(value)) % 10000}"
    host = f"{name}.proxy.test"
    with Steady(stack):
        apply_and_wait(stack, annotated(stack, name, host, [("/", "Prefix", "one")], {annotation: value}))
        wait_warning(stack, name, "InvalidAnnotation", f"{NGINX}/{annotation}")
    assert settings(stack, host) == {}
    served(stack.request(host, "/x"), "one", "/x")
    # ingress-nginx's default body limit, 1m, still holds
    assert post(stack, host, 2 << 20) == 413
