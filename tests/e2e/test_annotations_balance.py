"""Canary, session affinity, upstream-hash-by and load-balance (ingress-nginx's names and semantics),
kubectl to curl: a canary Ingress merged into its primary's rule, chosen per request by header, cookie
or weight; session cookies derived from the endpoint (or a session key), so they keep their endpoint
across table changes, workers and nginx replicas; consistent hashing that moves only ~1/N of the keys;
EWMA that sends less to a slow endpoint. Every answer names the echo pod that gave it. nginx never
reloads."""

from __future__ import annotations

import http.client
import re
import subprocess
import threading
import time
from collections import Counter
from typing import Any, Iterator

import pytest

from agent_fixtures import wait_for
from stack import Nginx, Stack, endpoint_slice, module_stack, service  # noqa: F401
from test_annotations import annotated, apply_and_wait
from test_hostile import with_healthy_route, wait_warning

COOKIE = re.compile(r"^INGRESSCOOKIE=([0-9a-f]{16})(;.*)$")


@pytest.fixture(scope="module")
def stack(module_stack: Stack) -> Iterator[Stack]:  # noqa: F811
    """Backends: "primary" and "canary" (one pod each), "pool" (three pods); nginx's processes must not
    change during the module."""
    s = with_healthy_route(module_stack, "primary", "canary")
    s.backend("pool", replicas=3)
    assert s.nginx is not None
    pids = s.nginx.pids()
    yield s
    assert s.nginx is not None
    assert s.nginx.pids() == pids, "nginx's master or workers changed during the module"


def backends_of(stack: Stack, host: str, count: int, connections: int = 8,
                headers: dict[str, str] | None = None, port: int | None = None) -> Counter[str]:
    """`count` GETs of host/ over `connections` keep-alive connections; how many each Service answered
    (non-200 replies count as "status <n>")."""
    assert stack.nginx is not None
    answered: Counter[str] = Counter()
    lock = threading.Lock()
    errors: list[str] = []

    def client(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port or stack.nginx.port, timeout=10)
        mine: Counter[str] = Counter()
        try:
            for _ in range(n):
                conn.request("GET", "/", headers={"Host": host, **(headers or {})})
                response = conn.getresponse()
                response.read()
                backend = response.getheader("X-Backend")
                mine[backend.split("/")[0] if response.status == 200 and backend else f"status {response.status}"] += 1
        except OSError as e:
            errors.append(repr(e))
        finally:
            conn.close()
            with lock:
                answered.update(mine)

    threads = [threading.Thread(target=client, args=(count // connections + (i < count % connections),))
               for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    return answered


def canary_pair(stack: Stack, host: str, canary: dict[str, str], primary: dict[str, str] | None = None) -> tuple[
        dict[str, Any], dict[str, Any]]:
    first = annotated(stack, f"{host.split('.')[0]}-primary", host, [("/", "Prefix", "primary")], primary)
    second = annotated(stack, f"{host.split('.')[0]}-canary", host, [("/", "Prefix", "canary")],
                       {"canary": "true", **canary})
    return first, second


def wait_canary(stack: Stack, host: str, predicate: Any = None) -> None:
    """Waits until the table's rule for host/ carries a canary record (that satisfies predicate)."""
    def ready(route: dict[str, Any]) -> bool:
        records = [p for p in route.get("policies", []) if p.get("kind") == "canary"]
        return bool(records) and (predicate is None or predicate(records))
    stack.wait_route(host, "/", ready)


# ---- canary ---------------------------------------------------------------------------------------------


def test_canary_weight_splits_10000_requests_within_2_points(stack: Stack) -> None:
    host = "weight.balance.test"
    primary, canary = canary_pair(stack, host, {"canary-weight": "30"})
    apply_and_wait(stack, primary)
    stack.apply(canary)
    wait_canary(stack, host)
    began = time.monotonic()
    answered = backends_of(stack, host, 10_000)
    elapsed = time.monotonic() - began
    assert sum(answered.values()) == 10_000 and set(answered) <= {"primary", "canary"}, answered
    share = answered["canary"] / 10_000
    assert abs(share - 0.30) <= 0.02, (answered, elapsed)
    # canary-weight-total: 1 of 4.
    canary["metadata"]["annotations"].update({f"nginx.ingress.kubernetes.io/canary-weight": "1",
                                              f"nginx.ingress.kubernetes.io/canary-weight-total": "4"})
    stack.apply(canary)
    wait_canary(stack, host, lambda records: any(r.get("number") == (1 << 32 | 4) for r in records))
    answered = backends_of(stack, host, 4000)
    assert abs(answered["canary"] / 4000 - 0.25) <= 0.03, answered


def test_canary_header_then_cookie_then_weight_with_always_never_and_exact_value(stack: Stack) -> None:
    host = "precedence.balance.test"
    primary, canary = canary_pair(stack, host, {"canary-by-header": "X-Canary", "canary-by-cookie": "canary",
                                                "canary-weight": "100"})
    apply_and_wait(stack, primary)
    stack.apply(canary)
    wait_canary(stack, host)

    def who(headers: dict[str, str]) -> str | None:
        return stack.request(host, "/", headers=headers).service

    assert who({}) == "canary"  # weight 100
    assert who({"X-Canary": "never"}) == "primary"  # the header first
    assert who({"X-Canary": "never", "Cookie": "canary=always"}) == "primary"
    assert who({"X-Canary": "always", "Cookie": "canary=never"}) == "canary"
    assert who({"Cookie": "canary=never"}) == "primary"  # then the cookie
    assert who({"Cookie": "a=b; canary=never"}) == "primary"
    assert who({"X-Canary": "maybe", "Cookie": "canary=never"}) == "primary"  # undecided: on to the cookie
    assert who({"X-Canary": "Always"}) == "canary"  # not a keyword: the weight decides

    # canary-by-header-value: only that value; "always" is then an ordinary value.
    canary["metadata"]["annotations"].update({"nginx.ingress.kubernetes.io/canary-by-header-value": "v2",
                                              "nginx.ingress.kubernetes.io/canary-weight": "0"})
    stack.apply(canary)
    wait_canary(stack, host, lambda records: any(r.get("value2") == "v2" for r in records))
    assert who({}) == "primary"
    assert who({"X-Canary": "v2"}) == "canary"
    assert who({"X-Canary": "always"}) == "primary"
    assert who({"X-Canary": "v3", "Cookie": "canary=always"}) == "canary"
    assert stack.request(host, "/x", headers={"X-Canary": "v2"}).service == "canary"

    # canary-by-header-pattern (when no -value is given): a regex anywhere in the value, case-sensitive.
    del canary["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-by-header-value"]
    canary["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-by-header-pattern"] = "^(beta|rc)-[0-9]+$"
    stack.apply(canary)
    wait_canary(stack, host, lambda records: any(r.get("flags") == 1 for r in records))
    assert who({"X-Canary": "beta-12"}) == "canary"
    assert who({"X-Canary": "rc-1"}) == "canary"
    assert who({"X-Canary": "BETA-12"}) == "primary"
    assert who({"X-Canary": "beta-x", "Cookie": "canary=always"}) == "canary"


def test_canary_without_primary_and_a_second_canary_are_ignored_with_warnings(stack: Stack) -> None:
    host = "lonely.balance.test"
    lonely = annotated(stack, "lonely-canary", host, [("/", "Prefix", "canary")], {"canary": "true",
                                                                                   "canary-weight": "100"})
    stack.apply(lonely)
    wait_warning(stack, "lonely-canary", "CanaryWithoutPrimary", "no other Ingress")
    assert stack.request(host, "/").status == 404
    # With a primary it serves; a younger second canary for the same host and path is ignored.
    primary = annotated(stack, "lonely-primary", host, [("/", "Prefix", "primary")])
    apply_and_wait(stack, primary)
    wait_canary(stack, host)
    assert stack.request(host, "/").service == "canary"
    time.sleep(1.1)  # creationTimestamp has a one-second resolution
    second = annotated(stack, "second-canary", host, [("/", "Prefix", "primary")],
                       {"canary": "true", "canary-by-header": "X-Other"})
    stack.apply(second)
    wait_warning(stack, "second-canary", "CanaryIgnored", "lonely-canary")
    assert stack.request(host, "/").service == "canary"
    # Removing the primary: the canary serves nothing on its own.
    stack.api.delete(primary)
    stack.wait_status(host, "/", 404)


def test_canary_weight_and_balancing_change_under_load_without_errors_or_reloads(stack: Stack) -> None:
    host = "live.balance.test"
    primary, canary = canary_pair(stack, host, {"canary-weight": "0"})
    apply_and_wait(stack, primary)
    stack.apply(canary)
    wait_canary(stack, host)
    assert stack.nginx is not None
    pids = stack.nginx.pids()
    stop = threading.Event()
    seen: Counter[str] = Counter()

    def load() -> None:
        while not stop.is_set():
            seen.update(backends_of(stack, host, 40, connections=2))

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    try:
        for weight in ("100", "50", "0", "100"):
            canary["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight"] = weight
            stack.apply(canary)
            wait_canary(stack, host, lambda records, w=int(weight): any(r.get("number") == (w << 32 | 100)
                                                                         for r in records))
            time.sleep(0.5)
        # The primary's balancing changes too: affinity, then hashing, then EWMA, then none.
        canary["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight"] = "50"
        stack.apply(canary)
        for annotations, kind in (({"affinity": "cookie"}, "affinity"), ({"upstream-hash-by": "$remote_addr"}, "balance"),
                                  ({"load-balance": "ewma"}, "balance"), ({}, None)):
            primary["metadata"]["annotations"] = {f"nginx.ingress.kubernetes.io/{k}": v for k, v in annotations.items()}
            stack.apply(primary)
            stack.wait_route(host, "/", lambda route, kind=kind: (kind in {p.get("kind") for p in route.get("policies", [])})
                             if kind else not any(p.get("kind") in ("affinity", "balance")
                                                  for p in route.get("policies", [])))
            time.sleep(0.5)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert set(seen) == {"primary", "canary"}, seen  # no "status ..." entries
    assert stack.nginx.pids() == pids


def test_bad_values_warn_and_keep_the_defaults(stack: Stack) -> None:
    host = "bad.balance.test"
    primary, canary = canary_pair(stack, host, {"canary-weight": "-5", "canary-by-header": "X Bad"},
                                  {"load-balance": "least_conn", "affinity": "ip", "upstream-hash-by": "$a b"})
    apply_and_wait(stack, primary)
    stack.apply(canary)
    for name, key in (("bad-primary", "load-balance"), ("bad-primary", "affinity"),
                      ("bad-primary", "upstream-hash-by"), ("bad-canary", "canary-weight"),
                      ("bad-canary", "canary-by-header")):
        wait_warning(stack, name, "InvalidAnnotation", key)
    wait_canary(stack, host)
    # weight 0 (the default): the primary only, round robin, no cookie.
    for _ in range(20):
        reply = stack.request(host, "/")
        assert reply.service == "primary" and "set-cookie" not in reply.headers


# ---- session affinity -------------------------------------------------------------------------------------


def session(reply: Any) -> tuple[str, str]:
    match = COOKIE.match(reply.headers.get("set-cookie", ""))
    assert match, reply.headers
    return match.group(1), match.group(2)


def test_persistent_cookie_keeps_its_endpoint_across_scaling_and_nginx_replicas(stack: Stack) -> None:
    host = "sticky.balance.test"
    ingress = annotated(stack, "sticky", host, [("/app", "Prefix", "pool")], {
        "affinity": "cookie", "affinity-mode": "persistent", "session-cookie-max-age": "3600",
        "session-cookie-expires": "7200", "session-cookie-samesite": "Lax", "session-cookie-domain": "balance.test"})
    apply_and_wait(stack, ingress)
    first = stack.request(host, "/app")
    value, attributes = session(first)
    assert "; Path=/app" in attributes and "; Max-Age=3600" in attributes and "; SameSite=Lax" in attributes
    assert "; Domain=balance.test" in attributes and "; HttpOnly" in attributes and "; Expires=" in attributes
    assert "Secure" not in attributes  # plain HTTP without session-cookie-secure
    pod = first.pod
    cookie = {"Cookie": f"INGRESSCOOKIE={value}"}
    for _ in range(20):  # every worker reads it the same way
        reply = stack.request(host, "/app", headers=cookie)
        assert reply.pod == pod and "set-cookie" not in reply.headers
    # Without a cookie the pods still share the load.
    assert len({stack.request(host, "/app").pod for _ in range(30)}) == 3

    # A table change that keeps the endpoint: two more pods.
    pool = stack.backends["pool"]
    extra = stack.pods("pool", 2)
    pool.pods.extend(extra)
    stack.apply(stack.endpoint_slice(pool))
    wait_for("five pods in the pool", lambda: len({stack.request(host, "/app").pod for _ in range(40)}) == 5,
             timeout=20)
    for _ in range(20):
        assert stack.request(host, "/app", headers=cookie).pod == pod

    # Another nginx reading the same table answers the same.
    assert stack.agent is not None
    other = Nginx(stack.agent.table_dir)
    other.start()
    try:
        for _ in range(10):
            conn = http.client.HTTPConnection("127.0.0.1", other.port, timeout=10)
            conn.request("GET", "/app", headers={"Host": host, **cookie})
            response = conn.getresponse()
            response.read()
            assert response.getheader("X-Backend").split("/")[1] == pod
            conn.close()
    finally:
        other.stop()
        other.cleanup()

    # The pod gone: a new session on a ready pod, with a new cookie.
    pool.pods = [p for p in pool.pods if p.name != pod]
    stack.apply(stack.endpoint_slice(pool))
    moved = wait_for("a new session", lambda: (lambda r: r if r.pod != pod else None)(
        stack.request(host, "/app", headers=cookie)), timeout=20)
    assert session(moved)[0] != value


def test_balanced_sessions_stick_and_secure_is_sent_when_asked(stack: Stack) -> None:
    host = "balanced.balance.test"
    ingress = annotated(stack, "balanced", host, [("/", "Prefix", "pool")], {
        "affinity": "cookie", "session-cookie-name": "route", "session-cookie-secure": "true",
        "session-cookie-path": "/"})
    apply_and_wait(stack, ingress)
    pods = set()
    for _ in range(12):
        first = stack.request(host, "/")
        cookie = first.headers["set-cookie"]
        match = re.match(r"^route=([0-9a-f]{16}); Path=/; HttpOnly; Secure$", cookie)
        assert match, cookie
        for _ in range(5):
            assert stack.request(host, "/", headers={"Cookie": f"route={match.group(1)}"}).pod == first.pod
        pods.add(first.pod)
    assert len(pods) >= 2  # session keys spread over the pods
    # A cookie from elsewhere is replaced.
    assert "set-cookie" in stack.request(host, "/", headers={"Cookie": "route=nothex"}).headers

    # SameSite=None, conditional: not for a client that would reject it (Chrome 51-66), for others.
    ingress["metadata"]["annotations"].update({"nginx.ingress.kubernetes.io/session-cookie-samesite": "None",
                                               "nginx.ingress.kubernetes.io/session-cookie-conditional-samesite-none":
                                                   "true"})
    stack.apply(ingress)
    stack.wait_route(host, "/", lambda route: any(p.get("flags", 0) & 8 for p in route.get("policies", [])))
    old_chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/62.0.3202 Safari/537.36"
    new_chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0 Safari/537.36"
    assert "SameSite" not in stack.request(host, "/", headers={"User-Agent": old_chrome}).headers["set-cookie"]
    assert stack.request(host, "/", headers={"User-Agent": new_chrome}).headers["set-cookie"].endswith(
        "; Secure; SameSite=None")


# ---- upstream-hash-by and load-balance ------------------------------------------------------------------


def test_hash_by_moves_at_most_about_one_nth_of_the_keys_when_an_endpoint_comes_or_goes(stack: Stack) -> None:
    host = "hash.balance.test"
    hashed = stack.backend("hashed", replicas=4)
    ingress = annotated(stack, "hash", host, [("/", "Prefix", "hashed")], {"upstream-hash-by": "$http_x_user"})
    apply_and_wait(stack, ingress)
    keys = [f"user-{i}" for i in range(300)]

    def placement() -> dict[str, str]:
        return {k: stack.request(host, "/", headers={"X-User": k}).pod for k in keys}

    before = placement()
    assert placement() == before  # the same key, the same pod
    assert len(set(before.values())) == 4
    hashed.pods.extend(stack.pods("hashed", 1))
    stack.apply(stack.endpoint_slice(hashed))
    wait_for("the fifth pod", lambda: len(set(placement().values())) == 5, timeout=20, interval=0.5)
    after = placement()
    moved = [k for k in keys if after[k] != before[k]]
    assert all(after[k] == hashed.pods[-1].name for k in moved), "a key moved between old pods"
    # Each key moves with probability 1/5; over 300 keys that is 60 +- 6.9. The bound is 4.3 standard
    # deviations out (a run with random pod addresses exceeds it about once in 10^5); modulo hashing
    # would move 4/5 of the keys.
    assert len(moved) / len(keys) <= 1 / 5 + 0.10, len(moved)
    # Removing an unrelated pod: only its keys move.
    gone = hashed.pods.pop(0)
    stack.apply(stack.endpoint_slice(hashed))
    wait_for("four pods", lambda: gone.name not in set(placement().values()), timeout=20, interval=0.5)
    final = placement()
    assert all(final[k] == after[k] for k in keys if after[k] != gone.name)


SLOW_SERVER = """
import http.server, sys, time
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        time.sleep(0.05)
        body = b'{"name": "ewma/slow"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Backend", "ewma/slow")
        self.end_headers()
        self.wfile.write(body)
server = http.server.ThreadingHTTPServer((sys.argv[1], 8080), H)
print("ready", flush=True)
server.serve_forever()
"""


def test_ewma_sends_less_to_a_slow_endpoint(stack: Stack) -> None:
    host = "ewma.balance.test"
    fast = stack.pods("ewma", 2)
    assert stack.network is not None
    slow = stack.network.add_pod(f"ewma-slow-{stack.network.tag}")
    process = slow.popen(["/usr/bin/python3", "-c", SLOW_SERVER, slow.address], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    stack.cluster.apply(service(stack.namespace, "ewma"),
                        endpoint_slice(stack.namespace, "ewma", [p.address for p in fast] + [slow.address]))
    ingress = annotated(stack, "ewma", host, [("/", "Prefix", "ewma")], {"load-balance": "ewma"})
    apply_and_wait(stack, ingress)
    stack.wait_status(host)
    answered: Counter[str] = Counter()
    for _ in range(3):
        conn = http.client.HTTPConnection("127.0.0.1", stack.nginx.port, timeout=10)
        for _ in range(100):
            conn.request("GET", "/", headers={"Host": host})
            response = conn.getresponse()
            response.read()
            answered[response.getheader("X-Backend", "")] += 1
        conn.close()
    # Round robin would give the slow pod a third (100 of 300).
    assert answered["ewma/slow"] < 45, answered


def test_sticky_canary_sessions_stay_with_the_backend_that_started_them(stack: Stack) -> None:
    host = "stickycanary.balance.test"
    primary, canary = canary_pair(stack, host, {"canary-weight": "50", "affinity": "cookie"},
                                  {"affinity": "cookie"})
    apply_and_wait(stack, primary)
    stack.apply(canary)
    wait_canary(stack, host)
    started: dict[str, str] = {}
    for _ in range(60):
        reply = stack.request(host, "/")
        started.setdefault(reply.service, session(reply)[0])
        if len(started) == 2:
            break
    assert set(started) == {"primary", "canary"}, started
    for service, value in started.items():
        for _ in range(15):  # the weight (50%) would move half of them
            reply = stack.request(host, "/", headers={"Cookie": f"INGRESSCOOKIE={value}"})
            assert reply.service == service and "set-cookie" not in reply.headers
    # legacy: the weight decides whatever the cookie.
    canary["metadata"]["annotations"]["nginx.ingress.kubernetes.io/affinity-canary-behavior"] = "legacy"
    stack.apply(canary)
    stack.wait_route(host, "/", lambda route: any(p.get("kind") == "affinity" and p.get("flags", 0) & 2
                                                  for p in route.get("policies", [])))
    served_by = {stack.request(host, "/", headers={"Cookie": f"INGRESSCOOKIE={started['primary']}"}).service
                 for _ in range(30)}
    assert served_by == {"primary", "canary"}


@pytest.mark.parametrize("change", [False, True])
def test_a_failed_session_endpoint_is_retried_elsewhere_and_moves_only_with_change_on_failure(
        stack: Stack, change: bool) -> None:
    host = f"failover-{int(change)}.balance.test"
    name = f"failover{int(change)}"
    backend = stack.backend(name, replicas=2)
    ingress = annotated(stack, name, host, [("/", "Prefix", name)], {
        "affinity": "cookie", "affinity-mode": "persistent",
        "session-cookie-change-on-failure": "true" if change else "false"})
    apply_and_wait(stack, ingress)
    first = stack.request(host, "/")
    value = session(first)[0]
    dead = next(p for p in backend.pods if p.name == first.pod)
    dead.stop()  # still in the EndpointSlice: connections are refused
    reply = stack.request(host, "/", headers={"Cookie": f"INGRESSCOOKIE={value}"})
    assert reply.status == 200 and reply.pod != dead.name
    if change:
        assert session(reply)[0] != value  # the session moved to the endpoint that answered
        again = stack.request(host, "/", headers={"Cookie": f"INGRESSCOOKIE={session(reply)[0]}"})
        assert again.pod == reply.pod and "set-cookie" not in again.headers
    else:
        assert "set-cookie" not in reply.headers  # the session stays where it was
