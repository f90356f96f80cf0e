#!/usr/bin/python3
"""TLS handshakes per second: certificates picked by the kroute module from a table of 10,000 certificates,
against the same nginx.conf with one certificate configured statically.

Method. 10,000 distinct RSA-2048 certificates (one per host, sharing one key so they are made in a minute)
go into one table with kroute-table, readable by nginx's group only. Two nginx instances run from the
shipped nginx.conf (tests/lib/nginx_runner.py's templating), each with one worker pinned to CPU 0 and a
`return 200` location: "module" as shipped (kroute_ssl on), "static" with `ssl_certificate` of one of the
certificates instead of kroute_ssl. Everything else (routing phase, TLS settings, session cache, tickets)
is the same. bench/tls/tls_client.c (4 threads, pinned to CPU 1) opens a new TLS connection per request,
sends SNI from a list of host names, one GET, reads the response and closes; with -r each connection
resumes its host's session (TLS 1.3 tickets). Runs alternate module/static (order swapped every round) so
drift hits both; the ratio is module/static per round, and the report gives the median.

The hot set is 100 of the 10,000 names (the module parses each once per worker: certificatesParsed from
kroute_status). A last pair of runs cycles through all 10,000 names with the default cache of 1,000
entries, so every handshake misses and parses: the worst case, not the expected one.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "lib"))
from nginx_runner import NGINX, WORKERS, free_port, readable_tempdir, render_config, wait_for_port  # noqa: E402

HOSTS = 10_000
HOT = 100
BENCH_LOCATION = '\n        location = /kroute-bench { return 200 "ok\\n"; }\n'


def sh(*args, **kwargs):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kwargs)


def make_certificates(directory: Path) -> list[str]:
    """host i's certificate PEM for i in 0..HOSTS-1 (cached in `directory` across runs), and the key."""
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / "shared.key"
    if not key.exists():
        sh("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(key))
    missing = [i for i in range(HOSTS) if not (directory / f"h{i}.crt").exists()]
    if missing:
        print(f"making {len(missing)} certificates (cached in {directory})", flush=True)
        script = (f'openssl req -x509 -key {key} -days 30 -subj "/CN=h$1.bench.test" '
                  f'-addext "subjectAltName=DNS:h$1.bench.test" -out {directory}/h$1.crt 2>/dev/null')
        subprocess.run(["xargs", "-P", str(os.cpu_count() or 2), "-n", "1", "sh", "-c", script, "sh"],
                       input="\n".join(map(str, missing)), text=True, check=True)
    return [(directory / f"h{i}.crt").read_text() for i in range(HOSTS)], key.read_text()


def publish_table(table_dir: Path, tool: Path, certificates: list[str], key: str) -> None:
    ingresses = [{"namespace": "bench", "name": f"h{i}", "creationTimestamp": "2026-01-01T00:00:00Z",
                  "sslRedirect": False,
                  "rules": [{"host": f"h{i}.bench.test", "paths": [{"path": "/", "pathType": "Prefix",
                                                                     "backend": "web"}]}],
                  "tls": [{"hosts": [f"h{i}.bench.test"], "secretName": f"h{i}-tls",
                           "certificate": certificates[i], "key": key}]} for i in range(HOSTS)]
    description = {"backends": [{"name": "web", "namespace": "bench", "service": "web", "port": 80,
                                 "endpoints": [{"address": "127.0.0.1", "port": 9}]}],
                   "ingresses": ingresses}
    group = ["--mode", "0640", "--group", "www-data"] if os.geteuid() == 0 else []
    subprocess.run([str(tool), "-d", str(table_dir), "build", "-q", *group, "-"], input=json.dumps(description),
                   text=True, check=True, timeout=300)


class Server:
    def __init__(self, name: str, table_dir: Path, static_cert: tuple[Path, Path] | None):
        self.name = name
        self.workdir = readable_tempdir(f"kroute-bench-tls-{name}-")
        self.port, self.status_port, self.tls_port = free_port(), free_port(), free_port()
        text = render_config(self.workdir, table_dir, self.port, self.status_port, tls_port=self.tls_port)
        replacements = [
            (f"worker_processes {WORKERS};", "worker_processes 1;\nworker_cpu_affinity 01;\nworker_rlimit_nofile 65536;"),
            (f"access_log {self.workdir}/access.log kroute;", "access_log off;"),
            (f"error_log {self.workdir}/error.log info;", f"error_log {self.workdir}/error.log warn;"),
            ("kroute_ssl on;", ("kroute_ssl on;" if static_cert is None else
                                f"ssl_certificate {static_cert[0]};\n        ssl_certificate_key {static_cert[1]};")
             + BENCH_LOCATION),
        ]
        for old, new in replacements:
            assert text.count(old) == 1, old
            text = text.replace(old, new)
        (self.workdir / "nginx.conf").write_text(text)
        self.process = subprocess.Popen([NGINX, "-p", str(self.workdir), "-c", str(self.workdir / "nginx.conf"),
                                         "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        if not wait_for_port("127.0.0.1", self.tls_port, timeout=30):
            raise RuntimeError(f"nginx ({name}) did not start: " + (self.workdir / "error.log").read_text())

    def status(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.status_port}/kroute/status", timeout=5) as r:
            return json.loads(r.read())["workers"][0]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        shutil.rmtree(self.workdir, ignore_errors=True)


def load(client: Path, server: Server, names: Path, seconds: int, resume: bool) -> dict:
    out = subprocess.run(["taskset", "-c", "1", str(client), "-p", str(server.tls_port), "-t", str(seconds),
                          "-c", "4", "-f", str(names), *(["-r"] if resume else [])],
                         capture_output=True, text=True, check=True, timeout=seconds + 60)
    return json.loads(out.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default=str(ROOT / "build"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "tls.md"))
    args = parser.parse_args()
    build = Path(args.build)
    work = build / "bench-tls"
    work.mkdir(parents=True, exist_ok=True)
    client = work / "tls_client"
    sh("cc", "-O2", "-o", str(client), str(ROOT / "bench" / "tls" / "tls_client.c"), "-lssl", "-lcrypto", "-lpthread")

    certificates, key = make_certificates(work / "certs")
    table_dir = readable_tempdir("kroute-bench-tls-table-")
    publish_table(table_dir, build / "routetable" / "tool" / "kroute-table", certificates, key)
    snapshot = max(table_dir.glob("table.*"), key=lambda p: p.stat().st_mtime).stat()
    hot, every = work / "hot-names", work / "all-names"
    hot.write_text("".join(f"h{i}.bench.test\n" for i in range(0, HOSTS, HOSTS // HOT)))
    every.write_text("".join(f"h{i}.bench.test\n" for i in range(HOSTS)))

    servers = {"module": Server("module", table_dir, None),
               "static": Server("static", table_dir, (work / "certs" / "h0.crt", work / "certs" / "shared.key"))}
    results: dict[str, dict[str, list[float]]] = {m: {"module": [], "static": []} for m in ("new", "resumed")}
    failures = 0
    try:
        for s in servers.values():  # warm-up: the module's cache fills with the hot set here
            load(client, s, hot, 2, False)
        warm = servers["module"].status()
        for r in range(args.rounds):
            order = ["module", "static"] if r % 2 == 0 else ["static", "module"]
            for mode in ("new", "resumed"):
                for name in order:
                    result = load(client, servers[name], hot, args.seconds, mode == "resumed")
                    failures += result["failed"]
                    if mode == "resumed" and result["reused"] < 0.9 * result["connections"]:
                        raise RuntimeError(f"{name}: only {result['reused']} of {result['connections']} resumed")
                    results[mode][name].append(result["per_second"])
                    print(f"round {r + 1} {mode:8} {name:6} {result['per_second']:8.1f}/s "
                          f"(failed {result['failed']}, resumed {result['reused']})", flush=True)
        after = servers["module"].status()
        misses = {name: load(client, servers[name], every, args.seconds, False) for name in ("module", "static")}
        thrashed = servers["module"].status()
    finally:
        for s in servers.values():
            s.stop()
        subprocess.run(["rm", "-rf", str(table_dir)])

    lines = [f"# TLS handshakes: module from a {HOSTS:,}-certificate table vs. one static certificate", "",
             f"Measured {time.strftime('%Y-%m-%d %H:%M')} with `python3 bench/tls/bench.py` (bench/tls/bench.py has "
             f"the method). Snapshot: {snapshot.st_size / 1e6:.1f} MB, mode "
             f"{oct(snapshot.st_mode & 0o777)}. Load average at the end: {os.getloadavg()[0]:.1f} on "
             f"{os.cpu_count()} cores. nginx: 1 worker on CPU 0; client: 4 threads on CPU 1; "
             f"{args.rounds} rounds of {args.seconds} s per cell, alternating.", "",
             "| handshakes | module /s (rounds) | static /s (rounds) | ratio per round | median ratio |",
             "|---|---|---|---|---|"]
    ratios = {}
    for mode in ("new", "resumed"):
        m, s = results[mode]["module"], results[mode]["static"]
        per_round = [a / b for a, b in zip(m, s)]
        ratios[mode] = statistics.median(per_round)
        lines.append(f"| {mode} (one request each) | {' '.join(f'{x:.0f}' for x in m)} | "
                     f"{' '.join(f'{x:.0f}' for x in s)} | {' '.join(f'{x:.3f}' for x in per_round)} | "
                     f"**{ratios[mode]:.3f}** |")
    lines += ["", f"Failed connections in all measured runs: {failures}.", "",
              f"Certificate cache (module worker): {warm['certificatesParsed']} parses after the warm-up over "
              f"{HOT} hot names, {after['certificatesParsed'] - warm['certificatesParsed']} more during the measured "
              f"runs (cached: {after['certificatesCached']}).", "",
              f"Worst case, all {HOSTS:,} names in a cycle (cache 1,000, every handshake parses): module "
              f"{misses['module']['per_second']:.0f}/s vs. static {misses['static']['per_second']:.0f}/s "
              f"(ratio {misses['module']['per_second'] / misses['static']['per_second']:.3f}; "
              f"{thrashed['certificatesParsed'] - after['certificatesParsed']} parses).", ""]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
