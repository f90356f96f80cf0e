"""A test load balancer in front of a Service's pods: a TCP proxy on the host that follows the Service's
EndpointSlices.

`EndpointWatch` keeps one Service's endpoints current from a LIST and WATCH of the namespace's EndpointSlices
(as kube-proxy and cloud controllers do) and keeps a history of every endpoint state it saw, so a test can
assert that it saw pods terminate (ready false, serving or not, terminating true).

`LoadBalancer` listens on 127.0.0.1 and sends each new connection to the next ready endpoint in turn (round
robin over pod IP : the port named `port_name`); when no endpoint is ready it falls back to the serving,
terminating ones (as kube-proxy does) and else refuses the connection. A connection it has forwarded is never
cut when its endpoint goes away: it lives until one side closes it, so a pod that drains (kroute's preStop
sleep, then the graceful quit its stop signal starts) finishes what it has. A failed connect to a chosen endpoint is not retried on
another: the client sees it, as with most cloud load balancers, and the test counts it.

What a cloud load balancer does differently, and what that means for rollouts in production:
- It learns about endpoints from health checks at intervals (5-30 s, a few consecutive failures to mark a
  target down, a few successes to mark it up), not from a watch within milliseconds; controllers that
  register pod IPs (AWS Load Balancer Controller in IP mode, GKE NEGs) deregister on the endpoint change but
  the change takes seconds to reach the data plane. A pod must therefore keep serving for longer than that
  after it is told to stop: kroute's preStop sleep (the chart's shutdownDelaySeconds, 5 s) is sized for this watch-driven
  balancer and kube-proxy; behind a cloud LB raise it (and terminationGracePeriodSeconds) to cover its interval.
- Deregistration delay / connection draining: a deregistered target keeps its open connections for a set
  time (AWS default 300 s), then they are cut. Here open connections live until they end by themselves.
- externalTrafficPolicy and targets: most cloud LBs target nodes (a NodePort on every node, or with
  externalTrafficPolicy Local only nodes whose healthCheckNodePort says they run a ready pod), and kube-proxy
  on the node picks the pod; Cluster adds a hop and hides the client's address behind SNAT. This balancer
  targets pod IPs directly, like IP-mode / container-native load balancing, and sees client addresses of
  127.0.0.1 (nginx sees the host's address on the pod network).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from kube import Cluster


@dataclass(frozen=True)
class Endpoint:
    address: str
    port: int
    pod: str
    ready: bool
    serving: bool
    terminating: bool


class EndpointWatch(threading.Thread):
    """The endpoints of Service `service` in `namespace`, from its EndpointSlices, kept current by a watch."""

    def __init__(self, cluster: Cluster, namespace: str, service: str, port_name: str = "http"):
        super().__init__(daemon=True, name=f"endpoints-{namespace}-{service}")
        self.cluster, self.namespace, self.service, self.port_name = cluster, namespace, service, port_name
        self.path = f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"
        self.slices: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.synced = threading.Event()
        # (time, endpoints) each time the set changed.
        self.history: list[tuple[float, tuple[Endpoint, ...]]] = []
        self.errors: list[str] = []

    def endpoints(self) -> tuple[Endpoint, ...]:
        with self.lock:
            return self.history[-1][1] if self.history else ()

    def ever(self, predicate: Any) -> list[tuple[float, Endpoint]]:
        """Every (time, endpoint) seen for which predicate(endpoint) held."""
        with self.lock:
            return [(when, e) for when, endpoints in self.history for e in endpoints if predicate(e)]

    def _mine(self, obj: dict[str, Any]) -> bool:
        return obj.get("metadata", {}).get("labels", {}).get("kubernetes.io/service-name") == self.service

    def _record(self) -> None:
        found = []
        for slice_ in self.slices.values():
            ports = [p["port"] for p in slice_.get("ports") or [] if p.get("name", "") == self.port_name]
            for endpoint in slice_.get("endpoints") or []:
                conditions = endpoint.get("conditions", {})
                for port in ports:
                    found.append(Endpoint(
                        address=endpoint["addresses"][0], port=port,
                        pod=(endpoint.get("targetRef") or {}).get("name", ""),
                        # Kubernetes: a nil ready means ready; nil serving means as ready; nil terminating false.
                        ready=conditions.get("ready", True) is not False,
                        serving=conditions.get("serving", conditions.get("ready", True)) is not False,
                        terminating=conditions.get("terminating", False) is True))
        current = tuple(sorted(found, key=lambda e: (e.address, e.port)))
        with self.lock:
            if not self.history or self.history[-1][1] != current:
                self.history.append((time.time(), current))

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                listed = self.cluster.request("GET", self.path, admin=True)
                if listed.status != 200:
                    raise RuntimeError(f"list {self.path}: HTTP {listed.status}")
                body = listed.json()
                self.slices = {s["metadata"]["name"]: s for s in body["items"] if self._mine(s)}
                self._record()
                self.synced.set()
                version = body["metadata"]["resourceVersion"]
                while not self.stopping.is_set():
                    for event in self.cluster.watch(self.path, version, admin=True, timeout_seconds=5):
                        obj = event["object"]
                        if event["type"] == "ERROR":
                            raise RuntimeError(f"watch {self.path}: {obj.get('message')}")
                        version = obj["metadata"]["resourceVersion"]
                        if not self._mine(obj):
                            continue
                        if event["type"] == "DELETED":
                            self.slices.pop(obj["metadata"]["name"], None)
                        else:
                            self.slices[obj["metadata"]["name"]] = obj
                        self._record()
            except Exception as error:  # relist after any failure, as an informer does
                self.errors.append(f"{time.strftime('%H:%M:%S')} {error}")
                self.stopping.wait(0.2)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=15)


class LoadBalancer:
    """Round robin over the ready endpoints of an EndpointWatch; see the module's docstring."""

    def __init__(self, endpoints: EndpointWatch, connect_timeout: float = 3):
        self.watch = endpoints
        self.connect_timeout = connect_timeout
        self.port = 0
        self.connections: Counter[str] = Counter()  # by pod
        self.chosen: list[tuple[float, str]] = []  # (time, pod) of every connection
        self.failures: list[str] = []  # connects that failed, and connections refused for want of endpoints
        self._next = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="loadbalancer")
        self._server: asyncio.AbstractServer | None = None
        self._open: set[asyncio.StreamWriter] = set()

    def start(self) -> LoadBalancer:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=1024), self._loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            for writer in list(self._open):
                writer.close()
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def __enter__(self) -> LoadBalancer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _choose(self) -> Endpoint | None:
        endpoints = self.watch.endpoints()
        candidates = [e for e in endpoints if e.ready] or [e for e in endpoints if e.serving and e.terminating]
        if not candidates:
            return None
        self._next += 1
        return candidates[self._next % len(candidates)]

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self._open.add(client_writer)
        stamp = time.strftime("%H:%M:%S", time.gmtime()) + f".{int(time.time() % 1 * 1000):03d}Z"
        endpoint = self._choose()
        try:
            if endpoint is None:
                self.failures.append(f"{stamp} no ready or serving endpoint")
                return
            try:
                upstream_reader, upstream_writer = await asyncio.wait_for(
                    asyncio.open_connection(endpoint.address, endpoint.port), self.connect_timeout)
            except (OSError, asyncio.TimeoutError) as error:
                self.failures.append(f"{stamp} connect {endpoint.pod} {endpoint.address}:{endpoint.port}: "
                                     f"{type(error).__name__} {error}")
                return
            self.connections[endpoint.pod] += 1
            self.chosen.append((time.time(), endpoint.pod))
            self._open.add(upstream_writer)
            try:
                await asyncio.gather(self._pump(client_reader, upstream_writer),
                                     self._pump(upstream_reader, client_writer))
            finally:
                self._open.discard(upstream_writer)
                upstream_writer.close()
        finally:
            self._open.discard(client_writer)
            client_writer.close()

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copies until end of stream, then half-closes the other side; a reset ends both directions."""
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, RuntimeError):
            writer.close()
