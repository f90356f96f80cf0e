// Policy records in the table: templates, regex paths, records stored per rule and host, host aliases
// and host-wide records settled by the builder, and validation of records in a snapshot.
#include <doctest.h>

#include <cstring>
#include <string>
#include <vector>

#include "model_builder.h"
#include "path_patterns.h"
#include "policy/headers.h"
#include "policy/kinds.h"
#include "policy/redirect.h"
#include "policy/rewrite.h"
#include "policy/template.h"

using namespace kroute;
using kroute::testing::BuiltTable;
using kroute::testing::ModelBuilder;

namespace {

std::string expand(std::string_view text, const TemplateContext& context) {
  std::string out(template_length(text, context), '\0');
  const char* end = expand_template(text, context, out.data());
  CHECK(end == out.data() + out.size());
  return out;
}

// The backend service a request reaches on a table with regex hosts, with the groups captured.
struct RegexTable {
  explicit RegexTable(const RouteModel& model) : built(model), patterns(built.view, cache) {}
  std::string route(std::string_view host, std::string_view path, PathCaptures* captures = nullptr) const {
    const RouteMatch m = built.view.lookup(host, path, &patterns, captures);
    return m.rule == nullptr ? "404" : std::string(built.view.str(m.backend->service));
  }
  BuiltTable built;
  PatternCache cache;
  PathPatterns patterns;
};

Rule& last_rule(ModelBuilder& m) { return m.model().rules.back(); }

}  // namespace

TEST_CASE("templates: the fixed request values, groups, and nothing else") {
  CHECK(check_template("https://new.example.com$request_uri", false).empty());
  CHECK(check_template("$scheme://${host}:8443/x$is_args$args", false).empty());
  CHECK(check_template("/$1/$2", true).empty());
  CHECK(check_template("/$1", false).find("not a regular expression") != std::string::npos);
  CHECK(check_template("https://x.com/$foo", true).find("$foo") != std::string::npos);
  CHECK_FALSE(check_template("https://x.com/${unclosed", true).empty());
  CHECK_FALSE(check_template("$", true).empty());

  TemplateContext c;
  c.scheme = "http";
  c.host = "a.com";
  c.http_host = "a.com:8080";
  c.request_uri = "/p/q/?x=1";
  c.uri = "/p/q/";
  c.args = "x=1";
  CHECK(expand("$scheme://$http_host/app", c) == "http://a.com:8080/app");
  CHECK(expand("https://${host}$request_uri", c) == "https://a.com/p/q/?x=1");
  CHECK(expand("$uri$is_args$args", c) == "/p/q/?x=1");
  c.request_uri = "/p/q/";
  c.trim_trailing_slash = true;
  CHECK(expand("https://$host$request_uri", c) == "https://a.com/p/q");
  c.request_uri = "/";
  CHECK(expand("https://$host$request_uri", c) == "https://a.com");
  // Groups: offsets into the subject; unset groups and groups beyond the count expand to nothing.
  const std::uint32_t spans[] = {0, 14, 10, 11, 11, 14, 1, 0};
  c.subject = "/something/new";
  c.captures = spans;
  c.capture_count = 4;
  CHECK(expand("/$2-$1-$3-$5", c) == "/new-/--");
  CHECK(expand("$9literal$$", c) == "literal");
}

TEST_CASE("templates: what follows the matched prefix (the Gateway API's ReplacePrefixMatch)") {
  CHECK(check_template("/one$prefix_rest", false).empty());
  CHECK(check_template("$scheme://$host$prefix_rest_or_slash$is_args$args", false).empty());
  TemplateContext c;
  c.scheme = "http";
  c.host = "a.com";
  c.uri = "/prefix/one/two";
  c.prefix_length = std::string_view("/prefix/one").size();
  CHECK(expand("/one$prefix_rest", c) == "/one/two");
  CHECK(expand("$prefix_rest_or_slash", c) == "/two");
  c.uri = "/prefix/one";
  CHECK(expand("/one$prefix_rest", c) == "/one");
  CHECK(expand("$prefix_rest_or_slash", c) == "/");
  c.uri = "/prefix/one/";
  CHECK(expand("/one$prefix_rest", c) == "/one/");
  // A rule for "/" covers nothing of the path (its normalized path is empty).
  c.uri = "/x";
  c.prefix_length = 0;
  CHECK(expand("/y$prefix_rest", c) == "/y/x");
  // Decoded, so escaped in a Location as $uri is.
  c.uri = "/p/a b?";
  c.prefix_length = 2;
  c.escape_path = true;
  CHECK(expand("http://n.com/q$prefix_rest", c) == "http://n.com/q/a%20b%3F");
  // Never beyond the path.
  c.prefix_length = 100;
  CHECK(expand("/z$prefix_rest", c) == "/z");
}

TEST_CASE("templates: decoded values cannot end a header line or start a query") {
  // The path as nginx decoded it: "/a\r\nX: 1?b&c"; group 1 is all of it after the slash.
  const std::string path = "/a\r\nX: 1?b&c";
  const std::uint32_t spans[] = {0, static_cast<std::uint32_t>(path.size()), 1, static_cast<std::uint32_t>(path.size())};
  TemplateContext c;
  c.uri = path;
  c.subject = path;
  c.captures = spans;
  c.capture_count = 2;
  c.args = "q=1";
  // A Location: encoded before and after the template's own '?'.
  c.escape_path = true;
  CHECK(expand("https://n.com$uri", c) == "https://n.com/a%0D%0AX:%201%3Fb&c");
  CHECK(expand("https://n.com/x?from=$1", c) == "https://n.com/x?from=a%0D%0AX:%201%3Fb%26c");
  // A rewritten URI stays decoded (the proxy encodes r->uri); only the template's '?' starts arguments.
  c.escape_path = false;
  std::size_t query = 0;
  std::string out(template_length("/new/$1", c), '\0');
  expand_template("/new/$1", c, out.data(), &query);
  CHECK(out == "/new/a\r\nX: 1?b&c");
  CHECK(query == out.size());
  out.assign(template_length("/new?x=$1", c), '\0');
  expand_template("/new?x=$1", c, out.data(), &query);
  CHECK(query == 4);
  CHECK(out.substr(query) == "?x=a%0D%0AX:%201%3Fb%26c");
}

TEST_CASE("regex paths: anchored at the start, any case, longest first, with their groups") {
  ModelBuilder m;
  m.ingress("default", "old", 100);
  m.prefix("r.com", "/foo", "short");
  last_rule(m).regex = true;
  m.prefix("r.com", "/foo/bar.+", "long");
  m.exact("r.com", "/api/v[0-9]+/(.*)", "api");  // a regex host's Exact paths are patterns too
  m.ingress("default", "new", 200);
  m.prefix("r.com", "/foo/bar.*", "same-length-younger");
  m.prefix("plain.com", "/foo", "plain");
  const RegexTable t(m.model());
  REQUIRE(t.built.validation.ok);
  CHECK(t.patterns.compiled() == 4);
  CHECK(t.route("r.com", "/foo") == "short");
  CHECK(t.route("r.com", "/FOOBAR") == "short");  // not anchored at the end
  CHECK(t.route("r.com", "/foo/barz") == "long");  // the older of two equally long patterns
  CHECK(t.route("r.com", "/x/foo") == "404");       // anchored at the start
  PathCaptures captures;
  CHECK(t.route("r.com", "/API/V2/users/7", &captures) == "api");
  REQUIRE(captures.count == 2);
  CHECK(captures.spans[2] == 8);
  CHECK(captures.spans[3] == 15);
  // Another host keeps Prefix matching: "/foo" does not match "/foobar" there.
  CHECK(t.route("plain.com", "/foobar") == "404");
  CHECK(t.route("plain.com", "/foo/x") == "plain");
  // Without compiled patterns (a caller that did not compile them) a regex host matches nothing.
  CHECK(t.built.view.lookup("r.com", "/foo").rule == nullptr);
}

TEST_CASE("regex paths: an invalid pattern skips its rule with a diagnostic, the rest is served") {
  ModelBuilder m;
  m.prefix("r.com", "/(unclosed", "bad");
  last_rule(m).regex = true;
  m.prefix("r.com", "/ok", "good");
  const RegexTable t(m.model());
  REQUIRE(t.built.validation.ok);
  REQUIRE(t.built.result.diagnostics.size() == 1);
  CHECK(t.built.result.diagnostics[0].index == 0);
  CHECK(t.built.result.diagnostics[0].message.find("invalid regular expression") != std::string::npos);
  CHECK(t.route("r.com", "/ok") == "good");
  CHECK(check_path_pattern("/(unclosed").find("offset") != std::string::npos);
}

TEST_CASE("regex paths: a catastrophic pattern hits the work bound instead of stalling") {
  ModelBuilder m;
  m.prefix("r.com", "/(a+)+$", "evil");
  last_rule(m).regex = true;
  const RegexTable t(m.model());
  REQUIRE(t.built.validation.ok);
  const std::string path = "/" + std::string(40, 'a') + "!";
  CHECK(t.route("r.com", path) == "404");
  CHECK(t.patterns.limit_hits() == 1);
  CHECK(t.route("r.com", "/aaaa") == "evil");
}

TEST_CASE("pattern cache: a new generation compiles only new patterns, unused ones are dropped") {
  ModelBuilder m;
  m.prefix("r.com", "/a.*", "a");
  last_rule(m).regex = true;
  BuiltTable first(m.model());
  PatternCache cache;
  auto one = std::make_unique<PathPatterns>(first.view, cache);
  CHECK(cache.size() == 1);
  m.prefix("r.com", "/b.*", "b");
  BuiltTable second(m.model());
  const PathPatterns two(second.view, cache);
  CHECK(cache.size() == 2);
  one.reset();
  cache.trim();
  CHECK(cache.size() == 2);  // both still used by the second set
}

TEST_CASE("policy records: stored per rule in order, identical sets once, checked by their kind") {
  ModelBuilder m;
  m.prefix("a.com", "/x", "s");
  last_rule(m).policies = {policy::redirect(301, "https://n.com$request_uri", 0), policy::https_redirect(false)};
  m.prefix("b.com", "/x", "s");
  last_rule(m).policies = {policy::redirect(301, "https://n.com$request_uri", 0), policy::https_redirect(false)};
  m.prefix("c.com", "/x", "s");
  last_rule(m).policies = {policy::upstream_host("internal"), policy::forwarded_prefix("/x")};
  m.prefix("d.com", "/x", "s");
  const BuiltTable t(m.model());
  REQUIRE(t.validation.ok);
  CHECK(t.result.stats.policy_sets == 2);
  CHECK(t.result.stats.policy_records == 4);
  const auto a = t.view.lookup("a.com", "/x").rule->policies;
  CHECK(a == t.view.lookup("b.com", "/x").rule->policies);
  const auto records = t.view.policies(a);
  REQUIRE(records.size() == 2);
  CHECK(records[0].code == 301);
  CHECK(t.view.str(records[0].a) == "https://n.com$request_uri");
  CHECK(records[1].flags == (policy::kOnlyPlainHttp | policy::kTrimTrailingSlash));
  CHECK(t.view.lookup("d.com", "/x").rule->policies == format::kNone);

  // A record its kind refuses (a redirect code, a template with an unknown value, $1 on a plain path)
  // drops the rule: what a policy asks is never half applied.
  for (const PolicyRecord& bad : {policy::redirect(200, "https://x.com", 0), policy::redirect(301, "https://x/$nope", 0),
                                  policy::rewrite("/$1"), policy::upstream_host("a\r\nb")}) {
    ModelBuilder b;
    b.prefix("a.com", "/x", "s");
    last_rule(b).policies = {bad};
    b.prefix("ok.com", "/", "s");
    const BuiltTable built(b.model());
    REQUIRE(built.validation.ok);
    CHECK(built.result.diagnostics.size() == 1);
    CHECK(built.route("a.com", "/x") == "404");
    CHECK(built.route("ok.com", "/") == "s");
  }
}

TEST_CASE("host aliases: the host's rules under another name, unless a rule names it or an older alias took it") {
  ModelBuilder m;
  m.ingress("default", "old", 100);
  m.prefix("main.com", "/", "main");
  m.exact("main.com", "/exact", "exact");
  m.prefix("taken.com", "/", "taken");
  m.model().aliases.push_back({"alias.com", "main.com", 0});
  m.model().aliases.push_back({"taken.com", "main.com", 0});
  m.ingress("default", "young", 200);
  m.prefix("other.com", "/", "other");
  m.model().aliases.push_back({"alias.com", "other.com", 1});
  const BuiltTable t(m.model());
  REQUIRE(t.validation.ok);
  CHECK(t.route("alias.com", "/anything") == "main");
  CHECK(t.route("ALIAS.com", "/exact") == "exact");
  CHECK(t.route("taken.com", "/") == "taken");
  std::vector<std::string> messages;
  for (const Diagnostic& d : t.result.diagnostics) {
    CHECK(d.item == Item::kAlias);
    messages.push_back(d.message);
  }
  REQUIRE(messages.size() == 2);
  CHECK(messages[0].find("a rule names that host") != std::string::npos);
  CHECK(messages[1].find("already an alias of main.com") != std::string::npos);
}

TEST_CASE("host aliases get their host's host-wide records (one server, as in ingress-nginx)") {
  ModelBuilder m;
  m.prefix("main.com", "/", "main");
  m.model().aliases.push_back({"alias.com", "main.com", 0});
  m.model().host_policies.push_back({"main.com", 0, {policy::redirect(302, "$scheme://$http_host/app", policy::kOnlyRoot)}});
  const BuiltTable t(m.model());
  REQUIRE(t.validation.ok);
  const RouteMatch alias = t.view.lookup("alias.com", "/");
  REQUIRE(alias.server != nullptr);
  CHECK(alias.server->policies == t.view.lookup("main.com", "/").server->policies);
  CHECK(t.view.policies(alias.server->policies).size() == 1);
}

TEST_CASE("host-wide records: on the host, oldest first; an unless-routed one gives way to a real host") {
  ModelBuilder m;
  m.ingress("default", "young", 200);
  m.prefix("a.com", "/", "a");
  m.model().host_policies.push_back({"a.com", 0, {policy::redirect(302, "$scheme://$http_host/young", policy::kOnlyRoot)}});
  m.ingress("default", "old", 100);
  m.model().host_policies.push_back({"a.com", 1, {policy::redirect(302, "$scheme://$http_host/old", policy::kOnlyRoot)}});
  m.model().host_policies.push_back({"www.a.com", 1, {policy::redirect(308, "$scheme://a.com$request_uri", 0)}, true});
  m.model().host_policies.push_back({"a.com", 1, {policy::redirect(308, "$scheme://www.a.com$request_uri", 0)}, true});
  const BuiltTable t(m.model());
  REQUIRE(t.validation.ok);
  const RouteMatch root = t.view.lookup("a.com", "/");
  REQUIRE(root.server != nullptr);
  const auto records = t.view.policies(root.server->policies);
  REQUIRE(records.size() == 2);
  CHECK(t.view.str(records[0].a) == "$scheme://$http_host/old");
  CHECK(t.view.str(records[1].a) == "$scheme://$http_host/young");
  // www.a.com has no rule: a host entry of its own carries the redirect.
  const RouteMatch www = t.view.lookup("www.a.com", "/x");
  CHECK(www.rule == nullptr);
  REQUIRE(www.server != nullptr);
  CHECK(t.view.policies(www.server->policies).size() == 1);
  REQUIRE(t.result.diagnostics.size() == 1);
  CHECK(t.result.diagnostics[0].item == Item::kHostPolicy);
  CHECK(t.result.diagnostics[0].index == 3);
}

TEST_CASE("a record's backend and number: stored with the snapshot's index of that backend") {
  ModelBuilder m;
  m.backend("unused").backend("only-in-record", {{"10.0.0.9", 80}, {"10.0.0.8", 80}});
  m.prefix("a.com", "/x", "s");
  PolicyRecord record = policy::upstream_host("h");
  record.backend = m.backend_index("only-in-record");
  record.value = 5'000'000'000ULL;
  last_rule(m).policies = {record};
  const BuiltTable t(m.model());
  REQUIRE(t.validation.ok);
  const auto records = t.view.policies(t.view.lookup("a.com", "/x").rule->policies);
  REQUIRE(records.size() == 1);
  CHECK(records[0].value == 5'000'000'000ULL);
  REQUIRE(records[0].backend < t.view.backends().size());
  const format::BackendEntry& b = t.view.backends()[records[0].backend];
  CHECK(t.view.str(b.service) == "only-in-record");
  CHECK(b.ready_count == 2);
  CHECK(t.view.backends().size() == 2);  // "unused" is not stored

  // A record naming a backend the model does not have drops its rule, not the table.
  ModelBuilder bad;
  bad.prefix("a.com", "/x", "s");
  record.backend = 7;
  last_rule(bad).policies = {record};
  bad.prefix("ok.com", "/", "s");
  const BuiltTable built(bad.model());
  REQUIRE(built.validation.ok);
  REQUIRE(built.result.diagnostics.size() == 1);
  CHECK(built.result.diagnostics[0].message.find("missing or invalid backend") != std::string::npos);
  CHECK(built.route("a.com", "/x") == "404");
  CHECK(built.route("ok.com", "/") == "s");
}

TEST_CASE("snapshot validation refuses records it cannot trust") {
  ModelBuilder m;
  m.prefix("a.com", "/x", "s");
  last_rule(m).policies = {policy::redirect(301, "https://x.com", 0)};
  BuiltTable t(m.model());
  REQUIRE(t.validation.ok);
  const auto mutate = [&](auto&& change, const char* expected) {
    std::vector<std::byte> bytes = t.result.bytes;
    auto* header = reinterpret_cast<format::Header*>(bytes.data());
    auto* records = reinterpret_cast<format::PolicyRecord*>(bytes.data() + header->sections[format::kPolicyRecords].offset);
    auto* rules = reinterpret_cast<format::RuleEntry*>(bytes.data() + header->sections[format::kRules].offset);
    change(*records, *rules);
    SnapshotView view;
    const ValidationResult r = SnapshotView::open(bytes, view, false);
    CHECK_FALSE(r.ok);
    CHECK(r.error.find(expected) != std::string::npos);
  };
  mutate([](format::PolicyRecord& p, format::RuleEntry&) { p.kind = static_cast<format::PolicyKind>(99); }, "unknown kind");
  mutate([](format::PolicyRecord& p, format::RuleEntry&) { p.code = 200; }, "redirect code");
  mutate([](format::PolicyRecord& p, format::RuleEntry&) { p.a.offset = 1u << 30; }, "string outside");
  mutate([](format::PolicyRecord& p, format::RuleEntry&) { p.backend = 5; }, "backend out of range");
  mutate([](format::PolicyRecord&, format::RuleEntry& r) { r.policies = 7; }, "policies out of range");
}
