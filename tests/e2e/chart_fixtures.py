"""Helpers and fixtures for the Helm chart (charts/kroute) against the test control plane (kube.py).

`helm` runs the control plane's helm binary with its kubeconfig; `releases` installs releases for one test
and uninstalls every one of them when the test ends, also when it fails. Each release gets its own
namespace and its own IngressClass name, because IngressClasses and ClusterRoles are cluster-wide.

For the image: `image` is the kroute image (built by `make image` if docker lacks it), `containers_of_test`
tracks the docker containers, networks and volumes of one test and removes them when it ends, and `Relay`
lets containers reach the loopback-only API server.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import threading
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from kube import ROOT, Cluster, ClusterError

CHART = ROOT / "charts" / "kroute"


def run(args: list[str], *, env: dict[str, str] | None = None, input: str | None = None,
        check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in args], env=env, input=input, capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise ClusterError(f"{' '.join(map(str, args))} exited {result.returncode}\n{result.stdout}{result.stderr}")
    return result


def set_args(values: dict[str, Any] | None) -> list[str]:
    """Values as --set-json flags (one per top-level key), so types survive (numbers, lists, null)."""
    return [arg for key, value in (values or {}).items() for arg in ("--set-json", f"{key}={json.dumps(value)}")]


class Helm:
    def __init__(self, cluster: Cluster | None, bin_dir: Path):
        self.cluster = cluster
        self.binary = bin_dir / "helm"

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = self.cluster.env() if self.cluster else None
        return run([self.binary, *args], env=env, check=check)

    def template(self, values: dict[str, Any] | None = None, *, release: str = "kroute", namespace: str = "ingress",
                 check: bool = True, chart: Path = CHART) -> subprocess.CompletedProcess[str]:
        return self("template", release, str(chart), "--namespace", namespace, *set_args(values), check=check)

    def objects(self, values: dict[str, Any] | None = None, **kwargs: Any) -> list[dict[str, Any]]:
        """The rendered manifests as dicts."""
        return [doc for doc in yaml.safe_load_all(self.template(values, **kwargs).stdout) if doc]


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = find(objects, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {[o['metadata']['name'] for o in found]}"
    return found[0]


def containers(workload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in workload["spec"]["template"]["spec"]["containers"]}


class Release:
    """One installed release of the chart, in a namespace of its own."""

    def __init__(self, helm: Helm, cluster: Cluster, values: dict[str, Any] | None):
        suffix = uuid.uuid4().hex[:6]
        self.helm = helm
        self.cluster = cluster
        self.name = f"kr-{suffix}"
        self.namespace = cluster.new_namespace("chart")
        self.ingress_class = f"kroute-{suffix}"
        self.values = {"ingressClass": {"name": self.ingress_class}, **(values or {})}
        self.installed = False

    @property
    def fullname(self) -> str:
        return f"{self.name}-kroute"

    @property
    def service_account(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.fullname}"

    def install(self) -> Release:
        self.helm("install", self.name, str(CHART), "--namespace", self.namespace, *set_args(self.values))
        self.installed = True
        return self

    def upgrade(self, values: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        return self.helm("upgrade", self.name, str(CHART), "--namespace", self.namespace, "--reuse-values",
                         *set_args(values))

    def uninstall(self) -> None:
        if self.installed:
            self.helm("uninstall", self.name, "--namespace", self.namespace, "--wait", "--timeout", "60s")
            self.installed = False

    def get(self, kind: str, name: str | None = None, namespace: str | None = None) -> dict[str, Any] | None:
        """The object from the API server, or None when it does not exist."""
        args = ["get", kind, name or self.fullname, "-o", "json", "--ignore-not-found"]
        if namespace != "":
            args += ["-n", namespace or self.namespace]
        out = self.cluster.kubectl(*args)
        return json.loads(out) if out.strip() else None

    def can_i(self, verb: str, resource: str, namespace: str | None = None, *, all_namespaces: bool = False) -> bool:
        # "ingresses/status" as the rules file writes it is "ingresses --subresource=status" to kubectl.
        resource, _, subresource = resource.partition("/")
        args = ["auth", "can-i", verb, resource, "--as", self.service_account]
        if subresource:
            args += ["--subresource", subresource]
        args += ["--all-namespaces"] if all_namespaces else ["-n", namespace or self.namespace]
        out = self.cluster.kubectl(*args, check=False).strip()
        assert out in ("yes", "no"), f"kubectl auth can-i {verb} {resource}: {out!r}"
        return out == "yes"


class Releases:
    def __init__(self, helm: Helm, cluster: Cluster):
        self.helm = helm
        self.cluster = cluster
        self.made: list[Release] = []

    def install(self, values: dict[str, Any] | None = None) -> Release:
        release = Release(self.helm, self.cluster, values)
        self.made.append(release)
        return release.install()

    def uninstall_all(self) -> None:
        errors = []
        for release in self.made:
            try:
                release.uninstall()
            except ClusterError as error:  # the others must still go
                errors.append(str(error))
        assert not errors, "\n".join(errors)


@pytest.fixture(scope="session")
def helm(cluster: Cluster, tools: Path) -> Helm:
    return Helm(cluster, tools)


@pytest.fixture
def releases(helm: Helm, cluster: Cluster) -> Iterator[Releases]:
    made = Releases(helm, cluster)
    try:
        yield made
    finally:
        made.uninstall_all()


SERVICE_MONITOR_CRD = {
    # Just enough of the Prometheus Operator's CRD for the API server to accept ServiceMonitor objects.
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {
        "group": "monitoring.coreos.com", "scope": "Namespaced",
        "names": {"kind": "ServiceMonitor", "listKind": "ServiceMonitorList", "plural": "servicemonitors",
                  "singular": "servicemonitor"},
        "versions": [{"name": "v1", "served": True, "storage": True,
                      "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}],
    },
}


@pytest.fixture(scope="session")
def service_monitor_crd(cluster: Cluster) -> None:
    cluster.apply(SERVICE_MONITOR_CRD)
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                    "crd/servicemonitors.monitoring.coreos.com")


# ---- the image, run with docker the way the chart's pod spec runs it ------------------------------------------

DOCKER_LABEL = "kroute.test"
# Every docker object of this session also carries kroute.test.session=<this>, so a suite can remove what a
# killed pytest left behind (tests/suites/55-image.sh).
DOCKER_SESSION = os.environ.get("KROUTE_DOCKER_SESSION") or uuid.uuid4().hex[:8]


def docker(*args: str, check: bool = True, timeout: float = 120) -> str:
    return run(["docker", *args], check=check, timeout=timeout).stdout.strip()


def image_name() -> str:
    """The image `make image` builds: kroute:<version from meson.build>, or $KROUTE_IMAGE."""
    if os.environ.get("KROUTE_IMAGE"):
        return os.environ["KROUTE_IMAGE"]
    version = re.search(r"version\s*:\s*'([^']+)'", (ROOT / "meson.build").read_text()).group(1)
    return f"kroute:{version}"


class Docker:
    """Containers, networks and volumes made by one test, all labelled, all removed by cleanup()."""

    def __init__(self, run_id: str):
        self.run_id = run_id
        self.label = f"{DOCKER_LABEL}={run_id}"
        self.session_label = f"{DOCKER_LABEL}.session={DOCKER_SESSION}"
        self.containers: list[str] = []
        self.networks: list[str] = []
        self.volumes: list[str] = []

    def name(self, what: str) -> str:
        return f"kroute-test-{self.run_id}-{what}"

    def network(self, what: str) -> dict[str, Any]:
        name = self.name(what)
        docker("network", "create", "--label", self.label, "--label", self.session_label, name)
        self.networks.append(name)
        return json.loads(docker("network", "inspect", name))[0]

    def tmpfs_volume(self, what: str, size: str = "64m", fs_group: int | None = None) -> str:
        """A memory-backed volume with an emptyDir's permissions, shareable between containers: 0777, or with
        the pod's fsGroup as its group and the setgid bit, as the kubelet leaves it."""
        name = self.name(what)
        options = f"size={size},mode=0777" if fs_group is None else f"size={size},mode=2777,gid={fs_group}"
        docker("volume", "create", "--label", self.label, "--label", self.session_label, "--driver", "local",
               "--opt", "type=tmpfs", "--opt", "device=tmpfs", "--opt", f"o={options}", name)
        self.volumes.append(name)
        return name

    def run(self, what: str, *args: str) -> str:
        name = self.name(what)
        self.containers.append(name)
        docker("run", "-d", "--name", name, "--label", self.label, "--label", self.session_label, *args)
        return name

    def ip(self, container: str, network: str) -> str:
        return docker("inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}', container)

    def logs(self) -> str:
        out = []
        for name in self.containers:
            logs = run(["docker", "logs", "--tail", "60", name], check=False)
            out.append(f"---- {name}\n{logs.stdout}{logs.stderr}")
        return "\n".join(out)

    def cleanup(self) -> None:
        for name in self.containers:
            run(["docker", "rm", "-f", "-v", name], check=False)
        for name in self.volumes:
            run(["docker", "volume", "rm", "-f", name], check=False)
        for name in self.networks:
            run(["docker", "network", "rm", name], check=False)


@pytest.fixture
def containers_of_test() -> Iterator[Docker]:
    made = Docker(uuid.uuid4().hex[:8])
    try:
        yield made
    finally:
        print(made.logs())  # shown by pytest when the test failed
        made.cleanup()


@pytest.fixture(scope="session")
def image() -> str:
    """The kroute image; built with `make image` when docker does not have it (minutes the first time)."""
    name = image_name()
    if run(["docker", "image", "inspect", name], check=False).returncode != 0:
        subprocess.run(["make", "-C", str(ROOT), "image", f"IMAGE={name}"], check=True, timeout=3600)
    return name


class Relay(threading.Thread):
    """A TCP relay from listen_host to the API server on 127.0.0.1: a pod on a docker network reaches the
    test control plane (which listens on loopback only) as it would reach the kubernetes Service."""

    def __init__(self, listen_host: str, target_port: int):
        super().__init__(daemon=True)
        self.target_port = target_port
        self.server = socket.create_server((listen_host, 0))
        self.port = self.server.getsockname()[1]
        self.stopping = False
        self.sockets: list[socket.socket] = []

    def run(self) -> None:
        while not self.stopping:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        self.stopping = True
        self.server.close()
        for s in self.sockets:
            try:
                s.close()
            except OSError:
                pass
