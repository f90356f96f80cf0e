"""nginx + kroute module vs. nginx with an equivalent static configuration, measured alternately with wrk.

Two kinds of rows: "plain" (one Prefix rule per host, no annotations: a rule without annotations must
cost nothing measurable) and "annotations" (every annotation of issue 17 on every host: use-regex paths,
rewrite-target with a group, upstream-vhost, x-forwarded-prefix, a permanent-redirect rule, app-root and
server-alias; the static side does the same with regex locations, rewrite, return and server_name).
Before measuring an annotations row, both proxies get the same probe requests and must answer alike.
A "canary" row (issue 18): every host has a canary Ingress taking 20% by weight and a primary with
session affinity by cookie; every request carries a session cookie. The static side does it with
split_clients and `hash $cookie_INGRESSCOOKIE consistent` (open-source nginx has no sticky cookies).

Both proxies run at once with one worker each, pinned to one CPU; the backends (a separate nginx that
answers "ok") and wrk share the other CPU. For each size (hosts), every round runs both back to back
(alternating which goes first) and the ratio of the pair is kept; the report gives medians. After the
rounds, the memory of each proxy's master and worker (RSS and PSS from /proc/PID/smaps_rollup; the
module's table snapshot is a mapped file and counted in them as far as the workers touched it) is read
at rest. Writes bench/results/module.md and module.json (or into --out).
"""
import argparse
import contextlib
import http.client
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

# The static side's per-request proxy settings: nginx-conf/nginx.conf's (the module side runs that file),
# with what the module computes per route as plain values: Host ($kroute_upstream_host: the client's
# Host, or upstream-vhost) and X-Forwarded-Prefix ($kroute_forwarded_prefix: only where a route sets one).
PROXY_SETTINGS = """
            proxy_http_version 1.1;
            proxy_set_header Connection $kroute_connection;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Host {upstream_host};{forwarded_prefix}
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header X-Forwarded-Port $server_port;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Request-ID $kroute_request_id;
            proxy_buffer_size 4k;
            proxy_buffers 4 4k;{limits}"""

# nginx.conf's defaults of what a route's proxy-* annotations may override.
PROXY_DEFAULTS = """
            proxy_next_upstream error timeout;
            proxy_next_upstream_tries 3;
            proxy_buffering off;
            client_body_buffer_size 8k;
            client_max_body_size 1m;
"""

# The proxy rows: every host's rule overrides timeouts, retries, body limits and buffering with
# annotations; the static side writes the same values as directives in the host's location.
PROXY_ANNOTATIONS = {
    "proxy-connect-timeout": "3", "proxy-read-timeout": "30", "proxy-send-timeout": "30",
    "proxy-next-upstream": "error timeout http_502", "proxy-next-upstream-tries": "2",
    "proxy-body-size": "8m", "client-body-buffer-size": "16k", "proxy-buffering": "on",
}
PROXY_DIRECTIVES = """
            proxy_connect_timeout 3s;
            proxy_read_timeout 30s;
            proxy_send_timeout 30s;
            proxy_next_upstream error timeout http_502;
            proxy_next_upstream_tries 2;
            client_max_body_size 8m;
            client_body_buffer_size 16k;
            proxy_buffering on;
"""

# The static side's own maps; $kroute_host stands in for what $kroute_upstream_host is without upstream-vhost.
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

# The canary rows: every request of a host carries one of 64 session cookies (even keys: the primary's
# sessions, see docs/module.md), so neither side sets cookies and both hash them.
CANARY_WRK_SCRIPT = """
local hosts = {}
local n = tonumber(os.getenv("BENCH_HOSTS"))
for i = 0, n - 1 do hosts[i + 1] = "host-" .. i .. ".bench.example.com" end
local cookies = {}
for c = 0, 63 do cookies[c + 1] = string.format("INGRESSCOOKIE=%016x", (c * 2654435761 * 2) % 4294967296) end
local i, c = 0, 0
request = function()
  i = i + 1
  if i > n then i = 1 end
  c = c % 64 + 1
  return wrk.format("GET", "/", {["Host"] = hosts[i], ["Cookie"] = cookies[c]})
end
"""
CANARY_WEIGHT = 20

# The annotations rows' mix, the same for both proxies: of every 10 requests 8 are proxied through the
# rewrite (half of them to the host's alias), 1 gets the permanent redirect, 1 the app-root redirect (on
# the host or, for every other host, its alias).
ANNOTATIONS_WRK_SCRIPT = """
local n = tonumber(os.getenv("BENCH_HOSTS"))
-- every host in turn, each time with the next request of its mix
local ordered = {}
for m = 1, 10 do
  for h = 0, n - 1 do
    local name, alias = "host-" .. h .. ".bench.example.com", "alias-" .. h .. ".bench.example.com"
    local mix = {{name, "/api/v1/items/" .. h .. "?page=2"}, {alias, "/api/v2/items/" .. h},
                 {name, "/API/V3/orders/" .. h}, {alias, "/api/v10/orders/" .. h .. "/lines"},
                 {name, "/api/v1/users/" .. h}, {alias, "/api/v1/users/" .. h .. "?q=x"},
                 {name, "/api/v2/"}, {alias, "/api/v2/a/b/c"},
                 {name, "/old/page/" .. h}, {h % 2 == 0 and name or alias, "/"}}
    ordered[#ordered + 1] = wrk.format("GET", mix[m][2], {["Host"] = mix[m][1]})
  end
end
local i = 0
request = function()
  i = i + 1
  if i > #ordered then i = 1 end
  return ordered[i]
end
"""

# The rules of an annotations row's host, as Ingress paths and as static nginx locations.
API_PATH = "/api/v[0-9]+/(.*)"
OLD_PATH = "/old(/|$)(.*)"
REDIRECT_URL = "https://new.example.com/$2"
APP_ROOT = "/app"
FORWARDED_PREFIX = "/api"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def host(i):
    return f"host-{i}.bench.example.com"


def alias(i):
    return f"alias-{i}.bench.example.com"


def vhost(i):
    return f"internal-{i}.bench.example.com"


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
        # What arrived, so the probes can compare the two proxies' upstream requests.
        add_header X-Echo-URI $request_uri;
        add_header X-Echo-Host $http_host;
        add_header X-Echo-Prefix $http_x_forwarded_prefix;
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""


def module_config(workdir, build, table_dir, port, cpu):
    """The shipped nginx.conf, with this run's paths and ports, one worker and no access log."""
    text = (ROOT / "nginx-conf" / "nginx.conf").read_text()
    # The image's include files (client address, HSTS, listeners) in their place.
    for name in ("http.conf", "listen.conf"):
        text = text.replace(f"include /etc/nginx/kroute/{name};", (ROOT / "nginx-conf" / "kroute" / name).read_text())
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


def proxy_settings(upstream_host="$kroute_host", forwarded_prefix=None, limits=PROXY_DEFAULTS):
    prefix = f"\n            proxy_set_header X-Forwarded-Prefix {forwarded_prefix};" if forwarded_prefix else ""
    return PROXY_SETTINGS.format(upstream_host=upstream_host, forwarded_prefix=prefix, limits=limits)


def plain_server(i, port):
    return f"""    server {{
        listen 127.0.0.1:{port}{" default_server reuseport" if i == 0 else ""};
        server_name {host(i)};
        location / {{
            proxy_pass http://service-{i % SERVICES};{proxy_settings()}        }}
    }}"""


def proxy_server(i, port):
    """The proxy row's host i: plain_server's location with the route's values instead of the defaults."""
    return f"""    server {{
        listen 127.0.0.1:{port}{" default_server reuseport" if i == 0 else ""};
        server_name {host(i)};
        location / {{
            proxy_pass http://service-{i % SERVICES};{proxy_settings(limits=PROXY_DIRECTIVES)}        }}
    }}"""


def annotations_server(i, port):
    """What ingress-nginx writes for the annotations row's Ingresses of host i (regex locations, longest first)."""
    return f"""    server {{
        listen 127.0.0.1:{port}{" default_server reuseport" if i == 0 else ""};
        server_name {host(i)} {alias(i)};
        if ($uri = /) {{ return 302 $scheme://$http_host{APP_ROOT}; }}
        location ~* "^{API_PATH}" {{
            rewrite "(?i)^{API_PATH}" /$1 break;
            proxy_pass http://service-{i % SERVICES};{proxy_settings(vhost(i), FORWARDED_PREFIX)}        }}
        location ~* "^{OLD_PATH}" {{ return 301 {REDIRECT_URL}; }}
    }}"""


def canary_server(i, port):
    """A canary by weight and a primary with session affinity, as split_clients and hash by cookie."""
    return f"""    server {{
        listen 127.0.0.1:{port}{" default_server reuseport" if i == 0 else ""};
        server_name {host(i)};
        location / {{
            set $bench_service service-{i % SERVICES};
            if ($bench_canary) {{ set $bench_service service-{(i + 1) % SERVICES}; }}
            proxy_pass http://$bench_service;{proxy_settings()}        }}
    }}"""


def static_config(workdir, row, hosts, pod_ports, port, cpu):
    """What a config generator would write for the same table: a server per host, an upstream per service."""
    upstreams = []
    hashing = "        hash $cookie_INGRESSCOOKIE consistent;\n" if row == "canary" else ""
    for s in range(SERVICES):
        servers = "\n".join(f"        server 127.0.0.1:{p};" for p in pods_of(s, pod_ports))
        upstreams.append(f"""    upstream service-{s} {{
{hashing}{servers}
        keepalive {KEEPALIVE};
        keepalive_requests 10000;
        keepalive_timeout 60s;
    }}""")
    server = {"annotations": annotations_server, "proxy": proxy_server, "canary": canary_server}.get(row, plain_server)
    servers = [server(i, port) for i in range(hosts)]
    split = (f'    split_clients "$request_id" $bench_canary {{ {CANARY_WEIGHT}% 1; * ""; }}'
             if row == "canary" else "")
    # pcre_jit as ingress-nginx's nginx.conf has it (the module's regex paths are JIT compiled too).
    return common_head(workdir, cpu) + f"""
pcre_jit on;
http {{
{http_head(workdir)}
    sendfile on;
    tcp_nopush on;
    server_tokens off;
    keepalive_timeout 75s;
{MAPS}
{split}
{chr(10).join(upstreams)}
{chr(10).join(servers)}
}}
"""


def table_description(row, hosts, pod_ports):
    backends = [{"name": f"service-{s}", "namespace": "bench", "service": f"service-{s}", "port": 80,
                 "endpoints": [{"address": "127.0.0.1", "port": p} for p in pods_of(s, pod_ports)]}
                for s in range(SERVICES)]

    def ingress(name, i, path, path_type, annotations=None):
        return {"namespace": "bench", "name": name, "creationTimestamp": "2026-01-01T00:00:00Z",
                **({"annotations": annotations} if annotations else {}),
                "rules": [{"host": host(i), "paths": [{"path": path, "pathType": path_type,
                                                       "backend": f"service-{i % SERVICES}"}]}]}
    prefix = "nginx.ingress.kubernetes.io/"
    if row == "plain":
        return {"backends": backends, "ingresses": [ingress(f"ingress-{i}", i, "/", "Prefix") for i in range(hosts)]}
    if row == "proxy":
        annotations = {prefix + k: v for k, v in PROXY_ANNOTATIONS.items()}
        return {"backends": backends,
                "ingresses": [ingress(f"ingress-{i}", i, "/", "Prefix", annotations) for i in range(hosts)]}
    if row == "canary":
        ingresses = []
        for i in range(hosts):
            # legacy: the weight decides for every request (the static side's split_clients), the cookie only
            # which endpoint of the primary
            ingresses.append(ingress(f"primary-{i}", i, "/", "Prefix", {
                prefix + "affinity": "cookie", prefix + "affinity-canary-behavior": "legacy"}))
            canary = ingress(f"canary-{i}", i, "/", "Prefix", {prefix + "canary": "true",
                                                                prefix + "canary-weight": str(CANARY_WEIGHT)})
            canary["rules"][0]["paths"][0]["backend"] = f"service-{(i + 1) % SERVICES}"
            ingresses.append(canary)
        return {"backends": backends, "ingresses": ingresses}
    ingresses = []
    for i in range(hosts):
        ingresses.append(ingress(f"api-{i}", i, API_PATH, "ImplementationSpecific", {
            prefix + "use-regex": "true", prefix + "rewrite-target": "/$1", prefix + "upstream-vhost": vhost(i),
            prefix + "x-forwarded-prefix": FORWARDED_PREFIX, prefix + "app-root": APP_ROOT,
            prefix + "server-alias": alias(i)}))
        ingresses.append(ingress(f"old-{i}", i, OLD_PATH, "ImplementationSpecific", {
            prefix + "use-regex": "true", prefix + "permanent-redirect": REDIRECT_URL}))
    return {"backends": backends, "ingresses": ingresses}


def probe(port, host_name, target):
    """One request as both proxies get it: (status, Location, upstream URI, upstream Host, X-Forwarded-Prefix)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", target, headers={"Host": host_name})
        response = connection.getresponse()
        response.read()
        return (response.status, response.getheader("Location"), response.getheader("X-Echo-URI"),
                response.getheader("X-Echo-Host"), response.getheader("X-Echo-Prefix"))
    finally:
        connection.close()


def check_same_answers(module_port, static_port, hosts):
    """The annotations row measures like for like only if both proxies answer alike: fail otherwise."""
    differences = []
    for i in sorted({0, hosts - 1}):
        for host_name, target in [(host(i), "/api/v2/orders/7?x=1"), (alias(i), "/api/v1/a%20b/c"),
                                  (host(i), "/API/V10/"), (host(i), "/old/page/a?b=c"), (host(i), "/old"),
                                  (alias(i), "/old/x"), (host(i), "/"), (alias(i), "/?q=1"), (host(i), "/other")]:
            module, static = probe(module_port, host_name, target), probe(static_port, host_name, target)
            if module != static:
                differences.append(f"GET {target} Host {host_name}: module {module}, static {static}")
    if differences:
        raise RuntimeError("bench-module: the module and static nginx answer differently:\n" + "\n".join(differences))


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


@contextlib.contextmanager
def one_module_stack(tag, build, describe):
    """For the small benchmarks (bench-regex, bench-limits): checks the build and wrk, starts a backend nginx
    (two pod ports) and nginx with the module on the table `describe(pod_ports)` builds, one worker each on
    its own CPU. Yields (module nginx, its port, the CPU left for the load); stops both and removes the
    work directory afterwards."""
    build = Path(build).resolve()
    table_tool = build / "routetable" / "tool" / "kroute-table"
    for needed in (build / "module" / "ngx_http_kroute_module.so", table_tool):
        if not needed.exists():
            sys.exit(f"{tag}: {needed} is missing; run make first")
    if not shutil.which("wrk"):
        sys.exit(f"{tag}: wrk is missing; run make deps")
    proxy_cpu, load_cpu = (0, 1) if (os.cpu_count() or 1) > 1 else (0, 0)
    workdir = Path(tempfile.mkdtemp(prefix=f"kroute-{tag}-"))
    workdir.chmod(0o755)
    running = []
    try:
        pod_ports = [free_port() for _ in range(2)]
        backend = Nginx("backend", workdir, backend_config(workdir / "backend", pod_ports, load_cpu))
        running.append(backend)
        backend.start(pod_ports[0])
        table_dir = workdir / "table"
        table_dir.mkdir(mode=0o755)
        subprocess.run([str(table_tool), "-d", str(table_dir), "build", "-q", "-"], check=True, text=True,
                       input=json.dumps(describe(pod_ports)))
        port = free_port()
        module = Nginx("module", workdir, module_config(workdir / "module", build, table_dir, port, proxy_cpu))
        running.append(module)
        module.start(port)
        yield module, port, load_cpu
    finally:
        for n in running:
            n.stop()
        shutil.rmtree(workdir, ignore_errors=True)


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
    parser.add_argument("--sizes", default="10,10000", help="hosts of the plain rows")
    parser.add_argument("--annotation-sizes", default="10,1000", help="hosts of the annotations rows ('' for none)")
    parser.add_argument("--proxy-sizes", default="10,1000",
                        help="hosts of the proxy rows (timeout/body-size overrides; '' for none)")
    parser.add_argument("--canary-sizes", default="10,1000", help="hosts of the canary+affinity rows ('' for none)")
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
        scripts = {"plain": workdir / "plain.lua", "annotations": workdir / "annotations.lua",
                   "proxy": workdir / "plain.lua",
                   "canary": workdir / "canary.lua"}
        scripts["plain"].write_text(WRK_SCRIPT)
        scripts["annotations"].write_text(ANNOTATIONS_WRK_SCRIPT)
        scripts["canary"].write_text(CANARY_WRK_SCRIPT)
        pod_ports = [free_port() for _ in range(PODS)]
        backend = Nginx("backend", workdir, backend_config(workdir / "backend", pod_ports, load_cpu))
        running.append(backend)
        backend.start(pod_ports[0])
        rows = [("plain", int(s)) for s in args.sizes.split(",") if s] + \
               [("annotations", int(s)) for s in args.annotation_sizes.split(",") if s] + \
               [("proxy", int(s)) for s in args.proxy_sizes.split(",") if s] + \
               [("canary", int(s)) for s in args.canary_sizes.split(",") if s]
        for row, hosts in rows:
            script = scripts[row]
            table_dir = workdir / f"table-{row}-{hosts}"
            table_dir.mkdir(mode=0o755)
            subprocess.run([str(table_tool), "-d", str(table_dir), "build", "-q", "-"], check=True, text=True,
                           input=json.dumps(table_description(row, hosts, pod_ports)))
            module_port, static_port = free_port(), free_port()
            module = Nginx(f"module-{row}-{hosts}", workdir,
                           module_config(workdir / f"module-{row}-{hosts}", build, table_dir, module_port, proxy_cpu))
            static = Nginx(f"static-{row}-{hosts}", workdir,
                           static_config(workdir / f"static-{row}-{hosts}", row, hosts, pod_ports, static_port,
                                         proxy_cpu))
            running += [module, static]
            module.start(module_port)
            static.start(static_port)
            if row == "annotations":
                check_same_answers(module_port, static_port, hosts)
            if row == "canary":
                for port in (module_port, static_port):
                    assert probe(port, host(0), "/")[0] == 200, f"the canary row's proxy on {port} does not answer 200"
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
                    print(f"bench-module: {row}, {hosts} hosts, round {r + 1}: {name} {rps:.0f} req/s, p99 {p99:.3f} ms, "
                          f"proxy CPU {cpu_us:.1f} us/request", flush=True)
            memory = {"module": module.memory_kb(), "static": static.memory_kb()}
            memory["module"]["table_kb"] = sum(f.stat().st_size for f in table_dir.iterdir()) // 1024
            print(f"bench-module: {row}, {hosts} hosts, memory (PSS): module {memory['module']['pss_kb'] / 1024:.1f} MB, "
                  f"static {memory['static']['pss_kb'] / 1024:.1f} MB", flush=True)
            module.stop()
            static.stop()
            summary = {"row": row, "hosts": hosts, "runs": runs, "memory": memory}
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
        "Rows: *plain* is one Prefix rule per host without annotations (target: throughput ratio >= 0.97, a rule "
        "without annotations costs nothing measurable). *annotations* is every annotation of issue 17 on every "
        "host (target: throughput ratio >= 0.95): a use-regex path with rewrite-target `/$1`, upstream-vhost and "
        "x-forwarded-prefix, a permanent-redirect rule using a path group, app-root and a server-alias; the static "
        "side does it with `server_name host alias`, `if ($uri = /) { return 302 ...; }`, regex locations with "
        "`rewrite ... break` and `return 301` (and `pcre_jit on`, as ingress-nginx). Its requests: 8 in 10 "
        "proxied through the rewrite (half to the alias), 1 permanent redirect, 1 app-root redirect; both proxies "
        "answered probe requests identically (status, Location, upstream URI, Host, X-Forwarded-Prefix) before "
        "the rounds. *proxy* overrides on every host's rule, by annotations, the connect/read/send timeouts, "
        "proxy-next-upstream and its tries, proxy-body-size, client-body-buffer-size and proxy-buffering (target: "
        "throughput ratio >= 0.95); the static side sets the same values with directives in the host's location.",
        "the rounds. *canary* (issue 18) is a canary Ingress by weight (20%) and a primary with session affinity "
        "(`affinity: cookie`, `affinity-canary-behavior: legacy`) on every host, every request carrying a valid "
        "session cookie (target: throughput ratio >= 0.95); the static side does it with `split_clients "
        "\"$request_id\"`, `if` + `set` choosing the upstream, and `hash $cookie_INGRESSCOOKIE consistent` "
        "(open-source nginx has no sticky cookies, so hashing the cookie is the nearest equivalent).",
        "",
        "| row | hosts | module req/s | static req/s | throughput ratio | module p99 | static p99 | p99 ratio "
        "| proxy CPU/request module | static | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in results:
        lines.append(f"| {s['row']} | {s['hosts']:,} | {s['module']['rps']:,.0f} | {s['static']['rps']:,.0f} | "
                     f"{s['rps_ratio']:.3f} | {s['module']['p99_ms']:.2f} ms | {s['static']['p99_ms']:.2f} ms | "
                     f"{s['p99_ratio']:.3f} | {s['module']['cpu_us_per_request']:.1f} µs | "
                     f"{s['static']['cpu_us_per_request']:.1f} µs | {s['cpu_ratio']:.3f} |")
    lines += [
        "",
        "Memory at rest after the rounds, master + worker, MB (PSS counts each shared page once, split among "
        "the processes sharing it; RSS counts it in each; the table is the module's snapshot file):",
        "",
        "| row | hosts | module PSS | static PSS | PSS ratio | module RSS | static RSS | table file |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in results:
        m, st = s["memory"]["module"], s["memory"]["static"]
        lines.append(f"| {s['row']} | {s['hosts']:,} | {m['pss_kb'] / 1024:.1f} | {st['pss_kb'] / 1024:.1f} | "
                     f"{m['pss_kb'] / st['pss_kb']:.2f} | {m['rss_kb'] / 1024:.1f} | {st['rss_kb'] / 1024:.1f} | "
                     f"{m['table_kb'] / 1024:.2f} |")
    (out / "module.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
