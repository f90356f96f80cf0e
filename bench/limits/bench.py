"""Rate limits under load: how close to the configured rate does an over-eager client get, and do other
Ingresses notice?

One nginx + kroute module worker serves a table with two Ingresses on one backend: limited.bench.example
(limit-rps 100, ingress-nginx's default burst of 5 x 100) and open.bench.example (no limits). A paced
client sends 1,000 req/s to the limited host for --seconds; the report gives the requests that passed per
second once the burst is spent, as a ratio of the configured 100 (target: within 5 %). Meanwhile wrk
measures the open host; its req/s is compared with a run without the paced client (the difference is the
CPU the client's requests take on a shared machine, not shared counters). Writes bench/results/limits.md
and limits.json (or into --out).
"""
import argparse
import http.client
import json
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "module"))
sys.path.insert(0, str(ROOT / "bench" / "report"))

from bench import one_module_stack  # noqa: E402

RATE = 100          # limit-rps
OFFERED = 1000      # the client's req/s
THREADS = 8         # the client's connections, each paced to OFFERED / THREADS


def table_description(pod_ports):
    backends = [{"name": "web", "namespace": "bench", "service": "web", "port": 80,
                 "endpoints": [{"address": "127.0.0.1", "port": p} for p in pod_ports]}]
    return {"backends": backends, "ingresses": [
        {"namespace": "bench", "name": "limited", "creationTimestamp": "2026-01-01T00:00:00Z",
         "annotations": {"nginx.ingress.kubernetes.io/limit-rps": str(RATE)},
         "rules": [{"host": "limited.bench.example", "paths": [{"path": "/", "pathType": "Prefix", "backend": "web"}]}]},
        {"namespace": "bench", "name": "open", "creationTimestamp": "2026-01-01T00:00:00Z",
         "rules": [{"host": "open.bench.example", "paths": [{"path": "/", "pathType": "Prefix", "backend": "web"}]}]},
        {"namespace": "bench", "name": "unlimited", "creationTimestamp": "2026-01-01T00:00:00Z",
         "rules": [{"host": "unlimited.bench.example", "paths": [{"path": "/", "pathType": "Prefix", "backend": "web"}]}]},
    ]}


def paced_client(port, seconds, host="limited.bench.example"):
    """OFFERED req/s to `host` from THREADS keep-alive connections: [(time, status)]."""
    results = []
    lock = threading.Lock()
    start = time.monotonic() + 0.2
    interval = THREADS / OFFERED

    def run(offset):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine = []
        n = 0
        while True:
            due = start + offset + n * interval
            if due - start >= seconds:
                break
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            try:
                conn.request("GET", "/", headers={"Host": host})
                response = conn.getresponse()
                response.read()
                mine.append((time.monotonic() - start, response.status))
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                mine.append((time.monotonic() - start, 0))
            n += 1
        conn.close()
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=run, args=(i * interval / THREADS,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(results)


def round_summary(results, seconds, alone, with_client, with_unlimited_client):
    passed = [t for t, status in results if status == 200]
    # The burst (500) is spent within the first second; the steady state is what follows.
    steady_from = 2.0
    steady_rate = sum(1 for t in passed if t >= steady_from) / (seconds - steady_from)
    return {"sent_rps": len(results) / seconds, "passed": len(passed),
            "refused": sum(1 for _, status in results if status == 503),
            "errors": sum(1 for _, status in results if status not in (200, 503)),
            "steady_passed_rps": steady_rate, "steady_ratio": steady_rate / RATE,
            "open_alone_rps": alone, "open_with_client_rps": with_client, "open_ratio": with_client / alone,
            "open_with_unlimited_client_rps": with_unlimited_client,
            "open_vs_unlimited_ratio": with_client / with_unlimited_client}


def next_to_client(port, seconds, cpu, host):
    """wrk's req/s on the open host while the paced client sends to `host`; and the client's results."""
    neighbour = {}
    thread = threading.Thread(target=lambda: neighbour.update(rps=run_wrk(port, seconds, cpu)))
    thread.start()
    results = paced_client(port, seconds, host)
    thread.join()
    return neighbour["rps"], results


def run_wrk(port, seconds, cpu):
    out = subprocess.run(["taskset", "-c", str(cpu), "wrk", "-t1", "-c8", f"-d{seconds}s",
                          "-H", "Host: open.bench.example", f"http://127.0.0.1:{port}/"],
                         capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0 or "Non-2xx" in out.stdout or "Socket errors" in out.stdout:
        raise RuntimeError("wrk: " + out.stdout + out.stderr)
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out.stdout).group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--build", default=str(ROOT / "build"))
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args()

    rounds = []
    with one_module_stack("bench-limits", args.build, table_description) as (_, port, load_cpu):
        run_wrk(port, 2, load_cpu)  # warm-up
        for r in range(args.rounds):
            alone = run_wrk(port, args.seconds, load_cpu)
            # The baseline next to the same client sending to an Ingress without limits: the same CPU the
            # client's requests take, so what is left is what the limit itself costs its neighbours.
            with_unlimited, _ = next_to_client(port, args.seconds, load_cpu, "unlimited.bench.example")
            with_limited, results = next_to_client(port, args.seconds, load_cpu, "limited.bench.example")
            rounds.append(round_summary(results, args.seconds, alone, with_limited, with_unlimited))
            print(f"bench-limits: round {r + 1}: {rounds[-1]}", flush=True)

    summary = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    summary.update({"configured_rps": RATE, "offered_rps": OFFERED})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "limits.json").write_text(json.dumps({"rounds": rounds, "summary": summary}, indent=2) + "\n")
    lines = [
        "# Rate limits under load",
        "",
        f"`make bench-limits`: one nginx worker; a client paced at {OFFERED} req/s ({THREADS} keep-alive "
        f"connections) to an Ingress with limit-rps {RATE} (burst {5 * RATE}) for {args.seconds} s, while wrk "
        f"(8 connections) measures an Ingress without limits on the same nginx, and as long without the client. "
        f"Medians of {args.rounds} rounds. Target: the passed rate after the burst within 5 % of {RATE}.",
        "",
        "| client sent | passed | refused (503) | errors | passed/s after the burst | ratio to the limit |",
        "|---|---|---|---|---|---|",
        f"| {summary['sent_rps']:.0f} req/s | {summary['passed']:.0f} | {summary['refused']:.0f} | "
        f"{summary['errors']:.0f} | {summary['steady_passed_rps']:.1f} | **{summary['steady_ratio']:.3f}** |",
        "",
        "An Ingress without limits next to it (wrk's req/s on the same nginx worker):",
        "",
        "| no client | client to an Ingress without limits (baseline) | client to the limited Ingress | "
        "limited / baseline |",
        "|---|---|---|---|",
        f"| {summary['open_alone_rps']:.0f} | {summary['open_with_unlimited_client_rps']:.0f} | "
        f"{summary['open_with_client_rps']:.0f} | **{summary['open_vs_unlimited_ratio']:.2f}** |",
        "",
        "The baseline carries the same client, so the ratio is what the limit's counting costs the other "
        "Ingress (a refused request is cheaper than a proxied one, so it may exceed 1); the drop from \"no "
        "client\" is the client's own CPU on a shared machine.",
    ]
    (out / "limits.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if abs(summary["steady_ratio"] - 1) > 0.05:
        print("bench-limits: the passed rate is not within 5 % of the limit", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
