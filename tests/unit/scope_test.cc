// Scopes: host spaces of their own, chosen by the local address a connection arrived on. Lookups,
// certificates and host entries of one scope never see another's; the builder checks what names a scope.
#include <doctest.h>

#include <algorithm>
#include <arpa/inet.h>
#include <string>

#include "hashing.h"
#include "model_builder.h"
#include "policy/redirect.h"

using kroute::Item;
using kroute::LocalAddress;
using kroute::ScopeId;
using kroute::testing::BuiltTable;
using kroute::testing::ModelBuilder;
namespace format = kroute::format;

namespace {

constexpr ScopeId kShared = kroute::kSharedScope;

bool has_diagnostic(const kroute::BuildResult& r, Item item, const std::string& fragment) {
  return std::any_of(r.diagnostics.begin(), r.diagnostics.end(), [&](const kroute::Diagnostic& d) {
    return d.item == item && d.message.find(fragment) != std::string::npos;
  });
}

// Two gateways on their own addresses and the shared scope.
ModelBuilder two_scopes() {
  ModelBuilder m;
  m.scope("gateway infra/a", {{"10.0.0.7", 80}, {"fd00::7", 0}});
  m.scope("gateway infra/b", {{"10.0.0.8", 0}});
  return m;
}

// scope_for with an address as text ("" for none: family 0).
ScopeId scope_of(const BuiltTable& t, const std::string& address, std::uint16_t port) {
  unsigned char bytes[16] = {};
  if (address.empty()) return t.view.scope_for(0, bytes, port);
  if (inet_pton(AF_INET, address.c_str(), bytes) == 1) return t.view.scope_for(4, bytes, port);
  REQUIRE(inet_pton(AF_INET6, address.c_str(), bytes) == 1);
  return t.view.scope_for(6, bytes, port);
}

std::string chain(const BuiltTable& t, std::string_view name, ScopeId scope) {
  const format::TlsEntry* entry = t.view.certificate_for(name, scope);
  return entry == nullptr ? std::string("none") : std::string(t.view.str(entry->chain_pem));
}

}  // namespace

TEST_CASE("the same host in two scopes and the shared one: three hosts, each found only in its scope") {
  ModelBuilder m = two_scopes();
  m.prefix("shop.com", "/", "shared");
  m.in_scope(1).prefix("shop.com", "/", "one").prefix("shop.com", "/cart", "one-cart");
  m.in_scope(2).prefix("shop.com", "/", "two");
  const BuiltTable t(m.model());
  REQUIRE(t.validation.ok);
  CHECK(t.result.conflicts.empty());  // the same host and path in two scopes is no collision
  CHECK(t.result.stats.hosts == 3);
  CHECK(t.route("shop.com", "/x", nullptr, kShared) == "shared");
  CHECK(t.route("shop.com", "/x", nullptr, 1) == "one");
  CHECK(t.route("SHOP.com:80", "/cart/1", nullptr, 1) == "one-cart");
  CHECK(t.route("shop.com", "/cart/1", nullptr, 2) == "two");
  CHECK(t.route("shop.com", "/cart/1", nullptr, kShared) == "shared");
  CHECK(t.route("shop.com", "/", nullptr, 3) == "404");  // a scope the table does not have: nothing
  for (ScopeId scope : {ScopeId{0}, ScopeId{1}, ScopeId{2}}) {
    kroute::HostMatch how;
    const format::HostEntry* host = t.view.find_host("shop.com", how, scope);
    REQUIRE(host != nullptr);
    CHECK(host->scope == scope);
  }
}

TEST_CASE("a host of one scope is not found from the others, nor a shared host from a scope") {
  ModelBuilder m = two_scopes();
  m.prefix("shared.com", "/", "shared");
  m.in_scope(1).prefix("only-one.com", "/", "one");
  const BuiltTable t(m.model());
  REQUIRE(t.validation.ok);
  CHECK(t.route("only-one.com", "/", nullptr, 1) == "one");
  CHECK(t.route("only-one.com", "/", nullptr, kShared) == "404");
  CHECK(t.route("only-one.com", "/", nullptr, 2) == "404");
  CHECK(t.route("shared.com", "/", nullptr, kShared) == "shared");
  CHECK(t.route("shared.com", "/", nullptr, 1) == "404");
  CHECK(t.route("shared.com", "/", nullptr, 2) == "404");
  kroute::HostMatch how;
  CHECK(t.view.find_host("only-one.com", how, kShared) == nullptr);
  CHECK(t.view.find_host("only-one.com", how, 2) == nullptr);
  CHECK(t.view.find_host("shared.com", how, 1) == nullptr);
}

TEST_CASE("wildcards, any-depth wildcards and host-less rules are per scope; the default backend is everyone's") {
  ModelBuilder m = two_scopes();
  m.prefix("*.shop.com", "/", "shared-wild").prefix("", "/", "shared-any").default_backend("fallback");
  m.in_scope(1).prefix("*.shop.com", "/", "one-wild").prefix("", "/only", "one-any");
  m.in_scope(2).prefix("*.deep.com", "/", "two-deep");
  m.model().rules.back().any_depth = true;
  const BuiltTable t(m.model());
  REQUIRE(t.validation.ok);
  CHECK(t.route("a.shop.com", "/", nullptr, kShared) == "shared-wild");
  CHECK(t.route("a.shop.com", "/", nullptr, 1) == "one-wild");
  CHECK(t.route("a.shop.com", "/", nullptr, 2) == "default:fallback");
  CHECK(t.route("x.y.deep.com", "/", nullptr, 2) == "two-deep");
  CHECK(t.route("x.y.deep.com", "/", nullptr, kShared) == "shared-any");
  // Host-less rules: the scope's own, never the shared scope's; then the default backend.
  CHECK(t.route("other.com", "/only/x", nullptr, 1) == "one-any");
  CHECK(t.route("other.com", "/elsewhere", nullptr, 1) == "default:fallback");
  CHECK(t.route("other.com", "/elsewhere", nullptr, kShared) == "shared-any");
  CHECK(t.route("other.com", "/only/x", nullptr, 2) == "default:fallback");
  REQUIRE(t.view.scope_entry(1) != nullptr);
  REQUIRE(t.view.scope_entry(1)->any_host != format::kNone);
  CHECK(t.view.hosts()[t.view.scope_entry(1)->any_host].scope == 1);
  CHECK(t.view.scope_entry(2)->any_host == format::kNone);
  CHECK(t.view.hosts()[t.view.header().any_host].scope == kShared);
}

TEST_CASE("scope_for: the first entry whose address and port match; else the shared scope") {
  ModelBuilder m;
  m.scope("a", {{"10.0.0.7", 80}, {"fd00::7", 0}});
  m.scope("b", {{"10.0.0.8", 0}, {"", 8443}});
  m.scope("c", {{"10.0.0.7", 0}});  // behind a's 10.0.0.7:80, for the other ports
  m.scope("d", {{"0.0.0.0", 9000}});  // an unspecified address means any
  m.scope("e", {{"::ffff:10.0.0.9", 0}});
  m.prefix("x.com", "/", "x");
  const BuiltTable t(m.model());
  REQUIRE(t.validation.ok);
  CHECK(scope_of(t, "10.0.0.7", 80) == 1);
  CHECK(scope_of(t, "10.0.0.7", 81) == 3);
  CHECK(scope_of(t, "fd00::7", 443) == 1);
  CHECK(scope_of(t, "fd00::8", 443) == kShared);
  CHECK(scope_of(t, "10.0.0.8", 1) == 2);
  CHECK(scope_of(t, "10.0.0.99", 8443) == 2);  // any address on that port
  CHECK(scope_of(t, "10.0.0.99", 80) == kShared);
  CHECK(scope_of(t, "10.0.0.99", 9000) == 4);
  // An IPv4-mapped address is the IPv4 address, in the connection and in the model.
  CHECK(scope_of(t, "::ffff:10.0.0.8", 1) == 2);
  CHECK(scope_of(t, "10.0.0.9", 1) == 5);
  // A wildcard listen's address (nginx did not resolve it) or none at all: only entries for any address.
  CHECK(scope_of(t, "0.0.0.0", 80) == kShared);
  CHECK(scope_of(t, "::", 8443) == 2);
  CHECK(scope_of(t, "", 8443) == 2);
  CHECK(scope_of(t, "", 80) == kShared);
  CHECK(t.view.str(t.view.scope_entry(2)->name) == "b");
  CHECK(t.view.scopes().size() == 7);
  CHECK(t.view.scopes()[3].family == 0);  // b's "" on 8443

  ModelBuilder none;
  none.prefix("x.com", "/", "x");
  const BuiltTable plain(none.model());
  CHECK(plain.view.scopes().empty());
  CHECK(scope_of(plain, "10.0.0.7", 80) == kShared);
  CHECK(plain.view.scope_entry(1) == nullptr);
}

TEST_CASE("certificates per scope: its hosts', its wildcard's, its default, then the table's default") {
  ModelBuilder m;
  m.scope("a", {{"10.0.0.7", 443}}, {"CHAIN-A-DEFAULT", "KEY-A-DEFAULT"});
  m.scope("b", {{"10.0.0.8", 443}});
  m.ingress("ns", "shop").tls("shop.com", "shared-cert");
  m.in_scope(1).tls("shop.com", "one-cert").tls("*.one.com", "one-wild");
  m.in_scope(2).tls("two.com", "two-cert");
  m.model().tls[0].certificate = {"CHAIN-SHARED", "KEY-SHARED"};
  m.model().tls[1].certificate = {"CHAIN-ONE", "KEY-ONE"};
  m.model().tls[2].certificate = {"CHAIN-ONE-WILD", "KEY-ONE-WILD"};
  m.model().tls[3].certificate = {"CHAIN-TWO", "KEY-TWO"};
  m.model().default_certificate = {"CHAIN-D", "KEY-D"};
  const BuiltTable t(m.model());
  REQUIRE(t.validation.ok);
  CHECK(t.result.conflicts.empty());
  CHECK(chain(t, "shop.com", kShared) == "CHAIN-SHARED");
  CHECK(chain(t, "shop.com", 1) == "CHAIN-ONE");
  CHECK(chain(t, "shop.com", 2) == "CHAIN-D");
  CHECK(chain(t, "a.one.com", 1) == "CHAIN-ONE-WILD");
  CHECK(chain(t, "a.one.com", kShared) == "CHAIN-D");
  CHECK(chain(t, "two.com", 2) == "CHAIN-TWO");
  CHECK(chain(t, "two.com", 1) == "CHAIN-A-DEFAULT");  // scope 1's own default before the table's
  CHECK(chain(t, "", 1) == "CHAIN-A-DEFAULT");
  CHECK(chain(t, "two.com", kShared) == "CHAIN-D");
  REQUIRE(t.view.scope_certificate(1) != nullptr);
  CHECK(t.view.str(t.view.scope_certificate(1)->key_pem) == "KEY-A-DEFAULT");
  CHECK(t.view.scope_certificate(2) == nullptr);
  CHECK(t.view.scope_certificate(kShared) == nullptr);
}

TEST_CASE("items naming a scope the model lacks are skipped with a diagnostic") {
  ModelBuilder m;
  m.scope("only", {{"10.0.0.7", 80}});
  m.prefix("good.com", "/", "good");
  m.in_scope(2).prefix("bad.com", "/", "bad").tls("bad.com", "bad-cert");
  m.model().host_policies.push_back({"policy.com", 0, {kroute::policy::redirect(302, "https://x.com/", 0)}});
  m.model().host_policies.back().scope = 7;
  const BuiltTable t(m.model());
  REQUIRE(t.validation.ok);
  CHECK(has_diagnostic(t.result, Item::kRule, "rule refers to scope 2, but the table has scopes 1 to 1"));
  CHECK(has_diagnostic(t.result, Item::kTls, "tls entry refers to scope 2"));
  CHECK(has_diagnostic(t.result, Item::kHostPolicy, "host policy refers to scope 7"));
  CHECK(t.result.diagnostics.size() == 3);
  CHECK(t.route("good.com", "/") == "good");
  CHECK(t.route("bad.com", "/", nullptr, 2) == "404");

  ModelBuilder unscoped;
  unscoped.in_scope(1).prefix("a.com", "/", "a");
  const BuiltTable u(unscoped.model());
  CHECK(has_diagnostic(u.result, Item::kRule, "refers to scope 1, but the table has no scopes"));
}

TEST_CASE("local addresses: \"\" or an IP literal; a scope without a usable one is left out") {
  ModelBuilder m;
  m.scope("a", {{"10.0.0.7", 80}, {"gateway.example.com", 80}, {"10.0.0.300", 0}});
  m.scope("b", {{"not an address", 80}});
  m.in_scope(1).prefix("a.com", "/", "a");
  m.in_scope(2).prefix("b.com", "/", "b");
  const BuiltTable t(m.model());
  REQUIRE(t.validation.ok);
  REQUIRE(t.result.diagnostics.size() == 3);
  for (const kroute::Diagnostic& d : t.result.diagnostics) CHECK(d.item == Item::kScope);
  CHECK(t.result.diagnostics[0].index == 0);
  CHECK(t.result.diagnostics[0].sub_index == 1);
  CHECK(t.result.diagnostics[0].message.find("gateway.example.com") != std::string::npos);
  CHECK(t.result.diagnostics[2].index == 1);
  CHECK(t.view.scopes().size() == 1);
  CHECK(t.route("a.com", "/", nullptr, 1) == "a");
  // Scope 2 can never be chosen: its hosts are not in the table.
  CHECK(t.result.stats.hosts == 1);
  CHECK(t.view.scope_entry(2) == nullptr);
}

TEST_CASE("host policies, aliases and ssl-redirect settle per scope") {
  namespace policy = kroute::policy;
  ModelBuilder m = two_scopes();
  m.ingress("ns", "web");
  m.prefix("main.com", "/", "shared").tls("*.shop.com", "shared-wild");
  m.rule("a.shop.com", "/", kroute::PathType::kPrefix, "shared");
  m.model().rules.back().policies = {policy::https_redirect(false, true)};
  m.in_scope(1).prefix("main.com", "/", "one").prefix("a.shop.com", "/", "one");
  m.model().rules.back().policies = {policy::https_redirect(false, true)};
  m.model().aliases.push_back({"alias.com", "main.com", 0});
  m.model().host_policies.push_back({"main.com", 0, {policy::redirect(302, "https://one.example/", 0)}});
  m.model().host_policies.back().scope = 1;
  const BuiltTable t(m.model());
  REQUIRE(t.validation.ok);
  // The alias is of the shared scope: it serves the shared main.com, and gets no record of scope 1's.
  CHECK(t.route("alias.com", "/", nullptr, kShared) == "shared");
  CHECK(t.route("alias.com", "/", nullptr, 1) == "404");
  CHECK(t.view.lookup("alias.com", "/").server->policies == format::kNone);
  CHECK(t.view.lookup("main.com", "/").server->policies == format::kNone);
  const kroute::RouteMatch one = t.view.lookup("main.com", "/", nullptr, nullptr, nullptr, 1);
  REQUIRE(one.server != nullptr);
  CHECK(t.view.policies(one.server->policies).size() == 1);
  // The wildcard's TLS entry is the shared scope's: only the shared a.shop.com redirects to https.
  CHECK(t.view.policies(t.view.lookup("a.shop.com", "/").rule->policies).size() == 1);
  CHECK(t.view.lookup("a.shop.com", "/", nullptr, nullptr, nullptr, 1).rule->policies == format::kNone);
}

TEST_CASE("the shared scope's host hash is the one tables had before scopes") {
  CHECK(kroute::host_hash("shop.com", kShared) == kroute::host_hash("shop.com"));
  CHECK(kroute::host_hash("shop.com", 1) != kroute::host_hash("shop.com"));
  CHECK(kroute::host_hash("shop.com", 1) != kroute::host_hash("shop.com", 2));
  ModelBuilder m;
  m.prefix("shop.com", "/", "a");
  const BuiltTable t(m.model());
  CHECK(t.view.hosts()[0].hash == kroute::host_hash("shop.com"));
  CHECK(t.view.header().version == format::kVersion);
}

TEST_CASE("listener names: a TLS request whose Host selects another listener than its SNI was misdirected") {
  // The listeners of the conformance test HTTPRouteHTTPSListenerDetectMisdirectedRequests, on one port.
  ModelBuilder m = two_scopes();
  m.in_scope(1).prefix("example.org", "/", "one");
  m.model().scopes[0].listener_names = {"", "second-example.org", "*.wildcard.org", "fourth-example.wildcard.org"};
  const BuiltTable t(m.model());
  REQUIRE(t.validation.ok);
  REQUIRE(t.result.diagnostics.empty());
  const auto misdirected = [&](std::string_view sni, std::string_view host) { return t.view.misdirected(1, sni, host); };
  // Each SNI selects its most specific listener: an equal name, the longest covering wildcard, the one without.
  CHECK_FALSE(misdirected("example.org", "example.org"));
  CHECK(misdirected("example.org", "second-example.org"));
  CHECK_FALSE(misdirected("example.org", "unknown-example.org"));  // both the listener without hostname
  CHECK_FALSE(misdirected("second-example.org", "second-example.org"));
  CHECK(misdirected("second-example.org", "example.org"));
  CHECK(misdirected("second-example.org", "unknown-example.org"));
  CHECK_FALSE(misdirected("third-example.wildcard.org", "fifth-example.wildcard.org"));
  CHECK_FALSE(misdirected("a.b.wildcard.org", "third-example.wildcard.org"));  // any number of labels
  CHECK(misdirected("third-example.wildcard.org", "fourth-example.wildcard.org"));
  CHECK(misdirected("third-example.wildcard.org", "second-example.org"));
  CHECK(misdirected("fourth-example.wildcard.org", "fifth-example.wildcard.org"));
  CHECK_FALSE(misdirected("unknown-example.org", "example.org"));
  // Server names in any case, with a trailing dot; no SNI is never misdirected, nor any other scope.
  CHECK_FALSE(misdirected("Second-Example.ORG.", "second-example.org"));
  CHECK(misdirected("SECOND-example.org", "example.org"));
  CHECK_FALSE(misdirected("", "second-example.org"));
  CHECK_FALSE(t.view.misdirected(2, "second-example.org", "example.org"));
  CHECK_FALSE(t.view.misdirected(kShared, "second-example.org", "example.org"));
  CHECK(t.view.listener_names(1).size() == 4);
}

TEST_CASE("listener names: without one for \"\" a name no listener covers selects none") {
  ModelBuilder m = two_scopes();
  m.in_scope(1).prefix("a.example.org", "/", "one");
  m.model().scopes[0].listener_names = {"a.example.org", "*.example.org"};
  const BuiltTable t(m.model());
  REQUIRE(t.validation.ok);
  CHECK(t.view.misdirected(1, "a.example.org", "other.org"));
  CHECK(t.view.misdirected(1, "other.org", "b.example.org"));
  CHECK_FALSE(t.view.misdirected(1, "other.org", "else.org"));  // neither selects a listener
  CHECK_FALSE(t.view.misdirected(1, "x.y.example.org", "b.example.org"));
}

TEST_CASE("listener names: a list with a bad name is refused whole, with a diagnostic; the scope still routes") {
  for (const std::vector<std::string>& names :
       {std::vector<std::string>{"a.org", "exa mple.org"}, std::vector<std::string>{"a.org", "A.org"},
        std::vector<std::string>{"*.*.org"}, std::vector<std::string>(65, "")}) {
    ModelBuilder m = two_scopes();
    m.in_scope(1).prefix("a.org", "/", "one");
    m.model().scopes[0].listener_names = names;
    const BuiltTable t(m.model());
    REQUIRE(t.validation.ok);
    CHECK(has_diagnostic(t.result, Item::kScope, "listener names refused"));
    CHECK(t.view.listener_names(1).empty());
    CHECK_FALSE(t.view.misdirected(1, "b.org", "a.org"));
    CHECK(t.route("a.org", "/", nullptr, 1) == "one");
  }
}
