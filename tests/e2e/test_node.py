"""The node agent (tests/cluster/node, kroute-node) runs real pods: a Deployment's replicas answer on their pod
IPs behind an EndpointSlice the controller made, and the kubelet's duties hold: environment, volumes, tokens,
security context, probes, restarts with back-off, graceful termination, errors reported in the status, and an
agent that leaves no container behind when it stops.

Workloads are the echo image (the Gateway API echo server) and the pause image, whose only file is the node
agent's binary: `/pause tool ...` (see tool.go) gives those pods a few commands to run.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

import pytest

from kube import Cluster

PAUSE = "kroute/pause:latest"
NODE = "kroute-node"


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30, interval: float = 0.3) -> Any:
    """Polls check() until it returns something truthy; fails with `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def docker(*args: str, check: bool = True) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {result.stderr}")
    return result.stdout


def node_pid(cluster: Cluster) -> int:
    return int((cluster.state_dir / "kroute-node.pid").read_text())


def node_cmdline(cluster: Cluster) -> list[str]:
    return (Path("/proc") / str(node_pid(cluster)) / "cmdline").read_bytes().decode().split("\0")[:-1]


def cluster_id(cluster: Cluster) -> str:
    args = node_cmdline(cluster)
    return args[args.index("--cluster-id") + 1]


def get(cluster: Cluster, kind: str, ns: str, name: str) -> dict[str, Any] | None:
    out = cluster.kubectl("get", kind, name, "-n", ns, "-o", "json", "--ignore-not-found")
    return json.loads(out) if out.strip() else None


def status_of(cluster: Cluster, ns: str, name: str, container: str | None = None) -> dict[str, Any]:
    """The pod's status, or (given a container name) that container's status ({} until there is one)."""
    pod = get(cluster, "pod", ns, name) or {}
    status = pod.get("status", {})
    if container is None:
        return status
    for s in status.get("containerStatuses", []) + status.get("initContainerStatuses", []):
        if s["name"] == container:
            return s
    return {}


def condition(status: dict[str, Any], kind: str) -> str | None:
    return next((c["status"] for c in status.get("conditions", []) if c["type"] == kind), None)


def events(cluster: Cluster, ns: str, name: str) -> list[tuple[str, str]]:
    out = json.loads(cluster.kubectl("get", "events", "-n", ns, "-o", "json",
                                     "--field-selector", f"involvedObject.name={name}"))
    return [(e["reason"], e.get("message", "")) for e in out["items"]]


def containers_of(uid: str, container: str | None = None, stopped: bool = False) -> list[str]:
    filters = ["--filter", f"label=kroute.dev/pod-uid={uid}"]
    if container:
        filters += ["--filter", f"label=kroute.dev/container={container}"]
    return docker("ps", "-q", *(["-a"] if stopped else []), *filters).split()


def pod(name: str, containers: list[dict[str, Any]], labels: dict[str, str] | None = None,
        **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {"app": name}},
            "spec": {"terminationGracePeriodSeconds": 2, "containers": containers, **spec}}


def apply(cluster: Cluster, ns: str, *objects: dict[str, Any]) -> None:
    for obj in objects:
        obj["metadata"]["namespace"] = ns
    cluster.apply(*objects)


def service(name: str, selector: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": selector, "ports": [{"name": "http", "port": 80, "targetPort": 3000}]}}


def endpoints(cluster: Cluster, ns: str, svc: str) -> list[dict[str, Any]]:
    out = json.loads(cluster.kubectl("get", "endpointslices", "-n", ns, "-l",
                                     f"kubernetes.io/service-name={svc}", "-o", "json"))
    return [e for s in out["items"] for e in (s.get("endpoints") or [])]


def http_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def kc(workload_cluster: Cluster) -> Cluster:
    """The workloads cluster once its node is schedulable: admission taints a new Node not-ready and the node
    lifecycle controller lifts the taint when the node reports Ready (NodeRestriction forbids the node to)."""
    wait_for("the not-ready taint to be lifted", lambda: "node.kubernetes.io/not-ready" not in
             workload_cluster.kubectl("get", "node", NODE, "-o", "jsonpath={.spec.taints}"))
    return workload_cluster


@pytest.fixture
def ns(kc: Cluster) -> Any:
    """A fresh namespace, deleted afterwards (the namespace controller removes its pods through the node)."""
    name = kc.new_namespace("node")
    yield name
    kc.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_node_registered_ready_with_lease(kc: Cluster) -> None:
    node = json.loads(kc.kubectl("get", "node", NODE, "-o", "json"))
    status = node["status"]
    assert condition(status, "Ready") == "True"
    assert {"type": "InternalIP", "address": kc.node_ip} in status["addresses"]
    assert status["nodeInfo"]["kubeletVersion"] == "v1.36.4-kroute-node"
    assert status["nodeInfo"]["containerRuntimeVersion"].startswith("docker://")
    assert status["capacity"]["pods"] == "110"
    assert int(status["allocatable"]["cpu"]) == os.cpu_count()
    lease = json.loads(kc.kubectl("get", "lease", NODE, "-n", "kube-node-lease", "-o", "json"))
    assert lease["spec"]["holderIdentity"] == NODE
    renewed = lease["spec"]["renewTime"]
    wait_for("the lease to be renewed (every 10 s)",
             lambda: json.loads(kc.kubectl("get", "lease", NODE, "-n", "kube-node-lease", "-o", "json"))
             ["spec"]["renewTime"] != renewed, timeout=15)


def test_deployment_of_three_is_ready_and_answers_on_its_endpoints(kc: Cluster, ns: str) -> None:
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "echo"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "echo"}},
                 "template": {"metadata": {"labels": {"app": "echo"}}, "spec": {"containers": [{
                     "name": "echo", "image": kc.echo_image, "ports": [{"name": "http", "containerPort": 3000}],
                     "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                             {"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
                     "readinessProbe": {"httpGet": {"port": "http", "path": "/ready"}, "periodSeconds": 1}}]}}}}
    apply(kc, ns, deployment, service("echo", {"app": "echo"}))
    kc.kubectl("-n", ns, "rollout", "status", "deployment/echo", "--timeout=60s")
    pods = json.loads(kc.kubectl("get", "pods", "-n", ns, "-l", "app=echo", "-o", "json"))["items"]
    assert len(pods) == 3
    ips = {p["status"]["podIP"]: p["metadata"]["name"] for p in pods}
    for p in pods:
        status = p["status"]
        assert status["phase"] == "Running" and condition(status, "Ready") == "True"
        assert condition(status, "ContainersReady") == "True" and condition(status, "Initialized") == "True"
        assert status["hostIP"] == kc.node_ip
        c = status["containerStatuses"][0]
        assert c["ready"] and c["started"] and c["containerID"].startswith("docker://")
        assert c["imageID"].startswith("docker://sha256:") and "running" in c["state"]

    def ready_endpoints() -> set[str]:
        return {e["addresses"][0] for e in endpoints(kc, ns, "echo") if e["conditions"].get("ready")}
    wait_for("3 ready endpoints", lambda: ready_endpoints() == set(ips))
    for ip, name in ips.items():
        answer = http_json(f"http://{ip}:3000/hello")
        assert (answer["pod"], answer["namespace"], answer["path"]) == (name, ns, "/hello")
    reasons = {r for r, _ in events(kc, ns, pods[0]["metadata"]["name"])}
    assert {"Scheduled", "Pulled", "Created", "Started"} <= reasons


def test_environment_volumes_token_and_security_context(kc: Cluster, ns: str) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}, "stringData": {"password": "hunter2"}}
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"color": "blue"}}
    toolbox = {
        "name": "tools", "image": PAUSE, "command": ["/pause", "tool", "term-log", "/shared/log", "0"],
        "env": [
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "TIER", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['tier']"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
            {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "color"}}},
            {"name": "ABSENT", "valueFrom": {"configMapKeyRef": {"name": "nothing", "key": "x", "optional": True}}},
            {"name": "MEMORY_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
            {"name": "COMBINED", "value": "$(POD)-$(COLOR)-$$(POD)-$(UNDEFINED)"}],
        "envFrom": [{"prefix": "CM_", "configMapRef": {"name": "settings"}}],
        "volumeMounts": [{"name": "shared", "mountPath": "/shared"}, {"name": "info", "mountPath": "/info"},
                         {"name": "audience-token", "mountPath": "/tok", "readOnly": True}],
        "securityContext": {"runAsUser": 1234, "runAsGroup": 5678, "readOnlyRootFilesystem": True,
                            "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}}}
    reader = {"name": "reader", "image": PAUSE, "volumeMounts": [{"name": "shared", "mountPath": "/data"}]}
    volumes = [
        {"name": "shared", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
        {"name": "info", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
        {"name": "audience-token", "projected": {"sources": [{"serviceAccountToken": {
            "path": "token", "audience": "kroute-test", "expirationSeconds": 600}}]}}]
    apply(kc, ns, secret, config, pod("tb", [toolbox, reader], labels={"app": "tb", "tier": "gold"},
                                 volumes=volumes, securityContext={"fsGroup": 2000}))
    kc.kubectl("wait", "-n", ns, "pod/tb", "--for=condition=Ready", "--timeout=60s")
    status = status_of(kc, ns, "tb")
    uid = get(kc, "pod", ns, "tb")["metadata"]["uid"]
    [tools] = containers_of(uid, "tools")
    [reader_id] = containers_of(uid, "reader")

    env = dict(line.split("=", 1) for line in docker("exec", tools, "/pause", "tool", "env").splitlines())
    assert env["POD"] == "tb" and env["TIER"] == "gold" and env["IP"] == status["podIP"]
    assert env["PASSWORD"] == "hunter2" and env["COLOR"] == "blue" and env["CM_color"] == "blue"
    assert "ABSENT" not in env and env["MEMORY_MI"] == "64"
    assert env["COMBINED"] == "tb-blue-$(POD)-$(UNDEFINED)"
    assert env["KUBERNETES_SERVICE_HOST"] == kc.node_ip
    assert env["KUBERNETES_SERVICE_PORT"] == str(kc.apiserver_port)
    assert env["KUBERNETES_PORT"] == f"tcp://{kc.node_ip}:{kc.apiserver_port}"

    assert docker("exec", tools, "/pause", "tool", "id").split() == ["uid=1234", "gid=5678", "groups=[2000", "5678]"]
    denied = subprocess.run(["docker", "exec", tools, "/pause", "tool", "write", "/root-file", "x"],
                            capture_output=True, text=True)
    assert denied.returncode != 0 and "read-only file system" in denied.stderr
    docker("exec", tools, "/pause", "tool", "write", "/shared/note", "from tools")
    assert docker("exec", reader_id, "/pause", "tool", "cat", "/data/note") == "from tools"
    volume_dir = kc.state_dir / "node" / "pods" / uid / "volumes" / "shared"
    mounts = Path("/proc/mounts").read_text()
    assert f"tmpfs {volume_dir} tmpfs" in mounts and "size=16384k" in mounts
    assert docker("exec", tools, "/pause", "tool", "cat", "/info/labels") == 'app="tb"\ntier="gold"'

    # The default token (kube-api-access volume) reaches the API server from the pod through the node's relay,
    # by name, with the cluster CA: it authenticates as the service account, bound to this pod.
    review = json.loads(docker("exec", reader_id, "/pause", "tool", "whoami"))["status"]["userInfo"]
    assert review["username"] == f"system:serviceaccount:{ns}:default"
    assert review["extra"]["authentication.kubernetes.io/pod-uid"] == [uid]
    token = docker("exec", tools, "/pause", "tool", "cat", "/tok/token")
    answer = kc.request("POST", "/apis/authentication.k8s.io/v1/tokenreviews", admin=True, body={
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "spec": {"token": token, "audiences": ["kroute-test"]}}).json()["status"]
    assert answer["authenticated"] and answer["audiences"] == ["kroute-test"]
    assert answer["user"]["extra"]["authentication.kubernetes.io/pod-name"] == ["tb"]

    kc.kubectl("delete", "-n", ns, "pod/tb", "--timeout=60s")
    assert str(volume_dir) not in Path("/proc/mounts").read_text()
    assert not volume_dir.parent.parent.exists() and containers_of(uid, stopped=True) == []


def test_run_to_completion_with_init_container(kc: Cluster, ns: str) -> None:
    init = {"name": "prepare", "image": PAUSE, "command": ["/pause", "tool", "write", "/work/input", "ok"],
            "volumeMounts": [{"name": "work", "mountPath": "/work"}]}
    main = {"name": "main", "image": PAUSE, "command": ["/pause", "tool", "cat", "/work/input"],
            "volumeMounts": [{"name": "work", "mountPath": "/work"}]}
    failing = {"name": "main", "image": PAUSE, "command": ["/pause", "tool", "exit", "3"]}
    apply(kc, ns, pod("job", [main], initContainers=[init], restartPolicy="Never", volumes=[{"name": "work", "emptyDir": {}}]),
             pod("fails", [failing], restartPolicy="Never"))
    wait_for("pod job Succeeded", lambda: status_of(kc, ns, "job").get("phase") == "Succeeded")
    status = status_of(kc, ns, "job")
    assert status["initContainerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    assert status["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    assert condition(status, "Initialized") == "True" and condition(status, "Ready") == "False"
    wait_for("pod fails Failed", lambda: status_of(kc, ns, "fails").get("phase") == "Failed")
    terminated = status_of(kc, ns, "fails", "main")["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"], status_of(kc, ns, "fails", "main")["restartCount"]) == (3, "Error", 0)


def test_sidecar_runs_alongside_the_main_container(kc: Cluster, ns: str) -> None:
    sidecar = {"name": "sidecar", "image": PAUSE, "restartPolicy": "Always"}
    apply(kc, ns, pod("with-sidecar", [{"name": "main", "image": PAUSE}], initContainers=[sidecar]))
    kc.kubectl("wait", "-n", ns, "pod/with-sidecar", "--for=condition=Ready", "--timeout=60s")
    side, main = status_of(kc, ns, "with-sidecar", "sidecar"), status_of(kc, ns, "with-sidecar", "main")
    assert "running" in side["state"] and side["ready"] and "running" in main["state"]
    assert side["state"]["running"]["startedAt"] <= main["state"]["running"]["startedAt"]


def test_failing_readiness_makes_a_not_ready_endpoint(kc: Cluster, ns: str) -> None:
    echo = {"name": "echo", "image": kc.echo_image,
            "readinessProbe": {"tcpSocket": {"port": 9999}, "periodSeconds": 1, "failureThreshold": 1}}
    apply(kc, ns, pod("unready", [echo]), service("unready", {"app": "unready"}))
    wait_for("the container to run", lambda: "running" in status_of(kc, ns, "unready", "echo").get("state", {}))
    found = wait_for("an endpoint", lambda: endpoints(kc, ns, "unready"))
    assert found[0]["conditions"]["ready"] is False
    status = status_of(kc, ns, "unready")
    assert condition(status, "Ready") == "False" and status["phase"] == "Running"
    assert status["containerStatuses"][0]["started"] is True and status["containerStatuses"][0]["ready"] is False
    wait_for("an Unhealthy event", lambda: any(r == "Unhealthy" and "Readiness probe failed" in m
                                                for r, m in events(kc, ns, "unready")))


def test_grpc_readiness_probe(kc: Cluster, ns: str) -> None:
    def health(status: str) -> dict[str, Any]:
        return {"name": "main", "image": PAUSE, "command": ["/pause", "tool", "grpc-health", "5000", status],
                "readinessProbe": {"grpc": {"port": 5000}, "periodSeconds": 1, "failureThreshold": 1}}
    apply(kc, ns, pod("serving", [health("SERVING")]), pod("not-serving", [health("NOT_SERVING")]))
    kc.kubectl("wait", "-n", ns, "pod/serving", "--for=condition=Ready", "--timeout=60s")
    wait_for("NOT_SERVING reported", lambda: any(r == "Unhealthy" and "NOT_SERVING" in m
                                                 for r, m in events(kc, ns, "not-serving")))
    assert condition(status_of(kc, ns, "not-serving"), "Ready") == "False"


def test_failing_liveness_restarts_the_container(kc: Cluster, ns: str) -> None:
    echo = {"name": "echo", "image": kc.echo_image,
            "livenessProbe": {"tcpSocket": {"port": 9999}, "periodSeconds": 1, "failureThreshold": 2}}
    apply(kc, ns, pod("unlive", [echo], terminationGracePeriodSeconds=1))
    wait_for("a restart", lambda: status_of(kc, ns, "unlive", "echo").get("restartCount", 0) >= 1)
    assert "terminated" in status_of(kc, ns, "unlive", "echo")["lastState"]
    messages = events(kc, ns, "unlive")
    assert any(r == "Killing" and "failed liveness probe" in m for r, m in messages)
    assert any(r == "Unhealthy" and m.startswith("Liveness probe failed") for r, m in messages)


def test_crashing_container_goes_into_crash_loop_back_off(kc: Cluster, ns: str) -> None:
    apply(kc, ns, pod("crash", [{"name": "main", "image": PAUSE, "command": ["/pause", "tool", "exit", "1"]}]))
    status = wait_for("CrashLoopBackOff", lambda: (s := status_of(kc, ns, "crash", "main")).get("state", {})
                      .get("waiting", {}).get("reason") == "CrashLoopBackOff" and s)
    assert status["restartCount"] >= 1
    assert status["lastState"]["terminated"]["exitCode"] == 1
    assert status["lastState"]["terminated"]["reason"] == "Error"
    assert status_of(kc, ns, "crash")["phase"] == "Running"
    assert any(r == "BackOff" for r, _ in events(kc, ns, "crash"))


def test_termination_runs_pre_stop_then_sigterm_within_grace(kc: Cluster, ns: str, tmp_path: Path) -> None:
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    log_dir.chmod(0o777)
    # preStop appends "prestop" and takes 2 s; on SIGTERM the container appends "term" and lingers 30 s, longer
    # than the 6 s grace: it is killed at the end of the grace period.
    main = {"name": "main", "image": PAUSE, "command": ["/pause", "tool", "term-log", "/log/events", "30"],
            "lifecycle": {"preStop": {"exec": {"command": ["/pause", "tool", "append", "/log/events", "prestop", "2"]}}},
            "readinessProbe": {"exec": {"command": ["/pause", "tool", "id"]}, "periodSeconds": 1},
            "volumeMounts": [{"name": "log", "mountPath": "/log"}]}
    apply(kc, ns, pod("term", [main], terminationGracePeriodSeconds=6,
                 volumes=[{"name": "log", "hostPath": {"path": str(log_dir), "type": "Directory"}}]),
             service("term", {"app": "term"}))
    kc.kubectl("wait", "-n", ns, "pod/term", "--for=condition=Ready", "--timeout=60s")
    uid = get(kc, "pod", ns, "term")["metadata"]["uid"]
    wait_for("a ready endpoint", lambda: any(e["conditions"].get("ready") for e in endpoints(kc, ns, "term")))
    began = time.time()
    kc.kubectl("delete", "-n", ns, "pod/term", "--wait=false")
    # While the pod terminates its endpoint is terminating, and serving as long as the container is ready.
    terminating = wait_for("a terminating endpoint", lambda: [e for e in endpoints(kc, ns, "term")
                                                              if e["conditions"].get("terminating")], timeout=10)
    assert terminating[0]["conditions"]["serving"] is True
    wait_for("the pod object to go", lambda: get(kc, "pod", ns, "term") is None, timeout=30, interval=0.2)
    gone = time.time() - began
    lines = [line.split() for line in (log_dir / "events").read_text().splitlines()]
    assert [word for word, _ in lines] == ["prestop", "term"], lines
    prestop, term = float(lines[0][1]), float(lines[1][1])
    assert term - prestop >= 1.9, "SIGTERM came before the preStop hook finished"
    assert term - began < 6, "SIGTERM came after the grace period"
    assert 5.5 <= gone < 15, f"the pod went {gone:.1f}s after deletion; the grace period was 6s"
    assert containers_of(uid, stopped=True) == []
    assert any(r == "Killing" for r, _ in events(kc, ns, "term"))


def test_force_deleted_pod_loses_its_containers(kc: Cluster, ns: str) -> None:
    apply(kc, ns, pod("forced", [{"name": "main", "image": PAUSE}], terminationGracePeriodSeconds=30))
    kc.kubectl("wait", "-n", ns, "pod/forced", "--for=condition=Ready", "--timeout=60s")
    uid = get(kc, "pod", ns, "forced")["metadata"]["uid"]
    assert len(containers_of(uid)) == 2  # the sandbox and the container
    kc.kubectl("delete", "-n", ns, "pod/forced", "--force", "--grace-period=0")
    wait_for("the containers to go", lambda: containers_of(uid, stopped=True) == [], timeout=15)


def test_unknown_image_is_reported_not_fatal(kc: Cluster, ns: str) -> None:
    missing = "kroute/does-not-exist:1"
    apply(kc, ns, pod("pull", [{"name": "main", "image": missing}]),
             pod("never", [{"name": "main", "image": missing, "imagePullPolicy": "Never"}]))
    wait_for("ErrImagePull", lambda: status_of(kc, ns, "pull", "main").get("state", {}).get("waiting", {})
             .get("reason") in ("ErrImagePull", "ImagePullBackOff"))
    wait_for("ImagePullBackOff", lambda: status_of(kc, ns, "pull", "main")["state"]["waiting"]["reason"]
             == "ImagePullBackOff", timeout=20)
    assert status_of(kc, ns, "pull")["phase"] == "Pending"
    wait_for("ErrImageNeverPull", lambda: status_of(kc, ns, "never", "main").get("state", {}).get("waiting", {})
             .get("reason") == "ErrImageNeverPull")
    assert any(r == "Failed" and missing in m for r, m in events(kc, ns, "pull"))


def test_configuration_errors_are_reported_and_retried(kc: Cluster, ns: str) -> None:
    needs_secret = {"name": "main", "image": PAUSE,
                    "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "later", "key": "token"}}}]}
    as_root = {"name": "main", "image": PAUSE, "securityContext": {"runAsNonRoot": True}}
    apply(kc, ns, pod("secretless", [needs_secret]), pod("rootless", [as_root]),
             pod("hostnet", [{"name": "main", "image": PAUSE}], hostNetwork=True),
             pod("claim", [{"name": "main", "image": PAUSE}],
                 volumes=[{"name": "data", "nfs": {"server": "192.0.2.1", "path": "/data"}}]))

    def waiting(name: str) -> dict[str, Any]:
        return status_of(kc, ns, name, "main").get("state", {}).get("waiting", {})
    wait_for("CreateContainerConfigError", lambda: waiting("secretless").get("reason") == "CreateContainerConfigError")
    assert 'secret "later" not found' in waiting("secretless")["message"]
    wait_for("runAsNonRoot refused", lambda: waiting("rootless").get("reason") == "CreateContainerConfigError")
    assert "runAsNonRoot and image will run as root" in waiting("rootless")["message"]
    wait_for("hostNetwork refused", lambda: status_of(kc, ns, "hostnet").get("phase") == "Failed")
    assert status_of(kc, ns, "hostnet")["reason"] == "UnsupportedPodSpec"
    wait_for("FailedMount", lambda: any(r == "FailedMount" for r, _ in events(kc, ns, "claim")))
    assert waiting("claim").get("reason") == "ContainerCreating"
    # The missing Secret appears: the next retry starts the container.
    apply(kc, ns, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "later"}, "stringData": {"token": "t"}})
    wait_for("the container to start once the Secret exists",
             lambda: "running" in status_of(kc, ns, "secretless", "main").get("state", {}), timeout=20)


def test_lost_sandbox_is_recreated_and_the_containers_restarted(kc: Cluster, ns: str) -> None:
    apply(kc, ns, pod("resilient", [{"name": "main", "image": PAUSE}]))
    kc.kubectl("wait", "-n", ns, "pod/resilient", "--for=condition=Ready", "--timeout=60s")
    uid = get(kc, "pod", ns, "resilient")["metadata"]["uid"]
    sandbox = docker("ps", "-q", "--filter", f"label=kroute.dev/pod-uid={uid}", "--filter", "ancestor=" + PAUSE,
                     "--filter", "name=k8s_POD_").split()
    docker("rm", "-f", *sandbox)
    status = wait_for("a restart in a new sandbox", lambda: (s := status_of(kc, ns, "resilient", "main"))
                      .get("restartCount", 0) >= 1 and s.get("ready") and s)
    assert status["lastState"]["terminated"]["exitCode"] == 137
    assert len(containers_of(uid)) == 2
    assert any(r == "SandboxChanged" for r, _ in events(kc, ns, "resilient"))


def log_pod(kc: Cluster, ns: str) -> str:
    """A pod that prints its environment and completes; its stopped container stays for its logs."""
    apply(kc, ns, pod("talker", [{"name": "main", "image": PAUSE, "command": ["/pause", "tool", "env"]}],
                      restartPolicy="Never"))
    wait_for("pod talker Succeeded", lambda: status_of(kc, ns, "talker").get("phase") == "Succeeded")
    return "talker"


def test_log_endpoint_serves_the_output_of_a_completed_container(kc: Cluster, ns: str) -> None:
    name = log_pod(kc, ns)
    node = json.loads(kc.kubectl("get", "node", NODE, "-o", "json"))
    port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
    tls = ssl.create_default_context()
    tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE  # self-signed, as the API server accepts it
    url = f"https://{kc.node_ip}:{port}/containerLogs/{ns}/{name}/main"
    with urllib.request.urlopen(url, context=tls, timeout=10) as response:
        lines = response.read().decode().splitlines()
    assert f"KUBERNETES_SERVICE_HOST={kc.node_ip}" in lines
    with urllib.request.urlopen(url + "?tailLines=1", context=tls, timeout=10) as response:
        assert response.read().decode().splitlines() == lines[-1:]


def test_kubectl_logs(kc: Cluster, ns: str) -> None:
    # The API server dials the node's InternalIP (up.sh: --kubelet-preferred-address-types), where the node agent
    # serves the kubelet's log endpoint.
    name = log_pod(kc, ns)
    assert f"KUBERNETES_SERVICE_HOST={kc.node_ip}" in kc.kubectl("logs", "-n", ns, name).splitlines()


def test_stopped_agent_leaves_no_container_and_a_restarted_one_resumes(kc: Cluster, ns: str) -> None:
    """Runs last: it stops the session's node agent and starts it again, as a node reboot."""
    apply(kc, ns, pod("survivor", [{"name": "main", "image": PAUSE}]))
    kc.kubectl("wait", "-n", ns, "pod/survivor", "--for=condition=Ready", "--timeout=60s")
    before = status_of(kc, ns, "survivor", "main")["containerID"]
    args, ident, pid = node_cmdline(kc), cluster_id(kc), node_pid(kc)
    assert docker("ps", "-q", "--filter", f"label=kroute.dev/cluster={ident}")

    stopped = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    wait_for("the node agent to exit", lambda: not Path(f"/proc/{pid}/cmdline").exists()
             or not Path(f"/proc/{pid}/cmdline").read_bytes(), timeout=15, interval=0.1)
    assert time.monotonic() - stopped < 10
    assert docker("ps", "-aq", "--filter", f"label=kroute.dev/cluster={ident}") == ""
    assert str(kc.state_dir / "node") not in Path("/proc/mounts").read_text()

    # Started again (as up.sh does, detached), it takes the node back and runs the pods bound to it anew.
    log = kc.state_dir / "kroute-node.log"
    started = subprocess.run(["bash", "-c", 'setsid "$@" >>"$0" 2>&1 </dev/null & echo $!', str(log), *args],
                             capture_output=True, text=True, check=True)
    (kc.state_dir / "kroute-node.pid").write_text(started.stdout.strip() + "\n")
    wait_for("a new container for the pod", lambda: (s := status_of(kc, ns, "survivor", "main")).get("ready")
             and s["containerID"] != before, timeout=30)
    assert condition(json.loads(kc.kubectl("get", "node", NODE, "-o", "json"))["status"], "Ready") == "True"
