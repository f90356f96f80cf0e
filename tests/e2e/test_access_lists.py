"""allowlist-source-range (whitelist-source-range), denylist-source-range and the real client address, kubectl
to curl: clients from several network namespaces at once, IPv6 over [::1], X-Forwarded-For from a trusted
proxy honoured and from anyone else ignored, the PROXY protocol (sent with a raw socket), HSTS, and every
fail-closed case (a bad value: 503 and a Warning Event; fixed: live, without a reload).

The realip and HSTS settings are rendered by the chart (`helm template`, templates/nginx-config.yaml) and put
into nginx.conf where the image includes them, as the pod would mount them."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
from typing import Any, Iterator

import pytest
import yaml

from agent_fixtures import hosts, wait_for
from chart_fixtures import Helm, find, helm  # noqa: F401
from netns import Pod
from stack import Nginx, Stack, module_stack  # noqa: F401
from test_annotations import annotated, apply_and_wait
from test_hostile import HEALTHY, wait_warning, with_healthy_route

NGINX = "nginx.ingress.kubernetes.io"


def chart_includes(helm: Helm, values: dict[str, Any]) -> dict[str, str]:  # noqa: F811
    """The files of the chart's nginx ConfigMap for these values."""
    objects = [o for o in yaml.safe_load_all(helm.template(values).stdout) if o]
    config = [o for o in find(objects, "ConfigMap") if o["metadata"]["name"].endswith("-nginx")]
    assert len(config) == 1, [o["metadata"]["name"] for o in find(objects, "ConfigMap")]
    return config[0]["data"]


def start_nginx(stack: Stack, includes: dict[str, str], everywhere: bool = False) -> Nginx:
    """Another nginx on the stack's table with the chart's include files; everywhere: the plain HTTP port on
    every address (the pods reach it at the bridge's address)."""
    assert stack.agent is not None
    n = Nginx(stack.agent.table_dir, includes=includes)
    if everywhere:
        text = n.conf.read_text()
        assert text.count(f"listen 127.0.0.1:{n.port} ") == 1
        n.conf.write_text(text.replace(f"listen 127.0.0.1:{n.port} ", f"listen 0.0.0.0:{n.port} "))
    n.start()
    return n


class Net:
    """The module's stack, its client pods and the extra nginx instances."""

    def __init__(self, stack: Stack, proxy: Pod, clients: list[Pod], xff: Nginx, pp: Nginx):
        self.stack, self.proxy, self.clients, self.xff, self.pp = stack, proxy, clients, xff, pp


@pytest.fixture(scope="module")
def net(module_stack: Stack, helm: Helm) -> Iterator[Net]:  # noqa: F811
    s = with_healthy_route(module_stack, "a")
    assert s.network is not None and s.nginx is not None
    proxy = s.network.add_pod("proxy")
    clients = [s.network.add_pod("client-1"), s.network.add_pod("client-2")]
    xff = start_nginx(s, chart_includes(helm, {
        "controller": {"useForwardedHeaders": True},
        "nginx": {"realIP": {"useProxyProtocol": False, "forwardedForHeader": "X-Forwarded-For",
                             "proxyRealIpCidr": [f"{proxy.address}/32", "2001:db8:ffff::/48"]},
                  "hsts": {"enabled": True, "maxAge": 600, "includeSubdomains": False, "preload": True}}}),
        everywhere=True)
    pp = start_nginx(s, chart_includes(helm, {"nginx": {"realIP": {
        "useProxyProtocol": True, "forwardedForHeader": "X-Forwarded-For", "proxyRealIpCidr": ["127.0.0.1"]}}}))
    pids = s.nginx.pids()
    try:
        yield Net(s, proxy, clients, xff, pp)
    finally:
        for n in (xff, pp):
            print(n.error_log()[-3000:])
            try:
                n.stop()
            finally:
                n.cleanup()
    assert s.nginx is not None and s.nginx.pids() == pids, "the stack's nginx was reloaded or restarted"


def from_pod(pod: Pod, nginx: Nginx, host: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """A request from inside a pod's network namespace to nginx at the bridge's address: status, echo reply."""
    gateway = pod.network.gateway
    args = ["ip", "netns", "exec", pod.namespace, "curl", "-sS", "--max-time", "10", "-H", f"Host: {host}",
            "-w", "\n%{http_code}"]
    for k, v in (headers or {}).items():
        args += ["-H", f"{k}: {v}"]
    result = subprocess.run([*args, f"http://{gateway}:{nginx.port}/"], capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stderr
    body, _, status = result.stdout.rpartition("\n")
    echo = json.loads(body) if status == "200" and body.startswith("{") else {}
    return int(status), echo


def raw(port: int, data: bytes, address: str = "127.0.0.1", family: int = socket.AF_INET) -> bytes:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect((address, port))
        sock.sendall(data)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
        return reply


def status_of(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/") else 0


def get(host: str) -> bytes:
    return f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()


def access_records(net: Net, host: str) -> list[tuple[str, str]]:
    """The rule's deny and source-range records as `kroute-table dump` shows them: (kind, value); a deny's
    value is left out (it is the Warning's text)."""
    assert net.stack.agent is not None
    rules = hosts(net.stack.agent.table_dir).get(host, {}).get("rules", [])
    return [(p["kind"], "" if p["kind"] == "deny" else p.get("value", "")) for r in rules[:1]
            for p in r.get("policies", []) if p["kind"] in ("deny", "source-range")]


def lists(net: Net, name: str, host: str, annotations: dict[str, str], *expect: tuple[str, str]) -> None:
    """Applies the Ingress and waits until the table holds exactly the `expect`ed access records for host."""
    apply_and_wait(net.stack, annotated(net.stack, name, host, [("/", "Prefix", "a")], annotations))
    wait_for(f"access records {expect} for {host}", lambda: access_records(net, host) == list(expect),
             timeout=15, interval=0.05)


def allow(text: str) -> tuple[str, str]:
    return ("source-range", text)


DENY = ("deny", "")


# ---- allow and deny lists -----------------------------------------------------------------------------


def test_allowed_and_refused_clients_from_several_addresses(net: Net) -> None:
    host = "lists.access.test"
    one, two = net.clients
    subnet = f"{one.address.rsplit('.', 1)[0]}.0/24"
    lists(net, "lists", host, {"allowlist-source-range": f"{subnet}, 2001:db8::/32",
                               "denylist-source-range": f"{two.address}"},
          allow(f"{two.address}/32"), allow(f"{subnet},2001:db8::/32"))
    assert from_pod(one, net.xff, host)[0] == 200
    assert from_pod(net.proxy, net.xff, host)[0] == 200
    assert from_pod(two, net.xff, host)[0] == 403, "in the allowlist, but the denylist is checked first"
    assert net.stack.request(host).status == 403, "127.0.0.1 is outside the allowlist"
    # The older name, alone, works the same; allowlist-source-range wins when both are set.
    lists(net, "lists", host, {"whitelist-source-range": f"{one.address}/32"}, allow(f"{one.address}/32"))
    assert [from_pod(p, net.xff, host)[0] for p in (one, two, net.proxy)] == [200, 403, 403]
    lists(net, "lists", host, {"whitelist-source-range": f"{one.address}/32",
                               "allowlist-source-range": f"{two.address}/32"}, allow(f"{two.address}/32"))
    assert [from_pod(p, net.xff, host)[0] for p in (one, two)] == [403, 200]
    # A denylist alone refuses only its clients.
    lists(net, "lists", host, {"denylist-source-range": f"{one.address}/32,127.0.0.0/8"},
          allow(f"{one.address}/32,127.0.0.0/8"))
    assert [from_pod(p, net.xff, host)[0] for p in (one, two)] == [403, 200]
    assert net.stack.request(host).status == 403
    # Other Ingresses are untouched.
    assert from_pod(two, net.xff, HEALTHY)[0] == 200
    assert net.stack.request(HEALTHY).status == 200


def test_ipv6_clients_match_ipv6_ranges(net: Net) -> None:
    host = "v6.access.test"
    lists(net, "v6", host, {"allowlist-source-range": "::1/128"}, allow("::1/128"))
    assert net.stack.nginx is not None
    assert status_of(raw(net.stack.nginx.port, get(host), "::1", socket.AF_INET6)) == 200
    assert net.stack.request(host).status == 403, "127.0.0.1 is not ::1"
    lists(net, "v6", host, {"denylist-source-range": "::/0"}, allow("::/0"))
    assert status_of(raw(net.stack.nginx.port, get(host), "::1", socket.AF_INET6)) == 403
    assert net.stack.request(host).status == 200, "an IPv4 client is in no IPv6 range"


# ---- the real client address --------------------------------------------------------------------------


def test_x_forwarded_for_from_a_trusted_proxy_is_the_client_and_from_anyone_else_ignored(net: Net) -> None:
    host = "xff.access.test"
    one = net.clients[0]
    lists(net, "xff", host, {"allowlist-source-range": "203.0.113.0/24"}, allow("203.0.113.0/24"))
    status, echo = from_pod(net.proxy, net.xff, host, {"X-Forwarded-For": "203.0.113.7"})
    assert status == 200
    sent = echo["headers"]
    assert sent["x-real-ip"] == "203.0.113.7", sent
    assert sent["x-forwarded-for"] == f"203.0.113.7, {net.proxy.address}", "the chain, not the client twice"
    # Recursive: the last address that is not a trusted proxy.
    status, echo = from_pod(net.proxy, net.xff, host, {"X-Forwarded-For": "198.51.100.1, 203.0.113.7"})
    assert status == 200 and echo["headers"]["x-real-ip"] == "203.0.113.7"
    status, _ = from_pod(net.proxy, net.xff, host, {"X-Forwarded-For": "203.0.113.7, 198.51.100.1"})
    assert status == 403, "198.51.100.1 is the client: outside the allowlist"
    # The same header from a client that is not a trusted proxy changes nothing.
    assert from_pod(one, net.xff, host, {"X-Forwarded-For": "203.0.113.7"})[0] == 403
    assert from_pod(net.proxy, net.xff, host)[0] == 403, "the proxy itself is outside the allowlist"
    # The image's default settings (the stack's nginx) trust no one.
    assert net.stack.request(host, headers={"X-Forwarded-For": "203.0.113.7"}).status == 403
    reply = net.stack.request(HEALTHY, headers={"X-Forwarded-For": "192.0.2.5"})
    assert reply.echo["headers"]["x-real-ip"] == "127.0.0.1"
    assert reply.echo["headers"]["x-forwarded-for"] == "192.0.2.5, 127.0.0.1"


def test_proxy_protocol_sets_the_client_address(net: Net) -> None:
    host = "pp.access.test"
    lists(net, "pp", host, {"allowlist-source-range": "203.0.113.0/24"}, allow("203.0.113.0/24"))
    reply = raw(net.pp.port, b"PROXY TCP4 203.0.113.9 127.0.0.1 40000 80\r\n" + get(host))
    assert status_of(reply) == 200, reply[:300]
    sent = json.loads(reply.split(b"\r\n\r\n", 1)[1])["headers"]
    assert (sent["x-real-ip"], sent["x-forwarded-for"]) == ("203.0.113.9", "203.0.113.9")
    assert status_of(raw(net.pp.port, b"PROXY TCP4 192.0.2.1 127.0.0.1 40000 80\r\n" + get(host))) == 403
    assert status_of(raw(net.pp.port, b"PROXY TCP6 2001:db8::9 ::1 40000 80\r\n" + get(host))) == 403
    # Without the PROXY header the connection is refused: nobody reaches a rule unannounced.
    assert status_of(raw(net.pp.port, get(host))) in (0, 400)


# ---- HSTS ---------------------------------------------------------------------------------------------


def tls_get(port: int, host: str) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with context.wrap_socket(sock, server_hostname=host) as tls:
            tls.sendall(get(host))
            reply = b""
            while chunk := tls.recv(65536):
                reply += chunk
            return reply


def hsts(reply: bytes) -> list[str]:
    head = reply.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    return [line.split(":", 1)[1].strip() for line in head if line.lower().startswith("strict-transport-security:")]


def test_hsts_on_https_responses_only(net: Net) -> None:
    assert net.stack.nginx is not None
    host = HEALTHY
    assert hsts(tls_get(net.stack.nginx.tls_port, host)) == ["max-age=31536000; includeSubDomains"]
    assert hsts(tls_get(net.stack.nginx.tls_port, "nothing.access.test")) == ["max-age=31536000; includeSubDomains"]
    assert hsts(raw(net.stack.nginx.port, get(host))) == []
    assert hsts(tls_get(net.xff.tls_port, host)) == ["max-age=600; preload"]


# ---- failing closed -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["allowlist-source-range", "whitelist-source-range", "denylist-source-range"])
def test_bad_values_deny_the_ingress_until_fixed(net: Net, name: str) -> None:
    host = f"{name}.bad.access.test"
    ingress = name.split("-")[0]
    for bad, why in (("10.0.0.0/33", "prefix longer than 32"), ("10.0.0.0/8,", "an empty entry"), ("", "it is empty"),
                     ("10.0.0.1; allow all", "is not an IP address or CIDR")):
        lists(net, ingress, host, {name: "127.0.0.2"}, allow("127.0.0.2/32"))
        lists(net, ingress, host, {name: bad}, DENY)
        assert net.stack.wait_status(host, status=503).status == 503
        assert from_pod(net.clients[0], net.xff, host)[0] == 503
        events = wait_warning(net.stack, ingress, "AccessAnnotationInvalid", why)
        assert f"{NGINX}/{name}" in events[0]["message"] and "503" in events[0]["message"], events[0]
    # Fixed: live, no reload (the module fixture checks the pids).
    allowed = name != "denylist-source-range"
    lists(net, ingress, host, {name: "127.0.0.1, ::1"}, allow("127.0.0.1/32,::1/128"))
    assert net.stack.wait_status(host, status=200 if allowed else 403).status == (200 if allowed else 403)
    assert from_pod(net.clients[0], net.xff, host)[0] == (403 if allowed else 200)
    assert net.stack.request(HEALTHY).status == 200
