"""Fixtures for the integration tests: real nginx with the kroute module, route tables published with
kroute-table, and echo backends on loopback. Every process started here is stopped on teardown."""
import atexit
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(os.environ.get("KROUTE_ROOT", Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(ROOT / "tests" / "lib"))
import sanitizers  # noqa: E402

# KROUTE_BUILD=build-asan runs the sanitizer build (make asan); see tests/lib/sanitizers.py.
BUILD = Path(os.environ.get("KROUTE_BUILD", ROOT / "build"))
BUILT_MODULE = BUILD / "module" / "ngx_http_kroute_module.so"
# The tool that publishes the tests' tables; KROUTE_TABLE_TOOL picks another build's (the suite
# integration-asan publishes with the release build's: see tests/suites/31-integration-asan.sh).
BUILT_TABLE_TOOL = Path(os.environ.get("KROUTE_TABLE_TOOL") or BUILD / "routetable" / "tool" / "kroute-table")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
NGINX_CONF = ROOT / "nginx-conf" / "nginx.conf"
ECHO_SERVER = Path(__file__).resolve().parent / "echo_server.py"
WORKERS = 2


_handed_out = set()


def _private_copies():
    """The module and kroute-table as they were when the run started: a build running in the same tree
    (make, another engineer) may relink them while the tests run."""
    directory = Path(tempfile.mkdtemp(prefix="kroute-binaries-"))
    directory.chmod(0o755)
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    copies = []
    for built in (BUILT_MODULE, BUILT_TABLE_TOOL):
        copy = directory / built.name
        shutil.copy2(built, copy)
        copies.append(copy)
    return copies


MODULE, TABLE_TOOL = _private_copies()
# A module built with -fsanitize=address,undefined: nginx runs with clang's runtime preloaded, and a
# sanitizer report in its logs fails the test.
SANITIZED = sanitizers.instrumented(MODULE)
NGINX_ENV = sanitizers.nginx_env() if SANITIZED else None
# A sanitized kroute-table runs without LeakSanitizer's exit scan here: it costs ~50 ms a process, and
# the tests publish under load at a pace their load was sized for. Leaks of the tool's code (routetable)
# are checked by the unit-asan suite and, in the agent, by e2e-asan.
TABLE_TOOL_ENV = ({**os.environ, "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0"}
                  if sanitizers.instrumented(TABLE_TOOL) else None)


def free_port(host="127.0.0.1"):
    """A port nothing listens on. The kernel may offer a just-closed port again, so none is handed out twice."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(100):
        with socket.socket(family) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port")


def wait_until(predicate, timeout=5.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def wait_for_port(host, port, timeout=5.0):
    def connectable():
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            return False
    return wait_until(connectable, timeout)


def readable_tempdir(prefix):
    """A temporary directory nginx workers (another user) can read."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


class Backends:
    """Echo servers, one listener per name, in one child process."""

    def __init__(self, listeners):
        self.addresses = dict(listeners)  # name -> (host, port)
        args = [f"{name}=[{host}]:{port}" if ":" in host else f"{name}={host}:{port}"
                for name, (host, port) in listeners.items()]
        self.process = subprocess.Popen([sys.executable, str(ECHO_SERVER), *args],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if line.strip() != "ready":
            self.stop()
            raise RuntimeError(f"echo backends did not start: {line!r}")

    def endpoint(self, name, weight=1, ready=True):
        host, port = self.addresses[name]
        return {"address": host, "port": port, "weight": weight, "ready": ready}

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=5)


@pytest.fixture
def backends():
    started = []

    def start(names, host="127.0.0.1"):
        b = Backends({name: (host, free_port(host)) for name in names})
        started.append(b)
        return b

    yield start
    for b in started:
        b.stop()


def backend(name, endpoints, ns="test", port=80):
    return {"name": name, "namespace": ns, "service": name, "port": port, "endpoints": endpoints}


def ingress(name, rules, ns="test", created="2026-01-01T00:00:00Z"):
    return {"namespace": ns, "name": name, "creationTimestamp": created, "rules": rules}


def rule(host, *paths):
    """paths: (path, pathType, backend) tuples."""
    r = {"paths": [{"path": p, "pathType": t, "backend": b} for p, t, b in paths]}
    if host is not None:
        r["host"] = host
    return r


class Table:
    """A table directory and the kroute-table tool that publishes into it."""

    def __init__(self, directory):
        self.dir = directory

    def publish(self, description, group=None):
        """Publishes a generation; with `group`, readable by that group only (mode 0640), as a table holding
        private keys must be."""
        private = ["--mode", "0640", "--group", group] if group else []
        out = subprocess.run([str(TABLE_TOOL), "-d", str(self.dir), "build", *private, "-"],
                             input=json.dumps(description), capture_output=True, text=True, timeout=30,
                             env=TABLE_TOOL_ENV)
        assert out.returncode == 0, out.stderr
        return int(out.stdout.split()[2])  # "published generation N to ..."

    def lookup(self, host, path):
        out = subprocess.run([str(TABLE_TOOL), "-d", str(self.dir), "lookup", "--json", host, path],
                             capture_output=True, text=True, timeout=30, env=TABLE_TOOL_ENV)
        assert out.returncode in (0, 2), out.stderr
        return json.loads(out.stdout)

    def generation(self):
        with open(self.dir / "control", "rb") as f:
            f.seek(8)
            return int.from_bytes(f.read(8), "little")

    def set_generation(self, generation):
        """Points the control file at `generation`, as the publisher would (for hand-made snapshots)."""
        with open(self.dir / "control", "r+b") as f:
            f.seek(8)
            f.write(generation.to_bytes(8, "little"))


@pytest.fixture
def table():
    directory = readable_tempdir("kroute-table-")
    yield Table(directory)
    shutil.rmtree(directory, ignore_errors=True)


def render_config(workdir, table_dir, port, status_port, text=None, tls_port=None, includes=None,
                  address="127.0.0.1"):
    """nginx-conf/nginx.conf with paths and ports of this test; everything else as the image ships it. The
    traffic listeners are on address:port and address:tls_port (a free port when None; IPv6 on [::1] only
    with the default address, loopback), the status listener on 127.0.0.1:status_port. The files nginx.conf
    includes from /etc/nginx/kroute/ are put in its place: the image's (nginx-conf/kroute/), or `includes`'
    text by file name (what the chart renders into its ConfigMap); their listeners keep their parameters
    (proxy_protocol)."""
    text = NGINX_CONF.read_text() if text is None else text
    tls_port = free_port() if tls_port is None else tls_port
    for name in ("http.conf", "listen.conf"):
        directive = f"include /etc/nginx/kroute/{name};"
        included = (includes or {}).get(name)
        included = (NGINX_CONF.parent / "kroute" / name).read_text() if included is None else included
        if directive in text:
            text = text.replace(directive, included)
    loopback = address == "127.0.0.1"
    for old, new in [
        (r"listen 80( default_server reuseport[^;]*);", rf"listen {address}:{port}\1;"),
        (r"listen \[::\]:80( default_server reuseport[^;]*);", rf"listen [::1]:{port}\1;" if loopback else ""),
        (r"listen 443( ssl http2 default_server reuseport[^;]*);", rf"listen {address}:{tls_port}\1;"),
        (r"listen \[::\]:443 ssl http2 default_server reuseport[^;]*;", ""),
    ]:
        text, count = re.subn(old, new, text)
        assert count == 1, f"nginx.conf no longer has exactly one {old!r}"
    replacements = [
        ("load_module /usr/lib/nginx/modules/ngx_http_kroute_module.so;", f"load_module {MODULE};"),
        ("user www-data;", "user www-data;" if os.geteuid() == 0 else ""),
        ("worker_processes auto;", f"worker_processes {WORKERS};"),
        ("pid /run/nginx.pid;", f"pid {workdir}/nginx.pid;"),
        ("error_log stderr warn;", f"error_log {workdir}/error.log info;"),
        ("kroute_table /run/kroute;", f"kroute_table {table_dir};\n"
         f"    client_body_temp_path {workdir}/body;\n    proxy_temp_path {workdir}/proxy;\n"
         f"    fastcgi_temp_path {workdir}/fastcgi;\n    uwsgi_temp_path {workdir}/uwsgi;\n"
         f"    scgi_temp_path {workdir}/scgi;"),
        ("access_log /dev/stdout kroute;", f"access_log {workdir}/access.log kroute;"),
        ("listen 10246;", f"listen 127.0.0.1:{status_port};"),
        ("listen [::]:10246;", ""),
    ]
    for old, new in replacements:
        assert text.count(old) == 1, f"nginx.conf no longer has exactly one {old!r}"
        text = text.replace(old, new)
    return text


class Nginx:
    def __init__(self, table_dir, config=None, includes=None):
        self.workdir = readable_tempdir("kroute-nginx-")
        self.port = free_port()
        self.status_port = free_port()
        self.tls_port = free_port()
        self.conf = self.workdir / "nginx.conf"
        self.conf.write_text(render_config(self.workdir, table_dir, self.port, self.status_port, config,
                                           self.tls_port, includes))
        self.process = None

    def test_config(self):
        return subprocess.run([NGINX, "-t", "-p", str(self.workdir), "-c", str(self.conf)],
                              capture_output=True, text=True, timeout=30, env=NGINX_ENV)

    def start(self):
        self.stderr = open(self.workdir / "stderr.log", "w")
        self.process = subprocess.Popen([NGINX, "-p", str(self.workdir), "-c", str(self.conf), "-g", "daemon off;"],
                                        stdout=self.stderr, stderr=self.stderr, env=NGINX_ENV)
        if not wait_for_port("127.0.0.1", self.port) or not wait_until(lambda: self.initialized_workers() == WORKERS,
                                                                      timeout=20):
            raise RuntimeError("nginx did not start:\n" + self.error_log() + self.stderr_log())

    def stop(self):
        """Stops nginx; then fails (AssertionError) when a sanitizer reported anything while it ran."""
        if self.process is None:
            return
        workers = self.worker_pids()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        for pid in workers:  # a worker outliving its master must not outlive the test
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.stderr.close()
        self.process = None
        if SANITIZED:
            reports = sanitizers.findings(self.stderr_log() + "\n" + self.error_log())
            assert not reports, "sanitizer reports from nginx:\n" + "\n----\n".join(reports)

    def worker_pids(self):
        if self.process is None:
            return []
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == self.process.pid:
                pids.append(int(entry.name))
        return sorted(pids)

    def initialized_workers(self):
        """Workers past their modules' init_process (the kroute status slot, the table mapping): a worker
        names itself "nginx: worker process" only after that; a freshly forked one still has the master's name."""
        count = 0
        for pid in self.worker_pids():
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"nginx: worker process"):
                    count += 1
            except OSError:
                pass
        return count

    def pids(self):
        return (self.process.pid, tuple(self.worker_pids()))

    def error_log(self):
        path = self.workdir / "error.log"
        return path.read_text() if path.exists() else ""

    def stderr_log(self):
        path = self.workdir / "stderr.log"
        return path.read_text() if path.exists() else ""

    def access_log(self):
        path = self.workdir / "access.log"
        return path.read_text() if path.exists() else ""

    def get(self, host, path="/", headers=None, port=None, address="127.0.0.1"):
        conn = http.client.HTTPConnection(address, port or self.port, timeout=10)
        try:
            h = {"Host": host} if host is not None else {}
            h.update(headers or {})
            conn.request("GET", path, headers=h)
            r = conn.getresponse()
            body = r.read()
            return r.status, body, r
        finally:
            conn.close()

    def echo(self, host, path="/", **kwargs):
        """The echo reply for a request that must succeed."""
        status, body, _ = self.get(host, path, **kwargs)
        assert status == 200, (host, path, status, body[:200], self.error_log()[-2000:])
        return json.loads(body)

    def status(self):
        status, body, _ = self.get("localhost", "/kroute/status", port=self.status_port)
        assert status == 200
        return json.loads(body)

    def metrics(self):
        status, body, _ = self.get("localhost", "/metrics", port=self.status_port)
        assert status == 200
        return body.decode()

    def cleanup(self):
        shutil.rmtree(self.workdir, ignore_errors=True)


@pytest.fixture
def nginx(table):
    started = []

    def start(config=None, includes=None):
        n = Nginx(table.dir, config, includes)
        started.append(n)
        n.start()
        return n

    yield start
    failures = []
    for n in started:
        try:
            n.stop()
        except AssertionError as e:  # the others must still be stopped
            failures.append(e)
        finally:
            n.cleanup()
    if failures:
        raise failures[0]


@pytest.fixture
def nginx_config(table):
    """An nginx configured (not started) with the shipped nginx.conf, for `nginx -t` checks."""
    made = []

    def make(config=None):
        n = Nginx(table.dir, config)
        made.append(n)
        return n

    yield make
    for n in made:
        n.cleanup()
