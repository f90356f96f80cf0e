// Gateway API -> route model and status (agent/gateway/compile.h): classes, listeners on nginx's fixed
// ports, attachment of routes (namespaces, kinds, sectionName, port, hostnames), references and grants.
#include <doctest.h>

#include <algorithm>

#include "certificates.h"
#include "compiler.h"
#include "json_helpers.h"
#include "policy/cors.h"
#include "policy/kinds.h"
#include "policy/mirror.h"
#include "policy/proxy_setting.h"
#include "store.h"

using namespace kroute;
using namespace kroute::agent;
using kube::EventType;

namespace {

struct Fixture {
  Metrics metrics;
  Store store{metrics, nullptr};
  CompileOptions options;

  Fixture() {
    options.gateway.controller = gateway::kDefaultController;
    options.gateway.addresses = {"10.0.0.1"};
    add(Kind::kGatewayClass, R"({"metadata": {"name": "kroute", "generation": 2},
                                 "spec": {"controllerName": "kroute.dev/gateway-controller"}})");
    add(Kind::kGatewayClass, R"({"metadata": {"name": "other"}, "spec": {"controllerName": "example.com/other"}})");
    add(Kind::kNamespace, R"({"metadata": {"name": "infra"}})");
    add(Kind::kNamespace, R"({"metadata": {"name": "apps", "labels": {"team": "a"}}})");
    service("infra", "web", 8080);
    service("apps", "app", 80);
  }

  void add(Kind kind, const std::string& text) { store.apply(kind, EventType::kAdded, json(text)); }
  void service(const std::string& ns, const std::string& name, int port) {
    add(Kind::kService, R"({"metadata": {"name": ")" + name + R"(", "namespace": ")" + ns +
                            R"("}, "spec": {"ports": [{"name": "p", "port": )" + std::to_string(port) + "}]}}");
  }
  void gateway(const std::string& name, const std::string& listeners, const std::string& cls = "kroute") {
    add(Kind::kGateway, R"({"metadata": {"name": ")" + name + R"(", "namespace": "infra", "generation": 3},
                            "spec": {"gatewayClassName": ")" + cls + R"(", "listeners": )" + listeners + "}}");
  }
  void route(const std::string& ns, const std::string& name, const std::string& spec,
             const std::string& created = "2024-01-01T00:00:00Z") {
    add(Kind::kHTTPRoute, R"({"metadata": {"name": ")" + name + R"(", "namespace": ")" + ns +
                              R"(", "generation": 5, "creationTimestamp": ")" + created + R"("}, "spec": )" + spec + "}");
  }
  CompiledTable compile() { return agent::compile(store, options); }
};

const gateway::Condition* find(const std::vector<gateway::Condition>& list, const std::string& type) {
  for (const auto& c : list) {
    if (c.type == type) return &c;
  }
  return nullptr;
}

const gateway::RouteStatus* route_status(const CompiledTable& t, const std::string& name) {
  for (const auto& r : t.gateway_status.routes) {
    if (r.name == name) return &r;
  }
  return nullptr;
}

const gateway::GatewayStatus* gateway_status(const CompiledTable& t, const std::string& name) {
  for (const auto& g : t.gateway_status.gateways) {
    if (g.name == name) return &g;
  }
  return nullptr;
}

// The value of rule `rule`'s proxy-setting record `which`, if it has one.
std::optional<std::uint64_t> proxy_setting_of(const CompiledTable& t, std::size_t rule, policy::ProxySetting which) {
  for (const PolicyRecord& p : t.model.rules[rule].policies) {
    if (p.kind == PolicyKind::kProxySetting && p.code == static_cast<std::uint16_t>(which)) return p.value;
  }
  return std::nullopt;
}

const char* kHttp = R"([{"name": "http", "port": 80, "protocol": "HTTP"}])";

}  // namespace

TEST_CASE("only GatewayClasses with our controllerName are accepted, with their generation and features") {
  Fixture f;
  const CompiledTable t = f.compile();
  REQUIRE(t.gateway_status.classes.size() == 1);
  const auto& cls = t.gateway_status.classes[0];
  CHECK(cls.name == "kroute");
  const auto* accepted = find(cls.conditions, "Accepted");
  REQUIRE(accepted != nullptr);
  CHECK(accepted->status == "True");
  CHECK(accepted->observed_generation == 2);
  CHECK(std::find(cls.features.begin(), cls.features.end(), "HTTPRoute") != cls.features.end());
}

TEST_CASE("without --gateway-controller the Gateway API is ignored") {
  Fixture f;
  f.options.gateway.controller.clear();
  f.gateway("gw", kHttp);
  f.route("infra", "r", R"({"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"name": "web", "port": 8080}]}]})");
  const CompiledTable t = f.compile();
  CHECK(t.gateway_status.classes.empty());
  CHECK(t.model.rules.empty());
}

TEST_CASE("a route attached to an HTTP listener becomes rules with its matches as conditions") {
  Fixture f;
  f.gateway("gw", kHttp);
  f.route("infra", "r", R"({"parentRefs": [{"name": "gw"}], "hostnames": ["a.example.com"],
      "rules": [{"matches": [{"path": {"type": "Exact", "value": "/x"}, "method": "POST",
                              "headers": [{"name": "Version", "value": "2"}],
                              "queryParams": [{"type": "RegularExpression", "name": "q", "value": "a.*"}]},
                             {"path": {"type": "PathPrefix", "value": "/y"}}],
                 "backendRefs": [{"name": "web", "port": 8080}]}]})");
  const CompiledTable t = f.compile();
  REQUIRE(t.model.rules.size() == 2);
  const Rule& exact = t.model.rules[0];
  CHECK(exact.host == "a.example.com");
  CHECK(exact.path == "/x");
  CHECK(exact.type == PathType::kExact);
  REQUIRE(exact.conditions.size() == 3);
  CHECK(exact.conditions[0] == MatchCondition{ConditionKind::kMethod, "", "POST"});
  CHECK(exact.conditions[1] == MatchCondition{ConditionKind::kHeaderExact, "Version", "2"});
  CHECK(exact.conditions[2] == MatchCondition{ConditionKind::kQueryRegex, "q", "a.*"});
  CHECK(t.model.rules[1].type == PathType::kPrefix);
  CHECK(t.model.rules[1].conditions.empty());
  CHECK(t.model.backends[exact.backend].service == "web");
  CHECK(t.model.sources[exact.source].kind == "HTTPRoute");

  const auto* status = route_status(t, "r");
  REQUIRE(status != nullptr);
  REQUIRE(status->parents.size() == 1);
  CHECK(status->parents[0].controller == "kroute.dev/gateway-controller");
  CHECK(find(status->parents[0].conditions, "Accepted")->status == "True");
  CHECK(find(status->parents[0].conditions, "ResolvedRefs")->status == "True");
  CHECK(find(status->parents[0].conditions, "Accepted")->observed_generation == 5);
  const auto* gw = gateway_status(t, "gw");
  REQUIRE(gw != nullptr);
  CHECK(gw->listeners[0].attached_routes == 1);
  CHECK(find(gw->conditions, "Programmed")->status == "True");
  CHECK(gw->addresses == std::vector<std::string>{"10.0.0.1"});
}

TEST_CASE("listeners nginx cannot serve are refused with the spec's reasons") {
  Fixture f;
  f.gateway("gw", R"([{"name": "odd-port", "port": 8081, "protocol": "HTTP"},
                      {"name": "udp", "port": 80, "protocol": "UDP"},
                      {"name": "ok", "port": 80, "protocol": "HTTP", "hostname": "a.example.com"},
                      {"name": "kinds", "port": 80, "protocol": "HTTP", "hostname": "b.example.com",
                       "allowedRoutes": {"kinds": [{"kind": "FooRoute"}]}}])");
  const CompiledTable t = f.compile();
  const auto* gw = gateway_status(t, "gw");
  REQUIRE(gw != nullptr);
  REQUIRE(gw->listeners.size() == 4);
  CHECK(find(gw->listeners[0].conditions, "Accepted")->reason == "PortUnavailable");
  CHECK(find(gw->listeners[1].conditions, "Accepted")->reason == "UnsupportedProtocol");
  CHECK(find(gw->listeners[1].conditions, "Conflicted")->reason == "ProtocolConflict");
  CHECK(find(gw->listeners[3].conditions, "ResolvedRefs")->reason == "InvalidRouteKinds");
  CHECK(gw->listeners[3].supported_kinds.empty());
  CHECK(find(gw->conditions, "Accepted")->reason == "ListenersNotValid");
}

TEST_CASE("attachment: namespaces, sectionName, port and hostnames decide, with the spec's reasons") {
  Fixture f;
  f.gateway("same", kHttp);
  f.gateway("selector", R"([{"name": "http", "port": 80, "protocol": "HTTP", "hostname": "*.example.com",
      "allowedRoutes": {"namespaces": {"from": "Selector", "selector": {"matchLabels": {"team": "a"}}}}}])");
  const std::string backend = R"("rules": [{"backendRefs": [{"name": "app", "port": 80}]}])";
  f.route("apps", "cross", R"({"parentRefs": [{"name": "same", "namespace": "infra"}], )" + backend + "}");
  f.route("apps", "section", R"({"parentRefs": [{"name": "selector", "namespace": "infra", "sectionName": "nope"}], )" +
                                 backend + "}");
  f.route("apps", "port", R"({"parentRefs": [{"name": "selector", "namespace": "infra", "port": 81}], )" + backend + "}");
  f.route("apps", "host", R"({"parentRefs": [{"name": "selector", "namespace": "infra"}], "hostnames": ["other.org"], )" +
                              backend + "}");
  f.route("apps", "good", R"({"parentRefs": [{"name": "selector", "namespace": "infra"}],
                              "hostnames": ["a.example.com", "other.org"], )" + backend + "}");
  f.route("apps", "other-class", R"({"parentRefs": [{"name": "elsewhere", "namespace": "infra"}], )" + backend + "}");
  const CompiledTable t = f.compile();
  CHECK(find(route_status(t, "cross")->parents[0].conditions, "Accepted")->reason == "NotAllowedByListeners");
  CHECK(find(route_status(t, "section")->parents[0].conditions, "Accepted")->reason == "NoMatchingParent");
  CHECK(find(route_status(t, "port")->parents[0].conditions, "Accepted")->reason == "NoMatchingParent");
  CHECK(find(route_status(t, "host")->parents[0].conditions, "Accepted")->reason == "NoMatchingListenerHostname");
  CHECK(find(route_status(t, "good")->parents[0].conditions, "Accepted")->status == "True");
  CHECK(route_status(t, "other-class") == nullptr);  // not a Gateway of ours: no status from us
  // Only the good route's host that meets the listener's is served.
  REQUIRE(t.model.rules.size() == 1);
  CHECK(t.model.rules[0].host == "a.example.com");
  CHECK(gateway_status(t, "selector")->listeners[0].attached_routes == 1);
  CHECK(gateway_status(t, "same")->listeners[0].attached_routes == 0);
}

TEST_CASE("hostname intersection follows the Gateway API") {
  using gateway::intersect_hostnames;
  using V = std::vector<std::string>;
  CHECK(intersect_hostnames("", V{}) == V{""});
  CHECK(intersect_hostnames("a.com", V{}) == V{"a.com"});
  CHECK(intersect_hostnames("", V{"x.com", "*.y.com"}) == V{"x.com", "*.y.com"});
  CHECK(intersect_hostnames("*.example.com", V{"a.example.com", "a.b.example.com", "example.com", "x.org"}) ==
        V{"a.example.com", "a.b.example.com"});
  CHECK(intersect_hostnames("a.example.com", V{"*.example.com"}) == V{"a.example.com"});
  CHECK(intersect_hostnames("*.example.com", V{"*.a.example.com"}) == V{"*.a.example.com"});
  CHECK(intersect_hostnames("*.a.example.com", V{"*.example.com"}) == V{"*.a.example.com"});
  CHECK(intersect_hostnames("a.com", V{"b.com"}).empty());
}

TEST_CASE("backendRefs: kinds, missing Services and grants decide ResolvedRefs; a rule with none answers 500") {
  Fixture f;
  f.gateway("gw", R"([{"name": "http", "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "All"}}}])");
  f.route("infra", "kind", R"({"parentRefs": [{"name": "gw"}], "hostnames": ["kind.org"],
      "rules": [{"backendRefs": [{"group": "example.com", "kind": "Thing", "name": "web", "port": 8080}]}]})");
  f.route("infra", "missing", R"({"parentRefs": [{"name": "gw"}], "hostnames": ["missing.org"],
      "rules": [{"backendRefs": [{"name": "nothing", "port": 8080}]}]})");
  f.route("infra", "cross", R"({"parentRefs": [{"name": "gw"}], "hostnames": ["cross.org"],
      "rules": [{"backendRefs": [{"name": "app", "namespace": "apps", "port": 80}]}]})");
  const CompiledTable before = f.compile();
  CHECK(find(route_status(before, "kind")->parents[0].conditions, "ResolvedRefs")->reason == "InvalidKind");
  CHECK(find(route_status(before, "missing")->parents[0].conditions, "ResolvedRefs")->reason == "BackendNotFound");
  CHECK(find(route_status(before, "cross")->parents[0].conditions, "ResolvedRefs")->reason == "RefNotPermitted");
  // Still accepted, and served: with 500.
  CHECK(find(route_status(before, "missing")->parents[0].conditions, "Accepted")->status == "True");
  for (const Rule& r : before.model.rules) {
    REQUIRE_FALSE(r.policies.empty());
    CHECK(r.policies[0].kind == PolicyKind::kDeny);
    CHECK(r.policies[0].code == 500);
  }
  f.add(Kind::kReferenceGrant, R"({"metadata": {"name": "g", "namespace": "apps"}, "spec": {
      "from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "infra"}],
      "to": [{"group": "", "kind": "Service"}]}})");
  const CompiledTable after = f.compile();
  CHECK(find(route_status(after, "cross")->parents[0].conditions, "ResolvedRefs")->status == "True");
  bool served = false;
  for (const Rule& r : after.model.rules) {
    if (r.host == "cross.org") served = r.policies.empty() && after.model.backends[r.backend].service == "app";
  }
  CHECK(served);
}

TEST_CASE("HTTPS listeners: certificates, cross-namespace grants, and TLS entries for the routes' hosts") {
  Fixture f;
  const TestCertificate cert = make_certificate("example.org");
  f.add(Kind::kSecret, tls_secret_json("cert", cert.chain_pem, cert.key_pem, "infra"));
  f.add(Kind::kSecret, tls_secret_json("cert", cert.chain_pem, cert.key_pem, "apps"));
  f.gateway("gw", R"([{"name": "https", "port": 443, "protocol": "HTTPS",
                       "tls": {"certificateRefs": [{"name": "cert"}]}},
                      {"name": "missing", "port": 443, "protocol": "HTTPS", "hostname": "m.org",
                       "tls": {"certificateRefs": [{"name": "nothing"}]}},
                      {"name": "cross", "port": 443, "protocol": "HTTPS", "hostname": "c.org",
                       "tls": {"certificateRefs": [{"name": "cert", "namespace": "apps"}]}}])");
  f.route("infra", "r", R"({"parentRefs": [{"name": "gw", "sectionName": "https"}], "hostnames": ["example.org"],
                            "rules": [{"backendRefs": [{"name": "web", "port": 8080}]}]})");
  const CompiledTable t = f.compile();
  const auto* gw = gateway_status(t, "gw");
  CHECK(find(gw->listeners[0].conditions, "ResolvedRefs")->status == "True");
  CHECK(find(gw->listeners[1].conditions, "ResolvedRefs")->reason == "InvalidCertificateRef");
  CHECK(find(gw->listeners[1].conditions, "Programmed")->status == "False");
  CHECK(find(gw->listeners[2].conditions, "ResolvedRefs")->reason == "RefNotPermitted");
  REQUIRE(t.model.tls.size() == 1);
  CHECK(t.model.tls[0].host == "example.org");
  CHECK(t.model.tls[0].certificate.chain_pem == cert.chain_pem);
}

TEST_CASE("a route's status is kept apart from an Ingress of the same name") {
  Fixture f;
  f.gateway("gw", kHttp);
  f.route("infra", "same-name", R"({"parentRefs": [{"name": "gw"}], "hostnames": ["r.org"],
                                    "rules": [{"backendRefs": [{"name": "web", "port": 8080}]}]})");
  const CompiledTable t = f.compile();
  for (const Warning& w : t.warnings) CHECK(w.kind != "");  // any warning about the route names its kind
  CHECK(route_status(t, "same-name") != nullptr);
}

namespace {

void gateway_created(Fixture& f, const std::string& name, const std::string& created, const std::string& status = "{}") {
  f.add(Kind::kGateway, R"({"metadata": {"name": ")" + name + R"(", "namespace": "infra", "generation": 1,
                            "creationTimestamp": ")" + created + R"("},
                            "spec": {"gatewayClassName": "kroute", "listeners": )" + std::string(kHttp) + R"(},
                            "status": )" + status + "}");
}

void use_slots(Fixture& f, std::initializer_list<const char*> specs) {
  for (const char* spec : specs) {
    gateway::Slot slot;
    std::string error;
    REQUIRE(gateway::parse_slot(spec, slot, error));
    f.options.gateway.slots.push_back(std::move(slot));
  }
}

std::vector<std::string> rule_hosts_in(const CompiledTable& t, ScopeId scope) {
  std::vector<std::string> out;
  for (const Rule& r : t.model.rules) {
    if (r.scope == scope) out.push_back(r.host + " " + t.model.backends[r.backend].service);
  }
  return out;
}

}  // namespace

TEST_CASE("with slots every Gateway gets an address and a scope of its own, and its routes stay in it") {
  Fixture f;
  f.service("infra", "v2", 8080);
  gateway::Slot a, b;
  std::string error;
  REQUIRE(gateway::parse_slot("10.1.0.1", a, error));
  REQUIRE(gateway::parse_slot("203.0.113.9=:8081+10.1.0.2:8443", b, error));
  f.options.gateway.slots = {a, b};
  gateway_created(f, "older", "2024-01-01T00:00:00Z");
  gateway_created(f, "newer", "2024-02-01T00:00:00Z");
  // HTTPRouteMultipleGateways: a host-less route on each Gateway, and one shared by both.
  f.route("infra", "shared", R"({"parentRefs": [{"name": "older"}, {"name": "newer"}],
      "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/shared"}}],
                 "backendRefs": [{"name": "web", "port": 8080}]}]})");
  f.route("infra", "only-newer", R"({"parentRefs": [{"name": "newer"}],
      "rules": [{"backendRefs": [{"name": "v2", "port": 8080}]}]})");
  const CompiledTable t = f.compile();
  REQUIRE(t.model.scopes.size() == 2);
  // A slot of an address alone: a scope per listener port (nginx sees the port the client used).
  CHECK(t.model.scopes[0].name == "gateway infra/older port 80");
  CHECK(t.model.scopes[0].locals == std::vector<LocalAddress>{{"10.1.0.1", 80}});
  CHECK(t.model.scopes[1].name == "gateway infra/newer");
  CHECK(t.model.scopes[1].locals == std::vector<LocalAddress>{{"", 8081}, {"10.1.0.2", 8443}});
  CHECK(gateway_status(t, "older")->addresses == std::vector<std::string>{"10.1.0.1"});
  CHECK(gateway_status(t, "newer")->addresses == std::vector<std::string>{"203.0.113.9"});
  CHECK(rule_hosts_in(t, 1) == std::vector<std::string>{" web"});
  CHECK(rule_hosts_in(t, 2) == std::vector<std::string>{" v2", " web"});  // routes in name order
  CHECK(rule_hosts_in(t, kSharedScope).empty());
}

TEST_CASE("a Gateway keeps the slot its status shows; without a free slot it is not programmed nor served") {
  Fixture f;
  use_slots(f, {"10.1.0.1", "10.1.0.2"});
  // The newer one already has the first slot (the older one was made when it was taken, say).
  gateway_created(f, "older", "2024-01-01T00:00:00Z");
  gateway_created(f, "newer", "2024-02-01T00:00:00Z", R"({"addresses": [{"type": "IPAddress", "value": "10.1.0.1"}]})");
  gateway_created(f, "newest", "2024-03-01T00:00:00Z");
  f.route("infra", "r", R"({"parentRefs": [{"name": "newest"}], "rules": [{"backendRefs": [{"name": "web", "port": 8080}]}]})");
  const CompiledTable t = f.compile();
  CHECK(gateway_status(t, "newer")->addresses == std::vector<std::string>{"10.1.0.1"});
  CHECK(gateway_status(t, "older")->addresses == std::vector<std::string>{"10.1.0.2"});
  const auto* newest = gateway_status(t, "newest");
  CHECK(newest->addresses.empty());
  const auto* programmed = find(newest->conditions, "Programmed");
  REQUIRE(programmed != nullptr);
  CHECK(programmed->status == "False");
  CHECK(programmed->reason == "AddressNotAssigned");
  CHECK(t.model.rules.empty());
  // The route still attaches (its listener counts it); it is served once the Gateway has an address.
  CHECK(newest->listeners[0].attached_routes == 1);
}

TEST_CASE("a host served only through HTTPS listeners with hostnames takes only their server names") {
  Fixture f;
  const TestCertificate cert = make_certificate("example.org");
  f.add(Kind::kSecret, tls_secret_json("cert", cert.chain_pem, cert.key_pem, "infra"));
  f.gateway("gw", R"([{"name": "https", "port": 443, "protocol": "HTTPS",
                       "tls": {"certificateRefs": [{"name": "cert"}]}},
                      {"name": "https-with-hostname", "port": 443, "protocol": "HTTPS", "hostname": "second.example.org",
                       "tls": {"certificateRefs": [{"name": "cert"}]}}])");
  f.route("infra", "any", R"({"parentRefs": [{"name": "gw"}], "hostnames": ["example.org"],
      "rules": [{"backendRefs": [{"name": "web", "port": 8080}]}]})");
  f.route("infra", "second", R"({"parentRefs": [{"name": "gw", "sectionName": "https-with-hostname"}],
      "rules": [{"backendRefs": [{"name": "web", "port": 8080}]}]})");
  const CompiledTable t = f.compile();
  REQUIRE(t.model.host_policies.size() == 1);
  const HostPolicy& policy = t.model.host_policies[0];
  CHECK(policy.host == "second.example.org");
  REQUIRE(policy.records.size() == 1);
  CHECK(policy.records[0].kind == PolicyKind::kServerName);
  CHECK(policy.records[0].a == "second.example.org");
  // The listener without hostname serves its certificate for any other name (the test's unknown SNI).
  CHECK(t.model.default_certificate.chain_pem == cert.chain_pem);

  // With a slot, that certificate is the Gateway's scope's default, not the table's.
  gateway::Slot slot;
  std::string error;
  REQUIRE(gateway::parse_slot("10.1.0.1", slot, error));
  f.options.gateway.slots = {slot};
  const CompiledTable scoped = f.compile();
  REQUIRE(scoped.model.scopes.size() == 1);
  CHECK(scoped.model.scopes[0].default_certificate.chain_pem == cert.chain_pem);
  CHECK(scoped.model.default_certificate.chain_pem.empty());
  REQUIRE(scoped.model.host_policies.size() == 1);
  CHECK(scoped.model.host_policies[0].scope == 1);

  // Listeners on two ports of one Gateway: a route attached to one port is not served on the other.
  f.gateway("ports", R"([{"name": "a", "port": 80, "protocol": "HTTP"}, {"name": "b", "port": 8080, "protocol": "HTTP"}])");
  f.options.gateway.http_ports = {80, 8080};
  f.route("infra", "on-b", R"({"parentRefs": [{"name": "ports", "port": 8080}], "hostnames": ["b.org"],
      "rules": [{"backendRefs": [{"name": "web", "port": 8080}]}]})");
  gateway::Slot second;
  REQUIRE(gateway::parse_slot("10.1.0.2", second, error));
  f.options.gateway.slots = {slot, second};
  const CompiledTable ports = f.compile();
  std::vector<std::string> b_scopes;
  for (const Rule& r : ports.model.rules) {
    if (r.host == "b.org") b_scopes.push_back(ports.model.scopes.at(r.scope - 1).name);
  }
  CHECK(b_scopes == std::vector<std::string>{"gateway infra/ports port 8080"});
}

TEST_CASE("a scope of its own carries its Gateway's HTTPS listener names, where they share a port and one has a name") {
  Fixture f;
  const TestCertificate cert = make_certificate("example.org");
  f.add(Kind::kSecret, tls_secret_json("cert", cert.chain_pem, cert.key_pem, "infra"));
  const std::string tls = R"("tls": {"certificateRefs": [{"name": "cert"}]})";
  f.gateway("gw", R"([{"name": "http", "port": 80, "protocol": "HTTP", "hostname": "plain.org"},
                      {"name": "https", "port": 443, "protocol": "HTTPS", )" + tls + R"(},
                      {"name": "named", "port": 443, "protocol": "HTTPS", "hostname": "second.example.org", )" + tls + R"(},
                      {"name": "wild", "port": 443, "protocol": "HTTPS", "hostname": "*.wild.org", )" + tls + R"(},
                      {"name": "broken", "port": 443, "protocol": "HTTPS", "hostname": "broken.org",
                       "tls": {"certificateRefs": [{"name": "missing"}]}}])");
  f.options.gateway.http_ports = {80};
  f.options.gateway.https_ports = {443};
  // Without slots Gateways share the shared scope, and nothing is found misdirected.
  CHECK(f.compile().model.scopes.empty());

  // A slot of an address alone: a scope per listener port, and the port-443 scope has the names of the
  // listeners served there (not of one whose certificate does not resolve).
  gateway::Slot slot;
  std::string error;
  REQUIRE(gateway::parse_slot("10.1.0.1", slot, error));
  f.options.gateway.slots = {slot};
  const CompiledTable by_port = f.compile();
  REQUIRE(by_port.model.scopes.size() == 2);
  for (const kroute::Scope& scope : by_port.model.scopes) {
    CAPTURE(scope.name);
    if (scope.name.ends_with("port 443"))
      CHECK(scope.listener_names == std::vector<std::string>{"", "second.example.org", "*.wild.org"});
    else
      CHECK(scope.listener_names.empty());
  }

  // A slot with ports: one scope for every listener of the Gateway; HTTPS on one port still has its names.
  REQUIRE(gateway::parse_slot("10.1.0.1=:8081+:8444", slot, error));
  f.options.gateway.slots = {slot};
  const CompiledTable whole = f.compile();
  REQUIRE(whole.model.scopes.size() == 1);
  CHECK(whole.model.scopes[0].listener_names == std::vector<std::string>{"", "second.example.org", "*.wild.org"});

  // HTTPS on two ports in one scope: nginx cannot tell which port a client used, so no names.
  f.options.gateway.https_ports = {443, 8443};
  f.gateway("gw", R"([{"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "a.org", )" + tls + R"(},
                      {"name": "other", "port": 8443, "protocol": "HTTPS", "hostname": "b.org", )" + tls + R"(}])");
  CHECK(f.compile().model.scopes.at(0).listener_names.empty());
  // HTTPS listeners without hostnames: every name selects the same one, so no names either.
  f.gateway("gw", R"([{"name": "https", "port": 443, "protocol": "HTTPS", )" + tls + R"(}])");
  CHECK(f.compile().model.scopes.at(0).listener_names.empty());
}

TEST_CASE("--gateway-slot is ADDRESS[=LOCAL[+LOCAL...]]") {
  gateway::Slot slot;
  std::string error;
  REQUIRE(gateway::parse_slot("fd00::7", slot, error));
  CHECK(slot.locals == std::vector<LocalAddress>{{"fd00::7", 0}});
  REQUIRE(gateway::parse_slot("lb.example.com=[fd00::7]:8080+:9090+10.0.0.1", slot, error));
  CHECK(slot.address == "lb.example.com");
  CHECK(slot.locals == std::vector<LocalAddress>{{"fd00::7", 8080}, {"", 9090}, {"10.0.0.1", 0}});
  for (const char* bad : {"", "=10.0.0.1", "a=", "a=10.0.0.1:", "a=10.0.0.1:0", "a=:70000", "a=host:80",
                          "a=[fd00::1", "a=10.0.0.1+", "lb.example.com"}) {
    CAPTURE(bad);
    CHECK_FALSE(gateway::parse_slot(bad, slot, error));
    CHECK_FALSE(error.empty());
  }
}

TEST_CASE("path redirects and rewrites: the full path, or the replaced prefix and what followed it") {
  Fixture f;
  f.gateway("gw", kHttp);
  f.route("infra", "r", R"({"parentRefs": [{"name": "gw"}], "rules": [
      {"matches": [{"path": {"type": "PathPrefix", "value": "/original-prefix"}}],
       "filters": [{"type": "RequestRedirect", "requestRedirect": {"path": {"type": "ReplacePrefixMatch",
                                                                             "replacePrefixMatch": "/replacement-prefix/"}}}]},
      {"matches": [{"path": {"type": "PathPrefix", "value": "/full"}}],
       "filters": [{"type": "RequestRedirect", "requestRedirect": {"hostname": "example.org", "port": 8083, "statusCode": 301,
                    "path": {"type": "ReplaceFullPath", "replaceFullPath": "/full-path-replacement"}}}]},
      {"matches": [{"path": {"type": "PathPrefix", "value": "/strip"}}],
       "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}],
       "backendRefs": [{"name": "web", "port": 8080}]},
      {"matches": [{"path": {"type": "PathPrefix", "value": "/dollar"}}],
       "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplaceFullPath", "replaceFullPath": "/$uri"}}}],
       "backendRefs": [{"name": "web", "port": 8080}]}]})");
  CompiledTable t = f.compile();
  // A path with '$' would be read as a template: the route is refused rather than misread.
  const auto* status = route_status(t, "r");
  REQUIRE(status != nullptr);
  CHECK(find(status->parents[0].conditions, "Accepted")->reason == "UnsupportedValue");
  f.route("infra", "r", R"({"parentRefs": [{"name": "gw"}], "rules": [
      {"matches": [{"path": {"type": "PathPrefix", "value": "/original-prefix"}}],
       "filters": [{"type": "RequestRedirect", "requestRedirect": {"path": {"type": "ReplacePrefixMatch",
                                                                             "replacePrefixMatch": "/replacement-prefix/"}}}]},
      {"matches": [{"path": {"type": "PathPrefix", "value": "/full"}}],
       "filters": [{"type": "RequestRedirect", "requestRedirect": {"hostname": "example.org", "port": 8083, "statusCode": 301,
                    "path": {"type": "ReplaceFullPath", "replaceFullPath": "/full-path-replacement"}}}]},
      {"matches": [{"path": {"type": "PathPrefix", "value": "/strip"}}],
       "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}],
       "backendRefs": [{"name": "web", "port": 8080}]}]})");
  t = f.compile();
  REQUIRE(t.model.rules.size() == 3);
  CHECK(t.model.rules[0].policies.at(0).a == "$scheme://$host/replacement-prefix$prefix_rest$is_args$args");
  CHECK(t.model.rules[1].policies.at(0).code == 301);
  CHECK(t.model.rules[1].policies.at(0).a == "$scheme://example.org:8083/full-path-replacement$is_args$args");
  CHECK(t.model.rules[2].policies.at(0).kind == PolicyKind::kRewrite);
  CHECK(t.model.rules[2].policies.at(0).a == "$prefix_rest_or_slash");
}

TEST_CASE("with a listener port of its own, a redirect without scheme or port takes the listener's") {
  Fixture f;
  f.options.gateway.http_ports = {80, 8080};
  gateway::Slot slot;
  std::string error;
  REQUIRE(gateway::parse_slot("10.1.0.1", slot, error));
  f.options.gateway.slots = {slot};
  f.gateway("gw", R"([{"name": "http", "port": 80, "protocol": "HTTP"}, {"name": "alt", "port": 8080, "protocol": "HTTP"}])");
  f.route("infra", "r", R"({"parentRefs": [{"name": "gw"}], "rules": [
      {"matches": [{"path": {"type": "PathPrefix", "value": "/nil"}}],
       "filters": [{"type": "RequestRedirect", "requestRedirect": {"hostname": "example.org"}}]},
      {"matches": [{"path": {"type": "PathPrefix", "value": "/to-https"}}],
       "filters": [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "hostname": "example.org"}}]}]})");
  const CompiledTable t = f.compile();
  std::set<std::string> locations;
  for (const Rule& r : t.model.rules) {
    locations.insert(t.model.scopes.at(r.scope - 1).name + " " + r.path + " " + r.policies.at(0).a);
  }
  CHECK(locations == std::set<std::string>{
                         "gateway infra/gw port 80 /nil http://example.org$request_uri",
                         "gateway infra/gw port 80 /to-https https://example.org$request_uri",
                         "gateway infra/gw port 8080 /nil http://example.org:8080$request_uri",
                         "gateway infra/gw port 8080 /to-https https://example.org$request_uri"});
}

TEST_CASE("a name that a more specific listener of the port takes is not served through a broader one") {
  Fixture f;
  f.gateway("gw", R"([{"name": "empty", "port": 80, "protocol": "HTTP"},
                      {"name": "wild", "port": 80, "protocol": "HTTP", "hostname": "*.foo.example.com"}])");
  f.route("infra", "r", R"({"parentRefs": [{"name": "gw", "sectionName": "empty"}],
      "hostnames": ["bar.foo.example.com", "other.example.com", "*.foo.example.com", "*.example.com"],
      "rules": [{"backendRefs": [{"name": "web", "port": 8080}]}]})");
  const CompiledTable t = f.compile();
  std::set<std::string> hosts;
  for (const Rule& r : t.model.rules) hosts.insert(r.host);
  CHECK(hosts == std::set<std::string>{"other.example.com", "*.example.com"});
}

TEST_CASE("Gateway API durations: one to four parts of up to five digits and h, m, s or ms") {
  CHECK(gateway::duration_ms("500ms") == 500u);
  CHECK(gateway::duration_ms("1h30m") == 5400000u);
  CHECK(gateway::duration_ms("1h2m3s4ms") == 3723004u);
  CHECK(gateway::duration_ms("0s") == 0u);
  CHECK(gateway::duration_ms("99999s") == 99999000u);
  CHECK_FALSE(gateway::duration_ms(""));
  CHECK_FALSE(gateway::duration_ms("100000s"));   // six digits
  CHECK_FALSE(gateway::duration_ms("1s1s1s1s1s"));  // five parts
  CHECK_FALSE(gateway::duration_ms("1.5s"));
  CHECK_FALSE(gateway::duration_ms("10"));
  CHECK_FALSE(gateway::duration_ms("1d"));
  CHECK_FALSE(gateway::duration_ms("-1s"));
}

TEST_CASE("timeouts: each try's waits by backendRequest (else request), no new try after request; 0s is off") {
  using policy::ProxySetting;
  Fixture f;
  f.gateway("gw", kHttp);
  f.route("infra", "r", R"({"parentRefs": [{"name": "gw"}], "rules": [
      {"matches": [{"path": {"type": "PathPrefix", "value": "/request"}}], "timeouts": {"request": "500ms"},
       "backendRefs": [{"name": "web", "port": 8080}]},
      {"matches": [{"path": {"type": "PathPrefix", "value": "/both"}}],
       "timeouts": {"request": "2s", "backendRequest": "1s"}, "backendRefs": [{"name": "web", "port": 8080}]},
      {"matches": [{"path": {"type": "PathPrefix", "value": "/off"}}], "timeouts": {"request": "0s"},
       "backendRefs": [{"name": "web", "port": 8080}]},
      {"matches": [{"path": {"type": "PathPrefix", "value": "/none"}}], "backendRefs": [{"name": "web", "port": 8080}]}]})");
  CompiledTable t = f.compile();
  REQUIRE(t.model.rules.size() == 4);
  const auto setting = [&](std::size_t rule, ProxySetting which) { return proxy_setting_of(t, rule, which); };
  CHECK(setting(0, ProxySetting::kConnectTimeout) == 500u);
  CHECK(setting(0, ProxySetting::kSendTimeout) == 500u);
  CHECK(setting(0, ProxySetting::kReadTimeout) == 500u);
  CHECK(setting(0, ProxySetting::kNextUpstreamTimeout) == 500u);
  CHECK(setting(1, ProxySetting::kReadTimeout) == 1000u);
  CHECK(setting(1, ProxySetting::kNextUpstreamTimeout) == 2000u);
  // Off: nginx has no "no timeout", so the waits are the longest a proxy setting takes.
  CHECK_FALSE(setting(2, ProxySetting::kConnectTimeout));
  CHECK(setting(2, ProxySetting::kReadTimeout) == policy::kMaxProxyTimeoutMs);
  CHECK_FALSE(setting(2, ProxySetting::kNextUpstreamTimeout));
  CHECK(t.model.rules[3].policies.empty());
  CHECK(find(route_status(t, "r")->parents[0].conditions, "Accepted")->status == "True");

  // A duration the CRD's pattern would refuse (an older CRD, or none) is an unsupported value.
  f.route("infra", "r", R"({"parentRefs": [{"name": "gw"}], "rules": [{"timeouts": {"request": "1.5s"},
      "backendRefs": [{"name": "web", "port": 8080}]}]})");
  t = f.compile();
  const auto* accepted = find(route_status(t, "r")->parents[0].conditions, "Accepted");
  CHECK(accepted->reason == "UnsupportedValue");
  CHECK(accepted->message.find("timeouts.request") != std::string::npos);
}

TEST_CASE("retry: errors, timeouts and the codes retried attempts times, repeating endpoints; other codes unsupported") {
  using policy::ProxySetting;
  Fixture f;
  f.gateway("gw", kHttp);
  f.route("infra", "r", R"({"parentRefs": [{"name": "gw"}], "rules": [
      {"matches": [{"path": {"type": "PathPrefix", "value": "/three"}}], "retry": {"codes": [500], "attempts": 3},
       "backendRefs": [{"name": "web", "port": 8080}]},
      {"matches": [{"path": {"type": "PathPrefix", "value": "/all"}}],
       "retry": {"codes": [500, 502, 503, 504, 429], "backoff": "100ms"}, "backendRefs": [{"name": "web", "port": 8080}]},
      {"matches": [{"path": {"type": "PathPrefix", "value": "/empty"}}], "retry": {},
       "backendRefs": [{"name": "web", "port": 8080}]},
      {"matches": [{"path": {"type": "PathPrefix", "value": "/none"}}], "backendRefs": [{"name": "web", "port": 8080}]}]})");
  CompiledTable t = f.compile();
  REQUIRE(t.model.rules.size() == 4);
  const auto setting = [&](std::size_t rule, ProxySetting which) { return proxy_setting_of(t, rule, which); };
  const std::uint64_t always = policy::kNextError | policy::kNextTimeout | policy::kNextRepeat;
  CHECK(setting(0, ProxySetting::kNextUpstream) == (always | policy::kNextHttp500));
  CHECK(setting(0, ProxySetting::kNextUpstreamTries) == 4u);  // the first try and three retries
  CHECK(setting(1, ProxySetting::kNextUpstream) == (always | policy::kNextHttp500 | policy::kNextHttp502 |
                                                    policy::kNextHttp503 | policy::kNextHttp504 | policy::kNextHttp429));
  CHECK(setting(1, ProxySetting::kNextUpstreamTries) == 3u);  // attempts not given: two retries
  CHECK(setting(2, ProxySetting::kNextUpstream) == always);
  CHECK(t.model.rules[3].policies.empty());
  CHECK(find(route_status(t, "r")->parents[0].conditions, "Accepted")->status == "True");
  // Every record is one the table takes.
  for (const auto& rule : t.model.rules) {
    for (const PolicyRecord& p : rule.policies) CHECK(policy::check_proxy_setting(p, false).empty());
  }

  // A code nginx cannot retry, or a backoff that is not a duration, is an unsupported value.
  for (const char* retry : {R"({"codes": [500, 418]})", R"({"backoff": "1.5s"})"}) {
    f.route("infra", "r", std::string(R"({"parentRefs": [{"name": "gw"}], "rules": [{"retry": )") + retry +
                              R"(, "backendRefs": [{"name": "web", "port": 8080}]}]})");
    t = f.compile();
    const auto* accepted = find(route_status(t, "r")->parents[0].conditions, "Accepted");
    CHECK(accepted->reason == "UnsupportedValue");
    CHECK(accepted->message.find("retry") != std::string::npos);
    CHECK(t.model.rules.empty());
  }
}

TEST_CASE("CORS: a kCors record with the Gateway API's wildcards; no origins allow nothing; bad lists unsupported") {
  Fixture f;
  f.gateway("gw", kHttp);
  const auto cors_rule = [](const char* path, const char* cors) {
    return std::string(R"({"matches": [{"path": {"type": "PathPrefix", "value": ")") + path +
           R"("}}], "filters": [{"type": "CORS", "cors": )" + cors + R"(}], "backendRefs": [{"name": "web", "port": 8080}]})";
  };
  f.route("infra", "r", R"({"parentRefs": [{"name": "gw"}], "rules": [)" +
                            cors_rule("/list", R"({"allowOrigins": ["https://www.foo.com", "https://*.bar.com"],
                                "allowMethods": ["GET", "OPTIONS"], "allowHeaders": ["x-header-1", "x-header-2"],
                                "exposeHeaders": ["x-header-3"], "allowCredentials": true, "maxAge": 3600})") + ", " +
                            cors_rule("/any", R"({"allowOrigins": ["*"], "allowMethods": ["*"], "allowHeaders": ["*"],
                                "exposeHeaders": ["*"], "allowCredentials": true})") + ", " +
                            cors_rule("/open", R"({"allowOrigins": ["*"], "exposeHeaders": ["*"]})") + ", " +
                            cors_rule("/nobody", R"({"allowMethods": ["GET"]})") + "]}");
  CompiledTable t = f.compile();
  REQUIRE(t.model.rules.size() == 4);
  CHECK(find(route_status(t, "r")->parents[0].conditions, "Accepted")->status == "True");
  const auto cors_of = [&](std::size_t rule) -> const PolicyRecord* {
    for (const PolicyRecord& p : t.model.rules[rule].policies) {
      if (p.kind == PolicyKind::kCors) return &p;
    }
    return nullptr;
  };
  const std::uint32_t gateway_flags = policy::kCorsAnyDepth | policy::kCorsEcho;
  REQUIRE(cors_of(0) != nullptr);
  CHECK(*cors_of(0) == policy::cors(gateway_flags | policy::kCorsCredentials, "https://www.foo.com https://*.bar.com",
                                    "GET, OPTIONS", "x-header-1, x-header-2", "x-header-3", 3600));
  // With credentials "*" may not be answered: the module echoes origin, method and headers; exposing every
  // header cannot be said at all.
  REQUIRE(cors_of(1) != nullptr);
  CHECK(*cors_of(1) == policy::cors(gateway_flags | policy::kCorsCredentials | policy::kCorsAnyOrigin, "", "*", "*", "", 5));
  REQUIRE(cors_of(2) != nullptr);
  CHECK(*cors_of(2) == policy::cors(gateway_flags | policy::kCorsAnyOrigin, "", "", "", "*", 5));
  CHECK(cors_of(3) == nullptr);
  for (std::size_t i = 0; i < 3; ++i) CHECK(policy::check_record(*cors_of(i), false) == "");

  // An origin or a header name the table cannot hold makes the route unsupported, not silently open.
  for (const char* cors : {R"({"allowOrigins": ["https://*"]})", R"({"allowOrigins": ["*"], "allowHeaders": ["x.y"]})"}) {
    f.route("infra", "r", R"({"parentRefs": [{"name": "gw"}], "rules": [)" + cors_rule("/bad", cors) + "]}");
    t = f.compile();
    const auto* accepted = find(route_status(t, "r")->parents[0].conditions, "Accepted");
    CHECK(accepted->reason == "UnsupportedValue");
    CHECK(accepted->message.find("CORS") != std::string::npos);
  }
}

TEST_CASE("a backendRef's header filters are records of its backend; its other filters are unsupported") {
  Fixture f;
  f.service("infra", "v2", 8080);
  f.gateway("gw", kHttp);
  f.route("infra", "r", R"({"parentRefs": [{"name": "gw"}], "rules": [{
      "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "All", "value": "1"}]}}],
      "backendRefs": [
        {"name": "web", "port": 8080, "filters": [{"type": "RequestHeaderModifier",
          "requestHeaderModifier": {"set": [{"name": "Backend", "value": "web"}]}}]},
        {"name": "v2", "port": 8080, "filters": [{"type": "ResponseHeaderModifier",
          "responseHeaderModifier": {"remove": ["Server"]}}]}]}]})");
  CompiledTable t = f.compile();
  REQUIRE(t.model.rules.size() == 1);
  const auto& policies = t.model.rules[0].policies;
  std::vector<std::uint32_t> split_backends;
  for (const PolicyRecord& p : policies) {
    if (p.kind == PolicyKind::kSplit) split_backends.push_back(p.backend);
  }
  REQUIRE(split_backends.size() == 2);
  const auto record = [&](PolicyKind kind, const std::string& name) -> const PolicyRecord* {
    for (const PolicyRecord& p : policies) {
      if (p.kind == kind && p.a == name) return &p;
    }
    return nullptr;
  };
  REQUIRE(record(PolicyKind::kRequestHeader, "All") != nullptr);
  CHECK(record(PolicyKind::kRequestHeader, "All")->backend == kNoRecordBackend);
  REQUIRE(record(PolicyKind::kRequestHeader, "Backend") != nullptr);
  CHECK(record(PolicyKind::kRequestHeader, "Backend")->backend == split_backends[0]);
  REQUIRE(record(PolicyKind::kResponseHeader, "Server") != nullptr);
  CHECK(record(PolicyKind::kResponseHeader, "Server")->backend == split_backends[1]);
  CHECK(split_backends[0] != split_backends[1]);

  f.route("infra", "r", R"({"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [
      {"name": "web", "port": 8080, "filters": [{"type": "URLRewrite", "urlRewrite": {"hostname": "x.test"}}]}]}]})");
  t = f.compile();
  CHECK(find(route_status(t, "r")->parents[0].conditions, "Accepted")->reason == "UnsupportedValue");
}

TEST_CASE("RequestMirror: a kMirror record per filter, to the Service's backend, in its share of the requests") {
  Fixture f;
  f.service("infra", "copy", 8080);
  f.gateway("gw", kHttp);
  f.route("infra", "r", R"({"parentRefs": [{"name": "gw"}], "rules": [{"filters": [
      {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "copy", "port": 8080}}},
      {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "copy", "port": 8080}, "percent": 35}},
      {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "copy", "port": 8080},
                                                  "fraction": {"numerator": 25, "denominator": 50}}},
      {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "copy", "port": 8080}, "percent": 0}}],
    "backendRefs": [{"name": "web", "port": 8080}]}]})");
  CompiledTable t = f.compile();
  REQUIRE(t.model.rules.size() == 1);
  std::vector<std::uint64_t> shares;
  for (const PolicyRecord& p : t.model.rules[0].policies) {
    if (p.kind != PolicyKind::kMirror) continue;
    shares.push_back(p.value);
    CHECK(p.a == "$request_uri");
    CHECK(p.b.empty());  // the request's Host
    REQUIRE(p.backend < t.model.backends.size());
    CHECK(t.model.backends[p.backend].service == "copy");
    CHECK(policy::check_mirror(p, false).empty());
  }
  CHECK(shares == std::vector<std::uint64_t>{0, 350000, 500000});  // 0: every request; percent 0: no record
  CHECK(find(route_status(t, "r")->parents[0].conditions, "ResolvedRefs")->status == "True");

  // A mirror to a Service of another namespace needs a ReferenceGrant, as a backendRef does.
  f.route("infra", "r", R"({"parentRefs": [{"name": "gw"}], "rules": [{"filters": [
      {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "app", "namespace": "apps", "port": 80}}}],
    "backendRefs": [{"name": "web", "port": 8080}]}]})");
  t = f.compile();
  const auto* refs = find(route_status(t, "r")->parents[0].conditions, "ResolvedRefs");
  CHECK(refs->reason == "RefNotPermitted");
  for (const PolicyRecord& p : t.model.rules.at(0).policies) CHECK(p.kind != PolicyKind::kMirror);
}

TEST_CASE("spec.addresses: a slot's address is given; another type is unsupported, an address not ours unusable") {
  Fixture f;
  use_slots(f, {"10.1.0.1", "10.1.0.2"});
  const auto asking = [&](const std::string& name, const std::string& created, const std::string& addresses) {
    f.add(Kind::kGateway, R"({"metadata": {"name": ")" + name + R"(", "namespace": "infra", "generation": 1,
                              "creationTimestamp": ")" + created + R"("},
                              "spec": {"gatewayClassName": "kroute", "addresses": )" + addresses +
                              R"(, "listeners": )" + std::string(kHttp) + "}}");
  };
  gateway_created(f, "plain", "2024-01-01T00:00:00Z");  // older, but the second slot is asked for
  asking("static", "2024-02-01T00:00:00Z", R"([{"type": "IPAddress", "value": "10.1.0.1"}])");
  asking("fake", "2024-03-01T00:00:00Z", R"([{"type": "test/fake-invalid-type", "value": "x"}, {"value": "10.1.0.2"}])");
  asking("foreign", "2024-04-01T00:00:00Z", R"([{"value": "192.0.2.1"}, {"value": "10.1.0.2"}])");
  asking("late", "2024-05-01T00:00:00Z", R"([{"value": "10.1.0.1"}])");
  f.route("infra", "r", R"({"parentRefs": [{"name": "foreign"}], "rules": [{"backendRefs": [{"name": "web", "port": 8080}]}]})");
  const CompiledTable t = f.compile();
  CHECK(gateway_status(t, "static")->addresses == std::vector<std::string>{"10.1.0.1"});
  CHECK(find(gateway_status(t, "static")->conditions, "Programmed")->status == "True");
  CHECK(gateway_status(t, "plain")->addresses == std::vector<std::string>{"10.1.0.2"});
  const auto reason = [&](const char* name, const char* type) {
    const auto* c = find(gateway_status(t, name)->conditions, type);
    return c == nullptr ? std::string("none") : c->status + " " + c->reason;
  };
  CHECK(reason("fake", "Accepted") == "False UnsupportedAddress");
  CHECK(reason("foreign", "Accepted") == "True Accepted");
  CHECK(reason("foreign", "Programmed") == "False AddressNotUsable");
  CHECK(reason("late", "Programmed") == "False AddressNotUsable");  // the older Gateway asked first
  for (const char* name : {"fake", "foreign", "late"}) CHECK(gateway_status(t, name)->addresses.empty());
  CHECK(t.model.rules.empty());  // a Gateway without its address is not served
}
