"""Renders the benchmark report (Markdown + PNG plots, matplotlib's Agg backend) from the JSON that
bench/report/run.py's steps wrote: run.json (machine, commands, load), table.json, module.json and
propagation.json. Every number in the report is read from those files; a step that failed or did not run
leaves its section saying so.

    render.py --results bench/results/report-full --report bench/REPORT.md --images bench/report/img
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
KROUTE, BASE = "#1f77b4", "#d62728"   # one colour per system in every plot
DPI = 110
# A creation served before the API server's acknowledgement reached the bench counts as 0 ms; a log axis has
# no 0, so such samples are drawn at this floor (the text says how many there were).
FLOOR_MS = 0.05


def load(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def rel(text: str) -> str:
    """Commands as a reader would type them: paths relative to the repository."""
    return text.replace(str(ROOT) + "/", "")


def mb(kb: float) -> str:
    return f"{kb / 1024:.1f}"


def ms(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "–"


class Report:
    def __init__(self, results: Path, report: Path, images: Path):
        self.results, self.report, self.images = results, report, images
        self.run = load(results / "run.json") or {"steps": {}}
        self.lines: list[str] = []
        self.headline: list[str] = []
        images.mkdir(parents=True, exist_ok=True)

    def out(self, *lines: str) -> None:
        self.lines.extend(lines)

    def image(self, fig: Any, name: str, alt: str) -> None:
        path = self.images / name
        fig.tight_layout()
        fig.savefig(path, dpi=DPI)
        plt.close(fig)
        link = os.path.relpath(path, self.report.parent)
        self.out(f"![{alt}]({link})", "")

    def step_data(self, step: str, file: str) -> Any:
        info = self.run["steps"].get(step)
        data = load(self.results / file)
        if info is None or data is None or not info.get("ok"):
            why = "did not run" if info is None else f"failed (exit {info['rc']}; log: {step}.log)"
            self.out(f"*Not measured in this run: the `{step}` step {why}.*", "")
            return None
        return data

    # ---- header --------------------------------------------------------------------------------------

    def header(self) -> list[str]:
        r = self.run
        m = r.get("machine", {})
        g = r.get("git", {})
        mode = r.get("mode", "?")
        make = "make bench" if mode == "full" else "make bench-quick"
        readme = os.path.relpath(ROOT / "bench" / "README.md", self.report.parent)
        lines = [
            "# kroute benchmark report",
            "",
            f"Written by `{make}` ({mode} mode; bench/report/run.py, then bench/report/render.py). Every figure "
            "here comes from the run described below; the same command reproduces it (on another machine, "
            "with that machine's numbers). Each comparison is against a baseline measured in the same run, "
            f"alternating with it; see [bench/README.md]({readme}) for how each benchmark works.",
            "",
            "| | |",
            "|---|---|",
            f"| date | {r.get('started', '?')} – {r.get('finished', '?')} ({r.get('seconds', 0) / 60:.0f} min) |",
            f"| machine | {m.get('cpu_model', '?')}, {m.get('cores', '?')} cores, {m.get('ram_gib', '?')} GiB RAM; "
            f"Linux {m.get('kernel', '?')}, {m.get('os', '?')} |",
            f"| nginx | {m.get('nginx', '?')} (the distribution's package; the module built against it) |",
            f"| load generator | {m.get('wrk', '?')} |",
            f"| git | {g.get('commit', '?')[:12]} ({g.get('subject', '')}) |",
        ]
        if g.get("uncommitted"):
            lines.append(f"| uncommitted changes | {', '.join(g['uncommitted'])} |")
        start, end = r.get("load_start", []), r.get("load_end", [])
        lines.append(f"| load average (1, 5, 15 min) | start {' '.join(f'{x:.2f}' for x in start)}; "
                     f"end {' '.join(f'{x:.2f}' for x in end)} |")
        lines += ["", "Commands, in order (each step's output is in bench/results/report-"
                  f"{mode}/&lt;step&gt;.log):", "", "```", f"{make}    # = {rel(r.get('driver', ''))}"]
        for name, step in r["steps"].items():
            lines.append(f"{rel(step['command'])}    # {step['seconds'] / 60:.1f} min, exit {step['rc']}, "
                         f"load {step['load_before'][0]:.1f} -> {step['load_after'][0]:.1f}")
        lines += ["```", ""]
        return lines

    # ---- sections ------------------------------------------------------------------------------------

    def throughput(self) -> None:
        self.out("## Throughput and p99 latency against the number of routes", "")
        data = self.step_data("module", "module.json")
        if data is None:
            return
        results = data["results"]
        a = data["args"]
        self.out(
            f"nginx + kroute module (the shipped nginx.conf, the routes in a published table) against nginx with "
            f"the static configuration a generator would write for the same routes (a `server` per host). "
            f"wrk -t1 -c{a['connections']}, {a['seconds']} s per measurement, {a['rounds']} rounds per size, each "
            f"round measuring both back to back in alternating order; one nginx worker each on CPU "
            f"{data['proxy_cpu']}, wrk and the backends (nginx `return 200`) on CPU {data['load_cpu']}; requests "
            "cycle through every host. Figures are medians over the rounds; ratios are the median of each "
            "round's module/static ratio. Proxy CPU per request is the worker's CPU time over the requests it "
            "served: the figure least disturbed by other work on the machine.", "")
        hosts = [r["hosts"] for r in results]
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
        for ax, key, label in zip(axes, ("rps", "p99_ms", "cpu_us_per_request"),
                                  ("requests/s", "p99 latency (ms)", "proxy CPU per request (µs)")):
            for name, colour, title in (("module", KROUTE, "kroute module"), ("static", BASE, "static nginx")):
                ax.plot(hosts, [r[name][key] for r in results], "o-", color=colour, label=title)
                for r in results:
                    ax.scatter([r["hosts"]] * len(r["runs"][name]), [x[key] for x in r["runs"][name]],
                               color=colour, alpha=0.25, s=10)
            ax.set_xscale("log")
            ax.set_xlabel("routes (hosts)")
            ax.set_ylabel(label)
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
        axes[0].legend()
        fig.suptitle("kroute module vs static nginx (lines: medians; dots: single rounds)")
        self.image(fig, "throughput.png", "throughput, p99 and CPU per request against routes")
        self.out("| routes | module req/s | static req/s | ratio | module p99 | static p99 | ratio | "
                 "CPU/request module | static | ratio |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in results:
            self.out(f"| {r['hosts']:,} | {r['module']['rps']:,.0f} | {r['static']['rps']:,.0f} | {r['rps_ratio']:.2f} | "
                     f"{r['module']['p99_ms']:.1f} ms | {r['static']['p99_ms']:.1f} ms | {r['p99_ratio']:.2f} | "
                     f"{r['module']['cpu_us_per_request']:.1f} µs | {r['static']['cpu_us_per_request']:.1f} µs | "
                     f"{r['cpu_ratio']:.2f} |")
        self.out("")
        spread = {r["hosts"]: (min(m["rps"] / s["rps"] for m, s in zip(r["runs"]["module"], r["runs"]["static"])),
                               max(m["rps"] / s["rps"] for m, s in zip(r["runs"]["module"], r["runs"]["static"])))
                  for r in results}
        self.out("Throughput ratio of single rounds, lowest – highest: " +
                 "; ".join(f"{h:,} routes {lo:.2f} – {hi:.2f}" for h, (lo, hi) in spread.items()) + ".", "")
        first, last = results[0], results[-1]
        self.headline.append(
            f"| throughput, module / static nginx | {first['rps_ratio']:.2f} at {first['hosts']:,} routes, "
            f"{last['rps_ratio']:.2f} at {last['hosts']:,} | median of {a['rounds']} alternating rounds |")
        self.headline.append(
            f"| p99 latency, module / static nginx | {first['p99_ratio']:.2f} at {first['hosts']:,} routes, "
            f"{last['p99_ratio']:.2f} at {last['hosts']:,} | |")
        self.headline.append(
            f"| proxy CPU per request, module / static nginx | {first['cpu_ratio']:.2f} at {first['hosts']:,} routes, "
            f"{last['cpu_ratio']:.2f} at {last['hosts']:,} | |")

    def propagation(self) -> None:
        self.out("## Propagation latency: kroute and a reload-based controller", "")
        data = self.step_data("propagation", "propagation.json")
        if data is None:
            return
        self.propagation_data = data
        sizes = data["sizes"]
        self.out(
            "From the API server acknowledging a new Ingress (kroute: real etcd + kube-apiserver, kroute-agent, "
            "nginx with the module) or from the change being known (baseline: a generated nginx.conf with a "
            "`server` per host and an `upstream` per Service, written and `nginx -s reload`ed per change; its "
            "own watch latency is left out, which favours it) to the first 200 for the new host, polled by "
            "bench/propagation/first200.c (in C, started before the change) with a new connection every 0.5 ms. "
            "Creations alternate between the two systems, one at a time; "
            "\"load\": wrk on two existing hosts of each proxy meanwhile. Both nginx run 2 workers, no access "
            "log, and proxy to the same two echo pods; the pods are Python servers, so the load is light (the "
            "\"load served\" column): it puts requests through both proxies during the changes, it does not "
            "saturate them.", "")
        self.out("Creations per phase (kroute / baseline): " +
                 "; ".join(f"{s['creations']['kroute']} / {s['creations']['baseline']} at {s['routes']:,} routes"
                           for s in sizes) +
                 ". A reload of a large configuration takes up to seconds, so the baseline gets fewer creations; "
                 "with fewer than 100 samples a p99 is the largest sample.", "")
        fig, axes = plt.subplots(1, len(sizes), figsize=(4.4 * len(sizes), 3.8), sharey=True, squeeze=False)
        for ax, size in zip(axes[0], sizes):
            for name, colour in (("kroute", KROUTE), ("baseline", BASE)):
                for phase, style in (("idle", "-"), ("load", "--")):
                    s = size["phases"][phase].get(name)
                    if not s:
                        continue
                    xs = sorted(max(x, FLOOR_MS) for x in s["samples_ms"])
                    ys = [(i + 1) / len(xs) for i in range(len(xs))]
                    label = f"{'kroute' if name == 'kroute' else 'reload baseline'}, {phase} (n={len(xs)})"
                    ax.step(xs, ys, style, where="post", color=colour, label=label)
            ax.set_xscale("log")
            ax.set_title(f"{size['routes']:,} routes")
            ax.set_xlabel("API write → first 200 (ms)")
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=7, loc="lower right")
        axes[0][0].set_ylabel("fraction of creations")
        fig.suptitle(f"Propagation latency distribution (empirical CDF; 0 ms drawn at {FLOOR_MS} ms)")
        self.image(fig, "propagation.png", "propagation latency distributions")
        zeros = [f"{sum(1 for x in size['phases'][phase][name]['samples_ms'] if x <= 0)} of "
                 f"{size['phases'][phase][name]['n']} ({'kroute' if name == 'kroute' else 'baseline'}, {phase}, "
                 f"{size['routes']:,} routes)"
                 for size in sizes for phase in ("idle", "load") for name in ("kroute", "baseline")
                 if size["phases"][phase].get(name) and any(x <= 0 for x in size["phases"][phase][name]["samples_ms"])]
        if zeros:
            self.out("Creations whose host answered 200 before the API server's acknowledgement reached the bench "
                     "count as 0 ms (the agent's watch event can beat the reply to the client): " +
                     "; ".join(zeros) + ".", "")
        self.out("| routes | system | phase | creations | p50 ms | p99 ms | max ms | load served |",
                 "|---:|---|---|---:|---:|---:|---:|---:|")
        for size in sizes:
            for name in ("kroute", "baseline"):
                for phase in ("idle", "load", "httproute"):
                    s = size["phases"].get(phase, {}).get(name)
                    if s:
                        served = f"{s['load']['rps']:,.0f} req/s" if "load" in s else "–"
                        self.out(f"| {size['routes']:,} | {'kroute' if name == 'kroute' else 'reload baseline'} | "
                                 f"{phase} | {s['n']} | {ms(s['p50'])} | {ms(s['p99'])} | {ms(s['max'])} | {served} |")
        self.out("")
        parts = []
        for size in sizes:
            k, b = size["phases"]["idle"].get("kroute"), size["phases"]["idle"].get("baseline")
            if k and b:
                parts.append(f"{ms(k['p50'])} vs {ms(b['p50'])} ms at {size['routes']:,}")
        if parts:
            self.headline.append(f"| propagation p50 (idle), kroute vs reload baseline | {'; '.join(parts)} routes | "
                                 "API write (kroute) / config change (baseline) to first 200 |")
        parts = [f"{ms(size['phases']['idle']['kroute']['p99'])} ms at {size['routes']:,}" for size in sizes]
        self.headline.append(f"| propagation p99 (idle), kroute | {'; '.join(parts)} routes | |")
        target = all(size["phases"][p]["kroute"]["p50"] <= 10 and size["phases"][p]["kroute"]["p99"] <= 30
                     for size in sizes for p in size["phases"])
        self.out("\"httproute\": new HTTPRoutes instead of Ingresses (kroute only, idle).", "")
        self.out(f"kroute's target (p50 <= 10 ms, p99 <= 30 ms at every size, idle, under load and for HTTPRoutes): "
                 f"**{'met' if target else 'missed'}** in this run.", "")

    def memory(self) -> None:
        self.out("## nginx memory against the number of routes", "")
        module = load(self.results / "module.json") if self.run["steps"].get("module", {}).get("ok") else None
        prop = getattr(self, "propagation_data", None)
        if module is None and prop is None:
            self.out("*Not measured in this run: neither the `module` nor the `propagation` step succeeded.*", "")
            return
        self.out(
            "PSS (proportional set size: each shared page split among the processes mapping it) of the nginx "
            "master and its workers together, read from /proc/PID/smaps_rollup at rest. The module's route table "
            "is a mapped snapshot file, counted as far as the workers touched it; the snapshot file's own size "
            "is listed too. kroute-agent's PSS is listed beside the kroute nginx: a reload-based controller "
            "runs a process of its own too, which is not measured here.", "")
        panels = [p for p in (module, prop) if p]
        fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 3.8), squeeze=False)
        axes = list(axes[0])
        if module:
            ax = axes.pop(0)
            rs = module["results"]
            x = [r["hosts"] for r in rs]
            ax.plot(x, [r["memory"]["module"]["pss_kb"] / 1024 for r in rs], "o-", color=KROUTE, label="kroute module")
            ax.plot(x, [r["memory"]["static"]["pss_kb"] / 1024 for r in rs], "o-", color=BASE, label="static nginx")
            ax.set_title("throughput benchmark: 1 worker")
            ax.set_xscale("log")
            ax.set_xlabel("routes (hosts)")
            ax.set_ylabel("nginx PSS (MB)")
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
            ax.legend()
        if prop:
            ax = axes.pop(0)
            sz = [s for s in prop["sizes"] if "baseline" in s["memory"]]
            x = [s["routes"] for s in prop["sizes"]]
            ax.plot(x, [s["memory"]["kroute"]["pss_kb"] / 1024 for s in prop["sizes"]], "o-", color=KROUTE,
                    label="kroute nginx")
            ax.plot(x, [s["memory"]["agent"]["pss_kb"] / 1024 for s in prop["sizes"]], "o:", color=KROUTE,
                    label="kroute-agent")
            if sz:
                ax.plot([s["routes"] for s in sz], [s["memory"]["baseline"]["pss_kb"] / 1024 for s in sz], "o-",
                        color=BASE, label="reload baseline nginx")
            ax.set_title("propagation benchmark: 2 workers")
            ax.set_xscale("log")
            ax.set_xlabel("routes (Ingresses)")
            ax.set_ylabel("PSS (MB)")
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
            ax.legend()
        self.image(fig, "memory.png", "nginx memory against routes")
        if module:
            self.out("Throughput benchmark (master + 1 worker, after the wrk rounds):", "",
                     "| routes | kroute nginx PSS | static nginx PSS | ratio | kroute RSS | static RSS | table file |",
                     "|---:|---:|---:|---:|---:|---:|---:|")
            for r in module["results"]:
                m, s = r["memory"]["module"], r["memory"]["static"]
                self.out(f"| {r['hosts']:,} | {mb(m['pss_kb'])} MB | {mb(s['pss_kb'])} MB | "
                         f"{ratio(m['pss_kb'], s['pss_kb'])} | {mb(m['rss_kb'])} MB | {mb(s['rss_kb'])} MB | "
                         f"{m['table_kb'] / 1024:.2f} MB |")
            self.out("")
            last = module["results"][-1]
            self.headline.append(
                f"| nginx PSS at {last['hosts']:,} routes, kroute / static | {mb(last['memory']['module']['pss_kb'])} / "
                f"{mb(last['memory']['static']['pss_kb'])} MB | master + 1 worker |")
        if prop:
            self.out("Propagation benchmark (master + 2 workers, after the creations; the agent beside it):", "",
                     "| routes | kroute nginx PSS | reload baseline nginx PSS | kroute-agent PSS | "
                     "kroute: N routes served after | baseline: N routes served after |",
                     "|---:|---:|---:|---:|---:|---:|")
            for s in prop["sizes"]:
                b = s["memory"].get("baseline")
                self.out(f"| {s['routes']:,} | {mb(s['memory']['kroute']['pss_kb'])} MB | "
                         f"{mb(b['pss_kb']) + ' MB' if b else '–'} | {mb(s['memory']['agent']['pss_kb'])} MB | "
                         f"{s['grow_s']['kroute']:.1f} s | "
                         f"{'%.1f s' % s['grow_s']['baseline'] if 'baseline' in s['grow_s'] else '–'} |")
            self.out("", "\"Served after\": kroute from the first of the new Ingresses' creates to the last one "
                     "served (every create through the API, one at a time); the baseline from writing the whole "
                     "config to its last host served (one reload).", "")

    def storm(self) -> None:
        self.out("## Failed requests and cut connections during a storm of changes", "")
        prop = getattr(self, "propagation_data", None)
        if prop is None:
            self.out("*Not measured in this run: the `propagation` step did not succeed.*", "")
            return
        st = prop.get("storm")
        if not st:
            self.out("*Not measured in this run: the propagation step ran without --storm.*", "")
            return
        self.out(
            f"With {st['routes']:,} routes, {st['changes']} changes at {st['rate']:g} per second (in turn: a new "
            "host; the endpoints of a Service changed; a host deleted again or the endpoints restored; a path "
            "added to a host that is under load) while wrk (2 x 8 keep-alive connections, 5 s timeout) loads two "
            "hosts that exist throughout, one of them the host whose paths change. kroute gets each change "
            "through the API server; the baseline regenerates its config and runs `nginx -s reload` after each "
            "change (back to back when a reload takes longer than the interval). Failed requests: responses "
            "other than 2xx/3xx plus wrk timeouts. Cut connections: wrk's connect, read and write errors, i.e. "
            "connections the server closed or reset while a request sent on them had no response yet (for the "
            "baseline: old workers closing kept-alive connections as they exit). wrk counts each and reconnects; "
            "an HTTP client would see an error, or retry the request on a new connection if it is idempotent "
            "and the client does that.", "")
        totals: dict[str, dict[str, int]] = {}
        for rnd in st["rounds"]:
            for name, s in rnd.items():
                t = totals.setdefault(name, {"requests": 0, "failed": 0, "cut": 0})
                t["requests"] += s["load"]["requests"]
                t["failed"] += s["load"]["failed_requests"]
                t["cut"] += s["load"]["cut_connections"]
        fig, ax = plt.subplots(figsize=(6.5, 3.6))
        names = [n for n in ("kroute", "baseline") if n in totals]
        width = 0.38
        for i, (key, label) in enumerate((("failed", "failed requests"), ("cut", "cut connections"))):
            xs = [j + (i - 0.5) * width for j in range(len(names))]
            values = [totals[n][key] for n in names]
            bars = ax.bar(xs, values, width, label=label, color=["#ff7f0e", "#7f7f7f"][i])
            for bar, v in zip(bars, values):
                ax.annotate(f"{v:,}", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center",
                            va="bottom", fontsize=9)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels([f"{'kroute' if n == 'kroute' else 'reload baseline'}\n({totals[n]['requests']:,} requests)"
                            for n in names])
        ax.set_ylabel("count, all rounds")
        ax.set_title(f"{st['changes']} changes x {len(st['rounds'])} round(s) under load, {st['routes']:,} routes")
        ax.legend()
        ax.grid(alpha=0.3, axis="y")
        self.image(fig, "storm.png", "failed requests and cut connections during the storm")
        self.out("| system | round | changes applied in | requests | failed requests | cut connections | reloads | "
                 "nginx workers replaced | peak nginx PSS (processes) |", "|---|---:|---:|---:|---:|---:|---:|---|---:|")
        for r, rnd in enumerate(st["rounds"], 1):
            for name in ("kroute", "baseline"):
                s = rnd.get(name)
                if not s:
                    continue
                t = s["load"]
                self.out(f"| {'kroute' if name == 'kroute' else 'reload baseline'} | {r} | {s['seconds']:.1f} s | "
                         f"{t['requests']:,} | {t['failed_requests']:,} | {t['cut_connections']:,} | {s['reloads']} | "
                         f"{'yes' if s['nginx_workers_replaced'] else 'no'} | "
                         f"{mb(s['peak_memory']['pss_kb'])} MB ({s['peak_memory']['most_processes']}) |")
        self.out("")
        if "kroute" in totals and "baseline" in totals:
            k, b = totals["kroute"], totals["baseline"]
            self.headline.append(
                f"| storm of {st['changes']} changes x {len(st['rounds'])} under load, failed requests / cut "
                f"connections | kroute {k['failed']:,} / {k['cut']:,} of {k['requests']:,}; reload baseline "
                f"{b['failed']:,} / {b['cut']:,} of {b['requests']:,} | {st['routes']:,} routes |")

    def lookup(self) -> None:
        self.out("## Route lookup time against the number of routes", "")
        data = self.step_data("table", "table.json")
        if data is None:
            return
        med = {}
        for b in data["benchmarks"]:
            if b.get("aggregate_name") == "median":
                unit = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b["time_unit"]]
                # CPU time, as bench/report_table.py: what a lookup costs, not the time the thread spent
                # preempted on a shared machine.
                med[b["run_name"]] = dict(b, ns=b["cpu_time"] * unit)
        series = sorted((int(name.split("/")[1]), b["ns"]) for name, b in med.items()
                        if name.startswith("BM_Lookup_Routes/"))
        base = med["BM_Baseline_UnorderedMapFind"]["ns"]
        reps = med["BM_Baseline_UnorderedMapFind"].get("repetitions", "?")
        self.out(
            f"`build/bench/table-bench` (Google Benchmark, median of {reps} repetitions, CPU time per lookup): one lookup of host + "
            "path in a snapshot of N routes (N/5 hosts x 5 Prefix paths), cycling through 4,096 random requests "
            "so caches see a spread. Baseline, same run: one `std::unordered_map<std::string,int>::find` of the "
            "host in a 10,000-entry map. This is the module's per-request routing cost, without nginx around it.",
            "")
        fig, ax = plt.subplots(figsize=(6.5, 3.6))
        ax.plot([n for n, _ in series], [v for _, v in series], "o-", color=KROUTE, label="kroute table lookup")
        ax.axhline(base, color="grey", linestyle="--", label="unordered_map find (baseline)")
        ax.set_xscale("log")
        ax.set_xlabel("routes")
        ax.set_ylabel("CPU ns per lookup")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend()
        self.image(fig, "lookup.png", "lookup time against routes")
        self.out("| routes | lookup | vs baseline |", "|---:|---:|---:|")
        for n, v in series:
            self.out(f"| {n:,} | {v:.0f} ns | {v / base:.2f}x |")
        for name, label in (("BM_Lookup_10kHosts_5Paths", "10,000 hosts x 5 paths"),
                            ("BM_Lookup_1Host_10kPaths", "1 host x 10,000 paths"),
                            ("BM_Lookup_2kWildcardHosts", "2,000 wildcard hosts")):
            if name in med:
                self.out(f"| {label} | {med[name]['ns']:.0f} ns | {med[name]['ns'] / base:.2f}x |")
        self.out("", f"Baseline: {base:.0f} ns.", "")
        if series:
            self.headline.append(f"| route lookup | {series[0][1]:.0f} ns at {series[0][0]:,} routes, "
                                 f"{series[-1][1]:.0f} ns at {series[-1][0]:,} | one unordered_map find: {base:.0f} ns |")

    def write(self) -> None:
        self.throughput()
        self.propagation()
        self.memory()
        self.storm()
        self.lookup()
        body = self.lines
        head = self.header()
        head += ["## Summary", "", "| measurement | result | note |", "|---|---|---|", *self.headline, "",
                 "The machine's load average is in the header: on a shared machine absolute numbers move by tens of "
                 "percent between runs; the ratios against the baseline measured alternately in the same run move "
                 "less. Single rounds are in the plots.", ""]
        self.report.parent.mkdir(parents=True, exist_ok=True)
        self.report.write_text("\n".join(head + body).rstrip() + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--images", type=Path, required=True)
    args = parser.parse_args()
    Report(args.results.resolve(), args.report.resolve(), args.images.resolve()).write()
    print(f"render: wrote {args.report}")


if __name__ == "__main__":
    main()
