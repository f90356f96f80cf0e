"""auth-type: basic, auth-secret, auth-secret-type and auth-realm (ingress-nginx's names and semantics),
kubectl to the client: the right user and password reach the backend, anything else gets 401 with the
realm's challenge, for every hash format nginx's auth_basic takes; auth-map Secrets; a Secret change
(a new user, a rotated password) is live at once; and every case kroute cannot apply fails closed (503
and a Warning Event) until it is fixed. One stack whose nginx never reloads."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import subprocess
import warnings
from typing import Any, Iterator

import pytest

with warnings.catch_warnings():  # Debian's Python 3.11 has it; glibc's crypt(3) makes the bcrypt and $6$ hashes
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt

from agent_fixtures import dump_table, wait_for
from stack import Reply, Stack, module_stack  # noqa: F401
from test_annotations import annotated, apply_and_wait, served
from test_hostile import Steady, wait_warning, with_healthy_route

ALICE, BOB = ("alice", "wonderland"), ("bob", "builder")


def sha(password: str) -> str:
    return "{SHA}" + base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()


def ssha(password: str, salt: bytes = b"NaCl") -> str:
    return "{SSHA}" + base64.b64encode(hashlib.sha1(password.encode() + salt).digest() + salt).decode()


HASHES = {
    "bcrypt": lambda p: crypt.crypt(p, "$2b$05$" + "abcdefghijklmnopqrstuv"),
    "bcrypt-2y": lambda p: crypt.crypt(p, "$2b$05$" + "abcdefghijklmnopqrstuv").replace("$2b$", "$2y$", 1),
    "sha512-crypt": lambda p: crypt.crypt(p, "$6$saltsalt"),
    "md5-crypt": lambda p: crypt.crypt(p, "$1$saltsalt"),
    "sha": sha,
    "ssha": ssha,
    "plain": lambda p: "{PLAIN}" + p,
}


def apr1(password: str) -> str:
    return subprocess.run(["openssl", "passwd", "-apr1", "-salt", "kroute12", password], check=True,
                          capture_output=True, text=True).stdout.strip()


HASHES["apr1"] = apr1


def secret(stack: Stack, name: str, data: dict[str, str], kind: str = "Opaque") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": kind,
            "metadata": {"name": name, "namespace": stack.namespace},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def htpasswd(*users: tuple[str, str], hash_name: str = "apr1") -> str:
    return "".join(f"{u}:{HASHES[hash_name](p)}\n" for u, p in users)


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def challenged(reply: Reply, realm: str) -> None:
    assert reply.status == 401, (reply.status, reply.body[:200])
    assert reply.headers.get("www-authenticate") == f'Basic realm="{realm}"', reply.headers
    assert not reply.echo, "a 401 is nginx's, not the backend's"


@pytest.fixture(scope="module")
def stack(module_stack: Stack) -> Iterator[Stack]:  # noqa: F811
    s = with_healthy_route(module_stack, "app")
    assert s.nginx is not None
    pids = s.nginx.pids()
    yield s
    assert s.nginx is not None
    assert s.nginx.pids() == pids, "nginx's master or workers changed during the module"


def refused(reply: Reply) -> None:
    assert reply.status == 503 and not reply.echo, (reply.status, reply.echo)


def wait_reply(stack: Stack, host: str, check: Any, headers: dict[str, str] | None = None, path: str = "/",
               timeout: float = 15) -> Reply:
    """Polls until check(reply) holds (it asserts); returns that reply."""
    def ok() -> Reply | None:
        reply = stack.request(host, path, headers=headers)
        try:
            check(reply)
        except AssertionError:
            return None
        return reply
    return wait_for(f"the expected reply from {host}{path}", ok, timeout=timeout, interval=0.05)


def test_right_password_passes_wrong_ones_get_the_challenge(stack: Stack) -> None:
    host = "basic.auth.test"
    stack.apply(secret(stack, "users", {"auth": "# the team\n" + htpasswd(ALICE, BOB)}))
    ing = annotated(stack, "basic", host, [("/", "Prefix", "app")],
                    {"auth-type": "basic", "auth-secret": "users", "auth-realm": "Authentication Required - ok"})
    with Steady(stack):
        apply_and_wait(stack, ing)
        wait_reply(stack, host, lambda r: served(r, "app", "/"), headers=basic(*ALICE))
        served(stack.request(host, "/x", headers=basic(*BOB)), "app", "/x")
        realm = "Authentication Required - ok"
        challenged(stack.request(host), realm)
        challenged(stack.request(host, headers=basic("alice", "wrong")), realm)
        challenged(stack.request(host, headers=basic("carol", "wonderland")), realm)
        challenged(stack.request(host, headers={"Authorization": "Basic !!!"}), realm)
        challenged(stack.request(host, headers={"Authorization": "Bearer abc"}), realm)
    # The users' hashes are in no log and not in kroute-table's dump (it prints their size only).
    assert "$apr1$" not in stack.logs()
    assert stack.agent is not None
    dumped = json.dumps(dump_table(stack.agent.table_dir))
    assert "basic-auth" in dumped and "$apr1$" not in dumped and "alice" not in dumped


def test_every_hash_format_nginx_takes(stack: Stack) -> None:
    host = "hashes.auth.test"
    users = {name: (f"user-{name}", f"pw-{name}!") for name in HASHES}
    text = "".join(htpasswd(users[name], hash_name=name) for name in HASHES)
    stack.apply(secret(stack, "hashes", {"auth": text}))
    apply_and_wait(stack, annotated(stack, "hashes", host, [("/", "Prefix", "app")],
                                    {"auth-type": "basic", "auth-secret": f"{stack.namespace}/hashes"}))
    first = next(iter(HASHES))
    wait_reply(stack, host, lambda r: served(r, "app", "/"), headers=basic(*users[first]))
    for name, (user, password) in users.items():
        served(stack.request(host, headers=basic(user, password)), "app", "/")
        challenged(stack.request(host, headers=basic(user, password + "x")), "")


def test_auth_map_and_live_rotation(stack: Stack) -> None:
    host = "map.auth.test"
    stack.apply(secret(stack, "map", {"alice": HASHES["bcrypt"](ALICE[1])}))
    apply_and_wait(stack, annotated(stack, "map", host, [("/", "Prefix", "app")],
                                    {"auth-type": "basic", "auth-secret": "map", "auth-secret-type": "auth-map"}))
    wait_reply(stack, host, lambda r: served(r, "app", "/"), headers=basic(*ALICE))
    challenged(stack.request(host, headers=basic(*BOB)), "")
    # A new user and a rotated password: live without a reload (the module fixture checks nginx's pids).
    stack.apply(secret(stack, "map", {"alice": HASHES["sha"]("rotated"), "bob": HASHES["apr1"](BOB[1])}))
    wait_reply(stack, host, lambda r: served(r, "app", "/"), headers=basic(*BOB))
    challenged(stack.request(host, headers=basic(*ALICE)), "")
    served(stack.request(host, headers=basic("alice", "rotated")), "app", "/")


def test_fail_closed_until_fixed(stack: Stack) -> None:
    """Every case kroute cannot apply answers 503 with a Warning, never serves open; fixed, it works."""
    host = "closed.auth.test"
    name = "closed"

    def ingress(annotations: dict[str, str]) -> dict[str, Any]:
        return annotated(stack, name, host, [("/", "Prefix", "app"), ("/other", "Prefix", "app")], annotations)

    def denied(reason: str, text: str) -> None:
        wait_warning(stack, name, reason, text)
        for path in ("/", "/other"):
            wait_reply(stack, host, refused, headers=basic(*ALICE), path=path)

    good = {"auth-type": "basic", "auth-secret": "fixme"}
    with Steady(stack):
        # The Secret is missing.
        apply_and_wait(stack, ingress(good))
        denied("AuthSecretInvalid", "auth-secret")
        # It has no `auth` key.
        stack.apply(secret(stack, "fixme", {"ca.crt": "not a certificate", "users": HASHES["plain"]("x")}))
        denied("AuthSecretInvalid", "has no `auth` key")
        # Its `auth` key has no usable line (plain-text passwords, DES crypt, garbage).
        stack.apply(secret(stack, "fixme", {"auth": "alice:wonderland\nbob:abcdefghijklm\n\x01\n"}))
        denied("AuthSecretInvalid", "no usable user")
        # Fixed: live at once.
        stack.apply(secret(stack, "fixme", {"auth": htpasswd(ALICE)}))
        wait_reply(stack, host, lambda r: served(r, "app", "/other"), headers=basic(*ALICE), path="/other")
        challenged(stack.request(host), "")
        # Bad annotation values: digest, an unknown type, a bad realm, a bad secret type, a cross-namespace Secret,
        # auth-type without auth-secret, auth-secret without auth-type.
        for annotations, reason, text in [
            ({**good, "auth-type": "digest"}, "AccessAnnotationInvalid", "digest"),
            ({**good, "auth-type": "basik"}, "AccessAnnotationInvalid", "basik"),
            ({**good, "auth-realm": 'a"b'}, "AccessAnnotationInvalid", "auth-realm"),
            ({**good, "auth-secret-type": "auth-list"}, "AccessAnnotationInvalid", "auth-list"),
            ({**good, "auth-secret": "kube-system/fixme"}, "AuthSecretInvalid", "not in the Ingress's namespace"),
            ({"auth-type": "basic"}, "AuthSecretInvalid", "needs an auth-secret"),
            ({"auth-secret": "fixme"}, "AuthSecretInvalid", "auth-type is not basic"),
        ]:
            stack.apply(ingress(annotations))
            denied(reason, text)
        stack.apply(ingress(good))
        wait_reply(stack, host, lambda r: served(r, "app", "/"), headers=basic(*ALICE))
        # The Secret deleted: closed again at once.
        stack.cluster.kubectl("delete", "secret", "-n", stack.namespace, "fixme")
        denied("AuthSecretInvalid", "not found")
    # No Warning ever carries a hash.
    events = json.loads(stack.cluster.kubectl("get", "events", "-n", stack.namespace, "-o", "json"))["items"]
    assert not [e for e in events if "$apr1$" in e.get("message", "") or "wonderland" in e.get("message", "")]


def status_from_ipv6(stack: Stack, host: str, headers: dict[str, str] | None = None) -> int:
    """The status of a GET from [::1], a client address other than the stack's 127.0.0.1."""
    assert stack.nginx is not None
    head = f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n" + \
        "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items()) + "\r\n"
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(("::1", stack.nginx.port))
        sock.sendall(head.encode())
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return int(reply.split(b" ", 2)[1])


def test_satisfy_any_lets_either_the_allowlist_or_the_password_pass(stack: Stack) -> None:
    # ingress-nginx's satisfy: with `any`, a client in the allowlist needs no password and one outside it
    # passes with one; with `all` (the default, and what a bad value keeps) it needs both.
    host = "satisfy.auth.test"
    stack.apply(secret(stack, "satisfy-users", {"auth": htpasswd(ALICE)}))
    access = {"auth-type": "basic", "auth-secret": "satisfy-users", "allowlist-source-range": "127.0.0.1/32"}
    apply_and_wait(stack, annotated(stack, "satisfy", host, [("/", "Prefix", "app")], {**access, "satisfy": "any"}))
    wait_reply(stack, host, lambda r: served(r, "app", "/"))  # 127.0.0.1 is in the allowlist: no password
    assert status_from_ipv6(stack, host) == 401, "outside the allowlist and without a password"
    assert status_from_ipv6(stack, host, basic(*ALICE)) == 200
    assert status_from_ipv6(stack, host, basic("alice", "wrong")) == 401
    for value in ("all", "sometimes"):
        apply_and_wait(stack, annotated(stack, "satisfy", host, [("/", "Prefix", "app")], {**access, "satisfy": value}))
        wait_reply(stack, host, lambda r: challenged(r, ""))  # in the allowlist, but no password
        served(stack.request(host, headers=basic(*ALICE)), "app", "/")
        assert status_from_ipv6(stack, host, basic(*ALICE)) == 403, "the password alone is not enough"
