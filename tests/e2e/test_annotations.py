"""kroute's routing annotations (ingress-nginx's names and semantics), kubectl to curl: Ingresses applied to
the real API server, kroute-agent compiling them into the table, nginx with the module answering. Each
test checks what a client sees (status, Location) and what the echo pod received (its request URI with
the query, its Host header, X-Forwarded-Prefix), and invalid or refused annotations end in a Warning
Event on the Ingress. All of it on one stack whose nginx never reloads."""

from __future__ import annotations

import time
from typing import Any, Iterator

import pytest

from agent_fixtures import hosts, self_signed_tls, wait_for
from stack import Reply, Stack, module_stack, rule  # noqa: F401
from test_hostile import HEALTHY, Steady, wait_warning, warnings_for, with_healthy_route

NGINX = "nginx.ingress.kubernetes.io"
KROUTE = "kroute.dev"


# ---- helpers ------------------------------------------------------------------------------------------


def annotated(stack: Stack, name: str, host: str, paths: list[tuple[str, str, str]],
              annotations: dict[str, str] | None = None, tls_secret: str | None = None) -> dict[str, Any]:
    """An Ingress for one host. paths: (path, pathType, service); annotation keys without a prefix get
    ingress-nginx's."""
    spec: dict[str, Any] = {"rules": [rule(host, *paths)]}
    if tls_secret is not None:
        spec["tls"] = [{"hosts": [host], "secretName": tls_secret}]
    obj = stack.ingress(name, spec)
    obj["metadata"]["annotations"] = {(k if "/" in k else f"{NGINX}/{k}"): v for k, v in (annotations or {}).items()}
    return obj


def wait_rules(stack: Stack, *ingresses: dict[str, Any], timeout: float = 15) -> None:
    """Waits until the table holds a rule of each Ingress (for the host of its first rule)."""
    assert stack.agent is not None
    for obj in ingresses:
        source = f"{stack.namespace}/{obj['metadata']['name']}"
        host = obj["spec"]["rules"][0]["host"]
        def routed() -> bool:
            return any(r["ingress"] == source for r in hosts(stack.agent.table_dir).get(host, {}).get("rules", []))
        wait_for(f"a rule of {source} for {host}", routed, timeout=timeout, interval=0.05)


def apply_and_wait(stack: Stack, *ingresses: dict[str, Any]) -> None:
    """kubectl apply of the Ingresses, then wait_rules."""
    stack.apply(*ingresses)
    wait_rules(stack, *ingresses)


def served(reply: Reply, service: str, uri: str, host: str | None = None) -> None:
    """The reply came from `service`'s echo pod, which saw request URI `uri` (and Host `host`)."""
    assert reply.status == 200, (reply.status, reply.headers.get("location"), reply.body[:300])
    assert reply.service == service, reply.echo
    assert reply.echo["path"] == uri, reply.echo
    if host is not None:
        assert reply.echo["host"] == host, reply.echo


def redirected(reply: Reply, status: int, location: str) -> None:
    assert (reply.status, reply.headers.get("location")) == (status, location), (reply.status, reply.headers,
                                                                                   reply.body[:300])
    assert not reply.echo, "a redirect is answered by nginx, not by a backend"


def no_header_injected(reply: Reply, status: int) -> None:
    """A redirect whose Location holds request data decoded by nginx carries no header of the client's making."""
    assert reply.status == status, reply.status
    assert "x-injected" not in reply.headers, ("header injected", reply.headers.get("location"),
                                               reply.headers.get("x-injected"))
    assert not any(c in reply.headers.get("location", "") for c in "\r\n\0"), reply.headers.get("location")


def timed_request(stack: Stack, host: str, path: str) -> tuple[Reply, float]:
    began = time.monotonic()
    reply = stack.request(host, path, timeout=10)
    return reply, time.monotonic() - began


# ---- the stack ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(module_stack: Stack) -> Iterator[Stack]:  # noqa: F811
    """The module's stack with a healthy route (for Steady) and echo Services a, b and c; the nginx
    processes of its start are recorded: no test may make nginx reload or restart."""
    s = with_healthy_route(module_stack, "a", "b", "c")
    assert s.nginx is not None
    pids = s.nginx.pids()
    yield s
    assert s.nginx is not None
    assert s.nginx.pids() == pids, "nginx's master or workers changed during the module"


@pytest.fixture(scope="module")
def tls_secret(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A kubernetes.io/tls Secret "ann-tls" (self-signed; its names do not matter for redirects)."""
    data = self_signed_tls(tmp_path_factory.mktemp("tls"), "ann.test")
    stack.apply({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                 "metadata": {"name": "ann-tls", "namespace": stack.namespace}, "data": data})
    return "ann-tls"


# ---- use-regex ----------------------------------------------------------------------------------------


def test_use_regex_makes_every_path_of_the_host_a_case_insensitive_regex_anchored_at_the_start(stack: Stack) -> None:
    host = "regex.ann.test"
    regex = annotated(stack, "regex", host, [("/foo", "Prefix", "a"), ("/foo/bar.+", "ImplementationSpecific", "b"),
                                             ("/api/v[0-9]+", "ImplementationSpecific", "c"),
                                             ("/only$", "ImplementationSpecific", "c")], {"use-regex": "true"})
    # Another Ingress of the host without the annotation: its Exact path is a regex too.
    exact = annotated(stack, "regex-exact", host, [("/exact", "Exact", "b")])
    # A host without the annotation keeps Prefix and Exact matching.
    plain = annotated(stack, "regex-plain", "plain-regex.ann.test",
                      [("/foo", "Prefix", "a"), ("/api/v[0-9]+", "Prefix", "c"), ("/exact", "Exact", "b")])
    apply_and_wait(stack, regex, exact, plain)

    for path, service in (("/API/V2/x", "c"), ("/api/v10", "c"),  # case-insensitive, not anchored at the end
                          ("/foo/barz", "b"),                    # the longer path string is tried first
                          ("/foo/bar", "a"), ("/FOO", "a"), ("/foobar", "a"),  # ^/foo matches both
                          ("/exact", "b"), ("/EXACT/more?q=1", "b")):  # Exact is a regex on this host
        served(stack.request(host, path), service, path, host)
    served(stack.request(host, "/ONLY?x=1"), "c", "/ONLY?x=1")  # a "$" of its own anchors the end
    # Matched against nginx's decoded path; the backend gets the URI as sent.
    served(stack.request(host, "/%61pi/v2"), "c", "/%61pi/v2")
    for path in ("/x/api/v2", "/api/vx", "/bar", "/only/x"):  # anchored at the start
        assert stack.request(host, path).status == 404, path

    plain_host = "plain-regex.ann.test"
    served(stack.request(plain_host, "/foo/x"), "a", "/foo/x")
    served(stack.request(plain_host, "/exact"), "b", "/exact")
    for path in ("/FOO", "/foobar", "/api/v2", "/exact/more", "/EXACT"):
        assert stack.request(plain_host, path).status == 404, path

    # Without the annotated Ingress the host matches by Prefix and Exact again.
    stack.api.delete(regex)
    wait_for("Exact matching again", lambda: stack.request(host, "/EXACT/more").status == 404, timeout=5, interval=0.02)
    served(stack.request(host, "/exact"), "b", "/exact")
    assert stack.request(host, "/exact/more").status == 404


def test_use_regex_paths_of_equal_length_go_to_the_older_ingress(stack: Stack) -> None:
    host = "tie.ann.test"
    # Names sort the other way round: only the creation time can make the older one win.
    older = annotated(stack, "zz-tie-older", host, [("/tie/x.", "ImplementationSpecific", "a")], {"use-regex": "true"})
    younger = annotated(stack, "aa-tie-younger", host, [("/tie/.y", "ImplementationSpecific", "b")])
    apply_and_wait(stack, older)
    time.sleep(1.1)  # creationTimestamp has whole seconds
    apply_and_wait(stack, younger)
    served(stack.request(host, "/tie/xy"), "a", "/tie/xy")  # both match, same length
    served(stack.request(host, "/tie/zy"), "b", "/tie/zy")


# ---- rewrite-target -----------------------------------------------------------------------------------


def documented_rewrite(stack: Stack) -> dict[str, Any]:
    """ingress-nginx's documented example, on host rewrite.ann.test to Service a."""
    return annotated(stack, "rewrite", "rewrite.ann.test", [("/something(/|$)(.*)", "ImplementationSpecific", "a")],
                     {"rewrite-target": "/$2"})


def test_rewrite_target_sends_the_target_with_the_groups_and_keeps_the_query(stack: Stack) -> None:
    host = "rewrite.ann.test"
    # Another Ingress of the host: matched as a regex (case-insensitive), not rewritten.
    other = annotated(stack, "rewrite-other", host, [("/other", "Prefix", "b")])
    # A plain Prefix path: nginx's rewrite replaces the whole URI.
    to_root = annotated(stack, "rewrite-root", "rewrite-root.ann.test", [("/app", "Prefix", "a")],
                        {"rewrite-target": "/"})
    # A target with a query of its own: the request's query follows after "&".
    with_query = annotated(stack, "rewrite-query", "rewrite-query.ann.test",
                           [("/old/([^/]+)/(.*)", "ImplementationSpecific", "c")],
                           {"rewrite-target": "/new/$2?from=$1"})
    apply_and_wait(stack, documented_rewrite(stack), other, to_root, with_query)

    for path, upstream in (("/something", "/"), ("/something/", "/"), ("/something/new", "/new"),
                           ("/something/new?x=1", "/new?x=1"), ("/SOMETHING/a/b?x=1&y=2", "/a/b?x=1&y=2"),
                           ("/something/new?", "/new")):
        served(stack.request(host, path), "a", upstream, host)
    # What nginx decoded goes out escaped again.
    served(stack.request(host, "/something/a%20b?c=%20"), "a", "/a%20b?c=%20")
    assert stack.request(host, "/nothing").status == 404
    served(stack.request("rewrite-root.ann.test", "/app/x/y?q=1"), "a", "/?q=1")
    served(stack.request("rewrite-root.ann.test", "/APPLE"), "a", "/")
    served(stack.request(host, "/OTHER/x?y=1"), "b", "/OTHER/x?y=1")
    served(stack.request("rewrite-query.ann.test", "/old/p1/rest/of/it"), "c", "/new/rest/of/it?from=p1")
    served(stack.request("rewrite-query.ann.test", "/old/p1/x?c=d"), "c", "/new/x?from=p1&c=d")


def test_rewrite_keeps_a_question_mark_from_a_group_in_the_path(stack: Stack) -> None:
    """As nginx's rewrite: only a "?" written in the target starts the arguments; one that nginx decoded
    from the request path into a group stays path, and goes upstream escaped."""
    host = "rewrite.ann.test"
    apply_and_wait(stack, documented_rewrite(stack))
    served(stack.request(host, "/something/a%3Fb"), "a", "/a%3Fb")
    served(stack.request(host, "/something/a%3Fb%23c?d=1"), "a", "/a%3Fb%23c?d=1")


def test_lookup_reports_policies_the_upstream_uri_and_the_https_redirect(stack: Stack, tls_secret: str) -> None:
    """`kroute-table lookup --json` shows what a request would get without sending it."""
    apply_and_wait(stack, documented_rewrite(stack),
                   annotated(stack, "lookup-root", "lookup-root.ann.test", [("/", "Prefix", "a")],
                             {"app-root": "/app1"}, tls_secret=tls_secret))
    found = stack.lookup("rewrite.ann.test", "/something/new?x=1")
    assert found is not None and found["upstreamUri"] == "/new?x=1", found
    assert [(p["kind"], p["value"]) for p in found["policies"]] == [("rewrite", "/$2")], found
    assert found["sslRedirect"] is False
    root = stack.lookup("lookup-root.ann.test", "/")
    assert root is not None and root["sslRedirect"] is True, root
    assert [(p["kind"], p.get("code")) for p in root["hostPolicies"]] == [("redirect", 302)], root
    assert "/app1" in root["hostPolicies"][0]["value"], root


# ---- app-root -----------------------------------------------------------------------------------------


def test_app_root_redirects_only_the_root_of_the_host(stack: Stack) -> None:
    host = "approot.ann.test"
    apply_and_wait(stack, annotated(stack, "approot", host, [("/", "Prefix", "a")], {"app-root": "/app1"}))
    redirected(stack.request(host, "/"), 302, f"http://{host}/app1")
    redirected(stack.request(host, "/?x=1"), 302, f"http://{host}/app1")  # as nginx's `return`: no query
    # The Host as the client sent it, with its port and its case.
    redirected(stack.request(f"{host}:8080", "/"), 302, f"http://{host}:8080/app1")
    redirected(stack.request("AppRoot.ANN.test", "/"), 302, "http://AppRoot.ANN.test/app1")
    # The request's scheme.
    redirected(stack.request(host, "/", tls=True), 302, f"https://{host}/app1")
    served(stack.request(host, "/other"), "a", "/other")
    served(stack.request(host, "/app1"), "a", "/app1")


def test_app_root_redirects_even_when_no_rule_serves_the_root(stack: Stack) -> None:
    """ingress-nginx's app-root is a server-level `if ($uri = /)`: it runs before any location is chosen."""
    apply_and_wait(stack,
                   annotated(stack, "approot-norule", "approot-norule.ann.test", [("/app1", "Prefix", "a")],
                             {"app-root": "/app1"}),
                   annotated(stack, "approot-wild", "*.approot-wild.ann.test", [("/", "Prefix", "a")],
                             {"app-root": "/app1"}))
    redirected(stack.request("approot-norule.ann.test", "/"), 302, "http://approot-norule.ann.test/app1")
    served(stack.request("approot-norule.ann.test", "/app1/x"), "a", "/app1/x")
    assert stack.request("approot-norule.ann.test", "/other").status == 404
    # A wildcard host: every name it serves.
    redirected(stack.request("x.approot-wild.ann.test", "/"), 302, "http://x.approot-wild.ann.test/app1")
    served(stack.request("x.approot-wild.ann.test", "/y"), "a", "/y")


# ---- permanent-redirect and temporal-redirect ---------------------------------------------------------


REDIRECTS = {  # host -> annotations
    "perm.ann.test": {"permanent-redirect": "https://www.example.com/x"},
    "perm308.ann.test": {"permanent-redirect": "https://www.example.com/x", "permanent-redirect-code": "308"},
    "temp.ann.test": {"temporal-redirect": "https://www.example.com/t"},
    "temp307.ann.test": {"temporal-redirect": "https://www.example.com/t", "temporal-redirect-code": "307"},
    "both.ann.test": {"permanent-redirect": "https://www.example.com/p", "permanent-redirect-code": "308",
                      "temporal-redirect": "https://www.example.com/t"},
    "uri.ann.test": {"permanent-redirect": "https://new.example.com$request_uri"},
    "vars.ann.test": {"temporal-redirect": "$scheme://$host/v$uri$is_args$args"},
    "qs.ann.test": {"permanent-redirect": "https://$http_host/q?$query_string"},
}


def test_permanent_and_temporal_redirects(stack: Stack) -> None:
    ingresses = [annotated(stack, host.split(".")[0] + "-redirect", host, [("/", "Prefix", "a")], annotations)
                 for host, annotations in REDIRECTS.items()]
    apply_and_wait(stack, *ingresses)
    redirected(stack.request("perm.ann.test", "/any?x=1"), 301, "https://www.example.com/x")
    redirected(stack.request("perm308.ann.test", "/"), 308, "https://www.example.com/x")
    redirected(stack.request("temp.ann.test", "/"), 302, "https://www.example.com/t")
    redirected(stack.request("temp307.ann.test", "/"), 307, "https://www.example.com/t")
    redirected(stack.request("both.ann.test", "/"), 302, "https://www.example.com/t")  # temporal wins
    # Request values, expanded per request.
    redirected(stack.request("uri.ann.test", "/a/b?c=d"), 301, "https://new.example.com/a/b?c=d")
    redirected(stack.request("uri.ann.test", "/"), 301, "https://new.example.com/")
    redirected(stack.request("uri.ann.test", "/a%0D%0AX:%20y?b=%0A"), 301,
               "https://new.example.com/a%0D%0AX:%20y?b=%0A")
    redirected(stack.request("vars.ann.test", "/a/b?c=d"), 302, "http://vars.ann.test/v/a/b?c=d")
    redirected(stack.request("vars.ann.test:8080", "/a/b"), 302, "http://vars.ann.test/v/a/b")
    redirected(stack.request("vars.ann.test", "/a", tls=True), 302, "https://vars.ann.test/v/a")
    redirected(stack.request("qs.ann.test:8080", "/x?k=v"), 301, "https://qs.ann.test:8080/q?k=v")


def test_redirects_belong_to_the_rules_of_their_ingress_and_need_no_endpoint(stack: Stack, tls_secret: str) -> None:
    host = "redirect-scope.ann.test"
    apply_and_wait(stack,
                   annotated(stack, "redirect-scope", host, [("/old", "Prefix", "no-such-service")],
                             {"permanent-redirect": "https://www.example.com/new"}),
                   annotated(stack, "redirect-scope-rest", host, [("/", "Prefix", "a")]),
                   annotated(stack, "https-no-endpoint", "https-no-endpoint.ann.test",
                             [("/", "Prefix", "no-such-service")], tls_secret=tls_secret))
    # The redirect answers before a backend is needed (ingress-nginx: a `return` in the location).
    redirected(stack.request(host, "/old/x"), 301, "https://www.example.com/new")
    served(stack.request(host, "/other"), "a", "/other")
    redirected(stack.request("https-no-endpoint.ann.test", "/x"), 308, "https://https-no-endpoint.ann.test/x")


def test_redirects_see_the_request_before_the_rewrite(stack: Stack, tls_secret: str) -> None:
    """ingress-nginx's location `return` and its https redirect come before the rewrite-target's rewrite."""
    apply_and_wait(stack,
                   annotated(stack, "rewrite-moved", "rewrite-moved.ann.test",
                             [("/something(/|$)(.*)", "ImplementationSpecific", "a")],
                             {"rewrite-target": "/$2", "permanent-redirect": "https://x.example.com$uri?$args"}),
                   annotated(stack, "rewrite-tls", "rewrite-tls.ann.test",
                             [("/something(/|$)(.*)", "ImplementationSpecific", "a")],
                             {"rewrite-target": "/$2"}, tls_secret=tls_secret))
    redirected(stack.request("rewrite-moved.ann.test", "/something/new?a=b"), 301,
               "https://x.example.com/something/new?a=b")
    redirected(stack.request("rewrite-tls.ann.test", "/something/new?a=b"), 308,
               "https://rewrite-tls.ann.test/something/new?a=b")
    served(stack.request("rewrite-tls.ann.test", "/something/new?a=b", tls=True), "a", "/new?a=b")


def test_redirect_with_the_groups_of_a_regex_path(stack: Stack) -> None:
    host = "moved.ann.test"
    apply_and_wait(stack, annotated(stack, "moved", host, [("/old/(.*)", "ImplementationSpecific", "a"),
                                                           ("/kept", "Prefix", "b")],
                                    {"use-regex": "true", "permanent-redirect": "https://new.example.com/new/$1"}))
    redirected(stack.request(host, "/old/x/y?z=1"), 301, "https://new.example.com/new/x/y")
    redirected(stack.request(host, "/kept"), 301, "https://new.example.com/new/")  # no group: empty
    assert stack.request(host, "/other").status == 404


def test_request_data_decoded_by_nginx_injects_no_header_into_a_redirect(stack: Stack) -> None:
    """$uri and the groups of a regex path are decoded (%0D%0A is CR LF); $request_uri and $args are not."""
    apply_and_wait(stack,
                   annotated(stack, "inject-uri", "inject-uri.ann.test", [("/", "Prefix", "a")],
                             {"temporal-redirect": "https://www.example.com$uri"}),
                   annotated(stack, "inject-group", "inject-group.ann.test",
                             [("/any/([^z]*)", "ImplementationSpecific", "a")],
                             {"use-regex": "true", "permanent-redirect": "https://new.example.com/new/$1"}),
                   annotated(stack, "inject-raw", "inject-raw.ann.test", [("/", "Prefix", "a")],
                             {"permanent-redirect": "https://www.example.com$request_uri"}))
    redirected(stack.request("inject-raw.ann.test", "/a%0D%0AX-Injected:%201?b=%0D%0A"), 301,
               "https://www.example.com/a%0D%0AX-Injected:%201?b=%0D%0A")
    no_header_injected(stack.request("inject-uri.ann.test", "/a%0D%0AX-Injected:%201"), 302)
    no_header_injected(stack.request("inject-group.ann.test", "/any/%0D%0AX-Injected:%201"), 301)


@pytest.mark.parametrize("kind, code, default", [("permanent", "200", 301), ("permanent", "abc", 301),
                                                  ("permanent", "309", 301), ("permanent", "", 301),
                                                  ("temporal", "299", 302), ("temporal", "3o7", 302)])
def test_redirect_code_out_of_range_keeps_the_default_with_an_event(stack: Stack, kind: str, code: str,
                                                                    default: int) -> None:
    name = f"badcode-{kind}-{code or 'empty'}"
    host = f"{name}.ann.test"
    apply_and_wait(stack, annotated(stack, name, host, [("/", "Prefix", "a")],
                                    {f"{kind}-redirect": "https://www.example.com/x", f"{kind}-redirect-code": code}))
    redirected(stack.request(host, "/"), default, "https://www.example.com/x")
    wait_warning(stack, name, "InvalidAnnotation", f"{NGINX}/{kind}-redirect-code")


@pytest.mark.parametrize("slug, target", [("spaces", "not a url"), ("ftp", "ftp://x"),
                                          ("unknown-variable", "https://x.com/$foo"), ("relative", "/relative"),
                                          ("no-host", "https://")])
def test_redirect_to_something_not_a_url_is_ignored_with_an_event(stack: Stack, slug: str, target: str) -> None:
    name = f"badtarget-{slug}"
    host = f"{name}.ann.test"
    apply_and_wait(stack, annotated(stack, name, host, [("/", "Prefix", "a")], {"permanent-redirect": target}))
    served(stack.request(host, "/x?y=1"), "a", "/x?y=1")
    wait_warning(stack, name, "InvalidAnnotation", f"{NGINX}/permanent-redirect")


# ---- ssl-redirect, force-ssl-redirect, preserve-trailing-slash ----------------------------------------


def test_https_redirect_for_hosts_with_tls(stack: Stack, tls_secret: str) -> None:
    host = "tls.ann.test"
    apply_and_wait(stack,
                   annotated(stack, "tls", host, [("/", "Prefix", "a"), ("/.well-known/acme-challenge", "Prefix", "b")],
                             tls_secret=tls_secret),
                   annotated(stack, "tls-slash", "tls-slash.ann.test", [("/", "Prefix", "a")],
                             {"preserve-trailing-slash": "true"}, tls_secret=tls_secret),
                   annotated(stack, "tls-off", "tls-off.ann.test", [("/", "Prefix", "a")],
                             {"ssl-redirect": "false"}, tls_secret=tls_secret),
                   annotated(stack, "tls-force", "force.ann.test", [("/", "Prefix", "a")],
                             {"force-ssl-redirect": "true"}),
                   annotated(stack, "no-tls", "no-tls.ann.test", [("/", "Prefix", "a")]))
    # ingress-nginx's Lua: https://<host without port><request URI>, one trailing "/" removed.
    redirected(stack.request(host, "/foo"), 308, f"https://{host}/foo")
    redirected(stack.request(host, "/foo/"), 308, f"https://{host}/foo")
    redirected(stack.request(host, "/"), 308, f"https://{host}")
    redirected(stack.request(host, "/foo?a=b"), 308, f"https://{host}/foo?a=b")
    redirected(stack.request(host, "/foo/?a=b"), 308, f"https://{host}/foo/?a=b")  # the URI ends with the query
    redirected(stack.request(f"{host}:8080", "/foo/bar"), 308, f"https://{host}/foo/bar")
    # ACME HTTP-01 challenges stay on plain HTTP.
    served(stack.request(host, "/.well-known/acme-challenge/token"), "b", "/.well-known/acme-challenge/token")
    # Over HTTPS: served.
    served(stack.request(host, "/foo/?a=b", tls=True), "a", "/foo/?a=b", host)

    redirected(stack.request("tls-slash.ann.test", "/foo/"), 308, "https://tls-slash.ann.test/foo/")
    redirected(stack.request("tls-slash.ann.test", "/foo"), 308, "https://tls-slash.ann.test/foo")
    served(stack.request("tls-off.ann.test", "/foo/"), "a", "/foo/")
    redirected(stack.request("force.ann.test", "/x/?q=1"), 308, "https://force.ann.test/x/?q=1")
    redirected(stack.request("force.ann.test", "/x/"), 308, "https://force.ann.test/x")
    served(stack.request("force.ann.test", "/x", tls=True), "a", "/x")
    served(stack.request("no-tls.ann.test", "/foo/"), "a", "/foo/")


def test_redirect_order_app_root_then_permanent_then_https(stack: Stack, tls_secret: str) -> None:
    apply_and_wait(stack,
                   annotated(stack, "order-perm", "order-perm.ann.test", [("/", "Prefix", "a")],
                             {"permanent-redirect": "https://www.example.com/p"}, tls_secret=tls_secret),
                   annotated(stack, "order-root", "order-root.ann.test", [("/", "Prefix", "a")],
                             {"app-root": "/app1", "permanent-redirect": "https://www.example.com/p"},
                             tls_secret=tls_secret),
                   annotated(stack, "order-root-tls", "order-root-tls.ann.test", [("/", "Prefix", "a")],
                             {"app-root": "/app1"}, tls_secret=tls_secret))
    # The Ingress's own redirect comes before the one to https://.
    redirected(stack.request("order-perm.ann.test", "/x"), 301, "https://www.example.com/p")
    redirected(stack.request("order-perm.ann.test", "/x", tls=True), 301, "https://www.example.com/p")
    # app-root is host-wide, before both.
    redirected(stack.request("order-root.ann.test", "/"), 302, "http://order-root.ann.test/app1")
    redirected(stack.request("order-root.ann.test", "/x"), 301, "https://www.example.com/p")
    redirected(stack.request("order-root-tls.ann.test", "/"), 302, "http://order-root-tls.ann.test/app1")
    redirected(stack.request("order-root-tls.ann.test", "/app1"), 308, "https://order-root-tls.ann.test/app1")
    served(stack.request("order-root-tls.ann.test", "/app1", tls=True), "a", "/app1")


# ---- from-to-www-redirect -----------------------------------------------------------------------------


def test_from_to_www_redirect(stack: Stack, tls_secret: str) -> None:
    on = {"from-to-www-redirect": "true"}
    apply_and_wait(stack,
                   annotated(stack, "www-to", "fw.ann.test", [("/", "Prefix", "a")], on),
                   annotated(stack, "www-tls", "fwtls.ann.test", [("/", "Prefix", "a")], on, tls_secret=tls_secret),
                   annotated(stack, "www-own", "own.ann.test", [("/", "Prefix", "a")], on),
                   annotated(stack, "www-own-www", "www.own.ann.test", [("/", "Prefix", "c")]))
    redirected(stack.request("www.fw.ann.test", "/some/path/"), 308, "http://fw.ann.test/some/path")
    redirected(stack.request("www.fw.ann.test", "/x?y=1"), 308, "http://fw.ann.test/x?y=1")
    redirected(stack.request("www.fw.ann.test", "/"), 308, "http://fw.ann.test")
    redirected(stack.request("www.fw.ann.test:8080", "/x"), 308, "http://fw.ann.test/x")
    redirected(stack.request("WWW.FW.ANN.TEST", "/x"), 308, "http://fw.ann.test/x")
    redirected(stack.request("www.fw.ann.test", "/x/", tls=True), 308, "https://fw.ann.test/x")
    served(stack.request("fw.ann.test", "/some/path/"), "a", "/some/path/")
    # With TLS for the name redirected to: https://.
    redirected(stack.request("www.fwtls.ann.test", "/x/"), 308, "https://fwtls.ann.test/x")
    # Another Ingress routes www.own.ann.test itself: its rules serve it.
    served(stack.request("www.own.ann.test", "/x/"), "c", "/x/", "www.own.ann.test")
    served(stack.request("own.ann.test", "/x/"), "a", "/x/", "own.ann.test")


def test_from_to_www_redirect_wins_over_a_wildcard_host(stack: Stack) -> None:
    """ingress-nginx skips the redirect only for a server of exactly that name; nginx prefers an exact
    server name (the redirect's) to a wildcard."""
    apply_and_wait(stack,
                   annotated(stack, "www-wild-to", "fw2.ann.test", [("/", "Prefix", "a")],
                             {"from-to-www-redirect": "true"}),
                   annotated(stack, "www-wild", "*.fw2.ann.test", [("/", "Prefix", "c")]))
    redirected(stack.request("www.fw2.ann.test", "/x"), 308, "http://fw2.ann.test/x")
    served(stack.request("other.fw2.ann.test", "/x"), "c", "/x")


def test_from_to_www_redirect_on_the_www_name_redirects_the_bare_name(stack: Stack) -> None:
    apply_and_wait(stack, annotated(stack, "www-from", "www.rev.ann.test", [("/", "Prefix", "b")],
                                    {"from-to-www-redirect": "true"}))
    redirected(stack.request("rev.ann.test", "/x/"), 308, "http://www.rev.ann.test/x")
    redirected(stack.request("rev.ann.test", "/x?y=1"), 308, "http://www.rev.ann.test/x?y=1")
    served(stack.request("www.rev.ann.test", "/x/"), "b", "/x/", "www.rev.ann.test")


# ---- server-alias -------------------------------------------------------------------------------------


def test_server_alias_serves_the_same_rules_unless_another_ingress_owns_the_name(stack: Stack) -> None:
    apply_and_wait(stack,
                   annotated(stack, "alias", "main-alias.ann.test", [("/", "Prefix", "a"), ("/b", "Prefix", "b")],
                             {"server-alias": "alias1.ann.test, alias2.ann.test"}),
                   annotated(stack, "alias-owner", "alias2.ann.test", [("/", "Prefix", "c")]))
    for host in ("main-alias.ann.test", "alias1.ann.test"):
        served(stack.request(host, "/x?y=1"), "a", "/x?y=1", host)
        served(stack.request(host, "/b/c"), "b", "/b/c", host)
    served(stack.request("alias2.ann.test", "/b/c"), "c", "/b/c", "alias2.ann.test")
    wait_warning(stack, "alias", "AnnotationIgnored", "alias2.ann.test")
    assert stack.request("alias3.ann.test", "/").status == 404

    # An Ingress that names an alias later takes it over.
    apply_and_wait(stack, annotated(stack, "alias-late", "main-late.ann.test", [("/", "Prefix", "a")],
                                    {"server-alias": "alias-late.ann.test"}))
    served(stack.request("alias-late.ann.test", "/x"), "a", "/x", "alias-late.ann.test")
    stack.apply(annotated(stack, "alias-late-owner", "alias-late.ann.test", [("/", "Prefix", "b")]))
    wait_for("the owner serving", lambda: stack.request("alias-late.ann.test", "/x").service == "b", interval=0.05)
    served(stack.request("alias-late.ann.test", "/"), "b", "/")
    wait_warning(stack, "alias-late", "AnnotationIgnored", "alias-late.ann.test")


def test_server_alias_gets_the_host_wide_app_root(stack: Stack) -> None:
    """ingress-nginx puts aliases in the host's server block, where app-root's `if ($uri = /)` is."""
    apply_and_wait(stack, annotated(stack, "alias-root", "main-root.ann.test", [("/", "Prefix", "a")],
                                    {"server-alias": "alias-root.ann.test", "app-root": "/app1"}))
    served(stack.request("alias-root.ann.test", "/x"), "a", "/x", "alias-root.ann.test")
    redirected(stack.request("main-root.ann.test", "/"), 302, "http://main-root.ann.test/app1")
    redirected(stack.request("alias-root.ann.test:8080", "/"), 302, "http://alias-root.ann.test:8080/app1")


# ---- x-forwarded-prefix and upstream-vhost ------------------------------------------------------------


def test_x_forwarded_prefix_is_sent_and_a_clients_own_is_dropped(stack: Stack) -> None:
    apply_and_wait(stack,
                   annotated(stack, "xfp", "xfp.ann.test", [("/", "Prefix", "a")], {"x-forwarded-prefix": "/prefix"}),
                   annotated(stack, "xfp-none", "xfp-none.ann.test", [("/", "Prefix", "a")]),
                   annotated(stack, "xfp-neighbour", "xfp.ann.test", [("/other", "Prefix", "b")]))
    forged = {"X-Forwarded-Prefix": "/forged"}
    for headers in ({}, forged):
        reply = stack.request("xfp.ann.test", "/x", headers=headers)
        served(reply, "a", "/x")
        assert reply.echo["headers"].get("x-forwarded-prefix") == "/prefix", reply.echo["headers"]
    reply = stack.request("xfp-none.ann.test", "/x", headers=forged)
    served(reply, "a", "/x")
    assert "x-forwarded-prefix" not in reply.echo["headers"], reply.echo["headers"]
    # Another Ingress's rules on the same host: not theirs.
    reply = stack.request("xfp.ann.test", "/other", headers=forged)
    served(reply, "b", "/other")
    assert "x-forwarded-prefix" not in reply.echo["headers"], reply.echo["headers"]


def test_long_and_odd_header_values_are_sent_as_written(stack: Stack) -> None:
    """Values under the 4096-byte annotation limit are honoured whole, quotes and semicolons included."""
    long_prefix = "/" + "p" * 2999
    long_target = "https://www.example.com/" + "r" * 2999
    ingresses = [annotated(stack, "xfp-long", "xfp-long.ann.test", [("/", "Prefix", "a")],
                           {"x-forwarded-prefix": long_prefix}),
                 annotated(stack, "xfp-odd", "xfp-odd.ann.test", [("/", "Prefix", "a")],
                           {"x-forwarded-prefix": '/p "q";r'}),
                 annotated(stack, "redirect-long", "redirect-long.ann.test", [("/", "Prefix", "a")],
                           {"permanent-redirect": long_target})]
    stack.apply(*ingresses)
    wait_rules(stack, ingresses[1])
    unrouted = {}
    for obj in ingresses:
        name = obj["metadata"]["name"]
        try:
            wait_rules(stack, obj, timeout=3)
        except AssertionError:
            unrouted[name] = [w["message"][:200] for w in warnings_for(stack, name, "InvalidRule")]
    assert not unrouted, f"not routed, with these InvalidRule Events: {unrouted}"
    reply = stack.request("xfp-long.ann.test", "/x")
    served(reply, "a", "/x")
    assert reply.echo["headers"].get("x-forwarded-prefix") == long_prefix
    reply = stack.request("xfp-odd.ann.test", "/x")
    served(reply, "a", "/x")
    assert reply.echo["headers"].get("x-forwarded-prefix") == '/p "q";r'
    redirected(stack.request("redirect-long.ann.test", "/"), 301, long_target)
    for name in ("xfp-long", "xfp-odd", "redirect-long"):
        assert not warnings_for(stack, name, "InvalidAnnotation") and not warnings_for(stack, name, "InvalidRule")


def test_rewrite_with_forwarded_prefix_and_upstream_vhost(stack: Stack) -> None:
    """ingress-nginx's documented pairing: the app moved under a prefix, told where it lives."""
    apply_and_wait(stack, annotated(stack, "combined", "combined.ann.test",
                                    [("/app(/|$)(.*)", "ImplementationSpecific", "a")],
                                    {"rewrite-target": "/$2", "x-forwarded-prefix": "/app",
                                     "upstream-vhost": "internal.example"}))
    reply = stack.request("combined.ann.test", "/app/x?y=1")
    served(reply, "a", "/x?y=1", "internal.example")
    assert reply.echo["headers"].get("x-forwarded-prefix") == "/app"
    assert reply.echo["headers"].get("x-forwarded-host") == "combined.ann.test"


def test_upstream_vhost_is_the_host_header_sent_upstream(stack: Stack) -> None:
    apply_and_wait(stack,
                   annotated(stack, "vhost", "vhost.ann.test", [("/", "Prefix", "a")],
                             {"upstream-vhost": "internal.example"}),
                   annotated(stack, "vhost-port", "vhost-port.ann.test", [("/", "Prefix", "a")],
                             {"upstream-vhost": "internal.example:8443"}),
                   annotated(stack, "vhost-none", "vhost-none.ann.test", [("/", "Prefix", "a")]))
    served(stack.request("vhost.ann.test:8080", "/x"), "a", "/x", "internal.example")
    served(stack.request("vhost-port.ann.test", "/x"), "a", "/x", "internal.example:8443")
    served(stack.request("vhost.ann.test", "/x", tls=True), "a", "/x", "internal.example")
    served(stack.request("vhost-none.ann.test:8080", "/x"), "a", "/x", "vhost-none.ann.test:8080")
    served(stack.request("vhost-none.ann.test", "/x"), "a", "/x", "vhost-none.ann.test")


# ---- both prefixes ------------------------------------------------------------------------------------


def test_kroute_prefix_wins_and_an_invalid_kroute_value_falls_back(stack: Stack, tls_secret: str) -> None:
    apply_and_wait(stack,
                   annotated(stack, "prefix-both", "prefix-both.ann.test", [("/", "Prefix", "a")],
                             {f"{NGINX}/upstream-vhost": "nginx.example",
                              f"{KROUTE}/upstream-vhost": "kroute.example"}),
                   annotated(stack, "prefix-own", "prefix-own.ann.test", [("/", "Prefix", "a")],
                             {f"{KROUTE}/permanent-redirect": "https://www.example.com/k",
                              f"{NGINX}/permanent-redirect-code": "307"}),
                   annotated(stack, "prefix-invalid", "prefix-invalid.ann.test", [("/", "Prefix", "a")],
                             {f"{NGINX}/upstream-vhost": "nginx.example", f"{KROUTE}/upstream-vhost": "not a host!"}),
                   annotated(stack, "prefix-invalid-ssl", "prefix-invalid-ssl.ann.test", [("/", "Prefix", "a")],
                             {f"{NGINX}/ssl-redirect": "false", f"{KROUTE}/ssl-redirect": "maybe"},
                             tls_secret=tls_secret))
    served(stack.request("prefix-both.ann.test", "/"), "a", "/", "kroute.example")
    redirected(stack.request("prefix-own.ann.test", "/"), 307, "https://www.example.com/k")  # one from each prefix
    served(stack.request("prefix-invalid.ann.test", "/"), "a", "/", "nginx.example")
    wait_warning(stack, "prefix-invalid", "InvalidAnnotation", f"{KROUTE}/upstream-vhost")
    served(stack.request("prefix-invalid-ssl.ann.test", "/x/"), "a", "/x/")
    wait_warning(stack, "prefix-invalid-ssl", "InvalidAnnotation", f"{KROUTE}/ssl-redirect")
    assert not warnings_for(stack, "prefix-both", "InvalidAnnotation")


@pytest.mark.parametrize("value, regex", [("1", True), ("True", True), ("t", True), ("yes", False), ("on", False)])
def test_booleans_are_read_as_ingress_nginx_reads_them(stack: Stack, value: str, regex: bool) -> None:
    """Go's strconv.ParseBool: 1, t, T, TRUE, true, True and their false twins; anything else is invalid."""
    name = f"bool-{value.lower()}"
    host = f"{name}.ann.test"
    apply_and_wait(stack, annotated(stack, name, host, [("/foo", "Prefix", "a")], {"use-regex": value}))
    reply = stack.request(host, "/FOO")
    if regex:
        served(reply, "a", "/FOO")
        assert not warnings_for(stack, name, "InvalidAnnotation")
    else:
        assert reply.status == 404
        wait_warning(stack, name, "InvalidAnnotation", f"{NGINX}/use-regex")


# ---- changes are live -----------------------------------------------------------------------------------


def test_annotation_changes_are_served_without_a_reload(stack: Stack) -> None:
    host = "live.ann.test"
    live = annotated(stack, "live", host, [("/", "Prefix", "a")], {"upstream-vhost": "first.example"})
    apply_and_wait(stack, live)
    served(stack.request(host, "/x/?q=1"), "a", "/x/?q=1", "first.example")
    assert stack.nginx is not None
    pids = stack.nginx.pids()

    def now(annotations: dict[str, str], check: Any) -> None:
        live["metadata"]["annotations"] = {f"{NGINX}/{k}": v for k, v in annotations.items()}
        stack.api.replace(live)
        wait_for(f"{annotations} served", lambda: check(stack.request(host, "/x/?q=1")), timeout=5, interval=0.02)

    with Steady(stack):
        now({"upstream-vhost": "second.example"}, lambda r: r.status == 200 and r.echo["host"] == "second.example")
        now({"permanent-redirect": "https://www.example.com/moved"},
            lambda r: (r.status, r.headers.get("location")) == (301, "https://www.example.com/moved"))
        now({"permanent-redirect": "https://www.example.com/moved", "permanent-redirect-code": "308"},
            lambda r: r.status == 308)
        now({"use-regex": "true", "rewrite-target": "/rewritten$1"},
            lambda r: r.status == 200 and r.echo["path"] == "/rewritten?q=1")
        now({"force-ssl-redirect": "true"},
            lambda r: (r.status, r.headers.get("location")) == (308, f"https://{host}/x/?q=1"))
        now({"x-forwarded-prefix": "/p"},
            lambda r: (r.status == 200 and r.echo["headers"].get("x-forwarded-prefix") == "/p"
                       and r.echo["host"] == host))
        now({}, lambda r: (r.status == 200 and r.echo["path"] == "/x/?q=1" and r.echo["host"] == host
                           and "x-forwarded-prefix" not in r.echo["headers"]))
    assert stack.nginx.pids() == pids, "nginx's master or workers changed"


# ---- hostile values -----------------------------------------------------------------------------------


def test_invalid_regex_path_is_skipped_with_an_event_and_the_rest_is_served(stack: Stack) -> None:
    host = "badregex.ann.test"
    with Steady(stack):
        apply_and_wait(stack, annotated(stack, "badregex", host, [("/ok", "Prefix", "a"),
                                                                 ("/(unclosed", "ImplementationSpecific", "b"),
                                                                 ("/also[ok]", "ImplementationSpecific", "c")],
                                        {"use-regex": "true"}),
                       annotated(stack, "badregex-neighbour", "badregex-neighbour.ann.test", [("/", "Prefix", "b")]))
        wait_warning(stack, "badregex", "InvalidRule", "/(unclosed")
        served(stack.request(host, "/ok/x"), "a", "/ok/x")
        served(stack.request(host, "/alsok"), "c", "/alsok")
        assert stack.request(host, "/(unclosed").status == 404
        served(stack.request("badregex-neighbour.ann.test", "/"), "b", "/")


def test_catastrophic_backtracking_answers_quickly(stack: Stack) -> None:
    host = "redos.ann.test"
    with Steady(stack):
        apply_and_wait(stack, annotated(stack, "redos", host, [("/ok", "Prefix", "a"),
                                                              ("/(a+)+$", "ImplementationSpecific", "b")],
                                        {"use-regex": "true"}))
        served(stack.request(host, "/aaaa"), "b", "/aaaa")
        evil = "/" + "a" * 31 + "!"
        for _ in range(3):
            reply, seconds = timed_request(stack, host, evil)
            assert seconds < 1.0, f"{seconds:.2f}s for {evil}"
            assert reply.status in (404, 200, 500, 503) and reply.service != "a", reply.status
        served(stack.request(host, "/ok"), "a", "/ok")


def test_the_work_bound_does_not_cut_off_ordinary_patterns_on_long_paths(stack: Stack) -> None:
    """The bound stops pathological matches, not ingress-nginx's usual patterns on long (3 KB) paths."""
    host = "longpath.ann.test"
    apply_and_wait(stack, annotated(stack, "longpath", host,
                                    [("/long/(.*)/end", "ImplementationSpecific", "a"),
                                     ("/files/(.+)[.](png|jpg)$", "ImplementationSpecific", "b"),
                                     ("/app(/|$)(.*)", "ImplementationSpecific", "c")],
                                    {"rewrite-target": "/r$1$2"}))
    long_segment = "a" * 3000
    many_segments = "/".join(["seg"] * 700)
    for path, service, upstream in ((f"/long/{long_segment}/end", "a", f"/r{long_segment}"),
                                    (f"/long/{many_segments}/end", "a", f"/r{many_segments}"),
                                    (f"/files/{many_segments}.png", "b", f"/r{many_segments}png"),
                                    (f"/app/{many_segments}", "c", f"/r/{many_segments}")):
        reply, seconds = timed_request(stack, host, path)
        served(reply, service, upstream)
        assert seconds < 1.0, f"{seconds:.2f}s for {path[:40]}..."


def test_oversized_annotation_is_ignored_with_an_event(stack: Stack) -> None:
    host = "huge.ann.test"
    huge = annotated(stack, "huge", host, [("/", "Prefix", "a")],
                     {"x-forwarded-prefix": "/" + "p" * 200_000, "upstream-vhost": "small.example"})
    with Steady(stack):
        # Created directly: kubectl apply would copy the object into an annotation, over the API server's limit.
        stack.api.create(huge)
        wait_rules(stack, huge)
        reply = stack.request(host, "/x")
        served(reply, "a", "/x", "small.example")
        assert "x-forwarded-prefix" not in reply.echo["headers"]
        wait_warning(stack, "huge", "InvalidAnnotation", "longer than 4096 bytes")
        events = warnings_for(stack, "huge", "InvalidAnnotation")
        assert all(len(e["message"]) < 2048 for e in events), [len(e["message"]) for e in events]


def test_snippets_are_refused_with_an_event_and_the_routes_still_work(stack: Stack) -> None:
    host = "snippet.ann.test"
    with Steady(stack):
        apply_and_wait(stack, annotated(stack, "snippet", host, [("/", "Prefix", "a")],
                                        {"configuration-snippet": "return 200 owned;",
                                         "server-snippet": "location /owned { return 200 owned; }",
                                         "x-forwarded-prefix": "/kept"}))
        reply = stack.request(host, "/owned")
        served(reply, "a", "/owned")
        assert b"owned;" not in reply.body and reply.echo["headers"].get("x-forwarded-prefix") == "/kept"
        wait_warning(stack, "snippet", "AnnotationRefused", f"{NGINX}/configuration-snippet")
        wait_warning(stack, "snippet", "AnnotationRefused", f"{NGINX}/server-snippet")


def test_healthy_route_still_served(stack: Stack) -> None:
    """Last: everything above left the healthy route as it was."""
    reply = stack.request(HEALTHY, "/")
    assert (reply.status, reply.service) == (200, "healthy")
