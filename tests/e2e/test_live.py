"""Live changes: traffic follows Ingress, Service and EndpointSlice changes without nginx ever reloading,
and without one failed request on routes that exist throughout."""

from __future__ import annotations

import re
import signal
import subprocess
import time

from agent_fixtures import wait_for
from stack import PROPAGATION_BOUND, Stack, make_stack, rule  # noqa: F401

CHANGES = 200
# What nginx writes to its error log when it reloads or replaces its workers.
RELOAD_MARKS = ("reconfiguring", "signal process started", "gracefully shutting down", "exiting", "start worker process")


def wrk(stack: Stack, host: str, connections: int = 8) -> subprocess.Popen[str]:
    """wrk against one host through nginx until SIGINT (then it prints its totals)."""
    assert stack.nginx is not None
    return subprocess.Popen(["wrk", "-t1", f"-c{connections}", "-d300s", "--timeout", "5s", "-H", f"Host: {host}",
                             f"http://127.0.0.1:{stack.nginx.port}/"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wrk_totals(process: subprocess.Popen[str]) -> dict[str, int]:
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=30)
    requests = re.search(r"(\d+) requests in", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    assert requests, out
    totals = {"requests": int(requests.group(1)), "non_2xx": int(non_2xx.group(1)) if non_2xx else 0}
    for i, kind in enumerate(("connect", "read", "write", "timeout"), 1):
        totals[kind] = int(errors.group(i)) if errors else 0
    totals["output"] = out  # type: ignore[assignment]
    return totals


def test_200_changes_under_load_fail_no_request_and_never_reload(make_stack) -> None:  # noqa: ANN001
    s: Stack = make_stack()
    assert s.nginx is not None and s.agent is not None
    s.backend("stable-a", replicas=2)
    s.backend("stable-b", replicas=2)
    churn = s.backend("churn", replicas=3)
    stable_a = {"rules": [rule("stable-a.live", ("/", "Prefix", "stable-a"))]}
    s.apply(s.ingress("stable-a", stable_a), s.ingress("stable-b", {"rules": [rule("stable-b.live", ("/", "Prefix", "stable-b"))]}))
    for host in ("stable-a.live", "stable-b.live"):
        s.wait_status(host)
    pids_before = s.nginx.pids()
    log_before = len(s.nginx.error_log())
    publishes_before = s.agent.metric("kroute_agent_publishes_total")

    loads = [wrk(s, "stable-a.live"), wrk(s, "stable-b.live")]
    try:
        time.sleep(1)
        api = s.api
        ns = s.namespace
        for i in range(CHANGES):
            kind = i % 4
            if kind == 0:    # a new Ingress on a new host (every other one deleted again later)
                api.create(s.ingress(f"churn-{i}", {"rules": [rule(f"churn-{i}.live", ("/", "Prefix", "churn"))]}))
                if i >= 8 and (i // 4) % 2 == 0:
                    api.delete(s.ingress(f"churn-{i - 8}", {}))
            elif kind == 1:  # the churn Service's endpoints: a rotating subset, sometimes not ready
                addresses = churn.addresses[i % 3:] or churn.addresses
                api.replace(s.endpoint_slice(churn, addresses, ready=(i % 8 != 1)))
            elif kind == 2:  # a new Service, and its EndpointSlice
                name = f"svc-{i}"
                api.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
                            "spec": {"ports": [{"name": "http", "port": 8080}]}})
            else:            # the stable host's own Ingress gains and loses paths; "/" stays
                extra = dict(stable_a)
                extra["rules"] = [rule("stable-a.live", ("/", "Prefix", "stable-a"), (f"/extra-{i}", "Prefix", "churn"))]
                api.replace(s.ingress("stable-a", extra))
        last = f"churn-{CHANGES - 4}.live"
        s.wait_status(last, timeout=PROPAGATION_BOUND + 5)
        time.sleep(1)
    finally:
        totals = [wrk_totals(p) if p.poll() is None else {"output": p.stdout.read()} for p in loads]

    for t in totals:
        assert t.get("requests", 0) > 100, t["output"]
        assert t["non_2xx"] == 0, t["output"]
        assert t["connect"] == t["read"] == t["write"] == t["timeout"] == 0, t["output"]
    assert s.nginx.pids() == pids_before, "nginx master or workers changed"
    log = s.nginx.error_log()[log_before:]
    for mark in RELOAD_MARKS:
        assert mark not in log, f"{mark!r} in nginx's error log:\n{log[-3000:]}"
    # The table really changed under the load, many times.
    assert s.agent.metric("kroute_agent_publishes_total") - publishes_before >= 20
    assert s.request("stable-a.live", f"/extra-{CHANGES - 1}").service == "churn"


def test_endpoints_scaled_to_zero_give_503_and_back_up_200(make_stack) -> None:  # noqa: ANN001
    s: Stack = make_stack()
    web = s.backend("web", replicas=2)
    s.apply(s.ingress("web", {"rules": [rule("web.live", ("/", "Prefix", "web"))]}))
    s.wait_status("web.live")
    pids = s.nginx.pids()

    for label, down in (("no endpoints", s.endpoint_slice(web, [])),
                        ("endpoints not ready", s.endpoint_slice(web, ready=False))):
        s.api.replace(down)
        acknowledged = time.monotonic()
        s.wait_status("web.live", status=503, timeout=PROPAGATION_BOUND)
        took_down = time.monotonic() - acknowledged
        s.api.replace(s.endpoint_slice(web))
        acknowledged = time.monotonic()
        reply = s.wait_status("web.live", status=200, timeout=PROPAGATION_BOUND)
        took_up = time.monotonic() - acknowledged
        assert reply.service == "web"
        print(f"{label}: 503 after {took_down * 1000:.1f} ms, 200 again after {took_up * 1000:.1f} ms")
    assert s.nginx.pids() == pids


def test_a_new_ingress_is_served_within_the_propagation_bound(make_stack) -> None:  # noqa: ANN001
    s: Stack = make_stack()
    s.backend("web")
    s.apply(s.ingress("first", {"rules": [rule("first.live", ("/", "Prefix", "web"))]}))
    s.wait_status("first.live")
    for i in range(20):
        host = f"new-{i}.live"
        assert s.request(host).status == 404
        s.api.create(s.ingress(f"new-{i}", {"rules": [rule(host, ("/", "Prefix", "web"))]}))
        acknowledged = time.monotonic()
        s.wait_status(host, timeout=PROPAGATION_BOUND)
        assert time.monotonic() - acknowledged <= PROPAGATION_BOUND
    # kubectl, then curl: what a user does.
    s.cluster.kubectl("delete", "ingress", "-n", s.namespace, "new-0")
    wait_for("the deleted host gone", lambda: s.curl("new-0.live", "/", "-o", "/dev/null", "-w", "%{http_code}").stdout == "404",
             timeout=PROPAGATION_BOUND)
