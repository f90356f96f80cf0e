"""Client certificates (ingress-nginx's auth-tls-* annotations): real Ingresses and Secrets through the agent,
nginx with the module, and TLS clients with certificates made here by openssl (a CA and a client it signed, an
intermediate CA and a client it signed, another CA and its client). Each test checks what the client gets
(200, 400 as nginx answers a missing or failed certificate, 403 for match-cn, the error page's 302, 421 for a
connection whose SNI named another host) and what the echo backend saw (ssl-client-* headers). Every
fail-closed case: missing Secret, no ca.crt, bad PEM, bad verify-client, bad match-cn: 503 and a Warning Event,
then fixed: live. A CA rotation is live too; nginx never reloads."""

from __future__ import annotations

import base64
import datetime
import http.client
import json
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from agent_fixtures import TABLE_TOOL, dump_table, wait_for
from stack import Reply, Stack, module_stack, rule  # noqa: F401
from test_annotations import annotated, apply_and_wait
from test_hostile import wait_warning, with_healthy_route

CA_SECRET = "client-ca"


# ---- certificates ---------------------------------------------------------------------------------------


class Certificates:
    """CA `ca` with client `client` (CN=kroute-client), intermediates `inter` (signed by `ca`) and `inter2`
    (signed by `inter`) with client `deep` (CN=deep-client, signed by `inter2`, sent with both
    intermediates: OpenSSL's depth 1 allows one, 2 two), and `other` with client `stranger`."""

    def __init__(self, workdir: Path):
        self.dir = workdir
        self.ca = self._ca("ca", "kroute client CA", None)
        self.inter = self._ca("inter", "kroute intermediate CA", self.ca)
        self.inter2 = self._ca("inter2", "kroute second intermediate CA", self.inter)
        self.other = self._ca("other", "another CA", None)
        self.client = self._leaf("client", "kroute-client", self.ca)
        self.deep = self._leaf("deep", "deep-client", self.inter2)
        self.stranger = self._leaf("stranger", "kroute-client", self.other)
        self.revoked = self._leaf("revoked", "revoked-client", self.ca)
        self.deep_chain = self.dir / "deep-chain.crt"
        self.deep_chain.write_bytes(self.deep[0].read_bytes() + self.inter2[0].read_bytes() + self.inter[0].read_bytes())

    def _run(self, *args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)

    def _key_and_csr(self, name: str, cn: str) -> tuple[Path, Path]:
        key, csr = self.dir / f"{name}.key", self.dir / f"{name}.csr"
        self._run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj",
                  f"/CN={cn}", "-keyout", str(key), "-out", str(csr))
        return key, csr

    def _sign(self, name: str, csr: Path, issuer: tuple[Path, Path], extensions: str) -> Path:
        crt, ext = self.dir / f"{name}.crt", self.dir / f"{name}.ext"
        ext.write_text(extensions)
        self._run("x509", "-req", "-in", str(csr), "-CA", str(issuer[0]), "-CAkey", str(issuer[1]),
                  "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(crt))
        return crt

    def _ca(self, name: str, cn: str, issuer: tuple[Path, Path] | None) -> tuple[Path, Path]:
        if issuer is None:
            crt, key = self.dir / f"{name}.crt", self.dir / f"{name}.key"
            self._run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                      "-subj", f"/CN={cn}", "-addext", "basicConstraints=critical,CA:TRUE",
                      "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-keyout", str(key), "-out", str(crt))
            return crt, key
        key, csr = self._key_and_csr(name, cn)
        return self._sign(name, csr, issuer, "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"), key

    def _leaf(self, name: str, cn: str, issuer: tuple[Path, Path]) -> tuple[Path, Path]:
        key, csr = self._key_and_csr(name, cn)
        return self._sign(name, csr, issuer, "extendedKeyUsage=clientAuth\n"), key


def crl(ca: tuple[Path, Path], revoked: list[Path]) -> bytes:
    """A CRL of `ca` (PEM) that revokes the certificates `revoked`."""
    issuer = x509.load_pem_x509_certificate(ca[0].read_bytes())
    key = serialization.load_pem_private_key(ca[1].read_bytes(), None)
    now = datetime.datetime.utcnow()
    builder = (x509.CertificateRevocationListBuilder().issuer_name(issuer.subject)
               .last_update(now - datetime.timedelta(hours=1)).next_update(now + datetime.timedelta(days=1)))
    for path in revoked:
        serial = x509.load_pem_x509_certificate(path.read_bytes()).serial_number
        builder = builder.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(serial)
                                                  .revocation_date(now - datetime.timedelta(hours=1)).build())
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def ca_secret(stack: Stack, name: str, data: dict[str, bytes]) -> dict[str, Any]:
    """An Opaque Secret (auth-tls-secret takes any type)."""
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": stack.namespace},
            "data": {k: b64(v) for k, v in data.items()}}


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return Certificates(tmp_path_factory.mktemp("client-certs"))


@pytest.fixture(scope="module")
def stack(module_stack: Stack, certs: Certificates) -> Iterator[Stack]:  # noqa: F811
    """Echo Service `app` and Secret client-ca (ca.crt: the CA)."""
    s = with_healthy_route(module_stack, "app")
    s.apply(ca_secret(s, CA_SECRET, {"ca.crt": certs.ca[0].read_bytes()}))
    assert s.nginx is not None
    pids = s.nginx.pids()
    yield s
    assert s.nginx is not None
    assert s.nginx.pids() == pids, "nginx's master or workers changed during the module"


def request(stack: Stack, host: str, cert: tuple[Path, Path] | Path | None = None, path: str = "/",
            sni: str | None = None, headers: dict[str, str] | None = None) -> Reply:
    """One HTTPS request on a new connection with SNI `sni` (default: host), presenting `cert` (a
    certificate and key, or a file with both the chain and key) when the server asks for one."""
    assert stack.nginx is not None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if isinstance(cert, tuple):
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    conn = http.client.HTTPSConnection("127.0.0.1", stack.nginx.tls_port, timeout=10, context=context)
    sock = socket.create_connection(("127.0.0.1", stack.nginx.tls_port), timeout=10)
    conn.sock = context.wrap_socket(sock, server_hostname=sni or host)
    try:
        conn.request("GET", path, headers={"Host": host, **(headers or {})})
        response = conn.getresponse()
        data = response.read()
        reply = Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
        if response.getheader("X-Backend") and data:
            reply.echo = json.loads(data)
        return reply
    finally:
        conn.close()


def deep_client(certs: Certificates) -> tuple[Path, Path]:
    return certs.deep_chain, certs.deep[1]


def mtls(stack: Stack, name: str, host: str, annotations: dict[str, str] | None = None,
         paths: list[tuple[str, str, str]] | None = None) -> dict[str, Any]:
    return annotated(stack, name, host, paths or [("/", "Prefix", "app")],
                     {"auth-tls-secret": f"{stack.namespace}/{CA_SECRET}", **(annotations or {})})


def wait_reply(stack: Stack, host: str, status: int, cert: Any = None, **kwargs: Any) -> Reply:
    return wait_for(f"HTTPS {status} from {host}",
                    lambda: (lambda r: r if r.status == status else None)(request(stack, host, cert, **kwargs)),
                    timeout=20, interval=0.05)


# ---- verify-client on (the default) -----------------------------------------------------------------------


def test_on_a_certificate_of_the_ca_passes_and_none_or_another_gets_400(stack: Stack, certs: Certificates) -> None:
    host = "on.cc.test"
    apply_and_wait(stack, mtls(stack, "cc-on", host, {"auth-tls-pass-certificate-to-upstream": "true"}))
    reply = wait_reply(stack, host, 200, certs.client, headers={"ssl-client-verify": "SUCCESS-forged",
                                                                "ssl-client-subject-dn": "CN=admin"})
    seen = reply.echo["headers"]
    assert seen["ssl-client-verify"] == "SUCCESS", seen
    assert seen["ssl-client-subject-dn"] == "CN=kroute-client", seen
    assert seen["ssl-client-issuer-dn"] == "CN=kroute client CA", seen
    assert seen["ssl-client-cert"].startswith("-----BEGIN%20CERTIFICATE-----%0A"), seen
    # no certificate, or one of another CA: nginx's own 400 pages
    none = request(stack, host)
    assert none.status == 400 and b"No required SSL certificate" in none.body, (none.status, none.body[:200])
    stranger = request(stack, host, certs.stranger)
    assert stranger.status == 400 and b"SSL certificate error" in stranger.body, (stranger.status, stranger.body[:200])
    # a host without auth-tls sends no ssl-client-* headers, whatever the client sent
    plain = annotated(stack, "cc-plain", "plain.cc.test", [("/", "Prefix", "app")])
    apply_and_wait(stack, plain)
    other = wait_reply(stack, "plain.cc.test", 200, certs.client, headers={"ssl-client-verify": "SUCCESS"})
    assert not any(k.startswith("ssl-client") for k in other.echo["headers"]), other.echo["headers"]


def test_the_table_holds_one_host_wide_record_and_dump_keeps_it_on_one_line(stack: Stack, certs: Certificates) -> None:
    host = "dump.cc.test"
    apply_and_wait(stack, mtls(stack, "cc-dump", host, {"auth-tls-match-cn": "CN=kroute-client"}))
    assert stack.agent is not None
    table = dump_table(stack.agent.table_dir)
    assert table is not None
    entry = next(h for h in table["hosts"] if h.get("host", h.get("name")) == host)
    records = [p for p in entry.get("policies", []) if p["kind"] == "client-cert"]
    assert len(records) == 1 and records[0]["value"] == certs.ca[0].read_text(), records
    assert records[0]["value2"].endswith("CN=kroute-client"), records
    assert not any(p["kind"] == "client-cert" for r in entry["rules"] for p in r.get("policies", []))
    text = subprocess.run([str(TABLE_TOOL), "--dir", str(stack.agent.table_dir), "dump"], capture_output=True,
                          text=True, check=True, timeout=30).stdout
    line = next(line for line in text.splitlines() if host in line)
    assert "client-cert (" in line and "BEGIN" not in text, line


def test_the_whole_host_asks_also_for_paths_of_other_ingresses(stack: Stack, certs: Certificates) -> None:
    host = "shared.cc.test"
    apply_and_wait(stack, mtls(stack, "cc-shared", host, paths=[("/secure", "Prefix", "app")]),
                   annotated(stack, "cc-shared-open", host, [("/open", "Prefix", "app")]))
    wait_reply(stack, host, 200, certs.client, path="/open")
    assert request(stack, host, path="/open").status == 400
    assert request(stack, host, path="/secure").status == 400


def test_a_connection_whose_sni_named_another_host_gets_421(stack: Stack, certs: Certificates) -> None:
    host = "sni.cc.test"
    apply_and_wait(stack, mtls(stack, "cc-sni", host),
                   annotated(stack, "cc-sni-plain", "open.cc.test", [("/", "Prefix", "app")]))
    wait_reply(stack, host, 200, certs.client)
    assert request(stack, host, certs.client, sni="open.cc.test").status == 421
    assert request(stack, host, sni="open.cc.test").status == 421


# ---- optional, optional_no_ca, depth, match-cn, error page ------------------------------------------------


def test_optional_passes_without_a_certificate_but_not_with_a_bad_one(stack: Stack, certs: Certificates) -> None:
    host = "optional.cc.test"
    apply_and_wait(stack, mtls(stack, "cc-optional", host, {"auth-tls-verify-client": "optional"}))
    reply = wait_reply(stack, host, 200)
    assert reply.echo["headers"]["ssl-client-verify"] == "NONE", reply.echo["headers"]
    assert request(stack, host, certs.client).status == 200
    assert request(stack, host, certs.stranger).status == 400


def test_optional_no_ca_passes_a_bad_certificate_with_its_verdict(stack: Stack, certs: Certificates) -> None:
    host = "noca.cc.test"
    apply_and_wait(stack, mtls(stack, "cc-noca", host, {"auth-tls-verify-client": "optional_no_ca"}))
    reply = wait_reply(stack, host, 200, certs.stranger)
    assert reply.echo["headers"]["ssl-client-verify"].startswith("FAILED:"), reply.echo["headers"]
    assert request(stack, host).status == 200
    assert request(stack, host, certs.client).echo["headers"]["ssl-client-verify"] == "SUCCESS"


def test_verify_depth_limits_the_chain(stack: Stack, certs: Certificates) -> None:
    host = "depth.cc.test"
    apply_and_wait(stack, mtls(stack, "cc-depth", host))
    wait_reply(stack, host, 200, certs.client)
    assert request(stack, host, deep_client(certs)).status == 400  # depth 1: one intermediate only
    stack.apply(mtls(stack, "cc-depth", host, {"auth-tls-verify-depth": "2"}))
    wait_reply(stack, host, 200, deep_client(certs))


def test_match_cn_refuses_other_subjects_with_403(stack: Stack, certs: Certificates) -> None:
    host = "cn.cc.test"
    apply_and_wait(stack, mtls(stack, "cc-cn", host, {"auth-tls-match-cn": "CN=kroute-client$"}))
    wait_reply(stack, host, 200, certs.client)
    assert request(stack, host, deep_client(certs)).status == 400  # the chain fails first
    stack.apply(mtls(stack, "cc-cn", host, {"auth-tls-match-cn": "CN=deep-client", "auth-tls-verify-depth": "2"}))
    wait_reply(stack, host, 200, deep_client(certs))
    assert request(stack, host, certs.client).status == 403


def test_error_page_redirects_a_refused_client(stack: Stack, certs: Certificates) -> None:
    host = "errorpage.cc.test"
    page = "https://login.example.com/certificate-needed"
    apply_and_wait(stack, mtls(stack, "cc-page", host, {"auth-tls-error-page": page}))
    wait_reply(stack, host, 200, certs.client)
    for cert in (None, certs.stranger):
        reply = request(stack, host, cert)
        assert (reply.status, reply.headers.get("location")) == (302, page), (reply.status, reply.headers)


# ---- fail closed, then fixed and live ---------------------------------------------------------------------


def test_a_missing_secret_answers_503_until_it_exists(stack: Stack, certs: Certificates) -> None:
    host = "missing.cc.test"
    ing = annotated(stack, "cc-missing", host, [("/", "Prefix", "app")],
                    {"auth-tls-secret": f"{stack.namespace}/late-ca"})
    apply_and_wait(stack, ing)
    wait_reply(stack, host, 503, certs.client)
    wait_warning(stack, "cc-missing", "ClientCertSecretUnusable", "late-ca not found")
    stack.apply(ca_secret(stack, "late-ca", {"ca.crt": certs.ca[0].read_bytes()}))
    wait_reply(stack, host, 200, certs.client)
    assert request(stack, host).status == 400


@pytest.mark.parametrize("name,data,text", [
    ("noca", {"auth": b"user:$apr1$abcdefgh$0123456789012345678901\n"}, "has no ca.crt"),
    ("badpem", {"ca.crt": b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n"}, "ca.crt"),
])
def test_an_unusable_secret_answers_503_until_fixed(stack: Stack, certs: Certificates, name: str,
                                                    data: dict[str, bytes], text: str) -> None:
    host = f"{name}.cc.test"
    secret = f"ca-{name}"
    stack.apply(ca_secret(stack, secret, data))
    apply_and_wait(stack, annotated(stack, f"cc-{name}", host, [("/", "Prefix", "app")],
                                    {"auth-tls-secret": f"{stack.namespace}/{secret}"}))
    wait_reply(stack, host, 503, certs.client)
    events = wait_warning(stack, f"cc-{name}", "ClientCertSecretUnusable", text)
    assert "not base64" not in json.dumps(events)
    stack.apply(ca_secret(stack, secret, {"ca.crt": certs.ca[0].read_bytes()}))
    wait_reply(stack, host, 200, certs.client)


def test_ca_crl_refuses_revoked_certificates(stack: Stack, certs: Certificates) -> None:
    host = "crl.cc.test"
    stack.apply(ca_secret(stack, "crl-ca", {"ca.crt": certs.ca[0].read_bytes(),
                                            "ca.crl": crl(certs.ca, [certs.revoked[0]])}))
    apply_and_wait(stack, annotated(stack, "cc-crl", host, [("/", "Prefix", "app")],
                                    {"auth-tls-secret": f"{stack.namespace}/crl-ca"}))
    wait_reply(stack, host, 200, certs.client)
    assert request(stack, host, certs.revoked).status == 400
    # a ca.crl that is not CRLs: 503 until fixed; a CRL that no longer lists it: live
    stack.apply(ca_secret(stack, "crl-ca", {"ca.crt": certs.ca[0].read_bytes(), "ca.crl": certs.ca[0].read_bytes()}))
    wait_reply(stack, host, 503, certs.client)
    wait_warning(stack, "cc-crl", "ClientCertSecretUnusable", "ca.crl")
    stack.apply(ca_secret(stack, "crl-ca", {"ca.crt": certs.ca[0].read_bytes(), "ca.crl": crl(certs.ca, [])}))
    wait_reply(stack, host, 200, certs.revoked)


@pytest.mark.parametrize("annotation,value", [
    ("auth-tls-verify-client", "sometimes"),
    ("auth-tls-match-cn", "CN=(unclosed"),
    ("auth-tls-match-cn", "kroute-client"),
    ("auth-tls-verify-depth", "-1"),
    ("auth-tls-error-page", "/relative"),
    ("auth-tls-secret", "no-namespace"),
])
def test_a_bad_value_answers_503_with_a_warning(stack: Stack, certs: Certificates, annotation: str,
                                                value: str) -> None:
    host = "bad.cc.test"
    apply_and_wait(stack, mtls(stack, "cc-bad", host, {annotation: value}))
    wait_reply(stack, host, 503, certs.client)
    wait_warning(stack, "cc-bad", "AccessAnnotationInvalid", annotation)
    stack.apply(mtls(stack, "cc-bad", host))
    wait_reply(stack, host, 200, certs.client)


def test_a_ca_rotation_is_live(stack: Stack, certs: Certificates) -> None:
    host = "rotate.cc.test"
    stack.apply(ca_secret(stack, "rotating-ca", {"ca.crt": certs.ca[0].read_bytes()}))
    apply_and_wait(stack, annotated(stack, "cc-rotate", host, [("/", "Prefix", "app")],
                                    {"auth-tls-secret": f"{stack.namespace}/rotating-ca"}))
    wait_reply(stack, host, 200, certs.client)
    assert request(stack, host, certs.stranger).status == 400
    # a connection kept open across the rotation was verified against the old CA: 421, not served
    assert stack.nginx is not None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(str(certs.client[0]), str(certs.client[1]))
    kept = http.client.HTTPSConnection("127.0.0.1", stack.nginx.tls_port, timeout=10, context=context)
    kept.sock = context.wrap_socket(socket.create_connection(("127.0.0.1", stack.nginx.tls_port), timeout=10),
                                    server_hostname=host)
    try:
        kept.request("GET", "/", headers={"Host": host})
        first = kept.getresponse()
        first.read()
        assert first.status == 200
        stack.apply(ca_secret(stack, "rotating-ca", {"ca.crt": certs.other[0].read_bytes()}))
        wait_reply(stack, host, 200, certs.stranger)
        kept.request("GET", "/", headers={"Host": host})
        again = kept.getresponse()
        again.read()
        assert again.status == 421
    finally:
        kept.close()
    assert request(stack, host, certs.client).status == 400


# ---- sessions -------------------------------------------------------------------------------------------


def handshake(stack: Stack, host: str, context: ssl.SSLContext, session: ssl.SSLSession | None) -> tuple[int, bool, Any]:
    """A request on a new connection offering `session`: (status, whether it was resumed, the new session)."""
    assert stack.nginx is not None
    sock = socket.create_connection(("127.0.0.1", stack.nginx.tls_port), timeout=10)
    with context.wrap_socket(sock, server_hostname=host, session=session) as tls:
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while piece := tls.recv(65536):
            data += piece
        return int(data.split(b" ", 2)[1]), tls.session_reused, tls.session


def test_a_session_with_a_client_certificate_is_never_resumed(stack: Stack, certs: Certificates) -> None:
    stack.apply(ca_secret(stack, "resume-other-ca", {"ca.crt": certs.other[0].read_bytes()}))
    apply_and_wait(stack, mtls(stack, "cc-resume", "resume.cc.test"),
                   annotated(stack, "cc-resume-other", "resume-other.cc.test", [("/", "Prefix", "app")],
                             {"auth-tls-secret": f"{stack.namespace}/resume-other-ca"}),
                   annotated(stack, "cc-resume-plain", "resume-plain.cc.test", [("/", "Prefix", "app")]))
    wait_reply(stack, "resume.cc.test", 200, certs.client)
    wait_reply(stack, "resume-other.cc.test", 200, certs.stranger)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(str(certs.client[0]), str(certs.client[1]))
    # the test sees resumption where there is some: a host without client certificates resumes
    _, _, session = handshake(stack, "resume-plain.cc.test", context, None)
    assert handshake(stack, "resume-plain.cc.test", context, session)[1]
    # such a session, offered to a host that asks for certificates, was never verified there: 421
    assert handshake(stack, "resume.cc.test", context, session)[0] == 421
    # a session verified under one host's CA is resumed neither there nor at a host of another CA
    status, _, session = handshake(stack, "resume.cc.test", context, None)
    assert status == 200
    assert handshake(stack, "resume.cc.test", context, session)[:2] == (200, False)
    assert handshake(stack, "resume-other.cc.test", context, session)[:2] == (400, False)
