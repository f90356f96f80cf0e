"""Route propagation: how long from `kubectl apply` (the API server acknowledging a new Ingress) until nginx
serves the new host, with kroute and with a reload-based baseline, idle and under load; nginx's memory at
each size; and failed requests and cut connections during a storm of changes.

kroute: a real etcd + kube-apiserver, kroute-agent and nginx with the module (the e2e stack,
tests/e2e/stack.py; nginx from the shipped nginx.conf with 2 workers and no access log; the table directory in
/dev/shm, as the chart's memory-backed emptyDir puts it). With N Ingresses
present (one host each, all to one Service "web" of two echo pods), new Ingresses are created one at a time;
for each, the clock starts when the API server answers the POST and stops at the first 200 for the new host
through nginx, polled by bench/propagation/first200.c (a C poller started before the change) with a new
connection every 0.5 ms.

Baseline: nginx without the module (2 workers, no access log) and a generated nginx.conf with what a
reload-based controller writes for the same objects (a server block per host, an upstream per Service, the
same pods), regenerated and `nginx -s reload`ed per change; the clock starts when the change is known
(before the config is generated) and stops at the first 200. This leaves out the baseline's own watch
latency, so it favours the baseline.

Both stacks run side by side, and the creations alternate between them (kroute first on even creations,
the baseline first on odd ones), so both see the same machine. "load": wrk on two existing hosts of each
proxy during the phase, at --load-rate requests/s per proxy (0: as fast as wrk can, which on a 2-core
machine starves the API server and the agent along with everything else: the load generator, the echo
pods, both proxies and the control plane all share the two cores). --routes takes several sizes (e.g. 100,1000,10000); the Ingresses are added up to
each size in turn. At --storm-routes, a storm of --storm changes at --storm-rate per second (new hosts,
deleted hosts, endpoint changes of a Service, paths added to a host under load) runs against each while wrk
loads two hosts that exist throughout; wrk's counts give failed requests (non-2xx/3xx responses and
timeouts) and cut connections (connect, read and write errors: a connection closed or reset under a
request). The "httproute" phase does the same with Gateway API HTTPRoutes (kroute only: a reload-based
controller reloads the same way for either kind): the agent also serves a GatewayClass, and each new
HTTPRoute (one host, to "web") attaches to one Gateway, next to the N Ingresses. Writes
bench/results/propagation.md and propagation.json (or --output and the .json beside it).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests" / "e2e"), str(ROOT / "tests" / "lib"), str(ROOT / "bench" / "report")]

import procmem  # noqa: E402
from kube import Cluster, tools_bin  # noqa: E402
from nginx_runner import NGINX, Nginx, free_port, wait_for_port  # noqa: E402
from stack import Stack, endpoint_slice, rule  # noqa: E402

GATEWAY_GROUP = "gateway.networking.k8s.io"
GATEWAY_CONTROLLER = "kroute.dev/bench-gateway"

# Seconds between polls: first200 polls every POLL_INTERVAL. poll_until_200 (growing to a size, not a
# measured creation) polls every 0.5 ms or every 1 % of the time elapsed when that is longer, so that a
# Python poller does not take the CPU a seconds-long reload needs.
POLL_INTERVAL = 0.0005
POLL_FRACTION = 0.01
GIVE_UP = 120.0          # a creation not served after this long fails the run
# Pause after each creation's first 200: the leader then writes the new Ingress's status, whose watch
# event the agent compiles too. "One at a time" means the next creation does not race that write.
SETTLE = 0.05
NGINX_CONF = ROOT / "nginx-conf" / "nginx.conf"

Log = Callable[[str], None]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def summary(ms: list[float]) -> dict[str, Any]:
    return {"n": len(ms), "p50": percentile(ms, 50), "p99": percentile(ms, 99), "max": max(ms),
            "mean": statistics.fmean(ms), "samples_ms": [round(x, 3) for x in ms]}


FIRST200 = Path(os.environ.get("KROUTE_BUILD", ROOT / "build")) / "bench" / "first200"


def time_to_200(port: int, host: str, change: Callable[[], float]) -> float:
    """Milliseconds from the moment `change()` returns (it makes the change and returns when the write was
    acknowledged, time.monotonic()) to the first 200 for host. bench/propagation/first200.c polls, started
    before the change and with a new connection every 0.5 ms, in C: a Python poller's own latency on a busy
    machine is milliseconds. A route served before the acknowledgement reached us counts as 0."""
    poller = subprocess.Popen([str(FIRST200), str(port), host, str(int(POLL_INTERVAL * 1e6)), str(int(GIVE_UP))],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if poller.stdout.readline().strip() != "ready":
            raise RuntimeError(f"first200 did not start: {poller.stderr.read()}")
        acknowledged = change()
        served = poller.stdout.readline().strip()
        if poller.wait(timeout=GIVE_UP + 10) != 0 or not served:
            raise RuntimeError(f"{host} not served after {GIVE_UP} s: {poller.stderr.read()}")
        return max(0.0, (float(served) - acknowledged) * 1000)
    finally:
        if poller.poll() is None:
            poller.kill()
            poller.wait()


def poll_until_200(port: int, host: str, started: float) -> float:
    """Milliseconds from `started` to the first 200 for host; a new connection per poll, 0.5 ms apart or 1 % of
    the time elapsed."""
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
        now = time.monotonic()
        if now > deadline:
            raise RuntimeError(f"{host} not served after {GIVE_UP} s")
        time.sleep(max(POLL_INTERVAL, (now - started) * POLL_FRACTION))


# ---- load -----------------------------------------------------------------------------------------------


class Load:
    """wrk on existing hosts (one wrk each) until stop(); stop() returns wrk's totals. With `rate` (requests
    per second over all hosts), each connection waits between requests (wrk's delay() hook) so that the
    proxy serves about that rate; without, wrk sends as fast as the machine lets it (closed loop)."""

    def __init__(self, port: int, hosts: list[str], connections: int = 4, rate: float = 0):
        self.script = None
        script_args: list[str] = []
        if rate > 0:
            wait_ms = connections * 1000 / (rate / len(hosts))
            self.script = tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="kroute-load-", delete=False)
            self.script.write(f"function delay() return {wait_ms:.3f} end\n")
            self.script.close()
            script_args = ["-s", self.script.name]
        self.processes = [subprocess.Popen(["wrk", "-t1", f"-c{connections}", "-d3600s", "--timeout", "5s",
                                            *script_args, "-H", f"Host: {h}", f"http://127.0.0.1:{port}/"],
                                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                          for h in hosts]

    def stop(self) -> dict[str, Any]:
        totals = {"requests": 0, "non_2xx": 0, "connect": 0, "read": 0, "write": 0, "timeout": 0, "rps": 0.0,
                  "seconds": 0.0}
        for p in self.processes:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
            try:
                out = p.communicate(timeout=30)[0]
            except subprocess.TimeoutExpired:
                p.kill()
                out = p.communicate()[0]
            requests = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", out)
            if not requests:
                raise RuntimeError(f"wrk printed no totals:\n{out}")
            totals["requests"] += int(requests.group(1))
            totals["seconds"] = max(totals["seconds"], float(requests.group(2)) *
                                    {"ms": 1e-3, "s": 1, "m": 60}[requests.group(3)])
            non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
            totals["non_2xx"] += int(non_2xx.group(1)) if non_2xx else 0
            errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
            for i, kind in enumerate(("connect", "read", "write", "timeout"), 1):
                totals[kind] += int(errors.group(i)) if errors else 0
            rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
            totals["rps"] += float(rps.group(1)) if rps else 0.0
        if self.script is not None:
            os.unlink(self.script.name)
        totals["failed_requests"] = totals["non_2xx"] + totals["timeout"]
        totals["cut_connections"] = totals["connect"] + totals["read"] + totals["write"]
        return totals


# ---- kroute ---------------------------------------------------------------------------------------------


class Kroute:
    """The e2e stack (agent + nginx with the module) on the run's cluster, and what the bench does to it."""

    name = "kroute"

    def __init__(self, cluster: Cluster, log: Log):
        self.log = log
        # The table in memory, as the chart's emptyDir (medium: Memory) has it; readable by nginx's workers.
        self.table_base = Path(tempfile.mkdtemp(prefix="kroute-propagation-table-",
                                                dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
        self.table_base.chmod(0o755)
        try:
            self.stack = Stack(cluster, ("--gateway-controller", GATEWAY_CONTROLLER, "--gateway-address", "192.0.2.10"),
                               table_dir=self.table_base / "table")
        except BaseException:
            shutil.rmtree(self.table_base, ignore_errors=True)
            raise
        try:
            # nginx as the image ships it, but without the access log (the baseline has none either).
            self.stack.nginx.stop()
            self.stack.nginx.cleanup()
            conf = NGINX_CONF.read_text().replace("access_log /dev/stdout kroute;",
                                                  "access_log /dev/stdout kroute;\n    access_log off;")
            self.stack.nginx = Nginx(self.stack.agent.table_dir, conf)
            self.stack.nginx.start()
            self.web = self.stack.backend("web", replicas=2)
            self.churn = self.stack.backend("churn", replicas=3)
            # The HTTPRoutes' parent: a Gateway of a class this agent serves (its listener port is nginx's).
            self.gateway_class = f"kroute-bench-{self.stack.id}"
            self.stack.api.create({"apiVersion": f"{GATEWAY_GROUP}/v1", "kind": "GatewayClass",
                                   "metadata": {"name": self.gateway_class},
                                   "spec": {"controllerName": GATEWAY_CONTROLLER}})
            self.stack.api.create({"apiVersion": f"{GATEWAY_GROUP}/v1", "kind": "Gateway",
                                   "metadata": {"name": "bench", "namespace": self.stack.namespace},
                                   "spec": {"gatewayClassName": self.gateway_class,
                                            "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}})
        except BaseException:
            self.close()
            raise
        self.api = self.stack.api
        self.routes = 0
        self.port = self.stack.nginx.port

    def close(self) -> None:
        try:
            self.stack.close()
        finally:
            shutil.rmtree(self.table_base, ignore_errors=True)

    def pods(self) -> tuple[list[str], list[str]]:
        return self.web.addresses, self.churn.addresses

    def nginx_master(self) -> int:
        return self.stack.nginx.process.pid

    def agent_memory_kb(self) -> dict[str, int]:
        return procmem.memory_kb([self.stack.agent.process.pid])

    def grow(self, routes: int) -> float:
        """Creates Ingresses r-<routes so far> .. r-<routes - 1>; returns seconds until the last is served and
        the leader's status writes have settled."""
        began = time.monotonic()
        for i in range(self.routes, routes):
            self.api.create(self.stack.ingress(f"r-{i}", {"rules": [rule(f"r-{i}.bench", ("/", "Prefix", "web"))]}))
        self.stack.wait_status(f"r-{routes - 1}.bench", timeout=300)
        served = time.monotonic() - began
        self.routes = routes
        settle_status(self.stack, self.log)
        return served

    def create(self, name: str) -> float:
        host = f"{name}.bench"

        def change() -> float:
            self.api.create(self.stack.ingress(name, {"rules": [rule(host, ("/", "Prefix", "web"))]}))
            return time.monotonic()
        return time_to_200(self.port, host, change)

    def create_route(self, name: str) -> float:
        """The same as create(), with an HTTPRoute."""
        host = f"{name}.bench"
        route = {"apiVersion": f"{GATEWAY_GROUP}/v1", "kind": "HTTPRoute",
                 "metadata": {"name": name, "namespace": self.stack.namespace},
                 "spec": {"parentRefs": [{"name": "bench"}], "hostnames": [host],
                          "rules": [{"backendRefs": [{"name": "web", "port": self.web.port}]}]}}

        def change() -> float:
            self.api.create(route)
            return time.monotonic()
        return time_to_200(self.port, host, change)

    # the storm's changes, as API writes
    def add_host(self, name: str) -> None:
        self.api.create(self.stack.ingress(name, {"rules": [rule(f"{name}.bench", ("/", "Prefix", "churn"))]}))

    def delete_host(self, name: str) -> None:
        self.api.delete(self.stack.ingress(name, {}))

    def set_churn_endpoints(self, addresses: list[str]) -> None:
        self.api.replace(endpoint_slice(self.stack.namespace, "churn", addresses, self.churn.port))

    def set_paths(self, host_index: int, extra: list[str]) -> None:
        paths = [("/", "Prefix", "web"), *((p, "Prefix", "churn") for p in extra)]
        self.api.replace(self.stack.ingress(f"r-{host_index}", {"rules": [rule(f"r-{host_index}.bench", *paths)]}))


def settle_status(stack: Stack, log: Log) -> None:
    """Waits (bounded) until the leader has written the status of every Ingress present: until then each
    status write is one more Ingress event for the agent to compile."""
    last, stable_since, deadline = -1.0, time.monotonic(), time.monotonic() + 900
    while time.monotonic() < deadline:
        count = stack.agent.metric("kroute_agent_status_updates_total")
        if count != last:
            last, stable_since = count, time.monotonic()
        elif time.monotonic() - stable_since > 2:
            log(f"kroute: status written for the existing Ingresses ({count:.0f} updates)")
            return
        time.sleep(0.2)
    raise RuntimeError("Ingress status writes did not settle within 900 s")


# ---- the reload baseline --------------------------------------------------------------------------------


class ReloadBaseline:
    """nginx with a generated configuration (a server block per host, an upstream per Service), regenerated
    and reloaded on every change."""

    name = "baseline"

    def __init__(self, web: list[str], churn: list[str], log: Log):
        self.log = log
        self.workdir = Path(tempfile.mkdtemp(prefix="kroute-reload-"))
        self.workdir.chmod(0o755)
        self.port = free_port()
        self.upstreams = {"web": [f"{a}:8080" for a in web], "churn": [f"{a}:8080" for a in churn]}
        self.churn_all = list(churn)
        self.hosts: dict[str, list[tuple[str, str]]] = {}  # host -> [(path, upstream)], in creation order
        self.conf = self.workdir / "nginx.conf"
        self.process: subprocess.Popen | None = None
        self.routes = 0
        self.reloads = 0

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
    keepalive_timeout 75s;
    keepalive_requests 10000;
    server_names_hash_max_size 65536;
    server_names_hash_bucket_size 128;
    server {{ listen 127.0.0.1:{self.port} default_server reuseport; location / {{ return 404; }} }}
"""
        blocks = []
        for name, servers in self.upstreams.items():
            lines = "".join(f"        server {s};\n" for s in servers) or "        server 127.0.0.1:1 down;\n"
            blocks.append(f"    upstream {name} {{\n{lines}        keepalive 32;\n    }}\n")
        for host, paths in self.hosts.items():
            locations = "".join(f"""        location {path} {{
            proxy_pass http://{upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
""" for path, upstream in paths)
            blocks.append(f"""    server {{
        listen 127.0.0.1:{self.port};
        server_name {host};
{locations}    }}
""")
        return head + "".join(blocks) + "}\n"

    def write(self) -> None:
        self.conf.write_text(self.render())

    def reload(self) -> None:
        """What the reload-based controller does after each change: write the config, `nginx -s reload`."""
        self.write()
        subprocess.run([NGINX, "-p", str(self.workdir), "-c", str(self.conf), "-s", "reload"], check=True,
                       capture_output=True, timeout=300)
        self.reloads += 1

    def start(self) -> None:
        self.write()
        with open(self.workdir / "stderr.log", "w") as stderr:
            self.process = subprocess.Popen([NGINX, "-p", str(self.workdir), "-c", str(self.conf), "-g", "daemon off;"],
                                            stdout=stderr, stderr=stderr)
        if not wait_for_port("127.0.0.1", self.port, timeout=120):
            logs = [self.workdir / "stderr.log", self.workdir / "error.log"]
            raise RuntimeError("baseline nginx did not start: " +
                               "".join(p.read_text()[-2000:] for p in logs if p.exists()))

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            workers = procmem.children(self.process.pid)
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            for pid in workers:  # a worker outliving its master must not outlive the run
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        shutil.rmtree(self.workdir, ignore_errors=True)

    def nginx_master(self) -> int:
        return self.process.pid

    def grow(self, routes: int) -> float:
        began = time.monotonic()
        for i in range(self.routes, routes):
            self.hosts[f"r-{i}.bench"] = [("/", "web")]
        self.reload()
        poll_until_200(self.port, f"r-{routes - 1}.bench", began)
        served = time.monotonic() - began
        self.routes = routes
        self.wait_old_workers_gone()
        return served

    def wait_old_workers_gone(self, timeout: float = 120) -> None:
        """After a reload the old workers finish their requests and exit; waits (bounded) until only the
        new generation is left, so that memory and the next measurement are not of two generations."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(procmem.children(self.process.pid)) > 2:
            time.sleep(0.1)

    def create(self, name: str) -> float:
        host = f"{name}.bench"

        def change() -> float:
            known = time.monotonic()
            self.hosts[host] = [("/", "web")]
            self.reload()
            return known
        return time_to_200(self.port, host, change)

    # the storm's changes, each followed by a reload
    def add_host(self, name: str) -> None:
        self.hosts[f"{name}.bench"] = [("/", "churn")]
        self.reload()

    def delete_host(self, name: str) -> None:
        del self.hosts[f"{name}.bench"]
        self.reload()

    def set_churn_endpoints(self, addresses: list[str]) -> None:
        self.upstreams["churn"] = [f"{a}:8080" for a in addresses]
        self.reload()

    def set_paths(self, host_index: int, extra: list[str]) -> None:
        # nginx wants the longer prefixes first only for readability; it picks the longest match itself.
        self.hosts[f"r-{host_index}.bench"] = [*((p, "churn") for p in extra), ("/", "web")]
        self.reload()


# ---- measurements ---------------------------------------------------------------------------------------


def creations(systems: list[Any], counts: dict[str, int], routes: int, phase: str, load_rate: float,
              log: Log) -> dict[str, Any]:
    """Creates counts[system] new hosts on each system one at a time, alternating which goes first; in the
    "load" phase with wrk on two existing hosts of each system (`load_rate` requests/s each, 0: closed loop)."""
    ms: dict[str, list[float]] = {s.name: [] for s in systems}
    loads = ({s.name: Load(s.port, ["r-0.bench", f"r-{routes // 2}.bench"], rate=load_rate) for s in systems}
             if phase == "load" else {})
    try:
        if loads:
            time.sleep(1)
        rounds = max(counts[s.name] for s in systems)
        for i in range(rounds):
            for s in (systems if i % 2 == 0 else list(reversed(systems))):
                if i < counts[s.name]:
                    create = s.create_route if phase == "httproute" else s.create
                    ms[s.name].append(create(f"{phase}-{routes}-{i}"))
                    time.sleep(SETTLE)
            if (i + 1) % max(1, rounds // 5) == 0:
                log(f"{routes} routes, {phase}: {i + 1}/{rounds}, p50 so far " +
                    ", ".join(f"{n} {percentile(v, 50):.1f} ms" for n, v in ms.items() if v))
    finally:
        totals = {name: load.stop() for name, load in loads.items()}
    return {name: summary(v) | ({"load": totals[name]} if name in totals else {}) for name, v in ms.items() if v}


def storm(system: Any, routes: int, changes: int, rate: float, churn_pods: list[str], tag: str,
          log: Log) -> dict[str, Any]:
    """`changes` changes at `rate` per second while wrk loads r-0 (whose Ingress gains paths) and r-<routes/2>.
    A system slower than the rate (a reload that takes longer than the interval) applies them back to back."""
    master = system.nginx_master()
    workers_before = sorted(procmem.children(master))
    reloads_before = getattr(system, "reloads", 0)
    sampler = procmem.PeakSampler(master)
    load = Load(system.port, ["r-0.bench", f"r-{routes // 2}.bench"], connections=8)
    added: list[str] = []
    extra: list[str] = []
    started = 0.0
    behind = 0.0
    try:
        time.sleep(1)
        started = time.monotonic()
        for i in range(changes):
            due = started + i / rate
            now = time.monotonic()
            if now < due:
                time.sleep(due - now)
            else:
                behind = max(behind, now - due)
            kind = i % 4
            if kind == 0:    # a new host
                name = f"storm-{tag}-{i}"
                system.add_host(name)
                added.append(name)
            elif kind == 1:  # the churn Service's endpoints: a rotating subset
                system.set_churn_endpoints(churn_pods[i % 3:] or churn_pods)
            elif kind == 2:  # a host added before goes again (every other one stays)
                if len(added) >= 2 and (i // 4) % 2 == 0:
                    system.delete_host(added.pop(0))
                else:
                    system.set_churn_endpoints(churn_pods)
            else:            # the loaded host r-0 gains a path ("/" stays)
                extra = [*extra[-4:], f"/extra-{i}"]
                system.set_paths(0, extra)
        applied = time.monotonic() - started
        time.sleep(2)
    finally:
        totals = load.stop()
        memory = sampler.stop()
    result = {"changes": changes, "rate": rate, "seconds": round(applied, 2), "most_behind_s": round(behind, 2),
              "load": totals, "peak_memory": memory,
              "nginx_workers_replaced": sorted(procmem.children(master)) != workers_before,
              "reloads": getattr(system, "reloads", 0) - reloads_before}
    log(f"storm {system.name} at {routes} routes: {changes} changes in {applied:.1f} s, {totals['requests']} requests, "
        f"{totals['failed_requests']} failed, {totals['cut_connections']} cut connections, "
        f"peak PSS {memory['pss_kb'] / 1024:.1f} MB ({memory['most_processes']} processes)")
    return result


# ---- report ---------------------------------------------------------------------------------------------


def per_size(value: str, sizes: list[int], what: str) -> list[int]:
    counts = [int(x) for x in value.split(",")]
    if len(counts) == 1:
        counts = counts * len(sizes)
    if len(counts) != len(sizes):
        raise SystemExit(f"{what}: one count, or one per size in --routes ({len(sizes)})")
    return counts


def nginx_version() -> str:
    out = subprocess.run([NGINX, "-v"], capture_output=True, text=True).stderr.strip()
    return out.rsplit("/", 1)[-1]


def report(command: list[str], results: dict[str, Any], seconds: float) -> str:
    def row(name: str, s: dict[str, Any], phase: str) -> str:
        load = f"{s['load']['rps']:.0f} req/s" if "load" in s else "-"
        return f"| {name} | {phase} | {s['n']} | {s['p50']:.1f} | {s['p99']:.1f} | {s['max']:.1f} | {load} |"

    lines = [
        "# Route propagation",
        "",
        f"`{' '.join(command)}` on {os.cpu_count()} cores ({platform.machine()}, Linux {platform.release()}, "
        f"nginx {nginx_version()}), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {seconds / 60:.1f} min.",
        "",
        "With N Ingresses present (one host each), new Ingresses are created one at a time; each number is the "
        "time from the API server acknowledging the create (kroute) or from the change being known (baseline) to "
        "the first 200 for the new host, polled from C (bench/propagation/first200.c) with a new connection every 0.5 ms, "
        "with a 50 ms pause "
        "after each first 200; the creations alternate between kroute and the baseline. \"load\": wrk on two "
        "existing hosts of each proxy during the phase, " +
        (f"{results['load_rate']:g} requests/s to each proxy (4 connections per host, each waiting between requests)."
         if results.get("load_rate", 0) > 0 else "as fast as wrk can send (closed loop, 4 connections per host)."),
        "",
        "| routes | | phase | creations | p50 ms | p99 ms | max ms | load served |",
        "|---:|---|---|---|---|---|---|---|",
    ]
    for size in results["sizes"]:
        for name in ("kroute", "baseline"):
            for phase in ("idle", "load", "httproute"):
                s = size["phases"].get(phase, {}).get(name)
                if s:
                    label = "reload baseline" if name == "baseline" else name
                    lines.append(f"| {size['routes']:,} " + row(label, s, phase))
    lines += ["", "Bringing each system to N routes (kroute: N Ingresses created through the API; baseline: one "
              "generated config, one reload), nginx memory at rest afterwards (master + 2 workers; PSS, MB) and "
              "kroute-agent's:", "",
              "| routes | kroute: until served | baseline: until served | kroute nginx PSS | baseline nginx PSS | "
              "kroute-agent PSS |", "|---:|---:|---:|---:|---:|---:|"]
    for size in results["sizes"]:
        mem = size["memory"]
        lines.append(f"| {size['routes']:,} | {size['grow_s']['kroute']:.1f} s | {size['grow_s'].get('baseline', 0):.1f} s | "
                     f"{mem['kroute']['pss_kb'] / 1024:.1f} | "
                     f"{mem['baseline']['pss_kb'] / 1024 if 'baseline' in mem else 0:.1f} | "
                     f"{mem['agent']['pss_kb'] / 1024:.1f} |")
    if results.get("storm"):
        st = results["storm"]
        lines += ["", f"Storm at {st['routes']:,} routes: {st['changes']} changes at {st['rate']:g}/s while wrk "
                  "(2 x 8 connections) loads two hosts that exist throughout:", "",
                  "| | round | changes applied in | requests | failed requests | cut connections | reloads | "
                  "nginx workers replaced | peak nginx PSS |", "|---|---|---|---|---|---|---|---|---|"]
        for r, rnd in enumerate(st["rounds"], 1):
            for name, s in rnd.items():
                t = s["load"]
                lines.append(f"| {'reload baseline' if name == 'baseline' else name} | {r} | {s['seconds']:.1f} s | "
                             f"{t['requests']:,} | {t['failed_requests']} | {t['cut_connections']} | {s['reloads']} | "
                             f"{'yes' if s['nginx_workers_replaced'] else 'no'} | "
                             f"{s['peak_memory']['pss_kb'] / 1024:.1f} MB ({s['peak_memory']['most_processes']} processes) |")
    met = all(size["phases"][p]["kroute"]["p50"] <= 10 and size["phases"][p]["kroute"]["p99"] <= 30
              for size in results["sizes"] for p in size["phases"])
    lines += ["", "\"httproute\": the same for HTTPRoutes, idle (kroute only).", "",
              f"Target (kroute, every size and phase): p50 <= 10 ms and p99 <= 30 ms: **{'met' if met else 'missed'}**.",
              ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--routes", default="5000", help="Ingresses present before measuring; several: 100,1000,10000")
    parser.add_argument("--creations", default="1000", help="new Ingresses per phase (idle, load); one, or one per size")
    parser.add_argument("--baseline-creations", default=None,
                        help="reloads per phase for the baseline (default: --creations); one or one per size; 0 skips")
    parser.add_argument("--load-rate", type=float, default=1000,
                        help="requests/s that wrk sends to each proxy in the load phase; 0: as fast as it can "
                        "(closed loop: on a small machine that starves the control plane along with everything else)")
    parser.add_argument("--storm", type=int, default=0, help="changes in the storm (0: no storm)")
    parser.add_argument("--storm-rate", type=float, default=10.0, help="storm changes per second")
    parser.add_argument("--storm-routes", type=int, default=None, help="the size (one of --routes) of the storm; "
                        "default: the largest up to 1,000")
    parser.add_argument("--storm-rounds", type=int, default=1, help="storms per system, alternating which goes first")
    parser.add_argument("--quick", action="store_true",
                        help="500 routes, 100 creations, 50 baseline reloads (unless --baseline-creations is given)")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "propagation.md")
    args = parser.parse_args()
    if args.quick:
        args.routes, args.creations = "500", "100"
        if args.baseline_creations is None:
            args.baseline_creations = "50"
    sizes = [int(x) for x in args.routes.split(",")]
    if sizes != sorted(sizes):
        raise SystemExit("--routes: sizes in increasing order")
    kroute_counts = per_size(args.creations, sizes, "--creations")
    baseline_counts = per_size(args.baseline_creations or args.creations, sizes, "--baseline-creations")
    if not all(kroute_counts):
        raise SystemExit("--creations: at least one per size")
    storm_routes = args.storm_routes or max([s for s in sizes if s <= 1000] or sizes[:1])
    if args.storm and storm_routes not in sizes:
        raise SystemExit("--storm-routes: one of the sizes in --routes")
    command = ["python3", "bench/propagation/bench.py", *sys.argv[1:]]

    def log(text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    began = time.monotonic()
    state = Path(tempfile.mkdtemp(prefix="kroute-propagation-"))
    cluster = Cluster(state / "cluster", tools_bin(), gateway_api="standard")
    kroute = baseline = None
    results: dict[str, Any] = {"sizes": [], "storm": None, "load_rate": args.load_rate}
    try:
        cluster.start()
        kroute = Kroute(cluster, log)
        web, churn = kroute.pods()
        with_baseline = any(baseline_counts)
        if with_baseline:
            baseline = ReloadBaseline(web, churn, log)
            baseline.start()
        systems = [s for s in (kroute, baseline) if s is not None]
        for size, k_count, b_count in zip(sizes, kroute_counts, baseline_counts):
            grow = {}
            for s in systems:
                grow[s.name] = s.grow(size)
                log(f"{s.name}: {size} routes served after {grow[s.name]:.1f} s")
            phases = {}
            for phase in ("idle", "load"):
                phases[phase] = creations(systems, {"kroute": k_count, "baseline": b_count}, size, phase,
                                          args.load_rate, log)
                if baseline:
                    baseline.wait_old_workers_gone()
            phases["httproute"] = creations([kroute], {"kroute": k_count}, size, "httproute", args.load_rate, log)
            time.sleep(2)
            memory = {s.name: procmem.tree_memory_kb(s.nginx_master()) for s in systems}
            memory["agent"] = kroute.agent_memory_kb()
            log(f"{size} routes: nginx PSS " + ", ".join(f"{n} {m['pss_kb'] / 1024:.1f} MB" for n, m in memory.items()))
            results["sizes"].append({"routes": size, "creations": {"kroute": k_count, "baseline": b_count},
                                     "grow_s": grow, "phases": phases, "memory": memory})
            if args.storm and size == storm_routes:
                rounds = []
                for r in range(args.storm_rounds):
                    order = systems if r % 2 == 0 else list(reversed(systems))
                    rounds.append({s.name: storm(s, size, args.storm, args.storm_rate, churn, f"{size}-{r}", log) for s in order})
                    if baseline:
                        baseline.wait_old_workers_gone()
                results["storm"] = {"routes": size, "changes": args.storm, "rate": args.storm_rate, "rounds": rounds}
        results["publishes"] = kroute.stack.agent.metric("kroute_agent_publishes_total")
    finally:
        for s in (baseline, kroute):
            if s is not None:
                try:
                    s.close()
                except Exception as e:  # noqa: BLE001 - the cluster must still stop
                    log(f"closing {s.name}: {e}")
        cluster.stop()
        shutil.rmtree(state, ignore_errors=True)
    seconds = time.monotonic() - began
    text = report(command, results, seconds)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    args.output.with_suffix(".json").write_text(json.dumps(
        {"command": command, "args": vars(args) | {"output": str(args.output)}, "seconds": round(seconds, 1),
         "nginx": nginx_version(), **results}, indent=2) + "\n")
    print(text)
    met = all(size["phases"][p]["kroute"]["p50"] <= 10 and size["phases"][p]["kroute"]["p99"] <= 30
              for size in results["sizes"] for p in size["phases"])
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
