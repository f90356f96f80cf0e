// kroute-table's JSON description: a valid one becomes a model; every mistake names its field.
#include <doctest.h>

#include <algorithm>
#include <string>

#include "description.h"
#include "policy/redirect.h"
#include "snapshot.h"

using kroute::parse_description;

namespace {

bool has_error(const kroute::DescriptionResult& r, const std::string& text) {
  return std::any_of(r.errors.begin(), r.errors.end(), [&](const std::string& e) { return e == text; });
}

}  // namespace

TEST_CASE("a valid description becomes a model") {
  const auto r = parse_description(R"({
    "backends": [{"name": "web", "namespace": "shop", "service": "web", "port": "http",
                  "endpoints": [{"address": "10.1.0.1", "port": 8080, "weight": 2, "ready": false}]}],
    "ingresses": [{"namespace": "shop", "name": "front", "creationTimestamp": "2026-01-02T03:04:05Z",
                   "rules": [{"host": "shop.com", "paths": [{"path": "/", "pathType": "Prefix", "backend": "web"}]},
                             {"paths": [{"pathType": "Exact", "path": "/x", "backend": "web"}]}],
                   "tls": [{"hosts": ["shop.com"], "secretName": "shop-tls"}]}],
    "defaultBackend": "web"})");
  REQUIRE(r.errors.empty());
  const auto& m = r.description.model;
  REQUIRE(m.backends.size() == 1);
  CHECK(m.backends[0].port_name == "http");
  CHECK(m.backends[0].endpoints[0].weight == 2);
  CHECK_FALSE(m.backends[0].endpoints[0].ready);
  REQUIRE(m.sources.size() == 1);
  CHECK(m.sources[0].created_unix == 1767323045);
  REQUIRE(m.rules.size() == 2);
  CHECK(m.rules[1].host.empty());
  CHECK(m.rules[1].type == kroute::PathType::kExact);
  REQUIRE(m.tls.size() == 1);
  CHECK(m.tls[0].secret_ns == "shop");
  CHECK(m.default_backend == 0);
  CHECK(r.description.rule_fields[1] == "ingresses[0].rules[1].paths[0]");
}

TEST_CASE("errors name the field") {
  const auto r = parse_description(R"({
    "backends": [{"name": "web", "namespace": "shop", "service": "web", "port": 0, "endpoints": [{"address": "10.1.0.1"}]},
                 {"name": "web", "namespace": "shop", "service": "x", "port": 1}],
    "ingresses": [{"namespace": "shop", "name": "front", "creationTimestamp": "yesterday", "colour": "red",
                   "rules": [{"host": "shop.com", "paths": [{"path": "/", "pathType": "prefix", "backend": "nope"}]}]}],
    "defaultBackend": 7})");
  CHECK(has_error(r, "backends[0].port: must be a port number (1-65535) or a port name"));
  CHECK(has_error(r, "backends[0].endpoints[0].port: is required"));
  CHECK(has_error(r, "backends[1].name: backend \"web\" is defined twice"));
  CHECK(has_error(r, "ingresses[0].colour: unknown field"));
  CHECK(has_error(r, "ingresses[0].creationTimestamp: must be RFC 3339 UTC (\"2026-01-02T03:04:05Z\") or Unix seconds"));
  CHECK(has_error(r, "ingresses[0].rules[0].paths[0].pathType: must be Exact, Prefix or ImplementationSpecific, not \"prefix\""));
  CHECK(has_error(r, "ingresses[0].rules[0].paths[0].backend: no backend named \"nope\""));
  CHECK(has_error(r, "defaultBackend: must name a backend"));
}

TEST_CASE("bad JSON is one error") {
  const auto r = parse_description("{\"backends\": [}");
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].rfind("(json): ", 0) == 0);
  CHECK(parse_description("[]").errors == std::vector<std::string>{"(top level): must be an object"});
  CHECK(parse_description(R"({"backends": 1})").errors == std::vector<std::string>{"backends: must be an array"});
}

TEST_CASE("builder diagnostics map back to fields") {
  auto r = parse_description(R"({
    "backends": [{"name": "web", "namespace": "shop", "service": "web", "port": 80,
                  "endpoints": [{"address": "10.1.0.300", "port": 80}]}],
    "ingresses": [{"namespace": "shop", "name": "front",
                   "rules": [{"host": "bad_host", "paths": [{"path": "/", "pathType": "Prefix", "backend": "web"}]}]}]})");
  REQUIRE(r.errors.empty());
  const auto built = kroute::build_snapshot(r.description.model);
  REQUIRE(built.diagnostics.size() == 2);
  std::vector<std::string> described;
  for (const auto& d : built.diagnostics) described.push_back(kroute::describe(r.description, d));
  CHECK(std::find(described.begin(), described.end(),
                  "ingresses[0].rules[0].paths[0]: host may contain only letters, digits, '-' and '.'") != described.end());
  CHECK(std::find(described.begin(), described.end(),
                  "backends[0].endpoints[0]: endpoint address is not an IPv4 or IPv6 address: 10.1.0.300") != described.end());
}

TEST_CASE("rules of hosts an Ingress has TLS for redirect to HTTPS unless the Ingress opts out") {
  const auto r = parse_description(R"({
    "backends": [{"name": "web", "namespace": "shop", "service": "web", "port": 80}],
    "ingresses": [
      {"namespace": "shop", "name": "secure", "tls": [{"hosts": ["Shop.com"], "secretName": "t"}],
       "rules": [{"host": "shop.com", "paths": [{"pathType": "Prefix", "backend": "web"}]},
                 {"host": "plain.com", "paths": [{"pathType": "Prefix", "backend": "web"}]}]},
      {"namespace": "shop", "name": "optout", "sslRedirect": false, "tls": [{"hosts": ["b.com"], "secretName": "t"}],
       "rules": [{"host": "b.com", "paths": [{"pathType": "Prefix", "backend": "web"}]}]}]})");
  REQUIRE(r.errors.empty());
  const auto& rules = r.description.model.rules;
  REQUIRE(rules.size() == 3);
  const std::vector<kroute::PolicyRecord> https{kroute::policy::https_redirect(false)};
  CHECK(rules[0].policies == https);
  CHECK(rules[1].policies.empty());
  CHECK(rules[2].policies.empty());
  const auto built = kroute::build_snapshot(r.description.model);
  kroute::SnapshotView view;
  REQUIRE(kroute::SnapshotView::open(built.bytes, view).ok);
  const auto secure = view.policies(view.lookup("shop.com", "/").rule->policies);
  REQUIRE(secure.size() == 1);
  CHECK(secure[0].kind == kroute::format::PolicyKind::kRedirect);
  CHECK(secure[0].code == 308);
  CHECK(view.str(secure[0].a) == "https://$host$request_uri");
  CHECK(view.lookup("plain.com", "/").rule->policies == kroute::format::kNone);
}
