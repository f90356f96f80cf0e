"""The Gateway API's HTTPRoute features in the table, end to end through nginx: match conditions (method,
headers, query parameters) and their precedence, weighted backends (split records), and request and
response header modifiers. Tables are published by kroute-table from descriptions shaped as the agent
compiles HTTPRoutes; the echo backends say what they received."""
import http.client
import json
import re

import pytest

from conftest import backend, ingress, wait_until

NAMES = ["v1", "v2", "v3", "fallback", "w1", "w2", "w3"]


def path(p, backend_name, conditions=None, policies=None, path_type="Prefix"):
    entry = {"path": p, "pathType": path_type, "backend": backend_name}
    if conditions:
        entry["conditions"] = conditions
    if policies:
        entry["policies"] = policies
    return entry


def route(name, host, paths, created="2026-01-01T00:00:00Z"):
    """An HTTPRoute as the agent compiles it: one source, its rules' matches as paths."""
    r = ingress(name, [{"host": host, "paths": paths}], ns="gw", created=created)
    r.update({"sslRedirect": False, "kind": "HTTPRoute"})
    return r


def header(name, value):
    return {"header": name, "value": value}


def query(name, value):
    return {"query": name, "value": value}


def split(backend_name, weight):
    record = {"kind": "split", "value": weight}
    if backend_name is not None:
        record["backend"] = backend_name
    return record


def request_header(action, name, value=None):
    record = {"kind": "request-header", "code": action, "a": name}
    if value is not None:
        record["b"] = value
    return record


def response_header(action, name, value=None):
    record = {"kind": "response-header", "code": action, "a": name}
    if value is not None:
        record["b"] = value
    return record


CREDENTIALS, ANY_ORIGIN, ANY_DEPTH, ECHO = 1, 2, 4, 8  # routetable/policy/cors.h


def cors(flags, origins, methods, headers, expose, max_age):
    """A kCors record with the Gateway API's semantics (any-depth wildcards, "*" echoed)."""
    return {"kind": "cors", "flags": flags | ANY_DEPTH | ECHO, "value": max_age, "a": origins,
            "b": f"{methods}\n{headers}\n{expose}"}


def gateway_table(b):
    return {
        "backends": [backend(name, [b.endpoint(name)]) for name in NAMES],
        "ingresses": [
            # HTTPRouteHeaderMatching, HTTPRouteQueryParamMatching and HTTPRouteMethodMatching, on one key
            route("matching", "match.test", [
                path("/", "v1", [header("version", "one")]),
                path("/", "v2", [header("version", "two")]),
                path("/", "v3", [header("version", "two"), header("color", "orange")]),
                path("/", "v1", [header("color", "blue")]),
                path("/", "v2", [header("x-list", "a, b")]),
                path("/", "v3", [{"header": "x-version", "regex": "v[0-9]+"}]),
                path("/query", "v1", [query("animal", "whale")]),
                path("/query", "v2", [query("animal", "dolphin")]),
                path("/query", "v3", [query("animal", "dolphin"), query("color", "blue")]),
                path("/query", "v1", [{"query": "id", "regex": "[0-9]+ [0-9]+"}]),
                path("/method", "v2", [{"method": "POST"}]),
                path("/method", "v3", [{"method": "GET"}, header("version", "two")]),
                path("/method", "v1"),
                path("/deep/er", "v3", [header("deep", "yes")]),
                path("/deep", "v2", [header("deep", "yes")]),
                path("/deep", "v1", [query("deep", "yes")]),
                path("/exact", "v2", [{"method": "DELETE"}], path_type="Exact"),
            ]),
            route("fallback", "match.test", [path("/", "fallback")]),
            # Across routes: more headers win over an older route; on a tie the older route wins.
            route("young", "cross.test", [path("/", "v1", [header("a", "1"), header("b", "1")]),
                                          path("/", "v2", [query("q", "1")])], created="2026-02-01T00:00:00Z"),
            route("old", "cross.test", [path("/", "v3", [query("r", "1")])], created="2026-01-01T00:00:00Z"),
            route("weights", "weights.test", [
                path("/split", "w1", policies=[split("w1", 3), split("w2", 1), split("w3", 0)]),
                path("/invalid", "w1", policies=[split("w1", 1), split(None, 1)]),
                path("/all-invalid", "w1", policies=[split(None, 1)]),
                path("/zero", "w1", policies=[split("w1", 0), split("w2", 0)]),
                path("/one", "w1", policies=[split("w2", 5)]),
                # HTTPRouteBackendRequestHeaderModification: each backendRef's filters, for its share only
                path("/per-backend", "w1", policies=[
                    split("w1", 1), split("w2", 1),
                    request_header("set", "Backend", "all"),
                    dict(request_header("set", "Backend", "w1"), backend="w1"),
                    dict(request_header("add", "X-Only-W2", "yes"), backend="w2"),
                    dict(response_header("set", "X-Chosen", "w1"), backend="w1")]),
            ]),
            route("request-headers", "req.test", [
                path("/set", "v1", policies=[request_header("set", "X-Header-Set", "set-overwrites-values")]),
                path("/add", "v1", policies=[request_header("add", "X-Header-Add", "add-appends-values")]),
                path("/remove", "v1", policies=[request_header("remove", "X-Header-Remove")]),
                path("/multiple", "v1", policies=[
                    request_header("set", "X-Header-Set-1", "header-set-1"),
                    request_header("set", "X-Header-Set-2", "header-set-2"),
                    request_header("add", "X-Header-Add-1", "header-add-1"),
                    request_header("add", "X-Header-Add-2", "header-add-2"),
                    request_header("add", "X-Header-Add-3", "header-add-3"),
                    request_header("remove", "X-Header-Remove-1"),
                    request_header("remove", "X-Header-Remove-2")]),
                path("/case", "v1", policies=[request_header("set", "X-Header-Set", "header-set"),
                                              request_header("add", "X-Header-Add", "header-add"),
                                              request_header("remove", "X-Header-Remove")]),
                path("/host", "v1", policies=[request_header("set", "Host", "rewritten.test")]),
                path("/known", "v1", policies=[request_header("remove", "User-Agent"),
                                               request_header("remove", "X-Pad-0"),
                                               request_header("remove", "X-Pad-21"),
                                               request_header("set", "X-Pad-5", "five")]),
                path("/add-known", "v1", policies=[request_header("add", "Cookie", "added=1"),
                                                   request_header("set", "Referer", "https://ref.test/")]),
            ]),
            route("response-headers", "resp.test", [
                path("/set", "v1", policies=[response_header("set", "X-Backend", "replaced")]),
                path("/add", "v1", policies=[response_header("add", "X-Backend", "extra"),
                                             response_header("add", "X-Added", "one")]),
                path("/remove", "v1", policies=[response_header("remove", "x-backend"),
                                                response_header("remove", "X-From-Backend"),
                                                response_header("remove", "Server"),
                                                response_header("remove", "Date")]),
                path("/server", "v1", policies=[response_header("set", "Server", "kroute-test"),
                                                response_header("set", "Content-Type", "text/x-kroute")]),
                path("/error", "v1", policies=[split(None, 1), response_header("add", "X-Added", "on-errors-too")]),
            ]),
            # HTTPRouteCORS: kCors records with the Gateway API's flags, as the agent makes them
            route("cors", "cors.test", [
                path("/list", "v1", policies=[cors(CREDENTIALS, "https://www.foo.com https://*.bar.com",
                                                   "GET, OPTIONS", "x-header-1, x-header-2", "x-header-3", 3600)]),
                path("/any", "v1", policies=[cors(CREDENTIALS | ANY_ORIGIN, "", "*", "*", "", 5)]),
                path("/open", "v1", policies=[cors(ANY_ORIGIN, "", "*", "*", "*", 5)]),
            ]),
        ],
    }


@pytest.fixture
def gateway(backends, table, nginx):
    b = backends(NAMES)
    table.publish(gateway_table(b))
    return table, nginx()


def send(n, host, target, method="GET", headers=()):
    """One request; `headers` is a list of (name, value), names may repeat; with host None, the Host header is
    one of them, where it stands. (status, reply JSON or body, headers)."""
    conn = http.client.HTTPConnection("127.0.0.1", n.port, timeout=10)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        if host is not None:
            conn.putheader("Host", host)
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders()
        r = conn.getresponse()
        body = r.read()
        try:
            body = json.loads(body)
        except ValueError:
            pass
        return r.status, body, r.getheaders()
    finally:
        conn.close()


def served_by(n, host, target, method="GET", headers=()):
    """The backend that answered (its X-Backend header: HEAD has no body), or the status."""
    status, _, reply_headers = send(n, host, target, method, headers)
    if status != 200:
        return status
    return dict(reply_headers)["X-Backend"]


# (method, path, request headers, who serves it): the conformance cases and kroute's own
MATCHES = [
    ("GET", "/", [("Version", "one")], "v1"),
    ("GET", "/", [("version", "two")], "v2"),
    ("GET", "/", [("Version", "two"), ("Color", "orange")], "v3"),
    ("GET", "/", [("Version", "two"), ("Color", "blue")], "v2"),
    ("GET", "/", [("Color", "blue")], "v1"),
    ("GET", "/", [("Version", "TWO")], "fallback"),
    ("GET", "/", [("Some-Other-Header", "one")], "fallback"),
    ("GET", "/", [("X-List", "a"), ("x-list", "b")], "v2"),  # repeated headers are one list
    ("GET", "/", [("X-List", "a")], "fallback"),
    ("GET", "/", [("X-Version", "v12")], "v3"),
    ("GET", "/", [("X-Version", "v12-rc")], "fallback"),  # a regex matches the whole value
    ("GET", "/query?animal=whale", [], "v1"),
    ("GET", "/query?animal=dolphin", [], "v2"),
    ("GET", "/query?animal=dolphin&color=blue", [], "v3"),
    ("GET", "/query?ANIMAL=Whale", [], "fallback"),
    ("GET", "/query?animal=whale&otherparam=irrelevant", [], "v1"),
    ("GET", "/query?animal=dolphin&color=yellow", [], "v2"),
    ("GET", "/query?color=blue", [], "fallback"),
    ("GET", "/query?animal=whaledolphin", [], "fallback"),
    ("GET", "/query?animal=%77hale", [], "v1"),  # values are compared decoded
    ("GET", "/query?id=12%2034", [], "v1"),
    ("GET", "/query?id=12+34", [], "fallback"),
    ("GET", "/query", [], "fallback"),
    ("POST", "/method", [], "v2"),
    ("GET", "/method", [("version", "two")], "v3"),
    ("GET", "/method", [], "v1"),
    ("HEAD", "/method", [("version", "two")], "v1"),
    ("GET", "/deep/er/x", [("deep", "yes")], "v3"),
    ("GET", "/deep/er/x?deep=yes", [], "v1"),  # /deep/er's condition fails: the shorter prefix's hold
    ("GET", "/deep/x", [("deep", "no")], "fallback"),  # neither of /deep's: on to "/", and its chain to the end
    ("DELETE", "/exact", [], "v2"),
    ("DELETE", "/exact/", [], "fallback"),
    ("PUT", "/exact", [], "fallback"),
]


@pytest.mark.parametrize("method,target,headers,expected", MATCHES)
def test_match_conditions_route_requests(gateway, method, target, headers, expected):
    _, n = gateway
    assert served_by(n, "match.test", target, method, headers) == expected


def test_precedence_across_routes(gateway):
    _, n = gateway
    # Two header matches (the younger route) before one query match (the older route).
    assert served_by(n, "cross.test", "/?q=1&r=1", headers=[("a", "1"), ("b", "1")]) == "v1"
    # One query match each: the older route's.
    assert served_by(n, "cross.test", "/?q=1&r=1") == "v3"
    assert served_by(n, "cross.test", "/?q=1") == "v2"
    assert served_by(n, "cross.test", "/") == 404


def test_kroute_table_lookup_shows_the_conditions(gateway):
    table, _ = gateway
    looked_up = table.lookup("match.test", "/query?animal=dolphin&color=blue")
    assert looked_up["backend"]["service"] == "v3"
    assert looked_up["source"]["kind"] == "HTTPRoute" and "ingress" not in looked_up
    assert looked_up["conditions"] == [{"query": "animal", "value": "dolphin"}, {"query": "color", "value": "blue"}]


def test_weights_share_requests(gateway):
    _, n = gateway
    counts = {}
    for _ in range(400):
        who = served_by(n, "weights.test", "/split")
        counts[who] = counts.get(who, 0) + 1
    # 3:1 over 400 requests: w2 expects 100 (sd 8.7); weight 0 is never chosen.
    assert set(counts) <= {"w1", "w2"}, counts
    assert 60 <= counts.get("w2", 0) <= 140, counts
    assert counts.get("w1", 0) + counts.get("w2", 0) == 400
    # $kroute_service names the backend that was chosen.
    log = wait_until(lambda: n.access_log() if n.access_log().count("host=weights.test") >= 400 else None)
    assert log and "service=w2 " in log and "service=w3 " not in log


def test_an_invalid_backend_share_answers_500(gateway):
    _, n = gateway
    statuses = [served_by(n, "weights.test", "/invalid") for _ in range(200)]
    errors = statuses.count(500)
    assert statuses.count("w1") + errors == 200, statuses
    assert 60 <= errors <= 140, errors
    assert {served_by(n, "weights.test", "/all-invalid") for _ in range(20)} == {500}
    assert {served_by(n, "weights.test", "/zero") for _ in range(20)} == {500}
    # One valid share: every request, whatever the rule's own backend is.
    assert {served_by(n, "weights.test", "/one") for _ in range(20)} == {"w2"}


def test_a_backend_refs_own_header_records_apply_only_to_its_share(gateway):
    _, n = gateway
    seen = set()
    for _ in range(60):
        status, body, reply_headers = send(n, "weights.test", "/per-backend")
        assert status == 200, (status, body)
        who = dict(reply_headers)["X-Backend"]
        seen.add(who)
        # The rule's record first, then the backend's own: w1's set wins there; w2 keeps the rule's.
        assert header_values(body, "Backend") == ["w1" if who == "w1" else "all"], (who, body["header_list"])
        assert header_values(body, "X-Only-W2") == (["yes"] if who == "w2" else []), who
        assert dict(reply_headers).get("X-Chosen") == ("w1" if who == "w1" else None), who
    assert seen == {"w1", "w2"}


def received(n, target, headers=(), host="req.test"):
    status, body, _ = send(n, host, target, headers=headers)
    assert status == 200, (status, body, n.error_log()[-2000:])
    return body


def header_values(body, name):
    return [v for k, v in body["header_list"] if k.lower() == name.lower()]


def test_request_header_set_add_remove(gateway):
    _, n = gateway
    body = received(n, "/set", [("Some-Other-Header", "val"), ("X-Header-Set", "some-other-value"),
                                ("x-header-set", "and-another")])
    assert header_values(body, "X-Header-Set") == ["set-overwrites-values"]
    assert header_values(body, "Some-Other-Header") == ["val"]
    body = received(n, "/set", [("Some-Other-Header", "val")])
    assert header_values(body, "X-Header-Set") == ["set-overwrites-values"]
    body = received(n, "/add", [("X-Header-Add", "some-other-value")])
    assert header_values(body, "X-Header-Add") == ["some-other-value", "add-appends-values"]
    body = received(n, "/add")
    assert header_values(body, "X-Header-Add") == ["add-appends-values"]
    body = received(n, "/remove", [("X-Header-Remove", "val"), ("Keep", "me"), ("x-header-remove", "again")])
    assert header_values(body, "X-Header-Remove") == []
    assert header_values(body, "Keep") == ["me"]


def test_request_header_modifier_conformance_multiple_and_case(gateway):
    _, n = gateway
    body = received(n, "/multiple", [("X-Header-Set-2", "set-val-2"), ("X-Header-Add-2", "add-val-2"),
                                     ("X-Header-Remove-2", "remove-val-2"), ("Another-Header", "another-header-val")])
    assert header_values(body, "X-Header-Set-1") == ["header-set-1"]
    assert header_values(body, "X-Header-Set-2") == ["header-set-2"]
    assert header_values(body, "X-Header-Add-1") == ["header-add-1"]
    assert header_values(body, "X-Header-Add-2") == ["add-val-2", "header-add-2"]
    assert header_values(body, "X-Header-Add-3") == ["header-add-3"]
    assert header_values(body, "X-Header-Remove-1") == header_values(body, "X-Header-Remove-2") == []
    assert header_values(body, "Another-Header") == ["another-header-val"]
    body = received(n, "/case", [("x-header-set", "original-val-set"), ("x-header-add", "original-val-add"),
                                 ("x-header-remove", "original-val-remove"), ("Another-Header", "another-header-val")])
    assert header_values(body, "X-Header-Set") == ["header-set"]
    assert header_values(body, "X-Header-Add") == ["original-val-add", "header-add"]
    assert header_values(body, "X-Header-Remove") == []


def test_request_header_host_and_headers_nginx_knows(gateway):
    _, n = gateway
    assert received(n, "/host")["host"] == "rewritten.test"
    # More headers than the first part of nginx's list holds (20): deletions in both parts, and the
    # headers nginx keeps pointers to after them (Host, Cookie, Referer) still arrive right: the upstream
    # Host is made from nginx's pointer to the Host header, the access log's referer from its pointer.
    pads = [(f"X-Pad-{i}", f"pad-{i}") for i in range(30)]
    body = received(n, "/known", [pads[0], ("User-Agent", "agent/1"), ("Host", "req.test")] + pads[1:10] +
                    [("Cookie", "c=1")] + pads[10:] + [("Referer", "https://r.test/")], host=None)
    assert body["host"] == "req.test"
    assert wait_until(lambda: '"https://r.test/" "-" host=req.test' in n.access_log()), n.access_log()[-500:]
    names = [k.lower() for k, _ in body["header_list"]]
    assert "user-agent" not in names and "x-pad-0" not in names and "x-pad-21" not in names
    assert header_values(body, "X-Pad-5") == ["five"]
    assert header_values(body, "Cookie") == ["c=1"]
    assert header_values(body, "Referer") == ["https://r.test/"]
    kept = [k for k in names if k.startswith("x-pad-")]
    assert kept == [f"x-pad-{i}" for i in range(30) if i not in (0, 21)]
    body = received(n, "/add-known", [("Cookie", "c=1")])
    assert header_values(body, "Cookie") == ["c=1", "added=1"]
    assert header_values(body, "Referer") == ["https://ref.test/"]


def response_values(headers, name):
    return [v for k, v in headers if k.lower() == name.lower()]


def test_response_header_set_add_remove(gateway):
    _, n = gateway
    status, _, headers = send(n, "resp.test", "/set")
    assert status == 200 and response_values(headers, "X-Backend") == ["replaced"]
    _, _, headers = send(n, "resp.test", "/add")
    assert response_values(headers, "X-Backend") == ["v1", "extra"]
    assert response_values(headers, "X-Added") == ["one"]
    _, _, headers = send(n, "resp.test", "/remove?respond_header=X-From-Backend:1&respond_header=X-Other:2")
    assert response_values(headers, "X-Backend") == []
    assert response_values(headers, "X-From-Backend") == []
    assert response_values(headers, "X-Other") == ["2"]
    # nginx's own Server and Date go too
    assert response_values(headers, "Server") == [] and response_values(headers, "Date") == []
    _, _, headers = send(n, "resp.test", "/server")
    assert response_values(headers, "Server") == ["kroute-test"]
    assert response_values(headers, "Content-Type") == ["text/x-kroute"]
    assert len(response_values(headers, "Date")) == 1
    # nginx's own answers get them too
    status, _, headers = send(n, "resp.test", "/error")
    assert status == 500 and response_values(headers, "X-Added") == ["on-errors-too"]
    # a route without records is untouched
    _, _, headers = send(n, "match.test", "/")
    assert response_values(headers, "X-Backend") == ["fallback"]
    assert re.match(r"nginx", response_values(headers, "Server")[0])


def test_cors_with_the_gateway_apis_wildcards_and_credentials(gateway):
    _, n = gateway
    preflight = [("Access-Control-Request-Method", "GET"), ("Access-Control-Request-Headers", "x-header-1")]
    # A "*." origin covers any number of labels; the preflight is answered here with the lists.
    for origin in ("https://www.foo.com", "https://www.bar.com", "https://xpto.www.bar.com"):
        status, _, headers = send(n, "cors.test", "/list", "OPTIONS", [("Origin", origin)] + preflight)
        assert status == 204
        assert response_values(headers, "Access-Control-Allow-Origin") == [origin]
        assert response_values(headers, "Access-Control-Allow-Methods") == ["GET, OPTIONS"]
        assert response_values(headers, "Access-Control-Allow-Headers") == ["x-header-1, x-header-2"]
        assert response_values(headers, "Access-Control-Expose-Headers") == ["x-header-3"]
        assert response_values(headers, "Access-Control-Max-Age") == ["3600"]
        assert response_values(headers, "Access-Control-Allow-Credentials") == ["true"]
    # Another origin's preflight is answered here too, without CORS headers (ingress-nginx's CORS passes it on).
    for origin in ("https://foobar.com", "https://bar.com", "https://.bar.com", "https://www.bar.com:8443"):
        status, _, headers = send(n, "cors.test", "/list", "OPTIONS", [("Origin", origin)] + preflight)
        assert status == 204 and response_values(headers, "Access-Control-Allow-Origin") == []
        assert response_values(headers, "X-Backend") == []
    # An OPTIONS request that is no preflight goes to the backend.
    status, _, headers = send(n, "cors.test", "/list", "OPTIONS", [("Origin", "https://foobar.com")])
    assert status == 200 and response_values(headers, "X-Backend") == ["v1"]
    # A simple request gets the origin, but no preflight lists it did not ask for.
    status, _, headers = send(n, "cors.test", "/list", "GET", [("Origin", "https://www.foo.com")])
    assert status == 200 and response_values(headers, "Access-Control-Allow-Origin") == ["https://www.foo.com"]
    assert response_values(headers, "Access-Control-Allow-Methods") == []
    assert response_values(headers, "Access-Control-Allow-Headers") == []
    # With credentials, "*" is answered with what the request asked for.
    status, _, headers = send(n, "cors.test", "/any", "OPTIONS",
                              [("Origin", "https://other.foo.com"), ("Access-Control-Request-Method", "PUT"),
                               ("Access-Control-Request-Headers", "x-header-1, x-header-2")])
    assert status == 204
    assert response_values(headers, "Access-Control-Allow-Origin") == ["https://other.foo.com"]
    assert response_values(headers, "Access-Control-Allow-Methods") == ["PUT"]
    assert response_values(headers, "Access-Control-Allow-Headers") == ["x-header-1, x-header-2"]
    assert response_values(headers, "Access-Control-Allow-Credentials") == ["true"]
    assert response_values(headers, "Access-Control-Expose-Headers") == []
    # Without credentials "*" stays "*", and no Allow-Credentials header is sent.
    status, _, headers = send(n, "cors.test", "/open", "OPTIONS",
                              [("Origin", "https://foobar.com:12345"), ("Access-Control-Request-Method", "PUT")])
    assert status == 204
    assert response_values(headers, "Access-Control-Allow-Origin") == ["*"]
    assert response_values(headers, "Access-Control-Allow-Methods") == ["*"]
    assert response_values(headers, "Access-Control-Allow-Headers") == []
    assert response_values(headers, "Access-Control-Expose-Headers") == ["*"]
    assert response_values(headers, "Access-Control-Allow-Credentials") == []
