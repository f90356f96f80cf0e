"""`kroute-agent audit` against a real control plane: per-Ingress verdicts (honoured, planned, invalid,
refused) and totals as JSON and text, a list longer than one page, the ways the agent connects
(kubeconfig, in-cluster with the chart's RBAC), and exit status 1 only when the cluster cannot be read."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from agent_fixtures import AGENT, rbac_identity
from kube import Cluster, free_ports

NGINX = "nginx.ingress.kubernetes.io"
SNIPPET_WHY = ("nginx configuration text from the cluster: kroute never writes configuration from cluster data "
               "(the CVE-2025-1974 family)")

CUSTOM_HEADERS_WHY = ("not yet: needs the agent to watch ConfigMaps and an operator's list of allowed header names "
                      "(ingress-nginx's global-allowed-response-headers); not scheduled; HSTS is a chart setting")


def ingress(ns: str, name: str, annotations: dict[str, str], class_name: str = "nginx") -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": ns, "annotations": annotations},
            "spec": {"ingressClassName": class_name, "rules": [{"host": f"{name}.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}


def audit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
    return subprocess.run([str(AGENT), "audit", *args], capture_output=True, text=True, timeout=60,
                          env={**base, **(env or {})})


def audit_json(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = audit(*args, "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {i["name"]: i for i in report["ingresses"]}


def test_audit_reports_each_annotation_and_the_totals(cluster: Cluster) -> None:
    ns = cluster.new_namespace("audit")
    cluster.apply(
        ingress(ns, "honoured", {f"{NGINX}/use-regex": "true", f"{NGINX}/rewrite-target": "/$1",
                                 f"{NGINX}/ssl-redirect": "false"}),
        ingress(ns, "later", {f"{NGINX}/custom-headers": "ns/headers", f"{NGINX}/global-rate-limit": "100"}),
        ingress(ns, "invalid", {f"{NGINX}/ssl-redirect": "maybe", f"{NGINX}/upstream-vhost": "$host",
                                "kroute.dev/force-ssl-redirect": "yes", f"{NGINX}/force-ssl-redirect": "true"}),
        ingress(ns, "snippet", {f"{NGINX}/configuration-snippet": "return 200 owned;",
                                f"{NGINX}/server-snippet": "location /x {}", f"{NGINX}/app-root": "/app"}),
        ingress(ns, "plain", {"example.com/team": "shop"}, class_name="kroute"),
    )
    report = audit_json("--kubeconfig", str(cluster.kubeconfig), "--namespace", ns)
    assert report["annotationPrefix"] == NGINX
    assert [i["name"] for i in report["ingresses"]] == ["honoured", "invalid", "later", "plain", "snippet"]
    found = by_name(report)

    honoured = found["honoured"]
    assert honoured["namespace"] == ns and honoured["class"] == "nginx"
    assert honoured["honoured"] == [f"{NGINX}/rewrite-target", f"{NGINX}/ssl-redirect", f"{NGINX}/use-regex"]
    assert honoured["ignored"] == [] and honoured["refused"] == []

    assert found["later"]["honoured"] == []
    assert found["later"]["ignored"] == [
        {"annotation": f"{NGINX}/custom-headers", "why": CUSTOM_HEADERS_WHY},
        {"annotation": f"{NGINX}/global-rate-limit", "why": "not yet: needs a memcached deployment; not scheduled"}]

    # kroute.dev's invalid value falls back to ingress-nginx's valid one.
    invalid = found["invalid"]
    assert invalid["honoured"] == [f"{NGINX}/force-ssl-redirect"]
    assert invalid["ignored"] == [
        {"annotation": "kroute.dev/force-ssl-redirect", "why": "invalid value: \"yes\" is not true or false"},
        {"annotation": f"{NGINX}/ssl-redirect", "why": "invalid value: \"maybe\" is not true or false"},
        {"annotation": f"{NGINX}/upstream-vhost",
         "why": "invalid value: \"$host\" is not a host name with an optional port"}]

    snippet = found["snippet"]
    assert snippet["honoured"] == [f"{NGINX}/app-root"]
    assert snippet["refused"] == [{"annotation": f"{NGINX}/configuration-snippet", "why": SNIPPET_WHY},
                                  {"annotation": f"{NGINX}/server-snippet", "why": SNIPPET_WHY}]

    assert found["plain"] == {"namespace": ns, "name": "plain", "class": "kroute",
                              "honoured": [], "ignored": [], "refused": []}
    assert report["totals"] == {"ingresses": 5, "honoured": 5, "ignored": 5, "refused": 2}

    text = audit("--kubeconfig", str(cluster.kubeconfig), "-n", ns)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert f"Ingress {ns}/honoured (class nginx)" in lines
    assert f"  honoured  {NGINX}/rewrite-target" in lines
    assert f"  ignored   {NGINX}/custom-headers: {CUSTOM_HEADERS_WHY}" in lines
    assert f"  ignored   {NGINX}/ssl-redirect: invalid value: \"maybe\" is not true or false" in lines
    assert f"  refused   {NGINX}/configuration-snippet: {SNIPPET_WHY}" in lines
    assert f"Ingress {ns}/plain (class kroute): no annotations under kroute.dev/ or {NGINX}/" in lines
    assert lines[-1] == "5 Ingresses: 5 annotations honoured, 5 ignored, 2 refused"
    assert text.stderr == ""


def test_audit_reads_every_namespace_and_every_page(cluster: Cluster) -> None:
    # More Ingresses than one LIST page (500) in one namespace, and one more elsewhere.
    many, other = cluster.new_namespace("audit-many"), cluster.new_namespace("audit-other")
    cluster.kubectl("create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        ingress(many, f"i{n:03d}", {f"{NGINX}/custom-headers": "ns/headers"}) for n in range(501)]}))
    cluster.apply(ingress(other, "web", {f"{NGINX}/auth-snippet": "x"}))

    report = audit_json("--kubeconfig", str(cluster.kubeconfig), "-n", many)
    assert len(report["ingresses"]) == 501
    assert report["totals"] == {"ingresses": 501, "honoured": 0, "ignored": 501, "refused": 0}

    everything = audit_json("--kubeconfig", str(cluster.kubeconfig))
    names = {(i["namespace"], i["name"]) for i in everything["ingresses"]}
    assert (many, "i500") in names and (other, "web") in names
    assert len(everything["ingresses"]) == len(names) == everything["totals"]["ingresses"]


def test_audit_connects_in_cluster_with_the_charts_rules(cluster: Cluster, tmp_path: Path) -> None:
    ns = cluster.new_namespace("audit-sa")
    cluster.apply(ingress(ns, "web", {f"{NGINX}/ssl-redirect": "false"}))
    identity = rbac_identity(cluster, ns, tmp_path)
    report = audit_json("-n", ns, env=identity["in_cluster_env"])
    assert report["totals"] == {"ingresses": 1, "honoured": 1, "ignored": 0, "refused": 0}
    # --annotation-prefix as the agent's: ingress-nginx's names are then someone else's.
    other = audit_json("-n", ns, "--annotation-prefix", "example.com", env=identity["in_cluster_env"])
    assert other["totals"] == {"ingresses": 1, "honoured": 0, "ignored": 0, "refused": 0}


def test_audit_fails_only_when_the_cluster_cannot_be_read(cluster: Cluster, tmp_path: Path) -> None:
    ns = cluster.new_namespace("audit-denied")
    cluster.kubectl("create", "serviceaccount", "nobody", "-n", ns)
    denied = tmp_path / "kubeconfig-denied"
    denied.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": cluster.server, "certificate-authority": str(cluster.ca_file)}}],
        "users": [{"name": "u", "user": {"token": cluster.token(ns, "nobody")}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    result = audit("--kubeconfig", str(denied))
    assert result.returncode == 1
    assert result.stdout == ""
    assert "listing Ingresses failed: HTTP 403" in result.stderr

    port = free_ports(1)[0]
    unreachable = tmp_path / "kubeconfig-unreachable"
    unreachable.write_text(denied.read_text().replace(cluster.server, f"https://127.0.0.1:{port}"))
    result = audit("--kubeconfig", str(unreachable))
    assert result.returncode == 1 and result.stdout == ""
    assert "listing Ingresses failed" in result.stderr

    result = audit("--kubeconfig", str(tmp_path / "missing"))
    assert result.returncode == 1 and "bad cluster configuration" in result.stderr

    # Refused and ignored annotations are findings, not failures.
    cluster.apply(ingress(ns, "web", {f"{NGINX}/server-snippet": "x"}))
    assert audit("--kubeconfig", str(cluster.kubeconfig), "-n", ns).returncode == 0
