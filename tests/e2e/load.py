"""A fixed-rate HTTP client for tests under load, and the echo workloads it loads.

`Load` runs the client in a process of its own (this file, run as a script), so that it keeps its rate while
the test's own process runs kubectl, the load balancer and the EndpointSlice watches. It sends `rate` requests
a second, each on a new TCP connection (`Connection: close`): every request then goes through the load
balancer's choice of endpoint and nginx's choice of backend afresh, so a pod that stops serving shows up as
an error at once instead of hiding behind a kept-alive connection. It schedules request i at start + i/rate
and catches up when it falls behind, so the count is rate x duration whatever the machine's load.

Every request is recorded: when it started, how long it took, its HTTP status or the connection error
(refused, reset, timeout, a response cut short) and the pod the echo server named. `LoadResult` tells
non-2xx answers and connection errors apart and lists them with their times on failure.

The echo workloads: a Deployment of the Gateway API echo server (answers JSON with its pod and namespace),
a Service selecting it, an Ingress of a class routing a host to Services. And kroute itself on a cluster that
runs pods (the `workload_cluster` fixture): the `workspace` fixture installs the chart with the image
kroute:<version> and makes namespaces, and removes both after the test, also when it fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from agent_fixtures import wait_for
from chart_fixtures import Helm, Release, image_name, run
from kube import Cluster, ClusterError

# ---- the echo workloads --------------------------------------------------------------------------------------


def echo_deployment(namespace: str, name: str, image: str, replicas: int, *, pre_stop_seconds: int = 0,
                    grace_seconds: int = 30) -> dict[str, Any]:
    """A Deployment of the echo server on :3000: ready when /health answers; a rollout adds one pod before it
    removes one (maxSurge 1, maxUnavailable 0). pre_stop_seconds > 0 gives it a preStop sleep (the lifecycle
    sleep action: the image has no shell), during which the endpoint is terminating but still serving."""
    container: dict[str, Any] = {
        "name": "echo", "image": image, "imagePullPolicy": "Never",
        "ports": [{"name": "http", "containerPort": 3000}],
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
        "readinessProbe": {"httpGet": {"path": "/health", "port": 3000}, "periodSeconds": 1,
                           "failureThreshold": 1},
    }
    if pre_stop_seconds:
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": pre_stop_seconds}}}
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {"metadata": {"labels": labels},
                         "spec": {"terminationGracePeriodSeconds": grace_seconds, "containers": [container]}},
        },
    }


def echo_service(namespace: str, name: str) -> dict[str, Any]:
    """A Service selecting the pods of echo_deployment(name): port 80 (http) to the pods' 3000."""
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": {"app": name},
                     "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}}


def ingress(namespace: str, name: str, ingress_class: str, rules: dict[str, str]) -> dict[str, Any]:
    """An Ingress of ingress_class; rules: host -> Service (path /, port http)."""
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"ingressClassName": ingress_class, "rules": [
                {"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
                    "service": {"name": service, "port": {"name": "http"}}}}]}}
                for host, service in rules.items()]}}


def pods(cluster: Cluster, namespace: str, selector: str) -> list[dict[str, Any]]:
    """The pods matching a label selector, terminating ones included."""
    return json.loads(cluster.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json"))["items"]


def rollout_status(cluster: Cluster, namespace: str, deployment: str, timeout: int = 180) -> None:
    """Waits (bounded) until the Deployment's rollout is complete: every replica updated and available."""
    run([cluster.binary("kubectl"), "--kubeconfig", cluster.kubeconfig, "rollout", "status",
         f"deployment/{deployment}", "-n", namespace, f"--timeout={timeout}s"], timeout=timeout + 30)


def wait_until(what: str, predicate: Any, timeout: float = 60, interval: float = 0.2) -> Any:
    """agent_fixtures.wait_for with the longer default that rollouts need."""
    return wait_for(what, predicate, timeout, interval)


def wait_gone(what: str, lister: Any, timeout: float = 60, interval: float = 0.5) -> None:
    """Polls lister until it returns nothing; fails after timeout seconds, naming what was still there."""
    deadline = time.monotonic() + timeout
    while left := lister():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} still there after {timeout}s: {left}")
        time.sleep(interval)


def diagnose(cluster: Cluster, *namespaces: str) -> str:
    """What to read when a pod does not come up: pods, events, the node agent's log."""
    out = []
    for ns in namespaces:
        for args in (("get", "pods", "-o", "wide"), ("get", "events", "--sort-by=.lastTimestamp")):
            result = cluster.kubectl(*args, "-n", ns, check=False)
            out.append(f"---- kubectl {' '.join(args)} -n {ns}\n{result}")
    log = Path(cluster.state_dir) / "kroute-node.log"
    if log.exists():
        out.append("---- kroute-node.log (end)\n" + "\n".join(log.read_text(errors="replace").splitlines()[-60:]))
    return "\n".join(out)


class Workspace:
    """Namespaces and chart releases of one test; cleanup() uninstalls and deletes them all."""

    def __init__(self, cluster: Cluster, helm: Helm):
        self.cluster, self.helm = cluster, helm
        self.releases: list[Release] = []
        self.namespaces: list[str] = []

    def namespace(self, prefix: str) -> str:
        name = self.cluster.new_namespace(prefix)
        self.namespaces.append(name)
        return name

    def install(self, values: dict[str, Any] | None = None) -> Release:
        """The chart with the local image (never pulled), in a namespace of its own; waits for its pods."""
        repository, tag = image_name().rsplit(":", 1)
        release = Release(self.helm, self.cluster, {
            "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"}, **(values or {})})
        self.releases.append(release)
        self.namespaces.append(release.namespace)
        release.install()
        rollout_status(self.cluster, release.namespace, release.fullname)
        return release

    def cleanup(self) -> None:
        errors = []
        for release in self.releases:
            try:
                release.uninstall()
            except ClusterError as error:
                errors.append(str(error))
        if self.namespaces:
            # The namespace controller deletes what is left; pods go through their graceful termination.
            try:
                self.cluster.kubectl("delete", "namespace", *self.namespaces, "--ignore-not-found", "--wait=true",
                                     "--timeout=100s")
            except ClusterError as error:
                errors.append(str(error))
        assert not errors, "\n".join(errors)


@pytest.fixture(scope="session")
def workload_helm(workload_cluster: Cluster, tools: Path) -> Helm:
    return Helm(workload_cluster, tools)


@pytest.fixture
def workspace(workload_cluster: Cluster, workload_helm: Helm) -> Iterator[Workspace]:
    made = Workspace(workload_cluster, workload_helm)
    try:
        yield made
    finally:
        print(diagnose(workload_cluster, *made.namespaces))  # pytest shows it when the test failed
        made.cleanup()


# ---- the client, as the test sees it ---------------------------------------------------------------------------


@dataclass
class Outcome:
    started: float  # time.time() when the request began
    seconds: float  # until the answer was complete or the error happened
    status: int  # HTTP status; 0 for a connection error
    error: str  # the connection error, "" for an answer
    pod: str  # the pod the echo server named, "" when none

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class LoadResult:
    def __init__(self, outcomes: list[Outcome], began: float, ended: float, rate: float):
        self.outcomes = sorted(outcomes, key=lambda o: o.started)
        self.began, self.ended, self.rate = began, ended, rate

    @property
    def seconds(self) -> float:
        return self.ended - self.began

    @property
    def non_2xx(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status and not o.ok]

    @property
    def connection_errors(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.status]

    def pods(self, since: float = 0.0, until: float = float("inf")) -> Counter[str]:
        """Answers by pod, of the requests that started in [since, until)."""
        return Counter(o.pod for o in self.outcomes if o.ok and since <= o.started < until)

    def summary(self) -> str:
        latencies = sorted(o.seconds for o in self.outcomes) or [0.0]
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        return (f"requests={len(self.outcomes)} seconds={self.seconds:.1f} "
                f"rate={len(self.outcomes) / max(self.seconds, 1e-9):.0f}/s ok={sum(o.ok for o in self.outcomes)} "
                f"non_2xx={len(self.non_2xx)} connection_errors={len(self.connection_errors)} "
                f"p99={p99 * 1000:.0f}ms max={latencies[-1] * 1000:.0f}ms")

    def failures(self, limit: int = 40) -> str:
        """The failed requests with their times (seconds since the load began and UTC), for a test's message."""
        lines = []
        for kind, found in (("non-2xx", self.non_2xx), ("connection error", self.connection_errors)):
            for o in found[:limit]:
                stamp = time.strftime("%H:%M:%S", time.gmtime(o.started)) + f".{int(o.started % 1 * 1000):03d}Z"
                lines.append(f"  {kind} at +{o.started - self.began:.3f}s ({stamp}) after {o.seconds * 1000:.0f}ms: "
                             f"{o.status or o.error}")
            if len(found) > limit:
                lines.append(f"  ... and {len(found) - limit} more {kind}s")
        return "\n".join(lines)

    def check(self, *, min_rate_fraction: float = 0.9) -> None:
        """Fails unless every request got a 2xx answer and the client kept its rate."""
        assert not self.non_2xx and not self.connection_errors, f"{self.summary()}\n{self.failures()}"
        expected = self.rate * self.seconds
        assert len(self.outcomes) >= min_rate_fraction * expected, \
            f"only {len(self.outcomes)} requests in {self.seconds:.1f}s, expected ~{expected:.0f}: {self.summary()}"


class Load:
    """The client process: start(), then stop() returns the LoadResult. As a context manager the process is
    ended on the way out whatever happens."""

    def __init__(self, address: str, port: int, host: str, *, rate: float = 200, path: str = "/",
                 timeout: float = 10, max_seconds: float = 600):
        self.args = [sys.executable, os.path.abspath(__file__), "--address", address, "--port", str(port),
                     "--host", host, "--path", path, "--rate", str(rate), "--timeout", str(timeout),
                     "--max-seconds", str(max_seconds)]
        self.rate = rate
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> Load:
        self.process = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()  # type: ignore[union-attr]
        assert line.strip() == "started", f"the load client did not start: {line!r} {self.process.stderr.read()}"
        return self

    def stop(self, timeout: float = 60) -> LoadResult:
        """Stops sending, waits for the requests in flight (each ends within its timeout), returns the result."""
        assert self.process is not None
        out, err = self.process.communicate(input="", timeout=timeout)
        assert self.process.returncode == 0, f"the load client exited {self.process.returncode}: {err[-2000:]}"
        data = json.loads(out)
        return LoadResult([Outcome(*o) for o in data["outcomes"]], data["began"], data["ended"], self.rate)

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


# ---- the client process ----------------------------------------------------------------------------------------


def dechunk(data: bytes) -> tuple[bytes, bool]:
    """The body of a chunked message, and whether its last chunk arrived."""
    body = b""
    while True:
        size_line, separator, rest = data.partition(b"\r\n")
        if not separator:
            return body, False
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            return body, False
        if size == 0:
            return body, True
        if len(rest) < size + 2:
            return body + rest[:size], False
        body, data = body + rest[:size], rest[size + 2:]


async def _request(address: str, port: int, request: bytes, timeout: float) -> tuple[int, str, str]:
    """One request on a new connection: (status, error, pod)."""
    writer = None
    try:
        async def exchange() -> bytes:
            nonlocal writer
            reader, writer = await asyncio.open_connection(address, port)
            writer.write(request)
            await writer.drain()
            return await reader.read(-1)  # Connection: close: the answer ends with the connection

        data = await asyncio.wait_for(exchange(), timeout)
    except asyncio.TimeoutError:
        return 0, f"timeout after {timeout}s", ""
    except OSError as error:
        return 0, f"{type(error).__name__}: {error}", ""
    finally:
        if writer is not None:
            writer.close()
    head, separator, body = data.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if not separator or len(status_line) < 2 or not status_line[1].isdigit():
        return 0, f"incomplete response ({len(data)} bytes): {data[:80]!r}", ""
    status = int(status_line[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in head.split(b"\r\n")[1:])}
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        body, complete = dechunk(body)
        if not complete:
            return 0, f"chunked response cut short ({len(body)} bytes, status {status})", ""
    elif b"content-length" in headers:
        length = int(headers[b"content-length"])
        if len(body) < length:
            return 0, f"response body cut short ({len(body)} of {length} bytes, status {status})", ""
    pod = ""
    try:
        pod = json.loads(body).get("pod", "") if body.startswith(b"{") else ""
    except ValueError:
        pass
    return status, "", pod


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    request = (f"GET {args.path} HTTP/1.1\r\nHost: {args.host}\r\nUser-Agent: kroute-load\r\n"
               f"Connection: close\r\n\r\n").encode()
    outcomes: list[list[Any]] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # The test says stop by closing our stdin (or by SIGTERM).
    def stdin_readable() -> None:
        if not os.read(sys.stdin.fileno(), 4096):
            loop.remove_reader(sys.stdin.fileno())
            stop.set()

    loop.add_reader(sys.stdin.fileno(), stdin_readable)
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    async def one() -> None:
        started, clock = time.time(), time.monotonic()
        status, error, pod = await _request(args.address, args.port, request, args.timeout)
        outcomes.append([started, time.monotonic() - clock, status, error, pod])

    tasks: set[asyncio.Task[None]] = set()
    began, clock = time.time(), time.monotonic()
    print("started", flush=True)
    sent = 0
    while not stop.is_set() and time.monotonic() - clock < args.max_seconds:
        due = clock + sent / args.rate
        delay = due - time.monotonic()
        if delay > 0:
            try:
                await asyncio.wait_for(stop.wait(), delay)
                break
            except asyncio.TimeoutError:
                pass
        task = asyncio.create_task(one())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        sent += 1
    ended = time.time()
    if tasks:
        await asyncio.wait(tasks, timeout=args.timeout + 5)
    return {"began": began, "ended": ended, "outcomes": outcomes}


def main() -> None:
    parser = argparse.ArgumentParser(description="Fixed-rate HTTP load, one connection per request, until stdin "
                                                 "closes; prints every request's outcome as JSON.")
    parser.add_argument("--address", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", required=True, help="the Host header")
    parser.add_argument("--path", default="/")
    parser.add_argument("--rate", type=float, default=200, help="requests a second")
    parser.add_argument("--timeout", type=float, default=10, help="seconds a request may take")
    parser.add_argument("--max-seconds", type=float, default=600, help="stop on one's own after this long")
    args = parser.parse_args()
    json.dump(asyncio.run(_run(args)), sys.stdout)


if __name__ == "__main__":
    main()
