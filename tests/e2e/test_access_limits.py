"""limit-rps, limit-rpm, limit-burst-multiplier, limit-connections, limit-allowlist (limit-whitelist),
limit-rate and limit-rate-after, kubectl to client: counts of passed and refused requests from several
client addresses (127.0.0.0/8 sources, one key each), the refusal status, exemptions, a live limit
change that leaves other Ingresses' counters alone, the response rate, every fail-closed value (503 and
a Warning Event), and what happens when the module's shared zone is full. One stack whose nginx never
reloads, plus small ones for the 429 flag and the tiny zone."""

from __future__ import annotations

import http.client
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from agent_fixtures import wait_for
from stack import Nginx, Stack, endpoint_slice, make_stack, module_stack, readable_tempdir, service  # noqa: F401
from test_annotations import annotated, apply_and_wait
from test_hostile import wait_warning, with_healthy_route

NGINX_CONF = Path(__file__).resolve().parents[2] / "nginx-conf" / "nginx.conf"
NGINX_CONF_ZONE = "kroute_limits zone=10m;"


@pytest.fixture(scope="module")
def stack(module_stack: Stack) -> Iterator[Stack]:  # noqa: F811
    s = with_healthy_route(module_stack, "a")
    assert s.nginx is not None
    pids = s.nginx.pids()
    yield s
    assert s.nginx is not None
    assert s.nginx.pids() == pids, "nginx's master or workers changed during the module"


class Client:
    """Requests from one client address (a 127.0.0.0/8 source) on a keep-alive connection."""

    def __init__(self, stack: Stack, source: str):
        assert stack.nginx is not None
        self.port = stack.nginx.port
        self.source = source
        self.conn: http.client.HTTPConnection | None = None

    def get(self, host: str, path: str = "/", headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20, source_address=(self.source, 0))
        try:
            self.conn.request("GET", path, headers={"Host": host, **(headers or {})})
            response = self.conn.getresponse()
            body = response.read()
        except (http.client.HTTPException, OSError):
            self.close()
            raise
        if response.getheader("Connection", "").lower() == "close":
            self.close()
        return response.status, body

    def hammer(self, host: str, seconds: float, refused_status: int = 503) -> tuple[int, int]:
        """Requests one after another for `seconds`: (passed, refused); anything else fails the test."""
        passed = refused = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            status, body = self.get(host)
            if status == 200:
                passed += 1
            elif status == refused_status:
                refused += 1
            else:
                raise AssertionError(f"status {status} from {host}: {body[:200]!r}")
        return passed, refused

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def client(stack: Stack, source: str) -> Client:
    return Client(stack, source)


def in_background(work: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(work()), daemon=True)
    thread.start()
    return thread, out


def metric(stack: Stack, name: str) -> float:
    """The sum over workers of one of nginx's kroute metrics."""
    assert stack.nginx is not None
    conn = http.client.HTTPConnection("127.0.0.1", stack.nginx.status_port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    return sum(float(v) for v in re.findall(rf"^{name}{{[^}}]*}} (\S+)$", text, re.M))


# ---- request rates ------------------------------------------------------------------------------------


def test_limit_rps_lets_the_rate_plus_the_burst_through_per_client(stack: Stack) -> None:
    host = "rps.limits.test"
    apply_and_wait(stack, annotated(stack, "rps", host, [("/", "Prefix", "a")],
                                    {"limit-rps": "10", "limit-burst-multiplier": "1"}))
    before = metric(stack, "kroute_limit_requests_refused_total")
    window = 3.0
    passed, refused = client(stack, "127.0.0.2").hammer(host, window)
    # nginx's limit_req with burst=10 nodelay: 11 at once, then one every 100 ms.
    expected = 10 * window + 11
    assert abs(passed - expected) <= 4, (passed, refused, expected)
    assert refused > 3 * passed, (passed, refused)
    assert metric(stack, "kroute_limit_requests_refused_total") - before >= refused
    # Another client address has counters of its own.
    assert client(stack, "127.0.0.3").get(host)[0] == 200
    assert stack.nginx is not None
    assert "limiting requests, limit-rps 10" in stack.nginx.error_log()


def test_limit_rpm_and_its_default_burst_of_five_times_the_limit(stack: Stack) -> None:
    host = "rpm.limits.test"
    apply_and_wait(stack, annotated(stack, "rpm", host, [("/", "Prefix", "a")], {"limit-rpm": "6"}))
    passed, refused = client(stack, "127.0.0.2").hammer(host, 1.5)
    # burst 30 (5 x 6) plus the first; one more per 10 s.
    assert passed in (31, 32), (passed, refused)
    assert refused > 0


def test_limit_allowlist_exempts_its_clients(stack: Stack) -> None:
    host = "allow.limits.test"
    apply_and_wait(stack, annotated(stack, "allow", host, [("/", "Prefix", "a")],
                                    {"limit-rps": "1", "limit-burst-multiplier": "0",
                                     "limit-allowlist": "127.0.0.7/32, 2001:db8::/32"}))
    passed, refused = client(stack, "127.0.0.7").hammer(host, 0.7)
    assert refused == 0 and passed > 10, (passed, refused)
    passed, refused = client(stack, "127.0.0.8").hammer(host, 0.7)
    assert passed <= 2 and refused > 5, (passed, refused)
    # The older name is an alias.
    apply_and_wait(stack, annotated(stack, "allow-old", "allow-old.limits.test", [("/", "Prefix", "a")],
                                    {"limit-rps": "1", "limit-burst-multiplier": "0", "limit-whitelist": "127.0.0.9"}))
    assert client(stack, "127.0.0.9").hammer("allow-old.limits.test", 0.5)[1] == 0


# ---- connections ----------------------------------------------------------------------------------------


def test_limit_connections_refuses_the_third_concurrent_request_and_counts_down(stack: Stack) -> None:
    host = "conn.limits.test"
    apply_and_wait(stack, annotated(stack, "conn", host, [("/", "Prefix", "a")], {"limit-connections": "2"}))
    slow = [in_background(lambda: Client(stack, "127.0.0.4").get(host, "/slow", {"X-Echo-Delay": "2"})[0])
            for _ in range(2)]
    time.sleep(0.5)
    assert client(stack, "127.0.0.4").get(host, "/third")[0] == 503
    # Another client is not counted with them.
    assert client(stack, "127.0.0.5").get(host, "/other")[0] == 200
    for thread, out in slow:
        thread.join(timeout=10)
        assert out == [200]
    # Both finished: their count is gone, requests pass again.
    assert client(stack, "127.0.0.4").get(host, "/after")[0] == 200
    assert metric(stack, "kroute_limit_connections_refused_total") >= 1


# ---- bandwidth ----------------------------------------------------------------------------------------


BIG_FILE_SIZE = 200_000


@pytest.fixture(scope="module")
def files(stack: Stack) -> Iterator[str]:
    """A Service "files" whose pod serves big.bin (200,000 bytes) with Python's http.server: the response
    arrives as fast as the pod can send it, so only nginx's limit_rate makes it slow."""
    assert stack.network is not None
    directory = readable_tempdir("kroute-limits-files-")
    (directory / "big.bin").write_bytes(b"x" * BIG_FILE_SIZE)
    pod = stack.network.add_pod("files")
    pod.popen(["/usr/bin/python3", "-m", "http.server", "8080", "--bind", pod.address, "--directory", str(directory)],
              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for("the files pod", lambda: subprocess.run(["ip", "netns", "exec", pod.namespace, "curl", "-sf", "-o",
                                                      "/dev/null", f"http://{pod.address}:8080/big.bin"]).returncode == 0,
             timeout=10, interval=0.1)
    stack.apply(service(stack.namespace, "files"), endpoint_slice(stack.namespace, "files", [pod.address]))
    yield "files"
    shutil.rmtree(directory, ignore_errors=True)


def timed_download(stack: Stack, host: str) -> float:
    """Seconds to fetch big.bin through nginx."""
    started = time.monotonic()
    status, body = client(stack, "127.0.0.6").get(host, "/big.bin")
    assert (status, len(body)) == (200, BIG_FILE_SIZE)
    return time.monotonic() - started


def test_limit_rate_slows_the_response_after_limit_rate_after(stack: Stack, files: str) -> None:
    # As with ingress-nginx, the rate applies to buffered proxying only: nginx turns limit_rate off for a
    # response it passes through unbuffered (proxy-buffering off, the default).
    buffered = {"proxy-buffering": "on"}
    apply_and_wait(stack,
                   annotated(stack, "rate", "rate.limits.test", [("/", "Prefix", files)], {"limit-rate": "40", **buffered}),
                   annotated(stack, "rate-after", "rate-after.limits.test", [("/", "Prefix", files)],
                             {"limit-rate": "40", "limit-rate-after": "400", **buffered}),
                   annotated(stack, "rate-unbuffered", "rate-unbuffered.limits.test", [("/", "Prefix", files)],
                             {"limit-rate": "40"}),
                   annotated(stack, "rate-none", "rate-none.limits.test", [("/", "Prefix", files)], buffered))
    stack.wait_status("rate-none.limits.test", "/big.bin")
    # nginx's limit_rate: the first second's worth at once, then 40 KB/s: (195 - 40) / 40 s.
    seconds = timed_download(stack, "rate.limits.test")
    assert seconds >= (BIG_FILE_SIZE / 1024 - 40) / 40 * 0.8, seconds
    others = {host: timed_download(stack, f"{host}.limits.test") for host in ("rate-after", "rate-unbuffered", "rate-none")}
    assert all(t < 1.5 for t in others.values()), (seconds, others)


# ---- live changes -------------------------------------------------------------------------------------


def test_a_limit_change_is_live_and_leaves_other_ingresses_counters_alone(stack: Stack) -> None:
    one = annotated(stack, "live-one", "live-one.limits.test", [("/", "Prefix", "a")],
                    {"limit-rpm": "1", "limit-burst-multiplier": "1"})
    two = annotated(stack, "live-two", "live-two.limits.test", [("/", "Prefix", "a")],
                    {"limit-rpm": "1", "limit-burst-multiplier": "1"})
    apply_and_wait(stack, one, two)
    c = client(stack, "127.0.0.10")
    for host in ("live-one.limits.test", "live-two.limits.test"):
        assert [c.get(host)[0] for _ in range(3)] == [200, 200, 503], host
    # A looser limit on one Ingress: it passes again at once (no reload: the module fixture checks).
    one["metadata"]["annotations"]["nginx.ingress.kubernetes.io/limit-rpm"] = "600"
    stack.apply(one)
    wait_for("the new limit", lambda: c.get("live-one.limits.test")[0] == 200, timeout=15, interval=0.1)
    # The other Ingress's counters were not reset: still refused for the rest of its minute.
    assert c.get("live-two.limits.test")[0] == 503
    # Removing the limit: no record, every request passes.
    del two["metadata"]["annotations"]["nginx.ingress.kubernetes.io/limit-rpm"]
    stack.apply(two)
    wait_for("no limit", lambda: c.get("live-two.limits.test")[0] == 200, timeout=15, interval=0.1)


# ---- fail closed ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,annotation,bad,good", [
    ("bad-rps", "limit-rps", "ten", "10"),
    ("bad-rpm", "limit-rpm", "-1", "60"),
    ("bad-conn", "limit-connections", "2.5", "2"),
    ("bad-burst", "limit-burst-multiplier", "x5", "5"),
    ("bad-rate", "limit-rate", "100k", "100"),
    ("bad-after", "limit-rate-after", "1m", "1024"),
    ("bad-allow", "limit-allowlist", "10.0.0.0/33", "10.0.0.0/8"),
    ("bad-white", "limit-whitelist", "localhost", "127.0.0.1"),
])
def test_a_value_that_cannot_be_read_answers_503_with_a_warning_until_fixed(stack: Stack, name: str, annotation: str,
                                                                          bad: str, good: str) -> None:
    host = f"{name}.limits.test"
    obj = annotated(stack, name, host, [("/", "Prefix", "a")], {"limit-rps": "100", annotation: bad})
    apply_and_wait(stack, obj)
    assert stack.request(host, "/").status == 503
    wait_warning(stack, name, "AccessAnnotationInvalid", annotation)
    obj["metadata"]["annotations"][f"nginx.ingress.kubernetes.io/{annotation}"] = good
    stack.apply(obj)
    stack.wait_status(host, "/")


# ---- the status flag, a full zone ------------------------------------------------------------------------


def test_the_refusal_status_is_the_agents_flag(make_stack: Callable[..., Stack]) -> None:
    s = with_healthy_route(make_stack("--limit-req-status-code=429", "--limit-conn-status-code=429"), "a")
    host = "status.limits.test"
    apply_and_wait(s, annotated(s, "status", host, [("/", "Prefix", "a")],
                                {"limit-rps": "1", "limit-burst-multiplier": "0"}))
    passed, refused = client(s, "127.0.0.2").hammer(host, 0.5, refused_status=429)
    assert passed <= 2 and refused > 0, (passed, refused)


def small_zone(s: Stack) -> Stack:
    """The stack's nginx again, with a kroute_limits zone of 32 KB (some 150 counters)."""
    assert s.nginx is not None and s.agent is not None
    s._stop_nginx()
    text = NGINX_CONF.read_text()
    assert text.count(NGINX_CONF_ZONE) == 1
    s.nginx = Nginx(s.agent.table_dir, text.replace(NGINX_CONF_ZONE, "kroute_limits zone=32k;"))
    s.nginx.start()
    return s


def test_a_full_zone_drops_the_least_recent_counter_and_fails_open(make_stack: Callable[..., Stack]) -> None:
    s = small_zone(with_healthy_route(make_stack(), "a"))
    host = "full.limits.test"
    apply_and_wait(s, annotated(s, "full", host, [("/", "Prefix", "a")],
                                {"limit-rpm": "1", "limit-burst-multiplier": "0", "limit-connections": "1000"}))
    first = client(s, "127.0.0.2")
    assert [first.get(host)[0] for _ in range(2)] == [200, 503]
    first.close()
    # More clients than the zone has room for: the oldest counter (127.0.0.2's) is dropped for them.
    for i in range(300):
        c = client(s, f"127.0.{1 + i // 250}.{1 + i % 250}")
        assert c.get(host)[0] == 200
        c.close()
    assert client(s, "127.0.0.2").get(host)[0] == 200, "the least recently used counter was not dropped"
    assert metric(s, "kroute_limit_zone_full_total") == 0
    # Counters held by requests in progress cannot be dropped: when they fill the zone, a new client is
    # not limited (availability first), and the module says so.
    held = [in_background(lambda i=i: client(s, f"127.0.3.{1 + i}").get(host, "/slow", {"X-Echo-Delay": "4"})[0])
            for i in range(250)]
    time.sleep(2)
    assert client(s, "127.0.4.1").get(host)[0] == 200
    wait_for("a zone-full count", lambda: metric(s, "kroute_limit_zone_full_total") > 0, timeout=5, interval=0.1)
    assert s.nginx is not None
    assert "the kroute_limits zone is full" in s.nginx.error_log()
    for thread, out in held:
        thread.join(timeout=20)
        assert out == [200]
