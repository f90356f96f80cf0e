"""Rollouts under load with zero errors: kroute (the chart, 2 replicas, real pods) behind a test load balancer
(loadbalancer.py: a host TCP proxy that follows the kroute Service's EndpointSlices), a fixed-rate client at
200 requests a second, each on a new connection (load.py), through the load balancer and kroute to an echo
Deployment. Under that load:

a. `kubectl rollout restart` of the backend (3 replicas, maxSurge 1, maxUnavailable 0, readiness /health,
   preStop sleep): no non-2xx answer, no connection error; its pods really terminate (the EndpointSlice
   shows them terminating), the old ones disappear and the answers come from the new ones.
b. The backend scaled 5 -> 1 -> 5: no error, and the answers spread over the 5 pods at the end.
c. `kubectl rollout restart` of kroute's own Deployment: no error; the load balancer saw kroute's pods
   terminate and sends everything to the new ones.

Each scenario records its numbers (requests, seconds, rate, errors) as properties of the JUnit test suite and
prints them with the latency (p99, max).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterator

import pytest

from chart_fixtures import Helm, Release, image  # noqa: F401
from kube import Cluster
from load import (Load, LoadResult, Workspace, diagnose, echo_deployment, echo_service, ingress, pods,
                  rollout_status, wait_gone, wait_until)
from loadbalancer import EndpointWatch, LoadBalancer

RATE = 200
HOST = "load.test"
# The backend's preStop sleep: long enough for the EndpointSlice change to reach kroute's table.
PRE_STOP_SECONDS = 3
# pytest's record_testsuite_property: a name and value for the JUnit file.
Record = Callable[[str, Any], None]


class Stack:
    def __init__(self, cluster: Cluster, apps: str, release: Release, backend: EndpointWatch,
                 frontend: EndpointWatch, balancer: LoadBalancer):
        self.cluster, self.apps, self.release = cluster, apps, release
        self.backend, self.frontend, self.balancer = backend, frontend, balancer

    def pod_names(self, namespace: str, selector: str) -> set[str]:
        return {p["metadata"]["name"] for p in pods(self.cluster, namespace, selector)}

    def echo_pods(self) -> set[str]:
        return self.pod_names(self.apps, "app=echo")

    def kroute_pods(self) -> set[str]:
        return self.pod_names(self.release.namespace, f"app.kubernetes.io/instance={self.release.name}")

    def load(self) -> Load:
        return Load("127.0.0.1", self.balancer.port, HOST, rate=RATE)


@pytest.fixture(scope="module")
def stack(workload_cluster: Cluster, tools: Any, image: str) -> Iterator[Stack]:  # noqa: F811
    cluster = workload_cluster
    workspace = Workspace(cluster, Helm(cluster, tools))
    watches: list[EndpointWatch] = []
    balancer = None
    try:
        apps = workspace.namespace("apps")
        cluster.apply(echo_deployment(apps, "echo", cluster.echo_image, 3,  # type: ignore[attr-defined]
                                      pre_stop_seconds=PRE_STOP_SECONDS, grace_seconds=PRE_STOP_SECONDS + 10),
                      echo_service(apps, "echo"))
        release = workspace.install({"replicaCount": 2})
        cluster.apply(ingress(apps, "load", release.ingress_class, {HOST: "echo"}))
        rollout_status(cluster, apps, "echo")
        backend = EndpointWatch(cluster, apps, "echo")
        frontend = EndpointWatch(cluster, release.namespace, release.fullname)
        for watch in (backend, frontend):
            watches.append(watch)
            watch.start()
        wait_until("kroute's 2 pods ready in its EndpointSlices",
                   lambda: len([e for e in frontend.endpoints() if e.ready]) == 2, 60)
        balancer = LoadBalancer(frontend).start()
        with Load("127.0.0.1", balancer.port, HOST, rate=20) as probe:
            wait_until("both kroute pods to route load.test", lambda: len(balancer.connections) == 2, 30)
            probe.stop()
        wait_until(f"{HOST} to answer through the load balancer", lambda: _answers(balancer.port), 30)
        yield Stack(cluster, apps, release, backend, frontend, balancer)
    finally:
        print(diagnose(cluster, *workspace.namespaces))
        if balancer is not None:
            print(f"load balancer: connections by pod {dict(balancer.connections)}; failures {balancer.failures[:20]}")
            balancer.stop()
        for watch in watches:
            watch.stop()
        workspace.cleanup()


def _answers(port: int) -> bool:
    with Load("127.0.0.1", port, HOST, rate=50) as probe:
        time.sleep(1)
        result = probe.stop()
    return bool(result.outcomes) and not result.non_2xx and not result.connection_errors


def under_load(stack: Stack, record: Record, name: str, action: Callable[[], float]) -> LoadResult:
    """Runs action under the load (after 2 s of warm-up) and 3 s more after the time it returns; checks that
    every request succeeded at the rate, records the numbers."""
    failures_before = len(stack.balancer.failures)
    with stack.load() as load:
        time.sleep(2)
        settled = action()
        time.sleep(max(0.0, settled + 3 - time.time()))
        result = load.stop()
    print(f"{name}: {result.summary()}")
    for key, value in (("requests", len(result.outcomes)), ("seconds", round(result.seconds, 1)),
                       ("rate", round(len(result.outcomes) / result.seconds)), ("non_2xx", len(result.non_2xx)),
                       ("connection_errors", len(result.connection_errors))):
        record(f"{name}_{key}", value)
    result.check()
    assert stack.balancer.failures[failures_before:] == [], stack.balancer.failures[failures_before:]
    return result


def test_backend_rollout_restart_under_load(stack: Stack, record_testsuite_property: Record) -> None:
    old = stack.echo_pods()
    assert len(old) == 3
    marks: dict[str, float] = {}

    def restart() -> float:
        marks["restart"] = time.time()
        stack.cluster.kubectl("rollout", "restart", "deployment/echo", "-n", stack.apps)
        rollout_status(stack.cluster, stack.apps, "echo")
        wait_gone("the old echo pods", lambda: sorted(stack.echo_pods() & old), 90)
        marks["gone"] = time.time()
        return marks["gone"]

    result = under_load(stack, record_testsuite_property, "backend_restart", restart)
    new = stack.echo_pods()
    assert len(new) == 3 and not new & old, (old, new)
    # Each old pod was seen terminating, and draining: still serving (its preStop sleep) but no longer ready.
    terminating = [(when, e) for when, e in stack.backend.ever(lambda e: e.terminating) if when >= marks["restart"]]
    assert {e.pod for _, e in terminating} == old, f"terminating endpoints seen: {terminating}"
    assert {e.pod for _, e in terminating if e.serving and not e.ready} == old, terminating
    assert set(result.pods(since=marks["gone"])) == new, result.pods(since=marks["gone"])
    assert set(result.pods(until=marks["restart"])) == old


def test_backend_scale_down_and_up_under_load(stack: Stack, record_testsuite_property: Record) -> None:
    stack.cluster.kubectl("scale", "deployment/echo", "-n", stack.apps, "--replicas=5")
    rollout_status(stack.cluster, stack.apps, "echo")
    assert len(stack.echo_pods()) == 5
    marks: dict[str, float] = {}

    def scale() -> float:
        stack.cluster.kubectl("scale", "deployment/echo", "-n", stack.apps, "--replicas=1")
        wait_until("one echo pod left", lambda: len(stack.echo_pods()) == 1, 90)
        marks["one"] = time.time()
        stack.cluster.kubectl("scale", "deployment/echo", "-n", stack.apps, "--replicas=5")
        rollout_status(stack.cluster, stack.apps, "echo")
        marks["five"] = time.time()
        return marks["five"]

    result = under_load(stack, record_testsuite_property, "backend_scale", scale)
    final = stack.echo_pods()
    assert len(final) == 5
    # kroute's table follows the EndpointSlice within milliseconds; half a second is ample.
    spread = result.pods(since=marks["five"] + 0.5)
    assert set(spread) == final, f"answers at the end came from {dict(spread)}, the pods are {sorted(final)}"


def test_kroute_rollout_restart_under_load(stack: Stack, record_testsuite_property: Record) -> None:
    old = stack.kroute_pods()
    assert len(old) == 2
    marks: dict[str, float] = {}

    def restart() -> float:
        marks["restart"] = time.time()
        stack.cluster.kubectl("rollout", "restart", f"deployment/{stack.release.fullname}", "-n",
                              stack.release.namespace)
        rollout_status(stack.cluster, stack.release.namespace, stack.release.fullname)
        wait_gone("the old kroute pods", lambda: sorted(stack.kroute_pods() & old), 120)
        marks["gone"] = time.time()
        return marks["gone"]

    under_load(stack, record_testsuite_property, "kroute_restart", restart)
    new = stack.kroute_pods()
    assert len(new) == 2 and not new & old, (old, new)
    terminating = {e.pod for when, e in stack.frontend.ever(lambda e: e.terminating) if when >= marks["restart"]}
    assert terminating == old, f"the load balancer saw these kroute pods terminate: {terminating}"
    after = {pod for when, pod in stack.balancer.chosen if when >= marks["gone"]}
    assert after == new, f"after the rollout the load balancer sent to {after}, the pods are {new}"
