"""nginx + kroute module vs. nginx with an equivalent static configuration, measured alternately with wrk.

Both proxies run at once with one worker each, pinned to one CPU; the backends (a separate nginx that
answers "ok") and wrk share the other CPU. For each size (hosts), every round runs both back to back
(alternating which goes first) and the ratio of the pair is kept; the report gives medians. After the
rounds, the memory of each proxy's master and worker (RSS and PSS from /proc/PID/smaps_rollup; the
module's table snapshot is a mapped file and counted in them as far as the workers touched it) is read
at rest. Writes bench/results/module.md and module.json (or into --out).
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "report"))

import procmem  # noqa: E402
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SERVICES = 10        # backends the hosts map onto (host i -> service i % SERVICES)
PODS = 4             # backend listeners; each service has 2 of them
KEEPALIVE = 128

# Per-request proxy settings shared by both configurations, as in nginx-conf/nginx.conf.
PROXY_SETTINGS = """
            proxy_http_version 1.1;
            proxy_set_header Connection $kroute_connection;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Host $kroute_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header X-Forwarded-Port $server_port;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Request-ID $kroute_request_id;
            proxy_next_upstream error timeout;
            proxy_next_upstream_tries 3;
"""

MAPS = """
    map $http_upgrade $kroute_connection { default upgrade; '' ''; }
    map $http_host $kroute_host { default $http_host; '' $host; }
    map $http_x_request_id $kroute_request_id { default $http_x_request_id; '' $request_id; }
"""

WRK_SCRIPT = """
local hosts = {}
local n = tonumber(os.getenv("BENCH_HOSTS"))
for i = 0, n - 1 do hosts[i + 1] = "host-" .. i .. ".bench.example.com" end
local i = 0
request = function()
  i = i + 1
  if i > n then i = 1 end
  return wrk.format("GET", "/", {["Host"] = hosts[i]})
end
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def host(i):
    return f"host-{i}.bench.example.com"


def pods_of(service, pod_ports):
    return [pod_ports[service % PODS], pod_ports[(service + 1) % PODS]]


def common_head(workdir, cpu):
    return f"""
worker_processes 1;
worker_cpu_affinity {1 << cpu:b};
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
worker_rlimit_nofile 65536;
events {{ worker_connections 16384; }}
"""


def http_head(workdir):
    return f"""
    client_body_temp_path {workdir}/body; proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi; uwsgi_temp_path {workdir}/uwsgi; scgi_temp_path {workdir}/scgi;
    access_log off;
    keepalive_requests 100000;
    server_names_hash_max_size 65536;
    server_names_hash_bucket_size 128;
"""


def backend_config(workdir, pod_ports, cpu):
    listens = "\n".join(f"        listen 127.0.0.1:{p} reuseport;" for p in pod_ports)
    return common_head(workdir, cpu) + f"""
http {{
{http_head(workdir)}
    server {{
{listens}
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""


def module_config(workdir, build, table_dir, port, cpu):
    """The shipped nginx.conf, with this run's paths and ports, one worker and no access log."""
    text = (ROOT / "nginx-conf" / "nginx.conf").read_text()
    replacements = [
        ("load_module /usr/lib/nginx/modules/ngx_http_kroute_module.so;",
         f"load_module {build}/module/ngx_http_kroute_module.so;"),
        ("user www-data;", "user www-data;" if os.geteuid() == 0 else ""),
        ("worker_processes auto;", f"worker_processes 1;\nworker_cpu_affinity {1 << cpu:b};\nworker_rlimit_nofile 65536;"),
        ("pid /run/nginx.pid;", f"pid {workdir}/nginx.pid;"),
        ("error_log stderr warn;", f"error_log {workdir}/error.log warn;"),
        ("kroute_table /run/kroute;", f"kroute_table {table_dir};" + http_head(workdir)),
        ("access_log /dev/stdout kroute;", ""),
        ("keepalive_requests 10000;\n    client", "client"),
        ("listen 80 default_server reuseport;", f"listen 127.0.0.1:{port} default_server reuseport;"),
        ("listen [::]:80 default_server reuseport;", ""),
        # Plain HTTP is measured; the TLS listeners would otherwise bind 0.0.0.0:443.
        ("listen 443 ssl http2 default_server reuseport;", ""),
        ("listen [::]:443 ssl http2 default_server reuseport;", ""),
        ("listen 10246;", f"listen 127.0.0.1:{free_port()};"),
        ("listen [::]:10246;", ""),
    ]
    for old, new in replacements:
        assert text.count(old) == 1, f"nginx.conf no longer has exactly one {old!r}"
        text = text.replace(old, new)
    return text


def static_config(workdir, hosts, pod_ports, port, cpu):
    """What a config generator would write for the same table: a server per host, an upstream per service."""
    upstreams = []
    for s in range(SERVICES):
        servers = "\n".join(f"        server 127.0.0.1:{p};" for p in pods_of(s, pod_ports))
        upstreams.append(f"""    upstream service-{s} {{
{servers}
        keepalive {KEEPALIVE};
        keepalive_requests 10000;
        keepalive_timeout 60s;
    }}""")
    servers = []
    for i in range(hosts):
        servers.append(f"""    server {{
        listen 127.0.0.1:{port}{" default_server reuseport" if i == 0 else ""};
        server_name {host(i)};
        location / {{
            proxy_pass http://service-{i % SERVICES};{PROXY_SETTINGS}        }}
    }}""")
    return common_head(workdir, cpu) + f"""
http {{
{http_head(workdir)}
    sendfile on;
    tcp_nopush on;
    server_tokens off;
    keepalive_timeout 75s;
{MAPS}
{chr(10).join(upstreams)}
{chr(10).join(servers)}
}}
"""


def table_description(hosts, pod_ports):
    backends = [{"name": f"service-{s}", "namespace": "bench", "service": f"service-{s}", "port": 80,
                 "endpoints": [{"address": "127.0.0.1", "port": p} for p in pods_of(s, pod_ports)]}
                for s in range(SERVICES)]
    ingresses = [{"namespace": "bench", "name": f"ingress-{i}", "creationTimestamp": "2026-01-01T00:00:00Z",
                  "rules": [{"host": host(i), "paths": [{"path": "/", "pathType": "Prefix",
                                                          "backend": f"service-{i % SERVICES}"}]}]}
                 for i in range(hosts)]
    return {"backends": backends, "ingresses": ingresses}


class Nginx:
    def __init__(self, name, workdir, config):
        self.workdir = workdir / name
        self.workdir.mkdir(mode=0o755)
        self.conf = self.workdir / "nginx.conf"
        self.conf.write_text(config)
        self.process = None

    def start(self, port):
        started = time.monotonic()
        self.process = subprocess.Popen([NGINX, "-p", str(self.workdir), "-c", str(self.conf), "-g", "daemon off;"],
                                        stderr=open(self.workdir / "stderr.log", "w"))
        while time.monotonic() - started < 120:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.05)
        raise RuntimeError(f"nginx {self.conf} did not start: {(self.workdir / 'stderr.log').read_text()}"
                           f"{(self.workdir / 'error.log').read_text() if (self.workdir / 'error.log').exists() else ''}")

    def worker_cpu_seconds(self):
        """CPU time (user + system) of the workers so far: what the proxy spent, whatever else runs."""
        total = 0
        for pid in self.pids()[1:]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / os.sysconf("SC_CLK_TCK")

    def pids(self):
        """The master and its workers."""
        return [self.process.pid, *procmem.children(self.process.pid)]

    def memory_kb(self):
        """RSS, PSS and private (USS) kB of the master and workers together, from smaps_rollup."""
        return procmem.memory_kb(self.pids())

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def wrk(port, hosts, seconds, connections, script, cpu):
    out = subprocess.run(["taskset", "-c", str(cpu), "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
                          "-s", str(script), f"http://127.0.0.1:{port}/"],
                         capture_output=True, text=True, timeout=seconds + 60,
                         env={**os.environ, "BENCH_HOSTS": str(hosts)})
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    text = out.stdout
    if "Non-2xx" in text or "Socket errors" in text:
        raise RuntimeError("wrk saw errors:\n" + text)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[p99.group(2)]
    return rps, float(p99.group(1)) * scale


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--build", default=str(ROOT / "build"))
    parser.add_argument("--sizes", default="10,10000")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args()

    build = Path(args.build).resolve()
    table_tool = build / "routetable" / "tool" / "kroute-table"
    for needed in (build / "module" / "ngx_http_kroute_module.so", table_tool):
        if not needed.exists():
            sys.exit(f"bench-module: {needed} is missing; run make first")
    if not shutil.which("wrk"):
        sys.exit("bench-module: wrk is missing; run make deps")

    proxy_cpu, load_cpu = (0, 1) if (os.cpu_count() or 1) > 1 else (0, 0)
    workdir = Path(tempfile.mkdtemp(prefix="kroute-bench-"))
    workdir.chmod(0o755)
    results = []
    running = []
    try:
        script = workdir / "hosts.lua"
        script.write_text(WRK_SCRIPT)
        pod_ports = [free_port() for _ in range(PODS)]
        backend = Nginx("backend", workdir, backend_config(workdir / "backend", pod_ports, load_cpu))
        running.append(backend)
        backend.start(pod_ports[0])
        for hosts in [int(s) for s in args.sizes.split(",")]:
            table_dir = workdir / f"table-{hosts}"
            table_dir.mkdir(mode=0o755)
            subprocess.run([str(table_tool), "-d", str(table_dir), "build", "-q", "-"], check=True, text=True,
                           input=json.dumps(table_description(hosts, pod_ports)))
            module_port, static_port = free_port(), free_port()
            module = Nginx(f"module-{hosts}", workdir,
                           module_config(workdir / f"module-{hosts}", build, table_dir, module_port, proxy_cpu))
            static = Nginx(f"static-{hosts}", workdir,
                           static_config(workdir / f"static-{hosts}", hosts, pod_ports, static_port, proxy_cpu))
            running += [module, static]
            module.start(module_port)
            static.start(static_port)
            runs = {"module": [], "static": []}
            # a short warm-up of each fills keepalive pools and caches
            for port in (module_port, static_port):
                wrk(port, hosts, 2, args.connections, script, load_cpu)
            for r in range(args.rounds):
                order = [("module", module_port), ("static", static_port)]
                for name, port in order if r % 2 == 0 else reversed(order):
                    proxy = module if name == "module" else static
                    cpu_before = proxy.worker_cpu_seconds()
                    rps, p99 = wrk(port, hosts, args.seconds, args.connections, script, load_cpu)
                    cpu_us = (proxy.worker_cpu_seconds() - cpu_before) * 1e6 / (rps * args.seconds)
                    runs[name].append({"rps": rps, "p99_ms": p99, "cpu_us_per_request": cpu_us})
                    print(f"bench-module: {hosts} hosts, round {r + 1}: {name} {rps:.0f} req/s, p99 {p99:.3f} ms, "
                          f"proxy CPU {cpu_us:.1f} us/request", flush=True)
            memory = {"module": module.memory_kb(), "static": static.memory_kb()}
            memory["module"]["table_kb"] = sum(f.stat().st_size for f in table_dir.iterdir()) // 1024
            print(f"bench-module: {hosts} hosts, memory (PSS): module {memory['module']['pss_kb'] / 1024:.1f} MB, "
                  f"static {memory['static']['pss_kb'] / 1024:.1f} MB", flush=True)
            module.stop()
            static.stop()
            summary = {"hosts": hosts, "runs": runs, "memory": memory}
            for name in runs:
                summary[name] = {key: statistics.median(x[key] for x in runs[name])
                                 for key in ("rps", "p99_ms", "cpu_us_per_request")}
            # Ratios of the two runs of each round (back to back, so noise from the rest of the machine mostly
            # hits both), then their median.
            pairs = list(zip(runs["module"], runs["static"]))
            summary["rps_ratio"] = statistics.median(m["rps"] / s["rps"] for m, s in pairs)
            summary["p99_ratio"] = statistics.median(m["p99_ms"] / s["p99_ms"] for m, s in pairs)
            summary["cpu_ratio"] = statistics.median(m["cpu_us_per_request"] / s["cpu_us_per_request"]
                                                     for m, s in pairs)
            results.append(summary)
    finally:
        for n in running:
            n.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "module.json").write_text(json.dumps({
        "command": ["python3", "bench/module/bench.py", *sys.argv[1:]], "args": vars(args),
        "proxy_cpu": proxy_cpu, "load_cpu": load_cpu, "results": results}, indent=2) + "\n")
    lines = [
        f"wrk -t1 -c{args.connections} -d{args.seconds}s, {args.rounds} rounds per size, each running module and "
        "static back to back (order alternating); req/s and p99 are medians over rounds, ratios the medians "
        "of each round's module/static ratio; "
        f"one nginx worker per proxy pinned to CPU {proxy_cpu}; backends (nginx `return 200`) and wrk on CPU "
        f"{load_cpu}; {SERVICES} services of 2 endpoints each, keepalive {KEEPALIVE}, no access log; requests "
        "cycle through every host. Proxy CPU/request is the nginx worker's user + system time over the "
        "requests it served: the cost of the proxy itself, least disturbed by whatever else the machine runs.",
        "",
        "| hosts | module req/s | static req/s | throughput ratio | module p99 | static p99 | p99 ratio "
        "| proxy CPU/request module | static | ratio |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in results:
        lines.append(f"| {s['hosts']:,} | {s['module']['rps']:,.0f} | {s['static']['rps']:,.0f} | "
                     f"{s['rps_ratio']:.3f} | {s['module']['p99_ms']:.2f} ms | {s['static']['p99_ms']:.2f} ms | "
                     f"{s['p99_ratio']:.3f} | {s['module']['cpu_us_per_request']:.1f} µs | "
                     f"{s['static']['cpu_us_per_request']:.1f} µs | {s['cpu_ratio']:.3f} |")
    lines += [
        "",
        "Memory at rest after the rounds, master + worker, MB (PSS counts each shared page once, split among "
        "the processes sharing it; RSS counts it in each; the table is the module's snapshot file):",
        "",
        "| hosts | module PSS | static PSS | PSS ratio | module RSS | static RSS | table file |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in results:
        m, st = s["memory"]["module"], s["memory"]["static"]
        lines.append(f"| {s['hosts']:,} | {m['pss_kb'] / 1024:.1f} | {st['pss_kb'] / 1024:.1f} | "
                     f"{m['pss_kb'] / st['pss_kb']:.2f} | {m['rss_kb'] / 1024:.1f} | {st['rss_kb'] / 1024:.1f} | "
                     f"{m['table_kb'] / 1024:.2f} |")
    (out / "module.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
