"""The status location: JSON per worker, Prometheus metrics."""
import re

from conftest import WORKERS, backend, ingress, rule, wait_until


def test_status_json_reports_every_worker(backends, table, nginx):
    b = backends(["app"])
    generation = table.publish({
        "backends": [backend("app", [b.endpoint("app"), {"address": "127.0.0.9", "port": 1, "ready": False}])],
        "ingresses": [ingress("app", [rule("app.example.com", ("/", "Prefix", "app"), ("/x", "Exact", "app")),
                                      rule("two.example.com", ("/", "Prefix", "app"))])],
    })
    n = nginx()
    workers = n.status()["workers"]
    assert sorted(w["pid"] for w in workers) == n.worker_pids()
    for w in workers:
        assert w["generation"] == generation
        assert 0 <= w["snapshotAgeSeconds"] < 60
        assert (w["hosts"], w["routes"], w["backends"], w["endpoints"]) == (2, 3, 1, 2)
        assert w["pickups"] == 1 and w["rejectedSnapshots"] == 0 and w["lastError"] == ""


def test_prometheus_metrics(backends, table, nginx):
    b = backends(["app"])
    generation = table.publish({
        "backends": [backend("app", [b.endpoint("app")]), backend("gone", [])],
        "ingresses": [ingress("shop", [rule("app.example.com", ("/", "Prefix", "app"), ("/gone", "Prefix", "gone"))],
                              ns="team-a")],
    })
    n = nginx()
    for _ in range(5):
        n.echo("app.example.com", "/")
    n.get("app.example.com", "/gone")
    n.get("nothing.example.com", "/")

    def counted():
        text = n.metrics()
        return 'kroute_requests_total{class="4xx"} 1' in text and text
    text = wait_until(counted)
    assert 'kroute_requests_total{class="2xx"} 5' in text
    assert 'kroute_requests_total{class="5xx"} 1' in text
    assert 'kroute_ingress_requests_total{namespace="team-a",ingress="shop",class="2xx"} 5' in text
    assert 'kroute_ingress_requests_total{namespace="team-a",ingress="shop",class="5xx"} 1' in text
    assert 'kroute_upstream_response_seconds_bucket{le="+Inf"} 5' in text
    assert "kroute_upstream_response_seconds_count 5" in text
    assert re.search(r"^kroute_upstream_response_seconds_sum \d+\.\d{3}$", text, re.M)
    for worker in range(WORKERS):
        assert f'kroute_table_generation{{worker="{worker}"}} {generation}' in text
        assert f'kroute_table_pickups_total{{worker="{worker}"}} 1' in text
        assert f'kroute_table_rejected_snapshots_total{{worker="{worker}"}} 0' in text
    # every sample line is "name{labels} value"
    for line in text.splitlines():
        assert line.startswith("# ") or re.fullmatch(r'[a-z_]+(\{[^}]*\})? [0-9.]+', line), line
