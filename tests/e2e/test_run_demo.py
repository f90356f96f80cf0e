"""`make run` and `make run-helm`, non-interactively: scripts/run-demo.sh --check starts a cluster that runs pods
on docker, applies examples/*.yaml (real Deployments), serves them through kroute (host processes, or the chart's
pod with --helm), checks every route it prints, runs the hello walk-through (create, patch, expose, ingress,
curl, scale to 3, lookup), and stops everything again: nothing may be left behind."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from kube import free_ports
from netns import leftovers

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("KROUTE_BUILD", ROOT / "build"))
KROUTE_IMAGE = "kroute:0.1.0"


def docker_leftovers(cluster_dir: Path) -> list[str]:
    """The containers and networks of the cluster in cluster_dir (label kroute.dev/cluster=<id>, the id as
    tests/cluster/lib.sh derives it); other clusters on this machine may come and go meanwhile."""
    cluster_id = hashlib.sha256(str(cluster_dir).encode()).hexdigest()[:8]
    found = []
    for kind in (["ps", "-a"], ["network", "ls"]):
        out = subprocess.run(["docker", *kind, "-q", "--filter", f"label=kroute.dev/cluster={cluster_id}"],
                             capture_output=True, text=True, check=True).stdout
        found += [f"{kind[0]} {name}" for name in out.split()]
    return found


def assert_nothing_left(state: Path, netns_before: set[str], port: int) -> None:
    assert set(leftovers()) == netns_before, "the demo left network namespaces or bridges behind"
    assert not docker_leftovers(state / "cluster"), "the demo left docker containers or networks behind"
    listening = subprocess.run(["ss", "-Htln", f"sport = :{port}"], capture_output=True, text=True).stdout
    assert not listening.strip(), f"something still listens on the demo port:\n{listening}"
    cluster_processes = subprocess.run(["pgrep", "-af", str(state)], capture_output=True, text=True).stdout
    assert not cluster_processes.strip(), f"processes of the demo's cluster still run:\n{cluster_processes}"


def demo_command(build: Path, state: Path, port: int, *args: str) -> list[str]:
    return ["bash", str(ROOT / "scripts" / "run-demo.sh"), str(build), "--port", str(port), "--state", str(state),
            *args]


def run_demo(state: Path, *args: str) -> tuple[str, float]:
    state = state.resolve()
    netns_before = set(leftovers())
    port = free_ports(1)[0]
    began = time.monotonic()
    result = subprocess.run(demo_command(BUILD, state, port, "--check", *args), capture_output=True, text=True,
                            timeout=900)
    took = time.monotonic() - began
    out = result.stdout + result.stderr
    print(out)
    assert result.returncode == 0, out[-8000:]
    assert "BAD" not in out, out
    assert "Stopped:" in out
    assert_nothing_left(state, netns_before, port)
    return out, took


def assert_routes_and_walkthrough(out: str, address: str) -> None:
    # Each try names the answering pod: a pod of the Deployment the examples route the request to.
    for host, path, app in [("blue.example.com", "/", "blue"), ("green.example.com", "/", "green"),
                            ("shop.example.com", "/api/v2/orders", "api"), ("shop.example.com", "/cart", "web"),
                            ("web.apps.example.com", "/", "apps"), ("unknown.example.org", "/anything", "fallback")]:
        line = re.search(rf"ok  curl -s -H 'Host: {re.escape(host)}' http://{re.escape(address)}{re.escape(path)} "
                         rf"+-> 200 demo/(\S+)", out)
        assert line and line.group(1).rsplit("-", 2)[0] == app, (host, path, out)
    for command in ("kubectl create deployment hello --image=kroute/echo-basic:v1.6.3 --port=3000",
                    "kubectl expose deployment hello --port=80 --target-port=3000",
                    'kubectl create ingress hello --class=kroute --rule="hello.example.com/*=hello:80"',
                    f"curl -s -H 'Host: hello.example.com' http://{address}/",
                    "kubectl scale deployment hello --replicas=3"):
        assert f"$ {command}" in out, (command, out)
    pods = re.search(r"3 pods answered: (hello-\S+), (hello-\S+), (hello-\S+)", out)
    assert pods and len(set(pods.groups())) == 3, out
    assert re.search(r"kroute-table lookup hello.example.com /\n(.*\n)*?\s+source\s+ingress default/hello", out), out
    assert "ok walk-through" in out


def test_make_run_serves_the_examples_from_real_deployments(tools: Path, tmp_path: Path) -> None:
    out, took = run_demo(tmp_path)
    port = re.search(r"nginx\S* with ngx_http_kroute_module on (127\.0\.0\.1:\d+)", out)
    assert port, out
    assert_routes_and_walkthrough(out, port.group(1))
    print(f"make run --check: {took:.1f} s")


def test_make_run_helm_serves_through_the_kroute_pod(tools: Path, tmp_path: Path) -> None:
    if subprocess.run(["docker", "image", "inspect", KROUTE_IMAGE], capture_output=True).returncode != 0:
        pytest.skip(f"no {KROUTE_IMAGE} image: `make image` builds it (the e2e suite's image step)")
    out, took = run_demo(tmp_path, "--helm")
    pod = re.search(r"kroute pod\S* kroute/(\S+) Ready: nginx and kroute-agent serve on http://(\d+\.\d+\.\d+\.\d+):80",
                    out)
    assert pod, out
    assert_routes_and_walkthrough(out, pod.group(2))
    assert "helm uninstall kroute" in out
    print(f"make run-helm --check: {took:.1f} s")


def test_make_run_stops_everything_on_sigterm(tools: Path, tmp_path: Path) -> None:
    """The interactive demo, up and waiting for Ctrl-C, gets SIGTERM: it stops everything and exits 0."""
    state, port, netns_before = tmp_path.resolve(), free_ports(1)[0], set(leftovers())
    demo = subprocess.Popen(demo_command(BUILD, state, port), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and demo.poll() is None:
            lines.append(demo.stdout.readline())
            if "stops everything" in lines[-1]:
                break
        assert "stops everything" in lines[-1], "".join(lines)
        assert subprocess.run(["curl", "-s", "-H", "Host: blue.example.com", f"http://127.0.0.1:{port}/"],
                              capture_output=True, text=True, timeout=10).stdout.count('"pod": "blue-') == 1
        demo.terminate()
        out, _ = demo.communicate(timeout=180)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert demo.returncode == 0, "".join(lines) + out
    assert "Stopped:" in out, out
    assert_nothing_left(state, netns_before, port)


def test_make_run_cleans_up_after_a_failure(tools: Path, tmp_path: Path) -> None:
    """A failure half-way (the cluster up, the examples applied, no kroute-agent to start) stops what started."""
    state, port, netns_before = tmp_path.resolve() / "state", free_ports(1)[0], set(leftovers())
    result = subprocess.run(demo_command(tmp_path / "no-build", state, port, "--check"), capture_output=True,
                            text=True, timeout=600)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "deployment.apps/blue created" in out and "make run failed:" in out and "kroute-agent" in out, out
    assert "Stopped:" in out, out
    assert_nothing_left(state, netns_before, port)
