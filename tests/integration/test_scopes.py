"""Scopes and server names through nginx. One nginx listens on 127.0.0.2 and 127.0.0.3 as well (loopback
answers for all of 127/8), each address a Gateway's scope: the same Host reaches another backend on each,
a host of one scope is not found through the other, certificates come from the scope's hosts and default.
A host with server-name records takes TLS requests only over connections whose SNI one of them covers; in
a scope with listener names, a TLS request whose Host selects another listener than its SNI gets 421.
Tables are published by kroute-table from descriptions shaped as the agent compiles Gateways."""
import http.client
import json
import socket
import subprocess

import pytest

from conftest import NGINX_CONF, TABLE_TOOL, TABLE_TOOL_ENV, backend, free_port, ingress, rule, wait_until
from test_tls import NGINX_GROUP, Certificates, client_context, der

NAMES = ["shared", "one", "two", "port", "secure"]
SCOPE_A, SCOPE_B = "127.0.0.2", "127.0.0.3"


def listen_conf(plain, tls, port_only):
    """The image's listeners (rewritten to the test's ports by render_config), and the scopes': each
    address on its own socket, so nginx knows the local address without a syscall; port_only on 127.0.0.1
    for the scope that any address on that port selects."""
    shipped = (NGINX_CONF.parent / "kroute" / "listen.conf").read_text()
    return shipped + "\n".join([
        f"listen {SCOPE_A}:{plain};", f"listen {SCOPE_B}:{plain};",
        f"listen {SCOPE_A}:{tls} ssl http2;", f"listen {SCOPE_B}:{tls} ssl http2;",
        f"listen 127.0.0.1:{port_only};", ""])


def scoped(name, scope, rules, **fields):
    """A Gateway route as the agent compiles it: one source in one scope, no ssl-redirect."""
    r = ingress(name, rules, ns="gw")
    r.update({"scope": scope, "sslRedirect": False, **fields})
    return r


def request(address, port, host, path="/", tls=False, server_name=None):
    """(status, backend name or None) of one request on a new connection to address:port; over TLS with
    `server_name` as SNI (None: no SNI)."""
    if tls:
        context = client_context()
        conn = http.client.HTTPSConnection(address, port, context=context, timeout=10)
        conn.sock = context.wrap_socket(socket.create_connection((address, port), timeout=10),
                                        server_hostname=server_name)
    else:
        conn = http.client.HTTPConnection(address, port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": host})
        r = conn.getresponse()
        body = r.read()
        return r.status, json.loads(body)["name"] if r.status == 200 else None
    finally:
        conn.close()


def served_certificate(address, port, server_name):
    """The DER of the leaf certificate nginx served on address:port for this SNI."""
    with socket.create_connection((address, port), timeout=10) as raw:
        with client_context().wrap_socket(raw, server_hostname=server_name) as s:
            return s.getpeercert(binary_form=True)


@pytest.fixture
def site(backends, table, nginx, tmp_path):
    b = backends(NAMES)
    plain, tls, port_only = free_port(SCOPE_A), free_port(SCOPE_A), free_port()
    certs = Certificates(tmp_path)
    cert = {name: certs.make(host) for name, host in [
        ("shared", "shop.test"), ("one", "shop.test"), ("two", "shop.test"),
        ("one-default", "one.default.test"), ("default", "default.test")]}
    description = {
        "scopes": [
            {"name": "gateway gw/a", "locals": [{"address": SCOPE_A, "port": plain}, {"address": SCOPE_A, "port": tls}],
             "defaultCertificate": cert["one-default"]},
            # HTTPS listeners without hostname, for named.test and for *.wild-b.test (on one port).
            {"name": "gateway gw/b", "locals": [{"address": SCOPE_B}],
             "listenerNames": ["", "named.test", "*.wild-b.test"]},
            {"name": "gateway gw/by-port", "locals": [{"port": port_only}]},
        ],
        "backends": [backend(name, [b.endpoint(name)]) for name in NAMES],
        "ingresses": [
            {**ingress("shared", [rule("shop.test", ("/", "Prefix", "shared"))]), "sslRedirect": False,
             "tls": [{"hosts": ["shop.test"], "secretName": "shared", **cert["shared"]}]},
            scoped("route-a", 1, [rule("shop.test", ("/", "Prefix", "one")),
                                  rule("only-a.test", ("/", "Prefix", "one")),
                                  rule("*.wild.test", ("/", "Prefix", "one"))],
                   tls=[{"hosts": ["shop.test"], "secretName": "one", **cert["one"]}]),
            scoped("route-b", 2, [rule("shop.test", ("/", "Prefix", "two")), rule(None, ("/any", "Prefix", "two")),
                                  rule("named.test", ("/", "Prefix", "two")), rule("*.wild-b.test", ("/", "Prefix", "two"))],
                   tls=[{"hosts": ["shop.test"], "secretName": "two", **cert["two"]}]),
            scoped("route-port", 3, [rule("shop.test", ("/", "Prefix", "port"))]),
            # A listener with hostname secure.test, and another with *.alt.test, both serving this route.
            scoped("route-secure", 1, [rule("secure.test", ("/", "Prefix", "secure"))],
                   hostPolicies=[{"host": "secure.test", "policies": [{"kind": "server-name", "a": "secure.test"},
                                                                       {"kind": "server-name", "a": "*.alt.test"}]}]),
        ],
        "defaultCertificate": cert["default"],
    }
    table.publish(description, group=NGINX_GROUP)
    n = nginx(includes={"listen.conf": listen_conf(plain, tls, port_only)})
    return n, {"plain": plain, "tls": tls, "port_only": port_only}, cert


def test_the_same_host_reaches_the_backend_of_the_scope_its_address_chose(site):
    n, ports, _ = site
    assert request(SCOPE_A, ports["plain"], "shop.test") == (200, "one")
    assert request(SCOPE_B, ports["plain"], "shop.test") == (200, "two")
    assert request("127.0.0.1", n.port, "shop.test") == (200, "shared")
    assert request("127.0.0.1", ports["port_only"], "shop.test") == (200, "port")
    # Over TLS the same: the scope follows the address, whatever the SNI.
    assert request(SCOPE_A, ports["tls"], "shop.test", tls=True, server_name="shop.test") == (200, "one")
    assert request(SCOPE_B, ports["tls"], "shop.test", tls=True, server_name="shop.test") == (200, "two")
    assert request("127.0.0.1", n.tls_port, "shop.test", tls=True, server_name="shop.test") == (200, "shared")


def test_a_host_of_one_scope_is_not_found_through_another(site):
    n, ports, _ = site
    assert request(SCOPE_A, ports["plain"], "only-a.test") == (200, "one")
    assert request(SCOPE_A, ports["plain"], "x.wild.test") == (200, "one")
    for address, port in [(SCOPE_B, ports["plain"]), ("127.0.0.1", n.port), ("127.0.0.1", ports["port_only"])]:
        assert request(address, port, "only-a.test")[0] == 404, (address, port)
        assert request(address, port, "x.wild.test")[0] == 404, (address, port)
    # Host-less rules are the scope's own: scope b's /any, nowhere else.
    assert request(SCOPE_B, ports["plain"], "nowhere.test", "/any/x") == (200, "two")
    assert request(SCOPE_A, ports["plain"], "nowhere.test", "/any/x")[0] == 404
    assert request("127.0.0.1", n.port, "nowhere.test", "/any/x")[0] == 404


def test_certificates_come_from_the_scope_its_address_chose(site):
    n, ports, cert = site
    assert served_certificate(SCOPE_A, ports["tls"], "shop.test") == der(cert["one"])
    assert served_certificate(SCOPE_B, ports["tls"], "shop.test") == der(cert["two"])
    assert served_certificate("127.0.0.1", n.tls_port, "shop.test") == der(cert["shared"])
    # A name no host of the scope covers: the scope's default certificate, else the table's.
    assert served_certificate(SCOPE_A, ports["tls"], "unknown.test") == der(cert["one-default"])
    assert served_certificate(SCOPE_B, ports["tls"], "unknown.test") == der(cert["default"])
    assert served_certificate("127.0.0.1", n.tls_port, "unknown.test") == der(cert["default"])


def test_server_name_records_refuse_tls_requests_whose_sni_chose_another_listener(site):
    n, ports, _ = site
    port = ports["tls"]
    assert request(SCOPE_A, port, "secure.test", tls=True, server_name="secure.test") == (200, "secure")
    assert request(SCOPE_A, port, "secure.test", tls=True, server_name="SECURE.test") == (200, "secure")
    assert request(SCOPE_A, port, "secure.test", tls=True, server_name="a.b.alt.test") == (200, "secure")
    assert request(SCOPE_A, port, "secure.test", tls=True, server_name="shop.test") == (404, None)
    assert request(SCOPE_A, port, "secure.test", tls=True, server_name="alt.test") == (404, None)
    # Without SNI, and over plain HTTP, the host is served.
    assert request(SCOPE_A, port, "secure.test", tls=True, server_name=None) == (200, "secure")
    assert request(SCOPE_A, ports["plain"], "secure.test") == (200, "secure")
    # Hosts without the records take any SNI.
    assert request(SCOPE_A, port, "shop.test", tls=True, server_name="secure.test") == (200, "one")
    assert wait_until(lambda: "is not served over TLS name \"shop.test\"" in n.error_log())


def test_a_tls_request_whose_host_selects_another_listener_than_its_sni_gets_421(site, table):
    n, ports, _ = site
    port = ports["tls"]

    def tls(server_name, host, path="/"):
        return request(SCOPE_B, port, host, path, tls=True, server_name=server_name)

    # The same listener for SNI and Host: routed, or 404 for a host without routes.
    assert tls("shop.test", "shop.test") == (200, "two")
    assert tls("unknown.test", "shop.test") == (200, "two")  # both the listener without hostname
    assert tls("named.test", "named.test") == (200, "two")
    assert tls("a.b.wild-b.test", "c.wild-b.test") == (200, "two")  # one wildcard, any number of labels
    assert tls("shop.test", "unknown.test") == (404, None)
    # Another listener: 421, for hosts with routes and without, in either direction.
    assert tls("named.test", "shop.test") == (421, None)
    assert tls("shop.test", "named.test") == (421, None)
    assert tls("named.test", "unknown.test") == (421, None)
    assert tls("a.wild-b.test", "named.test") == (421, None)
    assert tls("NAMED.test.", "shop.test") == (421, None)
    assert tls("named.test", "x.wild-b.test", "/any/x") == (421, None)
    # Without SNI, over plain HTTP and in scopes without listener names nothing is misdirected.
    assert tls(None, "named.test") == (200, "two")
    assert request(SCOPE_B, ports["plain"], "named.test") == (200, "two")
    assert request(SCOPE_A, port, "shop.test", tls=True, server_name="named.test") == (200, "one")
    assert wait_until(lambda: 'host "shop.test" is another listener\'s than TLS name "named.test"' in n.error_log())
    dump = subprocess.run([str(TABLE_TOOL), "-d", str(table.dir), "dump"], capture_output=True, text=True,
                          timeout=30, env=TABLE_TOOL_ENV)
    assert dump.returncode == 0, dump.stderr
    assert "(listeners * named.test *.wild-b.test)" in dump.stdout


def test_kroute_table_lookup_picks_the_scope_by_local_address(site, table):
    _, ports, _ = site

    def lookup(local):
        out = subprocess.run([str(TABLE_TOOL), "-d", str(table.dir), "lookup", "--json", "--local", local,
                              "shop.test", "/"], capture_output=True, text=True, timeout=30, env=TABLE_TOOL_ENV)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    a = lookup(f"{SCOPE_A}:{ports['plain']}")
    assert (a["scope"], a["scopeName"], a["backend"]["service"]) == (1, "gateway gw/a", "one")
    assert lookup(f"{SCOPE_B}:1")["backend"]["service"] == "two"
    assert lookup(f":{ports['port_only']}")["scope"] == 3
    assert lookup("127.0.0.1:1")["backend"]["service"] == "shared"
