"""kroute-agent at scale: 5,000 Ingresses + 5,000 Services + 5,000 EndpointSlices (10 endpoints each) in a
real API server; measures agent start -> first complete table, peak RSS, idle CPU and one change's
propagation, and writes bench/results/agent.md. Usage: bench.py --build build [--objects 5000]."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from kube import Cluster, free_ports, tools_bin  # noqa: E402

NS = "bench"
CLASS = "kroute"


def objects(n: int) -> list[tuple[str, dict[str, Any]]]:
    """(collection path, object) for n Services, EndpointSlices and Ingresses."""
    out: list[tuple[str, dict[str, Any]]] = []
    for i in range(n):
        name = f"app-{i:05d}"
        out.append((f"/api/v1/namespaces/{NS}/services", {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}))
        out.append((f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices", {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{name}-1", "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [f"10.{(i >> 8) & 255}.{i & 255}.{k + 1}"],
                           "conditions": {"ready": True}} for k in range(10)]}))
        out.append((f"/apis/networking.k8s.io/v1/namespaces/{NS}/ingresses", {
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name},
            "spec": {"ingressClassName": CLASS, "rules": [{"host": f"{name}.bench.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": name, "port": {"name": "http"}}}}]}}]}}))
    return out


def create_all(cluster: Cluster, items: list[tuple[str, dict[str, Any]]], threads: int = 6) -> None:
    """POSTs every object over a few keep-alive connections."""
    errors: list[str] = []

    def worker(part: list[tuple[str, dict[str, Any]]]) -> None:
        conn = http.client.HTTPSConnection("127.0.0.1", cluster.apiserver_port, context=cluster._tls(True), timeout=30)
        for path, body in part:
            conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            data = response.read()
            if response.status not in (201, 409):
                errors.append(f"{path}: {response.status} {data[:200]!r}")
        conn.close()

    pool = [threading.Thread(target=worker, args=(items[t::threads],)) for t in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} creates failed, first: {errors[0]}")


def proc_status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metric(port: int, name: str) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise KeyError(name)


def ready(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", "/readyz")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def run_agent(build: Path, cluster: Cluster, work: Path, runs: int) -> list[dict[str, float]]:
    results = []
    for run in range(runs):
        table = work / f"table-{run}"
        port = free_ports(1)[0]
        log = open(work / f"agent-{run}.log", "wb")
        started = time.monotonic()
        agent = subprocess.Popen([str(build / "agent" / "kroute-agent"), "--kubeconfig", str(cluster.kubeconfig),
                                  "--table-dir", str(table), "--listen", f"127.0.0.1:{port}", "--no-election"],
                                 stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = started + 60
            while not ready(port):
                if time.monotonic() > deadline or agent.poll() is not None:
                    raise RuntimeError(f"agent not ready; see {work}/agent-{run}.log")
                time.sleep(0.005)
            to_ready = time.monotonic() - started
            rules = metric(port, "kroute_agent_table_rules")
            rss_ready = proc_status(agent.pid, "VmHWM") / 1024
            time.sleep(2)
            cpu0, t0 = cpu_seconds(agent.pid), time.monotonic()
            time.sleep(20)
            idle_cpu = (cpu_seconds(agent.pid) - cpu0) / (time.monotonic() - t0) * 100
            # One change: an endpoint of one EndpointSlice, until the next generation is published.
            generation = metric(port, "kroute_agent_table_generation")
            cluster.kubectl("patch", "endpointslice", "-n", NS, "app-00042-1", "--type", "json", "-p",
                            json.dumps([{"op": "replace", "path": "/endpoints/0/addresses/0", "value": f"10.250.{run}.1"}]))
            changed = time.monotonic()
            while metric(port, "kroute_agent_table_generation") == generation:
                if time.monotonic() - changed > 10:
                    raise RuntimeError("the change was not published")
                time.sleep(0.002)
            propagation = time.monotonic() - changed
            publish_sum = metric(port, "kroute_agent_publish_duration_seconds_sum")
            publish_count = metric(port, "kroute_agent_publish_duration_seconds_count")
            results.append({"to_ready_s": to_ready, "rules": rules, "peak_rss_mb": proc_status(agent.pid, "VmHWM") / 1024,
                            "rss_at_ready_mb": rss_ready, "rss_now_mb": proc_status(agent.pid, "VmRSS") / 1024,
                            "idle_cpu_percent": idle_cpu, "change_to_publish_ms": propagation * 1000,
                            "mean_publish_ms": publish_sum / publish_count * 1000})
        finally:
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(timeout=10)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()
            log.close()
        print(f"run {run + 1}: {results[-1]}", flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--build", type=Path, default=ROOT / "build")
    parser.add_argument("--objects", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "agent.md")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="kroute-bench-agent."))
    cluster = Cluster(work / "cluster", tools_bin())
    try:
        cluster.start()
        cluster.kubectl("create", "namespace", NS)
        cluster.apply({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": CLASS},
                       "spec": {"controller": "kroute.dev/ingress-controller"}})
        began = time.monotonic()
        create_all(cluster, objects(args.objects))
        print(f"created {3 * args.objects} objects in {time.monotonic() - began:.1f}s", flush=True)
        results = run_agent(args.build, cluster, work, args.runs)
    finally:
        cluster.stop()
    write_report(args, results)
    shutil.rmtree(work, ignore_errors=True)
    worst = {k: max(r[k] for r in results) for k in results[0]}
    ok = worst["to_ready_s"] <= 5 and worst["peak_rss_mb"] <= 150 and worst["idle_cpu_percent"] < 1 and \
        all(r["rules"] == args.objects for r in results)
    print("PASS" if ok else "FAIL", worst)
    return 0 if ok else 1


def write_report(args: argparse.Namespace, results: list[dict[str, float]]) -> None:
    cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True,
                         text=True).stdout.strip()
    rows = "\n".join(
        f"| {i + 1} | {r['to_ready_s']:.2f} s | {int(r['rules'])} | {r['peak_rss_mb']:.0f} MB | {r['rss_now_mb']:.0f} MB | "
        f"{r['idle_cpu_percent']:.2f} % | {r['change_to_publish_ms']:.0f} ms | {r['mean_publish_ms']:.0f} ms |"
        for i, r in enumerate(results))
    args.out.write_text(f"""# kroute-agent at scale

`make bench-agent` ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, {cpu}): a real etcd + kube-apiserver
holding {args.objects:,} Ingresses, {args.objects:,} Services and {args.objects:,} EndpointSlices with 10 ready
endpoints each (one namespace, one IngressClass). Each run starts a fresh agent (`--no-election`).

- **start → ready**: from the process start to `/readyz` answering 200, i.e. every watch listed
  (pages of 500) and the first complete table published. Target ≤ 5 s.
- **peak RSS**: `VmHWM` after the idle window and one change. Target ≤ 150 MB.
- **idle CPU**: user+system CPU over 20 s with nothing changing. Target: close to zero.
- **change → publish**: one EndpointSlice address patched with kubectl until the next generation
  appears in `/metrics` (includes kubectl's own time after the API call returns: an upper bound).
- **mean publish**: `kroute_agent_publish_duration_seconds` sum/count (compile + build + publish).

| run | start → ready | rules | peak RSS | RSS after | idle CPU | change → publish | mean publish |
|---|---|---|---|---|---|---|---|
{rows}
""")


if __name__ == "__main__":
    sys.exit(main())
