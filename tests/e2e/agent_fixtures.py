"""Helpers and fixtures for running kroute-agent against the test control plane (tests/e2e/kube.py).

`agents` starts agents and stops every one of them when the test ends, also when it fails; `rbac_identity`
binds the rules of charts/kroute/files/rbac-rules.yaml (and nothing else) to a fresh service account.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import ssl
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml

from kube import ROOT, Cluster, free_ports

BUILD = Path(os.environ.get("KROUTE_BUILD", ROOT / "build"))
AGENT = BUILD / "agent" / "kroute-agent"
TABLE_TOOL = BUILD / "routetable" / "tool" / "kroute-table"
RBAC_RULES = ROOT / "charts" / "kroute" / "files" / "rbac-rules.yaml"


def wait_for(what: str, predicate: Callable[[], Any], timeout: float = 15, interval: float = 0.1) -> Any:
    """Polls predicate until it returns something true; fails the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def dump_table(table_dir: Path) -> dict[str, Any] | None:
    """The published table as `kroute-table dump --json` shows it; None before the first publish."""
    result = subprocess.run([str(TABLE_TOOL), "--dir", str(table_dir), "dump", "--json"],
                            capture_output=True, text=True, timeout=10)
    return json.loads(result.stdout) if result.returncode == 0 else None


def lookup(table_dir: Path, host: str, path: str = "/") -> dict[str, Any] | None:
    """What the table serves for host + path; None when no route matches."""
    result = subprocess.run([str(TABLE_TOOL), "--dir", str(table_dir), "lookup", "--json", host, path],
                            capture_output=True, text=True, timeout=10)
    return json.loads(result.stdout) if result.returncode == 0 else None


def endpoints(table_dir: Path, host: str, path: str = "/") -> list[str] | None:
    """Addresses of the ready endpoints serving host + path (None: no route)."""
    found = lookup(table_dir, host, path)
    if found is None:
        return None
    return sorted(e["address"] for e in found["backend"]["endpoints"] if e["ready"])


def hosts(table_dir: Path) -> dict[str, Any]:
    table = dump_table(table_dir) or {"hosts": []}
    return {h["host"]: h for h in table.get("hosts", [])}


def tls_secret_of(table_dir: Path, host: str) -> str | None:
    """The TLS Secret ("ns/name") the table names for host, in either dump format ("tlsSecret", or
    "tls": {"secret": ...} since snapshots carry certificates)."""
    entry = hosts(table_dir).get(host, {})
    if "tlsSecret" in entry:
        return entry["tlsSecret"]
    return entry.get("tls", {}).get("secret")


class Agent:
    """One kroute-agent process with its own table directory, listener port and log file."""

    def __init__(self, cluster: Cluster, workdir: Path, args: list[str], env: dict[str, str] | None,
                 kubeconfig: Path | None, table_dir: Path | None = None):
        self.cluster = cluster
        self.name = f"agent-{uuid.uuid4().hex[:6]}"
        self.dir = workdir / self.name
        self.dir.mkdir(parents=True)
        self.table_dir = table_dir or self.dir / "table"
        self.log_path = self.dir / "agent.log"
        self.port = free_ports(1)[0]
        command = [str(AGENT), "--table-dir", str(self.table_dir), "--listen", f"127.0.0.1:{self.port}",
                   "--identity", self.name, "--log-level", "debug", *args]
        if kubeconfig is not None:
            command += ["--kubeconfig", str(kubeconfig)]
        base = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
        self._env = {**base, **(env or {})}
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=self._env)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def get(self, path: str) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            conn.close()

    def metrics(self) -> dict[str, float]:
        """Samples by their full name with labels, e.g. 'kroute_agent_relists_total{resource="ingress"}'."""
        status, text = self.get("/metrics")
        assert status == 200, text
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                samples[name] = float(value)
        return samples

    def metric(self, name: str, **labels: str) -> float:
        key = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
        return self.metrics()[key]

    def per_resource(self, name: str) -> dict[str, float]:
        prefix = name + '{resource="'
        return {k[len(prefix):-2]: v for k, v in self.metrics().items() if k.startswith(prefix)}

    def ready(self) -> bool:
        if not self.alive():
            raise AssertionError(f"{self.name} exited with {self.process.returncode}:\n{self.log()[-3000:]}")
        try:
            return self.get("/readyz")[0] == 200
        except OSError:
            return False

    def wait_ready(self, timeout: float = 20) -> Agent:
        wait_for(f"{self.name} ready", self.ready, timeout)
        return self

    def stop(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)
        self._log.close()

    def restart(self) -> None:
        """The same command again (table directory, port, log file) after the process was stopped or killed."""
        assert not self.alive(), f"{self.name} still runs"
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(self.process.args, stdout=self._log, stderr=subprocess.STDOUT, env=self._env)


class Agents:
    """Starts agents for one test; stop_all() ends every one of them."""

    def __init__(self, cluster: Cluster, workdir: Path):
        self.cluster = cluster
        self.workdir = workdir
        self.started: list[Agent] = []

    def start(self, *args: str, env: dict[str, str] | None = None, kubeconfig: Path | None = None,
              admin: bool = True, wait: bool = True) -> Agent:
        if kubeconfig is None and admin and not env:
            kubeconfig = self.cluster.kubeconfig
        agent = Agent(self.cluster, self.workdir, list(args), env, kubeconfig)
        self.started.append(agent)
        return agent.wait_ready() if wait else agent

    def stop_all(self) -> None:
        for agent in self.started:
            try:
                agent.stop()
            except Exception:  # noqa: BLE001 - the others must still be stopped
                agent.process.kill()


@pytest.fixture
def agents(cluster: Cluster, tmp_path: Path) -> Iterator[Agents]:
    started = Agents(cluster, tmp_path)
    try:
        yield started
    finally:
        started.stop_all()
        for agent in started.started:
            # Shown by pytest for a failing test: what the agent said.
            print(f"---- {agent.name} log (last 4000 bytes)\n{agent.log()[-4000:]}")


def rbac_rules() -> dict[str, list[dict[str, Any]]]:
    return yaml.safe_load(RBAC_RULES.read_text())


def rbac_identity(cluster: Cluster, namespace: str, workdir: Path) -> dict[str, Any]:
    """A service account in `namespace` bound to exactly the chart's rules (the election Role in that
    namespace); returns its token, an in-cluster service-account directory and a token kubeconfig."""
    rules = rbac_rules()
    name = f"kroute-{uuid.uuid4().hex[:6]}"
    cluster.apply(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "kroute-agent", "namespace": namespace}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name},
         "rules": rules["clusterRules"]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": "kroute-agent", "namespace": namespace}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "kroute-election", "namespace": namespace}, "rules": rules["electionRules"]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "kroute-election", "namespace": namespace},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "kroute-election"},
         "subjects": [{"kind": "ServiceAccount", "name": "kroute-agent", "namespace": namespace}]},
    )
    token = cluster.token(namespace, "kroute-agent")
    sa_dir = workdir / f"serviceaccount-{name}"
    sa_dir.mkdir(parents=True)
    (sa_dir / "token").write_text(token)
    (sa_dir / "ca.crt").write_bytes(cluster.ca_file.read_bytes())
    (sa_dir / "namespace").write_text(namespace)
    kubeconfig = workdir / f"kubeconfig-{name}"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "c", "cluster": {"server": cluster.server, "certificate-authority": str(cluster.ca_file)}}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa", "namespace": namespace}}],
    }))
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(cluster.apiserver_port),
           "KROUTE_SERVICEACCOUNT_DIR": str(sa_dir)}
    return {"token": token, "in_cluster_env": env, "kubeconfig": kubeconfig, "sa_dir": sa_dir}


def etcd_compact(cluster: Cluster) -> int:
    """Compacts etcd at its current revision through its gRPC gateway; returns that revision."""
    pki = cluster.state_dir / "pki"
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    context.load_cert_chain(str(pki / "apiserver-etcd-client.crt"), str(pki / "apiserver-etcd-client.key"))

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        conn = http.client.HTTPSConnection("127.0.0.1", cluster.etcd_port, context=context, timeout=10)
        try:
            conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            data = response.read()
            assert response.status == 200, f"etcd {path}: {response.status} {data!r}"
            return json.loads(data)
        finally:
            conn.close()

    revision = int(post("/v3/kv/range", {"key": "AA=="})["header"]["revision"])
    post("/v3/kv/compaction", {"revision": str(revision), "physical": True})
    return revision


def self_signed_tls(workdir: Path, host: str) -> dict[str, str]:
    """A certificate and key for host, base64-encoded as a kubernetes.io/tls Secret's data."""
    import base64
    key, cert = workdir / f"{host}.key", workdir / f"{host}.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "2", "-subj", f"/CN={host}", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=30)
    return {"tls.crt": base64.b64encode(cert.read_bytes()).decode(),
            "tls.key": base64.b64encode(key.read_bytes()).decode()}
