// lookup(host, path): the path-matching examples table and the wildcard-host table of the Kubernetes
// Ingress documentation, row by row, then kroute's own host rules.
#include <doctest.h>

#include <string>
#include <vector>

#include "model_builder.h"

using kroute::PathType;
using kroute::testing::BuiltTable;
using kroute::testing::ModelBuilder;

namespace {

struct PathRow {
  const char* name;
  std::vector<std::pair<PathType, std::string>> rules;  // backend = "r<index>"
  std::string request;
  std::string expected;  // "r<index>" or "404"
};

BuiltTable table_for(const PathRow& row) {
  ModelBuilder m;
  for (std::size_t i = 0; i < row.rules.size(); ++i)
    m.rule("foo.com", row.rules[i].second, row.rules[i].first, "r" + std::to_string(i));
  return BuiltTable(m.model());
}

}  // namespace

TEST_CASE("Kubernetes path matching examples") {
  const auto P = PathType::kPrefix;
  const auto E = PathType::kExact;
  const std::vector<PathRow> rows = {
      {"Prefix / matches all paths (/)", {{P, "/"}}, "/", "r0"},
      {"Prefix / matches all paths (/anything/at/all)", {{P, "/"}}, "/anything/at/all", "r0"},
      {"Exact /foo matches /foo", {{E, "/foo"}}, "/foo", "r0"},
      {"Exact /foo does not match /bar", {{E, "/foo"}}, "/bar", "404"},
      {"Exact /foo does not match /foo/", {{E, "/foo"}}, "/foo/", "404"},
      {"Exact /foo/ does not match /foo", {{E, "/foo/"}}, "/foo", "404"},
      {"Prefix /foo matches /foo", {{P, "/foo"}}, "/foo", "r0"},
      {"Prefix /foo matches /foo/", {{P, "/foo"}}, "/foo/", "r0"},
      {"Prefix /foo/ matches /foo", {{P, "/foo/"}}, "/foo", "r0"},
      {"Prefix /foo/ matches /foo/", {{P, "/foo/"}}, "/foo/", "r0"},
      {"Prefix /aaa/bb does not match /aaa/bbb", {{P, "/aaa/bb"}}, "/aaa/bbb", "404"},
      {"Prefix /aaa/bbb matches /aaa/bbb", {{P, "/aaa/bbb"}}, "/aaa/bbb", "r0"},
      {"Prefix /aaa/bbb/ matches /aaa/bbb (trailing slash ignored)", {{P, "/aaa/bbb/"}}, "/aaa/bbb", "r0"},
      {"Prefix /aaa/bbb matches /aaa/bbb/ (trailing slash matched)", {{P, "/aaa/bbb"}}, "/aaa/bbb/", "r0"},
      {"Prefix /aaa/bbb matches /aaa/bbb/ccc (subpath)", {{P, "/aaa/bbb"}}, "/aaa/bbb/ccc", "r0"},
      {"Prefix /aaa/bbb does not match /aaa/bbbxyz (not a string prefix)", {{P, "/aaa/bbb"}}, "/aaa/bbbxyz", "404"},
      {"Prefix /, /aaa: /aaa/ccc matches /aaa", {{P, "/"}, {P, "/aaa"}}, "/aaa/ccc", "r1"},
      {"Prefix /, /aaa, /aaa/bbb: /aaa/bbb matches /aaa/bbb", {{P, "/"}, {P, "/aaa"}, {P, "/aaa/bbb"}}, "/aaa/bbb", "r2"},
      {"Prefix /, /aaa, /aaa/bbb: /ccc matches /", {{P, "/"}, {P, "/aaa"}, {P, "/aaa/bbb"}}, "/ccc", "r0"},
      {"Prefix /aaa does not match /ccc (default backend)", {{P, "/aaa"}}, "/ccc", "404"},
      {"Mixed /foo Prefix and /foo Exact: /foo prefers Exact", {{P, "/foo"}, {E, "/foo"}}, "/foo", "r1"},
  };
  for (const PathRow& row : rows) {
    CAPTURE(row.name);
    const BuiltTable t = table_for(row);
    REQUIRE(t.validation.ok);
    CHECK(t.route("foo.com", row.request) == row.expected);
  }
}

TEST_CASE("ImplementationSpecific matches as Prefix") {
  ModelBuilder m;
  m.rule("foo.com", "/aaa", PathType::kImplementationSpecific, "impl");
  const BuiltTable t(m.model());
  CHECK(t.route("foo.com", "/aaa") == "impl");
  CHECK(t.route("foo.com", "/aaa/") == "impl");
  CHECK(t.route("foo.com", "/aaa/b") == "impl");
  CHECK(t.route("foo.com", "/aaab") == "404");
}

TEST_CASE("longest match wins; Exact beats Prefix only on equal length") {
  ModelBuilder m;
  m.prefix("foo.com", "/a/b/c", "deep").exact("foo.com", "/a", "exact-a").prefix("foo.com", "/a", "prefix-a");
  const BuiltTable t(m.model());
  CHECK(t.route("foo.com", "/a") == "exact-a");
  CHECK(t.route("foo.com", "/a/") == "prefix-a");
  CHECK(t.route("foo.com", "/a/b") == "prefix-a");
  CHECK(t.route("foo.com", "/a/b/c/d") == "deep");
  CHECK(t.route("foo.com", "/a/b/cd") == "prefix-a");
}

TEST_CASE("paths are case-sensitive; repeated slashes") {
  ModelBuilder m;
  m.prefix("foo.com", "/Foo", "upper").exact("foo.com", "/q", "q");
  const BuiltTable t(m.model());
  CHECK(t.route("foo.com", "/Foo/x") == "upper");
  CHECK(t.route("foo.com", "/foo/x") == "404");
  CHECK(t.route("foo.com", "/Foo//x") == "upper");
  CHECK(t.route("foo.com", "") == "404");
}

TEST_CASE("Kubernetes wildcard host examples") {
  ModelBuilder m;
  m.prefix("*.foo.com", "/", "wild");
  const BuiltTable t(m.model());
  CHECK(t.route("bar.foo.com", "/") == "wild");      // shared suffix
  CHECK(t.route("baz.bar.foo.com", "/") == "404");   // one label only
  CHECK(t.route("foo.com", "/") == "404");           // one label only
}

TEST_CASE("Gateway API wildcards cover any number of labels, the most specific first; Ingress ones one") {
  ModelBuilder m;
  m.prefix("*.bar.com", "/", "deep").prefix("*.foo.bar.com", "/only", "deeper").prefix("*.one.org", "/", "one");
  m.model().rules[0].any_depth = true;
  m.model().rules[1].any_depth = true;
  const BuiltTable t(m.model());
  CHECK(t.route("a.bar.com", "/") == "deep");
  CHECK(t.route("multiple.prefixes.bar.com", "/") == "deep");
  CHECK(t.route("x.foo.bar.com", "/only") == "deeper");
  CHECK(t.route("x.y.foo.bar.com", "/only/z") == "deeper");
  CHECK(t.route("x.foo.bar.com", "/other") == "deep");  // the more specific one has no such path: fall through
  CHECK(t.route("bar.com", "/") == "404");
  CHECK(t.route("a.one.org", "/") == "one");
  CHECK(t.route("a.b.one.org", "/") == "404");  // an Ingress wildcard stays one label deep
  kroute::HostMatch how;
  const auto* h = t.view.find_host("q.r.bar.com", how);
  REQUIRE(h != nullptr);
  CHECK(how == kroute::HostMatch::kWildcard);
  CHECK(t.view.str(h->name) == "bar.com");
}

TEST_CASE("an isolated host answers from its own rules only (Gateway API listener isolation)") {
  // GatewayHTTPListenerIsolation: listeners "", "*.example.com", "*.foo.example.com", "abc.foo.example.com".
  ModelBuilder m;
  m.prefix("", "/empty", "any")
      .prefix("*.example.com", "/wild", "wild")
      .prefix("*.foo.example.com", "/wild-foo", "wild-foo")
      .prefix("abc.foo.example.com", "/abc", "abc")
      .prefix("ingress.example.com", "/ing", "ingress");
  for (std::size_t i = 0; i < 4; ++i) {
    m.model().rules[i].any_depth = true;
    m.model().rules[i].isolated = true;
  }
  const BuiltTable t(m.model());
  CHECK(t.route("abc.foo.example.com", "/abc") == "abc");
  CHECK(t.route("abc.foo.example.com", "/wild-foo") == "404");
  CHECK(t.route("abc.foo.example.com", "/empty") == "404");
  CHECK(t.route("x.foo.example.com", "/wild-foo") == "wild-foo");
  CHECK(t.route("x.foo.example.com", "/wild") == "404");
  CHECK(t.route("x.example.com", "/wild") == "wild");
  CHECK(t.route("x.example.com", "/empty") == "404");
  CHECK(t.route("other.org", "/empty") == "any");
  // A host without the flag (an Ingress's) still falls through.
  CHECK(t.route("ingress.example.com", "/ing") == "ingress");
  CHECK(t.route("ingress.example.com", "/wild") == "wild");
}

TEST_CASE("request hosts: case-insensitive, without port or trailing dot") {
  ModelBuilder m;
  m.prefix("foo.com", "/", "foo").prefix("*.bar.com", "/", "wild");
  const BuiltTable t(m.model());
  CHECK(t.route("FOO.com", "/") == "foo");
  CHECK(t.route("foo.com:8443", "/") == "foo");
  CHECK(t.route("foo.com.", "/") == "foo");
  CHECK(t.route("X.BAR.COM:80", "/") == "wild");
  CHECK(t.route("[::1]:8080", "/") == "404");
  CHECK(t.route(std::string(300, 'a'), "/") == "404");
}

TEST_CASE("rule hosts are lowercased") {
  ModelBuilder m;
  m.prefix("Foo.COM", "/", "foo");
  const BuiltTable t(m.model());
  CHECK(t.route("foo.com", "/") == "foo");
}

TEST_CASE("exact host beats wildcard, which beats host-less; a host without the path falls through") {
  ModelBuilder m;
  m.prefix("a.foo.com", "/app", "exact")
      .prefix("*.foo.com", "/app", "wild")
      .prefix("*.foo.com", "/wild-only", "wild2")
      .prefix("", "/", "any");
  const BuiltTable t(m.model());
  CHECK(t.route("a.foo.com", "/app") == "exact");
  CHECK(t.route("b.foo.com", "/app") == "wild");
  CHECK(t.route("a.foo.com", "/wild-only") == "wild2");
  CHECK(t.route("a.foo.com", "/other") == "any");
  CHECK(t.route("elsewhere.org", "/x") == "any");
  CHECK(t.route("", "/x") == "any");
}

TEST_CASE("the default backend serves what nothing else matches") {
  ModelBuilder m;
  m.prefix("foo.com", "/app", "app").backend("fallback").default_backend("fallback");
  const BuiltTable t(m.model());
  CHECK(t.route("foo.com", "/app/x") == "app");
  CHECK(t.route("foo.com", "/other") == "default:fallback");
  CHECK(t.route("nope.com", "/") == "default:fallback");
  const auto match = t.view.lookup("nope.com", "/");
  CHECK(match.default_backend);
  CHECK(match.rule == nullptr);
}

TEST_CASE("find_host serves TLS lookups: exact, then wildcard, never host-less") {
  ModelBuilder m;
  m.tls("a.foo.com", "a-cert").tls("*.foo.com", "wild-cert").prefix("", "/", "any");
  const BuiltTable t(m.model());
  kroute::HostMatch how;
  const auto* exact = t.view.find_host("A.foo.com", how);
  REQUIRE(exact != nullptr);
  CHECK(how == kroute::HostMatch::kExact);
  CHECK(t.view.str(t.view.tls()[exact->tls].secret_name) == "a-cert");
  const auto* wild = t.view.find_host("b.foo.com", how);
  REQUIRE(wild != nullptr);
  CHECK(how == kroute::HostMatch::kWildcard);
  CHECK(t.view.str(t.view.tls()[wild->tls].secret_name) == "wild-cert");
  CHECK(t.view.find_host("other.org", how) == nullptr);
}

TEST_CASE("many hosts and paths all resolve") {
  ModelBuilder m;
  for (int h = 0; h < 500; ++h) {
    for (int p = 0; p < 5; ++p) {
      m.prefix("host" + std::to_string(h) + ".example.com", "/p" + std::to_string(p),
               "svc" + std::to_string((h * 5 + p) % 37));
    }
  }
  const BuiltTable t(m.model());
  REQUIRE(t.validation.ok);
  for (int h = 0; h < 500; h += 7) {
    for (int p = 0; p < 5; ++p) {
      CHECK(t.route("host" + std::to_string(h) + ".example.com", "/p" + std::to_string(p) + "/x") ==
            "svc" + std::to_string((h * 5 + p) % 37));
    }
  }
  CHECK(t.route("host1.example.com", "/p9") == "404");
}
