"""Routing end to end: what nginx with the module serves must be what the table says."""
import re

import pytest

from conftest import NGINX_CONF, WORKERS, backend, ingress, rule, wait_until

ROUTED = ["foo-root", "foo-api", "foo-api-exact", "foo-v1", "foo-static", "foo-exact-slash", "wild",
          "bar-only", "any"]

# (Host header, path, backend that must answer, or None for 404)
CASES = [
    ("foo.example.com", "/", "foo-root"),
    ("foo.example.com", "/x/y", "foo-root"),
    ("foo.example.com", "/api", "foo-api-exact"),
    ("foo.example.com", "/api?x=1", "foo-api-exact"),
    ("foo.example.com", "/api/", "foo-api"),
    ("foo.example.com", "/apix", "foo-root"),
    ("foo.example.com", "/api/v1", "foo-v1"),
    ("foo.example.com", "/api/v1/", "foo-v1"),
    ("foo.example.com", "/api/v1/users/7", "foo-v1"),
    ("foo.example.com", "/api/v10", "foo-api"),
    ("foo.example.com", "/api/v2", "foo-api"),
    ("FOO.Example.COM", "/api/v2", "foo-api"),
    ("foo.example.com:8080", "/api/v2", "foo-api"),
    ("foo.example.com.", "/api/v2", "foo-api"),
    ("foo.example.com", "/static/app.css", "foo-static"),
    ("foo.example.com", "/exact/", "foo-exact-slash"),
    ("foo.example.com", "/exact", "foo-root"),
    ("a.wild.example.com", "/", "wild"),
    ("a.wild.example.com", "/deep/path", "wild"),
    ("b.a.wild.example.com", "/", None),
    ("wild.example.com", "/", None),
    ("bar.example.com", "/only", "bar-only"),
    ("bar.example.com", "/only/", None),
    ("bar.example.com", "/other", None),
    ("bar.example.com", "/fallback/x", "any"),
    ("unknown.example.com", "/fallback", "any"),
    ("unknown.example.com", "/", None),
    ("127.0.0.1", "/fallback", "any"),
]


def routing_table(b):
    return {
        "backends": [backend(name, [b.endpoint(name)]) for name in ROUTED],
        "ingresses": [
            ingress("foo", [rule("foo.example.com",
                                 ("/", "Prefix", "foo-root"),
                                 ("/api", "Prefix", "foo-api"),
                                 ("/api", "Exact", "foo-api-exact"),
                                 ("/api/v1/", "Prefix", "foo-v1"),
                                 ("/static", "ImplementationSpecific", "foo-static"),
                                 ("/exact/", "Exact", "foo-exact-slash"))]),
            ingress("wild", [rule("*.wild.example.com", ("/", "Prefix", "wild"))], ns="other"),
            ingress("bar", [rule("bar.example.com", ("/only", "Exact", "bar-only")),
                            rule(None, ("/fallback", "Prefix", "any"))]),
        ],
    }


@pytest.fixture
def routed(backends, table, nginx):
    b = backends(ROUTED)
    table.publish(routing_table(b))
    return b, table, nginx()


def test_module_loads_and_shipped_config_passes_nginx_t(table, nginx_config):
    result = nginx_config().test_config()
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


@pytest.mark.parametrize("host,path,expected", CASES)
def test_routing_matches_the_table(routed, host, path, expected):
    _, table, n = routed
    looked_up = table.lookup(host, path)
    assert (looked_up.get("backend", {}).get("service") if looked_up["match"] != "none" else None) == expected
    if expected is None:
        status, _, _ = n.get(host, path)
        assert status == 404
    else:
        reply = n.echo(host, path)
        assert reply["name"] == expected
        assert reply["path"] == path


def test_default_backend_serves_unmatched_requests(backends, table, nginx):
    b = backends(["app", "fallback"])
    table.publish({
        "backends": [backend("app", [b.endpoint("app")]), backend("fallback", [b.endpoint("fallback")])],
        "ingresses": [ingress("app", [rule("app.example.com", ("/", "Prefix", "app"))])],
        "defaultBackend": "fallback",
    })
    n = nginx()
    assert n.echo("app.example.com", "/x")["name"] == "app"
    assert n.echo("nothing.example.com", "/x")["name"] == "fallback"


def test_backend_without_ready_endpoints_is_503(backends, table, nginx):
    b = backends(["down"])
    table.publish({
        "backends": [backend("down", [b.endpoint("down", ready=False)]), backend("none", [])],
        "ingresses": [ingress("i", [rule("down.example.com", ("/", "Prefix", "down")),
                                    rule("none.example.com", ("/", "Prefix", "none"))])],
    })
    n = nginx()
    assert n.get("down.example.com", "/")[0] == 503
    assert n.get("none.example.com", "/")[0] == 503
    assert n.get("other.example.com", "/")[0] == 404


def test_endpoints_of_weight_zero_take_no_share_and_only_zeros_is_503(backends, table, nginx):
    b = backends(["heavy", "idle", "zero1", "zero2"])
    table.publish({
        "backends": [backend("mixed", [b.endpoint("heavy"), b.endpoint("idle", weight=0)]),
                     backend("zeros", [b.endpoint("zero1", weight=0), b.endpoint("zero2", weight=0)])],
        "ingresses": [ingress("i", [rule("mixed.example.com", ("/", "Prefix", "mixed")),
                                    rule("zeros.example.com", ("/", "Prefix", "zeros"))])],
    })
    n = nginx()
    assert {n.echo("mixed.example.com", "/")["name"] for _ in range(20)} == {"heavy"}
    assert [n.get("zeros.example.com", "/")[0] for _ in range(5)] == [503] * 5
    assert n.echo("mixed.example.com", "/")["name"] == "heavy"


def test_no_table_yet_is_503_then_served_after_the_first_publish(backends, table, nginx):
    b = backends(["late"])
    n = nginx()
    for _ in range(6):
        assert n.get("late.example.com", "/")[0] == 503
    warnings = n.error_log().count(f'kroute: no route table in "{table.dir}" yet, answering 503')
    assert 1 <= warnings <= WORKERS  # once per worker, not once per request
    table.publish({"backends": [backend("late", [b.endpoint("late")])],
                   "ingresses": [ingress("i", [rule("late.example.com", ("/", "Prefix", "late"))])]})
    # no control file at start: the reader looks for one at most once a second
    assert wait_until(lambda: n.get("late.example.com", "/")[0] == 200, timeout=3.0)
    assert n.echo("late.example.com", "/")["name"] == "late"


def test_proxy_headers_reach_the_backend(routed):
    _, _, n = routed
    reply = n.echo("foo.example.com:8080", "/x?q=1", headers={"X-Forwarded-For": "203.0.113.9"})
    h = reply["headers"]
    assert reply["host"] == "foo.example.com:8080"
    assert h["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
    assert h["x-forwarded-proto"] == "http"
    assert h["x-forwarded-host"] == "foo.example.com"
    assert h["x-forwarded-port"] == str(n.port)
    assert h["x-real-ip"] == "127.0.0.1"
    assert re.fullmatch(r"[0-9a-f]{32}", h["x-request-id"])
    assert n.echo("foo.example.com", "/", headers={"X-Request-ID": "abc-123"})["headers"]["x-request-id"] == "abc-123"
    assert h.get("connection", "") == ""  # upstream keepalive: no "close"


def test_variables_in_the_access_log(routed):
    _, table, n = routed
    generation = table.generation()
    n.echo("a.wild.example.com", "/v")
    n.get("nothing.example.com", "/v404")
    log = wait_until(lambda: '"GET /v404 HTTP' in n.access_log() and n.access_log())  # logged after the reply
    line = next(l for l in log.splitlines() if '"GET /v HTTP' in l)
    assert "ingress=other/wild" in line
    assert "service=wild" in line
    assert f"generation={generation}" in line
    line = next(l for l in log.splitlines() if '"GET /v404 HTTP' in l)
    assert " 404 " in line and "ingress=-/-" in line and "service=-" in line


def test_bad_directives_fail_nginx_t(table, nginx_config):
    cases = [
        ("kroute_balancer fail_timeout=5s;\n        keepalive 128;", "keepalive 128;\n        kroute_balancer;",
         "must be the first balancer"),
        ("kroute_balancer fail_timeout=5s;", "kroute_balancer fail_timeout=soon;", "invalid fail_timeout"),
        ("kroute_balancer fail_timeout=5s;", "kroute_balancer;\n        server 127.0.0.1:1;", "server"),
        ("kroute_status json;", "kroute_status xml;", "invalid format"),
        (f"kroute_table {table.dir};", f"kroute_table {table.dir};\n    kroute_table /x;", "is duplicate"),
        (f"kroute_table {table.dir};", "kroute_table relative/dir;", "absolute directory"),
        (f"kroute_table {table.dir};", "", "need \"kroute_table\""),
        ("kroute_protocol grpcs @kroute_grpcs;", "kroute_protocol grpcs kroute_grpcs;", "not a named location"),
        ("kroute_protocol grpcs @kroute_grpcs;", "kroute_protocol h3 @kroute_grpcs;", "unknown protocol"),
        ("kroute_protocol grpcs @kroute_grpcs;", "kroute_protocol grpcs @kroute_grpcs;\n"
         "            kroute_protocol grpcs @kroute_https;", "is duplicate"),
        ("kroute_protocol grpcs @kroute_grpcs;", "kroute_protocol grpcs @nowhere;", "does not have"),
    ]
    for old, new, message in cases:
        n = nginx_config()
        text = n.conf.read_text()
        assert text.count(old) == 1, old
        n.conf.write_text(text.replace(old, new))
        result = n.test_config()
        assert result.returncode != 0 and message in result.stderr, (message, result.stderr)


def test_odd_requests_are_answered_and_nginx_keeps_running(routed):
    import socket
    _, table, n = routed
    pids = n.pids()
    assert n.get("a" * 300 + ".example.com", "/")[0] in (400, 404)  # longer than a DNS name
    assert n.echo("foo.example.com", "/" + "x/" * 1500)["name"] == "foo-root"
    # longer than the table's path limit: no route, as the table itself says
    assert table.lookup("foo.example.com", "/" + "x/" * 3000)["match"] == "none"
    assert n.get("foo.example.com", "/" + "x/" * 3000)[0] == 404
    assert n.echo("foo.example.com", "/api/v1/%2e%2e/x")["name"] in {"foo-root", "foo-api", "foo-v1"}
    assert n.get("[::1]", "/")[0] == 404
    assert n.echo("[::1]:80", "/fallback")["name"] == "any"
    with socket.create_connection(("127.0.0.1", n.port), timeout=5) as s:  # HTTP/1.0, no Host at all
        s.sendall(b"GET /fallback HTTP/1.0\r\n\r\n")
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200") and b'"name": "any"' in reply
    assert n.pids() == pids
    assert "[alert]" not in n.error_log() and "[crit]" not in n.error_log()


def test_a_protocol_without_its_location_answers_502_and_says_why(backends, table, nginx):
    """A route asking for gRPC on an nginx.conf without "kroute_protocol grpc": 502 and one error line."""
    b = backends(["grpc-backend"])
    grpc_ingress = ingress("g", [rule("g.example.com", ("/", "Prefix", "grpc-backend"))])
    grpc_ingress["annotations"] = {"nginx.ingress.kubernetes.io/backend-protocol": "GRPC"}
    table.publish({"backends": [backend("grpc-backend", [b.endpoint("grpc-backend")])], "ingresses": [grpc_ingress]})
    text = NGINX_CONF.read_text()
    line = "            kroute_protocol grpc @kroute_grpc;\n"
    assert text.count(line) == 1
    n = nginx(text.replace(line, ""))
    assert n.get("g.example.com", "/")[0] == 502
    assert 'asks for protocol "grpc" but nginx.conf has no "kroute_protocol grpc @location;"' in n.error_log()
