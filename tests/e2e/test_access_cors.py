"""enable-cors and the cors-* annotations (ingress-nginx's names, defaults and nginx.tmpl CORS block),
kubectl to the client: a preflight from an allowed origin is answered 204 by nginx with the headers, other
responses to it carry them, a non-matching Origin gets none (and its OPTIONS goes to the backend), wildcard
subdomains match one label, "*" answers every request, credentials and the defaults. Values that cannot be
read never widen what is allowed. One stack whose nginx never reloads."""

from __future__ import annotations

import base64
from typing import Any, Iterator

import pytest

from agent_fixtures import wait_for
from stack import Reply, Stack, module_stack  # noqa: F401
from test_annotations import annotated, apply_and_wait, served
from test_hostile import wait_warning, with_healthy_route

DEFAULT_METHODS = "GET, PUT, POST, DELETE, PATCH, OPTIONS"
DEFAULT_HEADERS = ("DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,"
                   "Authorization")
CORS_HEADERS = ["access-control-allow-origin", "access-control-allow-credentials", "access-control-allow-methods",
                "access-control-allow-headers", "access-control-expose-headers", "access-control-max-age"]


@pytest.fixture(scope="module")
def stack(module_stack: Stack) -> Iterator[Stack]:  # noqa: F811
    s = with_healthy_route(module_stack, "app")
    assert s.nginx is not None
    pids = s.nginx.pids()
    yield s
    assert s.nginx is not None
    assert s.nginx.pids() == pids, "nginx's master or workers changed during the module"


def cors(reply: Reply) -> dict[str, str]:
    return {k: v for k, v in reply.headers.items() if k.startswith("access-control-")}


def get(stack: Stack, host: str, origin: str | None, method: str = "GET", path: str = "/") -> Reply:
    return stack.request(host, path, method=method, headers={"Origin": origin} if origin else None)


def deploy(stack: Stack, name: str, host: str, annotations: dict[str, str]) -> None:
    apply_and_wait(stack, annotated(stack, name, host, [("/", "Prefix", "app")], annotations))
    wait_for(f"CORS on {host}", lambda: get(stack, host, "https://probe.invalid").status == 200, timeout=15)


def test_defaults_any_origin(stack: Stack) -> None:
    host = "any.cors.test"
    deploy(stack, "any", host, {"enable-cors": "true"})
    # As ingress-nginx ("set $http_origin *"): every response, with or without an Origin, gets "*".
    expected = {"access-control-allow-origin": "*", "access-control-allow-credentials": "true",
                "access-control-allow-methods": DEFAULT_METHODS, "access-control-allow-headers": DEFAULT_HEADERS,
                "access-control-max-age": "1728000"}
    reply = wait_for("CORS headers", lambda: (lambda r: r if cors(r) == expected else None)(get(stack, host, None)),
                     timeout=15)
    served(reply, "app", "/")
    assert cors(get(stack, host, "https://anywhere.example")) == expected
    preflight = get(stack, host, "https://anywhere.example", method="OPTIONS")
    assert preflight.status == 204 and not preflight.echo and preflight.body == b"", preflight
    assert cors(preflight) == expected


def test_origin_list_preflight_and_normal_requests(stack: Stack) -> None:
    host = "list.cors.test"
    deploy(stack, "list", host, {
        "enable-cors": "true",
        "cors-allow-origin": "https://origin-123.cors.com:8080,   ,http://*.origin.cors.com, test://localhost,",
        "cors-allow-methods": "GET, POST",
        "cors-allow-headers": "X-Foo, Content-Type",
        "cors-expose-headers": "X-Bar, X-Baz",
        "cors-allow-credentials": "false",
        "cors-max-age": "600"})
    wait_for("the origin list", lambda: cors(get(stack, host, "https://origin-123.cors.com:8080")), timeout=15)
    for origin in ["https://origin-123.cors.com:8080", "http://foo.origin.cors.com", "http://Bar-Foo.origin.cors.com",
                   "test://localhost", "HTTPS://ORIGIN-123.CORS.COM:8080"]:
        expected = {"access-control-allow-origin": origin, "access-control-allow-methods": "GET, POST",
                    "access-control-allow-headers": "X-Foo, Content-Type",
                    "access-control-expose-headers": "X-Bar, X-Baz", "access-control-max-age": "600"}
        reply = get(stack, host, origin)
        served(reply, "app", "/")
        assert cors(reply) == expected, (origin, reply.headers)
        preflight = get(stack, host, origin, method="OPTIONS")
        assert preflight.status == 204 and not preflight.echo, (origin, preflight)
        assert cors(preflight) == expected
    # Not allowed: no CORS header at all, and a preflight goes to the backend like any request.
    for origin in [None, "https://origin-123.cors.com", "http://bar.foo.origin.cors.com", "http://origin.cors.com",
                   "https://origin-123.cors.com:8080.evil.com", "xhttps://origin-123.cors.com:8080", "null",
                   "https://unknown.cors.com:8080"]:
        reply = get(stack, host, origin)
        served(reply, "app", "/")
        assert cors(reply) == {}, (origin, reply.headers)
        options = get(stack, host, origin, method="OPTIONS")
        assert options.status == 200 and options.echo["method"] == "OPTIONS", (origin, options.status)
        assert cors(options) == {}


def test_credentials_with_star_follow_ingress_nginx(stack: Stack) -> None:
    """ingress-nginx sends Allow-Origin: * with Allow-Credentials: true (browsers refuse that pair); kroute
    does the same, and cors-allow-credentials: false leaves the header out."""
    host = "creds.cors.test"
    deploy(stack, "creds", host, {"enable-cors": "true", "cors-allow-origin": "*", "cors-allow-credentials": "false"})
    wait_for("no credentials header",
             lambda: cors(get(stack, host, "https://a.example")).get("access-control-allow-origin") == "*"
             and "access-control-allow-credentials" not in cors(get(stack, host, "https://a.example")), timeout=15)


def test_unreadable_values_never_widen(stack: Stack) -> None:
    host = "bad.cors.test"
    name = "bad"
    # Every origin invalid: ingress-nginx would allow "*"; kroute allows none.
    deploy(stack, name, host, {"enable-cors": "true", "cors-allow-origin": "example.com, https://$host"})
    wait_warning(stack, name, "InvalidAnnotation", "cors-allow-origin")
    wait_for("no CORS", lambda: cors(get(stack, host, "https://example.com")) == {} and
             get(stack, host, "https://example.com", method="OPTIONS").status == 200, timeout=15)
    # A bad methods list: no CORS at all (ingress-nginx would send its default methods).
    deploy(stack, name, host, {"enable-cors": "true", "cors-allow-origin": "https://ok.example",
                               "cors-allow-methods": "GET;DELETE"})
    wait_warning(stack, name, "InvalidAnnotation", "cors-allow-methods")
    assert cors(get(stack, host, "https://ok.example")) == {}
    # Fixed: live.
    deploy(stack, name, host, {"enable-cors": "true", "cors-allow-origin": "https://ok.example"})
    wait_for("CORS back", lambda: cors(get(stack, host, "https://ok.example")).get("access-control-allow-origin")
             == "https://ok.example", timeout=15)
    # CORS is off by default and with an unreadable enable-cors.
    deploy(stack, name, host, {"enable-cors": "yes"})
    wait_warning(stack, name, "InvalidAnnotation", "enable-cors")
    wait_for("CORS off", lambda: cors(get(stack, host, "https://ok.example")) == {}, timeout=15)


def test_preflight_is_answered_before_basic_auth(stack: Stack) -> None:
    """As in ingress-nginx, where the CORS `return 204` runs before auth_basic: a preflight carries no
    credentials and must not be challenged; the real request is."""
    host = "auth.cors.test"
    stack.apply({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                 "metadata": {"name": "cors-users", "namespace": stack.namespace},
                 "data": {"auth": base64.b64encode(b"u:{PLAIN}p\n").decode()}})
    deploy_annotations: dict[str, Any] = {"enable-cors": "true", "cors-allow-origin": "https://app.example",
                                          "auth-type": "basic", "auth-secret": "cors-users"}
    apply_and_wait(stack, annotated(stack, "auth", host, [("/", "Prefix", "app")], deploy_annotations))
    wait_for("the challenge", lambda: get(stack, host, "https://app.example").status == 401, timeout=15)
    preflight = get(stack, host, "https://app.example", method="OPTIONS")
    assert preflight.status == 204, preflight.status
    assert cors(preflight)["access-control-allow-origin"] == "https://app.example"
    challenge = get(stack, host, "https://app.example")
    assert cors(challenge)["access-control-allow-origin"] == "https://app.example"  # more_set_headers: every status
    assert get(stack, host, "https://other.example", method="OPTIONS").status == 401
