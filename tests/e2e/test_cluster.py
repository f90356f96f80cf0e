"""The test control plane is a real one: versions, readiness, objects and watches, RBAC with TokenRequest
tokens checked by real requests, clear errors, and nothing left running afterwards."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kube import CLUSTER_SCRIPTS, Cluster, free_ports

ISSUER = "https://kubernetes.default.svc.cluster.local"


def go_mod_version(module_dir: str, module: str) -> str:
    """The version tests/cluster/tools/<module_dir>/go.mod requires of module: the source of truth."""
    for line in (CLUSTER_SCRIPTS / "tools" / module_dir / "go.mod").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == module and fields[1].startswith("v"):
            return fields[1]
    raise AssertionError(f"{module} not required in {module_dir}/go.mod")


def processes_naming(path: Path) -> list[str]:
    """Command lines of running processes that mention path (the cluster's processes all do)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(path) in cmdline and state != "Z":
            found.append(f"{proc.name}: {cmdline}")
    return found


def jwt_claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


# ---- the binaries -------------------------------------------------------------------------------


def test_binaries_report_the_versions_go_mod_pins(cluster: Cluster) -> None:
    kube = go_mod_version("kube", "k8s.io/kubernetes")
    etcd = go_mod_version("kube", "go.etcd.io/etcd/server/v3")
    helm = go_mod_version("helm", "helm.sh/helm/v4")

    def output(*args: object) -> str:
        return subprocess.run([str(a) for a in args], capture_output=True, text=True, check=True).stdout

    assert output(cluster.binary("kube-apiserver"), "--version").strip() == f"Kubernetes {kube}"
    server_version = cluster.request("GET", "/version").json()
    assert (server_version["gitVersion"], server_version["major"], server_version["minor"]) == \
        (kube, "1", kube.split(".")[1])
    client = json.loads(cluster.kubectl("version", "--client", "-o", "json"))["clientVersion"]
    assert client["gitVersion"] == kube
    assert f"etcd Version: {etcd.lstrip('v')}" in output(cluster.binary("etcd"), "--version")
    assert output(cluster.binary("helm"), "version", "--template", "{{.Version}}") == helm


# ---- the running control plane ------------------------------------------------------------------


def test_starts_within_fifteen_seconds(cluster: Cluster) -> None:
    assert cluster.startup_seconds is not None and cluster.startup_seconds <= 15, cluster.startup_seconds


def test_ready_and_serving_kubectl(cluster: Cluster) -> None:
    ready = cluster.request("GET", "/readyz")
    assert (ready.status, ready.body) == (200, b"ok")
    namespaces = cluster.kubectl("get", "namespaces", "-o", "name").split()
    assert "namespace/default" in namespaces and "namespace/kube-system" in namespaces


def test_up_again_for_a_running_cluster_changes_nothing(cluster: Cluster) -> None:
    pid_before = (cluster.state_dir / "kube-apiserver.pid").read_text()
    result = subprocess.run([str(CLUSTER_SCRIPTS / "up.sh")], env=cluster.env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "already running" in result.stderr
    assert (cluster.state_dir / "kube-apiserver.pid").read_text() == pid_before


def service(namespace: str) -> dict:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {"selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]},
    }


def endpoint_slice(namespace: str, *addresses: str) -> dict:
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-1", "namespace": namespace, "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses],
    }


def ingress(namespace: str) -> dict:
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "ingressClassName": "kroute",
            "rules": [{"host": "web.example.test", "http": {"paths": [{
                "path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "web", "port": {"name": "http"}}}}]}}],
        },
    }


def test_ingress_service_and_endpointslice_round_trip(cluster: Cluster) -> None:
    ns = cluster.new_namespace("routes")
    cluster.apply(service(ns), endpoint_slice(ns, "10.0.0.11", "10.0.0.12"), ingress(ns))

    got = cluster.request("GET", f"/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses/web", admin=True)
    assert got.status == 200
    rule = got.json()["spec"]["rules"][0]
    assert rule["host"] == "web.example.test"
    assert rule["http"]["paths"][0]["backend"]["service"] == {"name": "web", "port": {"name": "http"}}

    svc = cluster.request("GET", f"/api/v1/namespaces/{ns}/services/web", admin=True).json()
    assert svc["spec"]["clusterIP"].startswith("10.96."), "the API server allocates cluster IPs itself"

    slices = cluster.request("GET", f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
                             admin=True, params={"labelSelector": "kubernetes.io/service-name=web"}).json()
    assert [e["addresses"] for e in slices["items"][0]["endpoints"]] == [["10.0.0.11"], ["10.0.0.12"]]


def test_watch_streams_changes_from_a_resource_version(cluster: Cluster) -> None:
    ns = cluster.new_namespace("watch")
    cluster.apply(ingress(ns))
    path = f"/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses"
    listed = cluster.request("GET", path, admin=True).json()
    since = listed["metadata"]["resourceVersion"]

    cluster.kubectl("annotate", "-n", ns, "ingress/web", "kroute.dev/test=changed")
    events = cluster.watch(path, since, admin=True, timeout_seconds=5)
    event = next(events)
    events.close()
    assert event["type"] == "MODIFIED"
    assert event["object"]["metadata"]["annotations"]["kroute.dev/test"] == "changed"
    assert int(event["object"]["metadata"]["resourceVersion"]) > int(since)


def test_watch_from_before_a_restart_is_410_gone_and_the_data_survives(cluster: Cluster) -> None:
    ns = cluster.new_namespace("restart")
    cluster.apply(ingress(ns))
    path = f"/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses"
    before = cluster.request("GET", path, admin=True).json()["metadata"]["resourceVersion"]
    cluster.kubectl("annotate", "-n", ns, "ingress/web", "kroute.dev/test=after-list")

    cluster.restart()

    events = cluster.watch(path, before, admin=True, timeout_seconds=5)
    event = next(events)
    events.close()
    assert event["type"] == "ERROR"
    assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")
    relisted = cluster.request("GET", path, admin=True).json()
    assert [i["metadata"]["annotations"]["kroute.dev/test"] for i in relisted["items"]] == ["after-list"]


def test_endpointslice_addresses_may_not_be_loopback(cluster: Cluster) -> None:
    # Why tests put backends' EndpointSlice addresses in 10.0.0.0/8, not on 127.0.0.1.
    ns = cluster.new_namespace("loopback")
    refused = cluster.request("POST", f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
                              admin=True, body=endpoint_slice(ns, "127.0.0.1"))
    assert refused.status == 422
    assert "loopback" in refused.json()["message"]


def test_gateway_api_crds_are_installed_established_on_request(tools: Path, tmp_path: Path) -> None:
    # The channel the conformance run uses; the suite refuses CRDs of another release or of mixed channels.
    version = go_mod_version("conformance", "sigs.k8s.io/gateway-api")
    crd_dir = Path(subprocess.run([str(CLUSTER_SCRIPTS / "tools.sh"), "gateway-crds", "experimental"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    assert crd_dir.name == "experimental" and f"gateway-api@{version}" in str(crd_dir)
    with Cluster(tmp_path / "cluster", tools, gateway_api="experimental") as gateway_cluster:
        crds = json.loads(gateway_cluster.kubectl("get", "crd", "-o", "json"))["items"]
        ours = {c["metadata"]["name"]: c for c in crds if c["spec"]["group"].startswith("gateway.networking.")}
        assert {"gatewayclasses.gateway.networking.k8s.io", "gateways.gateway.networking.k8s.io",
                "httproutes.gateway.networking.k8s.io", "grpcroutes.gateway.networking.k8s.io",
                "referencegrants.gateway.networking.k8s.io"} <= set(ours)
        for name, crd in ours.items():
            conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
            assert conditions.get("Established") == "True", name
            annotations = crd["metadata"]["annotations"]
            assert annotations["gateway.networking.k8s.io/bundle-version"] == version, name
            assert annotations["gateway.networking.k8s.io/channel"] == "experimental", name
        # Usable at once: a GatewayClass is stored and read back.
        gateway_cluster.apply({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
                               "metadata": {"name": "kroute"},
                               "spec": {"controllerName": "kroute.dev/gateway-controller"}})
        assert gateway_cluster.kubectl("get", "gatewayclass", "kroute", "-o",
                                       "jsonpath={.spec.controllerName}") == "kroute.dev/gateway-controller"


def test_an_unknown_gateway_api_channel_is_refused(tmp_path: Path) -> None:
    env = {**os.environ, "KROUTE_CLUSTER_DIR": str(tmp_path), "KROUTE_CLUSTER_GATEWAY_API": "beta"}
    result = subprocess.run([str(CLUSTER_SCRIPTS / "up.sh")], env=env, capture_output=True, text=True)
    assert result.returncode != 0 and "KROUTE_CLUSTER_GATEWAY_API=beta: give standard, experimental" in result.stderr
    assert processes_naming(tmp_path) == []


# ---- identities: TokenRequest and RBAC ----------------------------------------------------------


def test_service_account_token_sees_what_rbac_allows_and_nothing_more(cluster: Cluster) -> None:
    own, other = cluster.new_namespace("team-a"), cluster.new_namespace("team-b")
    account = "ingress-reader"
    cluster.apply(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account, "namespace": own}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": f"{own}-ingress-reader"},
         "rules": [{"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"],
                    "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": f"{own}-ingress-reader"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": f"{own}-ingress-reader"},
         "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": own}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "secret-reader", "namespace": own},
         "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "secret-reader", "namespace": own},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "secret-reader"},
         "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": own}]},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": own},
         "stringData": {"password": "a"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": other},
         "stringData": {"password": "b"}},
        ingress(other),
    )

    token = cluster.token(own, account)
    username = f"system:serviceaccount:{own}:{account}"
    claims = jwt_claims(token)
    assert (claims["iss"], claims["sub"]) == (ISSUER, username)
    assert ISSUER in claims["aud"]
    review = cluster.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", token=token,
                             body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    assert review.status == 201
    assert review.json()["status"]["userInfo"]["username"] == username

    def status(method: str, path: str, **kwargs: object) -> int:
        return cluster.request(method, path, token=token, **kwargs).status

    all_ingresses = cluster.request("GET", "/apis/networking.k8s.io/v1/ingresses", token=token)
    assert all_ingresses.status == 200
    assert any(i["metadata"]["namespace"] == other for i in all_ingresses.json()["items"])
    assert status("GET", f"/apis/networking.k8s.io/v1/namespaces/{other}/ingresses/web") == 200
    assert status("GET", f"/api/v1/namespaces/{own}/secrets/creds") == 200
    assert status("GET", f"/api/v1/namespaces/{other}/secrets/creds") == 403
    assert status("GET", f"/api/v1/namespaces/{other}/secrets") == 403
    assert status("GET", "/api/v1/secrets") == 403
    assert status("POST", f"/apis/networking.k8s.io/v1/namespaces/{own}/ingresses", body=ingress(own)) == 403
    assert status("DELETE", f"/apis/networking.k8s.io/v1/namespaces/{other}/ingresses/web") == 403

    anonymous = cluster.request("GET", "/apis/networking.k8s.io/v1/ingresses")
    assert anonymous.status == 403
    assert cluster.request("GET", "/apis/networking.k8s.io/v1/ingresses", token=token[:-4] + "AAAA").status == 401

    # A TokenRequest token is bound to its service account: deleting the account ends it.
    cluster.kubectl("delete", "serviceaccount", account, "-n", own)
    deadline = time.monotonic() + 10
    while status("GET", "/apis/networking.k8s.io/v1/ingresses") != 401:
        assert time.monotonic() < deadline, "the token still works 10 s after its service account was deleted"
        time.sleep(0.2)


# ---- errors and cleanup -------------------------------------------------------------------------


def test_port_in_use_is_named_and_nothing_starts(tools: Path, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        etcd_port, peer_port = free_ports(2)
        env = {**os.environ, "KROUTE_CLUSTER_DIR": str(tmp_path), "KROUTE_APISERVER_PORT": str(port),
               "KROUTE_ETCD_PORT": str(etcd_port), "KROUTE_ETCD_PEER_PORT": str(peer_port)}
        result = subprocess.run([str(CLUSTER_SCRIPTS / "up.sh")], env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert f"port {port} (kube-apiserver) is already in use" in result.stderr
    assert "KROUTE_APISERVER_PORT" in result.stderr
    assert processes_naming(tmp_path) == []


def test_a_go_that_does_not_run_or_cannot_be_fetched_is_a_clear_error(tmp_path: Path) -> None:
    # KROUTE_GO names the go command: one that does not run is refused by name, never searched past.
    env = {**os.environ, "KROUTE_TOOLS_CACHE": str(tmp_path / "cache"), "KROUTE_GO": str(tmp_path / "no-go")}
    result = subprocess.run([str(CLUSTER_SCRIPTS / "tools.sh"), "build"], env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert f"KROUTE_GO={tmp_path / 'no-go'} is not a working go command" in result.stderr
    # No Go on the machine and no module proxy to fetch one from: the message says what to set.
    env = {k: v for k, v in os.environ.items() if k != "KROUTE_GO"}
    env.update({"KROUTE_TOOLS_CACHE": str(tmp_path / "cache"), "KROUTE_GO_SEARCH": "none", "GOPROXY": "off"})
    result = subprocess.run([str(CLUSTER_SCRIPTS / "tools.sh"), "build"], env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert "names no proxy URL to fetch Go" in result.stderr and "KROUTE_GO=/path/to/go" in result.stderr
    assert not (tmp_path / "cache" / "go").exists() or not any((tmp_path / "cache" / "go").glob("go*/bin/go"))


def test_failed_build_shows_the_compiler_errors(tmp_path: Path) -> None:
    # A stand-in `go` that resolves packages but fails to compile, as a broken go.mod bump would.
    fake_go = tmp_path / "go"
    fake_go.write_text(
        "#!/bin/sh\n"
        'case "$1 $2" in\n'
        '  "env GOVERSION") echo go1.99.0 ;;\n'
        '  "list -deps") printf "fmt\\nexample.com/broken\\n" ;;\n'
        '  "list tool") echo example.com/broken/cmd/tool ;;\n'
        '  "mod download") echo "{}" ;;\n'
        '  build*) echo example.com/broken >&2; echo "broken.go:3:9: undefined: missingFunction" >&2; exit 1 ;;\n'
        "esac\n")
    fake_go.chmod(0o755)
    env = {**os.environ, "KROUTE_TOOLS_CACHE": str(tmp_path / "cache"), "KROUTE_GO": str(fake_go)}
    result = subprocess.run([str(CLUSTER_SCRIPTS / "tools.sh"), "build"], env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert "build FAILED" in result.stderr
    assert "broken.go:3:9: undefined: missingFunction" in result.stderr
    cached = subprocess.run([str(CLUSTER_SCRIPTS / "tools.sh"), "path"], env=env, capture_output=True, text=True)
    assert cached.returncode == 3, "a failed build must not look like a cached one"


def test_the_cluster_fixture_stops_the_cluster_when_a_test_fails(tools: Path, tmp_path: Path) -> None:
    record = tmp_path / "state-dir"
    failing = tmp_path / "test_fails.py"
    failing.write_text(
        "from pathlib import Path\n"
        "def test_fails(cluster):\n"
        f"    Path({str(record)!r}).write_text(str(cluster.state_dir))\n"
        "    assert cluster.request('GET', '/readyz').status == 200\n"
        "    assert False, 'failing on purpose'\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-p", "no:cacheprovider",
         "--basetemp", str(tmp_path / "inner"), str(failing)],
        env=env, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "failing on purpose" in result.stdout
    state_dir = Path(record.read_text())
    assert processes_naming(state_dir) == []
    assert not list(state_dir.glob("*.pid"))
