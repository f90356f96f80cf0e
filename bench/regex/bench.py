"""A catastrophic regex path next to ordinary routes: does it raise their p99?

One nginx + kroute module worker, pinned to one CPU, serves a table with two regex hosts (the
annotations of ingress-nginx's use-regex): good.bench.example (`/api/v[0-9]+/(.*)`, rewritten, proxied)
and evil.bench.example, whose one path is the catastrophic `/(a+)+$`. Each round, wrk measures the good
host while a second wrk (the neighbour, same connections) sends evil.bench.example requests of the same
length: either a path the pattern refuses at once (`/bbb...!`, the baseline) or one that makes it
backtrack (`/aaa...!`, the attack). Both neighbours get 404s; the only difference is the regex work,
which PCRE2's match limit bounds (routetable/path_patterns.h). The report gives the median ratio of the
good host's p99 with the attacking neighbour to its p99 with the baseline one (target <= 2), and the
worker's CPU per neighbour request. Writes bench/results/regex.md and regex.json (or into --out).
"""
import argparse
import json
import re
import statistics
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "module"))
sys.path.insert(0, str(ROOT / "bench" / "report"))

from bench import one_module_stack  # noqa: E402

EVIL_LENGTH = 40   # bytes of 'a' (or 'b') in a neighbour's path


def table_description(pod_ports):
    backends = [{"name": "web", "namespace": "bench", "service": "web", "port": 80,
                 "endpoints": [{"address": "127.0.0.1", "port": p} for p in pod_ports]}]
    regex = {"nginx.ingress.kubernetes.io/use-regex": "true"}
    return {"backends": backends, "ingresses": [
        {"namespace": "bench", "name": "good", "creationTimestamp": "2026-01-01T00:00:00Z",
         "annotations": {**regex, "nginx.ingress.kubernetes.io/rewrite-target": "/$1"},
         "rules": [{"host": "good.bench.example",
                    "paths": [{"path": "/api/v[0-9]+/(.*)", "pathType": "ImplementationSpecific", "backend": "web"}]}]},
        {"namespace": "bench", "name": "evil", "creationTimestamp": "2026-01-01T00:00:00Z", "annotations": regex,
         "rules": [{"host": "evil.bench.example",
                    "paths": [{"path": "/(a+)+$", "pathType": "ImplementationSpecific", "backend": "web"}]}]},
    ]}


def run_wrk(port, host, path, seconds, connections, cpu, expect_2xx):
    out = subprocess.run(["taskset", "-c", str(cpu), "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
                          "-H", f"Host: {host}", f"http://127.0.0.1:{port}{path}"],
                         capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    text = out.stdout
    if "Socket errors" in text or (expect_2xx and "Non-2xx" in text):
        raise RuntimeError("wrk saw errors:\n" + text)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    return rps, float(p99.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[p99.group(2)]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--build", default=str(ROOT / "build"))
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args()

    rounds = []
    with one_module_stack("bench-regex", args.build, table_description) as (module, port, load_cpu):
        good = ("good.bench.example", "/api/v2/users/7")
        neighbours = {"baseline": "/" + "b" * EVIL_LENGTH + "!", "attack": "/" + "a" * EVIL_LENGTH + "!"}
        run_wrk(port, *good, 2, args.connections, load_cpu, True)  # warm-up
        for r in range(args.rounds):
            result = {}
            order = list(neighbours.items())
            for name, path in order if r % 2 == 0 else reversed(order):
                neighbour = {}

                def attack(path=path, neighbour=neighbour):
                    neighbour["rps"], _ = run_wrk(port, "evil.bench.example", path, args.seconds, args.connections,
                                                  load_cpu, False)

                cpu_before = module.worker_cpu_seconds()
                thread = threading.Thread(target=attack)
                thread.start()
                rps, p99 = run_wrk(port, *good, args.seconds, args.connections, load_cpu, True)
                thread.join()
                cpu = module.worker_cpu_seconds() - cpu_before
                result[name] = {"good_rps": rps, "good_p99_ms": p99, "neighbour_rps": neighbour["rps"],
                                "worker_cpu_us_per_request": cpu * 1e6 / ((rps + neighbour["rps"]) * args.seconds)}
                print(f"bench-regex: round {r + 1}, {name} neighbour: good {rps:.0f} req/s p99 {p99:.3f} ms, "
                      f"neighbour {neighbour['rps']:.0f} req/s", flush=True)
            rounds.append(result)

    summary = {name: {key: statistics.median(r[name][key] for r in rounds)
                      for key in ("good_rps", "good_p99_ms", "neighbour_rps", "worker_cpu_us_per_request")}
               for name in ("baseline", "attack")}
    summary["p99_ratio"] = statistics.median(r["attack"]["good_p99_ms"] / r["baseline"]["good_p99_ms"] for r in rounds)
    summary["rps_ratio"] = statistics.median(r["attack"]["good_rps"] / r["baseline"]["good_rps"] for r in rounds)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "regex.json").write_text(json.dumps({"rounds": rounds, "summary": summary}, indent=2) + "\n")
    b, a = summary["baseline"], summary["attack"]
    lines = [
        "# A catastrophic regex path next to ordinary routes",
        "",
        f"`make bench-regex`: one nginx worker; good host measured while a neighbour sends {args.connections} "
        f"connections of 404s to a host whose path is `/(a+)+$`, either with a path it refuses at once "
        f"(baseline) or one that makes it backtrack to PCRE2's match limit (attack). Medians over "
        f"{args.rounds} rounds of {args.seconds} s. Target: the good host's p99 ratio <= 2.",
        "",
        "| neighbour | good req/s | good p99 | neighbour req/s | worker CPU per request |",
        "|---|---|---|---|---|",
        f"| baseline | {b['good_rps']:.0f} | {b['good_p99_ms']:.2f} ms | {b['neighbour_rps']:.0f} | "
        f"{b['worker_cpu_us_per_request']:.1f} µs |",
        f"| attack | {a['good_rps']:.0f} | {a['good_p99_ms']:.2f} ms | {a['neighbour_rps']:.0f} | "
        f"{a['worker_cpu_us_per_request']:.1f} µs |",
        "",
        f"p99 ratio (attack / baseline): **{summary['p99_ratio']:.2f}**; good req/s ratio {summary['rps_ratio']:.2f}.",
    ]
    (out / "regex.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if summary["p99_ratio"] > 2:
        print("bench-regex: the attack raised the good host's p99 by more than 2x", file=sys.stderr)


if __name__ == "__main__":
    main()
