"""The whole kroute stack for end-to-end tests: test pods, kroute-agent, nginx with the module.

Given the session's control plane (`cluster`), a Stack owns
- a namespace and an IngressClass of its own (with a controller name of its own, so this stack's agent
  owns only this stack's Ingresses, whatever other tests left in the cluster),
- a PodNetwork (tests/e2e/netns.py): backends are echo servers in network namespaces with 10.x
  addresses, each named "<service>/<pod>" so a reply says which Service and endpoint served it,
- a kroute-agent publishing into the stack's table directory (leader of a Lease in the namespace, so
  it writes Ingress status),
- nginx with the module and the shipped nginx.conf (tests/lib/nginx_runner.py), reading that table.

close() stops everything, in reverse order, also after a failed start. Every wait is bounded.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))

from agent_fixtures import Agent, lookup, wait_for  # noqa: E402
from kube import Cluster  # noqa: E402
from netns import Pod, PodNetwork  # noqa: E402
from nginx_runner import Nginx, readable_tempdir  # noqa: E402

# Where nginx listens in tests, and what the agent writes into Ingress status.
PUBLISH_ADDRESS = "127.0.0.1"
# How long a change may take from the API server's acknowledgement to nginx serving it. The measured
# propagation (bench/results/propagation.md) is milliseconds; this leaves room for a loaded CI machine.
PROPAGATION_BOUND = 2.0

API_PATHS = {
    "Service": "/api/v1/namespaces/{ns}/services",
    "EndpointSlice": "/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
    "Ingress": "/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses",
    "Secret": "/api/v1/namespaces/{ns}/secrets",
    "IngressClass": "/apis/networking.k8s.io/v1/ingressclasses",
    "GatewayClass": "/apis/gateway.networking.k8s.io/v1/gatewayclasses",
    "Gateway": "/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/gateways",
    "HTTPRoute": "/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/httproutes",
}


# ---- objects ----------------------------------------------------------------------------------------


def service(ns: str, name: str, port: int = 8080) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"ports": [{"name": "http", "port": port, "targetPort": port, "protocol": "TCP"}]}}


def endpoint_slice(ns: str, service_name: str, addresses: list[str], port: int = 8080, ready: bool = True,
                   name: str | None = None) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name or f"{service_name}-1", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [a], "conditions": {"ready": ready}} for a in addresses]}


def ingress(ns: str, name: str, spec: dict[str, Any], class_name: str | None) -> dict[str, Any]:
    spec = dict(spec)
    if class_name is not None and "ingressClassName" not in spec:
        spec["ingressClassName"] = class_name
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name, "namespace": ns},
            "spec": spec}


def rule(host: str | None, *paths: tuple[str, str, str]) -> dict[str, Any]:
    """paths: (path, pathType, service); the Service's port is the one named "http"."""
    r: dict[str, Any] = {"http": {"paths": [
        {"path": p, "pathType": t, "backend": {"service": {"name": s, "port": {"name": "http"}}}}
        for p, t, s in paths]}}
    if host is not None:
        r["host"] = host
    return r


# ---- a fast API client ------------------------------------------------------------------------------


class Api:
    """Create, replace and delete objects over one kept-alive HTTPS connection as the cluster admin.

    kubectl costs ~100 ms a call (a Go binary's start); the load and propagation tests make hundreds of
    changes and time each from the API server's reply, so they talk to the API server directly."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        pki = cluster.state_dir / "pki"
        self.context = ssl.create_default_context(cafile=str(cluster.ca_file))
        self.context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        self.conn: http.client.HTTPSConnection | None = None

    def _request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPSConnection("127.0.0.1", self.cluster.apiserver_port,
                                                        context=self.context, timeout=30)
            try:
                self.conn.request(method, path, body=data, headers=headers)
                response = self.conn.getresponse()
                payload = response.read()
                return response.status, json.loads(payload) if payload else None
            except (http.client.HTTPException, OSError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    @staticmethod
    def path(obj: dict[str, Any], named: bool = False) -> str:
        base = API_PATHS[obj["kind"]].format(ns=obj["metadata"].get("namespace", ""))
        return f"{base}/{obj['metadata']['name']}" if named else base

    def create(self, obj: dict[str, Any]) -> None:
        status, reply = self._request("POST", self.path(obj), obj)
        assert status == 201, f"create {obj['kind']} {obj['metadata']['name']}: {status} {reply}"

    def replace(self, obj: dict[str, Any]) -> None:
        """PUT without a resourceVersion: an unconditional update."""
        status, reply = self._request("PUT", self.path(obj, named=True), obj)
        assert status == 200, f"replace {obj['kind']} {obj['metadata']['name']}: {status} {reply}"

    def delete(self, obj: dict[str, Any]) -> None:
        status, reply = self._request("DELETE", self.path(obj, named=True))
        assert status == 200, f"delete {obj['kind']} {obj['metadata']['name']}: {status} {reply}"

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# ---- replies ----------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    echo: dict[str, Any] = field(default_factory=dict)  # the echo server's JSON, when one answered

    @property
    def service(self) -> str | None:
        """The Service whose endpoint answered ("<service>/<pod>" names the echo listener)."""
        return self.echo["name"].split("/")[0] if self.echo else None

    @property
    def pod(self) -> str | None:
        return self.echo["name"].split("/")[1] if self.echo else None


@dataclass
class Backend:
    """A Service, its EndpointSlice and the pods behind them."""
    name: str
    pods: list[Pod]
    port: int

    @property
    def addresses(self) -> list[str]:
        return [p.address for p in self.pods]


# ---- the stack --------------------------------------------------------------------------------------


class Stack:
    def __init__(self, cluster: Cluster, agent_args: tuple[str, ...] = (), kubeconfig: Path | None = None,
                 table_dir: Path | None = None):
        """kubeconfig: the agent's (default: the cluster's admin one); table_dir: where it publishes (default:
        a new directory of its own)."""
        self.cluster = cluster
        self.id = uuid.uuid4().hex[:6]
        self.workdir = readable_tempdir("kroute-stack-")
        self.network: PodNetwork | None = None
        self.agent: Agent | None = None
        self.nginx: Nginx | None = None
        self.api = Api(cluster)
        self.backends: dict[str, Backend] = {}
        try:
            self.namespace = cluster.new_namespace("e2e")
            self.class_name = f"kroute-{self.id}"
            self.controller = f"kroute.dev/e2e-{self.id}"
            cluster.apply({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                           "metadata": {"name": self.class_name}, "spec": {"controller": self.controller}})
            self.network = PodNetwork()
            self.agent = Agent(cluster, self.workdir, [
                "--controller-class", self.controller, "--ingress-class", self.class_name,
                "--election-namespace", self.namespace, "--publish-address", PUBLISH_ADDRESS,
                "--lease-duration", "4", "--renew-deadline", "3", "--retry-period", "1",
                # Snapshots hold private keys (mode 0640): nginx's workers read them through their group.
                *(["--table-group", "www-data"] if os.geteuid() == 0 else []), *agent_args],
                None, kubeconfig or cluster.kubeconfig, table_dir)
            self.agent.wait_ready()
            self.nginx = Nginx(self.agent.table_dir)
            self.nginx.start()
        except BaseException:
            self.close()
            raise

    # ---- lifecycle ----

    def close(self) -> None:
        """Stops nginx, the agent and the pods; safe to call more than once and after a failed start."""
        errors = []
        for step in (self._stop_nginx, self._stop_agent, self._stop_network, self.api.close):
            try:
                step()
            except Exception as e:  # noqa: BLE001 - every step must run
                errors.append(e)
        if self.cluster is not None:
            try:
                self.cluster.kubectl("delete", "ingressclass", f"kroute-{self.id}", "--ignore-not-found", check=False)
            except Exception as e:  # noqa: BLE001
                errors.append(e)
        shutil.rmtree(self.workdir, ignore_errors=True)
        if errors:
            raise errors[0]

    def _stop_nginx(self) -> None:
        if self.nginx is not None:
            try:
                self.nginx.stop()  # raises after stopping when a sanitizer build reported something
            finally:
                self.nginx.cleanup()
                self.nginx = None

    def _stop_agent(self) -> None:
        if self.agent is not None:
            self.agent.stop()
            self.agent = None

    def _stop_network(self) -> None:
        if self.network is not None:
            self.network.close()
            self.network = None

    def logs(self) -> str:
        """The agent's and nginx's logs (tails), for a failing test."""
        parts = []
        if self.agent is not None:
            parts.append(f"---- agent log\n{self.agent.log()[-4000:]}")
        if self.nginx is not None:
            parts.append(f"---- nginx error log\n{self.nginx.error_log()[-3000:]}")
        return "\n".join(parts)

    # ---- backends ----

    def pods(self, service_name: str, replicas: int, port: int = 8080) -> list[Pod]:
        """`replicas` new pods, each running an echo server named "<service>/<pod>" on `port`."""
        assert self.network is not None
        pods = []
        for i in range(replicas):
            pod = self.network.add_pod(f"{service_name}-{self.network.tag}-{len(self.network.pods)}")
            pod.echo([port], name=f"{service_name}/{pod.name}")
            pods.append(pod)
        return pods

    def backend(self, name: str, replicas: int = 1, port: int = 8080, ready: bool = True) -> Backend:
        """A Service `name` (port "http") with `replicas` echo pods in its EndpointSlice."""
        pods = self.pods(name, replicas, port)
        backend = Backend(name, pods, port)
        self.backends[name] = backend
        self.cluster.apply(service(self.namespace, name, port),
                           endpoint_slice(self.namespace, name, backend.addresses, port, ready))
        return backend

    def endpoint_slice(self, backend: Backend, addresses: list[str] | None = None, ready: bool = True) -> dict[str, Any]:
        return endpoint_slice(self.namespace, backend.name, backend.addresses if addresses is None else addresses,
                              backend.port, ready)

    # ---- Ingresses ----

    def ingress(self, name: str, spec: dict[str, Any], class_name: str | None = "") -> dict[str, Any]:
        """An Ingress of this stack's class (class_name="") or of another (a name, or None: no class)."""
        return ingress(self.namespace, name, spec, self.class_name if class_name == "" else class_name)

    def apply(self, *objects: dict[str, Any]) -> str:
        return self.cluster.apply(*objects)

    def ingress_status(self, name: str) -> list[dict[str, Any]]:
        obj = json.loads(self.cluster.kubectl("get", "ingress", "-n", self.namespace, name, "-o", "json"))
        return obj.get("status", {}).get("loadBalancer", {}).get("ingress", []) or []

    # ---- the table and traffic ----

    def lookup(self, host: str, path: str = "/") -> dict[str, Any] | None:
        assert self.agent is not None
        return lookup(self.agent.table_dir, host, path)

    def wait_route(self, host: str, path: str = "/", predicate: Callable[[dict[str, Any]], bool] | None = None,
                   timeout: float = 15) -> dict[str, Any]:
        """Waits until `kroute-table lookup --json host path` shows a route (that satisfies predicate)."""
        def found() -> dict[str, Any] | None:
            route = self.lookup(host, path)
            return route if route is not None and (predicate is None or predicate(route)) else None
        return wait_for(f"a route for {host}{path}", found, timeout=timeout, interval=0.05)

    def request(self, host: str | None, path: str = "/", method: str = "GET", headers: dict[str, str] | None = None,
                body: bytes | None = None, timeout: float = 10, tls: bool = False) -> Reply:
        """One request through nginx with this Host header (None: the address nginx listens on); tls: over
        HTTPS, with the Host's name as SNI and any certificate accepted."""
        assert self.nginx is not None
        if tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                "127.0.0.1", self.nginx.tls_port, timeout=timeout, context=context)
            sock = socket.create_connection(("127.0.0.1", self.nginx.tls_port), timeout=timeout)
            conn.sock = context.wrap_socket(sock, server_hostname=(host or "").rsplit(":", 1)[0] or None)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.nginx.port, timeout=timeout)
        try:
            h = {"Host": host if host is not None else f"127.0.0.1:{self.nginx.port}"}
            h.update(headers or {})
            conn.request(method, path, body=body, headers=h)
            response = conn.getresponse()
            data = response.read()
            reply = Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
            if response.getheader("X-Backend") and data:
                reply.echo = json.loads(data)
            return reply
        finally:
            conn.close()

    def wait_status(self, host: str, path: str = "/", status: int = 200, timeout: float = 15) -> Reply:
        """Polls through nginx until a request gets `status`."""
        return wait_for(f"HTTP {status} from {host}{path}",
                        lambda: (lambda r: r if r.status == status else None)(self.request(host, path)),
                        timeout=timeout, interval=0.02)

    def curl(self, host: str, path: str = "/", *args: str) -> subprocess.CompletedProcess[str]:
        """curl through nginx with a Host header (what a user would type)."""
        assert self.nginx is not None
        return subprocess.run(["curl", "-sS", "--max-time", "10", "-H", f"Host: {host}",
                               f"http://127.0.0.1:{self.nginx.port}{path}", *args],
                              capture_output=True, text=True, timeout=20)


@pytest.fixture
def make_stack(cluster: Cluster) -> Iterator[Callable[..., Stack]]:
    """Starts stacks for one test and closes every one of them afterwards, also when the test fails."""
    started: list[Stack] = []

    def start(*agent_args: str, kubeconfig: Path | None = None, table_dir: Path | None = None) -> Stack:
        s = Stack(cluster, tuple(agent_args), kubeconfig, table_dir)
        started.append(s)
        return s

    try:
        yield start
    finally:
        for s in started:
            print(s.logs())
            s.close()


@pytest.fixture(scope="module")
def module_stack(cluster: Cluster) -> Iterator[Stack]:
    """One stack shared by a test module (its namespace and class keep it apart from other modules)."""
    s = Stack(cluster)
    try:
        yield s
    finally:
        print(s.logs())
        s.close()

