"""The scenarios of the Kubernetes sig-network Ingress controller conformance suite
(kubernetes-sigs/ingress-controller-conformance, features/*.feature), kubectl to curl.

Each scenario runs against the whole stack: Ingresses applied with kubectl to a real API server,
kroute-agent compiling them, nginx with the module serving them, echo pods as the Services' endpoints.
A reply names the Service and pod that served it ("<service>/<pod>").
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from agent_fixtures import hosts, wait_for
from stack import PUBLISH_ADDRESS, Stack, make_stack, module_stack, rule  # noqa: F401

STATUS = [{"ip": PUBLISH_ADDRESS}]


# ---- path rules and host rules: one stack, the feature files' Ingresses ----------------------------------

PATH_RULES = {"rules": [
    rule("exact-path-rules", ("/foo", "Exact", "foo-exact")),
    rule("prefix-path-rules", ("/foo", "Prefix", "foo-prefix"), ("/aaa/bbb", "Prefix", "aaa-slash-bbb-prefix"),
         ("/aaa", "Prefix", "aaa-prefix")),
    rule("mixed-path-rules", ("/foo", "Prefix", "foo-prefix"), ("/foo", "Exact", "foo-exact")),
    rule("trailing-slash-path-rules", ("/aaa/bbb/", "Prefix", "aaa-slash-bbb-slash-prefix"),
         ("/foo/", "Exact", "foo-slash-exact")),
]}

HOST_RULES = {"tls": [{"hosts": ["foo.bar.com"], "secretName": "conformance-tls"}], "rules": [
    rule("*.foo.com", ("/", "Prefix", "wildcard-foo-com")),
    rule("foo.bar.com", ("/", "Prefix", "foo-bar-com")),
]}

INVALID_CLASS = {"ingressClassName": "some-invalid-class-name",
                 "rules": [rule("ingress-class", ("/", "Prefix", "ingress-class-prefix"))]}


def certificate(workdir: Path, host: str) -> tuple[dict[str, str], Path]:
    """A self-signed certificate for host (with the subjectAltName clients verify): Secret data and its file."""
    key, cert = workdir / f"{host}.key", workdir / f"{host}.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "2", "-subj", f"/CN={host}", "-addext", f"subjectAltName=DNS:{host}",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=30)
    return ({"tls.crt": base64.b64encode(cert.read_bytes()).decode(),
             "tls.key": base64.b64encode(key.read_bytes()).decode()}, cert)


@pytest.fixture(scope="module")
def rules_stack(module_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Stack:
    s = module_stack
    for name in ("foo-exact", "foo-prefix", "aaa-slash-bbb-prefix", "aaa-prefix", "aaa-slash-bbb-slash-prefix",
                 "foo-slash-exact", "wildcard-foo-com", "foo-bar-com", "ingress-class-prefix"):
        s.backend(name)
    tls, s.tls_certificate = certificate(tmp_path_factory.mktemp("tls"), "foo.bar.com")
    s.apply({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
             "metadata": {"name": "conformance-tls", "namespace": s.namespace}, "data": tls},
            s.ingress("path-rules", PATH_RULES), s.ingress("host-rules", HOST_RULES),
            s.ingress("test-ingress-class", INVALID_CLASS, class_name=None))
    for host in ("exact-path-rules", "prefix-path-rules", "mixed-path-rules", "trailing-slash-path-rules",
                 "foo.bar.com", "x.foo.com"):
        s.wait_route(host, "/foo/" if host == "trailing-slash-path-rules" else "/foo",
                     lambda r: bool(r["backend"]["endpoints"]))
    return s


def test_ingresses_show_the_address_they_are_exposed_on(rules_stack: Stack) -> None:
    for name in ("path-rules", "host-rules"):
        wait_for(f"status of {name}", lambda n=name: rules_stack.ingress_status(n) == STATUS)


@pytest.mark.parametrize("host, path, served_by", [
    # exact
    ("exact-path-rules", "/foo", "foo-exact"),
    ("exact-path-rules", "/foo/", None),
    ("exact-path-rules", "/FOO", None),
    ("exact-path-rules", "/bar", None),
    # prefix
    ("prefix-path-rules", "/foo", "foo-prefix"),
    ("prefix-path-rules", "/foo/", "foo-prefix"),
    ("prefix-path-rules", "/FOO", None),
    ("prefix-path-rules", "/aaa/bbb", "aaa-slash-bbb-prefix"),
    ("prefix-path-rules", "/aaa/bbb/ccc", "aaa-slash-bbb-prefix"),
    ("prefix-path-rules", "/aaa/ccc", "aaa-prefix"),
    ("prefix-path-rules", "/aaaccc", None),
    # mixed: Exact is preferred
    ("mixed-path-rules", "/foo", "foo-exact"),
    # trailing slashes
    ("trailing-slash-path-rules", "/aaa/bbb", "aaa-slash-bbb-slash-prefix"),
    ("trailing-slash-path-rules", "/aaa/bbb/", "aaa-slash-bbb-slash-prefix"),
    ("trailing-slash-path-rules", "/foo", None),
])
def test_path_rules(rules_stack: Stack, host: str, path: str, served_by: str | None) -> None:
    reply = rules_stack.request(host, path)
    if served_by is None:
        assert reply.status == 404, (reply.status, reply.echo)
        return
    assert reply.status == 200, (reply.status, reply.body[:300])
    assert reply.service == served_by
    assert reply.echo["path"] == path


@pytest.mark.parametrize("host, served_by", [
    ("foo.bar.com", "foo-bar-com"),     # exact host
    ("subdomain.bar.com", None),        # no such host
    ("bar.foo.com", "wildcard-foo-com"),  # wildcard: one label
    ("baz.bar.foo.com", None),          # wildcard: not two labels
    ("foo.com", None),                  # wildcard: not zero labels
])
def test_host_rules(rules_stack: Stack, host: str, served_by: str | None) -> None:
    reply = rules_stack.request(host, "/")
    if host == "foo.bar.com":
        # Its Ingress has TLS for it: plain HTTP gets a 308 to HTTPS, which test_host_rule_serves_tls_traffic
        # follows. As ingress-nginx's, the Location loses the request URI's one trailing slash.
        assert reply.status == 308, (reply.status, reply.body[:300])
        assert reply.headers["location"] == "https://foo.bar.com"
        return
    if served_by is None:
        assert reply.status == 404, (reply.status, reply.echo)
        return
    assert reply.status == 200, (reply.status, reply.body[:300])
    assert reply.service == served_by
    assert reply.echo["host"] == host


def test_host_rule_with_tls_has_its_certificate_in_the_table(rules_stack: Stack) -> None:
    """The agent side of the TLS scenario: the Secret reaches the route table for foo.bar.com."""
    secret = f"{rules_stack.namespace}/conformance-tls"

    def tls_secret() -> str | None:
        host = hosts(rules_stack.agent.table_dir).get("foo.bar.com", {})
        # The table's dump names the Secret as "tlsSecret" or, with certificates in the table, "tls.secret".
        return host.get("tlsSecret") or (host.get("tls") or {}).get("secret")

    wait_for("the TLS Secret in the table", lambda: tls_secret() == secret)


def test_host_rule_serves_tls_traffic(rules_stack: Stack) -> None:
    """https://foo.bar.com: the certificate from the Secret, chosen by SNI, verified against the host name."""
    port = rules_stack.nginx.tls_port
    context = ssl.create_default_context(cafile=str(rules_stack.tls_certificate))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        conn.sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                                        server_hostname="foo.bar.com")  # SNI and hostname verification
        conn.request("GET", "/", headers={"Host": "foo.bar.com"})
        response = conn.getresponse()
        echo = json.loads(response.read())
    finally:
        conn.close()
    assert response.status == 200
    assert echo["name"].split("/")[0] == "foo-bar-com"
    assert echo["host"] == "foo.bar.com"


def test_an_ingress_of_an_invalid_class_gets_no_traffic_and_no_status(rules_stack: Stack) -> None:
    assert rules_stack.lookup("ingress-class", "/") is None
    assert rules_stack.request("ingress-class", "/").status == 404
    assert rules_stack.ingress_status("test-ingress-class") == []


# ---- default backend and load balancing: stacks of their own (the default backend is table-wide) ----------

DEFAULT_BACKEND = {"defaultBackend": {"service": {"name": "echo-service", "port": {"number": 8080}}}}


@pytest.fixture(scope="module")
def default_backend_stack(cluster) -> Stack:  # noqa: ANN001
    s = Stack(cluster)
    try:
        s.backend("echo-service")
        s.apply(s.ingress("default-backend", DEFAULT_BACKEND))
        wait_for("the default backend", lambda: s.request("my-host", "/").status == 200, interval=0.05)
        yield s
    finally:
        print(s.logs())
        s.close()


def test_default_backend_ingress_shows_its_address(default_backend_stack: Stack) -> None:
    wait_for("status", lambda: default_backend_stack.ingress_status("default-backend") == STATUS)


@pytest.mark.parametrize("method, host, path", [
    ("GET", "my-host", ""),
    ("GET", "my-host", "sub-path"),
    ("POST", "some-host", ""),
    ("PUT", None, "resource"),
    ("DELETE", "some-host", "resource"),
    ("PATCH", "my-host", "resource"),
])
def test_default_backend_gets_every_request(default_backend_stack: Stack, method: str, host: str | None,
                                            path: str) -> None:
    reply = default_backend_stack.request(host, f"/{path}", method=method, headers={"User-Agent": "Go-http-client/1.1"})
    assert reply.status == 200, (reply.status, reply.body[:300])
    assert reply.service == "echo-service"
    for header in ("content-length", "content-type", "date", "server"):
        assert header in reply.headers, reply.headers
    assert reply.echo["method"] == method
    assert reply.echo["path"] == f"/{path}"
    assert reply.echo["headers"]["user-agent"] == "Go-http-client/1.1"


def test_load_balancing_uses_all_ten_pods(cluster) -> None:  # noqa: ANN001
    s = Stack(cluster)
    try:
        backend = s.backend("echo-service", replicas=10)
        s.apply(s.ingress("load-balancing", DEFAULT_BACKEND))
        s.wait_route("load-balancing", "/", lambda r: len([e for e in r["backend"]["endpoints"] if e["ready"]]) == 10)
        wait_for("status", lambda: s.ingress_status("load-balancing") == STATUS)
        replies = [s.request("load-balancing", "/") for _ in range(100)]
        assert [r.status for r in replies] == [200] * 100
        pods = Counter(r.pod for r in replies)
        assert set(pods) == {p.name for p in backend.pods}, pods
        # Round-robin: every pod gets its share, none starves.
        assert min(pods.values()) >= 5, pods
    finally:
        print(s.logs())
        s.close()
