"""The chart's kroute pod, run for real: `helm install` on a cluster with a node (the node agent runs the pod on
docker as a kubelet would, from the Deployment the chart made, through the ReplicaSet and the scheduler).

Both containers come up Ready; the agent works with the projected token the node agent mounts, within the
chart's RBAC as the API server enforces it; nginx serves the table the agent writes into the memory emptyDir
they share; traffic through the pod's address reaches echo Deployments by Services with selectors and their
controller-made EndpointSlices; an Ingress change is live without nginx restarting; `helm upgrade` rolls the
pod and the new one serves; `helm uninstall` leaves no pod, container or object of the release.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import subprocess
import time
from typing import Any

from chart_fixtures import Release, image  # noqa: F401
from kube import Cluster
from load import (Workspace, dechunk, echo_deployment, echo_service, ingress, pods, rollout_status,  # noqa: F401
                  wait_gone, wait_until, workload_helm, workspace)

TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


def get(address: str, path: str = "/", host: str | None = None, port: int = 80) -> tuple[int, Any]:
    """(status, the echo server's JSON or the raw body); status 0 and the error for a connection failure."""
    conn = http.client.HTTPConnection(address, port, timeout=5)
    try:
        conn.request("GET", path, headers={"Host": host} if host else {})
        response = conn.getresponse()
        body = response.read()
    except OSError as error:
        return 0, str(error)
    finally:
        conn.close()
    try:
        return response.status, json.loads(body)
    except ValueError:
        return response.status, body.decode(errors="replace")


def answering_pod(address: str, host: str) -> str:
    """The pod that answered a request for host through address, "" when none did."""
    status, body = get(address, host=host)
    return body.get("pod", "") if status == 200 and isinstance(body, dict) else ""


def slow_response_across(address: str, host: str, stop: Any) -> tuple[bytes, float]:
    """Sends a request whose answer is about 12 KB (the echo server returns the request's headers), calls stop()
    once the answer has begun to arrive, reads the rest; returns the whole answer and the seconds from stop()
    to its end."""
    pad = "x" * 6000
    request = (f"GET /slow HTTP/1.1\r\nHost: {host}\r\nX-Pad-1: {pad}\r\nX-Pad-2: {pad}\r\n"
               f"Connection: close\r\n\r\n").encode()
    with socket.create_connection((address, 80), timeout=30) as connection:
        connection.sendall(request)
        data = connection.recv(65536)
        began = time.monotonic()
        stop()
        while chunk := connection.recv(65536):
            data += chunk
    return data, time.monotonic() - began


def docker_exec(container: str, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", "exec", container, *command], capture_output=True, text=True, timeout=30)
    assert not check or result.returncode == 0, f"docker exec {command}: {result.stdout}{result.stderr}"
    return result


def live_pods(cluster: Cluster, release: Release) -> list[dict[str, Any]]:
    return [p for p in pods(cluster, release.namespace, f"app.kubernetes.io/instance={release.name}")
            if not p["metadata"].get("deletionTimestamp")]


def the_pod(cluster: Cluster, release: Release) -> dict[str, Any]:
    """The release's one pod, checked: both containers running and ready, never restarted."""
    [pod] = live_pods(cluster, release)
    statuses = {s["name"]: s for s in pod["status"].get("containerStatuses", [])}
    assert set(statuses) == {"nginx", "agent"}, statuses
    for name, status in statuses.items():
        assert status["ready"] and "running" in status["state"], f"{name}: {status}"
        assert status["restartCount"] == 0, f"{name} restarted: {status}"
    assert {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Ready"] == "True"
    return pod


def container_ids(pod: dict[str, Any]) -> dict[str, str]:
    """The docker container of each of the pod's containers ("docker://<id>" in its status)."""
    return {s["name"]: s["containerID"].removeprefix("docker://") for s in pod["status"]["containerStatuses"]}


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def mount_type(container: str, path: str) -> str:
    for line in docker_exec(container, "cat", "/proc/mounts").stdout.splitlines():
        fields = line.split()
        if fields[1] == path:
            return fields[2]
    return ""


def labelled_objects(cluster: Cluster, selector: str) -> list[str]:
    """Every object of every listable kind, in any namespace, with the given labels."""
    kinds = cluster.kubectl("api-resources", "--verbs=list", "-o", "name").split()
    return cluster.kubectl("get", ",".join(kinds), "-A", "-l", selector, "-o", "name",
                           "--ignore-not-found").split()


def docker_containers_of(pod_uids: list[str], container_ids_: list[str]) -> list[str]:
    """Docker containers (running or not) of those pods: their sandboxes by label, their containers by id."""
    found = []
    for uid in pod_uids:
        found += subprocess.run(["docker", "ps", "-aq", "--filter", f"label=kroute.dev/pod-uid={uid}"],
                                capture_output=True, text=True, check=True).stdout.split()
    every = subprocess.run(["docker", "ps", "-aq", "--no-trunc"], capture_output=True, text=True,
                           check=True).stdout.split()
    return found + [c for c in container_ids_ if c in every]


def test_the_chart_pod_serves_follows_ingresses_upgrades_and_uninstalls_cleanly(
        workload_cluster: Cluster, workspace: Workspace, image: str) -> None:  # noqa: F811
    cluster = workload_cluster
    echo = cluster.echo_image  # type: ignore[attr-defined]
    apps = workspace.namespace("apps")
    for name in ("blue", "green"):
        cluster.apply(echo_deployment(apps, name, echo, 2), echo_service(apps, name))
    release = workspace.install()
    ns = release.namespace
    for name in ("blue", "green"):
        rollout_status(cluster, apps, name)
    blue = {p["metadata"]["name"] for p in pods(cluster, apps, "app=blue")}
    green = {p["metadata"]["name"] for p in pods(cluster, apps, "app=green")}

    # The pod: two containers Running and Ready, no restarts, an address on the pods' network.
    pod = the_pod(cluster, release)
    pod_name, pod_ip = pod["metadata"]["name"], pod["status"]["podIP"]
    assert pod_ip.startswith(cluster.pod_cidr.split(".0.0/")[0] + "."), (pod_ip, cluster.pod_cidr)
    ids = container_ids(pod)
    seen_uids, seen_ids = [pod["metadata"]["uid"]], list(ids.values())

    # Traffic through the pod's address to real pods, balanced over both of blue's.
    cluster.apply(ingress(apps, "shop", release.ingress_class, {"shop.test": "blue"}))
    wait_until("shop.test to answer from a blue pod", lambda: answering_pod(pod_ip, "shop.test") in blue, 30)
    status, body = get(pod_ip, "/cart?id=1", "shop.test")
    assert status == 200 and body["path"] == "/cart?id=1" and body["namespace"] == apps, body
    assert {answering_pod(pod_ip, "shop.test") for _ in range(20)} == blue
    assert get(pod_ip, "/", "unknown.test")[0] == 404

    # The memory emptyDir is one tmpfs in both containers, and nginx's view of it holds the agent's routes.
    assert mount_type(ids["nginx"], "/run/kroute") == mount_type(ids["agent"], "/run/kroute") == "tmpfs"
    lookup = json.loads(docker_exec(ids["nginx"], "kroute-table", "lookup", "--json", "shop.test", "/").stdout)
    blue_ips = {p["status"]["podIP"] for p in pods(cluster, apps, "app=blue")}
    assert {e["address"].rsplit(":", 1)[0] for e in lookup["backend"]["endpoints"]} == blue_ips, lookup

    # The agent's token is the projected one, bound to this pod; nginx has none.
    token = docker_exec(ids["agent"], "cat", TOKEN).stdout.strip()
    claims = jwt_claims(token)
    assert claims["sub"] == release.service_account, claims
    assert claims["kubernetes.io"]["pod"]["name"] == pod_name, claims
    assert docker_exec(ids["nginx"], "test", "-e", TOKEN, check=False).returncode != 0, "nginx has a token"
    # The API server enforces the chart's RBAC on it: what the agent needs works, the rest is forbidden.
    assert cluster.request("GET", "/apis/networking.k8s.io/v1/ingresses", token=token).status == 200
    assert cluster.request("GET", f"/api/v1/namespaces/{apps}/pods", token=token).status == 403
    assert cluster.request("GET", f"/api/v1/namespaces/{apps}/secrets/any", token=token).status == 403
    assert release.can_i("list", "ingresses", all_namespaces=True)
    for verb, resource, namespace in (("create", "pods", apps), ("get", "secrets", apps),
                                      ("update", "leases", apps), ("delete", "ingresses", apps)):
        assert not release.can_i(verb, resource, namespace), f"the agent may {verb} {resource} in {namespace}"
    # Its writes went through: the Lease names this pod, the Ingress's status the Service's address.
    wait_until("the agent to hold the Lease", lambda: (release.get("lease") or {}).get("spec", {})
               .get("holderIdentity") == pod_name, 30)
    service_ip = release.get("service")["spec"]["clusterIP"]
    wait_until("the Ingress status to name the Service's address",
               lambda: [i.get("ip") for i in (release.get("ingress", "shop", apps) or {}).get("status", {})
                        .get("loadBalancer", {}).get("ingress", [])] == [service_ip], 30)

    logs = subprocess.run(["docker", "logs", ids["agent"]], capture_output=True, text=True, timeout=30)
    assert "forbidden" not in (logs.stdout + logs.stderr).lower(), (logs.stdout + logs.stderr)[-3000:]

    # A live change: shop.test moves to green, nginx keeps running (same master, same container, no restart).
    master = docker_exec(ids["nginx"], "cat", "/run/nginx.pid").stdout.strip()
    cluster.apply(ingress(apps, "shop", release.ingress_class, {"shop.test": "green"}))
    wait_until("shop.test to move to green", lambda: answering_pod(pod_ip, "shop.test") in green, 30)
    assert {answering_pod(pod_ip, "shop.test") for _ in range(20)} == green
    assert docker_exec(ids["nginx"], "cat", "/run/nginx.pid").stdout.strip() == master, "the nginx master changed"
    assert container_ids(the_pod(cluster, release)) == ids

    # A stop drains: a response kroute sends slowly (limit-rate 1 KB/s, about 12 s) started before the pod is
    # deleted arrives whole, though the stop signal comes 5 s (the preStop sleep) into it.
    slow = ingress(apps, "slow", release.ingress_class, {"slow.test": "green"})
    slow["metadata"]["annotations"] = {"nginx.ingress.kubernetes.io/limit-rate": "1",
                                       "nginx.ingress.kubernetes.io/proxy-buffering": "on"}
    cluster.apply(slow)
    wait_until("slow.test to answer", lambda: answering_pod(pod_ip, "slow.test") in green, 30)
    response, seconds = slow_response_across(pod_ip, "slow.test", lambda: cluster.kubectl(
        "delete", "pod", pod_name, "-n", ns, "--wait=false"))
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    if b"transfer-encoding: chunked" in head.lower():
        body, complete = dechunk(body)
        assert complete, f"the chunked answer ended after {len(body)} bytes"
    assert json.loads(body)["pod"] in green and len(body) > 12000, (len(body), body[:200])
    assert seconds > 7, f"the slow response ended {seconds:.1f}s after the delete, before the stop signal"
    selector = f"app.kubernetes.io/instance={release.name}"
    # Gone well within the 60 s grace period: the stop signal made nginx quit (preStop 5 s, then the drain),
    # it did not take the SIGKILL at the end of the grace period.
    wait_gone("the deleted kroute pod", lambda: [p["metadata"]["name"] for p in pods(cluster, ns, selector)
                                                 if p["metadata"]["name"] == pod_name], 40)
    # It stopped cleanly: the preStop hook ended by itself (a hook that outlives nginx is killed, exit 137).
    events = json.loads(cluster.kubectl("get", "events", "-n", ns, "--field-selector",
                                        f"involvedObject.name={pod_name}", "-o", "json"))["items"]
    reasons = {e["reason"] for e in events}
    assert "Killing" in reasons and "FailedPreStopHook" not in reasons, \
        [(e["reason"], e.get("message", "")[:200]) for e in events if e["type"] == "Warning"]
    rollout_status(cluster, ns, release.fullname)
    replacement = the_pod(cluster, release)
    pod_name = replacement["metadata"]["name"]
    seen_uids.append(replacement["metadata"]["uid"])
    seen_ids += container_ids(replacement).values()

    # helm upgrade with a value that changes the pod: a new pod replaces it and serves.
    release.upgrade({"controller": {"logLevel": "debug"}})
    rollout_status(cluster, ns, release.fullname)
    wait_gone("the kroute pod from before the upgrade", lambda: [
        p["metadata"]["name"] for p in pods(cluster, ns, selector) if p["metadata"]["name"] == pod_name], 40)
    upgraded = the_pod(cluster, release)
    agent = next(c for c in upgraded["spec"]["containers"] if c["name"] == "agent")
    assert "--log-level=debug" in agent["args"], agent["args"]
    new_ip = upgraded["status"]["podIP"]
    wait_until("the new pod to serve shop.test", lambda: answering_pod(new_ip, "shop.test") in green, 30)
    seen_uids.append(upgraded["metadata"]["uid"])
    seen_ids += container_ids(upgraded).values()
    wait_until("the new pod to hold the Lease", lambda: (release.get("lease") or {}).get("spec", {})
               .get("holderIdentity") == upgraded["metadata"]["name"], 60)

    # helm uninstall: no pod, no docker container, no object with the release's labels, no RBAC.
    release.uninstall()
    wait_gone("the release's pods", lambda: [p["metadata"]["name"] for p in pods(cluster, ns, selector)], 90)
    wait_gone("the pods' docker containers", lambda: docker_containers_of(seen_uids, seen_ids), 60)
    wait_gone("objects with the release's labels", lambda: labelled_objects(cluster, selector), 60)
    assert not release.can_i("list", "ingresses", all_namespaces=True), "the ClusterRole binding outlived the release"
    assert release.get("clusterrole", namespace="") is None and release.get("clusterrolebinding", namespace="") is None
    assert answering_pod(new_ip, "shop.test") == "", "something still answers on the removed pod's address"
