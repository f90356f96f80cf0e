// build_snapshot: merging Ingresses, settling collisions, skipping bad input with a diagnostic.
#include <doctest.h>

#include <algorithm>
#include <string>

#include "host.h"
#include "model_builder.h"
#include "publisher.h"

using kroute::Conflict;
using kroute::Endpoint;
using kroute::Item;
using kroute::PathType;
using kroute::testing::BuiltTable;
using kroute::testing::ModelBuilder;

namespace {

bool has_diagnostic(const kroute::BuildResult& r, Item item, const std::string& fragment) {
  return std::any_of(r.diagnostics.begin(), r.diagnostics.end(), [&](const kroute::Diagnostic& d) {
    return d.item == item && d.message.find(fragment) != std::string::npos;
  });
}

}  // namespace

TEST_CASE("rules of several Ingresses on one host merge") {
  ModelBuilder m;
  m.ingress("team-a", "web").prefix("shop.com", "/a", "svc-a");
  m.ingress("team-b", "api").prefix("shop.com", "/b", "svc-b");
  const BuiltTable t(m.model());
  REQUIRE(t.validation.ok);
  CHECK(t.route("shop.com", "/a") == "svc-a");
  CHECK(t.route("shop.com", "/b") == "svc-b");
  CHECK(t.result.conflicts.empty());
  CHECK(t.result.stats.hosts == 1);
  CHECK(t.result.stats.rules == 2);
}

TEST_CASE("a duplicate host + path + type: the oldest Ingress wins and the loser is reported") {
  ModelBuilder m;
  m.ingress("ns", "newer", 2000).prefix("shop.com", "/", "newer-svc");
  m.ingress("ns", "older", 1000).prefix("shop.com", "/", "older-svc");
  const BuiltTable t(m.model());
  CHECK(t.route("shop.com", "/") == "older-svc");
  REQUIRE(t.result.conflicts.size() == 1);
  const Conflict& c = t.result.conflicts[0];
  CHECK(c.item == Item::kRule);
  CHECK(c.winner == 1);
  CHECK(c.loser == 0);
  CHECK(c.host == "shop.com");
  const auto match = t.view.lookup("shop.com", "/");
  CHECK(t.view.str(t.view.source_of(*match.rule).name) == "older");
}

TEST_CASE("same creationTimestamp: namespace/name decides, whatever the input order") {
  for (bool reversed : {false, true}) {
    ModelBuilder m;
    if (reversed) {
      m.ingress("b-ns", "x", 1000).prefix("shop.com", "/p", "from-b");
      m.ingress("a-ns", "z", 1000).prefix("shop.com", "/p", "from-a");
    } else {
      m.ingress("a-ns", "z", 1000).prefix("shop.com", "/p", "from-a");
      m.ingress("b-ns", "x", 1000).prefix("shop.com", "/p", "from-b");
    }
    const BuiltTable t(m.model());
    CHECK(t.route("shop.com", "/p") == "from-a");
    CHECK(t.result.conflicts.size() == 1);
  }
}

TEST_CASE("every shadowed rule and TLS entry is reported against the one that is served, in any input order") {
  // Ages 1 (oldest) to 3; the model lists them youngest first, then oldest first.
  for (bool oldest_first : {false, true}) {
    ModelBuilder m;
    const std::vector<std::pair<std::string, std::int64_t>> ingresses =
        oldest_first ? std::vector<std::pair<std::string, std::int64_t>>{{"old", 1}, {"mid", 2}, {"young", 3}}
                     : std::vector<std::pair<std::string, std::int64_t>>{{"young", 3}, {"mid", 2}, {"old", 1}};
    for (const auto& [name, created] : ingresses) {
      m.ingress("ns", name, created).prefix("shop.com", "/p", name).tls("shop.com", name + "-cert");
    }
    const kroute::RouteModel& model = m.model();
    const BuiltTable t(model);
    CHECK(t.route("shop.com", "/p") == "old");
    REQUIRE(t.result.conflicts.size() == 4);
    for (const Conflict& c : t.result.conflicts) {
      const std::uint32_t winner_source = c.item == Item::kRule ? model.rules[c.winner].source : model.tls[c.winner].source;
      CHECK(model.sources[winner_source].name == "old");
    }
  }
}

TEST_CASE("Prefix /foo and Prefix /foo/ and ImplementationSpecific /foo collide; Exact /foo does not") {
  ModelBuilder m;
  m.ingress("ns", "one", 1).prefix("shop.com", "/foo", "one");
  m.ingress("ns", "two", 2).prefix("shop.com", "/foo/", "two");
  m.ingress("ns", "three", 3).rule("shop.com", "/foo", PathType::kImplementationSpecific, "three");
  m.ingress("ns", "four", 4).exact("shop.com", "/foo", "four");
  const BuiltTable t(m.model());
  CHECK(t.result.conflicts.size() == 2);
  CHECK(t.route("shop.com", "/foo") == "four");
  CHECK(t.route("shop.com", "/foo/x") == "one");
}

TEST_CASE("invalid rules are skipped with a diagnostic; the rest are published") {
  ModelBuilder m;
  m.prefix("good.com", "/", "good");
  m.prefix("bad host.com", "/", "good");
  m.prefix("*.*.com", "/", "good");
  m.prefix("a..b", "/", "good");
  m.prefix("good.com", "relative", "good");
  m.prefix("good.com", "/with space", "good");
  m.prefix("good.com", "/" + std::string(5000, 'x'), "good");
  m.model().rules.push_back({"good.com", "/x", PathType::kPrefix, 99, 0});
  m.model().rules.push_back({"good.com", "/y", PathType::kPrefix, 0, 99});
  const BuiltTable t(m.model());
  REQUIRE(t.validation.ok);
  CHECK(t.route("good.com", "/") == "good");
  CHECK(t.result.stats.rules == 1);
  CHECK(t.result.diagnostics.size() == 8);
  CHECK(has_diagnostic(t.result, Item::kRule, "letters, digits"));
  CHECK(has_diagnostic(t.result, Item::kRule, "wildcard"));
  CHECK(has_diagnostic(t.result, Item::kRule, "empty label"));
  CHECK(has_diagnostic(t.result, Item::kRule, "must start with '/'"));
  CHECK(has_diagnostic(t.result, Item::kRule, "control characters"));
  CHECK(has_diagnostic(t.result, Item::kRule, "longer than 4096"));
  CHECK(has_diagnostic(t.result, Item::kRule, "missing or invalid backend"));
  CHECK(has_diagnostic(t.result, Item::kRule, "missing or invalid source"));
}

TEST_CASE("a broken backend takes only its own rules down") {
  ModelBuilder m;
  m.backend("", {}).prefix("a.com", "/", "good");
  m.model().rules.push_back({"b.com", "/", PathType::kPrefix, 0, 0});
  const BuiltTable t(m.model());
  CHECK(t.route("a.com", "/") == "good");
  CHECK(t.route("b.com", "/") == "404");
  CHECK(has_diagnostic(t.result, Item::kBackend, "namespace and a service"));
}

TEST_CASE("endpoints: bad ones skipped, duplicates removed, ready first, zero weight not ready") {
  ModelBuilder m;
  m.backend("svc", {{"10.0.0.2", 80, 1, false},
                    {"10.0.0.1", 80},
                    {"10.0.0.1", 80},
                    {"not-an-ip", 80},
                    {"10.0.0.3", 0},
                    {"fd00::1", 8080, 5},
                    {"10.0.0.4", 80, 0}});
  m.prefix("a.com", "/", "svc");
  const BuiltTable t(m.model());
  REQUIRE(t.validation.ok);
  const auto match = t.view.lookup("a.com", "/");
  REQUIRE(match.backend != nullptr);
  CHECK(match.backend->endpoint_count == 4);
  CHECK(match.backend->ready_count == 2);
  const auto ready = t.view.ready_endpoints_of(*match.backend);
  CHECK(kroute::endpoint_address(ready[0]) == "10.0.0.1:80");
  CHECK(kroute::endpoint_address(ready[1]) == "[fd00::1]:8080");
  CHECK(ready[1].weight == 5);
  CHECK(ready[1].family == 6);
  CHECK(has_diagnostic(t.result, Item::kEndpoint, "not an IPv4 or IPv6"));
  CHECK(has_diagnostic(t.result, Item::kEndpoint, "port must be"));
}

TEST_CASE("TLS: one Secret per host, oldest Ingress wins") {
  ModelBuilder m;
  m.ingress("ns", "new", 50).tls("shop.com", "new-cert");
  m.ingress("ns", "old", 10).tls("shop.com", "old-cert").tls("*.shop.com", "wild-cert");
  const BuiltTable t(m.model());
  REQUIRE(t.result.conflicts.size() == 1);
  CHECK(t.result.conflicts[0].item == Item::kTls);
  kroute::HostMatch how;
  const auto* host = t.view.find_host("shop.com", how);
  REQUIRE(host != nullptr);
  CHECK(t.view.str(t.view.tls()[host->tls].secret_name) == "old-cert");
  CHECK(t.result.stats.tls == 2);
}

TEST_CASE("the same model builds the same bytes; same_routes ignores generation and build time") {
  ModelBuilder m;
  m.ingress("ns", "b").prefix("b.com", "/", "b").prefix("a.com", "/x", "a");
  m.ingress("ns", "a").exact("c.com", "/y", "c");
  const BuiltTable one(m.model());
  const BuiltTable two(m.model());
  CHECK(one.result.bytes == two.result.bytes);
  auto later = kroute::build_snapshot(m.model(), {1800000000000});
  CHECK(later.bytes != one.result.bytes);
  CHECK(kroute::same_routes(later.bytes, one.result.bytes));
  m.prefix("d.com", "/", "d");
  const BuiltTable changed(m.model());
  CHECK_FALSE(kroute::same_routes(changed.result.bytes, one.result.bytes));
}

TEST_CASE("an empty model builds a valid empty table") {
  const BuiltTable t(kroute::RouteModel{});
  REQUIRE(t.validation.ok);
  CHECK(t.route("any.com", "/") == "404");
}

TEST_CASE("certificates: per host, wildcard, default; unusable ones fall back; rotation changes the fingerprint") {
  ModelBuilder m;
  m.ingress("ns", "shop");
  m.tls("shop.com", "shop-cert").tls("*.shop.com", "wild-cert").tls("broken.shop.com", "broken-cert");
  m.tls("broken.other.com", "broken-cert");
  m.model().tls[0].certificate = {"CHAIN-A", "KEY-A"};
  m.model().tls[1].certificate = {"CHAIN-W", "KEY-W"};
  m.model().default_certificate = {"CHAIN-D", "KEY-D"};
  const BuiltTable t(m.model());
  REQUIRE(t.validation.ok);
  auto chain = [&](std::string_view name) {
    const auto* entry = t.view.certificate_for(name);
    return entry == nullptr ? std::string("none") : std::string(t.view.str(entry->chain_pem));
  };
  CHECK(chain("SHOP.com") == "CHAIN-A");
  CHECK(chain("www.shop.com") == "CHAIN-W");
  CHECK(chain("broken.shop.com") == "CHAIN-W");   // no usable certificate: the wildcard covers it
  CHECK(chain("broken.other.com") == "CHAIN-D");  // no usable certificate, no wildcard: the default
  CHECK(chain("a.b.shop.com") == "CHAIN-D");
  CHECK(chain("") == "CHAIN-D");
  CHECK(t.view.str(t.view.certificate_for("shop.com")->key_pem) == "KEY-A");

  ModelBuilder rotated = m;
  rotated.model().tls[0].certificate = {"CHAIN-A2", "KEY-A2"};
  const BuiltTable r(rotated.model());
  CHECK(r.view.certificate_for("shop.com")->fingerprint != t.view.certificate_for("shop.com")->fingerprint);
  CHECK(r.view.certificate_for("www.shop.com")->fingerprint == t.view.certificate_for("www.shop.com")->fingerprint);
}

TEST_CASE("no default certificate: unknown names get none") {
  ModelBuilder m;
  m.tls("shop.com", "cert");
  m.model().tls[0].certificate = {"C", "K"};
  const BuiltTable t(m.model());
  CHECK(t.view.certificate_for("other.com") == nullptr);
  CHECK(t.view.certificate_for("shop.com") != nullptr);
}

TEST_CASE("a certificate without its key is skipped with a diagnostic") {
  ModelBuilder m;
  m.tls("shop.com", "cert");
  m.model().tls[0].certificate = {"CHAIN", ""};
  const BuiltTable t(m.model());
  CHECK(has_diagnostic(t.result, Item::kTls, "both a certificate chain and a key"));
  CHECK(t.result.stats.tls == 0);
}

TEST_CASE("rule hosts are RFC 1123 names: no label starts or ends with '-'") {
  for (const char* bad : {"-a.com", "a-.com", "a.-b.com", "*.a-.com", "a.com-", "*.-"}) {
    CAPTURE(bad);
    std::string normalized;
    CHECK(kroute::check_rule_host(bad, normalized) == "host must start and end each label with a letter or digit");
  }
  std::string normalized;
  CHECK(kroute::check_rule_host("*.A-b.Example.COM", normalized) == "");
  CHECK(normalized == "*.a-b.example.com");
  CHECK(kroute::check_rule_host("x--y.com", normalized) == "");
  CHECK(kroute::check_rule_host("a.*.com", normalized).find("wildcard") != std::string::npos);

  ModelBuilder m;
  m.prefix("good.com", "/", "good");
  m.prefix("a-.com", "/", "good");
  const BuiltTable t(m.model());
  CHECK(t.result.stats.rules == 1);
  CHECK(has_diagnostic(t.result, Item::kRule, "start and end each label"));
}
