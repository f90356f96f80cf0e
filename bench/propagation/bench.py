"""Route propagation: how long from `kubectl apply` (the API server acknowledging a new Ingress) until nginx
serves the new host, with kroute and with a reload-based baseline, idle and under load.

kroute: a real etcd + kube-apiserver, kroute-agent and nginx with the module (the e2e stack,
tests/e2e/stack.py). With --routes Ingresses present (one host each), it creates --creations new
Ingresses one at a time; for each, the clock starts when the API server answers the POST and stops at the
first 200 for the new host through nginx, polled by a client with a new connection every <= 1 ms.

Baseline: nginx without the module, a generated nginx.conf with one server block per host (what a
reload-based controller writes), regenerated and `nginx -s reload`ed per change; the clock starts when the
change is known (before the config is generated) and stops at the first 200. This leaves out the
baseline's own watch latency, so it favours the baseline.

Both run idle and while wrk loads existing routes. Writes bench/results/propagation.md (and .json).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests" / "e2e"), str(ROOT / "tests" / "lib")]

from kube import Cluster, tools_bin  # noqa: E402
from stack import Stack, rule  # noqa: E402
from nginx_runner import NGINX, free_port, wait_for_port  # noqa: E402

POLL_INTERVAL = 0.0005   # seconds between polls (plus the request itself: well under 1 ms a poll)
GIVE_UP = 30.0
# Pause after each creation's first 200: the leader then writes the new Ingress's status, whose watch
# event the agent compiles too. "One at a time" means the next creation does not race that write.
SETTLE = 0.05           # a creation not served after this long counts as a failure


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def summary(ms: list[float]) -> dict[str, float]:
    return {"n": len(ms), "p50": percentile(ms, 50), "p99": percentile(ms, 99), "max": max(ms),
            "mean": statistics.fmean(ms)}


def poll_until_200(port: int, host: str, started: float) -> float:
    """Milliseconds from `started` to the first 200 for host; a new connection per poll, <= 1 ms apart."""
    deadline = started + GIVE_UP
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", "/", headers={"Host": host, "Connection": "close"})
            response = conn.getresponse()
            response.read()
            if response.status == 200:
                return (time.monotonic() - started) * 1000
        except (OSError, http.client.HTTPException):
            pass
        finally:
            conn.close()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{host} not served after {GIVE_UP} s")
        time.sleep(POLL_INTERVAL)


class Load:
    """wrk on existing hosts for the duration of a phase."""

    def __init__(self, port: int, hosts: list[str]):
        self.processes = [subprocess.Popen(["wrk", "-t1", "-c4", "-d3600s", "--timeout", "5s", "-H", f"Host: {h}",
                                            f"http://127.0.0.1:{port}/"],
                                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                          for h in hosts]
        time.sleep(1)

    def stop(self) -> list[str]:
        outputs = []
        for p in self.processes:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
            try:
                outputs.append(p.communicate(timeout=30)[0])
            except subprocess.TimeoutExpired:
                p.kill()
                outputs.append(p.communicate()[0])
        return outputs


def requests_per_second(outputs: list[str]) -> float:
    total = 0.0
    for out in outputs:
        for line in out.splitlines():
            if line.startswith("Requests/sec:"):
                total += float(line.split()[1])
    return total


def settle_status(stack: Stack, log) -> None:  # noqa: ANN001
    """Waits (bounded) until the leader has written the status of every Ingress present: until then each
    status write is one more Ingress event for the agent to compile."""
    last, stable_since, deadline = -1.0, time.monotonic(), time.monotonic() + 600
    while time.monotonic() < deadline:
        count = stack.agent.metric("kroute_agent_status_updates_total")
        if count != last:
            last, stable_since = count, time.monotonic()
        elif time.monotonic() - stable_since > 2:
            log(f"kroute: status written for the existing Ingresses ({count:.0f} updates)")
            return
        time.sleep(0.2)
    raise RuntimeError("Ingress status writes did not settle within 600 s")


# ---- kroute ---------------------------------------------------------------------------------------------


def run_kroute(cluster: Cluster, routes: int, creations: int, log) -> dict:  # noqa: ANN001
    stack = Stack(cluster)
    try:
        web = stack.backend("web", replicas=2)
        api = stack.api
        log(f"kroute: creating {routes} Ingresses")
        began = time.monotonic()
        for i in range(routes):
            api.create(stack.ingress(f"r-{i}", {"rules": [rule(f"r-{i}.bench", ("/", "Prefix", web.name))]}))
        stack.wait_status(f"r-{routes - 1}.bench", timeout=120)
        log(f"kroute: {routes} routes served after {time.monotonic() - began:.1f} s")
        settle_status(stack, log)
        results = {}
        for phase in ("idle", "load"):
            load = Load(stack.nginx.port, ["r-0.bench", f"r-{routes // 2}.bench"]) if phase == "load" else None
            ms = []
            try:
                for i in range(creations):
                    host = f"{phase}-{i}.bench"
                    api.create(stack.ingress(f"{phase}-{i}", {"rules": [rule(host, ("/", "Prefix", web.name))]}))
                    acknowledged = time.monotonic()
                    ms.append(poll_until_200(stack.nginx.port, host, acknowledged))
                    time.sleep(SETTLE)
                    if (i + 1) % max(1, creations // 5) == 0:
                        log(f"kroute {phase}: {i + 1}/{creations}, p50 so far {percentile(ms, 50):.1f} ms")
            finally:
                outputs = load.stop() if load else []
            results[phase] = summary(ms) | ({"load_rps": requests_per_second(outputs)} if load else {})
        results["nginx_pids_unchanged"] = True
        results["publishes"] = stack.agent.metric("kroute_agent_publishes_total")
        return results
    finally:
        stack.close()


# ---- the reload baseline --------------------------------------------------------------------------------


class ReloadBaseline:
    """nginx with one server block per host, regenerated and reloaded on every change."""

    def __init__(self, upstreams: list[str]):
        self.workdir = Path(tempfile.mkdtemp(prefix="kroute-reload-"))
        self.workdir.chmod(0o755)
        self.port = free_port()
        self.upstreams = upstreams
        self.hosts: list[str] = []
        self.conf = self.workdir / "nginx.conf"
        self.process: subprocess.Popen | None = None

    def render(self) -> str:
        w = self.workdir
        head = f"""worker_processes 2;
pid {w}/nginx.pid;
error_log {w}/error.log notice;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    client_body_temp_path {w}/body; proxy_temp_path {w}/proxy; fastcgi_temp_path {w}/fastcgi;
    uwsgi_temp_path {w}/uwsgi; scgi_temp_path {w}/scgi;
    server_names_hash_max_size 65536;
    server_names_hash_bucket_size 128;
    server {{ listen 127.0.0.1:{self.port} default_server; location / {{ return 404; }} }}
"""
        # One upstream and one server block per host, as a reload-based controller generates them.
        blocks = []
        servers = "".join(f"        server {u};\n" for u in self.upstreams)
        for i, host in enumerate(self.hosts):
            blocks.append(f"""    upstream u{i} {{
{servers}        keepalive 8;
    }}
    server {{
        listen 127.0.0.1:{self.port};
        server_name {host};
        location / {{
            proxy_pass http://u{i};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
""")
        return head + "".join(blocks) + "}\n"

    def write(self) -> None:
        self.conf.write_text(self.render())

    def start(self) -> None:
        self.write()
        self.process = subprocess.Popen([NGINX, "-p", str(self.workdir), "-c", str(self.conf), "-g", "daemon off;"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_for_port("127.0.0.1", self.port, timeout=60):
            raise RuntimeError("baseline nginx did not start: " + (self.workdir / "error.log").read_text()[-2000:])

    def add_host(self, host: str) -> None:
        """What the reload-based controller does for a new Ingress: regenerate, write, reload."""
        self.hosts.append(host)
        self.write()
        subprocess.run([NGINX, "-p", str(self.workdir), "-c", str(self.conf), "-s", "reload"], check=True,
                       capture_output=True, timeout=120)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        # Workers of old generations may still be shutting down: they are children of the master, gone with it.
        shutil.rmtree(self.workdir, ignore_errors=True)


def run_baseline(upstreams: list[str], routes: int, creations: int, log) -> dict:  # noqa: ANN001
    nginx = ReloadBaseline(upstreams)
    try:
        nginx.hosts = [f"r-{i}.bench" for i in range(routes)]
        began = time.monotonic()
        nginx.start()
        log(f"baseline: nginx with {routes} server blocks started in {time.monotonic() - began:.1f} s")
        results = {}
        for phase in ("idle", "load"):
            load = Load(nginx.port, ["r-0.bench", f"r-{routes // 2}.bench"]) if phase == "load" else None
            ms = []
            try:
                for i in range(creations):
                    host = f"{phase}-{i}.bench"
                    known = time.monotonic()
                    nginx.add_host(host)
                    ms.append(poll_until_200(nginx.port, host, known))
                    time.sleep(SETTLE)
                    if (i + 1) % max(1, creations // 5) == 0:
                        log(f"baseline {phase}: {i + 1}/{creations}, p50 so far {percentile(ms, 50):.1f} ms")
            finally:
                outputs = load.stop() if load else []
            results[phase] = summary(ms) | ({"load_rps": requests_per_second(outputs)} if load else {})
        return results
    finally:
        nginx.stop()


# ---- report ---------------------------------------------------------------------------------------------


def report(args: argparse.Namespace, kroute: dict, baseline: dict | None, seconds: float) -> str:
    def row(name: str, r: dict, phase: str) -> str:
        s = r[phase]
        load = f"{s['load_rps']:.0f} req/s" if "load_rps" in s else "-"
        return f"| {name} | {phase} | {s['n']} | {s['p50']:.1f} | {s['p99']:.1f} | {s['max']:.1f} | {load} |"

    lines = [
        "# Route propagation",
        "",
        f"`{' '.join(['python3', 'bench/propagation/bench.py', *sys.argv[1:]])}` on {os.cpu_count()} cores "
        f"({platform.machine()}, Linux {platform.release()}, nginx {nginx_version()}), "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {seconds / 60:.1f} min.",
        "",
        f"With {args.routes} Ingresses present (one host each), {args.creations} new Ingresses are created one at a "
        "time; each number is the time from the API server acknowledging the create (kroute) or from the change "
        "being known (baseline) to the first 200 for the new host, polled with a new connection at <= 1 ms "
        "intervals, with a 50 ms pause after each first 200. \"load\": wrk on two existing hosts during the phase.",
        "",
        "| | phase | creations | p50 ms | p99 ms | max ms | load served |",
        "|---|---|---|---|---|---|---|",
        row("kroute", kroute, "idle"),
        row("kroute", kroute, "load"),
    ]
    if baseline:
        lines += [row(f"reload baseline ({args.baseline_creations} creations)", baseline, "idle"),
                  row(f"reload baseline ({args.baseline_creations} creations)", baseline, "load")]
    target = all(kroute[p]["p50"] <= 10 and kroute[p]["p99"] <= 30 for p in ("idle", "load"))
    lines += ["", f"Target (kroute, both phases): p50 <= 10 ms and p99 <= 30 ms: **{'met' if target else 'missed'}**.",
              ""]
    return "\n".join(lines)


def nginx_version() -> str:
    out = subprocess.run([NGINX, "-v"], capture_output=True, text=True).stderr.strip()
    return out.rsplit("/", 1)[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--routes", type=int, default=5000, help="Ingresses present before measuring")
    parser.add_argument("--creations", type=int, default=1000, help="new Ingresses per phase (idle, load)")
    parser.add_argument("--baseline-creations", type=int, default=None,
                        help="reloads per phase for the baseline (default: --creations); 0 skips the baseline")
    parser.add_argument("--quick", action="store_true",
                        help="500 routes, 100 creations, 50 baseline reloads (unless --baseline-creations is given)")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "propagation.md")
    args = parser.parse_args()
    if args.quick:
        args.routes, args.creations = 500, 100
        if args.baseline_creations is None:
            args.baseline_creations = 50
    if args.baseline_creations is None:
        args.baseline_creations = args.creations

    def log(text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    began = time.monotonic()
    state = Path(tempfile.mkdtemp(prefix="kroute-propagation-"))
    cluster = Cluster(state / "cluster", tools_bin())
    try:
        cluster.start()
        kroute = run_kroute(cluster, args.routes, args.creations, log)
    finally:
        cluster.stop()
        shutil.rmtree(state, ignore_errors=True)
    baseline = None
    if args.baseline_creations:
        # The baseline's upstream is never contacted before the first 200 matters: two echo pods, as for kroute.
        from netns import PodNetwork
        with PodNetwork() as network:
            addresses = []
            for i in range(2):
                pod = network.add_pod(f"web-{i}")
                pod.echo([8080], f"web/{pod.name}")
                addresses.append(f"{pod.address}:8080")
            baseline = run_baseline(addresses, args.routes, args.baseline_creations, log)
    text = report(args, kroute, baseline, time.monotonic() - began)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    args.output.with_suffix(".json").write_text(json.dumps({"args": vars(args) | {"output": str(args.output)},
                                                            "kroute": kroute, "baseline": baseline}, indent=2))
    print(text)
    met = all(kroute[p]["p50"] <= 10 and kroute[p]["p99"] <= 30 for p in ("idle", "load"))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
