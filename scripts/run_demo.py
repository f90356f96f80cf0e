"""`make run`: the whole kroute stack on this machine, with the examples applied.

Starts a single-node control plane (etcd + kube-apiserver), demo pods (echo servers in network namespaces
with 10.x addresses), kroute-agent and nginx with the kroute module; applies examples/*.yaml; shows a few
requests; then waits for Ctrl-C and stops everything (processes, network namespaces, bridge, cluster).

No kubelet runs, so this script plays the pods and the EndpointSlice controller: for each Service in the
examples it starts `demo.kroute.dev/replicas` pods and writes the Service's EndpointSlice.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "e2e"), str(ROOT / "tests" / "lib")]

from kube import Cluster, free_ports, tools_bin  # noqa: E402
from netns import PodNetwork  # noqa: E402
from nginx_runner import NGINX, render_config, wait_for_port  # noqa: E402

EXAMPLES = ROOT / "examples"
NAMESPACE = "demo"
BOLD, DIM, OFF = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")

# What the demo shows and --check verifies: (host, path, the Service that must answer, or None for 404).
TRIES = [
    ("blue.example.com", "/", "blue"),
    ("green.example.com", "/", "green"),
    ("shop.example.com", "/api/v2/orders", "api"),
    ("shop.example.com", "/healthz", "api"),
    ("shop.example.com", "/healthz/", "web"),
    ("shop.example.com", "/cart", "web"),
    ("web.apps.example.com", "/", "apps"),
    ("a.b.apps.example.com", "/", "fallback"),
    ("unknown.example.org", "/anything", "fallback"),
]


def say(text: str = "") -> None:
    print(text, flush=True)


class Demo:
    def __init__(self, build: Path, port: int):
        self.build = build
        self.port = port
        self.state = build / "demo"
        self.cluster: Cluster | None = None
        self.network: PodNetwork | None = None
        self.agent: subprocess.Popen[bytes] | None = None
        self.nginx: subprocess.Popen[bytes] | None = None
        self.logs: list = []
        # nginx's workers (www-data) must read the table and their own directory.
        self.tmp = Path(tempfile.mkdtemp(prefix="kroute-demo-"))
        self.tmp.chmod(0o755)
        self.table_dir = self.tmp / "table"
        self.nginx_dir = self.tmp / "nginx"

    # ---- start ----

    def start(self) -> None:
        say(f"{BOLD}Starting the control plane{OFF} {DIM}(etcd + kube-apiserver; the first run builds them){OFF}")
        shutil.rmtree(self.state / "cluster", ignore_errors=True)
        self.state.mkdir(parents=True, exist_ok=True)
        self.cluster = Cluster(self.state / "cluster", tools_bin())
        took = self.cluster.start()
        say(f"  API server {self.cluster.server} ready in {took:.1f} s")

        objects = self.examples()
        self.cluster.kubectl("apply", "-f", str(EXAMPLES / "00-namespace.yaml"))
        self.start_pods([o for o in objects if o["kind"] == "Service"])
        self.start_agent()
        self.start_nginx()
        say(f"{BOLD}Applying examples/*.yaml{OFF}")
        for path in self.example_files():
            out = self.cluster.kubectl("apply", "-f", str(path))
            say("".join(f"  {line}\n" for line in out.splitlines()).rstrip())

    def example_files(self) -> list[Path]:
        return sorted(EXAMPLES.glob("*.yaml"))

    def examples(self) -> list[dict]:
        return [o for path in self.example_files() for o in yaml.safe_load_all(path.read_text()) if o]

    def start_pods(self, services: list[dict]) -> None:
        say(f"{BOLD}Starting demo pods{OFF} {DIM}(echo servers in network namespaces){OFF}")
        self.network = PodNetwork()
        slices = []
        for svc in services:
            name = svc["metadata"]["name"]
            replicas = int(svc["metadata"].get("annotations", {}).get("demo.kroute.dev/replicas", "1"))
            target = svc["spec"]["ports"][0].get("targetPort", svc["spec"]["ports"][0]["port"])
            addresses = []
            for i in range(replicas):
                pod = self.network.add_pod(f"{name}-{i}")
                pod.echo([target], name=f"{name}/{pod.name}")
                addresses.append(pod.address)
            say(f"  {name:9} {', '.join(f'{a}:{target}' for a in addresses)}")
            slices.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                           "metadata": {"name": f"{name}-demo", "namespace": NAMESPACE,
                                        "labels": {"kubernetes.io/service-name": name}},
                           "addressType": "IPv4",
                           "ports": [{"name": svc["spec"]["ports"][0].get("name", ""), "port": target, "protocol": "TCP"}],
                           "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses]})
        self.cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": slices}))

    def start_agent(self) -> None:
        self.agent_port = free_ports(1)[0]
        log = open(self.state / "agent.log", "wb")
        self.logs.append(log)
        env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
        self.agent = subprocess.Popen([str(self.build / "agent" / "kroute-agent"), "--kubeconfig",
                                       str(self.cluster.kubeconfig), "--table-dir", str(self.table_dir),
                                       "--listen", f"127.0.0.1:{self.agent_port}", "--election-namespace", NAMESPACE,
                                       "--publish-address", "127.0.0.1", "--identity", "demo",
                                       # The table holds private keys (mode 0640): nginx's workers read it
                                       # through their group.
                                       *(["--table-group", "www-data"] if os.geteuid() == 0 else [])],
                                      stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.wait(lambda: self.http_status(f"http://127.0.0.1:{self.agent_port}/readyz") == 200, "kroute-agent ready",
                  lambda: (self.state / "agent.log").read_text(errors="replace")[-2000:])
        say(f"{BOLD}kroute-agent{OFF} publishing into {self.table_dir} {DIM}(log: {self.state / 'agent.log'}){OFF}")

    def start_nginx(self) -> None:
        self.nginx_dir.mkdir()
        self.nginx_dir.chmod(0o755)
        self.status_port = free_ports(1)[0]
        conf = self.nginx_dir / "nginx.conf"
        text = render_config(self.nginx_dir, self.table_dir, self.port, self.status_port)
        conf.write_text(text.replace(f"listen [::1]:{self.port} default_server reuseport;", ""))
        log = open(self.nginx_dir / "stderr.log", "wb")
        self.logs.append(log)
        self.nginx = subprocess.Popen([NGINX, "-p", str(self.nginx_dir), "-c", str(conf), "-g", "daemon off;"],
                                      stdout=log, stderr=log, start_new_session=True)
        if not wait_for_port("127.0.0.1", self.port, timeout=10):
            raise RuntimeError("nginx did not start:\n" + (self.nginx_dir / "stderr.log").read_text()
                               + (self.nginx_dir / "error.log").read_text())
        say(f"{BOLD}nginx{OFF} with ngx_http_kroute_module on 127.0.0.1:{self.port} "
            f"{DIM}(status: http://127.0.0.1:{self.status_port}/kroute/status){OFF}")

    # ---- traffic ----

    @staticmethod
    def http_status(url: str) -> int:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            return 0

    def get(self, host: str, path: str) -> tuple[int, dict]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers={"Host": host})
        try:
            with urllib.request.urlopen(request, timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, {}

    def wait(self, predicate, what: str, detail=lambda: "", timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise RuntimeError(f"timed out waiting for {what}\n{detail()}")

    def check(self) -> bool:
        """Shows each try's answer; True if every one is what the examples say."""
        self.wait(lambda: self.get(*TRIES[-1][:2])[0] == 200, "the examples' routes")
        say(f"{BOLD}Requests through nginx{OFF}")
        ok = True
        for host, path, service in TRIES:
            status, echo = self.get(host, path)
            served = echo.get("name", "-")
            good = status == 200 and served.split("/")[0] == service
            ok &= good
            command = f"curl -H 'Host: {host}' localhost:{self.port}{path}"
            say(f"  {'ok ' if good else 'BAD'} {command:64} -> {status} {served}")
        return ok

    def instructions(self) -> None:
        kubectl = self.cluster.binary("kubectl")
        say(f"""
{BOLD}Try it{OFF} (in another terminal):

  export KUBECONFIG={self.cluster.kubeconfig}
  alias kubectl={kubectl}
  kubectl get ingress,service,endpointslice -n {NAMESPACE}

  curl -s -H 'Host: blue.example.com' http://127.0.0.1:{self.port}/
  curl -s -H 'Host: shop.example.com' http://127.0.0.1:{self.port}/api/v2/orders
  curl -s -H 'Host: web.apps.example.com' http://127.0.0.1:{self.port}/
  curl -s -H 'Host: nothing.example.org' http://127.0.0.1:{self.port}/      (the default backend)

  Edit examples/20-blue-green.yaml (send blue.example.com to the green Service), then
  kubectl apply -f {EXAMPLES / '20-blue-green.yaml'}
  and curl again: the change is live at once, and nginx was not reloaded
  (its master and worker PIDs: pgrep -a nginx; its log: {self.nginx_dir / 'error.log'}).

  What nginx routes by:  {self.build / 'routetable' / 'tool' / 'kroute-table'} --dir {self.table_dir} dump
  Per-worker status:     curl -s http://127.0.0.1:{self.status_port}/kroute/status

{BOLD}Ctrl-C{OFF} stops everything (nginx, the agent, the pods and their network namespaces, the cluster).
""")

    # ---- stop ----

    def stop(self) -> None:
        for process in (self.nginx, self.agent):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
        if self.network is not None:
            self.network.close()
        if self.cluster is not None:
            self.cluster.stop()
            shutil.rmtree(self.state / "cluster", ignore_errors=True)
        for log in self.logs:
            log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", type=Path, default=ROOT / "build")
    parser.add_argument("--port", type=int, default=int(os.environ.get("KROUTE_DEMO_PORT", "8080")),
                        help="where nginx listens on 127.0.0.1 (default 8080, or $KROUTE_DEMO_PORT)")
    parser.add_argument("--check", action="store_true",
                        help="exit after applying the examples and checking their routes (for tests)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        say("make run needs root: it creates network namespaces for the demo pods")
        return 1

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Ctrl-C reaches this process only (nginx and the agent run in sessions of their own, so they are
    # stopped in order below), also when a shell started us in the background with SIGINT ignored.
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    demo = Demo(args.build.resolve(), args.port)
    ok = False
    try:
        demo.start()
        ok = demo.check()
        if args.check:
            return 0 if ok else 1
        demo.instructions()
        while True:
            if demo.nginx.poll() is not None or demo.agent.poll() is not None:
                say("nginx or kroute-agent exited; stopping")
                return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        say("\nStopping.")
        return 0
    finally:
        demo.stop()
        say("Stopped: nginx, kroute-agent, demo pods, network namespaces and the control plane.")


if __name__ == "__main__":
    sys.exit(main())
