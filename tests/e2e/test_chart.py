"""The Helm chart (charts/kroute): lint, render, the real API server's verdict on what it renders, install,
upgrade and uninstall, and what its service account may do (kubectl auth can-i). With the Gateway API: the agent's
flag, the GatewayClass, the extra RBAC rules and the CRDs, which come from the Go module cache, not the tree.

No kubelet runs, so pods never start: these tests check the objects. tests/e2e/test_image.py runs the pod.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent_fixtures import rbac_rules, wait_for
from chart_fixtures import (CHART, Helm, Releases, containers, find, one,  # noqa: F401
                            helm, releases, service_monitor_crd, set_args)
from kube import ROOT, Cluster

# Value sets that between them turn every template and branch on.
VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "daemonset-nodeport": {"kind": "DaemonSet", "service": {"type": "NodePort", "nodePorts": {"http": 30080},
                                                            "externalTrafficPolicy": "Local"},
                           "controller": {"defaultSSLCertificate": "ingress/wildcard"}},
    "replicas-hpa-default-class": {"autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 5,
                                                   "targetMemoryUtilizationPercentage": 90},
                                   "ingressClass": {"name": "kroute", "default": True}},
    "one-namespace-no-election": {"controller": {"watchNamespace": "apps", "election": {"enabled": False},
                                                 "publishAddresses": ["203.0.113.7"], "logLevel": "debug"},
                                  "service": {"type": "ClusterIP"}},
    "metrics": {"replicaCount": 3, "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}}},
}


def test_lint_is_clean_for_every_variant(helm: Helm) -> None:
    for name, values in VARIANTS.items():
        result = helm("lint", "--strict", str(CHART), "--namespace", "ingress",
                      *[a for k, v in values.items() for a in ("--set-json", f"{k}={json.dumps(v)}")])
        assert "0 chart(s) failed" in result.stdout, f"{name}: {result.stdout}"
        assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, f"{name}: {result.stdout}"


def test_schema_refuses_bad_values(helm: Helm) -> None:
    for bad in ({"kind": "StatefulSet"}, {"service": {"type": "External"}}, {"replicaCount": "two"},
                {"controller": {"logLevel": "loud"}}, {"image": {"pullPolicy": "Sometimes"}},
                {"service": {"externalTrafficPolicy": "Nearest"}}, {"no": "such key"},
                {"controller": {"limitReqStatusCode": 200}}, {"gatewayAPI": {"installCRDs": "beta"}},
                {"gatewayAPI": {"controllerName": "no-domain"}}, {"gatewayAPI": {"gatewayClass": {"name": "Kroute"}}}):
        result = helm.template(bad, check=False)
        assert result.returncode != 0, f"{bad} was accepted"
    result = helm.template({"kind": "DaemonSet", "autoscaling": {"enabled": True}}, check=False)
    assert result.returncode != 0 and "autoscaling.enabled needs kind: Deployment" in result.stderr


def test_values_are_documented_key_by_key() -> None:
    """Every key of values.yaml has a comment above it, or sits inside the default of a key that has one."""
    undocumented = []
    stack: list[tuple[int, bool]] = []  # (indent, documented) of the enclosing keys
    previous = ""
    for line in (CHART / "values.yaml").read_text().splitlines():
        match = re.match(r"^(\s*)([A-Za-z][\w.-]*):(.*)$", line)
        if match:
            indent, key, rest = len(match.group(1)), match.group(2), match.group(3).strip()
            while stack and stack[-1][0] >= indent:
                stack.pop()
            documented = previous.lstrip().startswith("#") or any(d for _, d in stack)
            is_parent = rest == ""
            if not documented and not is_parent:
                undocumented.append(key)
            stack.append((indent, documented))
        if line.strip():
            previous = line
    assert not undocumented, f"values.yaml keys without a comment: {undocumented}"
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values) == set(schema["properties"]), "values.yaml and values.schema.json name different keys"


def test_defaults_render_the_pod_the_agent_and_nginx_need(helm: Helm) -> None:
    objects = helm.objects(release="edge", namespace="ingress")
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == sorted(["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
                            "Service", "Deployment", "IngressClass", "ConfigMap"])
    for o in objects:
        labels = o["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "kroute" and labels["app.kubernetes.io/instance"] == "edge"
        assert labels["app.kubernetes.io/managed-by"] == "Helm" and "app.kubernetes.io/version" in labels

    deployment = one(objects, "Deployment", "edge-kroute")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 1
    nginx, agent = containers(deployment)["nginx"], containers(deployment)["agent"]
    assert nginx["image"] == agent["image"] == "kroute:0.1.0"

    # The table: one memory-backed emptyDir, written by the agent, mapped read-only by nginx.
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["table"]["emptyDir"]["medium"] == "Memory"
    mounts = {c["name"]: {m["name"]: m for m in c["volumeMounts"]} for c in (nginx, agent)}
    assert mounts["nginx"]["table"]["mountPath"] == mounts["agent"]["table"]["mountPath"] == "/run/kroute"
    assert mounts["nginx"]["table"].get("readOnly") is True and not mounts["agent"]["table"].get("readOnly")

    # The token: mounted into the agent only, from a projected volume; nothing automounts it.
    assert pod["automountServiceAccountToken"] is False
    assert one(objects, "ServiceAccount")["automountServiceAccountToken"] is False
    token_mount = mounts["agent"]["kube-api-access"]
    assert token_mount["mountPath"] == "/var/run/secrets/kubernetes.io/serviceaccount" and token_mount["readOnly"]
    assert "kube-api-access" not in mounts["nginx"]
    sources = volumes["kube-api-access"]["projected"]["sources"]
    assert sources[0]["serviceAccountToken"]["path"] == "token"
    assert pod["serviceAccountName"] == one(objects, "ServiceAccount")["metadata"]["name"] == "edge-kroute"

    # Non-root, read-only, no capabilities but the one nginx needs for port 80.
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == 101
    for c in (nginx, agent):
        context = c["securityContext"]
        assert context["readOnlyRootFilesystem"] and context["runAsNonRoot"]
        assert context["allowPrivilegeEscalation"] is False and context["capabilities"]["drop"] == ["ALL"]
    assert nginx["securityContext"]["capabilities"]["add"] == ["NET_BIND_SERVICE"]
    assert "add" not in agent["securityContext"]["capabilities"]

    # Probes and resources.
    assert nginx["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "status"}
    assert agent["readinessProbe"]["httpGet"] == {"path": "/readyz?exclude=apiserver", "port": "agent"}
    assert agent["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "agent"}
    assert nginx["resources"]["requests"] and agent["resources"]["requests"]

    # The agent is told what the IngressClass, Service and Lease are called.
    ingress_class = one(objects, "IngressClass")
    assert ingress_class["metadata"]["name"] == "kroute"
    assert ingress_class["spec"]["controller"] == "kroute.dev/ingress-controller"
    assert "annotations" not in ingress_class["metadata"]
    assert agent["command"] == ["kroute-agent"]
    assert agent["args"] == [
        "--table-dir=/run/kroute", "--controller-class=kroute.dev/ingress-controller", "--ingress-class=kroute",
        "--coalesce-ms=5", "--publish-service=ingress/edge-kroute", "--election-namespace=ingress",
        "--lease-name=edge-kroute", "--listen=0.0.0.0:10254", "--log-level=info"]
    assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in agent["env"]

    service = one(objects, "Service")
    assert service["spec"]["type"] == "LoadBalancer" and "externalTrafficPolicy" not in service["spec"]
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
                                        {"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}]
    assert [(p["name"], p["containerPort"]) for p in nginx["ports"]] == [("http", 80), ("https", 443),
                                                                         ("status", 10246)]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_rbac_is_rendered_from_the_agents_rules_file(helm: Helm) -> None:
    rules = rbac_rules()
    objects = helm.objects(release="edge", namespace="ingress")
    assert one(objects, "ClusterRole")["rules"] == rules["clusterRules"]
    role = one(objects, "Role", "edge-kroute-election")
    assert role["metadata"]["namespace"] == "ingress" and role["rules"] == rules["electionRules"]
    for kind, role_kind, name in (("ClusterRoleBinding", "ClusterRole", "edge-kroute"),
                                  ("RoleBinding", "Role", "edge-kroute-election")):
        binding = one(objects, kind, name)
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": name}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "edge-kroute", "namespace": "ingress"}]

    # One watched namespace: only IngressClasses stay cluster-wide; the rest is a Role in that namespace.
    objects = helm.objects({"controller": {"watchNamespace": "apps"}}, release="edge")
    cluster_rules = one(objects, "ClusterRole")["rules"]
    assert [r["resources"] for r in cluster_rules] == [["ingressclasses"]]
    role = one(objects, "Role", "edge-kroute")
    assert role["metadata"]["namespace"] == "apps"
    granted = {res for r in role["rules"] for res in r["resources"]}
    wanted = {res for r in rules["clusterRules"] for res in r["resources"]} - {"ingressclasses"}
    assert granted == wanted
    assert "--watch-namespace=apps" in containers(one(objects, "Deployment"))["agent"]["args"]


def test_options_render_as_documented(helm: Helm) -> None:
    objects = helm.objects(VARIANTS["daemonset-nodeport"], release="edge")
    daemonset = one(objects, "DaemonSet")
    assert "replicas" not in daemonset["spec"] and not find(objects, "Deployment")
    assert not find(objects, "PodDisruptionBudget") and not find(objects, "HorizontalPodAutoscaler")
    service = one(objects, "Service")
    assert service["spec"]["type"] == "NodePort" and service["spec"]["externalTrafficPolicy"] == "Local"
    assert service["spec"]["ports"][0]["nodePort"] == 30080 and "nodePort" not in service["spec"]["ports"][1]
    assert "--default-ssl-certificate=ingress/wildcard" in containers(daemonset)["agent"]["args"]

    objects = helm.objects(VARIANTS["replicas-hpa-default-class"], release="edge")
    deployment = one(objects, "Deployment")
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    hpa = one(objects, "HorizontalPodAutoscaler")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 5)
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu", "memory"]
    assert one(objects, "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    annotations = one(objects, "IngressClass")["metadata"]["annotations"]
    assert annotations == {"ingressclass.kubernetes.io/is-default-class": "true"}

    objects = helm.objects(VARIANTS["metrics"], release="edge")
    assert one(objects, "Deployment")["spec"]["replicas"] == 3 and one(objects, "PodDisruptionBudget")
    monitor = one(objects, "ServiceMonitor")
    metrics_service = one(objects, "Service", "edge-kroute-metrics")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert all(metrics_service["metadata"]["labels"].get(k) == v for k, v in selector.items())
    assert not all(one(objects, "Service", "edge-kroute")["metadata"]["labels"].get(k) == v
                   for k, v in selector.items()), "the ServiceMonitor must not scrape the traffic Service"
    assert {p["name"] for p in metrics_service["spec"]["ports"]} == {e["port"] for e in monitor["spec"]["endpoints"]}

    objects = helm.objects(VARIANTS["one-namespace-no-election"], release="edge")
    args = containers(one(objects, "Deployment"))["agent"]["args"]
    assert "--no-election" in args and "--publish-address=203.0.113.7" in args and "--log-level=debug" in args
    assert not any(a.startswith(("--publish-service", "--election-namespace")) for a in args)
    assert not find(objects, "Role", "edge-kroute-election")

    # The limits' refusal status (ingress-nginx's limit-req/conn-status-code) goes to the agent.
    objects = helm.objects({"controller": {"limitReqStatusCode": 429, "limitConnStatusCode": 429}})
    args = containers(one(objects, "Deployment"))["agent"]["args"]
    assert "--limit-req-status-code=429" in args and "--limit-conn-status-code=429" in args

    # The shutdown delay is the nginx container's preStop sleep, and must leave time to drain.
    hook = containers(one(helm.objects({}), "Deployment"))["nginx"]["lifecycle"]["preStop"]["exec"]["command"]
    assert hook == ["sleep", "5"]
    objects = helm.objects({"shutdownDelaySeconds": 20, "terminationGracePeriodSeconds": 90})
    assert containers(one(objects, "Deployment"))["nginx"]["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "20"]
    result = helm.template({"shutdownDelaySeconds": 60}, check=False)
    assert result.returncode != 0 and "less than terminationGracePeriodSeconds (60)" in result.stderr

    # nginx on unprivileged ports (an image whose nginx.conf says so): no capability at all.
    objects = helm.objects({"nginx": {"containerPorts": {"http": 8080, "https": 8443, "status": 10246}}})
    assert "add" not in containers(one(objects, "Deployment"))["nginx"]["securityContext"]["capabilities"]


# ---- the Gateway API -----------------------------------------------------------------------------------------

GATEWAY_API = {"gatewayAPI": {"enabled": True}}
GATEWAY_KINDS = {"gatewayclasses", "gateways", "httproutes", "grpcroutes", "referencegrants"}


def chart_copy(directory: Path, channel: str = "") -> Path:
    """The chart in a directory of its own, whatever this checkout's chart holds: with one channel of the Gateway
    API CRDs copied in by scripts/chart-gateway-crds.sh (what `make chart-gateway-crds` runs), or without any."""
    chart = directory / "kroute"
    shutil.copytree(CHART, chart, ignore=shutil.ignore_patterns("gateway-api"))
    if channel:
        subprocess.run(["bash", str(ROOT / "scripts" / "chart-gateway-crds.sh"), channel, str(chart)], check=True,
                       capture_output=True, timeout=600)
    return chart


def crd_files(chart: Path, channel: str) -> dict[tuple[str, str], dict[str, Any]]:
    """The objects of a channel's files, by (kind, name), as the Gateway API release ships them."""
    return {(doc["kind"], doc["metadata"]["name"]): doc
            for path in sorted((chart / "files" / "gateway-api" / channel).glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text()) if doc}


def gateway_api_version() -> str:
    go_mod = ROOT / "tests" / "cluster" / "tools" / "conformance" / "go.mod"
    return next(line.split()[1] for line in go_mod.read_text().splitlines()
                if line.split()[:1] == ["sigs.k8s.io/gateway-api"])


def test_gateway_api_is_off_by_default(helm: Helm) -> None:
    objects = helm.objects(release="edge", namespace="ingress")
    assert not find(objects, "GatewayClass") and not find(objects, "CustomResourceDefinition")
    assert not any(a.startswith("--gateway") for a in containers(one(objects, "Deployment"))["agent"]["args"])
    assert not any("gateway.networking.k8s.io" in r["apiGroups"] for r in one(objects, "ClusterRole")["rules"])


def test_gateway_api_renders_the_agent_flag_the_gateway_class_and_the_rules(helm: Helm) -> None:
    rules = rbac_rules()
    objects = helm.objects(GATEWAY_API, release="edge", namespace="ingress")
    agent = containers(one(objects, "Deployment"))["agent"]
    assert "--gateway-controller=kroute.dev/gateway-controller" in agent["args"]
    gateway_class = one(objects, "GatewayClass", "kroute")
    assert gateway_class["spec"] == {"controllerName": "kroute.dev/gateway-controller"}
    assert gateway_class["metadata"]["labels"]["app.kubernetes.io/instance"] == "edge"
    assert "annotations" not in gateway_class["metadata"], "an ordinary object when the cluster has the CRDs"
    assert not find(objects, "CustomResourceDefinition"), "installCRDs defaults to none"

    # The agent reads the five kinds and writes the status of those that have one; nothing more.
    assert one(objects, "ClusterRole")["rules"] == rules["clusterRules"] + rules["gatewayRules"]
    reads = [r for r in rules["gatewayRules"] if "watch" in r["verbs"]]
    writes = [r for r in rules["gatewayRules"] if "watch" not in r["verbs"]]
    assert [set(r["resources"]) for r in reads] == [GATEWAY_KINDS] and reads[0]["verbs"] == ["get", "list", "watch"]
    assert [set(r["resources"]) for r in writes] == [{f"{k}/status" for k in GATEWAY_KINDS - {"referencegrants"}}]
    assert writes[0]["verbs"] == ["update", "patch"]
    assert all(r["apiGroups"] == ["gateway.networking.k8s.io"] for r in rules["gatewayRules"])

    # One watched namespace: GatewayClasses are cluster-scoped and stay cluster-wide, the rest is granted there.
    objects = helm.objects({**GATEWAY_API, "controller": {"watchNamespace": "apps"}}, release="edge")
    cluster_wide = {res for r in one(objects, "ClusterRole")["rules"] for res in r["resources"]}
    assert cluster_wide == {"ingressclasses", "gatewayclasses", "gatewayclasses/status"}
    namespaced = {res for r in one(objects, "Role", "edge-kroute")["rules"] for res in r["resources"]}
    assert GATEWAY_KINDS - {"gatewayclasses"} <= namespaced and "gateways/status" in namespaced

    # Another class name and controller name; or no class at all.
    objects = helm.objects({"gatewayAPI": {"enabled": True, "controllerName": "example.com/edge",
                                           "gatewayClass": {"name": "edge"}}})
    assert one(objects, "GatewayClass", "edge")["spec"]["controllerName"] == "example.com/edge"
    assert "--gateway-controller=example.com/edge" in containers(one(objects, "Deployment"))["agent"]["args"]
    assert not find(helm.objects({"gatewayAPI": {"enabled": True, "gatewayClass": {"create": False}}}),
                    "GatewayClass")


def test_gateway_slots_render_ports_listeners_flags_and_a_service_each(helm: Helm) -> None:
    slots = [{"address": "203.0.113.7", "httpPort": 8081, "httpsPort": 8444, "loadBalancerIP": "203.0.113.7"},
             {"address": "lb.example.com", "httpPort": 8082, "httpsPort": 8445,
              "serviceAnnotations": {"example.com/lb": "internal"}}]
    objects = helm.objects({"gatewayAPI": {"enabled": True, "slots": slots}}, release="edge", namespace="ingress")
    pod = containers(one(objects, "Deployment"))
    assert [a for a in pod["agent"]["args"] if a.startswith("--gateway-slot")] == [
        "--gateway-slot=203.0.113.7=:8081+:8444", "--gateway-slot=lb.example.com=:8082+:8445"]
    ports = {p["name"]: p["containerPort"] for p in pod["nginx"]["ports"]}
    assert {k: v for k, v in ports.items() if k.startswith("slot")} == {
        "slot0-http": 8081, "slot0-https": 8444, "slot1-http": 8082, "slot1-https": 8445}
    listen = [line.strip() for line in one(objects, "ConfigMap", "edge-kroute-nginx")["data"]["listen.conf"].splitlines()
              if line.strip().startswith("listen")]
    assert "listen 8081 reuseport;" in listen and "listen [::]:8444 ssl http2 reuseport;" in listen
    assert "listen 8445 ssl http2 reuseport;" in listen and len(listen) == 4 + 4 * len(slots)
    first, second = one(objects, "Service", "edge-kroute-slot-0"), one(objects, "Service", "edge-kroute-slot-1")
    assert first["spec"]["type"] == "LoadBalancer" and first["spec"]["loadBalancerIP"] == "203.0.113.7"
    assert [(p["port"], p["targetPort"]) for p in first["spec"]["ports"]] == [(80, "slot0-http"), (443, "slot0-https")]
    assert first["spec"]["selector"] == one(objects, "Service", "edge-kroute")["spec"]["selector"]
    assert second["metadata"]["annotations"] == {"example.com/lb": "internal"} and "loadBalancerIP" not in second["spec"]
    # Without the Gateway API the slots are nothing.
    off = helm.objects({"gatewayAPI": {"slots": slots}}, release="edge", namespace="ingress")
    assert not [o for o in off if o["kind"] == "Service" and "slot" in o["metadata"]["name"]]
    assert not any(a.startswith("--gateway") for a in containers(one(off, "Deployment"))["agent"]["args"])


@pytest.mark.parametrize("channel", ["standard", "experimental"])
def test_gateway_api_crds_are_the_releases_files_kept_on_uninstall(channel: str, helm: Helm, tmp_path: Path) -> None:
    chart = chart_copy(tmp_path, channel)
    values = {"gatewayAPI": {"enabled": True, "installCRDs": channel}}
    lint = helm("lint", "--strict", str(chart), *set_args(values))
    assert "0 chart(s) failed" in lint.stdout and "[WARNING]" not in lint.stdout, lint.stdout
    objects = helm.objects(values, release="edge", chart=chart)
    shipped = crd_files(chart, channel)
    assert len([k for k in shipped if k[0] == "CustomResourceDefinition"]) >= 10
    rendered = {(o["kind"], o["metadata"]["name"]): o for o in objects
                if (o["kind"], o["metadata"]["name"]) in shipped}
    assert rendered.keys() == shipped.keys(), "not every object of the files is rendered"
    for key, original in shipped.items():
        # Unchanged but for the annotation that keeps them when the release goes.
        annotations = rendered[key]["metadata"]["annotations"]
        assert annotations.pop("helm.sh/resource-policy") == "keep", key
        assert rendered[key] == original, f"{key} differs from the file"
        if key[0] == "CustomResourceDefinition":
            assert annotations["gateway.networking.k8s.io/bundle-version"] == gateway_api_version(), key
            assert annotations["gateway.networking.k8s.io/channel"] == channel, key
    # Helm cannot create the class in the step that creates its CRD: it comes once the cluster serves the kind.
    assert not find(objects, "GatewayClass")
    served = helm("template", "edge", str(chart), "--api-versions", "gateway.networking.k8s.io/v1/GatewayClass",
                  *set_args(values)).stdout
    assert one([d for d in yaml.safe_load_all(served) if d], "GatewayClass", "kroute")
    # The chart carries one channel: asking for the other one fails and says how to get it.
    other = "standard" if channel == "experimental" else "experimental"
    result = helm.template({"gatewayAPI": {"enabled": True, "installCRDs": other}}, chart=chart, check=False)
    assert result.returncode != 0 and f"make chart-gateway-crds CHANNEL={other}" in result.stderr


def test_gateway_api_crds_asked_for_but_absent_fail_and_say_what_to_do(helm: Helm, tmp_path: Path) -> None:
    bare = chart_copy(tmp_path)
    for channel in ("standard", "experimental"):
        result = helm.template({"gatewayAPI": {"enabled": True, "installCRDs": channel}}, chart=bare, check=False)
        assert result.returncode != 0
        assert f"gatewayAPI.installCRDs={channel}" in result.stderr
        assert f"make chart-gateway-crds CHANNEL={channel}" in result.stderr
        assert "gatewayAPI.installCRDs=none" in result.stderr
    assert one(helm.objects(GATEWAY_API, chart=bare), "GatewayClass"), "installCRDs=none needs no files"


def test_install_with_the_crds_then_upgrade_makes_the_class_and_uninstall_keeps_the_crds(tools: Path,
                                                                                          tmp_path: Path) -> None:
    """A release that installs the CRDs into a cluster without them, then (upgrade) the GatewayClass; a control
    plane of its own, since the CRDs stay after the release."""
    chart = chart_copy(tmp_path, "experimental")
    with Cluster(tmp_path / "cluster", tools) as own:
        helm = Helm(own, tools)
        namespace = own.new_namespace("gateway")
        values = {"gatewayAPI": {"enabled": True, "installCRDs": "experimental"}}
        helm("install", "edge", str(chart), "--namespace", namespace, *set_args(values))
        crds = json.loads(own.kubectl("get", "crd", "-o", "json"))["items"]
        assert {c["metadata"]["name"] for c in crds} == {
            f"{k[1]}" for k in crd_files(chart, "experimental") if k[0] == "CustomResourceDefinition"}

        # The API server establishes a new CRD a moment after creating it (Helm does not wait for that).
        def established() -> bool:
            items = json.loads(own.kubectl("get", "crd", "-o", "json"))["items"]
            return all({c["type"]: c["status"] for c in crd.get("status", {}).get("conditions", [])}.get(
                "Established") == "True" for crd in items)
        wait_for("every CRD Established", established)
        assert not own.kubectl("get", "gatewayclass", "--ignore-not-found", "-o", "name").strip()
        notes = helm("get", "notes", "edge", "--namespace", namespace).stdout
        assert "The GatewayClass kroute is not created yet" in notes and "--reuse-values" in notes

        # The upgrade the notes ask for finds the CRDs served and creates the class. Established CRDs reach the
        # API server's discovery a moment later (Helm maps kinds through discovery): a person upgrading after
        # reading the notes never sees that moment; the test waits it out.
        wait_for("gatewayclasses in discovery", lambda: "gatewayclasses" in own.kubectl(
            "api-resources", "--api-group=gateway.networking.k8s.io", "-o", "name", check=False))
        helm("upgrade", "edge", str(chart), "--namespace", namespace, "--reuse-values")
        gateway_class = json.loads(own.kubectl("get", "gatewayclass", "kroute", "-o", "json"))
        assert gateway_class["spec"]["controllerName"] == "kroute.dev/gateway-controller"
        assert "kubectl get gatewayclass kroute" in helm("get", "notes", "edge", "--namespace", namespace).stdout

        helm("uninstall", "edge", "--namespace", namespace, "--wait", "--timeout", "60s")
        assert not own.kubectl("get", "gatewayclass", "--ignore-not-found", "-o", "name").strip()
        assert len(json.loads(own.kubectl("get", "crd", "-o", "json"))["items"]) == len(crds), "CRDs are kept"


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_api_server_accepts_the_rendered_manifests(variant: str, cluster: Cluster, helm: Helm,
                                                   service_monitor_crd: None) -> None:
    namespace = cluster.new_namespace("dryrun")
    values = json.loads(json.dumps(VARIANTS[variant]))
    # Cluster-scoped names must not collide with other tests' real installs.
    values.setdefault("ingressClass", {})["name"] = f"dry-{namespace}"
    if values.get("controller", {}).get("watchNamespace"):
        values["controller"]["watchNamespace"] = cluster.new_namespace("apps")
    manifests = helm.template(values, release="dry", namespace=namespace).stdout
    out = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=manifests)
    assert "created (server dry run)" in out
    assert len(out.strip().splitlines()) == len([d for d in yaml.safe_load_all(manifests) if d])


def test_install_upgrade_uninstall(cluster: Cluster, releases: Releases) -> None:
    release = releases.install()
    status = json.loads(release.helm("status", release.name, "-n", release.namespace, "-o", "json").stdout)
    assert status["info"]["status"] == "deployed" and status["version"] == 1
    assert "kroute-table lookup" in status["info"]["notes"]
    deployment = release.get("deployment")
    assert deployment and deployment["spec"]["replicas"] == 1
    for kind in ("serviceaccount", "service", "role", "rolebinding"):
        assert release.get(kind, f"{release.fullname}-election" if kind.startswith("role") else None), kind
    for kind in ("clusterrole", "clusterrolebinding"):
        assert release.get(kind, namespace=""), kind
    ingress_class = release.get("ingressclass", release.ingress_class, namespace="")
    assert ingress_class["spec"]["controller"] == "kroute.dev/ingress-controller"
    assert release.get("poddisruptionbudget") is None

    release.upgrade({"replicaCount": 2, "controller": {"logLevel": "debug"}, "service": {"type": "NodePort"}})
    deployment = release.get("deployment")
    assert deployment["spec"]["replicas"] == 2
    assert "--log-level=debug" in containers(deployment)["agent"]["args"]
    assert release.get("service")["spec"]["type"] == "NodePort"
    assert release.get("poddisruptionbudget")["spec"]["minAvailable"] == 1
    history = json.loads(release.helm("history", release.name, "-n", release.namespace, "-o", "json").stdout)
    assert [h["revision"] for h in history] == [1, 2] and history[-1]["status"] == "deployed"

    release.uninstall()
    for kind in ("deployment", "service", "serviceaccount", "poddisruptionbudget"):
        assert release.get(kind) is None, kind
    assert release.get("role", f"{release.fullname}-election") is None
    assert release.get("clusterrole", namespace="") is None
    assert release.get("ingressclass", release.ingress_class, namespace="") is None


def test_service_account_may_do_exactly_what_the_agent_needs(cluster: Cluster, releases: Releases) -> None:
    release = releases.install()
    elsewhere = cluster.new_namespace("other")

    # Everything in the rules file, cluster-wide (the election Role in the release namespace).
    for rule in rbac_rules()["clusterRules"]:
        for resource in rule["resources"]:
            group = rule["apiGroups"][0]
            name, _, sub = resource.partition("/")
            full = (f"{name}.{group}" if group else name) + (f"/{sub}" if sub else "")
            for verb in rule["verbs"]:
                assert release.can_i(verb, full, all_namespaces=True), f"{verb} {full}"
                assert release.can_i(verb, full, elsewhere), f"{verb} {full} in {elsewhere}"
    for verb in ("get", "create", "update"):
        assert release.can_i(verb, "leases.coordination.k8s.io"), f"{verb} leases"

    # Nothing more: no reading a Secret by name, no writing what it only watches, no Lease elsewhere.
    denied = [("get", "secrets", elsewhere), ("get", "secrets", release.namespace), ("create", "secrets", elsewhere),
              ("delete", "secrets", elsewhere), ("update", "secrets", elsewhere),
              ("create", "ingresses.networking.k8s.io", elsewhere),
              ("patch", "ingresses.networking.k8s.io", elsewhere),
              ("delete", "ingresses.networking.k8s.io", elsewhere),
              ("update", "services", elsewhere), ("patch", "endpointslices.discovery.k8s.io", elsewhere),
              ("get", "configmaps", elsewhere), ("list", "configmaps", elsewhere), ("list", "pods", elsewhere),
              ("create", "pods/exec", release.namespace), ("delete", "events", elsewhere),
              ("get", "leases.coordination.k8s.io", elsewhere), ("update", "leases.coordination.k8s.io", elsewhere),
              ("delete", "leases.coordination.k8s.io", release.namespace),
              ("create", "serviceaccounts/token", release.namespace), ("list", "namespaces", elsewhere),
              ("create", "ingressclasses.networking.k8s.io", elsewhere),
              ("update", "ingresses.networking.k8s.io/status", elsewhere)]
    allowed = [d for d in denied if release.can_i(d[0], d[1], d[2])]
    assert not allowed, f"the chart's service account may also: {allowed}"


def test_watch_namespace_narrows_secrets_to_that_namespace(cluster: Cluster, releases: Releases) -> None:
    apps = cluster.new_namespace("apps")
    elsewhere = cluster.new_namespace("other")
    release = releases.install({"controller": {"watchNamespace": apps}})
    for verb in ("list", "watch"):
        assert release.can_i(verb, "secrets", apps)
        assert not release.can_i(verb, "secrets", elsewhere)
        assert not release.can_i(verb, "secrets", all_namespaces=True)
        assert release.can_i(verb, "ingresses.networking.k8s.io", apps)
        assert not release.can_i(verb, "ingresses.networking.k8s.io", elsewhere)
        assert release.can_i(verb, "ingressclasses.networking.k8s.io", all_namespaces=True)
    assert release.can_i("patch", "ingresses.networking.k8s.io/status", apps)
    assert not release.can_i("patch", "ingresses.networking.k8s.io/status", elsewhere)
    assert release.can_i("create", "events", apps) and not release.can_i("create", "events", elsewhere)
