"""Takeover from ingress-nginx (docs/takeover.md): kroute serves the Ingresses of ingress-nginx's class
`nginx`, named by spec.ingressClassName or by the legacy annotation, without editing them, and keeps
serving them when ingress-nginx's IngressClass is deleted (as `helm uninstall ingress-nginx` does). The
chart renders the flag, holds back Ingress status, and makes the IngressClass `nginx` only when none exists.

The IngressClass `nginx` is cluster-wide: every test here makes it and removes it again.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any, Iterator

import pytest

from agent_fixtures import AGENT, wait_for
from chart_fixtures import CHART, Helm, Releases, containers, find, helm, one, releases  # noqa: F401
from kube import Cluster
from stack import PUBLISH_ADDRESS, Stack, make_stack, rule  # noqa: F401

INGRESS_NGINX = "k8s.io/ingress-nginx"
KEEP = {"helm.sh/resource-policy": "keep"}


def ingress_class(name: str, controller: str, annotations: dict[str, str] | None = None,
                  labels: dict[str, str] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if annotations:
        metadata["annotations"] = annotations
    if labels:
        metadata["labels"] = labels
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": metadata,
            "spec": {"controller": controller}}


@pytest.fixture
def nginx_class(cluster: Cluster) -> Iterator[dict[str, Any]]:
    """ingress-nginx's IngressClass, as its chart makes it (owned by the release "ingress-nginx")."""
    cls = ingress_class("nginx", INGRESS_NGINX,
                        {"meta.helm.sh/release-name": "ingress-nginx", "meta.helm.sh/release-namespace": "ingress-nginx"},
                        {"app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/name": "ingress-nginx"})
    cluster.kubectl("delete", "ingressclass", "nginx", "--ignore-not-found")
    cluster.apply(cls)
    try:
        yield cls
    finally:
        cluster.kubectl("delete", "ingressclass", "nginx", "--ignore-not-found", check=False)


def ingress_nginx_ingresses(s: Stack) -> list[dict[str, Any]]:
    """An ingress-nginx user's Ingresses: one by ingressClassName, one by the legacy annotation only."""
    by_name = s.ingress("by-name", {"rules": [rule("by-name.takeover.test", ("/", "Prefix", "by-name"))]}, "nginx")
    by_annotation = s.ingress("by-annotation", {"rules": [
        rule("by-annotation.takeover.test", ("/", "Prefix", "by-annotation"))]}, None)
    by_annotation["metadata"]["annotations"] = {"kubernetes.io/ingress.class": "nginx"}
    return [by_name, by_annotation]


def own_ingress(s: Stack, name: str) -> dict[str, Any]:
    """An Ingress of the stack's own class, applied last: once it routes, the agent has seen those before it."""
    return s.ingress(name, {"rules": [rule(f"{name}.takeover.test", ("/", "Prefix", "own"))]})


def serves(s: Stack, host: str, service: str) -> bool:
    reply = s.request(host)
    return reply.status == 200 and reply.service == service


# ---- the agent, nginx and backends against a real API server ---------------------------------------------


def test_nginx_class_is_served_and_survives_the_deletion_of_its_ingressclass(
        cluster: Cluster, make_stack: Any, nginx_class: dict[str, Any]) -> None:
    s = make_stack("--ingress-class-name", "nginx")
    for name in ("by-name", "by-annotation", "own", "elsewhere"):
        s.backend(name)
    # Another controller's class and annotation are still not ours.
    elsewhere = [s.ingress("other-class", {"rules": [rule("other-class.takeover.test", ("/", "Prefix", "elsewhere"))]},
                           "traefik"),
                 s.ingress("other-annotation", {"rules": [
                     rule("other-annotation.takeover.test", ("/", "Prefix", "elsewhere"))]}, None)]
    elsewhere[1]["metadata"]["annotations"] = {"kubernetes.io/ingress.class": "traefik"}
    s.apply(*ingress_nginx_ingresses(s), *elsewhere, own_ingress(s, "own"))

    for host, service in (("own.takeover.test", "own"), ("by-name.takeover.test", "by-name"),
                          ("by-annotation.takeover.test", "by-annotation")):
        assert s.wait_status(host).service == service, host
    assert s.request("other-class.takeover.test").status == 404
    assert s.request("other-annotation.takeover.test").status == 404
    # The agent (elected, with --publish-address) writes its address into the taken-over Ingresses.
    for name in ("by-name", "by-annotation"):
        assert wait_for(f"status of {name}", lambda: s.ingress_status(name)) == [{"ip": PUBLISH_ADDRESS}], name
    assert s.ingress_status("other-class") == []

    # helm uninstall ingress-nginx deletes its IngressClass. A class of kroute's own controller, deleted
    # right after it, tells when the agent has seen the deletion: its Ingress stops routing.
    gone = f"gone-{s.id}"
    try:
        s.apply(ingress_class(gone, s.controller),
                s.ingress("canary", {"rules": [rule("canary.takeover.test", ("/", "Prefix", "own"))]}, gone))
        s.wait_status("canary.takeover.test")
        cluster.kubectl("delete", "ingressclass", "nginx", gone)
        s.wait_status("canary.takeover.test", status=404)
    finally:
        cluster.kubectl("delete", "ingressclass", gone, "--ignore-not-found", check=False)
    for host, service in (("by-name.takeover.test", "by-name"), ("by-annotation.takeover.test", "by-annotation")):
        assert serves(s, host, service), host
    assert s.ingress_status("by-name") == [{"ip": PUBLISH_ADDRESS}]

    # New Ingresses of the class keep coming to kroute, with no IngressClass at all.
    s.apply(s.ingress("after", {"rules": [rule("after.takeover.test", ("/", "Prefix", "by-name"))]}, "nginx"))
    assert s.wait_status("after.takeover.test").service == "by-name"


def test_without_the_flag_the_nginx_class_is_not_ours(cluster: Cluster, make_stack: Any,
                                                      nginx_class: dict[str, Any]) -> None:
    s = make_stack()
    for name in ("by-name", "by-annotation", "own"):
        s.backend(name)
    s.apply(*ingress_nginx_ingresses(s), own_ingress(s, "own"))
    assert s.wait_status("own.takeover.test").service == "own"
    for host in ("by-name.takeover.test", "by-annotation.takeover.test"):
        assert s.request(host).status == 404, host
        assert s.lookup(host) is None, host
    assert s.ingress_status("by-name") == [] and s.ingress_status("by-annotation") == []


def test_agent_refuses_a_bad_class_name(cluster: Cluster) -> None:
    for bad in ("Nginx", "nginx_x", "ng inx"):
        result = subprocess.run([str(AGENT), "--kubeconfig", str(cluster.kubeconfig), "--ingress-class-name", bad],
                                capture_output=True, text=True, timeout=10)
        assert result.returncode == 2 and "--ingress-class-name" in result.stderr, (bad, result.stderr)


# ---- the chart --------------------------------------------------------------------------------------


def agent_args(objects: list[dict[str, Any]]) -> list[str]:
    return containers(one(objects, "Deployment"))["agent"]["args"]


def test_chart_without_takeover_renders_nothing_of_it(helm: Helm) -> None:
    objects = helm.objects(release="edge")
    assert not any(a.startswith("--ingress-class-name") for a in agent_args(objects))
    assert [o["metadata"]["name"] for o in find(objects, "IngressClass")] == ["kroute"]


def test_chart_takeover_renders_the_flag_the_class_and_holds_back_status(helm: Helm) -> None:
    objects = helm.objects({"takeover": {"ingressNginx": True}}, release="edge", namespace="ingress")
    args = agent_args(objects)
    assert "--ingress-class-name=nginx" in args
    assert "--ingress-class=kroute" in args and "--controller-class=kroute.dev/ingress-controller" in args
    # No status (nor Events) while ingress-nginx still writes its own.
    assert "--no-election" in args and not any(a.startswith("--election-namespace") for a in args)
    assert not any(a.startswith("--watch-without-class") for a in args)
    # The election Role stays, so that turning takeover.updateStatus on needs no new RBAC.
    assert one(objects, "Role", "edge-kroute-election")

    assert one(objects, "IngressClass", "kroute")["spec"]["controller"] == "kroute.dev/ingress-controller"
    nginx = one(objects, "IngressClass", "nginx")
    assert nginx["spec"]["controller"] == INGRESS_NGINX
    assert nginx["metadata"]["annotations"] == KEEP
    assert nginx["metadata"]["labels"]["app.kubernetes.io/instance"] == "edge"

    values = {"takeover": {"ingressNginx": True, "classNames": ["nginx-internal", "nginx"], "updateStatus": True,
                           "ingressClass": {"default": True}},
              "controller": {"watchIngressWithoutClass": True}}
    objects = helm.objects(values, release="edge", namespace="ingress")
    args = agent_args(objects)
    assert "--ingress-class-name=nginx,nginx-internal" in args and "--watch-without-class" in args
    assert "--election-namespace=ingress" in args and "--no-election" not in args
    assert one(objects, "IngressClass", "nginx")["metadata"]["annotations"] == {
        **KEEP, "ingressclass.kubernetes.io/is-default-class": "true"}
    assert [c["metadata"]["name"] for c in find(objects, "IngressClass")] == ["kroute", "nginx"], \
        "only nginx is made; other taken-over names are owned, not created"

    # Other names alone: owned, no class made; the class can be left out.
    objects = helm.objects({"takeover": {"classNames": ["nginx-internal"]}}, release="edge")
    assert "--ingress-class-name=nginx-internal" in agent_args(objects) and not find(objects, "IngressClass", "nginx")
    objects = helm.objects({"takeover": {"ingressNginx": True, "ingressClass": {"create": False}}}, release="edge")
    assert "--ingress-class-name=nginx" in agent_args(objects) and not find(objects, "IngressClass", "nginx")

    result = helm("lint", "--strict", str(CHART), "--set", "takeover.ingressNginx=true")
    assert "0 chart(s) failed" in result.stdout and "[WARNING]" not in result.stdout


def test_chart_refuses_takeover_values_that_cannot_work(helm: Helm) -> None:
    bad_values = [({"takeover": {"classNames": ["Nginx"]}}, "classNames"),
                  ({"takeover": {"ingressNginx": "yes"}}, "ingressNginx"),
                  ({"takeover": {"ingressClass": {"name": "x"}}}, "name"),
                  ({"takeover": {"ingressNginx": True}, "ingressClass": {"name": "nginx"}}, "must not be nginx"),
                  ({"takeover": {"ingressNginx": True, "ingressClass": {"default": True}},
                    "ingressClass": {"default": True}}, "one default IngressClass")]
    for values, message in bad_values:
        result = helm.template(values, check=False)
        assert result.returncode != 0 and message in result.stderr, (values, result.stderr)


def test_chart_install_leaves_ingress_nginx_class_alone_and_makes_it_once_it_is_gone(
        cluster: Cluster, releases: Releases, nginx_class: dict[str, Any]) -> None:
    def nginx() -> dict[str, Any] | None:
        out = cluster.kubectl("get", "ingressclass", "nginx", "-o", "json", "--ignore-not-found")
        return json.loads(out) if out.strip() else None

    before = nginx()
    release = releases.install({"takeover": {"ingressNginx": True}})
    status = json.loads(release.helm("status", release.name, "-n", release.namespace, "-o", "json").stdout)
    assert "TAKEOVER" in status["info"]["notes"] and "helm uninstall ingress-nginx" in status["info"]["notes"]
    after = nginx()
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"], "ingress-nginx's class changed"
    assert after["metadata"]["annotations"]["meta.helm.sh/release-name"] == "ingress-nginx"
    args = containers(release.get("deployment"))["agent"]["args"]
    assert "--ingress-class-name=nginx" in args and "--no-election" in args

    # helm uninstall ingress-nginx: its class goes. The next upgrade of kroute makes it, and keeps it.
    cluster.kubectl("delete", "ingressclass", "nginx")
    release.upgrade({"takeover": {"ingressNginx": True, "updateStatus": True}})
    made = nginx()
    assert made is not None and made["spec"]["controller"] == INGRESS_NGINX
    annotations = made["metadata"]["annotations"]
    assert annotations["meta.helm.sh/release-name"] == release.name and annotations["helm.sh/resource-policy"] == "keep"
    assert "--no-election" not in containers(release.get("deployment"))["agent"]["args"]
    release.upgrade({"controller": {"logLevel": "debug"}})
    assert nginx()["metadata"]["uid"] == made["metadata"]["uid"], "the release's own class is kept across upgrades"

    # Rollback (docs/takeover.md): kroute lets go of its class first, which stays ...
    release.upgrade({"takeover": {"ingressClass": {"create": False}}})
    assert nginx()["metadata"]["uid"] == made["metadata"]["uid"]
    # ... then ingress-nginx's comes back, and kroute's upgrades and uninstall leave it alone.
    cluster.kubectl("delete", "ingressclass", "nginx")
    cluster.apply(nginx_class)
    theirs = nginx()
    release.upgrade({"takeover": {"ingressClass": {"create": True}}})
    release.uninstall()
    assert nginx()["metadata"]["resourceVersion"] == theirs["metadata"]["resourceVersion"]


def test_chart_uninstall_keeps_the_class_it_made(cluster: Cluster, releases: Releases) -> None:
    cluster.kubectl("delete", "ingressclass", "nginx", "--ignore-not-found")
    try:
        release = releases.install({"takeover": {"ingressNginx": True}})
        made = json.loads(cluster.kubectl("get", "ingressclass", "nginx", "-o", "json"))
        assert made["metadata"]["annotations"]["meta.helm.sh/release-name"] == release.name
        release.uninstall()
        kept = json.loads(cluster.kubectl("get", "ingressclass", "nginx", "-o", "json"))
        assert kept["metadata"]["uid"] == made["metadata"]["uid"], "Ingresses still name it"
    finally:
        cluster.kubectl("delete", "ingressclass", "nginx", "--ignore-not-found", check=False)
