"""custom-http-errors, default-backend, disable-proxy-intercept-errors, mirror-target, mirror-request-body,
mirror-host and service-upstream, kubectl to curl: what the client gets, what the error backend, the
mirror and the Service's ClusterIP stand-in received (the echo pods record their requests, see
tests/integration/echo_server.py's test controls), and Warning Events for values kroute will not use.
All of it on one stack whose nginx never reloads."""

from __future__ import annotations

import http.client
import json
import random
import subprocess
import time
from typing import Any, Iterator

import pytest

from agent_fixtures import wait_for
from netns import ECHO_SERVER
from stack import Stack, endpoint_slice, module_stack  # noqa: F401
from test_annotations import annotated, apply_and_wait, served
from test_hostile import Steady, wait_warning, with_healthy_route

NGINX = "nginx.ingress.kubernetes.io"


@pytest.fixture(scope="module")
def stack(module_stack: Stack) -> Iterator[Stack]:  # noqa: F811
    """The module's stack with a healthy route (for Steady), echo Services a and b, an error backend
    "errors" and a mirror "mirror"; nginx must keep its processes for the whole module."""
    s = with_healthy_route(module_stack, "a", "b", "errors", "mirror")
    assert s.nginx is not None
    pids = s.nginx.pids()
    yield s
    assert s.nginx is not None
    assert s.nginx.pids() == pids, "nginx's master or workers changed during the module"


def recorded(address: str, port: int = 8080) -> list[dict[str, Any]]:
    """What the echo listener at address:port received (its /_echo/requests)."""
    conn = http.client.HTTPConnection(address, port, timeout=5)
    try:
        conn.request("GET", "/_echo/requests")
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def copies(stack: Stack, path: str) -> list[dict[str, Any]]:
    """The requests for `path` the mirror's pod received."""
    return [r for r in recorded(stack.backends["mirror"].addresses[0]) if r["path"] == path]


def wait_copy(stack: Stack, path: str) -> dict[str, Any]:
    return wait_for(f"a mirror copy of {path}", lambda: (copies(stack, path) or [None])[0], timeout=10, interval=0.05)


# ---- custom-http-errors and default-backend -----------------------------------------------------------


def test_listed_statuses_are_answered_by_the_error_backend_with_the_original_status(stack: Stack) -> None:
    host = "errors.err.test"
    apply_and_wait(stack, annotated(stack, "errors", host, [("/", "Prefix", "a")],
                                    {"custom-http-errors": "404,503", "default-backend": "errors"}))
    reply = stack.request(host, "/missing/page?q=1",
                          headers={"X-Echo-Status": "a=404", "Accept": "text/html", "X-Request-ID": "req-1"})
    assert reply.status == 404, (reply.status, reply.body[:300])
    assert reply.service == "errors", reply.echo
    sent = reply.echo["headers"]
    assert reply.echo["path"] == "/?q=1", reply.echo  # as ingress-nginx: rewrite (.*) / break
    assert (sent["x-code"], sent["x-format"], sent["x-original-uri"]) == ("404", "text/html", "/missing/page?q=1")
    assert (sent["x-namespace"], sent["x-ingress-name"]) == (stack.namespace, "errors")
    assert (sent["x-service-name"], sent["x-service-port"], sent["x-request-id"]) == ("a", "http", "req-1")
    # A request body goes to the error backend too.
    reply = stack.request(host, "/post", method="POST", body=b"z" * 2000, headers={"X-Echo-Status": "a=404"})
    assert (reply.status, reply.service, reply.echo["body_length"]) == (404, "errors", 2000), reply.echo
    # The error backend's own status does not reach the client: the original one does.
    reply = stack.request(host, "/x", headers={"X-Echo-Status": "503"})
    assert (reply.status, reply.service, reply.echo["headers"]["x-code"]) == (503, "errors", "503")


def test_unlisted_statuses_and_successes_pass_unchanged(stack: Stack) -> None:
    host = "errors-pass.err.test"
    apply_and_wait(stack, annotated(stack, "errors-pass", host, [("/", "Prefix", "a")],
                                    {"custom-http-errors": "404", "default-backend": "errors"}))
    for status in (500, 403, 201):
        reply = stack.request(host, "/p", headers={"X-Echo-Status": f"a={status}"})
        assert (reply.status, reply.service, reply.echo["path"]) == (status, "a", "/p"), reply.echo
    served(stack.request(host, "/ok"), "a", "/ok")


def test_disable_proxy_intercept_errors_leaves_the_services_answers_alone(stack: Stack) -> None:
    host = "errors-own.err.test"
    stack.backend("drained", ready=False)
    apply_and_wait(stack, annotated(stack, "errors-own", host, [("/", "Prefix", "a"), ("/drained", "Prefix", "drained")],
                                    {"custom-http-errors": "404,503", "default-backend": "b",
                                     "disable-proxy-intercept-errors": "true"}))
    reply = stack.request(host, "/x", headers={"X-Echo-Status": "a=404"})
    assert (reply.status, reply.service) == (404, "a"), reply.echo
    # kroute's own 503 for a Service without endpoints: default-backend serves the request itself.
    served(stack.request(host, "/drained/y"), "b", "/drained/y")


def test_default_backend_serves_a_rule_whose_service_has_no_ready_endpoints(stack: Stack) -> None:
    host = "fallback.err.test"
    stack.backend("empty", ready=False)
    apply_and_wait(stack, annotated(stack, "fallback", host, [("/", "Prefix", "empty")], {"default-backend": "errors"}),
                   annotated(stack, "no-fallback", "no-fallback.err.test", [("/", "Prefix", "empty")]))
    served(stack.request(host, "/some/where?x=1"), "errors", "/some/where?x=1")
    assert stack.request("no-fallback.err.test", "/").status == 503
    # Endpoints back: the Service answers again.
    stack.apply(stack.endpoint_slice(stack.backends["empty"], ready=True))
    stack.wait_status(host, "/back")
    wait_for("the Service itself", lambda: stack.request(host, "/back").service == "empty", timeout=10, interval=0.05)


def test_a_missing_default_backend_service_warns(stack: Stack) -> None:
    host = "errors-missing.err.test"
    apply_and_wait(stack, annotated(stack, "errors-missing", host, [("/", "Prefix", "a")],
                                    {"custom-http-errors": "404", "default-backend": "nowhere"}))
    wait_warning(stack, "errors-missing", "DefaultBackendNotFound", "nowhere")
    # No default backend in the table either: the Service's 404 passes.
    reply = stack.request(host, "/x", headers={"X-Echo-Status": "a=404"})
    assert (reply.status, reply.service) == (404, "a")


def test_bad_status_lists_warn_and_change_nothing(stack: Stack) -> None:
    host = "errors-bad.err.test"
    apply_and_wait(stack, annotated(stack, "errors-bad", host, [("/", "Prefix", "a")],
                                    {"custom-http-errors": "404,abc,700", "default-backend": "errors"}))
    wait_warning(stack, "errors-bad", "InvalidAnnotation", "custom-http-errors")
    reply = stack.request(host, "/x", headers={"X-Echo-Status": "a=404"})
    assert (reply.status, reply.service) == (404, "a")


# ---- mirror-target ------------------------------------------------------------------------------------


def test_mirror_gets_a_copy_with_the_body(stack: Stack) -> None:
    host = "mirror.err.test"
    mirror = stack.backends["mirror"].addresses[0]
    apply_and_wait(stack, annotated(stack, "mirror", host, [("/", "Prefix", "a")],
                                    {"mirror-target": f"http://{mirror}:8080$request_uri", "mirror-host": "copy.example"}))
    reply = stack.request(host, "/m1?q=1", method="POST", body=b"x" * 3000)
    assert (reply.status, reply.service, reply.echo["body_length"]) == (200, "a", 3000)
    copy = wait_copy(stack, "/m1?q=1")
    assert (copy["method"], copy["body_length"], copy["host"]) == ("POST", 3000, "copy.example"), copy
    assert copy["headers"]["x-request-id"] == reply.echo["headers"]["x-request-id"]
    # A GET without a body, once per request.
    served(stack.request(host, "/m2"), "a", "/m2")
    wait_copy(stack, "/m2")
    time.sleep(0.3)
    assert len(copies(stack, "/m2")) == 1


def test_mirror_request_body_off_sends_the_copy_without_a_body(stack: Stack) -> None:
    host = "mirror-nobody.err.test"
    mirror = stack.backends["mirror"].addresses[0]
    apply_and_wait(stack, annotated(stack, "mirror-nobody", host, [("/", "Prefix", "a")],
                                    {"mirror-target": f"http://{mirror}:8080", "mirror-request-body": "off"}))
    reply = stack.request(host, "/nb?z=2", method="PUT", body=b"y" * 500)
    assert (reply.status, reply.service, reply.echo["body_length"]) == (200, "a", 500)
    # Without a path the target gets the request's URI; the Host is the target's.
    copy = wait_copy(stack, "/nb?z=2")
    assert (copy["method"], copy["body_length"], copy["host"]) == ("PUT", 0, mirror), copy
    assert "content-length" not in copy["headers"] and "transfer-encoding" not in copy["headers"], copy["headers"]


def test_a_slow_or_dead_mirror_does_not_slow_the_request(stack: Stack) -> None:
    mirror = stack.backends["mirror"].addresses[0]
    dead = stack.backends["b"].addresses[0]  # nothing listens on port 9
    apply_and_wait(stack,
                   annotated(stack, "mirror-slow", "mirror-slow.err.test", [("/", "Prefix", "a")],
                             {"mirror-target": f"http://{mirror}:8080$request_uri"}),
                   annotated(stack, "mirror-dead", "mirror-dead.err.test", [("/", "Prefix", "a")],
                             {"mirror-target": f"http://{dead}:9$request_uri"}))
    for host, path in (("mirror-slow.err.test", "/slow"), ("mirror-dead.err.test", "/dead")):
        for i in range(3):
            began = time.monotonic()
            reply = stack.request(host, f"{path}{i}", headers={"X-Echo-Delay": "mirror=5"})
            seconds = time.monotonic() - began
            served(reply, "a", f"{path}{i}")
            assert seconds < 1.0, f"{host}: {seconds:.2f}s"
    wait_copy(stack, "/slow0")
    # nginx holds the connection's next request until the copy ends: 1 s after it is sent, at most.
    conn = http.client.HTTPConnection("127.0.0.1", stack.nginx.port, timeout=20)
    try:
        for i in range(3):
            began = time.monotonic()
            conn.request("GET", f"/keepalive{i}", headers={"Host": "mirror-slow.err.test", "X-Echo-Delay": "mirror=5"})
            response = conn.getresponse()
            response.read()
            assert response.status == 200
            assert time.monotonic() - began < (1.0 if i == 0 else 2.0), f"request {i}: {time.monotonic() - began:.2f}s"
    finally:
        conn.close()


def test_a_mirror_target_kroute_will_not_use_warns_and_mirrors_nothing(stack: Stack) -> None:
    host = "mirror-bad.err.test"
    mirror = stack.backends["mirror"].addresses[0]
    for name, target, reason, text in (
            ("mirror-var", f"http://{mirror}:8080/$host", "InvalidAnnotation", "$request_uri"),
            ("mirror-inject", f"http://{mirror}:8080/;return 200 x;", "InvalidAnnotation", "mirror-target"),
            ("mirror-scheme", f"ftp://{mirror}/", "InvalidAnnotation", "mirror-target"),
            ("mirror-name", "http://example.com/x", "AnnotationIgnored", "neither an IP address")):
        obj = annotated(stack, name, f"{name}.{host}", [("/", "Prefix", "a")], {"mirror-target": target})
        apply_and_wait(stack, obj)
        wait_warning(stack, name, reason, text)
        served(stack.request(f"{name}.{host}", f"/{name}"), "a", f"/{name}")
    time.sleep(0.3)
    assert not [r for r in recorded(mirror) if r["path"].startswith("/mirror-")]


def test_a_service_name_target_is_sent_to_its_cluster_ip(stack: Stack) -> None:
    """mirror.<ns>.svc.cluster.local becomes the Service's ClusterIP, where a stand-in answers."""
    vip, stop = cluster_ip_stand_in(stack, "mirror-vip")
    try:
        stack.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "mirror-vip", "namespace": stack.namespace},
                     "spec": {"clusterIP": vip, "ports": [{"name": "http", "port": 8080, "targetPort": 8080}]}})
        host = "mirror-svc.err.test"
        apply_and_wait(stack, annotated(stack, "mirror-svc", host, [("/", "Prefix", "a")],
                                        {"mirror-target": f"http://mirror-vip.{stack.namespace}.svc.cluster.local:8080"}))
        served(stack.request(host, "/by-name"), "a", "/by-name")
        copy = wait_for("a copy at the ClusterIP", lambda: next(
            (r for r in recorded(vip) if r["path"] == "/by-name"), None), timeout=10, interval=0.05)
        assert copy["host"] == f"mirror-vip.{stack.namespace}.svc.cluster.local", copy
    finally:
        stop()


# ---- service-upstream ---------------------------------------------------------------------------------


def cluster_ip_stand_in(stack: Stack, name: str) -> tuple[str, Any]:
    """A free ClusterIP of the API server's range (10.96.0.0/16) on which a pod answers as "<name>/vip",
    as kube-proxy would forward it; returns it and a function that removes the host route."""
    assert stack.network is not None
    pod = stack.network.add_pod(f"{name}-vip")
    taken = {s["spec"].get("clusterIP") for s in json.loads(stack.cluster.kubectl(
        "get", "services", "-A", "-o", "json"))["items"]}
    vip = next(ip for ip in (f"10.96.{random.randint(100, 250)}.{random.randint(2, 250)}" for _ in range(100))
               if ip not in taken)
    subprocess.run(["ip", "-n", pod.namespace, "addr", "add", f"{vip}/32", "dev", "lo"], check=True)
    subprocess.run(["ip", "route", "add", f"{vip}/32", "via", pod.address], check=True)
    process = pod.popen(["/usr/bin/python3", ECHO_SERVER, f"{name}/vip={vip}:8080"], stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    return vip, lambda: subprocess.run(["ip", "route", "del", f"{vip}/32"], check=False)


def test_service_upstream_sends_requests_to_the_cluster_ip_whatever_the_endpoints(stack: Stack) -> None:
    vip, stop = cluster_ip_stand_in(stack, "svcup")
    try:
        pods = stack.pods("svcup", 1)
        stack.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svcup", "namespace": stack.namespace},
                     "spec": {"clusterIP": vip, "ports": [{"name": "http", "port": 8080, "targetPort": 8080}]}},
                    endpoint_slice(stack.namespace, "svcup", [p.address for p in pods]))
        host = "svcup.err.test"
        apply_and_wait(stack,
                       annotated(stack, "svcup", host, [("/", "Prefix", "svcup")], {"service-upstream": "true"}),
                       annotated(stack, "svcup-endpoints", "svcup-endpoints.err.test", [("/", "Prefix", "svcup")]))
        reply = stack.request(host, "/v")
        assert (reply.status, reply.echo.get("name")) == (200, "svcup/vip"), reply.echo
        # Another Ingress naming the same Service keeps its endpoints.
        reply = stack.request("svcup-endpoints.err.test", "/e")
        assert (reply.status, reply.pod) == (200, pods[0].name), reply.echo
        # EndpointSlice changes do not touch the ClusterIP route.
        with Steady(stack, host):
            stack.apply(endpoint_slice(stack.namespace, "svcup", [p.address for p in pods], ready=False))
            stack.wait_status("svcup-endpoints.err.test", "/", 503)
            for _ in range(20):
                reply = stack.request(host, "/v")
                assert (reply.status, reply.echo.get("name")) == (200, "svcup/vip"), reply.echo
    finally:
        stop()


# ---- changes under load -------------------------------------------------------------------------------


def test_changes_under_load_are_served_without_a_reload(stack: Stack) -> None:
    host = "live.err.test"
    mirror = stack.backends["mirror"].addresses[0]
    vip, stop = cluster_ip_stand_in(stack, "live")
    try:
        pods = stack.pods("live", 1)
        stack.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "live", "namespace": stack.namespace},
                     "spec": {"clusterIP": vip, "ports": [{"name": "http", "port": 8080, "targetPort": 8080}]}},
                    endpoint_slice(stack.namespace, "live", [p.address for p in pods]))
        live = annotated(stack, "live", host, [("/", "Prefix", "live")])
        apply_and_wait(stack, live)

        def now(annotations: dict[str, str], check: Any, headers: dict[str, str] | None = None,
                body: bytes | None = None) -> None:
            live["metadata"]["annotations"] = {f"{NGINX}/{k}": v for k, v in annotations.items()}
            stack.api.replace(live)
            method = "GET" if body is None else "POST"
            wait_for(f"{annotations} served",
                     lambda: check(stack.request(host, "/live", method=method, headers=headers, body=body)),
                     timeout=5, interval=0.02)

        with Steady(stack):
            now({"custom-http-errors": "404", "default-backend": "errors"},
                lambda r: (r.status, r.service) == (404, "errors"), {"X-Echo-Status": "live=404"})
            now({"custom-http-errors": "404", "default-backend": "b"},
                lambda r: (r.status, r.service) == (404, "b"), {"X-Echo-Status": "live=404"})
            now({"custom-http-errors": "404", "default-backend": "b", "disable-proxy-intercept-errors": "true"},
                lambda r: (r.status, r.pod) == (404, pods[0].name), {"X-Echo-Status": "live=404"})
            now({"mirror-target": f"http://{mirror}:8080/live-copy$request_uri"},
                lambda r: r.status == 200 and bool(copies(stack, "/live-copy/live")))
            now({"mirror-target": f"http://{mirror}:8080/live-host$request_uri", "mirror-host": "h2.example",
                 "mirror-request-body": "off"},
                lambda r: r.status == 200 and r.echo["body_length"] == 10 and any(
                    c["host"] == "h2.example" and c["body_length"] == 0 for c in copies(stack, "/live-host/live")),
                body=b"0123456789")
            now({"service-upstream": "true"}, lambda r: r.status == 200 and r.pod == "vip")
            now({}, lambda r: (r.status, r.pod) == (404, pods[0].name), {"X-Echo-Status": "live=404"})
    finally:
        stop()


def test_custom_http_errors_without_default_backend_use_the_tables_default_backend(stack: Stack) -> None:
    """Last: an Ingress with spec.defaultBackend makes "fallback" the table's default backend."""
    host = "global.err.test"
    stack.backend("fallback")
    stack.backend("global-drained", ready=False)
    apply_and_wait(stack, annotated(stack, "global", host, [("/", "Prefix", "a"), ("/drained", "Prefix", "global-drained")],
                                    {"custom-http-errors": "418,503"}))
    wait_warning(stack, "global", "AnnotationIgnored", "no default backend")
    default = stack.ingress("table-default", {"defaultBackend": {"service": {"name": "fallback",
                                                                              "port": {"name": "http"}}}})
    stack.apply(default)
    wait_for("the table's default backend", lambda: stack.request("unrouted.err.test", "/").service == "fallback",
             timeout=15, interval=0.05)
    reply = wait_for("418 from the default backend", lambda: (lambda r: r if r.service == "fallback" else None)(
        stack.request(host, "/tea", headers={"X-Echo-Status": "a=418"})), timeout=10, interval=0.05)
    assert (reply.status, reply.echo["headers"]["x-code"]) == (418, "418")
    # kroute's own 503 (no ready endpoints) goes there too; a request body is not sent on (nginx
    # discards it before an error page of its own).
    for method, body in (("GET", None), ("POST", b"q" * 1000)):
        reply = stack.request(host, "/drained/x", method=method, body=body, timeout=5)
        assert (reply.status, reply.service, reply.echo["headers"]["x-code"]) == (503, "fallback", "503"), reply.echo
        assert reply.echo["headers"]["x-service-name"] == "global-drained"
