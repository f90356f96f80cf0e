"""kroute-agent and nginx with the kroute module as processes on this machine, in front of a test cluster.

`make run` (scripts/run_demo.py) and `make conformance` (scripts/conformance.py) start kroute this way: the agent
with the cluster's admin kubeconfig publishes into a table directory of its own, and nginx, from the shipped
nginx.conf as nginx_runner renders it for tests, reads that table. Both run in sessions of their own, so a Ctrl-C
meant for the caller does not reach them: the caller stops them in order with stop(). Every wait is bounded.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Callable

from nginx_runner import NGINX, free_port, readable_tempdir, render_config, wait_for_port


class StartError(RuntimeError):
    """The agent or nginx did not come up; the message ends with the end of its log."""


def http_status(url: str, timeout: float = 2) -> int:
    """The status of a GET, 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


def tail(path: Path, size: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError:
        return ""


class HostKroute:
    """kroute-agent and nginx for one cluster. `logs` receives agent.log; nginx logs into its own directory
    (error.log, access.log, stderr.log under nginx_dir). `agent` replaces build/agent/kroute-agent."""

    def __init__(self, build: Path, kubeconfig: Path, logs: Path, agent: Path | None = None):
        self.agent_binary = agent or build / "agent" / "kroute-agent"
        self.kubeconfig = kubeconfig
        self.logs = logs
        # nginx's workers (www-data) must read the table and their own directory.
        self.tmp = readable_tempdir("kroute-host-")
        self.table_dir = self.tmp / "table"
        self.nginx_dir = self.tmp / "nginx"
        self.agent: subprocess.Popen[bytes] | None = None
        self.nginx: subprocess.Popen[bytes] | None = None
        self.agent_port = 0
        self.status_port = 0
        self._files: list[IO[bytes]] = []

    @property
    def agent_log(self) -> Path:
        return self.logs / "agent.log"

    def start_agent(self, *flags: str, timeout: float = 30) -> None:
        """Starts the agent with these flags besides the kubeconfig, table directory and health listener, and
        waits until its /readyz answers 200 (it has listed everything and published the first table)."""
        self.agent_port = free_port()
        self.logs.mkdir(parents=True, exist_ok=True)
        log = open(self.agent_log, "wb")
        self._files.append(log)
        env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
        # The table holds private keys (mode 0640): nginx's workers read it through their group.
        self.agent = subprocess.Popen([str(self.agent_binary), "--kubeconfig", str(self.kubeconfig),
                                       "--table-dir", str(self.table_dir), "--listen", f"127.0.0.1:{self.agent_port}",
                                       "--table-group", "www-data", *flags],
                                      stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self._wait(lambda: http_status(f"http://127.0.0.1:{self.agent_port}/readyz") == 200, self.agent,
                   "kroute-agent ready", timeout, self.agent_log)

    def start_nginx(self, port: int, *, address: str = "127.0.0.1", tls_port: int | None = None,
                    more_addresses: tuple[str, ...] = (), more_ports: tuple[int, ...] = (),
                    timeout: float = 10) -> None:
        """Starts nginx with the module, its traffic listeners on address:port (HTTP) and address:tls_port
        (HTTPS; a free port when None), and on the same ports of `more_addresses` (Gateways' own addresses,
        --gateway-slot: each a socket of its own, so a connection's local address costs no syscall), its status
        listener on 127.0.0.1:status_port; `more_ports` are more plain HTTP ports of `more_addresses`. IPv4 only."""
        self.nginx_dir.mkdir()
        self.nginx_dir.chmod(0o755)
        self.status_port = free_port()
        conf = self.nginx_dir / "nginx.conf"
        text = render_config(self.nginx_dir, self.table_dir, port, self.status_port, tls_port=tls_port,
                             address=address)
        text = re.sub(r"\n\s*listen \[::1\]:\d+[^;]*;", "", text)
        if more_addresses:
            tls = re.search(rf"listen {re.escape(address)}:(\d+) ssl", text)
            assert tls, "nginx.conf has no TLS listener"
            extra = "".join(f"\n        listen {a}:{p};" for a in more_addresses for p in (port, *more_ports))
            extra += "".join(f"\n        listen {a}:{tls.group(1)} ssl http2;" for a in more_addresses)
            text = text.replace(tls.group(0), extra.lstrip() + "\n        " + tls.group(0), 1)
        conf.write_text(text)
        log = open(self.nginx_dir / "stderr.log", "wb")
        self._files.append(log)
        self.nginx = subprocess.Popen([NGINX, "-p", str(self.nginx_dir), "-c", str(conf), "-g", "daemon off;"],
                                      stdout=log, stderr=log, start_new_session=True)
        self._wait(lambda: wait_for_port(address, port, timeout=0.5), self.nginx,
                   f"nginx listening on {address}:{port}", timeout, self.nginx_dir / "error.log",
                   self.nginx_dir / "stderr.log")

    def exited(self) -> str:
        """The name of a started process that is no longer running, or ""."""
        for name, process in (("kroute-agent", self.agent), ("nginx", self.nginx)):
            if process is not None and process.poll() is not None:
                return name
        return ""

    def stop(self) -> None:
        """Stops nginx, then the agent (SIGTERM, SIGKILL after 10 s), and removes the table and nginx's directory,
        keeping nginx's error and access logs in `logs` (nginx-error.log, nginx-access.log)."""
        for process in (self.nginx, self.agent):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
        for f in self._files:
            f.close()
        self._files.clear()
        for name in ("error.log", "access.log"):
            if (self.nginx_dir / name).exists():
                shutil.copyfile(self.nginx_dir / name, self.logs / f"nginx-{name}")
        shutil.rmtree(self.tmp, ignore_errors=True)

    @staticmethod
    def _wait(ready: Callable[[], bool], process: subprocess.Popen[bytes], what: str, timeout: float,
              *logs: Path) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if process.poll() is not None or time.monotonic() > deadline:
                why = f"exited with status {process.returncode}" if process.poll() is not None else \
                    f"timed out after {timeout:.0f} s"
                raise StartError(f"waiting for {what}: {why}\n" + "".join(tail(log) for log in logs))
            time.sleep(0.2)
