"""Publishing while nginx serves: no reload, no dropped requests, corrupt snapshots refused."""
import re
import subprocess
import threading
import time

import websocket

from conftest import WORKERS, backend, ingress, rule, wait_until

PUBLISHES = 100


def churn(b, i, ws_endpoints=None):
    """Generation i of a table that keeps stable.example.com (its endpoints change), adds new-i and drops new-(i-5)."""
    stable = ["s1", "s2", "s3"]
    description = {
        "backends": [
            backend("stable", [b.endpoint(stable[i % 3], weight=1 + i % 4), b.endpoint(stable[(i + 1) % 3], weight=2)]),
            backend("fresh", [b.endpoint("fresh")]),
        ],
        "ingresses": [
            ingress("stable", [rule("stable.example.com", ("/", "Prefix", "stable"))]),
            ingress("fresh", [rule(f"new-{j}.example.com", ("/", "Prefix", "fresh")) for j in range(max(0, i - 4), i + 1)]),
        ],
    }
    if ws_endpoints is not None:
        description["backends"].append(backend("ws", ws_endpoints(i)))
        description["ingresses"].append(ingress("ws", [rule("ws.example.com", ("/", "Prefix", "ws"))]))
    return description


def run_wrk(n, host, seconds, out):
    result = subprocess.run(["wrk", "-t2", "-c16", f"-d{seconds}s", "--timeout", "5s", "-H", f"Host: {host}",
                             f"http://127.0.0.1:{n.port}/load"], capture_output=True, text=True,
                            timeout=seconds + 30)
    out.append(result)


def test_publishes_under_load_drop_nothing_and_never_restart_nginx(backends, table, nginx):
    b = backends(["s1", "s2", "s3", "fresh"])
    table.publish(churn(b, 0))
    n = nginx()
    assert n.echo("stable.example.com")["name"] in {"s1", "s2"}
    pids = n.pids()

    wrk = []
    load = threading.Thread(target=run_wrk, args=(n, "stable.example.com", 12, wrk))
    load.start()
    try:
        time.sleep(1)
        started = time.monotonic()
        for i in range(1, PUBLISHES + 1):
            generation = table.publish(churn(b, i))
            # the first request after a publish is served from the new generation
            assert n.echo(f"new-{i}.example.com")["name"] == "fresh", i
            if i >= 5:
                assert n.get(f"new-{i - 5}.example.com")[0] == 404, i
        publishing = time.monotonic() - started
    finally:
        load.join()
    assert publishing < 10, f"the publishes took {publishing:.1f}s, longer than the load ran"

    result = wrk[0]
    assert result.returncode == 0, result.stderr
    requests = int(re.search(r"(\d+) requests in", result.stdout).group(1))
    assert requests > 1000, result.stdout
    assert "Non-2xx" not in result.stdout, result.stdout
    assert "Socket errors" not in result.stdout, result.stdout
    assert n.pids() == pids, "nginx master or workers were restarted"
    assert wait_until(lambda: all(w["generation"] == generation for w in n.status()["workers"]), timeout=3)
    assert "[alert]" not in n.error_log() and "[crit]" not in n.error_log()


def test_websocket_survives_publishes(backends, table, nginx):
    b = backends(["s1", "s2", "s3", "fresh", "ws1", "ws2"])
    # the WebSocket's own backend changes too: its endpoint leaves the table and comes back
    endpoints = lambda i: [b.endpoint("ws1")] if i % 2 == 0 else [b.endpoint("ws2")]
    table.publish(churn(b, 0, endpoints))
    n = nginx()
    pids = n.pids()
    ws = websocket.create_connection(f"ws://127.0.0.1:{n.port}/chat", host="ws.example.com", timeout=5)
    try:
        ws.send("hello")
        assert ws.recv() == "ws1:hello"
        for i in range(1, PUBLISHES + 1):
            table.publish(churn(b, i, endpoints))
            ws.send(f"m{i}")
            assert ws.recv() == f"ws1:m{i}"
        assert n.echo("ws.example.com")["name"] == "ws1"  # generation 100 is even
    finally:
        ws.close()
    assert n.pids() == pids


def test_corrupt_snapshot_is_refused_and_the_last_good_one_served(backends, table, nginx):
    b = backends(["s1", "s2", "s3", "fresh"])
    good = table.publish(churn(b, 0))
    n = nginx()
    assert n.echo("stable.example.com")["name"] in {"s1", "s2"}

    # a snapshot whose payload no longer matches its checksum, published by hand
    data = bytearray((table.dir / f"table.{good}").read_bytes())
    bad = good + 1
    data[16:24] = bad.to_bytes(8, "little")  # the header's generation
    data[-1] ^= 0xFF
    (table.dir / f"table.{bad}.tmp").write_bytes(bytes(data))
    (table.dir / f"table.{bad}.tmp").rename(table.dir / f"table.{bad}")
    table.set_generation(bad)

    for _ in range(10):
        assert n.echo("stable.example.com")["name"] in {"s1", "s2"}
    assert wait_until(lambda: all(w["rejectedSnapshots"] == 1 for w in n.status()["workers"]), timeout=3)
    for w in n.status()["workers"]:
        assert w["generation"] == good
        assert f"table.{bad}" in w["lastError"]
    errors = [l for l in n.error_log().splitlines() if "[error]" in l]
    assert len(errors) == 1, errors
    assert f"kroute: refused snapshot: {table.dir}/table.{bad}: " in errors[0]
    assert f"still serving table generation {good}" in errors[0]
    log = wait_until(lambda: n.access_log())
    assert all(f"generation={good} " in l for l in log.splitlines() if "stable.example.com" in l)

    # a truncated one is refused too; then a good publish is picked up again
    (table.dir / f"table.{bad + 1}").write_bytes(bytes(data[:100]))
    table.set_generation(bad + 1)
    assert n.echo("stable.example.com")["name"] in {"s1", "s2"}
    assert wait_until(lambda: all(w["rejectedSnapshots"] == 2 for w in n.status()["workers"]), timeout=3)
    fixed = table.publish(churn(b, 1))
    assert fixed > bad + 1
    assert n.echo("new-1.example.com")["name"] == "fresh"
    assert wait_until(lambda: all(w["generation"] == fixed for w in n.status()["workers"]), timeout=3)


def mapped_tables(pid):
    with open(f"/proc/{pid}/maps") as f:
        return sorted({line.split("/")[-1].split()[0] for line in f if "/table." in line})


def test_idle_workers_pick_up_new_tables_and_release_old_ones(backends, table, nginx):
    b = backends(["s1", "s2", "s3", "fresh"])
    table.publish(churn(b, 0))
    n = nginx()
    for _ in range(10):
        n.echo("stable.example.com")
    for i in range(1, 4):
        last = table.publish(churn(b, i))
    # no requests now: each worker's timer picks up the newest table within a second
    assert wait_until(lambda: all(w["generation"] == last for w in n.status()["workers"]), timeout=2.5)
    workers = n.worker_pids()
    assert len(workers) == WORKERS
    assert wait_until(lambda: all(mapped_tables(pid) == [f"table.{last}"] for pid in workers), timeout=2.5), \
        {pid: mapped_tables(pid) for pid in workers}
