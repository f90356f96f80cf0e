// kroute-table's JSON description: a valid one becomes a model; every mistake names its field.
#include <doctest.h>

#include <algorithm>
#include <memory>
#include <string>

#include "description.h"
#include "path_patterns.h"
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
  // The model carries ssl-redirect's conditional record; the builder keeps it where the host has TLS.
  const std::vector<kroute::PolicyRecord> https{kroute::policy::https_redirect(false, true)};
  CHECK(rules[0].policies == https);
  CHECK(rules[1].policies == https);
  CHECK(rules[2].policies.empty());
  const auto built = kroute::build_snapshot(r.description.model);
  kroute::SnapshotView view;
  REQUIRE(kroute::SnapshotView::open(built.bytes, view).ok);
  const auto secure = view.policies(view.lookup("shop.com", "/").rule->policies);
  REQUIRE(secure.size() == 1);
  CHECK(secure[0].kind == kroute::format::PolicyKind::kRedirect);
  CHECK(secure[0].code == 308);
  CHECK(secure[0].flags == (kroute::policy::kOnlyPlainHttp | kroute::policy::kTrimTrailingSlash));
  CHECK(view.str(secure[0].a) == "https://$host$request_uri");
  CHECK(view.lookup("plain.com", "/").rule->policies == kroute::format::kNone);
}

namespace {

// A description's snapshot and its compiled regex paths, for lookups as the module makes them.
struct Built {
  explicit Built(const kroute::RouteModel& model) : result(kroute::build_snapshot(model)) {
    REQUIRE(kroute::SnapshotView::open(result.bytes, view).ok);
    patterns = std::make_unique<kroute::PathPatterns>(view, cache);
  }
  kroute::BuildResult result;
  kroute::SnapshotView view;
  kroute::PatternCache cache;
  std::unique_ptr<kroute::PathPatterns> patterns;
};

constexpr const char* kWeb = R"j("backends": [{"name": "web", "namespace": "shop", "service": "web", "port": 80}])j";

}  // namespace

TEST_CASE("annotations: use-regex and rewrite-target make regex paths that rewrite upstream") {
  const auto r = parse_description(std::string("{") + kWeb + R"j(,
    "ingresses": [{"namespace": "shop", "name": "api",
                   "annotations": {"nginx.ingress.kubernetes.io/use-regex": "true",
                                   "nginx.ingress.kubernetes.io/rewrite-target": "/$1",
                                   "kroute.dev/upstream-vhost": "internal.shop",
                                   "nginx.ingress.kubernetes.io/x-forwarded-prefix": "/api",
                                   "example.com/not-ours": "anything"},
                   "rules": [{"host": "shop.com",
                              "paths": [{"path": "/api/v[0-9]+/(.*)", "pathType": "ImplementationSpecific",
                                         "backend": "web"}]}]}]})j");
  REQUIRE(r.errors.empty());
  Built built(r.description.model);
  REQUIRE(built.result.diagnostics.empty());
  CHECK(built.patterns->compiled() == 1);
  kroute::PathCaptures captures;
  const auto match = built.view.lookup("shop.com", "/API/v2/orders/7", built.patterns.get(), &captures);
  REQUIRE(match.rule != nullptr);
  CHECK((match.host->flags & kroute::format::kRegexPaths) != 0);
  REQUIRE(captures.count == 2);
  CHECK(std::string_view("/API/v2/orders/7").substr(captures.spans[2], captures.spans[3] - captures.spans[2]) == "orders/7");
  const auto records = built.view.policies(match.rule->policies);
  REQUIRE(records.size() == 3);
  CHECK(records[0].kind == kroute::format::PolicyKind::kRewrite);
  CHECK(built.view.str(records[0].a) == "/$1");
  CHECK(records[1].kind == kroute::format::PolicyKind::kUpstreamHost);
  CHECK(built.view.str(records[1].a) == "internal.shop");
  CHECK(records[2].kind == kroute::format::PolicyKind::kForwardedPrefix);
  CHECK(built.view.str(records[2].a) == "/api");
  CHECK(built.view.lookup("shop.com", "/other", built.patterns.get()).rule == nullptr);
}

TEST_CASE("annotations: a redirect rule answers with its code and URL") {
  const auto r = parse_description(std::string("{") + kWeb + R"j(,
    "ingresses": [{"namespace": "shop", "name": "moved",
                   "annotations": {"nginx.ingress.kubernetes.io/permanent-redirect": "https://new.shop/$request_uri",
                                   "nginx.ingress.kubernetes.io/permanent-redirect-code": "308"},
                   "rules": [{"host": "old.shop", "paths": [{"path": "/", "pathType": "Prefix", "backend": "web"}]}]}]})j");
  REQUIRE(r.errors.empty());
  Built built(r.description.model);
  const auto match = built.view.lookup("old.shop", "/a/b", built.patterns.get());
  REQUIRE(match.rule != nullptr);
  CHECK((match.host->flags & kroute::format::kRegexPaths) == 0);
  const auto records = built.view.policies(match.rule->policies);
  REQUIRE(records.size() == 1);
  CHECK(records[0].kind == kroute::format::PolicyKind::kRedirect);
  CHECK(records[0].code == 308);
  CHECK(built.view.str(records[0].a) == "https://new.shop/$request_uri");
}

TEST_CASE("annotations: server-alias routes another name, app-root redirects the host's /") {
  const auto r = parse_description(std::string("{") + kWeb + R"j(,
    "ingresses": [{"namespace": "shop", "name": "front",
                   "annotations": {"nginx.ingress.kubernetes.io/server-alias": "www.shop.com, shop.example",
                                   "nginx.ingress.kubernetes.io/app-root": "/app"},
                   "rules": [{"host": "shop.com", "paths": [{"path": "/", "pathType": "Prefix", "backend": "web"}]}]}]})j");
  REQUIRE(r.errors.empty());
  const auto& m = r.description.model;
  REQUIRE(m.aliases.size() == 2);
  CHECK(m.aliases[1].alias == "shop.example");
  CHECK(m.aliases[1].host == "shop.com");
  Built built(m);
  REQUIRE(built.result.diagnostics.empty());
  for (const std::string name : {"shop.com", "www.shop.com", "shop.example"}) {
    CAPTURE(name);
    const auto match = built.view.lookup(name, "/", built.patterns.get());
    REQUIRE(match.rule != nullptr);
    CHECK(match.rule->policies == kroute::format::kNone);
    REQUIRE(match.server != nullptr);
    const auto host_records = built.view.policies(match.server->policies);
    REQUIRE(host_records.size() == 1);
    CHECK(host_records[0].kind == kroute::format::PolicyKind::kRedirect);
    CHECK(host_records[0].code == 302);
    CHECK(host_records[0].flags == kroute::policy::kOnlyRoot);
    CHECK(built.view.str(host_records[0].a) == "$scheme://$http_host/app");
  }
  CHECK(built.view.lookup("other.com", "/", built.patterns.get()).rule == nullptr);
}

TEST_CASE("annotations: invalid values are errors naming the annotation; unknown names are ignored") {
  const auto r = parse_description(std::string("{") + kWeb + R"j(,
    "ingresses": [{"namespace": "shop", "name": "front", "sslRedirect": true,
                   "annotations": {"nginx.ingress.kubernetes.io/permanent-redirect-code": "299",
                                   "nginx.ingress.kubernetes.io/configuration-snippet": "return 200;",
                                   "nginx.ingress.kubernetes.io/ssl-redirect": "false",
                                   "nginx.ingress.kubernetes.io/no-such-annotation": "x",
                                   "kroute.dev/use-regex": 1},
                   "rules": [{"host": "shop.com", "paths": [{"pathType": "Prefix", "backend": "web"}]}]},
                  {"namespace": "shop", "name": "b", "annotations": ["x"]}]})j");
  CHECK(has_error(r, "ingresses[0].annotations[\"nginx.ingress.kubernetes.io/permanent-redirect-code\"]: "
                     "\"299\" is not a redirect code (300-308)"));
  CHECK(has_error(r, "ingresses[0].annotations[\"kroute.dev/use-regex\"]: must be a string"));
  CHECK(has_error(r, "ingresses[0].sslRedirect: give it or the annotation nginx.ingress.kubernetes.io/ssl-redirect, not both"));
  CHECK(has_error(r, "ingresses[1].annotations: must be an object of strings"));
  CHECK(std::any_of(r.errors.begin(), r.errors.end(), [](const std::string& e) {
    return e.starts_with("ingresses[0].annotations[\"nginx.ingress.kubernetes.io/configuration-snippet\"]: refused: ");
  }));
  CHECK(r.errors.size() == 5);
}

TEST_CASE("annotations: auth-tls-secret is an error (descriptions carry no Secret to take the CA from)") {
  const auto r = parse_description(std::string("{") + kWeb + R"j(,
    "ingresses": [{"namespace": "shop", "name": "front",
                   "annotations": {"nginx.ingress.kubernetes.io/auth-tls-secret": "shop/ca"},
                   "rules": [{"host": "shop.com", "paths": [{"pathType": "Prefix", "backend": "web"}]}]}]})j");
  CHECK(has_error(r, "ingresses[0].annotations[\"nginx.ingress.kubernetes.io/auth-tls-secret\"]: needs the Secret's "
                     "ca.crt, which a description cannot give"));
}

TEST_CASE("sslRedirect false is the annotation ssl-redirect \"false\"") {
  const auto description = [](const std::string& opt_out) {
    return parse_description(std::string("{") + kWeb + R"j(, "ingresses": [{"namespace": "shop", "name": "a", )j" + opt_out +
                             R"j("tls": [{"hosts": ["*.shop.com"], "secretName": "t"}],
                                "rules": [{"host": "a.shop.com", "paths": [{"pathType": "Prefix", "backend": "web"}]}]}]})j");
  };
  const auto redirected = description("");
  REQUIRE(redirected.errors.empty());
  CHECK(redirected.description.model.rules[0].policies ==
        std::vector<kroute::PolicyRecord>{kroute::policy::https_redirect(false, true)});
  for (const char* opt_out : {R"j("sslRedirect": false, )j",
                              R"j("annotations": {"nginx.ingress.kubernetes.io/ssl-redirect": "false"}, )j"}) {
    CAPTURE(opt_out);
    const auto r = description(opt_out);
    REQUIRE(r.errors.empty());
    CHECK(r.description.model.rules[0].policies.empty());
  }
}

TEST_CASE("a path's match conditions and policy records, as the table holds them") {
  const auto r = parse_description(R"({
    "backends": [{"name": "v1", "namespace": "gw", "service": "v1", "port": 80},
                 {"name": "v2", "namespace": "gw", "service": "v2", "port": 80}],
    "ingresses": [{"namespace": "gw", "name": "route", "sslRedirect": false,
                   "rules": [{"host": "a.com", "paths": [
                     {"path": "/", "pathType": "Prefix", "backend": "v1",
                      "conditions": [{"method": "GET"}, {"header": "Version", "value": "two"},
                                     {"header": "X", "regex": "a.*"}, {"query": "q", "value": "1"},
                                     {"query": "id", "regex": "[0-9]+"}],
                      "policies": [{"kind": "split", "backend": "v2", "value": 3}, {"kind": "split", "value": 1},
                                   {"kind": "request-header", "code": "add", "a": "X-A", "b": "1"},
                                   {"kind": "response-header", "code": 3, "a": "Server"}]}]}]}]})");
  REQUIRE(r.errors.empty());
  const auto& rule = r.description.model.rules.at(0);
  using kroute::ConditionKind;
  const std::vector<kroute::MatchCondition> expected = {{ConditionKind::kMethod, "", "GET"},
                                                        {ConditionKind::kHeaderExact, "Version", "two"},
                                                        {ConditionKind::kHeaderRegex, "X", "a.*"},
                                                        {ConditionKind::kQueryExact, "q", "1"},
                                                        {ConditionKind::kQueryRegex, "id", "[0-9]+"}};
  CHECK(rule.conditions == expected);
  REQUIRE(rule.policies.size() == 4);
  CHECK(rule.policies[0].kind == kroute::PolicyKind::kSplit);
  CHECK(rule.policies[0].backend == 1);
  CHECK(rule.policies[0].value == 3);
  CHECK(rule.policies[1].backend == kroute::kNoRecordBackend);
  CHECK(rule.policies[2].code == 2);
  CHECK(rule.policies[2].a == "X-A");
  CHECK(rule.policies[3].kind == kroute::PolicyKind::kResponseHeader);
  CHECK(rule.policies[3].code == 3);
}

TEST_CASE("mistakes in conditions and records name their field") {
  const auto r = parse_description(R"({
    "backends": [{"name": "v1", "namespace": "gw", "service": "v1", "port": 80}],
    "ingresses": [{"namespace": "gw", "name": "route",
                   "rules": [{"host": "a.com", "paths": [
                     {"path": "/", "pathType": "Prefix", "backend": "v1",
                      "conditions": [{"method": "GET", "header": "x"}, {"header": "x"}, {"query": "q", "value": "1", "regex": "1"},
                                     {"colour": "red"}],
                      "policies": [{"kind": "teleport"}, {"kind": "request-header", "code": "replace"},
                                   {"kind": "split", "backend": "v9"}]}]}]}]})");
  const std::string at = "ingresses[0].rules[0].paths[0].";
  CHECK(has_error(r, at + "conditions[0]: needs exactly one of method, header or query"));
  CHECK(has_error(r, at + "conditions[1]: needs exactly one of value or regex"));
  CHECK(has_error(r, at + "conditions[2]: needs exactly one of value or regex"));
  CHECK(has_error(r, at + "conditions[3].colour: unknown field"));
  CHECK(has_error(r, at + "policies[0].kind: no policy kind \"teleport\""));
  CHECK(has_error(r, at + "policies[1].code: \"replace\" is not a code of request-header"));
  CHECK(has_error(r, at + "policies[2].backend: no backend named \"v9\""));
}

TEST_CASE("scopes: defined at the top, named by Ingresses, rules, TLS entries and host policies") {
  const auto r = parse_description(R"({
    "scopes": [{"name": "gateway infra/a", "locals": [{"address": "127.0.0.2", "port": 8080}, {"port": 8443}],
                "defaultCertificate": {"certificate": "CHAIN", "key": "KEY"}},
               {"name": "gateway infra/b", "locals": [{"address": "fd00::2"}], "listenerNames": ["", "*.shop.com"]}],
    "backends": [{"name": "web", "namespace": "shop", "service": "web", "port": 80}],
    "ingresses": [{"namespace": "gw", "name": "route-a", "scope": 1,
                   "rules": [{"host": "shop.com", "paths": [{"path": "/", "pathType": "Prefix", "backend": "web"}]},
                             {"host": "shop.com", "scope": 2,
                              "paths": [{"path": "/", "pathType": "Prefix", "backend": "web"}]}],
                   "tls": [{"hosts": ["shop.com"], "secretName": "a"}, {"hosts": ["shop.com"], "secretName": "b", "scope": 0}],
                   "hostPolicies": [{"host": "shop.com", "policies": [{"kind": "server-name", "a": "shop.com"}]},
                                    {"host": "shop.com", "scope": 2, "policies": [{"kind": "server-name", "a": "*.com"}]}]},
                  {"namespace": "shop", "name": "plain",
                   "rules": [{"host": "shop.com", "paths": [{"path": "/", "pathType": "Prefix", "backend": "web"}]}]}]})");
  REQUIRE(r.errors.empty());
  const auto& m = r.description.model;
  REQUIRE(m.scopes.size() == 2);
  CHECK(m.scopes[0].name == "gateway infra/a");
  CHECK(m.scopes[0].locals == std::vector<kroute::LocalAddress>{{"127.0.0.2", 8080}, {"", 8443}});
  CHECK(m.scopes[0].default_certificate.chain_pem == "CHAIN");
  CHECK(m.scopes[1].locals == std::vector<kroute::LocalAddress>{{"fd00::2", 0}});
  CHECK(m.scopes[0].listener_names.empty());
  CHECK(m.scopes[1].listener_names == std::vector<std::string>{"", "*.shop.com"});
  REQUIRE(m.rules.size() == 3);
  CHECK(m.rules[0].scope == 1);
  CHECK(m.rules[1].scope == 2);
  CHECK(m.rules[2].scope == kroute::kSharedScope);
  REQUIRE(m.tls.size() == 2);
  CHECK(m.tls[0].scope == 1);
  CHECK(m.tls[1].scope == kroute::kSharedScope);
  REQUIRE(m.host_policies.size() == 2);
  CHECK(m.host_policies[0].scope == 1);
  CHECK(m.host_policies[1].scope == 2);
  CHECK(m.host_policies[1].records[0].kind == kroute::PolicyKind::kServerName);
  CHECK(r.description.host_policy_fields[1] == "ingresses[0].hostPolicies[1]");
  const auto built = kroute::build_snapshot(m);
  CHECK(built.diagnostics.empty());
  CHECK(built.conflicts.empty());
  CHECK(built.stats.hosts == 3);
}

TEST_CASE("scopes: mistakes name their field, the builder's too") {
  const auto r = parse_description(R"({
    "scopes": [{"name": "a", "locals": [{"address": "127.0.0.2", "port": 70000}], "colour": 1},
               {"name": "b", "listenerNames": "a.com"},
               {"name": "c", "locals": [{"address": "gateway.local"}, {"address": "10.0.0.1"}], "listenerNames": [1]}],
    "backends": [{"name": "web", "namespace": "shop", "service": "web", "port": 80}],
    "ingresses": [{"namespace": "gw", "name": "route", "scope": "one",
                   "rules": [{"host": "shop.com", "scope": 4, "paths": [{"path": "/", "pathType": "Prefix", "backend": "web"}]}],
                   "hostPolicies": [{"host": "shop.com", "policies": [{"kind": "server-name", "a": "a..com"}]},
                                    {"host": "x.com"}]},
                  {"namespace": "gw", "name": "aliased", "scope": 3,
                   "annotations": {"nginx.ingress.kubernetes.io/server-alias": "other.com"},
                   "rules": [{"host": "shop.com", "paths": [{"path": "/x", "pathType": "Prefix", "backend": "web"}]}]}]})");
  CHECK(has_error(r, "scopes[0].locals[0].port: must be an integer from 0 to 65535"));
  CHECK(has_error(r, "scopes[0].colour: unknown field"));
  CHECK(has_error(r, "scopes[1].locals: is required"));
  CHECK(has_error(r, "scopes[1].listenerNames: must be an array"));
  CHECK(has_error(r, "scopes[2].listenerNames[0]: must be a string"));
  CHECK(has_error(r, "ingresses[0].scope: must be an integer from 0 to 65535"));
  CHECK(has_error(r, "ingresses[0].hostPolicies[1].policies: is required"));
  CHECK(has_error(r, "ingresses[1].annotations: host aliases (server-alias) are of the shared scope; this Ingress is in scope 3"));
  const auto built = kroute::build_snapshot(r.description.model);
  std::vector<std::string> described;
  for (const auto& d : built.diagnostics) described.push_back(kroute::describe(r.description, d));
  const auto described_has = [&](const std::string& text) {
    return std::find(described.begin(), described.end(), text) != described.end();
  };
  CHECK(described_has("scopes[2].locals[0]: local address is neither \"\" (any) nor an IPv4 or IPv6 address: gateway.local"));
  CHECK(described_has("ingresses[0].rules[0].paths[0]: rule refers to scope 4, but the table has scopes 1 to 3"));
  CHECK(described_has("ingresses[0].hostPolicies[0]: server-name policy: host has an empty label"));
}
