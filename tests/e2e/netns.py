"""Test "pods": network namespaces on a bridge the test creates, with 10.x addresses.

The API server refuses loopback addresses in EndpointSlices, so backends that Kubernetes objects point
at live here, as real pods would: each pod is a network namespace with a veth on a private bridge; the
host side of the bridge has the .1 address, so nginx (in the host namespace) reaches pods directly.
Everything made here is removed by close(), also for processes still running.
"""
import ipaddress
import os
import random
import shutil
import signal
import subprocess
import sys
import time

ECHO_SERVER = os.path.join(os.path.dirname(__file__), "..", "integration", "echo_server.py")


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def _free_subnet():
    """A 10.x /24 that no route on this machine covers yet."""
    routes = _ip("-4", "route", "show", "table", "all").stdout
    taken = []
    for line in routes.splitlines():
        first = line.split()[0] if line.split() else ""
        try:
            taken.append(ipaddress.ip_network(first if "/" in first else first + "/32", strict=False))
        except ValueError:
            continue
    for _ in range(200):
        candidate = ipaddress.ip_network(f"10.{random.randint(200, 250)}.{random.randint(0, 255)}.0/24")
        if not any(candidate.overlaps(t) for t in taken if t.prefixlen > 0):
            return candidate
    raise RuntimeError("no free 10.x /24 for test pods")


class Pod:
    def __init__(self, network, name, namespace, address):
        self.network = network
        self.name = name
        self.namespace = namespace
        self.address = address
        self.processes = []

    def popen(self, argv, **kwargs):
        """Starts argv inside the pod's network namespace; stopped by PodNetwork.close()."""
        process = subprocess.Popen(["ip", "netns", "exec", self.namespace, *argv], start_new_session=True, **kwargs)
        self.processes.append(process)
        return process

    def echo(self, ports, name=None, env=None):
        """Runs the echo server (tests/integration/echo_server.py) on each port; waits until it listens.
        env: more environment for it (ECHO_TLS_* for TLS)."""
        label = name or self.name
        args = [f"{label}={self.address}:{port}" for port in ports]
        # The echo server runs until its stdin closes: keep a pipe open until stop().
        process = self.popen(["/usr/bin/python3", ECHO_SERVER, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True, env={**os.environ, **(env or {})})
        line = process.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"echo server in pod {self.name} did not start: {line!r}")
        return process

    def stop(self):
        for process in self.processes:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        self.processes = []


class PodNetwork:
    """A bridge with a 10.x /24; pods get .2, .3, ... The host has .1."""

    def __init__(self):
        self.tag = "%05x" % random.randrange(16 ** 5)
        self.bridge = f"krb{self.tag}"
        self.subnet = _free_subnet()
        hosts = list(self.subnet.hosts())
        self.gateway = str(hosts[0])
        self._free = [str(h) for h in hosts[1:]]
        self.pods = []
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def add_pod(self, name):
        address = self._free.pop(0)
        index = len(self.pods)
        namespace = f"kr-{self.tag}-{index}"
        host_end, pod_end = f"krh{self.tag}{index}", f"krp{self.tag}{index}"
        _ip("netns", "add", namespace)
        # `ip netns exec` mounts /etc/netns/NS/resolv.conf over /etc/resolv.conf: with no nameserver
        # reachable from the pod, name lookups (Python's http.server does one) fail at once instead
        # of waiting for timeouts.
        os.makedirs(f"/etc/netns/{namespace}", exist_ok=True)
        with open(f"/etc/netns/{namespace}/resolv.conf", "w") as resolv:
            resolv.write("# kroute test pod: no DNS\nnameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        try:
            _ip("link", "add", host_end, "type", "veth", "peer", "name", pod_end)
            _ip("link", "set", host_end, "master", self.bridge)
            _ip("link", "set", host_end, "up")
            _ip("link", "set", pod_end, "netns", namespace)
            _ip("-n", namespace, "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", pod_end)
            _ip("-n", namespace, "link", "set", pod_end, "up")
            _ip("-n", namespace, "link", "set", "lo", "up")
            _ip("-n", namespace, "route", "add", "default", "via", self.gateway)
        except subprocess.CalledProcessError:
            _ip("netns", "delete", namespace, check=False)
            shutil.rmtree(f"/etc/netns/{namespace}", ignore_errors=True)
            raise
        pod = Pod(self, name, namespace, address)
        self.pods.append(pod)
        return pod

    def close(self):
        for pod in self.pods:
            pod.stop()
            _ip("netns", "delete", pod.namespace, check=False)
            shutil.rmtree(f"/etc/netns/{pod.namespace}", ignore_errors=True)
        self.pods = []
        _ip("link", "delete", self.bridge, check=False)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def leftovers():
    """Namespaces and bridges this module made that still exist (should be none after close())."""
    names = _ip("netns", "list", check=False).stdout.split()
    links = _ip("-o", "link", "show", check=False).stdout
    return [n for n in names if n.startswith("kr-")] + [
        field.rstrip(":") for field in links.split() if field.startswith("krb")]


if __name__ == "__main__":
    sys.exit("import this module from tests")
