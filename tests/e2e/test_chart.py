"""The Helm chart (charts/kroute): lint, render, the real API server's verdict on what it renders, install,
upgrade and uninstall, and what its service account may do (kubectl auth can-i).

No kubelet runs, so pods never start: these tests check the objects. tests/e2e/test_image.py runs the pod.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from agent_fixtures import rbac_rules
from chart_fixtures import (CHART, Helm, Releases, containers, find, one,  # noqa: F401
                            helm, releases, service_monitor_crd)
from kube import Cluster

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
                {"controller": {"limitReqStatusCode": 200}}):
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
