"""Hostile and malformed objects next to a healthy route, through the real API server, kroute-agent and
nginx: each bad part is refused by the API server or skipped by the agent with a Warning Event, what
was accepted works, the healthy route answers 200 throughout, and neither the agent nor nginx restarts.
tests/README.md lists every case and its result."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any, Iterator

import pytest

from agent_fixtures import dump_table, self_signed_tls, wait_for
from stack import Api, Stack, module_stack, rule  # noqa: F401

HEALTHY = "healthy.hostile.test"
# The API server's limit on all annotations of an object together: keys plus values, in bytes.
ANNOTATIONS_LIMIT = 256 * 1024


# ---- helpers shared with test_security.py -----------------------------------------------------------


class Steady:
    """Requests the healthy route every few milliseconds in a thread while a hostile object is applied;
    on exit asserts that every one got 200 and that the agent and nginx are the same processes."""

    def __init__(self, stack: Stack, host: str = HEALTHY):
        self.stack = stack
        self.host = host
        self.statuses: list[int] = []
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self.statuses.append(self.stack.request(self.host, "/", timeout=5).status)
            except OSError as e:  # a refused or reset connection is a failure too
                self.errors.append(repr(e))
            self.stop.wait(0.02)

    def __enter__(self) -> Steady:
        assert self.stack.agent is not None and self.stack.nginx is not None
        self.agent_pid = self.stack.agent.process.pid
        self.nginx_pids = self.stack.nginx.pids()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        if exc[0] is not None:
            return
        assert self.stack.agent is not None and self.stack.nginx is not None
        assert self.stack.agent.alive(), f"the agent exited:\n{self.stack.agent.log()[-3000:]}"
        assert self.stack.agent.process.pid == self.agent_pid
        assert self.stack.nginx.pids() == self.nginx_pids, "nginx's master or workers changed"
        assert self.statuses, "no request to the healthy route completed"
        bad = [s for s in self.statuses if s != 200]
        assert not bad and not self.errors, (f"healthy route: {len(bad)} of {len(self.statuses)} not 200 "
                                             f"({sorted(set(bad))}), errors {self.errors[:3]}")


def warnings_for(stack: Stack, name: str, reason: str) -> list[dict[str, Any]]:
    """The Warning Events the agent wrote for Ingress `name` with `reason`."""
    items = json.loads(stack.cluster.kubectl("get", "events", "-n", stack.namespace, "-o", "json"))["items"]
    return [e for e in items if e["involvedObject"].get("kind") == "Ingress" and e["involvedObject"]["name"] == name
            and e["reason"] == reason and e["type"] == "Warning"]


def wait_warning(stack: Stack, name: str, reason: str, text: str = "") -> list[dict[str, Any]]:
    """Waits for a Warning Event on Ingress `name` whose message contains `text`."""
    return wait_for(f"a {reason} Event on {name} saying {text!r}",
                    lambda: [e for e in warnings_for(stack, name, reason) if text in e["message"]], timeout=20)


def post(stack: Stack, obj: dict[str, Any], raw: bytes | None = None) -> tuple[int, dict[str, Any]]:
    """Creates obj (or posts the raw bytes given) as the admin; returns the API server's status and reply."""
    api = Api(stack.cluster)
    conn = http.client.HTTPSConnection("127.0.0.1", stack.cluster.apiserver_port, context=api.context, timeout=30)
    try:
        body = raw if raw is not None else json.dumps(obj).encode()
        conn.request("POST", Api.path(obj), body=body,
                     headers={"Content-Type": "application/json", "Accept": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def get(stack: Stack, obj: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    path = f"{Api.path(obj)}/{urllib.parse.quote(obj['metadata']['name'], safe='')}"
    response = stack.cluster.request("GET", path, admin=True)
    return response.status, response.json()


def refused(stack: Stack, obj: dict[str, Any], why: str) -> None:
    """The API server refuses obj as invalid (422, naming `why`), and there is no such object afterwards."""
    status, reply = post(stack, obj)
    assert status == 422, (status, reply)
    assert why in reply.get("message", ""), reply
    assert get(stack, obj)[0] == 404


def path_entry(path: str, path_type: str, service: str, port: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"path": path, "pathType": path_type,
            "backend": {"service": {"name": service, "port": port or {"name": "http"}}}}


def ingress_with_paths(stack: Stack, name: str, host: str, paths: list[dict[str, Any]]) -> dict[str, Any]:
    return stack.ingress(name, {"rules": [{"host": host, "http": {"paths": paths}}]})


def certificate_for(stack: Stack, server_name: str) -> bytes:
    """The DER certificate nginx presents for this SNI name."""
    assert stack.nginx is not None
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", stack.nginx.tls_port), timeout=10) as sock:
        with context.wrap_socket(sock, server_hostname=server_name) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der
    return der


# ---- the stack, with one healthy route ----------------------------------------------------------------


def with_healthy_route(stack: Stack, *backends: str) -> Stack:
    """The stack with backends `healthy` (serving HEALTHY, for Steady) and `backends`."""
    for name in ("healthy", *backends):
        stack.backend(name)
    stack.apply(stack.ingress("healthy", {"rules": [rule(HEALTHY, ("/", "Prefix", "healthy"))]}))
    stack.wait_status(HEALTHY)
    return stack


@pytest.fixture(scope="module")
def stack(module_stack: Stack) -> Iterator[Stack]:  # noqa: F811
    yield with_healthy_route(module_stack, "hostile")


# ---- the cases ----------------------------------------------------------------------------------------


def test_oversized_annotation_is_refused_and_the_largest_accepted_one_is_harmless(stack: Stack) -> None:
    key = "example.com/blob"
    # A 1 MiB annotation: the API server refuses it (all annotations together may hold 256 KiB).
    big = stack.ingress("one-mebibyte", {"rules": [rule("mib.hostile.test", ("/", "Prefix", "hostile"))]})
    big["metadata"]["annotations"] = {key: "x" * (1 << 20)}
    with Steady(stack):
        refused(stack, big, "Too long")
        # The largest the API server accepts: keys and values add up to exactly the limit. Its text looks
        # like nginx configuration; it must never be read as such.
        filler = "}; location / { return 200 owned; }\n"
        value = (filler * (ANNOTATIONS_LIMIT // len(filler) + 1))[:ANNOTATIONS_LIMIT - len(key)]
        largest = stack.ingress("largest-annotation",
                                {"rules": [rule("largest.hostile.test", ("/", "Prefix", "hostile"))]})
        largest["metadata"]["annotations"] = {key: value}
        status, reply = post(stack, largest)
        assert status == 201, reply
        assert len(get(stack, largest)[1]["metadata"]["annotations"][key]) == ANNOTATIONS_LIMIT - len(key)
        reply = stack.wait_status("largest.hostile.test")
        assert reply.service == "hostile" and b"owned" not in reply.body
    # One byte more is refused.
    largest["metadata"]["name"] = "over-the-limit"
    largest["metadata"]["annotations"] = {key: value + "x"}
    refused(stack, largest, "Too long")


def test_ten_thousand_paths_in_one_ingress(stack: Stack) -> None:
    stack.backend("bulk")
    paths = [path_entry(f"/p/{i}", "Prefix", "bulk") for i in range(10_000)]
    bulk = ingress_with_paths(stack, "ten-thousand", "bulk.hostile.test", paths)
    with Steady(stack):
        started = time.monotonic()
        status, reply = post(stack, bulk)
        assert status == 201, reply
        stack.wait_route("bulk.hostile.test", "/p/9999", timeout=60)
        print(f"10,000 paths: routed {time.monotonic() - started:.2f}s after the create")
        for path in ("/p/0", "/p/1234/deeper", "/p/9999"):
            reply = stack.request("bulk.hostile.test", path)
            assert (reply.status, reply.service) == (200, "bulk"), path
        # Element-wise prefixes: /p/10000 is no rule's path, /p/1000 is.
        assert stack.request("bulk.hostile.test", "/p/10000").status == 404
        assert stack.request("bulk.hostile.test", "/p/1000").status == 200
    table = dump_table(stack.agent.table_dir)
    host = next(h for h in table["hosts"] if h["host"] == "bulk.hostile.test")
    assert len(host["rules"]) == 10_000


def test_paths_kubernetes_refuses_never_reach_the_agent(stack: Stack) -> None:
    with Steady(stack):
        for path, path_type, why in (("/a/../b", "Prefix", "must not contain '/../'"),
                                     ("/a//b", "Exact", "must not contain '//'"),
                                     ("/a/.", "Prefix", "cannot end with '/.'"),
                                     ("/a%2Fb", "Exact", "must not contain '%2F'"),
                                     ("relative", "Prefix", "must be an absolute path")):
            refused(stack, ingress_with_paths(stack, "refused-path", "refused.hostile.test",
                                              [path_entry(path, path_type, "hostile")]), why)
    assert stack.lookup("refused.hostile.test", "/") is None


def test_paths_the_api_server_accepts_are_served_or_skipped_with_an_event(stack: Stack) -> None:
    host = "paths.hostile.test"
    skipped = {  # path, type -> what the Event says
        ("/dots/../b", "ImplementationSpecific"): "could never match",
        ("/dot/./b", "ImplementationSpecific"): "could never match",
        ("/empty//segment", "ImplementationSpecific"): "could never match",
        ("/a space", "Prefix"): "spaces or control characters",
        ("/crlf\r\nX-Injected: 1", "Prefix"): "spaces or control characters",
        ("/nul\u0000", "Exact"): "spaces or control characters",
        ("/tab\tpath", "ImplementationSpecific"): "spaces or control characters",
    }
    served = [("/good", "Prefix"), ("/pct%00", "Prefix"), ("/caf\u00e9", "Prefix")]
    paths = [path_entry(p, t, "hostile") for p, t in served] + [path_entry(p, t, "hostile") for p, t in skipped]
    odd = ingress_with_paths(stack, "odd-paths", host, paths)
    # Non-UTF-8 bytes can reach the API server only as raw bytes in the request (JSON escapes are code
    # points): a 0xff byte, and a lone surrogate escape. The API server's JSON decoder turns both into
    # U+FFFD, so the agent only ever sees valid UTF-8.
    odd["spec"]["rules"][0]["http"]["paths"].append(path_entry("/raw-@FF@", "Prefix", "hostile"))
    odd["spec"]["rules"][0]["http"]["paths"].append(path_entry("/lone-@SURROGATE@", "Prefix", "hostile"))
    raw = json.dumps(odd).encode().replace(b"@FF@", b"\xff").replace(b"@SURROGATE@", b"\\udc00")
    with Steady(stack):
        status, reply = post(stack, odd, raw=raw)
        assert status == 201, reply
        stored = [p["path"] for p in get(stack, odd)[1]["spec"]["rules"][0]["http"]["paths"]]
        assert "/raw-\ufffd" in stored and "/lone-\ufffd" in stored
        stack.wait_status(host, "/good")
        for (path, _), text in skipped.items():
            printable = path.replace("\r", "\\x0d").replace("\n", "\\x0a").replace("\0", "\\x00").replace("\t", "\\x09")
            wait_warning(stack, "odd-paths", "InvalidRule", f"path {printable} of host {host} skipped: ")
            wait_warning(stack, "odd-paths", "InvalidRule", text)
        # Messages carry skipped paths escaped: no line break or NUL reaches an Event, a log or a header.
        for event in warnings_for(stack, "odd-paths", "InvalidRule"):
            assert not any(c in event["message"] for c in "\r\n\0\t"), event["message"]
        # Served: rule paths are compared with nginx's decoded request path, so "%00" in a rule is three
        # characters, reached by "%2500"; "/%00" itself nginx refuses (400) before any routing.
        for request, status in (("/good", 200), ("/pct%2500", 200), ("/pct%00", 400),
                                ("/caf%C3%A9", 200), ("/raw-%EF%BF%BD", 200), ("/lone-%EF%BF%BD", 200),
                                ("/dots/../b", 404), ("/a%20space", 404), ("/tab%09path", 404)):
            reply = stack.request(host, request)
            assert reply.status == status, (request, reply.status, reply.body[:200])
            if status == 200:
                assert reply.service == "hostile"
    assert stack.agent is not None
    assert "\r" not in stack.agent.log()


def test_duplicate_hosts_the_oldest_ingress_wins_and_the_younger_gets_an_event(stack: Stack) -> None:
    stack.backend("older")
    stack.backend("younger")
    host = "dup.hostile.test"
    # Names sort the other way round: only the creation time can make "zz-older" win.
    older = stack.ingress("zz-older", {"rules": [rule(host, ("/", "Prefix", "older"))]})
    younger = stack.ingress("aa-younger", {"rules": [rule(host, ("/", "Prefix", "younger"), ("/only-younger", "Prefix", "younger"))]})
    with Steady(stack):
        stack.api.create(older)
        stack.wait_status(host)
        time.sleep(1.1)  # creationTimestamp has whole seconds
        stack.api.create(younger)
        stack.wait_route(host, "/only-younger", lambda r: r["ingress"]["name"] == "aa-younger")
        assert stack.request(host, "/").service == "older"
        assert stack.request(host, "/only-younger").service == "younger"
        wait_warning(stack, "aa-younger", "RuleShadowed", f"served by the older Ingress {stack.namespace}/zz-older")
        assert not warnings_for(stack, "zz-older", "RuleShadowed")
        # The older one gone, the younger one serves the host.
        stack.api.delete(older)
        wait_for("the younger Ingress serving /", lambda: stack.request(host, "/").service == "younger")


def test_secret_with_garbage_pem_gets_the_default_certificate_and_others_keep_theirs(stack: Stack,
                                                                                   tmp_path: Path) -> None:
    garbage = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
               "metadata": {"name": "garbage-tls", "namespace": stack.namespace},
               "data": {"tls.crt": base64.b64encode(b"-----BEGIN CERTIFICATE-----\ngarbage\n"
                                                    b"-----END CERTIFICATE-----\n").decode(),
                        "tls.key": base64.b64encode(b"\x00\x01 not a key").decode()}}
    good_data = self_signed_tls(tmp_path, "goodtls.hostile.test")
    good = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": "good-tls", "namespace": stack.namespace}, "data": good_data}
    tls_ingress = stack.ingress("garbage-tls", {
        "rules": [rule("garbage.hostile.test", ("/", "Prefix", "hostile")),
                  rule("goodtls.hostile.test", ("/", "Prefix", "hostile"))],
        "tls": [{"hosts": ["garbage.hostile.test"], "secretName": "garbage-tls"},
                {"hosts": ["goodtls.hostile.test"], "secretName": "good-tls"}]})
    default = certificate_for(stack, "no-such-host.hostile.test")
    with Steady(stack):
        stack.apply(garbage, good, tls_ingress)
        wait_warning(stack, "garbage-tls", "TLSSecretInvalid", "tls.crt holds no PEM certificate")
        good_der = ssl.PEM_cert_to_DER_cert(base64.b64decode(good_data["tls.crt"]).decode())
        wait_for("the good Secret's certificate", lambda: certificate_for(stack, "goodtls.hostile.test") == good_der)
        assert certificate_for(stack, "garbage.hostile.test") == default != good_der
        # Routing is unaffected: plain HTTP is redirected (the host is in spec.tls), HTTPS is served.
        reply = stack.request("garbage.hostile.test", "/x?y=1")
        assert reply.status == 308 and reply.headers["location"] == "https://garbage.hostile.test/x?y=1"
        assert https_status(stack, "garbage.hostile.test") == 200


def https_status(stack: Stack, host: str) -> int:
    assert stack.nginx is not None
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", stack.nginx.tls_port, context=context, timeout=10)
    try:
        conn.request("GET", "/", headers={"Host": host})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def test_invalid_references_are_refused_by_the_api_server(stack: Stack) -> None:
    """Names that could carry a header break never reach the agent: the API server checks them (the agent
    checks them again, tests/agent/validate_test.cc and store_test.cc)."""
    backend = {"service": {"name": "web\r\nX-Evil: 1", "port": {"number": 80}}}
    with Steady(stack):
        refused(stack, stack.ingress("bad-backend", {"defaultBackend": backend}), "spec.defaultBackend.service.name")
        refused(stack, stack.ingress("bad-port", {"rules": [{"host": "port.hostile.test", "http": {"paths": [
            path_entry("/", "Prefix", "hostile", {"name": "http\r\n"})]}}]}), "port.name")
        refused(stack, stack.ingress("bad-host", {"rules": [rule("a\r\nb.hostile.test", ("/", "Prefix", "hostile"))]}),
                "spec.rules[0].host")
        refused(stack, stack.ingress("bad-tls", {"rules": [rule("tls.hostile.test", ("/", "Prefix", "hostile"))],
                                                 "tls": [{"hosts": ["tls.hostile.test"], "secretName": "a\nb"}]}),
                "secretName")
        refused(stack, stack.ingress("bad\nname", {"rules": [rule("name.hostile.test", ("/", "Prefix", "hostile"))]}),
                "metadata.name")
