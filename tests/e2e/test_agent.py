"""kroute-agent against a real control plane: every watched kind changes the table, the agent survives
an API server restart and an etcd compaction, runs on the chart's RBAC rules alone, and exactly one of
two agents writes status and Events, the other taking over when it dies."""

from __future__ import annotations

import grp
import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from agent_fixtures import (AGENT, Agent, Agents, agents, dump_table, endpoints, etcd_compact, hosts,  # noqa: F401
                            lookup, rbac_identity, self_signed_tls, tls_secret_of, wait_for)
from kube import Cluster


# ---- objects ------------------------------------------------------------------------------------


def ingress_class(name: str, controller: str = "kroute.dev/ingress-controller") -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": name},
            "spec": {"controller": controller}}


def service(ns: str, name: str, ports: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"ports": ports}}


def endpoint_slice(ns: str, name: str, service_name: str, ports: list[dict[str, Any]],
                   addresses: list[str], ready: bool = True) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": ns, "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": "IPv4", "ports": ports,
            "endpoints": [{"addresses": [a], "conditions": {"ready": ready}} for a in addresses]}


def ingress(ns: str, name: str, class_name: str | None, host: str, paths: list[tuple[str, str, Any]],
            tls_secret: str | None = None) -> dict[str, Any]:
    """paths: (path, service, port number or name)."""
    spec: dict[str, Any] = {"rules": [{"host": host, "http": {"paths": [
        {"path": p, "pathType": "Prefix", "backend": {"service": {"name": s, "port":
            {"number": port} if isinstance(port, int) else {"name": port}}}} for p, s, port in paths]}}]}
    if class_name:
        spec["ingressClassName"] = class_name
    if tls_secret:
        spec["tls"] = [{"hosts": [host], "secretName": tls_secret}]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name, "namespace": ns},
            "spec": spec}


def tls_secret(ns: str, name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns},
            "type": "kubernetes.io/tls", "data": data}


def app(ns: str, name: str, addresses: list[str], cls: str, host: str) -> list[dict[str, Any]]:
    """A Service with a named port, its EndpointSlice and an Ingress for host."""
    return [service(ns, name, [{"name": "http", "port": 80, "targetPort": 8080}]),
            endpoint_slice(ns, f"{name}-1", name, [{"name": "http", "port": 8080, "protocol": "TCP"}], addresses),
            ingress(ns, name, cls, host, [("/", name, "http")])]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def events_for(cluster: Cluster, ns: str, name: str) -> list[dict[str, Any]]:
    items = json.loads(cluster.kubectl("get", "events", "-n", ns, "-o", "json"))["items"]
    return [e for e in items if e["involvedObject"]["name"] == name and e["involvedObject"]["kind"] == "Ingress"]


def ingress_status(cluster: Cluster, ns: str, name: str) -> list[dict[str, Any]]:
    obj = json.loads(cluster.kubectl("get", "ingress", "-n", ns, name, "-o", "json"))
    return obj.get("status", {}).get("loadBalancer", {}).get("ingress", []) or []


# ---- every kind: create, update, delete -----------------------------------------------------------


def test_ingress_service_and_endpointslice_changes_reach_the_table(cluster: Cluster, agents: Agents) -> None:
    ns = cluster.new_namespace("agent")
    cls = unique("kroute")
    host = f"{ns}.example.com"
    cluster.apply(ingress_class(cls), *app(ns, "web", ["10.1.0.1", "10.1.0.2"], cls, host))
    agent = agents.start("--no-election")
    table = agent.table_dir
    assert endpoints(table, host) == ["10.1.0.1:8080", "10.1.0.2:8080"]

    # Ingress: update (a second path, to another Service port by number), then delete.
    cluster.apply(service(ns, "api", [{"name": "grpc", "port": 9000}]),
                  endpoint_slice(ns, "api-1", "api", [{"name": "grpc", "port": 9090, "protocol": "TCP"}], ["10.1.1.1"]),
                  ingress(ns, "web", cls, host, [("/", "web", "http"), ("/api", "api", 9000)]))
    wait_for("the /api rule", lambda: endpoints(table, host, "/api/v1") == ["10.1.1.1:9090"])
    assert endpoints(table, host, "/") == ["10.1.0.1:8080", "10.1.0.2:8080"]

    # EndpointSlice: update (one endpoint gone, one not ready, one new), a second slice, delete.
    cluster.apply(endpoint_slice(ns, "web-1", "web", [{"name": "http", "port": 8080, "protocol": "TCP"}],
                                 ["10.1.0.2", "10.1.0.3"]))
    wait_for("the updated slice", lambda: endpoints(table, host) == ["10.1.0.2:8080", "10.1.0.3:8080"])
    cluster.apply(endpoint_slice(ns, "web-2", "web", [{"name": "http", "port": 8080, "protocol": "TCP"}],
                                 ["10.1.0.9"], ready=False))
    wait_for("the not-ready endpoint", lambda: len(lookup(table, host)["backend"]["endpoints"]) == 3)
    assert endpoints(table, host) == ["10.1.0.2:8080", "10.1.0.3:8080"]
    cluster.kubectl("delete", "endpointslice", "-n", ns, "web-1")
    wait_for("no ready endpoint", lambda: endpoints(table, host) == [])

    # Service: the port changes name, so the Ingress's port name no longer resolves; then it comes back;
    # then the Service goes.
    cluster.apply(service(ns, "web", [{"name": "web", "port": 80}]))
    wait_for("unknown port", lambda: lookup(table, host)["backend"]["endpoints"] == [])
    cluster.apply(service(ns, "web", [{"name": "http", "port": 80}]),
                  endpoint_slice(ns, "web-1", "web", [{"name": "http", "port": 8080, "protocol": "TCP"}], ["10.1.0.4"]))
    wait_for("the port again", lambda: endpoints(table, host) == ["10.1.0.4:8080"])
    cluster.kubectl("delete", "service", "-n", ns, "web")
    wait_for("no Service", lambda: endpoints(table, host) == [])

    cluster.kubectl("delete", "ingress", "-n", ns, "web")
    wait_for("the host gone", lambda: lookup(table, host) is None)
    assert agent.metric("kroute_agent_publishes_total") >= 8
    assert "level=error" not in agent.log()


def test_ingressclass_changes_select_the_ingresses(cluster: Cluster, agents: Agents) -> None:
    ns = cluster.new_namespace("agent")
    cls = unique("kroute")
    host = f"{ns}.example.com"
    cluster.apply(*app(ns, "web", ["10.2.0.1"], cls, host))
    agent = agents.start("--no-election")
    table = agent.table_dir
    assert lookup(table, host) is None, "an Ingress whose class does not exist is not ours"

    cluster.apply(ingress_class(cls))
    wait_for("the class created", lambda: endpoints(table, host) == ["10.2.0.1:8080"])
    cluster.kubectl("delete", "ingressclass", cls)
    wait_for("the class deleted", lambda: lookup(table, host) is None)
    # spec.controller is immutable: another controller's class of that name is a new object.
    cluster.apply(ingress_class(cls, controller="example.com/other"))
    time.sleep(0.5)
    assert lookup(table, host) is None
    cluster.kubectl("delete", "ingressclass", cls)
    cluster.apply(ingress_class(cls))
    wait_for("the class back", lambda: lookup(table, host) is not None)

    # The legacy annotation, and an update of the class that makes it the default.
    legacy = ingress(ns, "legacy", None, f"legacy.{host}", [("/", "web", 80)])
    legacy["metadata"]["annotations"] = {"kubernetes.io/ingress.class": "kroute"}
    classless = ingress(ns, "classless", None, f"classless.{host}", [("/", "web", 80)])
    cluster.apply(legacy, classless)
    wait_for("the annotated Ingress", lambda: lookup(table, f"legacy.{host}") is not None)
    assert lookup(table, f"classless.{host}") is None
    default = ingress_class(cls)
    default["metadata"]["annotations"] = {"ingressclass.kubernetes.io/is-default-class": "true"}
    cluster.apply(default)
    try:
        wait_for("the class-less Ingress under the default class", lambda: lookup(table, f"classless.{host}") is not None)
    finally:
        cluster.kubectl("delete", "ingressclass", cls)


def tls_of(table: Path, host: str) -> dict[str, Any]:
    """The host's TLS entry in `kroute-table dump --json`: secret, certificate (bool), fingerprint."""
    return hosts(table).get(host, {}).get("tls", {})


def test_tls_secret_changes_reach_the_table(cluster: Cluster, agents: Agents, tmp_path: Path) -> None:
    ns = cluster.new_namespace("agent")
    cls = unique("kroute")
    host = f"{ns}.example.com"
    objects = app(ns, "web", ["10.3.0.1"], cls, host)
    objects[2] = ingress(ns, "web", cls, host, [("/", "web", "http")], tls_secret="web-tls")
    cluster.apply(ingress_class(cls), *objects)
    agent = agents.start("--election-namespace", ns, "--retry-period", "1", "--lease-duration", "4",
                         "--renew-deadline", "3", "--table-group", "www-data")
    table = agent.table_dir
    # No Secret yet: the host keeps a TLS entry without a certificate (nginx serves the default one) and
    # its rules still redirect plain HTTP.
    assert tls_secret_of(table, host) == f"{ns}/web-tls"
    assert tls_of(table, host)["certificate"] is False
    assert lookup(table, host)["sslRedirect"] is True
    wait_for("a TLSSecretNotFound Event",
             lambda: [e for e in events_for(cluster, ns, "web") if e["reason"] == "TLSSecretNotFound"])

    good = self_signed_tls(tmp_path, host)
    cluster.apply(tls_secret(ns, "web-tls", good))
    wait_for("the certificate", lambda: tls_of(table, host).get("certificate") is True)
    first = tls_of(table, host)["fingerprint"]

    (tmp_path / "rotated").mkdir()
    rotated = self_signed_tls(tmp_path / "rotated", host)
    cluster.apply(tls_secret(ns, "web-tls", rotated))
    wait_for("the rotated certificate", lambda: tls_of(table, host).get("fingerprint") not in (None, first))
    assert tls_of(table, host)["certificate"] is True

    # Corrupted: a key that does not match. The entry stays, without a certificate, and the Ingress gets
    # a Warning Event that names the problem and never the key.
    other = self_signed_tls(tmp_path, "other.example.com")
    cluster.apply(tls_secret(ns, "web-tls", {"tls.crt": rotated["tls.crt"], "tls.key": other["tls.key"]}))
    wait_for("a key that does not match", lambda: tls_of(table, host).get("certificate") is False)
    assert tls_secret_of(table, host) == f"{ns}/web-tls"
    invalid = wait_for("a TLSSecretInvalid Event",
                       lambda: [e for e in events_for(cluster, ns, "web") if e["reason"] == "TLSSecretInvalid"])
    assert invalid[0]["type"] == "Warning"
    assert "does not match" in invalid[0]["message"]
    assert "PRIVATE KEY" not in json.dumps(invalid) and "PRIVATE KEY" not in agent.log()
    assert endpoints(table, host) == ["10.3.0.1:8080"]  # routing is unaffected

    cluster.apply(tls_secret(ns, "web-tls", good))
    wait_for("the first certificate again", lambda: tls_of(table, host).get("fingerprint") == first)
    cluster.kubectl("delete", "secret", "-n", ns, "web-tls")
    wait_for("the TLS Secret deleted", lambda: tls_of(table, host).get("certificate") is False)

    # Snapshots hold private keys: readable by the owner and the configured group only.
    snapshot = table / f"table.{int(agent.metric('kroute_agent_table_generation'))}"
    info = snapshot.stat()
    assert oct(info.st_mode & 0o777) == oct(0o640)
    assert info.st_gid == grp.getgrnam("www-data").gr_gid

    # Other Secrets are never seen: the watch asks only for type kubernetes.io/tls. (Counted against what
    # the agent holds now: other tests sharing the cluster may leave TLS Secrets in their namespaces.)
    held = agent.metric("kroute_agent_objects", resource="secret")
    cluster.kubectl("create", "secret", "generic", "-n", ns, "plain", "--from-literal=a=b")
    time.sleep(0.5)
    assert agent.metric("kroute_agent_objects", resource="secret") == held


def test_ssl_redirect_annotations_and_the_default_certificate(cluster: Cluster, agents: Agents,
                                                              tmp_path: Path) -> None:
    ns = cluster.new_namespace("agent")
    cls = unique("kroute")
    host = f"{ns}.example.com"
    objects = app(ns, "web", ["10.3.1.1"], cls, host)
    objects[2] = ingress(ns, "web", cls, host, [("/", "web", "http")], tls_secret="web-tls")
    opted_out = ingress(ns, "plain", cls, f"plain.{host}", [("/", "web", "http")], tls_secret="web-tls")
    opted_out["metadata"]["annotations"] = {"nginx.ingress.kubernetes.io/ssl-redirect": "false"}
    cluster.apply(ingress_class(cls), *objects, opted_out, tls_secret(ns, "fallback", self_signed_tls(tmp_path, "fallback")))
    agent = agents.start("--no-election", "--default-ssl-certificate", f"{ns}/fallback")
    table = agent.table_dir
    assert lookup(table, host)["sslRedirect"] is True
    assert lookup(table, f"plain.{host}")["sslRedirect"] is False
    default = dump_table(table)["defaultCertificate"]
    assert default["certificate"] is True

    # kroute's own annotation wins over ingress-nginx's.
    opted_out["metadata"]["annotations"]["kroute.dev/ssl-redirect"] = "true"
    cluster.apply(opted_out)
    wait_for("the redirect back on", lambda: (lookup(table, f"plain.{host}") or {}).get("sslRedirect") is True)

    # Without a usable default Secret the table has no default certificate: nginx serves its own.
    cluster.kubectl("delete", "secret", "-n", ns, "fallback")
    wait_for("no default certificate", lambda: "defaultCertificate" not in (dump_table(table) or {"defaultCertificate": 1}))
    assert "no default certificate" in agent.log()


def test_unchanged_tables_are_not_published_and_bursts_are_coalesced(cluster: Cluster, agents: Agents) -> None:
    ns = cluster.new_namespace("agent")
    cls = unique("kroute")
    cluster.apply(ingress_class(cls))
    agent = agents.start("--no-election", "--coalesce-ms", "300")
    before = agent.metric("kroute_agent_publishes_total")
    compiles_before = before + agent.metric("kroute_agent_publishes_unchanged_total")
    timed_before = agent.metric("kroute_agent_change_to_publish_seconds_count")
    # A Service nobody routes to: compiled, equal, not published.
    cluster.apply(service(ns, "unused", [{"port": 80}]))
    wait_for("a compile", lambda: agent.metric("kroute_agent_publishes_unchanged_total") >= 1)
    assert agent.metric("kroute_agent_publishes_total") == before
    # Ten Ingresses in one apply: one publish (or two, if the burst straddles the window).
    cluster.apply(*[ingress(ns, f"i{i}", cls, f"i{i}.{ns}.example.com", [("/", "unused", 80)]) for i in range(10)])
    wait_for("all ten", lambda: len([h for h in hosts(agent.table_dir) if h.endswith(f".{ns}.example.com")]) == 10)
    time.sleep(0.5)
    assert agent.metric("kroute_agent_publishes_total") - before <= 2
    # Each compile after a change is timed from that change's first event.
    compiles = agent.metric("kroute_agent_publishes_total") + agent.metric("kroute_agent_publishes_unchanged_total")
    assert agent.metric("kroute_agent_change_to_publish_seconds_count") - timed_before == compiles - compiles_before
    # One more Ingress on its own: the compile patches the last table instead of compiling every Ingress.
    patched = agent.metric("kroute_agent_compiles_patched_total")
    cluster.apply(ingress(ns, "i10", cls, f"i10.{ns}.example.com", [("/", "unused", 80)]))
    wait_for("the eleventh", lambda: len([h for h in hosts(agent.table_dir) if h.endswith(f".{ns}.example.com")]) == 11)
    assert agent.metric("kroute_agent_compiles_patched_total") == patched + 1


def test_watch_namespace_and_publish_service(cluster: Cluster, agents: Agents) -> None:
    ns, other = cluster.new_namespace("agent"), cluster.new_namespace("agent")
    cls = unique("kroute")
    cluster.apply(ingress_class(cls), *app(ns, "web", ["10.8.0.1"], cls, f"{ns}.example.com"),
                  *app(other, "web", ["10.8.0.2"], cls, f"{other}.example.com"),
                  {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kroute", "namespace": ns},
                   "spec": {"ports": [{"port": 443}]}})
    cluster_ip = json.loads(cluster.kubectl("get", "service", "-n", ns, "kroute", "-o", "json"))["spec"]["clusterIP"]
    agent = agents.start("--watch-namespace", ns, "--publish-service", f"{ns}/kroute", "--election-namespace", ns,
                         "--retry-period", "1", "--lease-duration", "4", "--renew-deadline", "3")
    assert endpoints(agent.table_dir, f"{ns}.example.com") == ["10.8.0.1:8080"]
    assert lookup(agent.table_dir, f"{other}.example.com") is None
    assert agent.metric("kroute_agent_objects", resource="ingress") == 1
    wait_for("status from the Service's cluster IP", lambda: ingress_status(cluster, ns, "web") == [{"ip": cluster_ip}])
    assert ingress_status(cluster, other, "web") == []


# ---- API server restart, etcd compaction ----------------------------------------------------------


def test_apiserver_restart_resumes_without_a_relist_storm(cluster: Cluster, agents: Agents) -> None:
    ns = cluster.new_namespace("agent")
    cls = unique("kroute")
    host = f"{ns}.example.com"
    cluster.apply(ingress_class(cls), *app(ns, "web", ["10.4.0.1"], cls, host))
    agent = agents.start("--no-election")
    relists_before = agent.per_resource("kroute_agent_relists_total")

    cluster.restart()
    wait_for("watches restarted", lambda: sum(agent.per_resource("kroute_agent_watch_restarts_total").values()) >= 5,
             timeout=30)
    cluster.apply(endpoint_slice(ns, "web-1", "web", [{"name": "http", "port": 8080, "protocol": "TCP"}],
                                 ["10.4.0.2"]))
    cluster.apply(ingress(ns, "second", cls, f"second.{host}", [("/", "web", "http")]))
    wait_for("changes after the restart", lambda: endpoints(agent.table_dir, f"second.{host}") == ["10.4.0.2:8080"],
             timeout=30)
    assert endpoints(agent.table_dir, host) == ["10.4.0.2:8080"]
    # Each watch may be told its resourceVersion is too old for the new watch cache: one relist per
    # resource at most, never a loop of them.
    relists = agent.per_resource("kroute_agent_relists_total")
    for resource, count in relists.items():
        assert count - relists_before[resource] <= 1, relists
    assert agent.metric("kroute_agent_ready") == 1


def test_etcd_compaction_past_the_agents_resource_version_relists(cluster: Cluster, agents: Agents) -> None:
    ns = cluster.new_namespace("agent")
    cls = unique("kroute")
    host = f"{ns}.example.com"
    cluster.apply(ingress_class(cls), *app(ns, "web", ["10.5.0.1"], cls, host))
    agent = agents.start("--no-election")
    relists_before = sum(agent.per_resource("kroute_agent_relists_total").values())

    # Frozen, the agent misses everything below; etcd then forgets that history, and the new API
    # server's watch cache starts at the current revision.
    agent.process.send_signal(signal.SIGSTOP)
    try:
        cluster.apply(endpoint_slice(ns, "web-1", "web", [{"name": "http", "port": 8080, "protocol": "TCP"}],
                                     ["10.5.0.2"]))
        cluster.apply(ingress(ns, "while-stopped", cls, f"stopped.{host}", [("/", "web", "http")]))
        cluster.kubectl("delete", "ingress", "-n", ns, "web")
        etcd_compact(cluster)
        cluster.restart()
    finally:
        agent.process.send_signal(signal.SIGCONT)
    wait_for("a relist", lambda: sum(agent.per_resource("kroute_agent_relists_total").values()) > relists_before,
             timeout=30)
    wait_for("the right table", lambda: endpoints(agent.table_dir, f"stopped.{host}") == ["10.5.0.2:8080"], timeout=30)
    assert lookup(agent.table_dir, host) is None
    assert "resourceVersion too old" in agent.log() or "410" in agent.log()


def test_a_silent_watch_is_restarted(cluster: Cluster, agents: Agents) -> None:
    ns = cluster.new_namespace("agent")
    cls = unique("kroute")
    host = f"{ns}.example.com"
    cluster.apply(ingress_class(cls), *app(ns, "web", ["10.9.0.1"], cls, host))
    # Watches ask for 5-10 s; 2 s past that without a byte, a stream counts as dead.
    agent = agents.start("--no-election", "--watch-timeout", "5", "--watch-silence-margin", "2")
    apiserver = int((cluster.state_dir / "kube-apiserver.pid").read_text())
    os.kill(apiserver, signal.SIGSTOP)  # the connections stay open, and nothing comes through them
    # curl names the silence by what the stream was doing: streaming ("Operation too slow"), waiting for an
    # answer ("Operation timed out"), or still in the TLS handshake of a watch just started again
    # ("Timeout was reached: SSL connection timeout").
    silent = ("too slow", "Operation timed out", "Timeout was reached")
    try:
        wait_for("a restart for silence", lambda: any(text in agent.log() for text in silent), timeout=20)
    finally:
        os.kill(apiserver, signal.SIGCONT)
    cluster.apply(endpoint_slice(ns, "web-1", "web", [{"name": "http", "port": 8080, "protocol": "TCP"}],
                                 ["10.9.0.2"]))
    wait_for("watching again", lambda: endpoints(agent.table_dir, host) == ["10.9.0.2:8080"], timeout=30)
    assert sum(agent.per_resource("kroute_agent_watch_restarts_total").values()) >= 1


# ---- health, metrics ------------------------------------------------------------------------------


def test_health_readiness_and_metrics(cluster: Cluster, agents: Agents) -> None:
    agent = agents.start("--no-election")
    assert agent.get("/healthz") == (200, "ok\n")
    assert agent.get("/readyz") == (200, "ok\n")
    names = {k.split("{")[0] for k in agent.metrics()}
    for expected in ["kroute_agent_watch_restarts_total", "kroute_agent_relists_total",
                     "kroute_agent_watch_events_total", "kroute_agent_publishes_total",
                     "kroute_agent_publish_duration_seconds_bucket", "kroute_agent_change_to_publish_seconds_bucket",
                     "kroute_agent_compiles_patched_total",
                     "kroute_agent_objects", "kroute_agent_ready"]:
        assert expected in names


def test_unreachable_server_is_not_ready_and_says_why(cluster: Cluster, agents: Agents, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(cluster.kubeconfig.read_text().replace(f":{cluster.apiserver_port}", ":1"))
    agent = agents.start("--no-election", kubeconfig=kubeconfig, wait=False)
    wait_for("a logged failure", lambda: "list failed" in agent.log())
    assert agent.get("/readyz")[0] == 503
    assert agent.get("/healthz")[0] == 200
    assert "Could not connect" in agent.log() or "Couldn't connect" in agent.log()


def unreachable_kubeconfig(path: Path) -> Path:
    """A kubeconfig for a server nobody answers on: enough for an agent to start without a cluster."""
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "none",
        "clusters": [{"name": "none", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "none", "user": {"token": "x"}}],
        "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}]}))
    return path


def test_a_second_agent_on_the_same_table_directory_exits_saying_why(tmp_path: Path) -> None:
    kubeconfig = unreachable_kubeconfig(tmp_path / "kubeconfig")
    table = tmp_path / "table"
    first = Agent(None, tmp_path, ["--no-election"], None, kubeconfig, table_dir=table)  # type: ignore[arg-type]
    try:
        wait_for("the first agent listening", lambda: "health and metrics listener" in first.log())
        second = Agent(None, tmp_path, ["--no-election"], None, kubeconfig, table_dir=table)  # type: ignore[arg-type]
        assert second.process.wait(timeout=10) == 1
        second.stop()
        line = next(line for line in second.log().splitlines() if "cannot open the table directory" in line)
        assert "held by another publisher" in line and str(table) in line
        assert first.alive()
    finally:
        first.stop()


def test_bad_flags_are_refused_before_anything_starts(tmp_path: Path) -> None:
    kubeconfig = unreachable_kubeconfig(tmp_path / "kubeconfig")
    for flags, message in ((["--listen", "0.0.0.0:80x"], "--listen must be host:port"),
                           (["--listen", "0.0.0.0:70000"], "--listen must be host:port"),
                           (["--listen", ":10254"], "has no host"),
                           (["--table-mode", "0x"], "--table-mode must be octal"),
                           (["--table-group", "9999999999"], "is not a group number")):
        done = subprocess.run([str(AGENT), "--kubeconfig", str(kubeconfig), "--table-dir", str(tmp_path / "t"),
                               "--no-election", *flags], capture_output=True, text=True, timeout=10)
        assert done.returncode == 2, (flags, done.stderr)
        assert message in done.stderr, (flags, done.stderr)
    assert not (tmp_path / "t").exists()


# ---- RBAC: the chart's rules and nothing more -----------------------------------------------------


def test_runs_in_cluster_with_only_the_charts_rbac_rules(cluster: Cluster, agents: Agents, tmp_path: Path) -> None:
    ns = cluster.new_namespace("agent")
    identity = rbac_identity(cluster, ns, tmp_path)
    cls = unique("kroute")
    host = f"{ns}.example.com"
    objects = app(ns, "web", ["10.6.0.1"], cls, host)
    objects.append(ingress(ns, "broken", cls, f"broken.{host}", [("/", "missing", 80)]))
    cluster.apply(ingress_class(cls), *objects,
                  tls_secret(ns, "web-tls", self_signed_tls(tmp_path, host)))
    # "In-cluster": KUBERNETES_SERVICE_HOST/PORT and a service-account directory, no kubeconfig.
    agent = agents.start("--publish-address", "192.0.2.10", "--lease-duration", "4", "--renew-deadline", "3",
                         "--retry-period", "1", env=identity["in_cluster_env"], admin=False)
    assert "in-cluster service account" in agent.log()
    assert endpoints(agent.table_dir, host) == ["10.6.0.1:8080"]
    wait_for("status written", lambda: ingress_status(cluster, ns, "web") == [{"ip": "192.0.2.10"}])
    wait_for("a Warning Event", lambda: [e for e in events_for(cluster, ns, "broken") if e["reason"] == "ServiceNotFound"])
    lease = json.loads(cluster.kubectl("get", "lease", "-n", ns, "kroute-agent", "-o", "json"))
    assert lease["spec"]["holderIdentity"] == agent.name
    assert agent.metric("kroute_agent_status_errors_total") == 0
    log = agent.log()
    assert "forbidden" not in log.lower(), log[-3000:]

    # A token without those bindings: the agent says so clearly and is not ready.
    cluster.kubectl("create", "serviceaccount", "-n", ns, "nobody")
    token = cluster.token(ns, "nobody")
    sa_dir = identity["sa_dir"].parent / "nobody"
    sa_dir.mkdir()
    (sa_dir / "token").write_text(token)
    (sa_dir / "ca.crt").write_bytes(cluster.ca_file.read_bytes())
    env = {**identity["in_cluster_env"], "KROUTE_SERVICEACCOUNT_DIR": str(sa_dir)}
    denied = agents.start("--no-election", env=env, admin=False, wait=False)
    wait_for("a forbidden error", lambda: "HTTP 403 Forbidden" in denied.log())
    assert denied.get("/readyz")[0] == 503


# ---- leader election, status, Events --------------------------------------------------------------


def test_exactly_one_of_two_agents_writes_status_and_the_other_takes_over(cluster: Cluster, agents: Agents,
                                                                            tmp_path: Path) -> None:
    ns = cluster.new_namespace("agent")
    identity = rbac_identity(cluster, ns, tmp_path)
    cls = unique("kroute")
    host = f"{ns}.example.com"
    older = ingress(ns, "older", cls, host, [("/shared", "web", "http")])
    cluster.apply(ingress_class(cls), *app(ns, "web", ["10.7.0.1"], cls, host), older)
    time.sleep(1.1)  # creationTimestamp has a one-second resolution: "younger" must be younger
    cluster.apply(ingress(ns, "younger", cls, host, [("/shared", "web", "http")]))
    lease_duration = 4
    args = ["--publish-address", "192.0.2.20", "--lease-duration", str(lease_duration), "--renew-deadline", "3",
            "--retry-period", "1"]
    first = agents.start(*args, env=identity["in_cluster_env"], admin=False)
    second = agents.start(*args, env=identity["in_cluster_env"], admin=False)

    def leaders() -> list[Any]:
        return [a for a in (first, second) if a.alive() and a.metric("kroute_agent_leader") == 1]

    leader = wait_for("one leader", lambda: leaders()[0] if len(leaders()) == 1 else None)
    follower = second if leader is first else first
    for name in ("web", "older", "younger"):
        wait_for(f"status of {name}", lambda n=name: ingress_status(cluster, ns, n) == [{"ip": "192.0.2.20"}])
    wait_for("the shadowed rule's Event",
             lambda: [e for e in events_for(cluster, ns, "younger") if e["reason"] == "RuleShadowed"])
    assert not [e for e in events_for(cluster, ns, "older") if e["reason"] == "RuleShadowed"]
    time.sleep(2)
    assert len(leaders()) == 1
    assert follower.metric("kroute_agent_status_updates_total") == 0
    assert follower.metric("kroute_agent_events_total") == 0
    assert leader.metric("kroute_agent_status_updates_total") >= 3
    # Both publish the same routes.
    assert endpoints(follower.table_dir, host, "/shared") == endpoints(leader.table_dir, host, "/shared")

    killed_at = time.monotonic()
    leader.kill()
    wait_for("the follower takes over", lambda: follower.metric("kroute_agent_leader") == 1, timeout=lease_duration + 5)
    took = time.monotonic() - killed_at
    # client-go semantics: the follower waits out leaseDurationSeconds from the last renewal it saw,
    # and notices on its next retry (1 s).
    assert took <= lease_duration + 1 + 0.5, took
    lease = json.loads(cluster.kubectl("get", "lease", "-n", ns, "kroute-agent", "-o", "json"))
    assert lease["spec"]["holderIdentity"] == follower.name

    # The new leader writes status for new Ingresses and clears it on one it no longer owns.
    cluster.apply(ingress(ns, "later", cls, f"later.{host}", [("/", "web", "http")]))
    wait_for("status by the new leader", lambda: ingress_status(cluster, ns, "later") == [{"ip": "192.0.2.20"}])
    cluster.apply(ingress(ns, "older", "someone-else", host, [("/shared", "web", "http")]))
    wait_for("status cleared", lambda: ingress_status(cluster, ns, "older") == [])
    assert follower.metric("kroute_agent_status_updates_total") >= 2
