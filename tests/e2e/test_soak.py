"""Soak: steady traffic on stable routes while the cluster changes ten times a second, for a long time.

The whole stack (real API server, kroute-agent, nginx with the module, echo pods in network namespaces).
Load: LOADERS kept-alive HTTP/1.1 clients at a fixed request rate on two stable hosts; every reply that is
not a 200 from the right Service, and every connection error, is counted. Changes: a fixed cycle of
Ingress, Service and EndpointSlice creations, updates and deletions (CYCLE_CHANGES of them, 10 a second)
that ends where it began, so the table at every cycle boundary is the same.

Resources: the resident memory (VmRSS) and open file descriptors of nginx's master and workers and of the
agent, sampled every few seconds. They are compared at two quiet points, the end of the warm-up and the
end of the run: changes paused at a cycle boundary, the clients' connections closed, the table settled.
Same table, same traffic state, so what differs is what leaked:
- RSS: nginx's (master + workers) and the agent's may grow by less than 5 %;
- descriptors: every descriptor that is not an established connection (files, the table, epoll,
  listeners, channels) must be exactly as many; nginx may hold no client connection after the clients
  closed theirs, none in CLOSE_WAIT, and no more idle upstream connections (`keepalive`) than the load
  could have left behind (LOADERS per stable endpoint per worker) or than at the first quiet point; the
  agent no more API server connections than at the first quiet point plus the few libcurl may keep idle;
- the table directory holds no more snapshot files, and no worker maps more snapshots.

KROUTE_SOAK_SECONDS sets the length (default 100 s, the CI variant; `make soak` runs 1800 s). A summary
with the whole series goes to $KROUTE_RESULTS/soak.{json,md} (build/ when unset).
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent_fixtures import wait_for
from kube import ROOT
from stack import Backend, Stack, endpoint_slice, make_stack, rule, service  # noqa: F401

SECONDS = int(os.environ.get("KROUTE_SOAK_SECONDS", "100"))
CHANGES_PER_SECOND = 10
CYCLE_CHANGES = 20                # Changes.cycle(): two seconds of changes, back to the starting state
LOADERS = 4                       # kept-alive client connections, two per stable host
REQUESTS_PER_SECOND = 50          # per client
RSS_GROWTH_LIMIT = 0.05
AGENT_IDLE_CONNECTIONS = 10       # see the descriptor checks at the end of the test
STABLE_HOSTS = {"stable-a.soak": "stable-a", "stable-b.soak": "stable-b"}
RESULTS = Path(os.environ.get("KROUTE_RESULTS") or ROOT / "build")


def warmup_seconds(total: int) -> float:
    """Allocators, caches and the API server's watch caches settle in the first minutes."""
    return min(180.0, max(15.0, total * 0.1))


def sample_interval(total: int) -> float:
    return 5.0 if total >= 600 else 2.0


# ---- the load ---------------------------------------------------------------------------------------


@dataclass
class Counts:
    ok: int = 0
    non_2xx: int = 0
    wrong_backend: int = 0
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    error_kinds: dict[str, int] = field(default_factory=dict)
    first_failures: list[str] = field(default_factory=list)

    def failure(self, what: str) -> None:
        if len(self.first_failures) < 20:
            self.first_failures.append(f"{time.strftime('%H:%M:%S')} {what}")


class Load:
    """LOADERS threads, each with one kept-alive connection to nginx, at REQUESTS_PER_SECOND each."""

    def __init__(self, port: int):
        self.port = port
        self.counts = Counts()
        self.lock = threading.Lock()
        self.running = threading.Event()   # set: send requests; clear: close the connection and wait
        self.idle = [threading.Event() for _ in range(LOADERS)]
        self.done = threading.Event()
        hosts = list(STABLE_HOSTS)
        self.threads = [threading.Thread(target=self._client, args=(i, hosts[i % len(hosts)]), daemon=True)
                        for i in range(LOADERS)]

    def start(self) -> None:
        self.running.set()
        for t in self.threads:
            t.start()

    def pause(self) -> None:
        """Stops sending and closes every client connection; returns once all clients are idle."""
        self.running.clear()
        for idle in self.idle:
            assert idle.wait(30), "a load client did not stop"

    def resume(self) -> None:
        for idle in self.idle:
            idle.clear()
        self.running.set()

    def stop(self) -> None:
        self.done.set()
        self.running.set()
        for t in self.threads:
            t.join(30)

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return {"ok": self.counts.ok, "non_2xx": self.counts.non_2xx,
                    "wrong_backend": self.counts.wrong_backend, "errors": self.counts.errors}

    def _record(self, host: str, status: int | None, service: str | None, error: str | None) -> None:
        with self.lock:
            c = self.counts
            if error is not None:
                c.errors += 1
                c.error_kinds[error] = c.error_kinds.get(error, 0) + 1
                c.failure(f"{host}: {error}")
            else:
                assert status is not None
                c.statuses[status] = c.statuses.get(status, 0) + 1
                if not 200 <= status < 300:
                    c.non_2xx += 1
                    c.failure(f"{host}: HTTP {status}")
                elif service != STABLE_HOSTS[host]:
                    c.wrong_backend += 1
                    c.failure(f"{host}: answered by {service!r}")
                else:
                    c.ok += 1

    def _client(self, index: int, host: str) -> None:
        conn: http.client.HTTPConnection | None = None
        interval = 1.0 / REQUESTS_PER_SECOND
        sent = 0
        began = time.monotonic()
        while not self.done.is_set():
            if not self.running.is_set():
                if conn is not None:
                    conn.close()
                    conn = None
                self.idle[index].set()
                self.running.wait()
                sent, began = 0, time.monotonic()
                continue
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                conn.request("GET", f"/soak/{index}/{sent}", headers={"Host": host})
                response = conn.getresponse()
                body = response.read()
                service = None
                if response.status == 200 and response.getheader("X-Backend"):
                    service = json.loads(body)["name"].split("/")[0]
                self._record(host, response.status, service, None)
                if response.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException, ValueError) as e:
                self._record(host, None, None, type(e).__name__)
                conn.close()
                conn = None
            sent += 1
            # A fixed rate, never a burst to catch up: the next request is due at began + sent * interval.
            delay = began + sent * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -1:
                sent, began = 0, time.monotonic()
        if conn is not None:
            conn.close()
        self.idle[index].set()


# ---- the changes ------------------------------------------------------------------------------------


class Changes:
    """CHANGES_PER_SECOND API changes in cycles that end where they began (see cycle())."""

    def __init__(self, stack: Stack, churn: Backend, stable_b: Backend, stable_a_spec: dict[str, Any]):
        self.s = stack
        self.churn = churn
        self.stable_b = stable_b
        self.stable_a_spec = stable_a_spec
        self.made = 0
        self.cycles = 0
        self.error: BaseException | None = None
        self.running = threading.Event()
        self.idle = threading.Event()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def cycle(self, k: int) -> list[Any]:
        """One cycle's changes (callables); objects are named after the cycle, so every cycle makes new ones."""
        s, api, ns = self.s, self.s.api, self.s.namespace
        churn, stable_b = self.churn, self.stable_b
        pods_b = stable_b.addresses
        x, y, svc = f"churn-{k}", f"churn-svc-{k}", f"svc-{k}"
        churn_x = s.ingress(x, {"rules": [rule(f"{x}.soak", ("/", "Prefix", "churn"))]})
        churn_x2 = s.ingress(x, {"rules": [rule(f"{x}.soak", ("/", "Prefix", "churn")),
                                           rule(f"{x}-b.soak", ("/", "Prefix", "churn"), ("/svc", "Prefix", svc))]})
        churn_y = s.ingress(y, {"rules": [rule(f"{y}.soak", ("/", "Prefix", svc))]})
        stable_a_extra = s.ingress("stable-a", {"rules": [
            rule("stable-a.soak", ("/", "Prefix", "stable-a"), (f"/extra-{k}", "Prefix", "churn"))]})
        new_service = service(ns, svc)
        moved_service = service(ns, svc, port=8080)
        moved_service["spec"]["ports"].append({"name": "admin", "port": 9090, "targetPort": 9090, "protocol": "TCP"})
        new_slice = endpoint_slice(ns, svc, churn.addresses)
        cycle = [
            lambda: api.create(churn_x),                                              # Ingress create
            lambda: api.replace(s.endpoint_slice(churn, churn.addresses[1:])),        # endpoints: one gone
            lambda: api.replace(stable_a_extra),                                      # stable Ingress gains a path
            lambda: api.create(new_service),                                          # Service create
            lambda: api.create(new_slice),                                            # its EndpointSlice
            lambda: api.create(churn_y),                                              # Ingress to the new Service
            lambda: api.replace(endpoint_slice(ns, "stable-b", pods_b[:1])),          # stable endpoints: one
            lambda: api.replace(s.endpoint_slice(churn, ready=False)),                # endpoints not ready
            lambda: api.replace(churn_x2),                                            # Ingress update: a host more
            lambda: api.replace(moved_service),                                       # Service update: a port more
            lambda: api.replace(endpoint_slice(ns, "stable-b", pods_b[1:])),          # stable endpoints: the other
            lambda: api.replace(s.endpoint_slice(churn)),                             # endpoints ready again
            lambda: api.delete(churn_y),                                              # Ingress delete
            lambda: api.delete(new_slice),                                            # EndpointSlice delete
            lambda: api.delete(new_service),                                          # Service delete
            lambda: api.replace(s.ingress("stable-a", self.stable_a_spec)),           # stable Ingress as before
            lambda: api.replace(endpoint_slice(ns, "stable-b", pods_b)),              # stable endpoints: both
            lambda: api.delete(churn_x),                                              # Ingress delete
            lambda: api.replace(s.endpoint_slice(churn, churn.addresses[:1])),        # endpoints: two gone
            lambda: api.replace(s.endpoint_slice(churn)),                             # as at the start
        ]
        assert len(cycle) == CYCLE_CHANGES
        return cycle

    def start(self) -> None:
        self.running.set()
        self.thread.start()

    def pause(self) -> None:
        """Returns at the end of the running cycle (the starting state)."""
        self.running.clear()
        assert self.idle.wait(60), "the change cycle did not finish"
        if self.error is not None:
            raise self.error

    def resume(self) -> None:
        self.idle.clear()
        self.running.set()

    def stop(self) -> None:
        self.done.set()
        self.running.set()
        self.thread.join(60)

    def _run(self) -> None:
        interval = 1.0 / CHANGES_PER_SECOND
        try:
            while not self.done.is_set():
                if not self.running.is_set():
                    self.idle.set()
                    self.running.wait()
                    continue
                began = time.monotonic()
                for n, change in enumerate(self.cycle(self.cycles)):
                    # At most CHANGES_PER_SECOND: each change waits for its slot, never bursts to catch up.
                    delay = began + n * interval - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    change()
                    self.made += 1
                self.cycles += 1
                delay = began + CYCLE_CHANGES * interval - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        except BaseException as e:  # noqa: BLE001 - reported by pause()/the test
            self.error = e
        finally:
            self.idle.set()


# ---- resources --------------------------------------------------------------------------------------


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def tcp_sockets() -> dict[str, tuple[str, int, int]]:
    """socket inode -> (state, local port, remote port) for every TCP socket of this network namespace."""
    sockets = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            sockets[f[9]] = (f[3], int(f[1].rsplit(":", 1)[1], 16), int(f[2].rsplit(":", 1)[1], 16))
    return sockets


ESTABLISHED, CLOSE_WAIT = "01", "08"


def descriptors(pid: int, sockets: dict[str, tuple[str, int, int]], server_ports: set[int],
                table_dir: Path) -> dict[str, int]:
    """A process's descriptors: all, those that are not connections, client and upstream connections, CLOSE_WAIT;
    and how many table snapshots it maps."""
    counts = {"fds": 0, "other": 0, "client": 0, "upstream": 0, "close_wait": 0}
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        counts["fds"] += 1
        if target.startswith("socket:["):
            found = sockets.get(target[8:-1])
            if found is not None and found[0] in (ESTABLISHED, CLOSE_WAIT):
                if found[0] == CLOSE_WAIT:
                    counts["close_wait"] += 1
                elif found[1] in server_ports:
                    counts["client"] += 1
                else:
                    counts["upstream"] += 1
                continue
        counts["other"] += 1
    maps = Path(f"/proc/{pid}/maps").read_text()
    counts["snapshots_mapped"] = len({line.split()[-1] for line in maps.splitlines()
                                      if str(table_dir) in line and "/table." in line})
    return counts


class Probe:
    def __init__(self, stack: Stack):
        assert stack.nginx is not None and stack.agent is not None
        self.s = stack
        self.nginx = stack.nginx
        self.agent = stack.agent
        self.server_ports = {self.nginx.port, self.nginx.status_port, self.nginx.tls_port}

    def nginx_pids(self) -> list[int]:
        assert self.nginx.process is not None
        return [self.nginx.process.pid, *self.nginx.worker_pids()]

    def sample(self) -> dict[str, Any]:
        sockets = tcp_sockets()
        table_dir = self.agent.table_dir
        nginx = {}
        for pid in self.nginx_pids():
            nginx[pid] = {"rss_kb": rss_kb(pid), **descriptors(pid, sockets, self.server_ports, table_dir)}
        agent_pid = self.agent.process.pid
        agent = {"rss_kb": rss_kb(agent_pid), **descriptors(agent_pid, sockets, set(), table_dir)}
        total = {key: sum(p[key] for p in nginx.values()) for key in next(iter(nginx.values()))}
        return {"nginx": total, "nginx_processes": {str(k): v for k, v in nginx.items()}, "agent": agent,
                "table_files": len([p for p in table_dir.iterdir() if p.name.startswith("table.")]),
                "worker_snapshots_max": max(v["snapshots_mapped"] for k, v in nginx.items()
                                            if k != self.nginx.process.pid)}

    def generation(self) -> int:
        with open(self.agent.table_dir / "control", "rb") as f:
            f.seek(8)
            return int.from_bytes(f.read(8), "little")


# ---- quiet points -----------------------------------------------------------------------------------


def quiet_point(probe: Probe, load: Load, changes: Changes, label: str) -> dict[str, Any]:
    """Pauses changes (at a cycle boundary) and load, lets the table settle and nginx retire old snapshots,
    and measures: descriptors as the least over a few samples (a connection in passing is no leak), memory
    as the median."""
    changes.pause()
    load.pause()
    # The agent publishes the last changes; the table then stays put.
    def settled() -> bool:
        before = probe.generation()
        time.sleep(1.5)
        return probe.generation() == before
    wait_for("the table to settle", settled, timeout=60, interval=0)
    # Idle workers look for new generations and free retired snapshots every second (kroute_table refresh).
    time.sleep(2.5)
    samples = []
    for _ in range(5):
        samples.append(probe.sample())
        time.sleep(0.5)
    point: dict[str, Any] = {"label": label, "generation": probe.generation()}
    for who in ("nginx", "agent"):
        point[who] = {key: min(s[who][key] for s in samples) for key in samples[0][who]}
        point[who]["rss_kb"] = int(statistics.median(s[who]["rss_kb"] for s in samples))
    point["table_files"] = min(s["table_files"] for s in samples)
    point["worker_snapshots_max"] = min(s["worker_snapshots_max"] for s in samples)
    return point


# ---- the test ---------------------------------------------------------------------------------------


def test_soak_steady_load_and_changes_keep_requests_memory_and_descriptors_flat(make_stack) -> None:  # noqa: ANN001
    s: Stack = make_stack()
    assert s.nginx is not None and s.agent is not None
    stable_a = s.backend("stable-a", replicas=2)
    stable_b = s.backend("stable-b", replicas=2)
    churn = s.backend("churn", replicas=3)
    stable_a_spec = {"rules": [rule("stable-a.soak", ("/", "Prefix", "stable-a"))]}
    s.apply(s.ingress("stable-a", stable_a_spec),
            s.ingress("stable-b", {"rules": [rule("stable-b.soak", ("/", "Prefix", "stable-b"))]}))
    for host in STABLE_HOSTS:
        s.wait_status(host)
    probe = Probe(s)
    pids_before = s.nginx.pids()
    publishes_before = s.agent.metric("kroute_agent_publishes_total")

    load = Load(s.nginx.port)
    changes = Changes(s, churn, stable_b, stable_a_spec)
    series: list[dict[str, Any]] = []
    points: list[dict[str, Any]] = []
    warmup = warmup_seconds(SECONDS)
    interval = sample_interval(SECONDS)
    began = time.monotonic()

    def run_for(until: float) -> None:
        next_sample = time.monotonic()
        while time.monotonic() < until:
            if changes.error is not None:
                raise changes.error
            if time.monotonic() >= next_sample:
                sample = probe.sample()
                series.append({"t": round(time.monotonic() - began, 1), "nginx": sample["nginx"],
                               "agent": sample["agent"], "table_files": sample["table_files"],
                               "worker_snapshots_max": sample["worker_snapshots_max"],
                               "changes": changes.made, "generation": probe.generation(), **load.snapshot()})
                next_sample += interval
            time.sleep(max(0.0, min(0.5, next_sample - time.monotonic())))

    load.start()
    changes.start()
    try:
        run_for(began + warmup)
        points.append(quiet_point(probe, load, changes, "after warm-up"))
        measured_from = time.monotonic()
        changes.resume()
        load.resume()
        run_for(began + SECONDS)
        points.append(quiet_point(probe, load, changes, "end"))
        measured_seconds = time.monotonic() - measured_from
    finally:
        changes.stop()
        load.stop()
    elapsed = time.monotonic() - began

    # Changes still reach nginx at the end of the soak.
    s.api.create(s.ingress("after-soak", {"rules": [rule("after-soak.soak", ("/", "Prefix", "churn"))]}))
    assert s.wait_status("after-soak.soak").service == "churn"
    s.api.delete(s.ingress("after-soak", {}))
    s.wait_status("after-soak.soak", status=404)

    counts = load.counts
    start, end = points
    publishes = s.agent.metric("kroute_agent_publishes_total") - publishes_before
    nginx_log = s.nginx.error_log()
    summary = {
        "seconds": SECONDS, "elapsed_seconds": round(elapsed, 1), "warmup_seconds": warmup,
        "measured_seconds": round(measured_seconds, 1), "sample_interval_seconds": interval,
        "commit": git_revision(),
        "load": {"clients": LOADERS, "target_requests_per_second": LOADERS * REQUESTS_PER_SECOND,
                 "achieved_requests_per_second": round((counts.ok + counts.non_2xx + counts.errors
                                                        + counts.wrong_backend) / elapsed, 1),
                 "ok": counts.ok, "non_2xx": counts.non_2xx, "wrong_backend": counts.wrong_backend,
                 "errors": counts.errors, "statuses": counts.statuses, "error_kinds": counts.error_kinds,
                 "first_failures": counts.first_failures},
        "changes": {"made": changes.made, "cycles": changes.cycles, "target_per_second": CHANGES_PER_SECOND,
                    "achieved_per_second": round(changes.made / elapsed, 2), "publishes": publishes},
        "quiet_points": points, "series": series,
        "nginx_error_log_lines": {level: nginx_log.count(f"[{level}]") for level in ("error", "crit", "alert", "emerg")},
    }
    write_summary(summary)

    # Traffic: not one failed request on the stable routes.
    assert counts.ok > 0
    assert counts.non_2xx == 0 and counts.errors == 0 and counts.wrong_backend == 0, summary["load"]
    # The changes really happened and were published, without a reload.
    assert changes.cycles >= 3 and publishes >= changes.cycles, summary["changes"]
    assert s.nginx.pids() == pids_before, "nginx master or workers changed"
    for level in ("crit", "alert", "emerg"):
        assert f"[{level}]" not in nginx_log, nginx_log[-3000:]
    # Memory: flat.
    for who in ("nginx", "agent"):
        growth = end[who]["rss_kb"] / start[who]["rss_kb"] - 1
        assert growth < RSS_GROWTH_LIMIT, f"{who} RSS grew {growth:.1%}: {start[who]} -> {end[who]}"
    # Descriptors: every one that is not a connection, exactly as many as after the warm-up.
    for who in ("nginx", "agent"):
        assert end[who]["other"] == start[who]["other"], f"{who} descriptors: {start[who]} -> {end[who]}"
    # nginx: no client connection once the clients closed theirs, none half-closed, and no more idle
    # upstream connections than the load can leave in the keepalive cache.
    assert end["nginx"]["client"] == 0 and end["nginx"]["close_wait"] == 0, end["nginx"]
    workers = len(pids_before[1])
    cache_bound = LOADERS * len(stable_a.pods + stable_b.pods) * workers
    assert end["nginx"]["upstream"] <= max(start["nginx"]["upstream"], cache_bound), (start["nginx"], end["nginx"])
    # The agent: its watches plus the connections libcurl keeps for reuse; the status writer has at most
    # 8 requests in flight (StatusOptions.max_in_flight), so a few more may sit idle than at the start.
    connections = {p["label"]: p["agent"]["upstream"] + p["agent"]["close_wait"] for p in points}
    assert connections["end"] <= connections["after warm-up"] + AGENT_IDLE_CONNECTIONS, (start["agent"], end["agent"])
    assert end["table_files"] <= start["table_files"], (start["table_files"], end["table_files"])
    assert end["worker_snapshots_max"] <= max(1, start["worker_snapshots_max"]), (start, end)


# ---- the summary ------------------------------------------------------------------------------------


def git_revision() -> str:
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + (" (with uncommitted changes)" if dirty else "")


def write_summary(summary: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "soak.json").write_text(json.dumps(summary, indent=1) + "\n")
    start, end = summary["quiet_points"]
    load, changes = summary["load"], summary["changes"]

    def growth(who: str, key: str) -> str:
        a, b = start[who][key], end[who][key]
        return f"{a} | {b} | {(b / a - 1) * 100:+.1f} %" if a else f"{a} | {b} | -"

    lines = [
        f"# Soak: {summary['seconds']} s of steady load and {CHANGES_PER_SECOND} changes per second",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M')} ({summary['elapsed_seconds']} s in all, warm-up "
        f"{summary['warmup_seconds']:.0f} s, measured {summary['measured_seconds']} s, a sample every "
        f"{summary['sample_interval_seconds']:.0f} s), commit {summary['commit']}. Written by tests/e2e/test_soak.py.",
        "",
        f"- requests: {load['ok']} answered 200 by the right Service; non-2xx {load['non_2xx']}, "
        f"wrong Service {load['wrong_backend']}, connection errors {load['errors']} "
        f"({load['clients']} kept-alive clients, {load['achieved_requests_per_second']} requests/s; "
        f"{load['target_requests_per_second']}/s targeted)",
        f"- changes: {changes['made']} ({changes['cycles']} cycles, {changes['achieved_per_second']}/s), "
        f"{changes['publishes']:.0f} table publishes",
        f"- nginx error log: {summary['nginx_error_log_lines']}",
        "",
        "Quiet points (changes paused at a cycle boundary, clients disconnected, table settled):",
        "",
        "| | after warm-up | end | change |",
        "|---|---|---|---|",
        f"| nginx RSS, master + workers (kB) | {growth('nginx', 'rss_kb')} |",
        f"| agent RSS (kB) | {growth('agent', 'rss_kb')} |",
        f"| nginx descriptors, all | {growth('nginx', 'fds')} |",
        f"| nginx descriptors, not connections | {growth('nginx', 'other')} |",
        f"| nginx idle upstream connections | {growth('nginx', 'upstream')} |",
        f"| nginx client connections | {growth('nginx', 'client')} |",
        f"| agent descriptors, all | {growth('agent', 'fds')} |",
        f"| agent descriptors, not connections | {growth('agent', 'other')} |",
        f"| table generation | {start['generation']} | {end['generation']} | |",
        f"| snapshot files in the table directory | {start['table_files']} | {end['table_files']} | |",
        f"| snapshots mapped by a worker (most) | {start['worker_snapshots_max']} | {end['worker_snapshots_max']} | |",
        "",
        "Series under load (every few samples):",
        "",
        "| t (s) | nginx RSS (kB) | agent RSS (kB) | nginx fds | agent fds | requests ok | failed | changes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    series = summary["series"]
    step = max(1, len(series) // 40)
    for row in series[::step] + ([series[-1]] if series and (len(series) - 1) % step else []):
        lines.append(f"| {row['t']} | {row['nginx']['rss_kb']} | {row['agent']['rss_kb']} | {row['nginx']['fds']} | "
                     f"{row['agent']['fds']} | {row['ok']} | {row['non_2xx'] + row['errors'] + row['wrong_backend']} | "
                     f"{row['changes']} |")
    (RESULTS / "soak.md").write_text("\n".join(lines) + "\n")
