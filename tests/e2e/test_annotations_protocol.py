"""backend-protocol, proxy-http-version and proxy-ssl-* (ingress-nginx's names and semantics), kubectl to
real backends: a TLS echo server (certificates made here, one CA for the backend and the client
certificate, another that must not verify it), gRPC servers over h2c and TLS (python3-grpcio) reached by a
gRPC client through nginx's HTTP/2 listener, and the plain echo server for HTTP/1.0. Each test checks what
the backend saw (TLS or not, SNI, the client certificate, the HTTP version); bad values end in a Warning
Event and ingress-nginx's default. One stack whose nginx never reloads."""

from __future__ import annotations

import base64
import http.client
import json
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import grpc
import pytest

from agent_fixtures import wait_for
from stack import Reply, Stack, endpoint_slice, module_stack, rule, service  # noqa: F401
from test_annotations import annotated, apply_and_wait, served
from test_hostile import Steady, wait_warning, with_healthy_route

GRPC_SERVER = Path(__file__).resolve().parent / "grpc_server.py"
# The name the TLS backend's certificate carries besides its Service's <service>.<namespace>.svc.
BACKEND_NAME = "backend.proto.test"
TLS_PORT, GRPC_PORT, GRPCS_PORT = 8443, 50051, 50052


# ---- certificates ---------------------------------------------------------------------------------------


class Certificates:
    """A CA, a server certificate it signed (for `names`), a client certificate it signed, and another CA."""

    def __init__(self, workdir: Path, names: list[str]):
        self.dir = workdir
        self.ca = self._ca("ca", "kroute test CA")
        self.other_ca = self._ca("other-ca", "another CA")
        self.server = self._signed("server", names[0], names)
        self.client = self._signed("client", "kroute-client", [])

    def _run(self, *args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)

    def _ca(self, name: str, cn: str) -> tuple[Path, Path]:
        crt, key = self.dir / f"{name}.crt", self.dir / f"{name}.key"
        self._run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                  "-subj", f"/CN={cn}", "-addext", "basicConstraints=critical,CA:TRUE",
                  "-addext", "keyUsage=critical,keyCertSign", "-keyout", str(key), "-out", str(crt))
        return crt, key

    def _signed(self, name: str, cn: str, names: list[str]) -> tuple[Path, Path]:
        crt, key, csr = self.dir / f"{name}.crt", self.dir / f"{name}.key", self.dir / f"{name}.csr"
        self._run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj",
                  f"/CN={cn}", "-keyout", str(key), "-out", str(csr))
        extensions = self.dir / f"{name}.ext"
        extensions.write_text(f"subjectAltName={','.join('DNS:' + n for n in names)}\n" if names else
                              "extendedKeyUsage=clientAuth\n")
        self._run("x509", "-req", "-in", str(csr), "-CA", str(self.ca[0]), "-CAkey", str(self.ca[1]),
                  "-CAcreateserial", "-days", "2", "-extfile", str(extensions), "-out", str(crt))
        return crt, key


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def tls_secret(stack: Stack, name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": stack.namespace},
            "data": {"tls.crt": "", "tls.key": "", **data}}


# ---- the stack ------------------------------------------------------------------------------------------


def pod_backend(stack: Stack, name: str, port: int, start: Any) -> None:
    """A Service `name` on `port` whose one pod runs start(pod)."""
    assert stack.network is not None
    pod = stack.network.add_pod(f"{name}-{stack.network.tag}-{len(stack.network.pods)}")
    start(pod)
    stack.cluster.apply(service(stack.namespace, name, port), endpoint_slice(stack.namespace, name, [pod.address], port))


def grpc_pod(pod: Any, name: str, port: int, cert: tuple[Path, Path] | None) -> None:
    process = pod.popen(["/usr/bin/python3", str(GRPC_SERVER), f"{name}/{pod.name}", f"{pod.address}:{port}",
                         *([str(cert[0]), str(cert[1])] if cert else [])],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline().strip()
    assert line == "ready", f"gRPC server {name} did not start: {line!r}"


@pytest.fixture(scope="module")
def certs(module_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Certificates:  # noqa: F811
    return Certificates(tmp_path_factory.mktemp("proto-tls"),
                        [BACKEND_NAME, f"tls-echo.{module_stack.namespace}.svc", "*.proto.test"])


@pytest.fixture(scope="module")
def stack(module_stack: Stack, certs: Certificates) -> Iterator[Stack]:  # noqa: F811
    """Echo Services `plain` (HTTP) and `tls-echo` (HTTPS, asks for a client certificate of the CA),
    gRPC Services `grpc-h2c` and `grpc-tls`, Secrets `upstream-ca` (the CA and the client certificate),
    `other-ca` (a CA that did not sign the backend) and `front` (nginx's certificate for *.proto.test)."""
    s = with_healthy_route(module_stack, "plain")
    tls_env = {"ECHO_TLS_CERT": str(certs.server[0]), "ECHO_TLS_KEY": str(certs.server[1]),
               "ECHO_TLS_CLIENT_CA": str(certs.ca[0])}
    pod_backend(s, "tls-echo", TLS_PORT, lambda pod: pod.echo([TLS_PORT], name=f"tls-echo/{pod.name}", env=tls_env))
    pod_backend(s, "grpc-h2c", GRPC_PORT, lambda pod: grpc_pod(pod, "grpc-h2c", GRPC_PORT, None))
    pod_backend(s, "grpc-tls", GRPCS_PORT, lambda pod: grpc_pod(pod, "grpc-tls", GRPCS_PORT, certs.server))
    s.apply(tls_secret(s, "upstream-ca", {"ca.crt": b64(certs.ca[0]), "tls.crt": b64(certs.client[0]),
                                          "tls.key": b64(certs.client[1])}),
            tls_secret(s, "other-ca", {"ca.crt": b64(certs.other_ca[0])}),
            tls_secret(s, "front", {"tls.crt": b64(certs.server[0]), "tls.key": b64(certs.server[1])}))
    assert s.nginx is not None
    pids = s.nginx.pids()
    yield s
    assert s.nginx is not None
    assert s.nginx.pids() == pids, "nginx's master or workers changed during the module"


def https_request(stack: Stack, host: str, path: str = "/") -> Reply:
    return stack.request(host, path, tls=True)


def grpc_channel(stack: Stack, certs: Certificates, host: str) -> grpc.Channel:
    """A gRPC channel to nginx's TLS listener (HTTP/2) for `host`, trusting the test CA."""
    assert stack.nginx is not None
    credentials = grpc.ssl_channel_credentials(root_certificates=certs.ca[0].read_bytes())
    return grpc.secure_channel(f"127.0.0.1:{stack.nginx.tls_port}", credentials,
                               options=[("grpc.ssl_target_name_override", host), ("grpc.default_authority", host)])


# ---- HTTPS ----------------------------------------------------------------------------------------------


def test_https_backend_is_reached_over_tls_with_the_client_certificate(stack: Stack) -> None:
    host = "https.proto.test"
    apply_and_wait(stack, annotated(stack, "https", host, [("/", "Prefix", "tls-echo")],
                                    {"backend-protocol": "HTTPS", "proxy-ssl-secret": f"{stack.namespace}/upstream-ca"}))
    reply = stack.request(host, "/x?q=1")
    served(reply, "tls-echo", "/x?q=1", host)
    assert reply.echo["sni"] is None, "SNI is sent only with proxy-ssl-server-name"
    assert reply.echo["client_subject"] == "kroute-client", reply.echo
    assert reply.echo["tls"][0] == "TLSv1.2", "ingress-nginx's proxy-ssl-protocols default with a Secret"
    # Without proxy-ssl-secret: TLS, no client certificate.
    apply_and_wait(stack, annotated(stack, "https-bare", "bare.proto.test", [("/", "Prefix", "tls-echo")],
                                    {"backend-protocol": "https"}))
    reply = stack.request("bare.proto.test", "/")
    served(reply, "tls-echo", "/")
    assert reply.echo["client_subject"] is None
    assert reply.echo["tls"][0] == "TLSv1.3", "without a Secret, nginx.conf's protocols"


def test_proxy_ssl_protocols_and_ciphers_reach_the_handshake(stack: Stack) -> None:
    secret = {"backend-protocol": "HTTPS", "proxy-ssl-secret": f"{stack.namespace}/upstream-ca"}
    apply_and_wait(stack,
                   annotated(stack, "tls13", "tls13.proto.test", [("/", "Prefix", "tls-echo")],
                             {**secret, "proxy-ssl-protocols": "TLSv1.3"}),
                   annotated(stack, "cipher", "cipher.proto.test", [("/", "Prefix", "tls-echo")],
                             {**secret, "proxy-ssl-ciphers": "ECDHE-ECDSA-CHACHA20-POLY1305"}))
    assert stack.request("tls13.proto.test", "/").echo["tls"][0] == "TLSv1.3"
    assert stack.request("cipher.proto.test", "/").echo["tls"] == ["TLSv1.2", "ECDHE-ECDSA-CHACHA20-POLY1305"]


def test_verification_with_the_right_ca_serves_and_sends_the_name_as_sni(stack: Stack) -> None:
    host = "verify.proto.test"
    apply_and_wait(stack, annotated(stack, "verify", host, [("/", "Prefix", "tls-echo")], {
        "backend-protocol": "HTTPS", "proxy-ssl-secret": f"{stack.namespace}/upstream-ca", "proxy-ssl-verify": "on",
        "proxy-ssl-name": BACKEND_NAME, "proxy-ssl-server-name": "on", "proxy-ssl-protocols": "TLSv1.2 TLSv1.3"}))
    reply = stack.request(host, "/")
    served(reply, "tls-echo", "/")
    assert reply.echo["sni"] == BACKEND_NAME


def test_verification_defaults_to_the_service_name(stack: Stack) -> None:
    host = "default-name.proto.test"
    apply_and_wait(stack, annotated(stack, "default-name", host, [("/", "Prefix", "tls-echo")], {
        "backend-protocol": "HTTPS", "proxy-ssl-secret": f"{stack.namespace}/upstream-ca", "proxy-ssl-verify": "on",
        "proxy-ssl-server-name": "on"}))
    reply = stack.request(host, "/")
    served(reply, "tls-echo", "/")
    assert reply.echo["sni"] == f"tls-echo.{stack.namespace}.svc"


def test_verification_fails_closed_with_the_wrong_ca_or_name(stack: Stack) -> None:
    wrong_ca = annotated(stack, "wrong-ca", "wrong-ca.proto.test", [("/", "Prefix", "tls-echo")], {
        "backend-protocol": "HTTPS", "proxy-ssl-secret": f"{stack.namespace}/other-ca", "proxy-ssl-verify": "on",
        "proxy-ssl-name": BACKEND_NAME})
    wrong_name = annotated(stack, "wrong-name", "wrong-name.proto.test", [("/", "Prefix", "tls-echo")], {
        "backend-protocol": "HTTPS", "proxy-ssl-secret": f"{stack.namespace}/upstream-ca", "proxy-ssl-verify": "on",
        "proxy-ssl-name": "impostor.proto.example"})
    apply_and_wait(stack, wrong_ca, wrong_name)
    for host in ("wrong-ca.proto.test", "wrong-name.proto.test"):
        reply = stack.request(host, "/")
        assert reply.status == 502 and not reply.echo, (host, reply.status, reply.echo)
    # The same CA without verification: served (the backend is not checked).
    wrong_ca["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-ssl-verify"] = "off"
    stack.api.replace(wrong_ca)
    wait_for("served without verification", lambda: stack.request("wrong-ca.proto.test", "/").status == 200,
             timeout=10, interval=0.05)


def test_a_missing_secret_or_verification_without_one_answers_503_with_a_warning(stack: Stack,
                                                                                certs: Certificates) -> None:
    with Steady(stack):
        missing = annotated(stack, "missing-secret", "missing.proto.test", [("/", "Prefix", "tls-echo")], {
            "backend-protocol": "HTTPS", "proxy-ssl-secret": f"{stack.namespace}/nope", "proxy-ssl-verify": "on"})
        no_secret = annotated(stack, "no-secret", "no-secret.proto.test", [("/", "Prefix", "tls-echo")], {
            "backend-protocol": "HTTPS", "proxy-ssl-verify": "on"})
        elsewhere = annotated(stack, "elsewhere", "elsewhere.proto.test", [("/", "Prefix", "tls-echo")], {
            "backend-protocol": "HTTPS", "proxy-ssl-secret": "kube-system/upstream-ca"})
        apply_and_wait(stack, missing, no_secret, elsewhere)
        for host in ("missing.proto.test", "no-secret.proto.test", "elsewhere.proto.test"):
            reply = stack.request(host, "/")
            assert reply.status == 503 and not reply.echo, (host, reply.status)
        wait_warning(stack, "missing-secret", "ProxySSLSecretUnusable", "not found")
        wait_warning(stack, "no-secret", "ProxySSLSecretUnusable", "no proxy-ssl-secret")
        wait_warning(stack, "elsewhere", "ProxySSLSecretUnusable", "namespace")
        # The Secret appears: the rule serves, without a reload.
        stack.apply(tls_secret(stack, "nope", {"ca.crt": b64(certs.ca[0])}))
        wait_for("served once the Secret exists", lambda: stack.request("missing.proto.test", "/").status == 200,
                 timeout=10, interval=0.05)


# ---- HTTP/1.0, AUTO_HTTP ----------------------------------------------------------------------------


def test_proxy_http_version_1_0_reaches_the_backend_as_http_1_0(stack: Stack) -> None:
    apply_and_wait(stack,
                   annotated(stack, "http10", "http10.proto.test", [("/", "Prefix", "plain")],
                             {"proxy-http-version": "1.0"}),
                   annotated(stack, "https10", "https10.proto.test", [("/", "Prefix", "tls-echo")],
                             {"proxy-http-version": "1.0", "backend-protocol": "HTTPS"}),
                   annotated(stack, "http11", "http11.proto.test", [("/", "Prefix", "plain")]))
    for host, backend, proto in (("http10.proto.test", "plain", "HTTP/1.0"), ("https10.proto.test", "tls-echo", "HTTP/1.0"),
                                 ("http11.proto.test", "plain", "HTTP/1.1")):
        reply = stack.request(host, "/v")
        served(reply, backend, "/v")
        assert reply.echo["proto"] == proto, (host, reply.echo["proto"])


def test_a_moved_request_ends_cleanly_and_the_client_connection_is_kept(stack: Stack) -> None:
    """The named location takes over the request once: its client connection serves the next request."""
    assert stack.nginx is not None
    host = "keep.proto.test"
    apply_and_wait(stack, annotated(stack, "keep", host, [("/", "Prefix", "tls-echo")], {"backend-protocol": "HTTPS"}))
    conn = http.client.HTTPConnection("127.0.0.1", stack.nginx.port, timeout=10)
    try:
        for i in range(5):
            conn.request("POST", f"/k{i}", body=b"x" * 1000, headers={"Host": host})
            response = conn.getresponse()
            echo = json.loads(response.read())
            assert response.status == 200 and echo["path"] == f"/k{i}" and echo["body_length"] == 1000, echo
            assert not response.will_close
    finally:
        conn.close()


def test_auto_http_follows_the_clients_scheme(stack: Stack) -> None:
    host = "auto.proto.test"
    apply_and_wait(stack, annotated(stack, "auto", host, [("/", "Prefix", "tls-echo")],
                                    {"backend-protocol": "AUTO_HTTP"}))
    served(https_request(stack, host), "tls-echo", "/")
    # Plain HTTP from the client: plain HTTP to the backend, which speaks only TLS.
    assert stack.request(host, "/").status == 502


# ---- gRPC -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol, backend", [("GRPC", "grpc-h2c"), ("GRPCS", "grpc-tls")])
def test_grpc_unary_and_server_streaming_through_kroute(stack: Stack, certs: Certificates, protocol: str,
                                                        backend: str) -> None:
    host = f"{backend}.proto.test"
    apply_and_wait(stack, annotated(stack, backend, host, [("/", "Prefix", backend)], {"backend-protocol": protocol},
                                    tls_secret="front"))
    with grpc_channel(stack, certs, host) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        echo = channel.unary_unary("/kroute.Echo/Echo")
        reply = json.loads(echo(b"hello", timeout=10, metadata=(("x-test", "1"),)))
        assert reply["name"].split("/")[0] == backend and reply["request"] == "hello", reply
        assert reply["metadata"].get("x-test") == "1"
        assert reply["metadata"].get("x-forwarded-host") == host, reply["metadata"]
        count = channel.unary_stream("/kroute.Echo/Count")
        assert [m.decode().split(":")[1] for m in count(b"20", timeout=10)] == [str(i) for i in range(20)]


def test_grpcs_verification_against_the_ca(stack: Stack, certs: Certificates) -> None:
    good, bad = "grpcs-verify.proto.test", "grpcs-wrong.proto.test"
    apply_and_wait(stack,
                   annotated(stack, "grpcs-verify", good, [("/", "Prefix", "grpc-tls")], {
                       "backend-protocol": "GRPCS", "proxy-ssl-secret": f"{stack.namespace}/upstream-ca",
                       "proxy-ssl-verify": "on", "proxy-ssl-name": BACKEND_NAME}, tls_secret="front"),
                   annotated(stack, "grpcs-wrong", bad, [("/", "Prefix", "grpc-tls")], {
                       "backend-protocol": "GRPCS", "proxy-ssl-secret": f"{stack.namespace}/other-ca",
                       "proxy-ssl-verify": "on", "proxy-ssl-name": BACKEND_NAME}, tls_secret="front"))
    with grpc_channel(stack, certs, good) as channel:
        assert json.loads(channel.unary_unary("/kroute.Echo/Echo")(b"v", timeout=10))["request"] == "v"
    with grpc_channel(stack, certs, bad) as channel:
        with pytest.raises(grpc.RpcError) as failed:
            channel.unary_unary("/kroute.Echo/Echo")(b"v", timeout=10)
        assert failed.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNKNOWN), failed.value


# ---- bad values and live changes ------------------------------------------------------------------------


def test_bad_values_warn_and_keep_ingress_nginx_defaults(stack: Stack) -> None:
    host = "bad.proto.test"
    with Steady(stack):
        apply_and_wait(stack, annotated(stack, "bad-values", host, [("/", "Prefix", "plain")], {
            "backend-protocol": "FCGI", "proxy-http-version": "2.0", "proxy-ssl-verify": "maybe",
            "proxy-ssl-protocols": "SSLv3", "proxy-ssl-verify-depth": "-1", "proxy-ssl-ciphers": "A B"}))
        reply = stack.request(host, "/")
        served(reply, "plain", "/")
        assert reply.echo["proto"] == "HTTP/1.1"
        for key in ("backend-protocol", "proxy-http-version", "proxy-ssl-verify", "proxy-ssl-protocols",
                    "proxy-ssl-verify-depth", "proxy-ssl-ciphers"):
            wait_warning(stack, "bad-values", "InvalidAnnotation", f"nginx.ingress.kubernetes.io/{key}")


def test_protocol_changes_under_load_without_a_failed_request_or_a_reload(stack: Stack) -> None:
    host = "switch.proto.test"
    switch = annotated(stack, "switch", host, [("/", "Prefix", "plain")])
    apply_and_wait(stack, switch)
    steps: list[tuple[str, dict[str, str], str, str]] = [
        ("tls-echo", {"backend-protocol": "HTTPS"}, "tls-echo", "HTTP/1.1"),
        ("tls-echo", {"backend-protocol": "HTTPS", "proxy-http-version": "1.0"}, "tls-echo", "HTTP/1.0"),
        ("tls-echo", {"backend-protocol": "HTTPS", "proxy-ssl-secret": f"{stack.namespace}/upstream-ca",
                      "proxy-ssl-verify": "on", "proxy-ssl-name": BACKEND_NAME}, "tls-echo", "HTTP/1.1"),
        ("plain", {"proxy-http-version": "1.0"}, "plain", "HTTP/1.0"),
        ("plain", {"backend-protocol": "AUTO_HTTP"}, "plain", "HTTP/1.1"),
        ("plain", {}, "plain", "HTTP/1.1"),
    ]
    with Steady(stack, host):
        for backend, annotations, answered_by, proto in steps:
            switch["spec"]["rules"] = [rule(host, ("/", "Prefix", backend))]
            switch["metadata"]["annotations"] = {f"nginx.ingress.kubernetes.io/{k}": v for k, v in annotations.items()}
            stack.api.replace(switch)

            def now() -> bool:
                reply = stack.request(host, "/")
                return reply.status == 200 and reply.service == answered_by and reply.echo["proto"] == proto
            wait_for(f"{annotations} served", now, timeout=10, interval=0.02)
            time.sleep(0.2)
