"""The kroute balancer: weighted round-robin, retries on another endpoint, passive health, keepalive, IPv6."""
import collections
import re

from conftest import WORKERS, backend, free_port, ingress, rule, wait_until


def one_route(endpoints, host="app.example.com"):
    return {"backends": [backend("app", endpoints)],
            "ingresses": [ingress("app", [rule(host, ("/", "Prefix", "app"))])]}


def access_lines(n, count):
    log = wait_until(lambda: len(n.access_log().splitlines()) >= count and n.access_log())
    return log.splitlines()


def test_weighted_round_robin_over_ready_endpoints(backends, table, nginx):
    b = backends(["light", "heavy", "unready"])
    table.publish(one_route([b.endpoint("light", weight=1), b.endpoint("heavy", weight=3),
                             b.endpoint("unready", ready=False)]))
    n = nginx()
    seen = collections.Counter(n.echo("app.example.com")["name"] for _ in range(80))
    assert set(seen) == {"light", "heavy"}
    # each worker cycles light, heavy x3 exactly; however the 80 requests split between the workers
    assert abs(seen["light"] - 20) <= WORKERS, seen


def test_retry_on_another_endpoint_when_one_refuses_connections(backends, table, nginx):
    b = backends(["live"])
    dead_port = free_port()  # nothing listens there
    table.publish(one_route([{"address": "127.0.0.1", "port": dead_port}, b.endpoint("live")]))
    n = nginx()
    for _ in range(20):
        assert n.echo("app.example.com")["name"] == "live"
    lines = access_lines(n, 20)
    dead = f"127.0.0.1:{dead_port}"
    tried_dead = [l for l in lines if dead in l]
    # the first failure in each worker retries at once; then the worker skips the endpoint (passive health)
    assert 1 <= len(tried_dead) <= WORKERS, tried_dead
    assert all(re.search(rf"upstream={re.escape(dead)}, 127\.0\.0\.1:\d+ upstream_status=502, 200", l)
               for l in tried_dead), tried_dead
    assert "kroute: cannot connect to " + dead + ", skipping it for 5000 ms" in n.error_log()


def test_every_endpoint_refusing_is_502(table, nginx):
    table.publish(one_route([{"address": "127.0.0.1", "port": free_port()},
                             {"address": "127.0.0.1", "port": free_port()}]))
    n = nginx()
    assert n.get("app.example.com")[0] == 502
    assert n.get("app.example.com")[0] == 502  # endpoints marked failed are still tried when nothing else is left


def test_upstream_connections_are_kept_alive(backends, table, nginx):
    b = backends(["app"])
    table.publish(one_route([b.endpoint("app")]))
    n = nginx()
    peers = {tuple(n.echo("app.example.com")["peer"]) for _ in range(40)}
    assert len(peers) <= 2 * WORKERS, peers


def test_ipv6_endpoint(backends, table, nginx):
    b = backends(["v6"], host="::1")
    port = b.addresses["v6"][1]
    table.publish(one_route([b.endpoint("v6")]))
    n = nginx()
    reply = n.echo("app.example.com", "/six")
    assert reply["name"] == "v6"
    assert reply["peer"][0] == "::1"
    lines = access_lines(n, 1)
    assert f"upstream=[::1]:{port} " in lines[-1]


def test_ipv6_client_and_mixed_endpoints(backends, table, nginx):
    b4 = backends(["four"])
    b6 = backends(["six"], host="::1")
    table.publish(one_route([b4.endpoint("four"), b6.endpoint("six")]))
    n = nginx()
    seen = {n.echo("app.example.com", address="::1")["name"] for _ in range(8)}
    assert seen == {"four", "six"}
