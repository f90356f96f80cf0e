"""Faults around a running stack (docs/agent.md, "Faults"): nginx keeps serving the last good table whatever
happens to the agent, the API server or the table directory, and everything recovers without a reload.

- The agent SIGKILLed at random moments while a stream of changes keeps it publishing, and restarted each
  time: no failed request on routes that exist throughout, no pile of temporary files, and the final table
  is what a fresh agent publishes for the final objects.
- The API server gone (stopped; its port refusing; the network to it blackholed by tests/e2e/faultproxy.py):
  nginx keeps serving, the agent says not ready (/readyz, /metrics) within two probe intervals, retries with
  backoff (connections counted at the proxy: some, and no tight loop), never exits, and once the server is
  back a change reaches nginx.
- Malformed answers (a Lease whose spec is not an object, an error body nested too deep, injected by
  faultproxy.HttpFaultProxy): logged as failed election attempts, which go on; the agent keeps serving and
  leads again once the answers are sound.
- nginx workers SIGKILLed: the respawned ones map the current table before their first request.
- The table directory full (a small tmpfs): the older snapshots make room for the new one, with a warning;
  full even so, unwritable (immutable, or a read-only bind mount) or deleted: one clear error, the old
  table keeps serving, recovery once fixed; a deleted directory is made again by the agent and nginx
  follows the new control file without a reload.

Two variants. `make test` runs the short one (suite "faults": 20 kills, 15 s outages; about three minutes):
15 s is enough to see an outage through, because the slowest detection, a blackhole, takes at most two
probe intervals (10 s) and the backoff's first retries happen within the first few seconds.
`make faults-full` (KROUTE_FAULTS_FULL=1) kills the agent 100 times and keeps each outage up for 60 s,
long enough for every watch's backoff to reach its 30 s ceiling.
"""

from __future__ import annotations

import errno
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from agent_fixtures import Agent, dump_table, wait_for
from faultproxy import BAD_LEASE, BLACKHOLE, DEEP_ERROR, FORWARD, REFUSE, FaultProxy, HttpFaultProxy
from kube import Cluster
from stack import Api, Stack, make_stack, rule  # noqa: F401
from test_live import RELOAD_MARKS, wrk, wrk_totals

FULL = os.environ.get("KROUTE_FAULTS_FULL") == "1"
KILLS = 100 if FULL else 20
OUTAGE_SECONDS = 60 if FULL else 15
PROBE_INTERVAL = 5  # the agent's default --apiserver-probe-interval
# The agent's watch backoff (agent/kube/backoff.h): 0.5 s doubling to 30 s, each delay x[0.5, 1.5).
BACKOFF_INITIAL, BACKOFF_MAX, BACKOFF_LOW = 0.5, 30.0, 0.5
KEEP = 3  # snapshots the publisher keeps


# ---- helpers ----------------------------------------------------------------------------------------


def max_retries(seconds: float) -> int:
    """The most retries one watch can make in `seconds` when every backoff delay is as short as jitter allows."""
    elapsed, attempt = 0.0, 0
    while True:
        delay = min(BACKOFF_INITIAL * 2 ** attempt, BACKOFF_MAX) * BACKOFF_LOW
        if elapsed + delay > seconds:
            return attempt + 1
        elapsed += delay
        attempt += 1


def readyz(agent: Agent, query: str = "") -> tuple[int, str]:
    return agent.get("/readyz" + query)


def log_lines(text: str, message: str) -> list[str]:
    return [line for line in text.splitlines() if f'msg="{message}' in line]


def table_files(table_dir: Path) -> list[str]:
    return sorted(p.name for p in table_dir.iterdir() if p.name.startswith("table."))


def comparable(dump: dict[str, Any] | None) -> dict[str, Any] | None:
    """A table dump without what differs between two agents publishing the same routes."""
    if dump is None:
        return None
    return {k: v for k, v in dump.items() if k not in ("generation", "built")}


def access_generation(s: Stack, path: str) -> int:
    """The $kroute_generation nginx logged for the one request to `path`."""
    assert s.nginx is not None
    # Written in the log phase, after the reply went out: it may land a moment after the client has it.
    lines = wait_for(f"the access log line of {path}",
                     lambda: [line for line in s.nginx.access_log().splitlines() if f" {path} " in line],
                     timeout=5, interval=0.02)
    assert len(lines) == 1, lines
    found = re.search(r" generation=(\d+) ", lines[0])
    assert found, lines[0]
    return int(found.group(1))


def worker_generations(s: Stack) -> dict[int, int]:
    """pid -> generation of the table each live worker maps, from the status location."""
    assert s.nginx is not None
    live = set(s.nginx.worker_pids())
    return {w["pid"]: w["generation"] for w in s.nginx.status()["workers"] if w["pid"] in live}


def web_stack(make_stack: Callable[..., Stack], host: str, **kwargs: Any) -> Stack:
    s = make_stack(**kwargs)
    s.backend("web", replicas=2)
    s.apply(s.ingress("web", {"rules": [rule(host, ("/", "Prefix", "web"))]}))
    s.wait_status(host)
    return s


# ---- the agent killed while publishing ----------------------------------------------------------------


class Churn:
    """A steady stream of changes from its own thread and connection, remembering what it left behind:
    churn Ingresses come and go, the churn Service's endpoints rotate, stable-0 gains and loses a path."""

    def __init__(self, s: Stack, churn_addresses: list[str]):
        self.s = s
        self.api = Api(s.cluster)
        self.addresses = churn_addresses
        self.alive: set[str] = set()
        self.slice = list(churn_addresses)
        self.extra_path: str | None = None
        self.changes = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="churn", daemon=True)

    def start(self) -> Churn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        self.api.close()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        s, n = self.s, 0
        try:
            while not self._stop.is_set():
                step = n % 3
                if step == 0:
                    name = f"churn-{n}"
                    self.api.create(s.ingress(name, {"rules": [rule(f"{name}.kill", ("/", "Prefix", "churn"))]}))
                    self.alive.add(name)
                    if len(self.alive) > 4:
                        oldest = min(self.alive, key=lambda x: int(x.split("-")[1]))
                        self.api.delete(s.ingress(oldest, {}))
                        self.alive.remove(oldest)
                elif step == 1:
                    self.slice = self.addresses[: 1 + n % len(self.addresses)]
                    self.api.replace(s.endpoint_slice(s.backends["churn"], self.slice))
                else:
                    self.extra_path = None if self.extra_path else f"/extra-{n}"
                    paths = [("/", "Prefix", "stable")]
                    if self.extra_path:
                        paths.append((self.extra_path, "Prefix", "churn"))
                    self.api.replace(s.ingress("stable-0", {"rules": [rule("stable-0.kill", *paths)]}))
                n += 1
                self.changes = n
                self._stop.wait(0.02)
        except BaseException as e:  # noqa: BLE001 - reported by stop()
            self.error = e


def test_agent_sigkilled_while_publishing_loses_no_request_and_converges(make_stack, cluster: Cluster) -> None:  # noqa: ANN001
    seed = int(os.environ.get("KROUTE_FAULTS_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"{KILLS} kills, seed {seed} (KROUTE_FAULTS_SEED)")
    s: Stack = make_stack()
    assert s.nginx is not None and s.agent is not None
    s.backend("stable", replicas=2)
    churn = s.backend("churn", replicas=3)
    stable_hosts = [f"stable-{i}.kill" for i in range(3)]
    s.apply(*[s.ingress(f"stable-{i}", {"rules": [rule(h, ("/", "Prefix", "stable"))]})
              for i, h in enumerate(stable_hosts)])
    # A few hundred routes, so that writing a snapshot takes long enough to be interrupted now and then.
    for i in range(150):
        s.api.create(s.ingress(f"bulk-{i}", {"rules": [rule(f"bulk-{i}.kill", ("/", "Prefix", "stable"),
                                                              ("/api", "Prefix", "churn"))]}))
    for host in stable_hosts:
        s.wait_status(host)
    s.wait_route("bulk-149.kill")
    pids = s.nginx.pids()
    log_before = len(s.nginx.error_log())

    loads = [wrk(s, host, connections=2) for host in stable_hosts[:2]]
    changes = Churn(s, churn.addresses).start()
    published_before = len(log_lines(s.agent.log(), "route table published"))
    most_files = 0
    mid_write = 0  # kills that left a table.N.tmp behind
    try:
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.05, 1.2))  # starting, syncing, publishing, or idle: wherever it is
            s.agent.process.send_signal(signal.SIGKILL)
            s.agent.process.wait(timeout=10)
            files = table_files(s.agent.table_dir)
            most_files = max(most_files, len(files))
            mid_write += any(f.endswith(".tmp") for f in files)
            s.agent.restart()
        time.sleep(1)
    finally:
        try:
            changes.stop()
        finally:
            totals = [wrk_totals(p) if p.poll() is None else {"output": p.stdout.read()} for p in loads]

    s.agent.wait_ready(timeout=30)
    for t in totals:
        assert t.get("requests", 0) > 100, t["output"]
        assert t["non_2xx"] == 0, t["output"]
        assert t["connect"] == t["read"] == t["write"] == t["timeout"] == 0, t["output"]
    assert s.nginx.pids() == pids, "nginx master or workers changed"
    log = s.nginx.error_log()[log_before:]
    for mark in RELOAD_MARKS:
        assert mark not in log, f"{mark!r} in nginx's error log:\n{log[-3000:]}"
    published = len(log_lines(s.agent.log(), "route table published")) - published_before
    print(f"{changes.changes} changes, {published} publishes across {KILLS} kills, {mid_write} of them mid-write")
    assert published >= KILLS // 2, "the agent was hardly publishing when it was killed"

    # The final objects, as the churn left them, are what the table holds...
    def converged() -> bool:
        routes = {h["host"]: h for h in (dump_table(s.agent.table_dir) or {}).get("hosts", [])}
        churn_hosts = {h for h in routes if h.startswith("churn-")}
        if churn_hosts != {f"{name}.kill" for name in changes.alive}:
            return False
        paths = {r["path"] for r in routes["stable-0.kill"]["rules"]}
        if paths != {"/"} | ({changes.extra_path} if changes.extra_path else set()):
            return False
        first_churn = routes[f"{min(changes.alive)}.kill"]["rules"][0]["backend"]["endpoints"]
        return sorted(e["address"] for e in first_churn) == sorted(f"{a}:{churn.port}" for a in changes.slice)
    wait_for("the table to match the final objects", converged, timeout=30)
    # ...and exactly what a fresh agent publishes for them.
    fresh = Agent(cluster, s.workdir, ["--controller-class", s.controller, "--ingress-class", s.class_name,
                                       "--no-election"], None, cluster.kubeconfig)
    try:
        fresh.wait_ready()
        assert comparable(dump_table(s.agent.table_dir)) == comparable(dump_table(fresh.table_dir))
    finally:
        fresh.stop()
    # A kill mid-write leaves table.N.tmp; the next agent removes it, and only the newest snapshots stay.
    assert most_files <= KEEP + 1, f"{most_files} snapshot files at once"
    files = table_files(s.agent.table_dir)
    assert len(files) <= KEEP and not [f for f in files if f.endswith(".tmp")], files
    assert not list(s.agent.table_dir.glob("*.tmp"))


# ---- nginx workers killed ---------------------------------------------------------------------------


def test_respawned_nginx_workers_map_the_current_table_before_their_first_request(make_stack) -> None:  # noqa: ANN001
    s = web_stack(make_stack, "web.worker")
    assert s.nginx is not None and s.agent is not None
    master = s.nginx.process.pid

    def kill_workers() -> None:
        old = set(s.nginx.worker_pids())
        for pid in old:
            os.kill(pid, signal.SIGKILL)
        wait_for("respawned workers", lambda: len(s.nginx.worker_pids()) == len(old)
                 and not old & set(s.nginx.worker_pids()), timeout=10, interval=0.02)

    def publish(host: str) -> int:
        before = s.agent.metric("kroute_agent_table_generation")
        s.api.create(s.ingress(host.split(".")[0], {"rules": [rule(host, ("/", "Prefix", "web"))]}))
        wait_for(f"a generation with {host}", lambda: s.lookup(host) is not None, timeout=10, interval=0.02)
        generation = int(s.agent.metric("kroute_agent_table_generation"))
        assert generation > before
        return generation

    # Published while the workers are dead or starting: they map it when they start.
    for pid in s.nginx.worker_pids():
        os.kill(pid, signal.SIGKILL)
    generation = publish("while-dead.worker")
    wait_for("respawned workers", lambda: len(s.nginx.worker_pids()) == 2, timeout=10, interval=0.02)
    path = f"/first-{uuid.uuid4().hex}"
    reply = s.request("while-dead.worker", path)
    assert reply.status == 200 and reply.service == "web"
    assert access_generation(s, path) == generation

    # Respawned, then idle: the table they mapped at start is the current one, without any request...
    kill_workers()
    assert set(worker_generations(s).values()) == {generation}
    # ...and a generation published after they started is picked up by the first request.
    generation = publish("after-start.worker")
    path = f"/first-{uuid.uuid4().hex}"
    reply = s.request("after-start.worker", path)
    assert reply.status == 200 and reply.service == "web"
    assert access_generation(s, path) == generation
    assert s.nginx.process.pid == master and s.nginx.process.poll() is None


# ---- the API server gone ----------------------------------------------------------------------------


@pytest.fixture
def apiserver_proxy(cluster: Cluster, tmp_path: Path) -> Iterator[tuple[FaultProxy, Path]]:
    """A fault proxy in front of the API server, and a kubeconfig that goes through it."""
    proxy = FaultProxy(("127.0.0.1", cluster.apiserver_port)).start()
    kubeconfig = tmp_path / "kubeconfig-via-proxy"
    text = cluster.kubeconfig.read_text()
    assert cluster.server in text
    kubeconfig.write_text(text.replace(cluster.server, f"https://127.0.0.1:{proxy.port}"))
    try:
        yield proxy, kubeconfig
    finally:
        proxy.stop()


@pytest.mark.parametrize("kind", ["stopped", "refused", "blackholed"])
def test_api_server_outage_keeps_nginx_serving_and_the_agent_recovers(
        kind: str, make_stack, cluster: Cluster, apiserver_proxy: tuple[FaultProxy, Path]) -> None:  # noqa: ANN001
    proxy, kubeconfig = apiserver_proxy
    s = web_stack(make_stack, "web.outage", kubeconfig=kubeconfig)
    assert s.nginx is not None and s.agent is not None
    agent_pid = s.agent.process.pid
    pids = s.nginx.pids()
    retries_before = {r: s.agent.per_resource("kroute_agent_watch_restarts_total")[r]
                      + s.agent.per_resource("kroute_agent_relists_total")[r]
                      for r in s.agent.per_resource("kroute_agent_relists_total")}
    disconnects_before = s.agent.metric("kroute_agent_apiserver_disconnects_total")
    load = wrk(s, "web.outage", connections=2)

    begin, end = {
        "stopped": (cluster.stop, cluster.start),
        "refused": (lambda: proxy.set_mode(REFUSE), lambda: proxy.set_mode(FORWARD)),
        "blackholed": (lambda: proxy.set_mode(BLACKHOLE), lambda: proxy.set_mode(FORWARD)),
    }[kind]
    try:
        begin()
        started = time.monotonic()
        wait_for("not ready", lambda: readyz(s.agent)[0] == 503, timeout=2 * PROBE_INTERVAL + 5, interval=0.2)
        detected = time.monotonic() - started
        status, body = readyz(s.agent)
        assert status == 503 and "API server has not answered" in body, body
        assert readyz(s.agent, "?exclude=apiserver")[0] == 200
        assert s.agent.metric("kroute_agent_apiserver_connected") == 0
        assert s.agent.metric("kroute_agent_ready") == 0
        assert s.agent.metric("kroute_agent_apiserver_disconnects_total") == disconnects_before + 1
        while time.monotonic() - started < OUTAGE_SECONDS:
            assert s.agent.process.poll() is None and s.agent.process.pid == agent_pid, s.agent.log()[-3000:]
            assert s.agent.get("/healthz")[0] == 200  # the loop never waits on a dead connection
            assert s.request("web.outage").status == 200
            time.sleep(0.5)
        outage = time.monotonic() - started
        attempts = proxy.attempts(since=started)
    finally:
        end()
    back = time.monotonic()

    s.agent.wait_ready(timeout=2 * PROBE_INTERVAL + 20)
    ready_after = time.monotonic() - back
    s.api.create(s.ingress("after", {"rules": [rule("after.outage", ("/", "Prefix", "web"))]}))
    s.wait_status("after.outage", timeout=15)
    served_after = time.monotonic() - back
    totals = wrk_totals(load)
    print(f"{kind}: not ready after {detected:.1f}s; {len(attempts)} connections in {outage:.0f}s of outage; "
          f"ready {ready_after:.1f}s and a new Ingress served {served_after:.1f}s after the server came back")

    assert totals["non_2xx"] == 0 and totals["requests"] > 100, totals["output"]
    assert totals["connect"] == totals["read"] == totals["write"] == totals["timeout"] == 0, totals["output"]
    assert s.nginx.pids() == pids
    assert s.agent.process.pid == agent_pid and s.agent.alive()
    assert s.agent.metric("kroute_agent_apiserver_connected") == 1
    # Retries with backoff: some, never a tight loop. Per watch, no more than its backoff allows (plus
    # the retry at loss and the one when the server answers again); in all (watches, probes, the lease),
    # a handful a second.
    assert attempts, "nothing tried to reach the API server during the outage"
    assert len(attempts) <= 6 * outage, f"{len(attempts)} connections in {outage:.0f}s: a tight loop"
    bound = max_retries(outage) + 3
    for resource, before in retries_before.items():
        retries = (s.agent.per_resource("kroute_agent_watch_restarts_total")[resource]
                   + s.agent.per_resource("kroute_agent_relists_total")[resource] - before)
        assert 1 <= retries <= bound, f"{resource}: {retries} retries in {outage:.0f}s (bound {bound})"
    log = s.agent.log()
    assert len(log_lines(log, "the API server does not answer")) == 1
    assert len(log_lines(log, "the API server answers again")) == 1


# ---- malformed answers from the API server ----------------------------------------------------------


def test_a_malformed_lease_or_error_body_is_an_error_and_the_election_goes_on(
        make_stack, cluster: Cluster, tmp_path: Path) -> None:  # noqa: ANN001
    """A Lease whose spec is not an object, or an error body nested too deep for the JSON reader: each once
    threw inside the elector, which then never tried again (a leader that never steps down)."""
    tls = ssl.create_default_context(cafile=str(cluster.ca_file))
    tls.load_cert_chain(str(cluster.state_dir / "pki" / "admin.crt"), str(cluster.state_dir / "pki" / "admin.key"))
    with HttpFaultProxy(("127.0.0.1", cluster.apiserver_port), tls) as proxy:
        kubeconfig = tmp_path / "kubeconfig-via-http-proxy"
        kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "proxy",
            "clusters": [{"name": "proxy", "cluster": {"server": f"http://127.0.0.1:{proxy.port}"}}],
            "users": [{"name": "proxy", "user": {}}],
            "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "proxy"}}]}))
        s = web_stack(make_stack, "web.lease", kubeconfig=kubeconfig)
        assert s.agent is not None
        agent_pid = s.agent.process.pid
        wait_for("leader", lambda: s.agent.metric("kroute_agent_leader") == 1, timeout=10)
        for mode, logged in ((BAD_LEASE, "the Lease's spec is not an object"), (DEEP_ERROR, "get lease: HTTP 500")):
            proxy.set_mode(mode)
            wait_for(f"{mode}: logged", lambda m=logged: [line for line in log_lines(s.agent.log(), "leader election")
                                                         if m in line], timeout=5)
            # The elector keeps trying: a leader that cannot renew steps down after its renew deadline (3 s).
            wait_for(f"{mode}: stepped down", lambda: s.agent.metric("kroute_agent_leader") == 0, timeout=8)
            assert s.request("web.lease").status == 200
            assert s.agent.get("/healthz")[0] == 200
            proxy.set_mode(FORWARD)
            wait_for(f"after {mode}: leader again", lambda: s.agent.metric("kroute_agent_leader") == 1, timeout=10)
        assert proxy.faults >= 2
        assert s.agent.process.pid == agent_pid and s.agent.alive()
        s.api.create(s.ingress("after", {"rules": [rule("after.lease", ("/", "Prefix", "web"))]}))
        s.wait_status("after.lease", timeout=15)


# ---- the table directory ------------------------------------------------------------------------------


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, timeout=30)


def umount(path: Path) -> None:
    if subprocess.run(["umount", str(path)], capture_output=True, timeout=30).returncode != 0:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


def check_broken_then_fixed(s: Stack, fix: Callable[[], None], error_text: str, extra_hosts: int = 0) -> None:
    """With the directory just broken: a change cannot be written; one error says why; nginx serves the old
    table; the agent is not ready (table) but alive. Then fix() and the change is served. The change is an
    Ingress for new.dir and `extra_hosts` more hosts (a bigger snapshot)."""
    assert s.agent is not None and s.nginx is not None
    generation = s.agent.metric("kroute_agent_table_generation")
    errors_before = s.agent.metric("kroute_agent_publish_errors_total")
    log_start = len(s.agent.log())
    hosts = ["new.dir", *(f"extra-{i}.new.dir" for i in range(extra_hosts))]
    s.api.create(s.ingress("new", {"rules": [rule(h, ("/", "Prefix", "web")) for h in hosts]}))
    wait_for("a failed publish", lambda: s.agent.metric("kroute_agent_table_publish_failing") == 1, timeout=10)
    # Retried every second, reported once.
    wait_for("retries", lambda: s.agent.metric("kroute_agent_publish_errors_total") >= errors_before + 3, timeout=10)
    errors = log_lines(s.agent.log()[log_start:], "cannot publish the route table")
    assert len(errors) == 1, errors
    assert "level=error" in errors[0] and error_text in errors[0] and f"serving_generation={int(generation)}" in errors[0]
    status, body = readyz(s.agent)
    assert status == 503 and "route table cannot be written" in body, body
    assert readyz(s.agent, "?exclude=table")[0] == 200
    assert s.agent.alive() and s.agent.get("/healthz")[0] == 200
    assert s.request("web.dir").status == 200
    assert s.request("new.dir").status == 404
    assert set(worker_generations(s).values()) == {generation}
    assert s.agent.metric("kroute_agent_table_generation") == generation

    fix()
    s.wait_status("new.dir", timeout=10)
    assert s.agent.metric("kroute_agent_table_publish_failing") == 0
    assert readyz(s.agent) == (200, "ok\n")
    assert len(log_lines(s.agent.log()[log_start:], "route table publishing works again")) == 1
    assert not list(s.agent.table_dir.glob("*.tmp"))


def fill(path: Path) -> None:
    """Appends zeros to `path` until its file system is full (a 2 MB tmpfs; bounded at 64 MB)."""
    with open(path, "ab", buffering=0) as f:
        chunk = b"\0" * 4096
        try:
            for _ in range(16384):
                f.write(chunk)
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
        else:
            raise AssertionError("a 2 MB tmpfs took 64 MB")


def wait_workers_on_current(s: Stack) -> int:
    """Waits until every worker maps the current table (and so none maps an older one); returns it."""
    assert s.agent is not None
    generation = int(s.agent.metric("kroute_agent_table_generation"))
    wait_for(f"every worker on generation {generation}", lambda: set(worker_generations(s).values()) == {generation},
             timeout=10)
    return generation


def test_a_full_table_directory(make_stack) -> None:  # noqa: ANN001
    directory = Path(tempfile.mkdtemp(prefix="kroute-full-"))
    directory.chmod(0o755)
    table = directory / "table"
    table.mkdir()
    mount("-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(table))
    s: Stack | None = None
    try:
        s = web_stack(make_stack, "web.dir", table_dir=table)
        assert s.agent is not None
        filler = table / "filler"
        # Full, but older snapshots are on disk: they go (every worker has moved on from them), the
        # change is published, and a warning says to raise the size limit.
        current = wait_workers_on_current(s)
        assert len(list(table.glob("table.*"))) > 1
        fill(filler)
        log_start = len(s.agent.log())
        s.api.create(s.ingress("roomy", {"rules": [rule("roomy.dir", ("/", "Prefix", "web"))]}))
        s.wait_status("roomy.dir", timeout=10)
        assert s.request("roomy.dir").status == 200 and s.request("web.dir").status == 200
        assert s.agent.metric("kroute_agent_table_dir_full_total") == 1
        assert s.agent.metric("kroute_agent_table_publish_failing") == 0
        warnings = log_lines(s.agent.log()[log_start:], "the table directory is full")
        assert len(warnings) == 1 and "level=warn" in warnings[0], warnings
        assert not log_lines(s.agent.log()[log_start:], "cannot publish the route table")
        newest = int(s.agent.metric("kroute_agent_table_generation"))
        assert sorted(p.name for p in table.glob("table.*")) == sorted({f"table.{current}", f"table.{newest}"})
        # Full even without them: a table bigger than the room one older snapshot leaves is not written.
        wait_workers_on_current(s)
        fill(filler)
        check_broken_then_fixed(s, filler.unlink, "No space left on device", extra_hosts=200)
    finally:
        if s is not None:
            s.close()  # nginx and the agent let go of the tmpfs before it is unmounted
        umount(table)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize("how", ["immutable", "read-only mount"])
def test_an_unwritable_table_directory(how: str, make_stack) -> None:  # noqa: ANN001
    s = web_stack(make_stack, "web.dir")
    assert s.agent is not None
    table = s.agent.table_dir
    if how == "immutable":
        # Root ignores permission bits; the immutable attribute stops root too (ext4, xfs, btrfs).
        if subprocess.run(["chattr", "+i", str(table)], capture_output=True).returncode != 0:
            pytest.skip(f"the file system of {table} has no immutable attribute")
        try:
            check_broken_then_fixed(s, lambda: subprocess.run(["chattr", "-i", str(table)], check=True),
                                    "Operation not permitted")
        finally:
            subprocess.run(["chattr", "-i", str(table)], capture_output=True)
    else:
        mount("--bind", str(table), str(table))
        mounted = True
        try:
            mount("-o", "remount,bind,ro", str(table))

            def fix() -> None:
                nonlocal mounted
                umount(table)
                mounted = False
            check_broken_then_fixed(s, fix, "Read-only file system")
        finally:
            if mounted:
                umount(table)


def test_a_deleted_table_directory_is_made_again_and_nginx_follows(make_stack) -> None:  # noqa: ANN001
    s = web_stack(make_stack, "web.dir")
    assert s.agent is not None and s.nginx is not None
    table = s.agent.table_dir
    before = table.stat()
    generation = s.agent.metric("kroute_agent_table_generation")
    pids = s.nginx.pids()
    log_start = len(s.agent.log())
    # Every worker maps the current table (an idle one picks it up within its refresh interval). A worker
    # that has not yet opened a snapshot when the file vanishes cannot serve it: it keeps the one before,
    # until the agent puts the table back.
    wait_for("workers on the current table", lambda: set(worker_generations(s).values()) == {generation},
             timeout=5)

    # Gone at once, as rm -rf looks from outside (the agent must not write into a half-deleted directory).
    graveyard = table.with_name("deleted")
    table.rename(graveyard)
    shutil.rmtree(graveyard)
    assert s.request("web.dir").status == 200  # the mapped table serves on
    wait_for("the table put back", lambda: s.agent.metric("kroute_agent_table_repairs_total") == 1, timeout=10)
    log = s.agent.log()[log_start:]
    gone = log_lines(log, "the published route table is gone")
    assert len(gone) == 1 and "is gone" in gone[0], gone
    assert not log_lines(log, "cannot publish the route table")
    after = table.stat()
    assert (after.st_mode & 0o7777, after.st_gid) == (before.st_mode & 0o7777, before.st_gid)
    put_back = s.agent.metric("kroute_agent_table_generation")
    assert put_back > generation
    assert (table / f"table.{int(put_back)}").exists()
    # Every worker notices the new control file on its refresh timer and maps the table from it.
    wait_for("workers on the new control file", lambda: set(worker_generations(s).values()) == {put_back},
             timeout=5)
    assert s.agent.metric("kroute_agent_table_publish_failing") == 0
    assert readyz(s.agent) == (200, "ok\n")

    s.api.create(s.ingress("new", {"rules": [rule("new.dir", ("/", "Prefix", "web"))]}))
    s.wait_status("new.dir", timeout=10)
    assert s.request("web.dir").status == 200
    assert s.nginx.pids() == pids


# ---- the fault proxy itself -----------------------------------------------------------------------------


def test_fault_proxy_forwards_refuses_and_blackholes() -> None:
    """The proxy the outage tests rely on does what it says, against a plain TCP echo server."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            try:
                for data in iter(lambda: conn.recv(65536), b""):
                    conn.sendall(data)
            except OSError:
                pass  # reset by the proxy

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    clients: list[socket.socket] = []

    def connect() -> socket.socket:
        c = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
        clients.append(c)
        return c

    def answers(c: socket.socket, data: bytes, timeout: float = 2) -> bytes | None:
        c.settimeout(timeout)
        try:
            c.sendall(data)
            return c.recv(65536)
        except socket.timeout:
            return None
        except ConnectionResetError:
            return b"reset"

    try:
        with FaultProxy(server.getsockname()) as proxy:
            kept = connect()
            assert answers(kept, b"one") == b"one"
            proxy.set_mode(BLACKHOLE)
            assert answers(kept, b"two", timeout=0.5) is None
            held = connect()  # accepted, then nothing
            assert answers(held, b"three", timeout=0.5) is None
            proxy.set_mode(FORWARD)  # the network heals: what was sent arrives
            kept.settimeout(2)
            held.settimeout(2)
            assert kept.recv(100) == b"two" and held.recv(100) == b"three"
            proxy.set_mode(REFUSE)
            assert answers(kept, b"four") in (b"reset", b"")
            assert answers(connect(), b"five") in (b"reset", b"")
            assert [mode for _, mode in proxy.attempts()] == [FORWARD, BLACKHOLE, REFUSE]
            proxy.set_mode(FORWARD)
            assert proxy.open_connections() == 0
    finally:
        stop.set()
        for c in clients:
            c.close()
        server.close()
