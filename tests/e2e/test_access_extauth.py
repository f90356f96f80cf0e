"""External auth (auth-url and its family), kubectl to curl: a real auth service in a pod (auth_server.py,
oauth2-proxy-like: a session cookie or a bearer token) decides; what the client gets, what the auth
service and the backend received; the auth service down, slow and answering garbage (500); the cache;
and every fail-closed case (503 with a Warning Event, then fixed and live). One stack, nginx never
reloads."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
from typing import Any, Iterator

import pytest

from stack import Stack, module_stack  # noqa: F401
from test_annotations import annotated, apply_and_wait, served
from test_hostile import HEALTHY, wait_warning, with_healthy_route

AUTH_SERVER = os.path.join(os.path.dirname(__file__), "auth_server.py")
AUTH_PORT = 9000
GARBAGE_PORT = 9001
DOWN_PORT = 9002  # nothing listens there


class Auth:
    def __init__(self, stack: Stack) -> None:
        assert stack.network is not None
        self.pod = stack.network.add_pod(f"auth-{stack.network.tag}")
        process = self.pod.popen(["/usr/bin/python3", AUTH_SERVER, self.pod.address, str(AUTH_PORT),
                                  str(GARBAGE_PORT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = process.stdout.readline().strip()
        assert line == "ready", line
        self.address = self.pod.address

    def url(self, path: str = "/oauth2/auth", port: int = AUTH_PORT) -> str:
        return f"http://{self.address}:{port}{path}"

    def _get(self, path: str) -> Any:
        conn = http.client.HTTPConnection(self.address, AUTH_PORT, timeout=5)
        try:
            conn.request("GET", path)
            return conn.getresponse().read()
        finally:
            conn.close()

    def requests(self) -> list[dict[str, Any]]:
        return json.loads(self._get("/_auth/requests"))

    def reset(self) -> None:
        self._get("/_auth/reset")


@pytest.fixture(scope="module")
def stack(module_stack: Stack) -> Iterator[Stack]:  # noqa: F811
    s = with_healthy_route(module_stack, "a", "errors")
    assert s.nginx is not None
    pids = s.nginx.pids()
    yield s
    assert s.nginx is not None
    assert s.nginx.pids() == pids, "nginx's master or workers changed during the module"


@pytest.fixture(scope="module")
def auth(stack: Stack) -> Auth:
    return Auth(stack)


GOOD = {"Cookie": "session=good"}


def test_valid_credentials_pass_with_the_auth_answers_headers(stack: Stack, auth: Auth) -> None:
    host = "pass.auth.test"
    apply_and_wait(stack, annotated(stack, "auth-pass", host, [("/", "Prefix", "a")], {
        "auth-url": auth.url(), "auth-response-headers": "X-Auth-Request-User, X-Auth-Request-Email"}))
    auth.reset()
    # The client's own X-Auth-Request-User never reaches the backend: the auth service's replaces it.
    reply = stack.request(host, "/app/page?q=1", method="POST", body=b"b" * 3000,
                          headers={**GOOD, "X-Auth-Request-User": "mallory", "X-Request-ID": "rid-1"})
    served(reply, "a", "/app/page?q=1")
    sent = reply.echo["headers"]
    assert (sent["x-auth-request-user"], sent["x-auth-request-email"]) == ("alice", "alice@example.com"), sent
    assert "x-not-listed" not in sent
    assert reply.echo["body_length"] == 3000, reply.echo
    # The auth answer's cookie reaches the client on success.
    assert reply.headers.get("set-cookie") == "refreshed=1; Path=/", reply.headers
    # What the auth service got: ingress-nginx's headers, no body, GET.
    [seen] = auth.requests()
    h = seen["headers"]
    assert (seen["method"], seen["path"], seen["body_length"]) == ("GET", "/oauth2/auth", 0), seen
    assert "content-length" not in h and "transfer-encoding" not in h, h
    assert h["host"] == auth.address
    assert h["x-original-url"] == f"http://{host}/app/page?q=1"
    assert h["x-original-method"] == "POST"
    assert h["x-auth-request-redirect"] == "/app/page?q=1"
    assert h["x-sent-from"] == "nginx-ingress-controller"
    assert h["x-real-ip"] == "127.0.0.1" and h["x-forwarded-for"] == "127.0.0.1"
    assert h["x-request-id"] == "rid-1"
    assert h["cookie"] == "session=good"
    assert "x-original-uri" not in h and "x-scheme" not in h, h  # only with auth-method
    # Without any listed header in the answer, the client's header is still removed.
    reply = stack.request(host, "/x", headers={"Authorization": "Bearer good", "X-Auth-Request-Email": "m@evil"})
    served(reply, "a", "/x")
    assert reply.echo["headers"]["x-auth-request-email"] == "alice@example.com"


def test_refusals_reach_the_client(stack: Stack, auth: Auth) -> None:
    host = "refuse.auth.test"
    apply_and_wait(stack, annotated(stack, "auth-refuse", host, [("/", "Prefix", "a")], {"auth-url": auth.url()}))
    reply = stack.request(host, "/secret")
    assert reply.status == 401 and not reply.echo, (reply.status, reply.body[:200])
    assert reply.headers.get("www-authenticate") == 'Bearer realm="test"', reply.headers
    # Without auth-always-set-cookie the auth service's cookie stays off a 401 (nginx's add_header).
    assert "set-cookie" not in reply.headers, reply.headers
    reply = stack.request(host, "/secret", headers={"Cookie": "session=forbidden"})
    assert reply.status == 403 and not reply.echo, reply.status


def test_always_set_cookie_sends_the_cookie_with_a_refusal(stack: Stack, auth: Auth) -> None:
    host = "cookie.auth.test"
    apply_and_wait(stack, annotated(stack, "auth-cookie", host, [("/", "Prefix", "a")],
                                    {"auth-url": auth.url(), "auth-always-set-cookie": "true"}))
    reply = stack.request(host, "/")
    assert reply.status == 401
    assert reply.headers.get("set-cookie") == "csrf=abc; Path=/", reply.headers


def test_signin_redirects_a_401_with_rd(stack: Stack, auth: Auth) -> None:
    host = "signin.auth.test"
    apply_and_wait(stack, annotated(stack, "auth-signin", host, [("/", "Prefix", "a")], {
        "auth-url": auth.url(), "auth-signin": "https://login.example/oauth2/start"}))
    reply = stack.request(host, "/deep/page?x=1&y=2")
    assert reply.status == 302 and not reply.echo, reply.status
    assert reply.headers["location"] == ("https://login.example/oauth2/start?rd=http://signin.auth.test"
                                         "%2Fdeep%2Fpage%3Fx%3D1%26y%3D2"), reply.headers
    # A 403 is not redirected; valid credentials pass.
    assert stack.request(host, "/", headers={"Cookie": "session=forbidden"}).status == 403
    served(stack.request(host, "/in", headers=GOOD), "a", "/in")
    # Another parameter name, and a URL that carries its own.
    apply_and_wait(stack, annotated(stack, "auth-signin", host, [("/", "Prefix", "a")], {
        "auth-url": auth.url(), "auth-signin": "https://login.example/start?rd=$escaped_request_uri&x=1"}))
    assert stack.request(host, "/p?a=b").headers.get("location") == "https://login.example/start?rd=%2Fp%3Fa%3Db&x=1"


def test_auth_method_and_request_redirect(stack: Stack, auth: Auth) -> None:
    host = "method.auth.test"
    apply_and_wait(stack, annotated(stack, "auth-method", host, [("/", "Prefix", "a")], {
        "auth-url": auth.url("/check$request_uri"), "auth-method": "POST",
        "auth-request-redirect": "https://$host/back"}))
    auth.reset()
    served(stack.request(host, "/m?z=9", method="PUT", body=b"x" * 100, headers=GOOD), "a", "/m?z=9")
    [seen] = auth.requests()
    h = seen["headers"]
    assert (seen["method"], seen["path"], seen["body_length"]) == ("POST", "/check/m?z=9", 0), seen
    assert (h["x-original-uri"], h["x-scheme"], h["x-original-method"]) == ("/m?z=9", "http", "PUT"), h
    assert h["x-auth-request-redirect"] == f"https://{host}/back"


def test_cache_answers_from_shared_memory(stack: Stack, auth: Auth) -> None:
    host = "cache.auth.test"
    apply_and_wait(stack, annotated(stack, "auth-cache", host, [("/", "Prefix", "a"), ("/other", "Prefix", "a")], {
        "auth-url": auth.url("/nocookie/auth"), "auth-cache-key": "$cookie_session",
        "auth-cache-duration": "200 401 1m", "auth-response-headers": "X-Auth-Request-User"}))
    auth.reset()
    for i in range(12):  # on new connections: whichever worker takes them, one answer serves all
        reply = stack.request(host, f"/c{i}", headers=GOOD)
        served(reply, "a", f"/c{i}")
        assert reply.echo["headers"]["x-auth-request-user"] == "alice"
    # Another path of the Ingress has answers of its own, as ingress-nginx's per-location cache.
    served(stack.request(host, "/other", headers=GOOD), "a", "/other")
    for _ in range(5):
        reply = stack.request(host, "/c", headers={"Cookie": "session=other"})
        assert reply.status == 401 and reply.headers.get("www-authenticate") == 'Bearer realm="test"'
    for _ in range(2):  # 403 is not in the durations; Cache-Control: private is never cached
        assert stack.request(host, "/c", headers={"Cookie": "session=forbidden"}).status == 403
        assert stack.request(host, "/c", headers={"Cookie": "session=private"}).echo["headers"]["x-auth-request-user"] == "bob"
    cookies = [r["headers"].get("cookie") for r in auth.requests()]
    assert cookies == ["session=good"] * 2 + ["session=other"] + ["session=forbidden", "session=private"] * 2, cookies


def test_an_answer_that_sets_a_cookie_is_not_cached(stack: Stack, auth: Auth) -> None:
    host = "cache-cookie.auth.test"
    apply_and_wait(stack, annotated(stack, "auth-cache-cookie", host, [("/", "Prefix", "a")], {
        "auth-url": auth.url(), "auth-cache-key": "$cookie_session"}))
    auth.reset()
    for _ in range(3):
        reply = stack.request(host, "/", headers=GOOD)
        served(reply, "a", "/")
        assert reply.headers.get("set-cookie") == "refreshed=1; Path=/"
    assert len(auth.requests()) == 3


def test_error_pages_come_after_the_auth_decision_without_asking_again(stack: Stack, auth: Auth) -> None:
    host = "errors.auth.test"
    apply_and_wait(stack, annotated(stack, "auth-errors", host, [("/", "Prefix", "a")], {
        "auth-url": auth.url(), "custom-http-errors": "401,404", "default-backend": "errors"}))
    auth.reset()
    # The auth service's 401 gets the error backend's page, as ingress-nginx's error_page does.
    reply = stack.request(host, "/in")
    assert (reply.status, reply.service, reply.echo["headers"]["x-code"]) == (401, "errors", "401"), reply.echo
    # The backend's 404 after a pass: the error page, and the auth service was asked once per request.
    reply = stack.request(host, "/in", headers={**GOOD, "X-Echo-Status": "a=404"})
    assert (reply.status, reply.service) == (404, "errors"), reply.echo
    assert len(auth.requests()) == 2


@pytest.mark.parametrize("case", ["down", "garbage", "slow"])
def test_an_auth_service_without_a_usable_answer_gives_500(stack: Stack, auth: Auth, case: str) -> None:
    host = f"{case}.auth.test"
    url = {"down": auth.url(port=DOWN_PORT), "garbage": auth.url(port=GARBAGE_PORT), "slow": auth.url("/slow")}[case]
    apply_and_wait(stack, annotated(stack, f"auth-{case}", host, [("/", "Prefix", "a")], {"auth-url": url}))
    reply = stack.request(host, "/", headers=GOOD, timeout=30)
    assert reply.status == 500 and not reply.echo, (reply.status, reply.body[:200])
    # Other routes are untouched.
    assert stack.request(HEALTHY, "/").status == 200


@pytest.mark.parametrize("case, name, value", [
    ("ftp", "auth-url", "ftp://10.1.2.3/auth"),
    ("space", "auth-url", "http://10.1.2.3/a b"),
    ("host", "auth-url", "http://bad_host!/auth"),
    ("variable", "auth-url", "http://10.1.2.3/$request_body"),
    ("method", "auth-method", "FETCH"),
    ("headers", "auth-response-headers", "X-User, Bad Header"),
    ("duration", "auth-cache-duration", "200 forever"),
    ("cachekey", "auth-cache-key", "$ssl_client_cert"),
    ("configmap", "auth-proxy-set-headers", "headers-cm"),
])
def test_unreadable_values_fail_closed_then_a_fix_is_live(stack: Stack, auth: Auth, case: str, name: str,
                                                          value: str) -> None:
    ingress, host = f"auth-closed-{case}", f"closed-{case}.auth.test"
    good = {"auth-url": auth.url()}
    apply_and_wait(stack, annotated(stack, ingress, host, [("/", "Prefix", "a")], {**good, name: value}))
    reply = stack.wait_status(host, "/", status=503)
    assert not reply.echo
    assert stack.request(host, "/", headers=GOOD).status == 503
    wait_warning(stack, ingress, "AccessAnnotationInvalid", f"nginx.ingress.kubernetes.io/{name}")
    stack.apply(annotated(stack, ingress, host, [("/", "Prefix", "a")], good))
    stack.wait_status(host, "/", status=401)
    served(stack.request(host, "/", headers=GOOD), "a", "/")


def test_an_auth_host_the_agent_cannot_resolve_fails_closed(stack: Stack, auth: Auth) -> None:
    host = "unresolved.auth.test"
    apply_and_wait(stack, annotated(stack, "auth-unresolved", host, [("/", "Prefix", "a")],
                                    {"auth-url": "http://auth.example.com/verify"}))
    stack.wait_status(host, "/", status=503)
    wait_warning(stack, "auth-unresolved", "AuthUrlUnresolved", "neither an IP address")
    apply_and_wait(stack, annotated(stack, "auth-unresolved", host, [("/", "Prefix", "a")],
                                    {"auth-url": f"http://nope.{stack.namespace}.svc/verify"}))
    wait_warning(stack, "auth-unresolved", "AuthUrlUnresolved", "not found")
    assert stack.request(host, "/", headers=GOOD).status == 503
