// ingress-nginx's annotations as kroute reads them (agent/ingress/annotations.cc) and the policy records
// they become (agent/ingress/policies.cc).
#include <doctest.h>

#include <algorithm>
#include <set>
#include <utility>
#include <vector>

#include "ingress/annotations.h"
#include "ingress/policies.h"
#include "json_helpers.h"
#include "policy/affinity.h"
#include "policy/balance.h"
#include "policy/redirect.h"

using namespace kroute;
using namespace kroute::agent;

namespace {

AnnotationReading read(const std::string& annotations, std::string_view prefix = kDefaultAnnotationPrefix) {
  return read_annotations(json(annotations), prefix);
}

bool has_problem(const AnnotationReading& r, const std::string& reason, const std::string& text) {
  return std::any_of(r.problems.begin(), r.problems.end(), [&](const IngressProblem& p) {
    return p.reason == reason && p.message.find(text) != std::string::npos;
  });
}

Verdict verdict_of(const AnnotationReading& r, const std::string& key) {
  for (const AnnotationVerdict& v : r.verdicts) {
    if (v.key == key) return v.verdict;
  }
  FAIL("no verdict for " << key);
  return Verdict::kIgnored;
}

}  // namespace

TEST_CASE("annotations: one declaration per name, every supported one with a reader") {
  std::set<std::string_view> names;
  for (const AnnotationSpec& spec : annotation_specs()) {
    CHECK_MESSAGE(names.insert(spec.name).second, "declared twice: " << spec.name);
    CHECK((spec.read != nullptr) == (spec.support == Support::kSupported));
    CHECK_FALSE(spec.note.empty());
  }
  for (const char* name : {"use-regex", "rewrite-target", "app-root", "permanent-redirect", "temporal-redirect",
                           "force-ssl-redirect", "ssl-redirect", "preserve-trailing-slash", "from-to-www-redirect",
                           "server-alias", "x-forwarded-prefix", "upstream-vhost"}) {
    REQUIRE(find_annotation(name) != nullptr);
    CHECK(find_annotation(name)->support == Support::kSupported);
  }
  CHECK(find_annotation("configuration-snippet")->snippet);
  CHECK(annotations_markdown("nginx.ingress.kubernetes.io").find("| `nginx.ingress.kubernetes.io/use-regex` | supported |") !=
        std::string::npos);
}

TEST_CASE("annotations: kroute.dev wins; an invalid kroute.dev value falls back; --annotation-prefix") {
  auto r = read(R"({"nginx.ingress.kubernetes.io/upstream-vhost": "a.internal", "kroute.dev/upstream-vhost": "b.internal"})");
  CHECK(r.values.upstream_vhost == "b.internal");
  CHECK(verdict_of(r, "kroute.dev/upstream-vhost") == Verdict::kHonoured);
  CHECK(verdict_of(r, "nginx.ingress.kubernetes.io/upstream-vhost") == Verdict::kIgnored);
  r = read(R"({"nginx.ingress.kubernetes.io/upstream-vhost": "a.internal", "kroute.dev/upstream-vhost": "b c"})");
  CHECK(r.values.upstream_vhost == "a.internal");
  CHECK(has_problem(r, "InvalidAnnotation", "kroute.dev/upstream-vhost is ignored"));
  r = read(R"({"nginx.ingress.kubernetes.io/use-regex": "true", "custom.io/use-regex": "true"})", "custom.io");
  CHECK(r.values.use_regex);
  CHECK(r.verdicts.size() == 1);
}

TEST_CASE("annotations: values as ingress-nginx reads them, bad ones ignored with a reason") {
  auto r = read(R"({"nginx.ingress.kubernetes.io/ssl-redirect": "False", "nginx.ingress.kubernetes.io/use-regex": "yes"})");
  CHECK_FALSE(r.values.ssl_redirect);
  CHECK_FALSE(r.values.use_regex);
  CHECK(has_problem(r, "InvalidAnnotation", "use-regex is ignored: \"yes\" is not true or false"));

  r = read(R"({"nginx.ingress.kubernetes.io/permanent-redirect": "https://new.example.com$request_uri",
               "nginx.ingress.kubernetes.io/permanent-redirect-code": "308",
               "nginx.ingress.kubernetes.io/temporal-redirect-code": "200"})");
  CHECK(r.values.permanent_redirect == "https://new.example.com$request_uri");
  CHECK(r.values.permanent_redirect_code == 308);
  CHECK(r.values.temporal_redirect_code == 302);
  CHECK(has_problem(r, "InvalidAnnotation", "temporal-redirect-code is ignored"));

  for (const char* bad : {"not a url", "ftp://x.com/", "https:///nohost", "https://x.com/$foo", "/relative"}) {
    r = read(std::string(R"({"nginx.ingress.kubernetes.io/permanent-redirect": ")") + bad + "\"}");
    CHECK_MESSAGE(r.values.permanent_redirect.empty(), bad);
    CHECK_MESSAGE(r.problems.size() == 1, bad);
  }
  r = read(R"({"nginx.ingress.kubernetes.io/app-root": "app"})");
  CHECK(r.values.app_root.empty());
  r = read(R"({"nginx.ingress.kubernetes.io/app-root": "/app1", "nginx.ingress.kubernetes.io/rewrite-target": "/$2",
               "nginx.ingress.kubernetes.io/server-alias": " a.com, *.b.com ,, C.com"})");
  CHECK(r.values.app_root == "/app1");
  CHECK(r.values.rewrite_target == "/$2");
  CHECK(r.values.server_alias == std::vector<std::string>{"a.com", "*.b.com", "c.com"});
  r = read(R"({"nginx.ingress.kubernetes.io/server-alias": "a.com, bad_host!"})");
  CHECK(r.values.server_alias.empty());
  r = read(R"({"nginx.ingress.kubernetes.io/x-forwarded-prefix": "/p\r\nX-Evil: 1"})");
  CHECK(r.values.x_forwarded_prefix.empty());
  r = read(R"({"nginx.ingress.kubernetes.io/x-forwarded-prefix": ")" + std::string(kMaxAnnotationValue + 1, 'a') + "\"}");
  CHECK(r.values.x_forwarded_prefix.empty());
  CHECK(has_problem(r, "InvalidAnnotation", "longer than 4096 bytes"));
  // 1 MB (more than the API server accepts for all annotations together, so only a projection from a
  // fuzzer or a broken client sees it): ignored the same way, and the message does not carry it.
  r = read(R"({"nginx.ingress.kubernetes.io/permanent-redirect": "https://x.com/)" + std::string(1 << 20, 'a') +
           R"(", "nginx.ingress.kubernetes.io/use-regex": "true"})");
  CHECK(r.values.permanent_redirect.empty());
  CHECK(r.values.use_regex);
  REQUIRE(r.problems.size() == 1);
  CHECK(r.problems[0].message.size() < 200);
}

TEST_CASE("annotations: snippets are refused, others unsupported ignored, all reported for the audit") {
  const auto r = read(R"({"nginx.ingress.kubernetes.io/configuration-snippet": "more_set_headers x;",
                          "nginx.ingress.kubernetes.io/custom-headers": "ns/headers",
                          "nginx.ingress.kubernetes.io/no-such-thing": "1",
                          "other.io/rewrite-target": "/x",
                          "nginx.ingress.kubernetes.io/use-regex": "true"})");
  CHECK(has_problem(r, "AnnotationRefused", "configuration-snippet is refused"));
  CHECK(verdict_of(r, "nginx.ingress.kubernetes.io/configuration-snippet") == Verdict::kRefused);
  CHECK(verdict_of(r, "nginx.ingress.kubernetes.io/custom-headers") == Verdict::kIgnored);
  CHECK(verdict_of(r, "nginx.ingress.kubernetes.io/no-such-thing") == Verdict::kIgnored);
  CHECK(verdict_of(r, "nginx.ingress.kubernetes.io/use-regex") == Verdict::kHonoured);
  CHECK(r.verdicts.size() == 4);
  CHECK(r.values.rewrite_target.empty());
}

TEST_CASE("annotation policies: a rule's records in ingress-nginx's order") {
  IngressAnnotations a;
  // ssl-redirect (default true): an https redirect the builder keeps only when the host has TLS.
  const auto if_tls = policy::https_redirect(false, true);
  CHECK((if_tls.flags & policy::kIfHostHasTls) != 0);
  CHECK(rule_policies(a, "/") == std::vector<PolicyRecord>{if_tls});
  CHECK(rule_policies(a, "/.well-known/acme-challenge/x").empty());
  a.ssl_redirect = false;
  CHECK(rule_policies(a, "/").empty());
  a.force_ssl_redirect = true;
  CHECK(rule_policies(a, "/") == std::vector<PolicyRecord>{policy::https_redirect(false)});
  a.preserve_trailing_slash = true;
  CHECK(rule_policies(a, "/")[0].flags == policy::kOnlyPlainHttp);
  a = {};
  a.permanent_redirect = "https://p.com";
  a.temporal_redirect = "https://t.com";
  a.temporal_redirect_code = 307;
  a.rewrite_target = "/$1";
  a.upstream_vhost = "up";
  a.x_forwarded_prefix = "/x";
  const auto records = rule_policies(a, "/");
  REQUIRE(records.size() == 5);
  CHECK(records[0] == policy::redirect(307, "https://t.com", 0));  // temporal wins, before the https redirect
  CHECK(records[1] == if_tls);
  CHECK(records[2].kind == PolicyKind::kRewrite);
  CHECK(records[3].kind == PolicyKind::kUpstreamHost);
  CHECK(records[4].kind == PolicyKind::kForwardedPrefix);
  CHECK(regex_paths(a));
}

TEST_CASE("annotation policies: app-root and www redirects per host, aliases") {
  IngressAnnotations a;
  a.app_root = "/app1";
  a.from_to_www_redirect = true;
  a.server_alias = {"alias.com"};
  std::vector<HostPolicy> policies;
  std::vector<HostAlias> aliases;
  host_policies(a, {"foo.com", "www.bar.com", "", "*.w.com"}, [](const std::string& h) { return h == "bar.com"; },
                policies, aliases);
  // foo.com: app-root + www.foo.com -> foo.com; www.bar.com: app-root + bar.com -> www.bar.com (https: no
  // TLS for www.bar.com); *.w.com: app-root only.
  REQUIRE(policies.size() == 5);
  CHECK(policies[0].host == "foo.com");
  CHECK(policies[0].records[0] == policy::redirect(302, "$scheme://$http_host/app1", policy::kOnlyRoot));
  CHECK(policies[1].host == "www.foo.com");
  CHECK(policies[1].unless_routed);
  CHECK(policies[1].records[0].a == "$scheme://foo.com$request_uri");
  CHECK(policies[3].host == "bar.com");
  CHECK(policies[3].records[0].a == "$scheme://www.bar.com$request_uri");
  CHECK(policies[4].host == "*.w.com");
  policies.clear();
  aliases.clear();
  host_policies(a, {"www.bar.com"}, [](const std::string& h) { return h == "www.bar.com"; }, policies, aliases);
  CHECK(policies[1].records[0].a == "https://www.bar.com$request_uri");
  REQUIRE(aliases.size() == 1);
  CHECK(aliases[0].alias == "alias.com");
  CHECK(aliases[0].host == "www.bar.com");
}

TEST_CASE("proxy annotations: ingress-nginx's syntax and defaults, bad values keep the default") {
  using policy::ProxySetting;
  auto r = read(R"({"nginx.ingress.kubernetes.io/proxy-connect-timeout": "3",
                    "nginx.ingress.kubernetes.io/proxy-read-timeout": "120",
                    "nginx.ingress.kubernetes.io/proxy-send-timeout": "30",
                    "nginx.ingress.kubernetes.io/proxy-next-upstream": "error timeout http_502 non_idempotent",
                    "nginx.ingress.kubernetes.io/proxy-next-upstream-tries": "0",
                    "nginx.ingress.kubernetes.io/proxy-next-upstream-timeout": "10",
                    "nginx.ingress.kubernetes.io/proxy-body-size": "8m",
                    "nginx.ingress.kubernetes.io/client-body-buffer-size": "16k",
                    "nginx.ingress.kubernetes.io/proxy-buffering": "on",
                    "nginx.ingress.kubernetes.io/proxy-buffer-size": "8k",
                    "nginx.ingress.kubernetes.io/proxy-buffers-number": "8",
                    "nginx.ingress.kubernetes.io/proxy-request-buffering": "off",
                    "nginx.ingress.kubernetes.io/proxy-max-temp-file-size": "0"})");
  CHECK(r.problems.empty());
  CHECK(r.values.proxy_connect_timeout_ms == 3000);
  CHECK(r.values.proxy_read_timeout_ms == 120000);
  CHECK(r.values.proxy_send_timeout_ms == 30000);
  CHECK(r.values.proxy_next_upstream ==
        (policy::kNextError | policy::kNextTimeout | policy::kNextHttp502 | policy::kNextNonIdempotent));
  CHECK(r.values.proxy_next_upstream_tries == 0);
  CHECK(r.values.proxy_next_upstream_timeout_ms == 10000);
  CHECK(r.values.proxy_body_size == 8u << 20);
  CHECK(r.values.client_body_buffer_size == 16u << 10);
  CHECK(r.values.proxy_buffering == 1);
  CHECK(r.values.proxy_buffer_size == 8u << 10);
  CHECK(r.values.proxy_buffers_number == 8);
  CHECK(r.values.proxy_request_buffering == 0);
  CHECK(r.values.proxy_max_temp_file_size == 0);
  const auto records = rule_policies(r.values, "/");
  CHECK(std::count_if(records.begin(), records.end(),
                      [](const PolicyRecord& p) { return p.kind == PolicyKind::kProxySetting; }) == 13);
  CHECK(std::find(records.begin(), records.end(), policy::proxy_setting(ProxySetting::kBodySize, 8u << 20)) !=
        records.end());

  // ingress-nginx's defaults make no record; a value equal to the default neither
  IngressAnnotations defaults;
  CHECK(defaults.proxy_body_size == 1u << 20);
  CHECK(defaults.proxy_buffering == 0);
  r = read(R"({"nginx.ingress.kubernetes.io/proxy-read-timeout": "60", "nginx.ingress.kubernetes.io/proxy-body-size": "1m"})");
  CHECK(r.problems.empty());
  CHECK(r.values == defaults);
  r = read(R"({"nginx.ingress.kubernetes.io/proxy-body-size": "0"})");
  CHECK(rule_policies(r.values, "/") ==
        std::vector<PolicyRecord>{policy::https_redirect(false, true), policy::proxy_setting(ProxySetting::kBodySize, 0)});

  // (no structured binding: clang 14 cannot capture one in doctest's CHECK_MESSAGE)
  for (const std::pair<std::string, std::string>& bad : std::vector<std::pair<std::string, std::string>>{
           {"proxy-read-timeout", "-5"}, {"proxy-read-timeout", "5s"}, {"proxy-connect-timeout", "0"},
           {"proxy-body-size", "10x"}, {"proxy-body-size", "1b"}, {"client-body-buffer-size", "1g"},
           {"proxy-buffers-number", "1"}, {"proxy-buffering", "On"}, {"proxy-next-upstream", "error off"},
           {"proxy-next-upstream", "bogus"}, {"proxy-next-upstream-tries", "1001"}, {"proxy-buffer-size", "0"}}) {
    const std::string& name = bad.first;
    const std::string& value = bad.second;
    r = read("{\"nginx.ingress.kubernetes.io/" + name + "\": \"" + value + "\"}");
    CHECK_MESSAGE(r.values == defaults, name << "=" << value);
    CHECK_MESSAGE(has_problem(r, "InvalidAnnotation", name + " is ignored"), name << "=" << value);
  }
}

TEST_CASE("annotations: canary, affinity, hashing and balancing values; bad ones keep the defaults") {
  const auto read = [](const std::string& text) {
    return read_annotations(json(text), kDefaultAnnotationPrefix);
  };
  auto r = read(R"({"nginx.ingress.kubernetes.io/canary": "true",
                    "nginx.ingress.kubernetes.io/canary-by-header": "X-Canary",
                    "nginx.ingress.kubernetes.io/canary-by-header-value": "v2",
                    "nginx.ingress.kubernetes.io/canary-by-cookie": "c",
                    "nginx.ingress.kubernetes.io/canary-weight": "25",
                    "nginx.ingress.kubernetes.io/canary-weight-total": "1000",
                    "nginx.ingress.kubernetes.io/affinity": "cookie",
                    "nginx.ingress.kubernetes.io/affinity-mode": "persistent",
                    "nginx.ingress.kubernetes.io/session-cookie-max-age": "60",
                    "nginx.ingress.kubernetes.io/session-cookie-samesite": "Strict",
                    "nginx.ingress.kubernetes.io/upstream-hash-by": "$request_uri",
                    "nginx.ingress.kubernetes.io/load-balance": "ewma"})");
  CHECK(r.problems.empty());
  CHECK(r.values.canary);
  CHECK(r.values.canary_by_header == "X-Canary");
  CHECK(r.values.canary_by_header_value == "v2");
  CHECK(r.values.canary_weight == 25);
  CHECK(r.values.canary_weight_total == 1000);
  CHECK(r.values.affinity_cookie);
  CHECK(r.values.affinity_persistent);
  CHECK(r.values.session_cookie_name == "INGRESSCOOKIE");
  CHECK(r.values.session_cookie_max_age == "60");
  CHECK(r.values.upstream_hash_by == "$request_uri");
  CHECK(r.values.load_balance_ewma);
  // Affinity wins over hashing (ingress-nginx's balancer.lua); the cookie's attributes are rendered once.
  const auto records = rule_policies(r.values, "/app");
  REQUIRE(records.size() == 3);  // https redirect, affinity, hash
  CHECK(records[1].kind == PolicyKind::kAffinity);
  CHECK(records[1].code == policy::kPersistent);
  CHECK(records[1].b == "; Path=/app; Max-Age=60; SameSite=Strict; HttpOnly");
  CHECK(records[2] == policy::balance(policy::kHash, "$request_uri"));
  // Conditional SameSite=None: left to the module, per client.
  IngressAnnotations none = r.values;
  none.session_cookie_samesite = "None";
  none.session_cookie_conditional_samesite_none = true;
  const auto conditional = rule_policies(none, "/app");
  CHECK(conditional[1].b == "; Path=/app; Max-Age=60; HttpOnly");
  CHECK((conditional[1].flags & policy::kConditionalSameSiteNone) != 0);

  r = read(R"({"nginx.ingress.kubernetes.io/canary-weight": "-5",
               "nginx.ingress.kubernetes.io/canary-weight-total": "0",
               "nginx.ingress.kubernetes.io/canary-by-header": "X Bad",
               "nginx.ingress.kubernetes.io/affinity": "ip",
               "nginx.ingress.kubernetes.io/affinity-mode": "sticky",
               "nginx.ingress.kubernetes.io/session-cookie-samesite": "lax",
               "nginx.ingress.kubernetes.io/session-cookie-path": "/a;b",
               "nginx.ingress.kubernetes.io/upstream-hash-by": "$a b",
               "nginx.ingress.kubernetes.io/load-balance": "least_conn",
               "nginx.ingress.kubernetes.io/canary-by-header-pattern": "(unclosed"})");
  CHECK(r.problems.size() == 10);
  CHECK(r.values == IngressAnnotations{});

  // Bytes that are not UTF-8 never reach the table (its strings are printed and logged), whatever the
  // annotation's own parser would take: the API server never sends them, a fuzzer did.
  r = read("{\"nginx.ingress.kubernetes.io/canary-by-header-pattern\": \"\x93^(a+)+$\"}");
  REQUIRE(r.problems.size() == 1);
  CHECK(r.problems[0].message.find("not valid UTF-8") != std::string::npos);
  CHECK(r.values == IngressAnnotations{});
}
