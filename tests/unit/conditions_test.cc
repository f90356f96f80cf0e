// Match conditions (Gateway API HTTPRouteMatch): how the builder keeps and orders rules of one (host,
// path type, path) that differ in their conditions, how it settles equal ones, and how lookup tries them.
#include <doctest.h>

#include <string>
#include <vector>

#include "conditions.h"
#include "format.h"
#include "model_builder.h"

using kroute::ConditionKind;
using kroute::MatchCondition;
using kroute::PathType;
using kroute::testing::BuiltTable;
using kroute::testing::header_is;
using kroute::testing::header_matches;
using kroute::testing::method_is;
using kroute::testing::ModelBuilder;
using kroute::testing::query_is;
using kroute::testing::query_matches;
using kroute::testing::TestRequest;
namespace format = kroute::format;

namespace {

TestRequest request(std::string method, std::vector<std::pair<std::string, std::string>> headers = {},
                    std::string args = {}) {
  TestRequest r;
  r.method = std::move(method);
  r.headers = std::move(headers);
  r.args = std::move(args);
  return r;
}

}  // namespace

TEST_CASE("query parameters: the first of a name, its raw value, names and values percent-decoded") {
  std::string_view raw;
  CHECK(kroute::find_query_param("a=1&b=2&a=3", "a", raw));
  CHECK(raw == "1");
  CHECK(kroute::find_query_param("a=1&b&c=", "b", raw));
  CHECK(raw.empty());
  CHECK(kroute::find_query_param("a=1&b&c=", "c", raw));
  CHECK(raw.empty());
  CHECK_FALSE(kroute::find_query_param("animal=whale", "ANIMAL", raw));  // names are case-sensitive
  CHECK_FALSE(kroute::find_query_param("", "a", raw));
  CHECK_FALSE(kroute::find_query_param("aa=1", "a", raw));
  CHECK(kroute::find_query_param("x&%61=encoded-name", "a", raw));
  CHECK(raw == "encoded-name");
  CHECK(kroute::find_query_param("q=a=b", "q", raw));
  CHECK(raw == "a=b");

  CHECK(kroute::decoded_equals("a%20b", "a b"));
  CHECK(kroute::decoded_equals("%2f%2F", "//"));
  CHECK(kroute::decoded_equals("a+b", "a+b"));  // a URL, not a form: '+' is itself
  CHECK_FALSE(kroute::decoded_equals("a+b", "a b"));
  CHECK(kroute::decoded_equals("100%", "100%"));  // a '%' without two hex digits stands for itself
  CHECK(kroute::decoded_equals("%zz", "%zz"));
  CHECK(kroute::decoded_equals("%4", "%4"));
  CHECK_FALSE(kroute::decoded_equals("whale", "whaledolphin"));
  CHECK_FALSE(kroute::decoded_equals("whaledolphin", "whale"));
  CHECK(kroute::decoded_equals("", ""));
  char out[16];
  CHECK(std::string_view(out, kroute::percent_decode("a%2Cb%", out)) == "a,b%");
}

TEST_CASE("conditions are checked, the first of each name kept, and ordered: method, headers, query") {
  const auto c = kroute::canonical_conditions({query_is("b", "2"), header_is("X-Ver", "one"), method_is("GET"),
                                               query_is("a", "1"), header_is("x-ver", "two"), method_is("POST"),
                                               header_matches("Accept", "text/.*"), query_is("a", "9")});
  REQUIRE(c.problem.empty());
  const std::vector<MatchCondition> expected = {method_is("GET"), header_matches("accept", "text/.*"),
                                                header_is("x-ver", "one"), query_is("a", "1"), query_is("b", "2")};
  CHECK(c.conditions == expected);
  const auto weight = kroute::condition_weight(c.conditions);
  CHECK(weight.method);
  CHECK(weight.headers == 2);
  CHECK(weight.queries == 2);
  // A query parameter's name is exact: "A" is another parameter than "a".
  CHECK(kroute::canonical_conditions({query_is("a", "1"), query_is("A", "2")}).conditions.size() == 2);

  const auto problem = [](MatchCondition condition) { return kroute::canonical_conditions({condition}).problem; };
  CHECK(problem(header_is("bad name", "x")).find("token") != std::string::npos);
  CHECK(problem(header_is("", "x")).find("token") != std::string::npos);
  CHECK(problem(header_is("x", "a\r\nInjected: 1")).find("control characters") != std::string::npos);
  CHECK(problem(method_is("G ET")).find("token") != std::string::npos);
  CHECK(problem({ConditionKind::kMethod, "name", "GET"}).find("no name") != std::string::npos);
  CHECK(problem(query_is("", "x")).find("empty") != std::string::npos);
  CHECK(problem(header_matches("x", "(unclosed")).find("invalid regular expression") != std::string::npos);
  CHECK(problem(query_matches("x", "[z-a]")).find("invalid regular expression") != std::string::npos);
  CHECK(problem({static_cast<ConditionKind>(9), "x", "y"}).find("unknown condition kind 9") != std::string::npos);
  CHECK(problem(header_is("x", std::string(5000, 'a'))).find("longer than") != std::string::npos);
}

TEST_CASE("rules of one key differing in conditions form a chain tried in precedence order") {
  // The Gateway API's conformance HTTPRouteHeaderMatching and HTTPRouteQueryParamMatching, on one key.
  ModelBuilder m;
  m.ingress("gw", "route", 100);
  m.prefix("a.com", "/", "v1").when({header_is("version", "one")});
  m.prefix("a.com", "/", "v2").when({header_is("version", "two")});
  m.prefix("a.com", "/", "v1-two-orange").when({header_is("version", "two"), header_is("color", "orange")});
  m.prefix("a.com", "/", "q-whale").when({query_is("animal", "whale")});
  m.prefix("a.com", "/", "q-dolphin").when({query_is("animal", "dolphin")});
  m.prefix("a.com", "/", "q-dolphin-blue").when({query_is("animal", "dolphin"), query_is("color", "blue")});
  m.prefix("a.com", "/", "get").when({method_is("GET")});
  m.prefix("a.com", "/", "header-and-query").when({header_is("version", "four"), query_is("animal", "hydra")});
  const BuiltTable t(m.model());
  REQUIRE(t.validation.ok);
  CHECK(t.result.diagnostics.empty());
  CHECK(t.result.conflicts.empty());

  // Stored side by side, in precedence order: method, then headers (2, then 1 with the older first), then
  // queries; only the first is in the path slots.
  std::vector<std::string> order;
  for (const auto& rule : t.view.rules()) order.push_back(std::string(t.view.str(t.view.backends()[rule.backend].service)));
  CHECK(order == std::vector<std::string>{"get", "v1-two-orange", "header-and-query", "v1", "v2", "q-dolphin-blue",
                                          "q-whale", "q-dolphin"});
  for (std::size_t i = 0; i < t.view.rules().size(); ++i) {
    CAPTURE(i);
    CHECK((t.view.rules()[i].flags & format::kHasConditions) != 0);
    CHECK(((t.view.rules()[i].flags & format::kChainNext) != 0) == (i + 1 < t.view.rules().size()));
  }

  auto route = [&](TestRequest r) { return t.route("a.com", "/", &r); };
  CHECK(route(request("POST", {{"Version", "one"}})) == "v1");
  CHECK(route(request("POST", {{"version", "two"}})) == "v2");
  CHECK(route(request("POST", {{"Version", "two"}, {"Color", "orange"}})) == "v1-two-orange");
  CHECK(route(request("POST", {{"Version", "two"}, {"Color", "blue"}})) == "v2");
  CHECK(route(request("POST", {{"Version", "TWO"}})) == "404");  // values are case-sensitive
  CHECK(route(request("POST", {{"Color", "orange"}})) == "404");
  CHECK(route(request("POST", {}, "animal=whale")) == "q-whale");
  CHECK(route(request("POST", {}, "animal=dolphin&color=blue")) == "q-dolphin-blue");
  CHECK(route(request("POST", {}, "animal=dolphin&color=yellow")) == "q-dolphin");
  CHECK(route(request("POST", {}, "ANIMAL=Whale")) == "404");
  CHECK(route(request("POST", {}, "animal=whaledolphin")) == "404");
  CHECK(route(request("POST", {}, "animal=whale&otherparam=irrelevant")) == "q-whale");
  CHECK(route(request("GET", {{"version", "one"}}, "animal=whale")) == "get");  // a method match first
  // Headers before query parameters: the header rule wins although the query rule matches too.
  CHECK(route(request("POST", {{"version", "four"}}, "animal=hydra")) == "header-and-query");
  CHECK(route(request("POST", {{"version", "one"}}, "animal=whale")) == "v1");
  // Without request data a rule with conditions never matches.
  CHECK(t.route("a.com", "/") == "404");
}

TEST_CASE("precedence: method, then more headers, then more query parameters, then the older source, then model order") {
  ModelBuilder m;
  m.ingress("ns", "young", 200);
  m.prefix("a.com", "/", "young-header").when({header_is("h", "1")});
  m.prefix("a.com", "/", "young-first").when({query_is("q", "1")});
  m.prefix("a.com", "/", "young-second").when({query_is("p", "1")});
  m.ingress("ns", "old", 100);
  m.prefix("a.com", "/", "old-query").when({query_is("r", "1")});
  m.prefix("a.com", "/", "old-method").when({method_is("GET")});
  const BuiltTable t(m.model());
  REQUIRE(t.validation.ok);
  TestRequest all = request("GET", {{"h", "1"}}, "q=1&p=1&r=1");
  CHECK(t.route("a.com", "/x", &all) == "old-method");
  all.method = "PUT";
  CHECK(t.route("a.com", "/x", &all) == "young-header");
  all.headers.clear();
  CHECK(t.route("a.com", "/x", &all) == "old-query");  // one query condition each: the older route
  all.args = "q=1&p=1";
  CHECK(t.route("a.com", "/x", &all) == "young-first");  // same route: its first rule
  all.args = "p=1";
  CHECK(t.route("a.com", "/x", &all) == "young-second");
}

TEST_CASE("a rule without conditions ends its key's chain; when no condition holds, shorter prefixes are tried") {
  ModelBuilder m;
  m.prefix("a.com", "/api/v1", "v1-beta").when({header_is("x-beta", "yes")});
  m.prefix("a.com", "/api/v1", "v1-post").when({method_is("POST")});
  m.prefix("a.com", "/api", "api");
  m.prefix("a.com", "/api", "api-get").when({method_is("GET")});
  m.exact("a.com", "/api/v1/items", "items-delete").when({method_is("DELETE")});
  m.prefix("", "/", "any-host");
  m.prefix("*.b.com", "/", "wild-put").when({method_is("PUT")});
  m.default_backend("fallback");
  const BuiltTable t(m.model());
  REQUIRE(t.validation.ok);
  TestRequest r = request("GET");
  CHECK(t.route("a.com", "/api/v1/items", &r) == "api-get");
  r.method = "HEAD";
  CHECK(t.route("a.com", "/api/v1/items", &r) == "api");
  r.method = "POST";
  CHECK(t.route("a.com", "/api/v1/items", &r) == "v1-post");
  r.headers = {{"X-Beta", "yes"}};
  CHECK(t.route("a.com", "/api/v1/x", &r) == "v1-post");  // a method before headers
  r.method = "PATCH";
  CHECK(t.route("a.com", "/api/v1/x", &r) == "v1-beta");
  r.method = "DELETE";
  CHECK(t.route("a.com", "/api/v1/items", &r) == "items-delete");  // Exact before any Prefix
  CHECK(t.route("a.com", "/api/v1/items/", &r) == "v1-beta");
  r.headers.clear();
  CHECK(t.route("a.com", "/api/v1/items/", &r) == "api");
  CHECK(t.route("a.com", "/other", &r) == "any-host");  // no rule of a.com: the host-less rules
  CHECK(t.route("x.b.com", "/", &r) == "any-host");      // the wildcard's condition fails: falls through too
  r.method = "PUT";
  CHECK(t.route("x.b.com", "/", &r) == "wild-put");
  CHECK(t.route("other.com", "/", nullptr) == "any-host");

  // The Ingress-shaped rules stay flagless: lookup takes them after one test.
  for (const auto& rule : t.view.rules()) {
    const std::string service(t.view.str(t.view.backends()[rule.backend].service));
    if (service == "any-host") CHECK(rule.flags == 0);
    if (service == "api") CHECK(rule.flags == 0);
    if (service == "api-get") CHECK(rule.flags == (format::kHasConditions | format::kChainNext));
  }
}

TEST_CASE("a method condition outranks header conditions on one key") {
  ModelBuilder m;
  m.prefix("a.com", "/", "beta").when({header_is("x-beta", "yes")});
  m.prefix("a.com", "/", "post").when({method_is("POST")});
  const BuiltTable t(m.model());
  TestRequest r = request("POST", {{"x-beta", "yes"}});
  CHECK(t.route("a.com", "/", &r) == "post");
  r.method = "GET";
  CHECK(t.route("a.com", "/", &r) == "beta");
}

TEST_CASE("header conditions: names in any case, repeated headers joined, regex matches the whole value") {
  ModelBuilder m;
  m.prefix("a.com", "/", "exact").when({header_is("X-List", "a, b")});
  m.prefix("a.com", "/r", "regex").when({header_matches("X-Version", "v[0-9]+")});
  m.prefix("a.com", "/r", "plain");
  const BuiltTable t(m.model());
  REQUIRE(t.validation.ok);
  TestRequest r = request("GET", {{"x-list", "a"}, {"X-LIST", "b"}});
  CHECK(t.route("a.com", "/", &r) == "exact");
  r.headers = {{"x-version", "v12"}};
  CHECK(t.route("a.com", "/r", &r) == "regex");
  r.headers = {{"x-version", "v12-beta"}};  // the whole value, not a part of it
  CHECK(t.route("a.com", "/r", &r) == "plain");
  r.headers = {{"x-version", "V12"}};  // case-sensitive
  CHECK(t.route("a.com", "/r", &r) == "plain");
  // Without compiled patterns a regex condition never holds.
  r.headers = {{"x-version", "v12"}};
  const auto data = r.data();
  const auto without = t.view.lookup("a.com", "/r", nullptr, nullptr, &data);
  REQUIRE(without.backend != nullptr);
  CHECK(t.view.str(without.backend->service) == "plain");
}

TEST_CASE("query conditions compare decoded values; a regex sees the decoded value") {
  ModelBuilder m;
  m.prefix("a.com", "/", "exact").when({query_is("q", "a b/c")});
  m.prefix("a.com", "/re", "regex").when({query_matches("id", "[0-9]+,[0-9]+")});
  const BuiltTable t(m.model());
  REQUIRE(t.validation.ok);
  TestRequest r = request("GET", {}, "x=1&q=a%20b%2Fc");
  CHECK(t.route("a.com", "/", &r) == "exact");
  r.args = "q=a+b/c";
  CHECK(t.route("a.com", "/", &r) == "404");
  r.args = "q=a%20b%2Fc&q=other";  // the first counts
  CHECK(t.route("a.com", "/", &r) == "exact");
  r.args = "q=other&q=a%20b%2Fc";
  CHECK(t.route("a.com", "/", &r) == "404");
  r.args = "id=12%2C34";
  CHECK(t.route("a.com", "/re", &r) == "regex");
  CHECK(r.pool.size() == 1);  // decoded into the request's own memory
  r.args = "id=12,34";
  CHECK(t.route("a.com", "/re", &r) == "regex");
  r.args = "id=12%2C34x";
  CHECK(t.route("a.com", "/re", &r) == "404");
}

TEST_CASE("equal conditions collide: the older source wins and the loser is reported as for Ingress") {
  ModelBuilder m;
  m.ingress("ns", "young", 200);
  m.prefix("a.com", "/p/", "young").when({header_is("A", "1"), query_is("q", "x")});
  m.prefix("a.com", "/p", "young-other").when({header_is("A", "2")});
  m.ingress("ns", "old", 100);
  m.prefix("a.com", "/p", "old").when({query_is("q", "x"), header_is("a", "1"), header_is("A", "ignored")});
  const BuiltTable t(m.model());
  REQUIRE(t.validation.ok);
  REQUIRE(t.result.conflicts.size() == 1);
  const auto& conflict = t.result.conflicts[0];
  CHECK(conflict.item == kroute::Item::kRule);
  CHECK(conflict.winner == 2);
  CHECK(conflict.loser == 0);
  CHECK(conflict.host == "a.com");
  CHECK(conflict.path == "/p");
  CHECK(t.view.rules().size() == 2);
  TestRequest r = request("GET", {{"a", "1"}}, "q=x");
  CHECK(t.route("a.com", "/p/x", &r) == "old");
  r.headers = {{"a", "2"}};
  CHECK(t.route("a.com", "/p/x", &r) == "young-other");
}

TEST_CASE("a rule whose condition is unsound is skipped with a reason; the others stay") {
  ModelBuilder m;
  m.prefix("a.com", "/", "bad-regex").when({header_matches("x", "a(")});
  m.prefix("a.com", "/", "bad-name").when({header_is("x y", "1")});
  m.prefix("a.com", "/", "good").when({header_is("x", "1")});
  const BuiltTable t(m.model());
  REQUIRE(t.validation.ok);
  REQUIRE(t.result.diagnostics.size() == 2);
  CHECK(t.result.diagnostics[0].index == 0);
  CHECK(t.result.diagnostics[0].message.find("HeaderRegex condition \"x\": invalid regular expression") == 0);
  CHECK(t.result.diagnostics[1].index == 1);
  CHECK(t.view.rules().size() == 1);
  TestRequest r = request("GET", {{"x", "1"}});
  CHECK(t.route("a.com", "/", &r) == "good");
}

TEST_CASE("chains on a regex host: one pattern's rules stay together, tried in precedence order") {
  ModelBuilder m;
  m.ingress("ns", "young", 200);
  m.prefix("r.com", "/api/(.*)", "api-beta").when({header_is("x-beta", "1")});
  m.prefix("r.com", "/app/(.*)", "app");
  m.ingress("ns", "old", 100);
  m.prefix("r.com", "/api/(.*)", "api");
  for (auto& rule : m.model().rules) rule.regex = true;
  const BuiltTable t(m.model());
  REQUIRE(t.validation.ok);
  std::vector<std::string> order;
  for (const auto& rule : t.view.rules()) order.push_back(std::string(t.view.str(t.view.backends()[rule.backend].service)));
  // The /api chain stands where its oldest rule would: before the younger /app.
  CHECK(order == std::vector<std::string>{"api-beta", "api", "app"});
  TestRequest r = request("GET", {{"x-beta", "1"}});
  CHECK(t.route("r.com", "/api/x", &r) == "api-beta");
  r.headers.clear();
  CHECK(t.route("r.com", "/api/x", &r) == "api");
  CHECK(t.route("r.com", "/app/x", &r) == "app");
}

TEST_CASE("a table without conditions has no condition sections and no rule flags") {
  ModelBuilder m;
  m.prefix("a.com", "/", "a").exact("a.com", "/x", "b");
  const BuiltTable t(m.model());
  CHECK(t.view.header().sections[format::kConditions].count == 0);
  CHECK(t.view.header().sections[format::kRuleConditions].count == 0);
  for (const auto& rule : t.view.rules()) CHECK(rule.flags == 0);
}
