"""`make run`: the whole kroute stack on this machine, with the examples applied.

Starts a single-node cluster that runs real workloads (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and the node agent, which runs pods on the local docker engine; docs/cluster.md), applies
examples/ (Deployments of the echo server, Services with selectors, Ingresses), and serves them:

- by default through kroute-agent and nginx with the kroute module as processes on this machine, nginx on
  127.0.0.1:<port>;
- with --helm through the real kroute pod: `helm install` of charts/kroute with the local image kroute:0.1.0,
  served on the pod's address (port 80), which this machine reaches on the pods' docker network.

It shows a few requests, prints a walk-through (create a Deployment, expose it, give it an Ingress, scale it),
then waits for Ctrl-C (or SIGTERM) and stops everything. --check runs the walk-through itself and exits.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "e2e"), str(ROOT / "tests" / "lib")]

from host_kroute import HostKroute  # noqa: E402
from kube import Cluster, echo_image, tools_bin  # noqa: E402

EXAMPLES = ROOT / "examples"
CHART = ROOT / "charts" / "kroute"
NAMESPACE = "demo"
RELEASE, RELEASE_NAMESPACE = "kroute", "kroute"
IMAGE_REPOSITORY, IMAGE_TAG = "kroute", "0.1.0"
BOLD, DIM, OFF = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")

# What the demo shows and --check verifies: (host, path, the app (Deployment) whose pod must answer).
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

HELLO_HOST = "hello.example.com"
HELLO_REPLICAS = 3
# Bounds of the waits: pods start on a shared 2-core machine, the first run also imports images.
PODS_TIMEOUT = 180
ROUTES_TIMEOUT = 60


def say(text: str = "") -> None:
    print(text, flush=True)


def app_of(echo: dict) -> str:
    """The Deployment a pod belongs to, from the echo answer's pod name (<deployment>-<template hash>-<suffix>)."""
    parts = echo.get("pod", "").rsplit("-", 2)
    return parts[0] if len(parts) == 3 else ""


def wait(predicate: Callable[[], bool], what: str, timeout: float, detail: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}\n{detail()}")


class Demo:
    def __init__(self, build: Path, state: Path, port: int, helm: bool):
        self.build = build
        self.state = state
        self.port = port
        self.helm = helm
        self.cluster: Cluster | None = None
        # kroute-agent and nginx as processes here (not with --helm); set once the cluster is up.
        self.kroute: HostKroute | None = None
        self.installed = False
        # Where requests go: nginx on loopback, or the kroute pod's address (set by start_chart).
        self.address = f"127.0.0.1:{port}"
        self.agent_container = ""

    # ---- start ----

    def start(self) -> None:
        say(f"{BOLD}Starting the cluster{OFF} {DIM}(etcd, kube-apiserver, controllers, scheduler and a node "
            f"running pods on docker; the first run builds them){OFF}")
        image = echo_image()
        shutil.rmtree(self.state / "cluster", ignore_errors=True)
        self.state.mkdir(parents=True, exist_ok=True)
        self.cluster = Cluster(self.state / "cluster", tools_bin(), workloads=True)
        took = self.cluster.start()
        say(f"  API server {self.cluster.server}, node {self.cluster.node_ip}, pods in {self.cluster.pod_cidr} "
            f"(ready in {took:.1f} s; echo image {image})")

        # As a user would on any cluster that has the echo image: the files in name order, the namespace first.
        say(f"{BOLD}kubectl apply -f examples/{OFF}")
        out = self.cluster.kubectl("apply", "-f", str(EXAMPLES))
        say("".join(f"  {line}\n" for line in out.splitlines()).rstrip())
        # The pods start meanwhile.
        if self.helm:
            self.start_chart()
        else:
            self.start_kroute()
        self.wait_for_apps()

    def start_kroute(self) -> None:
        self.kroute = HostKroute(self.build, self.cluster.kubeconfig, self.state)
        self.kroute.start_agent("--election-namespace", NAMESPACE, "--publish-address", "127.0.0.1",
                                "--identity", "demo")
        say(f"{BOLD}kroute-agent{OFF} publishing into {self.kroute.table_dir} "
            f"{DIM}(log: {self.kroute.agent_log}){OFF}")
        self.kroute.start_nginx(self.port)
        say(f"{BOLD}nginx{OFF} with ngx_http_kroute_module on {self.address} "
            f"{DIM}(status: http://127.0.0.1:{self.kroute.status_port}/kroute/status){OFF}")

    def helm_args(self) -> list[str]:
        """helm install of the chart for this one node: the local image (never pulled), a ClusterIP Service (no
        load balancer here), and no IngressClass from the chart (examples/00-namespace.yaml brings it)."""
        return ["install", RELEASE, str(CHART), "--namespace", RELEASE_NAMESPACE, "--create-namespace",
                "--set", f"image.repository={IMAGE_REPOSITORY}", "--set", f"image.tag={IMAGE_TAG}",
                "--set", "image.pullPolicy=Never", "--set", "service.type=ClusterIP",
                "--set", "ingressClass.create=false"]

    def start_chart(self) -> None:
        image = f"{IMAGE_REPOSITORY}:{IMAGE_TAG}"
        if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode != 0:
            raise RuntimeError(f"no image {image} in docker: `make image` builds it (make run-helm does that first)")
        say(f"{BOLD}helm install {RELEASE} charts/kroute{OFF} {DIM}(namespace {RELEASE_NAMESPACE}, image {image}, "
            f"pullPolicy Never){OFF}")
        self.installed = True
        installed = subprocess.run([str(self.cluster.binary("helm")), *self.helm_args()], env=self.cluster.env(),
                                   capture_output=True, text=True, timeout=120)
        if installed.returncode != 0:
            raise RuntimeError(f"helm install failed:\n{installed.stdout}{installed.stderr}")
        selector = f"app.kubernetes.io/instance={RELEASE}"

        def ready() -> bool:
            pods = json.loads(self.cluster.kubectl("get", "pods", "-n", RELEASE_NAMESPACE, "-l", selector, "-o", "json"))
            for pod in pods["items"]:
                conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}
                if conditions.get("Ready") == "True" and pod["status"].get("podIP"):
                    self.kroute_pod = pod
                    return True
            return False

        wait(ready, "the kroute pod Ready", PODS_TIMEOUT,
             lambda: self.cluster.kubectl("get", "pods,events", "-n", RELEASE_NAMESPACE, "-o", "wide", check=False))
        self.address = self.kroute_pod["status"]["podIP"]
        self.agent_container = self.container_of(self.kroute_pod, "agent")
        say(f"{BOLD}kroute pod{OFF} {RELEASE_NAMESPACE}/{self.kroute_pod['metadata']['name']} Ready: nginx and "
            f"kroute-agent serve on http://{self.address}:80 {DIM}(the pod IP on the docker network){OFF}")

    def container_of(self, pod: dict, name: str) -> str:
        """The docker container the node agent runs for a container of a pod (for docker exec)."""
        found = subprocess.run(["docker", "ps", "--format", "{{.Names}}",
                                "--filter", f"label=kroute.dev/pod-uid={pod['metadata']['uid']}",
                                "--filter", f"label=kroute.dev/container={name}"],
                               capture_output=True, text=True, check=True).stdout.split()
        if len(found) != 1:
            raise RuntimeError(f"no single docker container for container {name} of pod {pod['metadata']['name']}: "
                               f"{found}")
        return found[0]

    def wait_for_apps(self) -> None:
        began = time.monotonic()
        say(f"{BOLD}Waiting for the examples' pods{OFF} {DIM}(kubectl get pods -n {NAMESPACE}){OFF}")

        def available() -> bool:
            deployments = json.loads(self.cluster.kubectl("get", "deployments", "-n", NAMESPACE, "-o", "json"))
            return all(d["status"].get("availableReplicas", 0) == d["spec"]["replicas"] for d in deployments["items"])

        wait(available, "the examples' Deployments", PODS_TIMEOUT,
             lambda: self.cluster.kubectl("get", "deployments,pods", "-n", NAMESPACE, "-o", "wide", check=False))
        pods = self.cluster.kubectl("get", "pods", "-n", NAMESPACE, "-o", "wide")
        say("".join(f"  {line}\n" for line in pods.splitlines()).rstrip())
        # The EndpointSlices follow the pods' readiness; the agent publishes them a moment later.
        wait(lambda: all(self.served(host, path) == app for host, path, app in TRIES), "the examples' routes",
             ROUTES_TIMEOUT, self.failing_tries)
        say(f"  every route answers from its pods {DIM}({time.monotonic() - began:.1f} s){OFF}")

    # ---- traffic ----

    def url(self, path: str = "/") -> str:
        return f"http://{self.address}{path}"

    def get(self, host: str, path: str) -> tuple[int, dict]:
        request = urllib.request.Request(self.url(path), headers={"Host": host})
        try:
            with urllib.request.urlopen(request, timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, {}
        except (OSError, ValueError):
            return 0, {}

    def served(self, host: str, path: str) -> str:
        status, echo = self.get(host, path)
        return app_of(echo) if status == 200 and echo.get("namespace") == NAMESPACE else ""

    def failing_tries(self) -> str:
        return "\n".join(f"  {host}{path}: wanted {app}, got {self.get(host, path)}" for host, path, app in TRIES
                         if self.served(host, path) != app)

    def show_tries(self) -> bool:
        """Shows each try's answer; True if every one comes from a pod of the app the examples say."""
        say(f"{BOLD}Requests through {'the kroute pod' if self.helm else 'nginx'}{OFF}")
        ok = True
        for host, path, app in TRIES:
            status, echo = self.get(host, path)
            good = status == 200 and echo.get("namespace") == NAMESPACE and app_of(echo) == app
            ok &= good
            command = f"curl -s -H 'Host: {host}' {self.url(path)}"
            say(f"  {'ok ' if good else 'BAD'} {command:70} -> {status} {echo.get('namespace', '-')}/"
                f"{echo.get('pod', '-')}")
        return ok

    # ---- the walk-through ----

    def exports(self) -> dict[str, str]:
        """What the walk-through's shell needs: the kubeconfig, kubectl and kroute-table on PATH."""
        path = [str(self.cluster.bin_dir)]
        values = {"KUBECONFIG": str(self.cluster.kubeconfig)}
        if not self.helm:
            path.append(str(self.build / "routetable" / "tool"))
            values["KROUTE_TABLE_DIR"] = str(self.kroute.table_dir)
        values["PATH"] = ":".join(path) + ":$PATH"
        return values

    def walkthrough(self) -> list[tuple[str, str]]:
        """(command, what it does) of the hello walk-through, as printed and as --check runs them."""
        env = {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
        patch = json.dumps({"spec": {"template": {"spec": {"containers": [{"name": "echo-basic", "env": [env]}]}}}},
                           separators=(",", ":"))
        lookup = f"kroute-table lookup {HELLO_HOST} /"
        if self.helm:
            lookup = f"docker exec {self.agent_container} {lookup}"
        return [
            ("kubectl create deployment hello --image=kroute/echo-basic:v1.6.3 --port=3000", "a Deployment"),
            (f"kubectl patch deployment hello -p {shlex.quote(patch)}", "the echo server names its pod from POD_NAME"),
            ("kubectl expose deployment hello --port=80 --target-port=3000", "a Service with a selector"),
            (f'kubectl create ingress hello --class=kroute --rule="{HELLO_HOST}/*=hello:80"', "an Ingress"),
            (f"curl -s -H 'Host: {HELLO_HOST}' {self.url()}", "a hello pod answers (repeat until it does)"),
            (f"kubectl scale deployment hello --replicas={HELLO_REPLICAS}", "three pods"),
            (lookup, "what nginx routes by: the rule and the pods' endpoints"),
        ]

    def instructions(self) -> None:
        exports = "".join(f"  export {k}={v}\n" for k, v in self.exports().items())
        steps = "".join(f"  {DIM}# {what}{OFF}\n  {command}\n" for command, what in self.walkthrough())
        where = (f"nginx's log: {self.kroute.nginx_dir / 'error.log'}; per-worker status: "
                 f"curl -s http://127.0.0.1:{self.kroute.status_port}/kroute/status" if not self.helm else
                 f"the kroute pod: kubectl get pods -n {RELEASE_NAMESPACE} -o wide")
        say(f"""
{BOLD}Try it{OFF} (in another terminal):

{exports}  kubectl get deployments,pods,services,ingresses -n {NAMESPACE}
  curl -s -H 'Host: blue.example.com' {self.url()}
  curl -s -H 'Host: shop.example.com' {self.url('/api/v2/orders')}
  curl -s -H 'Host: nothing.example.org' {self.url()}      (the default backend)

{BOLD}A new app, from nothing to three pods behind kroute:{OFF}

{steps}  {DIM}# curl again a few times: three different pod names answer{OFF}

Edit examples/20-blue-green.yaml (send blue.example.com to the green Service), then
  kubectl apply -f {EXAMPLES / '20-blue-green.yaml'}
and curl again: the change is live at once, and nginx was not reloaded ({where}).

{BOLD}Ctrl-C{OFF} stops everything ({'helm uninstall, ' if self.helm else 'nginx, the agent, '}the pods, the cluster).
""")

    def shell(self) -> Callable[[str], subprocess.CompletedProcess[str]]:
        """Runs a command as a user's shell would after pasting the printed exports."""
        env = dict(os.environ)
        for key, value in self.exports().items():
            env[key] = value.replace("$PATH", os.environ.get("PATH", ""))
        return lambda command: subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True,
                                              timeout=60)

    @staticmethod
    def until_hello_pods(run: Callable[[str], subprocess.CompletedProcess[str]], curl: str,
                         count: int) -> tuple[bool, str]:
        """Repeats the curl until `count` distinct pods of the hello Deployment have answered it."""
        seen: set[str] = set()

        def answered() -> bool:
            result = run(curl)
            try:
                pod = json.loads(result.stdout).get("pod", "") if result.returncode == 0 else ""
            except ValueError:
                return False
            if app_of({"pod": pod}) == "hello":
                seen.add(pod)
            return len(seen) >= count

        try:
            wait(answered, f"{count} hello pod(s) answering", PODS_TIMEOUT)
            return True, f"{len(seen)} pod{'s' if count > 1 else ''} answered: {', '.join(sorted(seen))}"
        except RuntimeError as e:
            return False, f"{str(e).splitlines()[0]}; seen {sorted(seen)}"

    def run_walkthrough(self) -> bool:
        """Runs the walk-through's commands as printed, in a shell with the printed exports; True if each
        succeeded, a hello pod answered the curl, three distinct ones after the scale, and the lookup found the
        route (kroute-table exits 2 when nothing matches)."""
        say(f"{BOLD}The walk-through{OFF}")
        run = self.shell()
        steps = self.walkthrough()
        curl = next(command for command, _ in steps if command.startswith("curl"))
        ok = True

        def show(command: str, good: bool, result: str, began: float) -> None:
            nonlocal ok
            ok &= good
            say(f"  {'$' if good else 'BAD $'} {command}")
            for line in result.splitlines():
                say(f"    {line}")
            say(f"    {DIM}({time.monotonic() - began:.1f} s){OFF}")

        for command, _ in steps:
            began = time.monotonic()
            if command == curl:
                show(command, *self.until_hello_pods(run, curl, 1), began)
            else:
                done = run(command)
                show(command, done.returncode == 0, (done.stdout + done.stderr).strip(), began)
            if command.startswith("kubectl scale"):
                began = time.monotonic()
                show(f"{curl}  (repeated)", *self.until_hello_pods(run, curl, HELLO_REPLICAS), began)
        say(f"  {'ok' if ok else 'BAD'} walk-through")
        return ok

    # ---- stop ----

    def stop(self) -> None:
        if self.kroute is not None:
            self.kroute.stop()
        if self.cluster is not None:
            if self.installed:
                self.uninstall()
            self.cluster.stop()
            shutil.rmtree(self.state / "cluster", ignore_errors=True)

    def uninstall(self) -> None:
        """helm uninstall, and a bounded wait for the pod to finish draining (the node agent removes its
        containers when the cluster stops anyway)."""
        result = subprocess.run([str(self.cluster.binary("helm")), "uninstall", RELEASE, "--namespace",
                                 RELEASE_NAMESPACE, "--wait", "--timeout", "60s"], env=self.cluster.env(),
                                capture_output=True, text=True, timeout=90)
        say(f"  helm uninstall {RELEASE}: {(result.stdout + result.stderr).strip().splitlines()[-1:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", type=Path, default=ROOT / "build")
    parser.add_argument("--state", type=Path, help="the cluster's state and the logs (default <build>/demo)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("KROUTE_DEMO_PORT", "8080")),
                        help="where nginx listens on 127.0.0.1 (default 8080, or $KROUTE_DEMO_PORT; not with --helm)")
    parser.add_argument("--helm", action="store_true",
                        help="serve through the kroute pod of `helm install charts/kroute` (image kroute:0.1.0)")
    parser.add_argument("--check", action="store_true",
                        help="check the examples' routes, run the walk-through, stop and exit (for tests)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        say("make run needs root: the node agent mounts the pods' tmpfs volumes, nginx's workers run as www-data")
        return 1

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Ctrl-C reaches this process (nginx and the agent run in sessions of their own, so they are stopped in
    # order below), also when a shell started us in the background with SIGINT ignored.
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    build = args.build.resolve()
    demo = Demo(build, (args.state or build / "demo").resolve(), args.port, args.helm)
    began = time.monotonic()
    try:
        demo.start()
        say(f"{BOLD}Up in {time.monotonic() - began:.1f} s{OFF}")
        ok = demo.show_tries()
        if args.check:
            ok &= demo.run_walkthrough()
            say(f"{'ok' if ok else 'BAD'}: checked in {time.monotonic() - began:.1f} s")
            return 0 if ok else 1
        demo.instructions()
        while True:
            if demo.kroute is not None and demo.kroute.exited():
                say(f"{demo.kroute.exited()} exited; stopping")
                return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        say("\nStopping.")
        return 130 if args.check else 0
    except Exception as e:  # noqa: BLE001 - shown once, then everything is stopped
        say(f"make run failed: {e}")
        return 1
    finally:
        # A second Ctrl-C must not cut the clean-up short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        demo.stop()
        say("Stopped: " + ("the kroute release, " if args.helm else "nginx, kroute-agent, ")
            + "the pods and the cluster.")


if __name__ == "__main__":
    sys.exit(main())
