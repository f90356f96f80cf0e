"""A real single-node Kubernetes cluster for tests: start it, talk to it, stop it.

By default only the control plane (etcd + kube-apiserver) runs; with workloads=True also kube-controller-manager,
kube-scheduler and the node agent, which runs pods on the local docker engine (docs/cluster.md). With
gateway_api="standard" or "experimental" the cluster also has that channel of the Gateway API CRDs.

The shell scripts in tests/cluster do the work (one implementation for `make cluster-up` and for tests);
this module gives tests free ports, a private state directory, kubectl, TokenRequest tokens and plain
HTTPS requests to the API server with either the admin identity or a bearer token.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SCRIPTS = ROOT / "tests" / "cluster"


class ClusterError(RuntimeError):
    """A cluster script or kubectl failed; the message carries its output."""


def _run(args: list[str], *, env: dict[str, str] | None = None, input: str | None = None,
         check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, env=env, input=input, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise ClusterError(f"{' '.join(map(str, args))} exited {result.returncode}\n{result.stdout}{result.stderr}")
    return result


def tools_bin(build: bool = True) -> Path:
    """The directory holding kube-apiserver, etcd, kubectl and helm; builds them first unless told not to."""
    if build:
        # Progress goes to the terminal (or pytest's capture); the build can take a quarter of an hour.
        subprocess.run([str(CLUSTER_SCRIPTS / "tools.sh"), "build"], check=True)
    return Path(_run([str(CLUSTER_SCRIPTS / "tools.sh"), "path"]).stdout.strip())


def echo_image() -> str:
    """The test echo image (the Gateway API echo server), built from the cached echo-basic binary when missing."""
    return _run(["bash", str(ROOT / "scripts" / "echo-image.sh")], timeout=600).stdout.strip()


def free_pod_cidr() -> str:
    """A 10.x.0.0/16 that no docker network and no route of this machine uses, for a cluster's pods."""
    used = _run(["ip", "-4", "route", "show"]).stdout
    networks = _run(["docker", "network", "ls", "-q"]).stdout.split()
    if networks:
        used += _run(["docker", "network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
                      *networks]).stdout
    for second in range(200, 250):
        if f"10.{second}." not in used:
            return f"10.{second}.0.0/16"
    raise ClusterError("no free 10.200-249.0.0/16 network for the pods")


def free_ports(count: int) -> list[int]:
    """Ports on 127.0.0.1 that nothing listens on now (all held open together, so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class Response:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Cluster:
    """One control plane in its own state directory, on its own ports.

    Use as a context manager, or call start() and stop(); stop() is safe to call more than once.
    """

    def __init__(self, state_dir: Path, bin_dir: Path, apiserver_port: int | None = None, workloads: bool = False,
                 gateway_api: str = ""):
        self.state_dir = Path(state_dir)
        self.bin_dir = Path(bin_dir)
        # "standard" or "experimental": up.sh installs that channel of the Gateway API CRDs, Established.
        if gateway_api not in ("", "standard", "experimental"):
            raise ValueError(f"gateway_api={gateway_api!r}: give 'standard', 'experimental' or ''")
        self.gateway_api = gateway_api
        # Workloads: controllers, scheduler and a node; pods get addresses in pod_cidr, the node is node_ip.
        self.workloads = workloads
        self.pod_cidr = free_pod_cidr() if workloads else ""
        self.node_ip = self.pod_cidr.replace(".0.0/16", ".0.1") if workloads else ""
        self._chosen_apiserver_port = apiserver_port
        self._choose_ports()
        self.kubeconfig = self.state_dir / "kubeconfig"
        self.ca_file = self.state_dir / "pki" / "ca.crt"
        self._admin_tls: ssl.SSLContext | None = None
        self.startup_seconds: float | None = None

    def _choose_ports(self) -> None:
        ports = free_ports(3)
        self.apiserver_port = self._chosen_apiserver_port or ports[0]
        self.etcd_port, self.etcd_peer_port = ports[1], ports[2]
        self.server = f"https://127.0.0.1:{self.apiserver_port}"

    # ---- lifecycle -------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """The environment the cluster scripts read; also right for running kubectl or helm by hand."""
        return {
            **os.environ,
            "KROUTE_CLUSTER_DIR": str(self.state_dir),
            "KROUTE_APISERVER_PORT": str(self.apiserver_port),
            "KROUTE_ETCD_PORT": str(self.etcd_port),
            "KROUTE_ETCD_PEER_PORT": str(self.etcd_peer_port),
            "KUBECONFIG": str(self.kubeconfig),
            "KROUTE_CLUSTER_WORKLOADS": "1" if self.workloads else "0",
            **({"KROUTE_POD_CIDR": self.pod_cidr} if self.workloads else {}),
            "KROUTE_CLUSTER_GATEWAY_API": self.gateway_api,
        }

    def start(self, attempts: int = 3) -> float:
        """Starts etcd and kube-apiserver and waits for /readyz; returns the seconds it took.

        A free port can be taken by someone else between choosing it and listening on it (parallel
        test runs); up.sh then fails and stops what it started, and another set of ports is tried."""
        began = time.monotonic()
        for attempt in range(1, attempts + 1):
            try:
                _run([str(CLUSTER_SCRIPTS / "up.sh")], env=self.env(), timeout=300)
                break
            except ClusterError:
                # Once a cluster has run, its ports are in kubeconfigs and tests: they stay.
                if attempt == attempts or self.startup_seconds is not None:
                    raise
                self._choose_ports()
                if self.workloads:  # another cluster may have taken the pod network meanwhile
                    self.pod_cidr = free_pod_cidr()
                    self.node_ip = self.pod_cidr.replace(".0.0/16", ".0.1")
                # etcd records its peer address in its data: a member that never served starts afresh.
                shutil.rmtree(self.state_dir / "etcd", ignore_errors=True)
        self.startup_seconds = time.monotonic() - began
        return self.startup_seconds

    def stop(self) -> None:
        _run([str(CLUSTER_SCRIPTS / "down.sh")], env=self.env())

    def restart(self) -> float:
        """Stops and starts both processes; etcd keeps its data. The new API server's watch cache begins
        at the current revision, so a watch from an older resourceVersion gets 410 Gone, as after a real
        control-plane restart."""
        self.stop()
        return self.start()

    def __enter__(self) -> Cluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- command-line tools ----------------------------------------------------------------------

    def binary(self, name: str) -> Path:
        return self.bin_dir / name

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        """Runs kubectl as the admin; returns its standard output, raises ClusterError on failure."""
        return _run([str(self.binary("kubectl")), "--kubeconfig", str(self.kubeconfig), *args],
                    input=input, check=check).stdout

    def apply(self, *objects: dict[str, Any]) -> str:
        """kubectl apply of the given objects (as one List)."""
        return self.kubectl("apply", "-f", "-",
                            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}))

    def new_namespace(self, prefix: str = "test") -> str:
        """Creates a namespace with a unique name. Without workloads nothing deletes namespaces (no
        controller manager: a deleted namespace stays Terminating), so each test takes a fresh one. With
        workloads it returns once the serviceaccount controller has made the namespace's default
        ServiceAccount, which a pod needs to be admitted."""
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.kubectl("create", "namespace", name)
        deadline = time.monotonic() + 30
        while self.workloads and not self.kubectl("get", "serviceaccount", "default", "-n", name,
                                                  "--ignore-not-found", "-o", "name").strip():
            if time.monotonic() > deadline:
                raise ClusterError(f"no default ServiceAccount in namespace {name} after 30 s")
            time.sleep(0.1)
        return name

    def token(self, namespace: str, service_account: str, duration: str = "1h",
              audience: str | None = None) -> str:
        """A service-account token from the TokenRequest API (kubectl create token)."""
        args = ["create", "token", service_account, "-n", namespace, "--duration", duration]
        if audience:
            args += ["--audience", audience]
        return self.kubectl(*args).strip()

    # ---- raw HTTPS to the API server -------------------------------------------------------------

    def _tls(self, admin: bool) -> ssl.SSLContext:
        if admin:
            if self._admin_tls is None:
                self._admin_tls = ssl.create_default_context(cafile=str(self.ca_file))
                pki = self.state_dir / "pki"
                self._admin_tls.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
            return self._admin_tls
        return ssl.create_default_context(cafile=str(self.ca_file))

    def _connect(self, method: str, path: str, *, token: str | None, admin: bool, body: Any,
                 params: dict[str, Any] | None, timeout: float) -> http.client.HTTPResponse:
        if token and admin:
            raise ValueError("a request is made either with a token or as the admin, not both")
        conn = http.client.HTTPSConnection("127.0.0.1", self.apiserver_port,
                                           context=self._tls(admin), timeout=timeout)
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if params:
            path = f"{path}?{urlencode(params)}"
        conn.request(method, path, body=data, headers=headers)
        return conn.getresponse()

    def request(self, method: str, path: str, *, token: str | None = None, admin: bool = False,
                body: Any = None, params: dict[str, Any] | None = None, timeout: float = 10) -> Response:
        """One request; with neither token nor admin it is anonymous."""
        response = self._connect(method, path, token=token, admin=admin, body=body, params=params,
                                 timeout=timeout)
        try:
            return Response(response.status, response.read())
        finally:
            response.close()

    def watch(self, path: str, resource_version: str, *, token: str | None = None, admin: bool = False,
              timeout_seconds: int = 10) -> Iterator[dict[str, Any]]:
        """The events of a real watch from resource_version, as the API server streams them."""
        params = {"watch": "1", "resourceVersion": resource_version, "timeoutSeconds": str(timeout_seconds),
                  "allowWatchBookmarks": "false"}
        response = self._connect("GET", path, token=token, admin=admin, body=None, params=params,
                                 timeout=timeout_seconds + 5)
        try:
            if response.status != 200:
                raise ClusterError(f"watch {path}: HTTP {response.status}: {response.read()!r}")
            for line in response:
                if line.strip():
                    yield json.loads(line)
        finally:
            response.close()
