"""The external auth cache (ngx_http_kroute_auth_request_module, docs/access.md) when its shared memory
is full: the least recently used answers make room, every request is still decided by an answer of
its own key, and nothing is logged above a warning. nginx with a 32k zone (the smallest it takes), a
table with auth-url and auth-cache-key, and the e2e tests' auth service on 127.0.0.1."""
import http.client
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import NGINX_CONF, backend, free_port, ingress, rule

AUTH_SERVER = Path(__file__).resolve().parents[1] / "e2e" / "auth_server.py"
HOST = "cache.example.com"


@pytest.fixture
def auth():
    port, garbage_port = free_port(), free_port()
    process = subprocess.Popen([sys.executable, str(AUTH_SERVER), "127.0.0.1", str(port), str(garbage_port)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    yield port
    process.kill()
    process.wait(timeout=5)


def calls(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/_auth/requests")
        return [r["headers"].get("x-key", "")[:8] for r in json.loads(conn.getresponse().read())]
    finally:
        conn.close()


def test_a_full_cache_drops_the_least_recently_used_answers(backends, table, nginx, auth):
    b = backends(["app"])
    table.publish({
        "backends": [backend("app", [b.endpoint("app")])],
        "ingresses": [dict(ingress("cached", [rule(HOST, ("/", "Prefix", "app"))]), annotations={
            "nginx.ingress.kubernetes.io/auth-url": f"http://127.0.0.1:{auth}/nocookie/auth",
            "nginx.ingress.kubernetes.io/auth-cache-key": "$http_x_key",
            "nginx.ingress.kubernetes.io/auth-response-headers": "X-Auth-Request-User"})],
    })
    config = NGINX_CONF.read_text()
    assert "kroute_auth_cache 10m;" in config
    n = nginx(config.replace("kroute_auth_cache 10m;", "kroute_auth_cache 32k;"))
    # Keys of 2 KB: about a dozen answers fit in the zone, 40 do not.
    keys = [f"{i:08d}" + "k" * 2000 for i in range(40)]
    for key in keys:
        echo = n.echo(HOST, "/", headers={"Authorization": "Bearer good", "X-Key": key})
        assert echo["headers"]["x-auth-request-user"] == "alice"
    assert len(calls(auth)) == 40
    # The newest answers are still there; the oldest made room.
    for key in keys[-3:]:
        n.echo(HOST, "/", headers={"Authorization": "Bearer good", "X-Key": key})
    assert len(calls(auth)) == 40
    # An evicted key is asked again; a refused one is refused, not served from another key's answer.
    n.echo(HOST, "/", headers={"Authorization": "Bearer good", "X-Key": keys[0]})
    assert calls(auth)[-1] == keys[0][:8]
    status, _, response = n.get(HOST, "/", headers={"X-Key": keys[-1][:-1]})
    assert status == 401 and response.getheader("WWW-Authenticate") == 'Bearer realm="test"'
    assert "[crit]" not in n.error_log() and "[alert]" not in n.error_log()
