"""`make bench` / `make bench-quick`: runs every benchmark the report needs and renders the report.

Steps (each an existing benchmark script, run as a subprocess; its JSON and Markdown go into the results
directory, its output into <step>.log there):
  table        bench/run.sh                  route table lookups vs. routes (Google Benchmark)
  module       bench/module/bench.py         wrk: nginx + module vs. static nginx, throughput, p99, memory
  propagation  bench/propagation/bench.py    real API server + agent vs. generated config + nginx -s reload:
                                             propagation at several sizes, memory, a storm of changes
Then bench/report/render.py writes REPORT.md and its PNG plots from the JSON.

Full mode (default): results in bench/results/report-full/, the report in bench/REPORT.md with plots in
bench/report/img/ (both committed). --quick (<= 5 min): fewer sizes, rounds and creations; results,
report and plots in bench/results/report-quick/ (not committed).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PY = "/usr/bin/python3"

# What each mode runs. Sizes are routes (= hosts: one Ingress, one host, one path each).
MODES = {
    "full": {
        "table": ["bash", "bench/run.sh", "--out", "{out}", "{build}"],
        # The report plots routes without annotations by size; `make bench-module` adds the annotations rows.
        "module": [PY, "bench/module/bench.py", "--build", "{build}", "--sizes", "10,100,1000,10000",
                   "--annotation-sizes", "", "--canary-sizes", "", "--rounds", "10", "--seconds", "4", "--out", "{out}"],
        # The reload baseline at 10,000 routes needs seconds per reload: a few creations there only.
        "propagation": [PY, "bench/propagation/bench.py", "--routes", "100,1000,10000",
                        "--creations", "200,200,100", "--baseline-creations", "100,40,8",
                        "--storm", "100", "--storm-rate", "10", "--storm-routes", "1000", "--storm-rounds", "2",
                        "--output", "{out}/propagation.md"],
    },
    "quick": {
        "table": ["bash", "bench/run.sh", "--quick", "--out", "{out}", "{build}"],
        "module": [PY, "bench/module/bench.py", "--build", "{build}", "--sizes", "10,1000,10000",
                   "--annotation-sizes", "", "--canary-sizes", "", "--rounds", "3", "--seconds", "2", "--out", "{out}"],
        "propagation": [PY, "bench/propagation/bench.py", "--routes", "100,1000",
                        "--creations", "30", "--baseline-creations", "10,5",
                        "--storm", "40", "--storm-rate", "10", "--storm-routes", "1000",
                        "--output", "{out}/propagation.md"],
    },
}
# Exit codes that still mean "measured and wrote its results": bench/propagation/bench.py exits 1 when
# kroute misses its propagation target, which the report shows.
MEASURED = {"table": {0}, "module": {0}, "propagation": {0, 1}}
RESULT_FILES = {"table": "table.json", "module": "module.json", "propagation": "propagation.json"}


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def machine() -> dict[str, object]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
                 platform.processor() or "unknown")
    mhz = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("cpu MHz")), "")
    meminfo = {line.split(":")[0]: line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()}
    os_release = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line)
    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split("\n")[0].split(" Copyright")[0].strip()
    return {
        "cpu_model": model, "cpu_mhz": mhz, "cores": os.cpu_count(),
        "ram_gib": round(int(meminfo["MemTotal"]) / 1024 / 1024, 1),
        "kernel": platform.release(), "os": os_release.get("PRETTY_NAME", "").strip('"'),
        "nginx": nginx.rsplit("/", 1)[-1], "wrk": wrk, "python": platform.python_version(),
    }


def git() -> dict[str, object]:
    def run(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout
    changed = [line[3:] for line in run("status", "--porcelain", "--untracked-files=no").splitlines() if line]
    return {"commit": run("rev-parse", "HEAD").strip(), "subject": run("log", "-1", "--format=%s").strip(),
            "uncommitted": changed}


class Step:
    """One benchmark subprocess; SIGTERM/SIGINT to the driver reach it, and it cleans up after itself."""

    current: subprocess.Popen | None = None

    @classmethod
    def run(cls, name: str, argv: list[str], log_path: Path) -> dict[str, object]:
        print(f"bench: {name}: {shlex.join(argv)}", flush=True)
        began, load_before = time.time(), loadavg()
        with open(log_path, "w") as log:
            cls.current = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            try:
                for line in cls.current.stdout:
                    sys.stdout.write(f"  {name}| {line}")
                    sys.stdout.flush()
                    log.write(line)
                rc = cls.current.wait()
            except KeyboardInterrupt:
                # Ctrl-C reached the step too (same process group): let it stop what it started.
                try:
                    cls.current.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    cls.current.kill()
                raise
            cls.current = None
        seconds = time.time() - began
        print(f"bench: {name}: exit {rc} after {seconds / 60:.1f} min", flush=True)
        return {"name": name, "command": shlex.join(argv), "rc": rc, "ok": rc in MEASURED[name],
                "seconds": round(seconds, 1), "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(began)),
                "load_before": load_before, "load_after": loadavg()}

    @classmethod
    def forward(cls, signum: int, frame: object) -> None:
        if cls.current is not None and cls.current.poll() is None:
            cls.current.send_signal(signal.SIGTERM)
            try:
                cls.current.wait(timeout=120)
            except subprocess.TimeoutExpired:
                cls.current.kill()
        raise SystemExit(f"bench: stopped by signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the quick mode (<= 5 min), into bench/results/report-quick")
    parser.add_argument("--build", default=str(ROOT / "build"))
    parser.add_argument("--steps", default="table,module,propagation", help="which steps to run (comma list)")
    parser.add_argument("--render-only", action="store_true", help="render the report from the last run's results")
    args = parser.parse_args()

    mode = "quick" if args.quick else "full"
    results = ROOT / "bench" / "results" / f"report-{mode}"
    if mode == "full":
        report, images = ROOT / "bench" / "REPORT.md", ROOT / "bench" / "report" / "img"
    else:
        report, images = results / "REPORT.md", results / "img"
    results.mkdir(parents=True, exist_ok=True)
    run_file = results / "run.json"
    build = str(Path(args.build).resolve())

    if not args.render_only:
        signal.signal(signal.SIGTERM, Step.forward)
        steps = [s for s in args.steps.split(",") if s]
        unknown = set(steps) - set(MODES[mode])
        if unknown:
            parser.error(f"unknown steps: {', '.join(sorted(unknown))}")
        # A partial rerun (--steps) keeps the other steps' records from the last run.
        previous = json.loads(run_file.read_text()) if run_file.exists() and set(steps) != set(MODES[mode]) else {}
        record = {"mode": mode, "machine": machine(), "git": git(),
                  "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_start": loadavg(),
                  "driver": shlex.join(["python3", "bench/report/run.py", *sys.argv[1:]]),
                  "steps": {k: v for k, v in previous.get("steps", {}).items() if k not in steps}}
        began = time.time()
        for name in MODES[mode]:
            if name not in steps:
                continue
            (results / RESULT_FILES[name]).unlink(missing_ok=True)
            argv = [a.format(out=results, build=build) for a in MODES[mode][name]]
            record["steps"][name] = Step.run(name, argv, results / f"{name}.log")
            if record["steps"][name]["ok"] and not (results / RESULT_FILES[name]).exists():
                record["steps"][name]["ok"] = False
            run_file.write_text(json.dumps(record, indent=2) + "\n")
        record["load_end"] = loadavg()
        record["seconds"] = round(time.time() - began, 1)
        record["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        run_file.write_text(json.dumps(record, indent=2) + "\n")

    rendered = subprocess.run([PY, str(ROOT / "bench" / "report" / "render.py"), "--results", str(results),
                               "--report", str(report), "--images", str(images)], cwd=ROOT)
    record = json.loads(run_file.read_text())
    failed = [name for name, step in record["steps"].items() if not step["ok"]]
    if failed:
        print(f"bench: failed: {', '.join(failed)} (logs in {results})", file=sys.stderr)
    print(f"bench: report {report.relative_to(ROOT) if report.is_relative_to(ROOT) else report}, "
          f"{record.get('seconds', 0) / 60:.1f} min")
    return 1 if failed or rendered.returncode != 0 else 0


if __name__ == "__main__":
    sys.exit(main())
