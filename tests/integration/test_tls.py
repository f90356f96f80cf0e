"""TLS from the route table: the certificate callback picks each handshake's certificate by SNI (exact host,
one-label wildcard, the table's default, else the self-signed one kroute_ssl generates), rotation by
publishing a table while clients connect, unusable certificates, HTTP/2, session resumption across workers,
and the HTTP to HTTPS redirect. Certificates are made with openssl in the test."""
import grp
import http.client
import json
import re
import socket
import ssl
import subprocess
import threading
import time

import pytest

from conftest import NGINX_CONF, backend, ingress, rule, wait_until

NGINX_GROUP = "www-data"  # the shipped nginx.conf's "user"; tables holding keys are readable by it only


class Certificates:
    """Self-signed ECDSA certificates with a subjectAltName, one per call."""

    def __init__(self, directory):
        self.dir = directory
        self.count = 0

    def make(self, name, days=2):
        self.count += 1
        key, cert = self.dir / f"{self.count}.key", self.dir / f"{self.count}.crt"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-days", "2", "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
                        "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=30)
        if days != 2:  # re-signed with another validity; -1 makes it expired
            subprocess.run(["openssl", "x509", "-in", str(cert), "-signkey", str(key), "-days", str(days),
                            "-out", str(cert)], check=True, capture_output=True, timeout=30)
        return {"certificate": cert.read_text(), "key": key.read_text()}


@pytest.fixture
def certs(tmp_path):
    return Certificates(tmp_path)


def der(pem):
    return ssl.PEM_cert_to_DER_cert(pem["certificate"])


def client_context(alpn=None, version=None):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the test compares the served certificate itself
    if alpn:
        context.set_alpn_protocols(alpn)
    if version:
        context.minimum_version = context.maximum_version = version
    return context


def handshake(port, server_name, context=None, session=None):
    """The DER of the leaf certificate nginx served for this SNI (None: no SNI)."""
    context = context or client_context()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=server_name, session=session) as s:
            return s.getpeercert(binary_form=True)


def https_get(port, host, path="/", context=None, session=None):
    """(status, body, reused, session) of one request on a new TLS connection with SNI = host."""
    context = context or client_context()
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    conn.sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                                    server_hostname=host, session=session)
    try:
        conn.request("GET", path, headers={"Host": host})
        r = conn.getresponse()
        body = r.read()
        return r.status, body, conn.sock.session_reused, conn.sock.session
    finally:
        conn.close()


def table_with(b, hosts, default=None, ssl_redirect=None):
    """One Ingress per host (name: the host), each with TLS from its own Secret when a certificate is given."""
    ingresses = []
    for i, (host, cert) in enumerate(hosts.items()):
        ing = ingress(f"ing{i}", [rule(host, ("/", "Prefix", "web"))])
        if cert is not None:
            ing["tls"] = [{"hosts": [host], "secretName": f"tls{i}", **cert}]
        if ssl_redirect is not None:
            ing["sslRedirect"] = ssl_redirect
        ingresses.append(ing)
    description = {"backends": [backend("web", [b.endpoint("web")])], "ingresses": ingresses}
    if default is not None:
        description["defaultCertificate"] = default
    return description


@pytest.fixture
def tls_site(backends, table, nginx, certs):
    """nginx with the module, an echo backend, and certificates for a.test, *.wild.test and a default."""
    b = backends(["web"])
    site = {"a": certs.make("a.test"), "wild": certs.make("*.wild.test"), "default": certs.make("default.test")}
    table.publish(table_with(b, {"a.test": site["a"], "*.wild.test": site["wild"]}, site["default"]),
                  group=NGINX_GROUP)
    return b, nginx(), site


def test_certificate_by_sni_exact_wildcard_and_default(tls_site):
    _, n, site = tls_site
    assert handshake(n.tls_port, "a.test") == der(site["a"])
    assert handshake(n.tls_port, "A.Test") == der(site["a"])                 # names are case-insensitive
    assert handshake(n.tls_port, "x.wild.test") == der(site["wild"])         # one label
    assert handshake(n.tls_port, "y.x.wild.test") == der(site["default"])    # not two labels
    assert handshake(n.tls_port, "wild.test") == der(site["default"])        # not zero labels
    assert handshake(n.tls_port, "unknown.test") == der(site["default"])
    assert handshake(n.tls_port, None) == der(site["default"])               # no SNI at all


def test_https_requests_reach_the_backend_with_the_right_certificate(tls_site):
    _, n, _ = tls_site
    for host in ("a.test", "x.wild.test"):
        status, body, _, _ = https_get(n.tls_port, host, "/p?q=1")
        assert status == 200, body[:200]
        echo = json.loads(body)
        assert echo["host"] == host and echo["path"] == "/p?q=1"
        assert echo["headers"].get("x-forwarded-proto") == "https"


def test_certificate_served_with_openssl_s_client_has_the_hosts_san(tls_site):
    _, n, _ = tls_site
    out = subprocess.run(f"openssl s_client -connect 127.0.0.1:{n.tls_port} -servername a.test </dev/null "
                         "2>/dev/null | openssl x509 -noout -ext subjectAltName", shell=True,
                         capture_output=True, text=True, timeout=30)
    assert "DNS:a.test" in out.stdout, out


def test_snapshot_with_keys_is_readable_by_the_nginx_group_only(tls_site, table):
    snapshots = [p for p in table.dir.iterdir() if p.name.startswith("table.")]
    assert snapshots
    for p in snapshots:
        st = p.stat()
        assert st.st_mode & 0o777 == 0o640, oct(st.st_mode)
        assert st.st_gid == grp.getgrnam(NGINX_GROUP).gr_gid


def test_without_a_default_certificate_unknown_names_get_the_generated_one(backends, table, nginx, certs):
    b = backends(["web"])
    a = certs.make("a.test")
    table.publish(table_with(b, {"a.test": a}), group=NGINX_GROUP)
    n = nginx()
    assert handshake(n.tls_port, "a.test") == der(a)
    served = ssl.DER_cert_to_PEM_cert(handshake(n.tls_port, "unknown.test"))
    subject = subprocess.run(["openssl", "x509", "-noout", "-subject"], input=served, capture_output=True,
                             text=True, timeout=30).stdout
    assert "kroute default certificate" in subject


def test_unusable_certificates_fall_back_to_the_default_and_are_logged_once(backends, table, nginx, certs):
    b = backends(["web"])
    good, default, other = certs.make("good.test"), certs.make("default.test"), certs.make("other.test")
    expired = certs.make("expired.test", days=-1)
    bad_pem = {"certificate": "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n",
               "key": good["key"]}
    mismatched = {"certificate": certs.make("mismatch.test")["certificate"], "key": other["key"]}
    hosts = {"good.test": good, "bad.test": bad_pem, "mismatch.test": mismatched, "expired.test": expired}
    table.publish(table_with(b, hosts, default), group=NGINX_GROUP)
    n = nginx()
    for _ in range(10):  # both workers, several handshakes each
        assert handshake(n.tls_port, "bad.test") == der(default)
        assert handshake(n.tls_port, "mismatch.test") == der(default)
        assert handshake(n.tls_port, "expired.test") == der(expired)  # served, as ingress-nginx does
        assert handshake(n.tls_port, "good.test") == der(good)
    status, _, _, _ = https_get(n.tls_port, "bad.test")
    assert status == 200  # the host still serves, with the default certificate
    log = n.error_log()
    assert "BEGIN" not in log and "PRIVATE" not in log  # no PEM, let alone a key, in the log
    errors = [line for line in log.splitlines() if "[error]" in line and "kroute: certificate" in line]
    # One error line per unusable certificate: bad.test and mismatch.test (an expired certificate is served,
    # the agent warns about it; it is never an error per handshake).
    for host in ("bad.test", "mismatch.test"):
        assert len([line for line in errors if f'"{host}"' in line]) <= 1, errors
    assert len([line for line in log.splitlines() if "kroute: certificate" in line]) <= 2 * 3, log


def test_many_unusable_certificates_are_each_logged_once(backends, table, nginx, certs):
    # 30 unusable certificates share nginx's record of what was logged: with fingerprints spread over its
    # slots some always meet in one, and each must still be an error once, not once per worker.
    b = backends(["web"])
    key = certs.make("key.test")["key"]
    hosts = {f"bad{i}.test": {"certificate": f"-----BEGIN CERTIFICATE-----\nbroken {i}\n-----END CERTIFICATE-----\n",
                              "key": key} for i in range(30)}
    table.publish(table_with(b, hosts, certs.make("default.test")), group=NGINX_GROUP)
    n = nginx()
    for _ in range(4):  # both workers see every certificate, interleaved
        for host in hosts:
            handshake(n.tls_port, host)
    errors = [line for line in n.error_log().splitlines() if "[error]" in line and "kroute: certificate" in line]
    for host in hosts:
        assert len([line for line in errors if f'"{host}"' in line]) == 1, (host, errors)


def test_rotation_serves_the_new_certificate_without_a_failed_handshake(backends, table, nginx, certs):
    b = backends(["web"])
    old, new = certs.make("rot.test"), certs.make("rot.test")
    table.publish(table_with(b, {"rot.test": old}), group=NGINX_GROUP)
    n = nginx()
    pids = n.pids()
    seen, failures, stop = [], [], threading.Event()

    def client():
        while not stop.is_set():
            try:
                status, _, _, _ = https_get(n.tls_port, "rot.test")
                cert = handshake(n.tls_port, "rot.test")
                seen.append((time.monotonic(), cert, status))
            except (OSError, ssl.SSLError) as e:
                failures.append(repr(e))

    threads = [threading.Thread(target=client) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        assert wait_until(lambda: len(seen) > 20, timeout=10)
        published = time.monotonic()
        table.publish(table_with(b, {"rot.test": new}), group=NGINX_GROUP)
        assert wait_until(lambda: any(c == der(new) for _, c, _ in seen), timeout=5)
        first_new = min(t for t, c, _ in seen if c == der(new))
        # an idle worker picks the generation up within refresh (1s); then only the new certificate
        assert wait_until(lambda: sum(1 for t, _, _ in seen if t > first_new + 1.1) >= 20, timeout=10)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
    assert failures == []
    assert all(status == 200 for _, _, status in seen)
    assert first_new - published < 1.0
    settled = [c for t, c, _ in seen if t > first_new + 1.1]
    assert settled and all(c == der(new) for c in settled)
    assert n.pids() == pids
    assert "reconfiguring" not in n.error_log() and "signal" not in n.error_log()


def test_http2_end_to_end_through_alpn(tls_site):
    _, n, site = tls_site
    out = subprocess.run(["curl", "-sk", "--http2", "--resolve", f"a.test:{n.tls_port}:127.0.0.1",
                          "-w", "\n%{http_version}", f"https://a.test:{n.tls_port}/h2"],
                         capture_output=True, text=True, timeout=30)
    body, version = out.stdout.rsplit("\n", 1)
    assert version == "2", out
    echo = json.loads(body)
    assert echo["host"] == f"a.test:{n.tls_port}" and echo["path"] == "/h2"
    with socket.create_connection(("127.0.0.1", n.tls_port), timeout=10) as raw:
        with client_context(alpn=["h2", "http/1.1"]).wrap_socket(raw, server_hostname="x.wild.test") as s:
            assert s.selected_alpn_protocol() == "h2"
            assert s.getpeercert(binary_form=True) == der(site["wild"])


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_sessions_resume_across_workers(tls_site, version):
    _, n, site = tls_site
    context = client_context(version=version)
    status, _, reused, session = https_get(n.tls_port, "a.test", context=context)
    assert status == 200 and not reused
    # reuseport spreads new connections over both workers; 30 in a row on one worker is 2^-29 likely
    results = [https_get(n.tls_port, "a.test", context=context, session=session) for _ in range(30)]
    assert all(status == 200 and reused for status, _, reused, _ in results), [r[2] for r in results]
    assert handshake(n.tls_port, "a.test", context=context, session=session) == der(site["a"])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_old_protocols_are_refused(tls_site):
    _, n, _ = tls_site
    with pytest.raises((ssl.SSLError, OSError)):
        context = client_context(version=ssl.TLSVersion.TLSv1_1)
        context.set_ciphers("ALL:@SECLEVEL=0")
        handshake(n.tls_port, "a.test", context=context)


def test_plain_http_to_a_tls_host_is_redirected_with_308(tls_site):
    _, n, _ = tls_site
    status, _, r = n.get("a.test", "/some/path?x=1&y=2")
    assert status == 308
    assert r.getheader("Location") == "https://a.test/some/path?x=1&y=2"
    conn = http.client.HTTPConnection("127.0.0.1", n.port, timeout=10)
    try:
        conn.request("POST", "/form", body=b"data", headers={"Host": "a.test:8080"})
        r = conn.getresponse()
        r.read()
        assert r.status == 308 and r.getheader("Location") == "https://a.test/form"
    finally:
        conn.close()
    # As ingress-nginx: one trailing slash of the request URI goes (preserve-trailing-slash keeps it).
    for path, location in (("/dir/", "https://a.test/dir"), ("/", "https://a.test"), ("/q/?a=/", "https://a.test/q/?a=")):
        status, _, r = n.get("a.test", path)
        assert (status, r.getheader("Location")) == (308, location)


def test_ssl_redirect_opt_out_and_hosts_without_tls_serve_plain_http(backends, table, nginx, certs):
    b = backends(["web"])
    description = table_with(b, {"optout.test": certs.make("optout.test")}, ssl_redirect=False)
    plain = table_with(b, {"plain.test": None})
    plain["ingresses"][0]["name"] = "plain"
    description["ingresses"] += plain["ingresses"]
    table.publish(description, group=NGINX_GROUP)
    n = nginx()
    assert n.echo("optout.test", "/x")["path"] == "/x"
    assert n.echo("plain.test", "/y")["path"] == "/y"
    status, body, _, _ = https_get(n.tls_port, "optout.test")
    assert status == 200, body[:200]


def test_certificate_cache_parses_each_certificate_once_per_worker(tls_site):
    _, n, _ = tls_site
    for _ in range(20):
        handshake(n.tls_port, "a.test")
        handshake(n.tls_port, "x.wild.test")

    def parsed():
        workers = n.status()["workers"]
        return workers if all(w.get("certificatesParsed", 0) >= 1 for w in workers) else None

    workers = wait_until(parsed, timeout=3)
    assert workers, n.status()
    for w in workers:
        assert w["certificatesParsed"] <= 3 and w["certificateFailures"] == 0, w  # a, *.wild and at most default
    assert re.search(r"kroute_tls_certificates_parsed_total", n.metrics())


def test_kroute_ssl_directive_errors_fail_nginx_t(nginx_config):
    shipped = NGINX_CONF.read_text()
    for bad in ("kroute_ssl on cache=0;", "kroute_ssl maybe;", "kroute_ssl on; kroute_ssl on;",
                "kroute_ssl on size=1;"):
        result = nginx_config(shipped.replace("kroute_ssl on;", bad)).test_config()
        assert result.returncode != 0, bad
        assert "[emerg]" in result.stderr, result.stderr
