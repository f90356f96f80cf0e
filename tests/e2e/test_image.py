"""The kroute image, run with docker exactly as the chart's pod spec runs it, against the real API server.

The test installs the chart, reads the Deployment the API server stored, and starts its pod with docker:
a network namespace shared by the containers (as in a pod), each container with its command, args, env,
user, read-only root filesystem, capabilities and volume mounts; emptyDirs as tmpfs volumes (0777, like the
kubelet's); the projected service-account volume as a directory holding a TokenRequest token, the cluster's
CA and the namespace; KUBERNETES_SERVICE_HOST/PORT as the kubelet sets them. Backends are containers on a
docker network the test creates. Then it routes traffic and changes Ingresses while nginx keeps running.
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any

from agent_fixtures import wait_for
from chart_fixtures import (ROOT, Docker, Relay, Releases, containers_of_test, docker, helm,  # noqa: F401
                            image, releases, run)
from kube import Cluster

ECHO_CONF = ROOT / "tests" / "image" / "echo-nginx.conf"
# The server certificate names this host; the pod resolves it to the relay (see Relay).
API_HOST = "kubernetes.default.svc"


def start_pod(pod: dict[str, Any], *, name: str, namespace: str, image: str, box: Docker, network: str,
              api_address: str, api_port: int, service_account_dir: Path,
              config_maps: dict[str, dict[str, str]], volume_dir: Path) -> dict[str, str]:
    """Starts the pod spec's containers with docker; returns container name by container. config_maps: the
    data of the ConfigMaps the pod mounts, by name (written under volume_dir, as the kubelet would)."""
    spec = pod["spec"]
    pod_context = spec.get("securityContext", {})
    # The pod's network namespace, held by a container that only sleeps (the kubelet's pause container).
    sandbox = box.run(f"{name}-sandbox", "--network", network, "--hostname", name,
                      "--add-host", f"{API_HOST}:{api_address}", "--user", "65534:65534", "--read-only",
                      "--cap-drop", "ALL", "--entrypoint", "sleep", image, "infinity")
    volumes: dict[str, tuple[str, bool]] = {}  # name -> (docker volume or host dir, is a host dir)
    for volume in spec["volumes"]:
        if "emptyDir" in volume:
            size = volume["emptyDir"].get("sizeLimit", "64Mi").replace("Mi", "m").replace("Gi", "g")
            volumes[volume["name"]] = (box.tmpfs_volume(f"{name}-{volume['name']}", size,
                                                        pod_context.get("fsGroup")), False)
        elif "projected" in volume:
            sources = volume["projected"]["sources"]
            assert any("serviceAccountToken" in s for s in sources), volume
            volumes[volume["name"]] = (str(service_account_dir), True)
        elif "configMap" in volume:
            files = volume_dir / volume["name"]
            files.mkdir(parents=True)
            for key, text in config_maps[volume["configMap"]["name"]].items():
                (files / key).write_text(text)
                (files / key).chmod(volume["configMap"].get("defaultMode", 0o644))
            files.chmod(0o755)
            volumes[volume["name"]] = (str(files), True)
        else:
            raise AssertionError(f"the test does not know how to provide volume {volume}")
    started = {}
    fields = {"metadata.name": name, "metadata.namespace": namespace}
    for container in spec["containers"]:
        context = {**pod_context, **container.get("securityContext", {})}
        args = ["--network", f"container:{sandbox}",
                "--user", f"{context['runAsUser']}:{context.get('runAsGroup', 0)}",
                "--group-add", str(pod_context.get("fsGroup", context.get("runAsGroup", 0))),
                "-e", f"KUBERNETES_SERVICE_HOST={API_HOST}", "-e", f"KUBERNETES_SERVICE_PORT={api_port}"]
        assert context["runAsNonRoot"] and context["runAsUser"] != 0
        if context.get("readOnlyRootFilesystem"):
            args.append("--read-only")
        if context.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        capabilities = context.get("capabilities", {})
        for cap in capabilities.get("drop", []):
            args += ["--cap-drop", cap]
        for cap in capabilities.get("add", []):
            args += ["--cap-add", cap]
        for env in container.get("env", []):
            value = env["value"] if "value" in env else fields[env["valueFrom"]["fieldRef"]["fieldPath"]]
            args += ["-e", f"{env['name']}={value}"]
        for mount in container.get("volumeMounts", []):
            source, host_dir = volumes[mount["name"]]
            options = "ro" if mount.get("readOnly") else "rw"
            args += ["-v", f"{source}:{mount['mountPath']}:{options}"]
        command = container.get("command", [])
        if command:
            args += ["--entrypoint", command[0]]
        started[container["name"]] = box.run(f"{name}-{container['name']}", *args, container["image"],
                                              *command[1:], *container.get("args", []))
    started["sandbox"] = sandbox
    return started


def get(address: str, port: int, path: str = "/", host: str | None = None) -> tuple[int, str]:
    conn = http.client.HTTPConnection(address, port, timeout=5)
    try:
        conn.request("GET", path, headers={"Host": host} if host else {})
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    except OSError as error:
        return 0, str(error)
    finally:
        conn.close()


def app_objects(ns: str, name: str, address: str) -> list[dict[str, Any]]:
    """A Service and its EndpointSlice with one backend container's address."""
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
         "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": f"{name}-1", "namespace": ns, "labels": {"kubernetes.io/service-name": name}},
         "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
         "endpoints": [{"addresses": [address], "conditions": {"ready": True}}]},
    ]


def ingress(ns: str, name: str, cls: str, rules: dict[str, str]) -> dict[str, Any]:
    """rules: host -> service (path /, port http)."""
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name, "namespace": ns},
            "spec": {"ingressClassName": cls, "rules": [
                {"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
                    "service": {"name": service, "port": {"name": "http"}}}}]}}
                for host, service in rules.items()]}}


def self_signed(host: str, workdir: Path) -> tuple[bytes, bytes]:
    """A certificate and key for host (PEM)."""
    key, cert = workdir / f"{host}.key", workdir / f"{host}.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", f"/CN={host}", "-addext", f"subjectAltName=DNS:{host}",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=30)
    return cert.read_bytes(), key.read_bytes()


def https_get(address: str, host: str, ca_pem: bytes) -> tuple[int, str]:
    """GET / over TLS with SNI host, trusting only ca_pem: succeeds only with the host's own certificate."""
    context = ssl.create_default_context(cadata=ca_pem.decode())
    data = b""
    try:
        with socket.create_connection((address, 443), timeout=5) as raw, \
                context.wrap_socket(raw, server_hostname=host) as tls:
            tls.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            while chunk := tls.recv(65536):
                data += chunk
    except (OSError, ssl.SSLError) as error:
        return 0, str(error)
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode(errors="replace")


def test_image_labels_user_and_size(image: str) -> None:
    config = json.loads(docker("image", "inspect", image))[0]
    labels = config["Config"]["Labels"]
    assert labels["org.opencontainers.image.version"] == image.rsplit(":", 1)[1]
    assert labels["org.opencontainers.image.source"].startswith("https://")
    assert config["Config"]["User"] == "101:101"
    assert config["Size"] < 150 * 1000 * 1000, f"image is {config['Size'] / 1e6:.0f} MB"
    versions = docker("run", "--rm", "--entrypoint", "sh", image, "-c",
                      "nginx -v 2>&1; cat /usr/share/kroute/nginx-build-version; kroute-agent --help | head -1; "
                      "ldd /usr/local/bin/kroute-agent /usr/lib/nginx/modules/ngx_http_kroute_module.so")
    assert "not found" not in versions, versions
    assert "nginx/1.22.1" in versions and "1.22.1" in versions.splitlines()[1]


def test_pod_from_the_chart_routes_traffic_and_follows_ingress_changes(
        cluster: Cluster, releases: Releases, image: str, containers_of_test: Docker, tmp_path: Path) -> None:
    repository, tag = image.rsplit(":", 1)
    release = releases.install({"image": {"repository": repository, "tag": tag, "pullPolicy": "Never"}})
    ns = release.namespace
    deployment = release.get("deployment")
    pod = deployment["spec"]["template"]
    assert {c["image"] for c in pod["spec"]["containers"]} == {image}

    box = containers_of_test
    network = box.network("net")
    network_name = network["Name"]
    config = network["IPAM"]["Config"][0]
    gateway = config.get("Gateway") or str(next(ipaddress.ip_network(config["Subnet"]).hosts()))

    relay = Relay(gateway, cluster.apiserver_port)
    relay.start()
    try:
        # What the kubelet would mount: a token for the chart's service account, the CA, the namespace.
        sa_dir = tmp_path / "serviceaccount"
        sa_dir.mkdir()
        (sa_dir / "token").write_text(cluster.token(ns, release.fullname))
        (sa_dir / "ca.crt").write_bytes(cluster.ca_file.read_bytes())
        (sa_dir / "namespace").write_text(ns)
        sa_dir.chmod(0o755)
        for f in sa_dir.iterdir():
            f.chmod(0o444)

        # Two backends on the test's network, each answering with its own name.
        backends = {}
        for which in ("blue", "green"):
            container = box.run(which, "--network", network_name, "--hostname", which, "--read-only",
                                "--tmpfs", "/tmp:uid=101,gid=101", "--cap-drop", "ALL",
                                # The image's nginx carries NET_BIND_SERVICE as a file capability: it must
                                # be in the bounding set for the binary to execute at all.
                                "--cap-add", "NET_BIND_SERVICE",
                                "-v", f"{ECHO_CONF}:/etc/kroute-echo.conf:ro",
                                image, "nginx", "-c", "/etc/kroute-echo.conf", "-g", "daemon off;")
            backends[which] = box.ip(container, network_name)
        cluster.apply(*app_objects(ns, "blue", backends["blue"]), *app_objects(ns, "green", backends["green"]))
        cluster.apply(ingress(ns, "shop", release.ingress_class, {"shop.test": "blue"}))

        pod_name = f"{release.fullname}-7d9f8-abcde"
        # The ConfigMaps the pod mounts (the chart's nginx include files), as the API server holds them.
        config_maps = {}
        for volume in pod["spec"]["volumes"]:
            if "configMap" in volume:
                name = volume["configMap"]["name"]
                config_map = release.get("configmap", name)
                assert config_map is not None, f"the chart made no ConfigMap {name}"
                config_maps[name] = config_map.get("data", {})
        started = start_pod(pod, name=pod_name, namespace=ns, image=image, box=box, network=network_name,
                            api_address=gateway, api_port=relay.port, service_account_dir=sa_dir,
                            config_maps=config_maps, volume_dir=tmp_path / "volumes")
        pod_ip = box.ip(started["sandbox"], network_name)
        agent_port = next(p["containerPort"] for c in pod["spec"]["containers"] if c["name"] == "agent"
                          for p in c["ports"])

        wait_for("the agent to be ready", lambda: get(pod_ip, agent_port, "/readyz")[0] == 200, timeout=30)
        wait_for("nginx to be healthy", lambda: get(pod_ip, 10246, "/healthz")[0] == 200, timeout=30)
        wait_for("shop.test to reach blue", lambda: "backend=blue" in get(pod_ip, 80, "/", "shop.test")[1],
                 timeout=20)
        status, body = get(pod_ip, 80, "/cart?id=1", "shop.test")
        assert status == 200 and "host=shop.test uri=/cart?id=1" in body
        assert get(pod_ip, 80, "/", "unknown.test")[0] == 404

        # Debugging the way docs/install.md says: kroute-table inside the pod reads the table nginx reads.
        lookup = json.loads(docker("exec", started["agent"], "kroute-table", "lookup", "--json", "shop.test", "/"))
        assert [e["address"] for e in lookup["backend"]["endpoints"]] == [f"{backends['blue']}:8080"]
        nginx_pids = docker("exec", started["nginx"], "sh", "-c", "cat /run/nginx.pid; ls /proc | sort -n")

        # TLS from a Secret: the host's own certificate by SNI, and plain HTTP redirected to HTTPS.
        cert, key = self_signed("secure.test", tmp_path)
        cluster.apply({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                       "metadata": {"name": "secure-tls", "namespace": ns},
                       "data": {"tls.crt": base64.b64encode(cert).decode(), "tls.key": base64.b64encode(key).decode()}})
        secure = ingress(ns, "secure", release.ingress_class, {"secure.test": "blue"})
        secure["spec"]["tls"] = [{"hosts": ["secure.test"], "secretName": "secure-tls"}]
        cluster.apply(secure)
        wait_for("secure.test over TLS with its certificate",
                 lambda: "backend=blue" in https_get(pod_ip, "secure.test", cert)[1], timeout=20)
        assert get(pod_ip, 80, "/", "secure.test")[0] == 308

        # Live changes: move shop.test to green, add a host; nginx is never reloaded or restarted.
        cluster.apply(ingress(ns, "shop", release.ingress_class, {"shop.test": "green", "new.test": "blue"}))
        wait_for("shop.test to move to green", lambda: "backend=green" in get(pod_ip, 80, "/", "shop.test")[1],
                 timeout=20)
        wait_for("new.test to route to blue", lambda: "backend=blue" in get(pod_ip, 80, "/", "new.test")[1],
                 timeout=20)
        for _ in range(20):
            assert "backend=green" in get(pod_ip, 80, "/", "shop.test")[1]
        # A scaled backend: green's EndpointSlice now lists blue's address too.
        slice_ = app_objects(ns, "green", backends["green"])[1]
        slice_["endpoints"].append({"addresses": [backends["blue"]], "conditions": {"ready": True}})
        cluster.apply(slice_)
        wait_for("green's Service to balance over both backends",
                 lambda: {get(pod_ip, 80, "/", "shop.test")[1].split()[0] for _ in range(6)} ==
                 {"backend=blue", "backend=green"}, timeout=20)
        cluster.kubectl("delete", "ingress", "shop", "-n", ns)
        wait_for("shop.test to be gone", lambda: get(pod_ip, 80, "/", "shop.test")[0] == 404, timeout=20)
        assert docker("exec", started["nginx"], "sh", "-c", "cat /run/nginx.pid; ls /proc | sort -n") \
            .split()[0] == nginx_pids.split()[0], "the nginx master changed"
        assert docker("inspect", "-f", "{{.RestartCount}} {{.State.Running}}", started["nginx"]) == "0 true"

        # The elected agent reported itself and no Ingress problem made it stop.
        lease = cluster.kubectl("get", "lease", release.fullname, "-n", ns, "-o", "json")
        assert json.loads(lease)["spec"]["holderIdentity"] == pod_name
        logs = run(["docker", "logs", started["agent"]], check=False)
        assert "forbidden" not in (logs.stdout + logs.stderr).lower(), logs.stderr[-3000:]
    finally:
        relay.stop()

