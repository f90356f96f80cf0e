"""The status location: JSON per worker, Prometheus metrics."""
import http.client
import json
import re
import threading
import time

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


SAMPLE = re.compile(r'[a-z_]+(\{[^}]*\})? [0-9.]+')
INGRESS_ROW = re.compile(r'kroute_ingress_requests_total\{namespace="([^"]*)",ingress="([^"]*)",class="([^"]*)"\} (\d+)')


def ingress_rows(text):
    """The metrics text parsed: every line a comment or "name{labels} value", and the Ingress rows as
    {(namespace, ingress, class): count}. Raises AssertionError on the first line that is neither."""
    rows = {}
    for line in text.splitlines():
        assert line.startswith("# ") or SAMPLE.fullmatch(line), line
        m = INGRESS_ROW.fullmatch(line)
        if m:
            rows[m.group(1), m.group(2), m.group(3)] = int(m.group(4))
    assert text.endswith("\n"), text[-200:]
    return rows


def many_ingresses(count, paths):
    """`count` Ingresses, one host each (i<n>.example.com), with `paths`: (path, backend) pairs."""
    return [ingress(f"i{k}", [rule(f"i{k}.example.com", *((p, "Prefix", b) for p, b in paths))], ns="many")
            for k in range(count)]


def send_each(n, hosts, path="/", expect=None):
    """One request per host, in order, on one keepalive connection (reopened when nginx closes it)."""
    conn = http.client.HTTPConnection("127.0.0.1", n.port, timeout=10)
    try:
        for host in hosts:
            conn.request("GET", path, headers={"Host": host})
            r = conn.getresponse()
            r.read()
            assert expect is None or r.status == expect, (host, path, r.status)
    finally:
        conn.close()


def scrape(n, path):
    conn = http.client.HTTPConnection("127.0.0.1", n.status_port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": "localhost"})
        r = conn.getresponse()
        body = r.read()
        assert r.status == 200, (path, r.status)
        assert int(r.getheader("Content-Length")) == len(body)
        return body.decode()
    finally:
        conn.close()


def test_metrics_stay_valid_while_ingresses_appear(table, nginx):
    """Workers claim Ingress counters while another worker writes /metrics (issue 27): every scrape is
    whole, valid Prometheus text and JSON, whatever number of Ingresses appeared during it."""
    count = 3000
    table.publish({"backends": [backend("gone", [])], "ingresses": many_ingresses(count, [("/", "gone")])})
    n = nginx()
    hosts = [f"i{k}.example.com" for k in range(count)]
    sending_done = threading.Event()
    failures, scrapes = [], []

    def send():
        try:
            send_each(n, hosts, expect=503)
        except Exception as e:  # noqa: BLE001 - reported by the test thread
            failures.append(e)
        finally:
            sending_done.set()

    def scrape_loop(path, check):
        deadline = time.monotonic() + 3
        for _ in range(300):
            if sending_done.is_set() or time.monotonic() > deadline:
                return
            try:
                check(scrape(n, path))
                scrapes.append(path)
            except Exception as e:  # noqa: BLE001 - reported by the test thread
                failures.append(e)
                return

    threads = [threading.Thread(target=send)]
    threads += [threading.Thread(target=scrape_loop, args=("/metrics", ingress_rows)) for _ in range(2)]
    threads += [threading.Thread(target=scrape_loop, args=("/kroute/status", json.loads))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not failures, failures[:3]
    assert "/metrics" in scrapes and "/kroute/status" in scrapes

    def all_counted():
        rows = ingress_rows(n.metrics())
        return len(rows) == count and rows
    rows = wait_until(all_counted)
    assert rows == {("many", f"i{k}", "5xx"): 1 for k in range(count)}


def test_metrics_complete_when_far_larger_than_a_buffer(backends, table, nginx):
    """Thousands of Ingress rows (hundreds of kilobytes, far more than one output buffer): the metrics
    are whole, every row present once with its count, the families after them still there."""
    count = 2500
    b = backends(["app"])
    table.publish({"backends": [backend("app", [b.endpoint("app")]), backend("gone", [])],
                   "ingresses": many_ingresses(count, [("/", "app"), ("/gone", "gone")])})
    n = nginx()
    hosts = [f"i{k}.example.com" for k in range(count)]
    send_each(n, hosts, "/", expect=200)
    send_each(n, hosts, "/gone", expect=503)

    expected = {}
    for k in range(count):
        expected["many", f"i{k}", "2xx"] = 1
        expected["many", f"i{k}", "5xx"] = 1

    def all_counted():
        text = n.metrics()
        return ingress_rows(text) == expected and text
    text = wait_until(all_counted)
    assert text, "not every Ingress row counted"
    assert len(text) > 256 * 1024
    assert f'kroute_requests_total{{class="2xx"}} {count}' in text
    for worker in range(WORKERS):
        assert f'kroute_tls_certificates_cached{{worker="{worker}"}}' in text
