// auth-url and its family: how kroute reads them (agent/ingress/annotations.cc), the kExternalAuth records
// they become (agent/ingress/policies.cc), and what the compiler settles: a Service's name in auth-url
// becomes its ClusterIP, anything it cannot resolve denies the rule (fail closed).
#include <doctest.h>

#include <algorithm>

#include "cluster_fixture.h"
#include "compiler.h"
#include "hashing.h"
#include "ingress/annotations.h"
#include "ingress/policies.h"
#include "json_helpers.h"
#include "policy/deny.h"
#include "policy/external_auth.h"
#include "policy/kinds.h"
#include "snapshot.h"
#include "store.h"

using namespace kroute;
using namespace kroute::agent;
using kroute::agent::testing::has_warning;
using kroute::agent::testing::TestCluster;

namespace {

std::vector<PolicyRecord> auth_records(const IngressAnnotations& a) {
  std::vector<PolicyRecord> records = rule_policies(a, "/");
  std::erase_if(records, [](const PolicyRecord& p) { return p.kind != PolicyKind::kExternalAuth; });
  return records;
}

AnnotationReading read(const std::string& annotations) {
  return read_annotations(json(annotations), kDefaultAnnotationPrefix);
}

std::string with_url(const std::string& more) {
  return R"({"nginx.ingress.kubernetes.io/auth-url": "http://10.1.2.3:9000/verify")" + more + "}";
}

const Rule& rule_of(const CompiledTable& t, const std::string& host) {
  for (const Rule& r : t.model.rules) {
    if (r.host == host) return r;
  }
  FAIL("no rule for " << host);
  return t.model.rules.front();
}

}  // namespace

TEST_CASE("auth-url family: the records of a full set of annotations") {
  const AnnotationReading r = read(with_url(R"(,
      "nginx.ingress.kubernetes.io/auth-method": "POST",
      "nginx.ingress.kubernetes.io/auth-signin": "https://login.example/start",
      "nginx.ingress.kubernetes.io/auth-response-headers": " X-User , X-Email,,",
      "nginx.ingress.kubernetes.io/auth-request-redirect": "$scheme://$host$request_uri",
      "nginx.ingress.kubernetes.io/auth-cache-key": "$http_authorization",
      "nginx.ingress.kubernetes.io/auth-cache-duration": "200 1m, 401 10s",
      "nginx.ingress.kubernetes.io/auth-always-set-cookie": "true",
      "nginx.ingress.kubernetes.io/auth-keepalive": "10")"));
  CHECK(r.problems.empty());
  CHECK(r.values.access_denied.empty());
  const std::vector<PolicyRecord> records = auth_records(r.values);
  const std::vector<PolicyRecord> expected = {
      policy::external_auth("http://10.1.2.3:9000/verify", "10.1.2.3", 3, policy::kAuthAlwaysSetCookie),
      policy::external_auth_part(policy::kAuthSignin,
                                 "https://login.example/start?rd=$scheme://$http_host$escaped_request_uri"),
      policy::external_auth_part(policy::kAuthResponseHeaders, "X-User,X-Email"),
      policy::external_auth_part(policy::kAuthRequestRedirect, "$scheme://$host$request_uri"),
      policy::external_auth_part(policy::kAuthCache, "$http_authorization", "200=60 401=10",
                                 payload_checksum("/", 1)),
  };
  CHECK(records == expected);
  for (const PolicyRecord& p : records) CHECK(policy::check_record(p, false) == "");
}

TEST_CASE("auth-url family: defaults, and nothing without auth-url") {
  AnnotationReading r = read(with_url(R"(, "nginx.ingress.kubernetes.io/auth-cache-key": "$cookie_session")"));
  std::vector<PolicyRecord> records = auth_records(r.values);
  REQUIRE(records.size() == 2);
  CHECK(records[0] == policy::external_auth("http://10.1.2.3:9000/verify", "10.1.2.3", 0, 0));
  CHECK(records[1] == policy::external_auth_part(policy::kAuthCache, "$cookie_session", "200=300 202=300 401=300",
                                                 payload_checksum("/", 1)));
  // Another path of the Ingress keeps its answers apart.
  CHECK(external_auth_policies(r.values, "/other")[1].value != records[1].value);
  r = read(R"({"nginx.ingress.kubernetes.io/auth-signin": "https://login.example/"})");
  CHECK(auth_records(r.values).empty());
}

TEST_CASE("auth-signin: rd appended unless the URL has the parameter; auth-signin-redirect-param names it") {
  CHECK(signin_redirect("https://l/start", "") == "https://l/start?rd=$scheme://$http_host$escaped_request_uri");
  CHECK(signin_redirect("https://l/start?x=1", "") == "https://l/start?x=1&rd=$scheme://$http_host$escaped_request_uri");
  CHECK(signin_redirect("https://l/start?rd=$escaped_request_uri", "") == "https://l/start?rd=$escaped_request_uri");
  CHECK(signin_redirect("https://l/start?xrd=1", "") == "https://l/start?xrd=1&rd=$scheme://$http_host$escaped_request_uri");
  CHECK(signin_redirect("https://l/start?rd=", "") == "https://l/start?rd=&rd=$scheme://$http_host$escaped_request_uri");
  CHECK(signin_redirect("https://l/start", "next") == "https://l/start?next=$scheme://$http_host$escaped_request_uri");
}

TEST_CASE("auth-url family: values that cannot be read deny the Ingress (fail closed)") {
  const char* bad[][2] = {
      {"auth-url", "ftp://10.1.2.3/"},
      {"auth-url", "http://10.1.2.3/a b"},
      {"auth-url", "http://bad_host/"},
      {"auth-url", "http://$host/verify"},
      {"auth-url", "http://10.1.2.3/$request_body"},
      {"auth-url", "http://10.1.2.3/\\nproxy_pass x;"},
      {"auth-method", "PROPFIND"},
      {"auth-signin", "login"},
      {"auth-signin", "https://l/$cookie_x"},
      {"auth-response-headers", "X-User, X User"},
      {"auth-cache-key", "$request_body"},
      {"auth-cache-duration", "200 forever"},
      {"auth-always-set-cookie", "sometimes"},
      {"auth-proxy-set-headers", "n/headers"},
      {"auth-signin-redirect-param", "r d"},
      {"auth-request-redirect", "$foo"},
  };
  for (const auto& entry : bad) {
    // Named copies, not structured bindings: clang 14 (the sanitizer build) cannot capture those.
    const std::string name(entry[0]), value(entry[1]);
    const AnnotationReading r = read(with_url(std::string(R"(, "nginx.ingress.kubernetes.io/)") + name +
                                              R"(": ")" + value + "\""));
    CHECK_MESSAGE(!r.values.access_denied.empty(), name << ": " << value);
    CHECK_MESSAGE(std::any_of(r.problems.begin(), r.problems.end(),
                              [](const IngressProblem& p) { return p.reason == "AccessAnnotationInvalid"; }),
                  name);
    const std::vector<PolicyRecord> records = rule_policies(r.values, "/");
    REQUIRE_FALSE(records.empty());
    CHECK(records.front().kind == PolicyKind::kDeny);
  }
  // auth-keepalive is read, but a bad value only warns: it changes nothing.
  const AnnotationReading r = read(with_url(R"(, "nginx.ingress.kubernetes.io/auth-keepalive": "-1")"));
  CHECK(r.values.access_denied.empty());
  CHECK_FALSE(r.problems.empty());
}

TEST_CASE("compiler: auth-url's Service name becomes its ClusterIP; names it cannot resolve deny the rule") {
  TestCluster c;
  c.service("web");
  c.service("auth", "10.96.0.8");
  c.ingress("svc", "svc.com", "web", R"({"nginx.ingress.kubernetes.io/auth-url": "http://auth.n.svc:9000/verify"})");
  c.ingress("ip", "ip.com", "web", with_url(""));
  c.ingress("ext", "ext.com", "web", R"({"nginx.ingress.kubernetes.io/auth-url": "https://auth.example.com/verify"})");
  c.ingress("gone", "gone.com", "web", R"({"nginx.ingress.kubernetes.io/auth-url": "http://nope.n.svc/verify"})");
  const CompiledTable t = compile(c.store, c.options);

  const Rule& svc = rule_of(t, "svc.com");
  REQUIRE(svc.policies.size() >= 1);
  CHECK(svc.policies[0] == policy::external_auth("http://10.96.0.8:9000/verify", "auth.n.svc", 0, 0));
  CHECK(rule_of(t, "ip.com").policies[0] == policy::external_auth("http://10.1.2.3:9000/verify", "10.1.2.3", 0, 0));
  for (const char* host : {"ext.com", "gone.com"}) {
    const Rule& denied = rule_of(t, host);
    REQUIRE_FALSE(denied.policies.empty());
    CHECK_MESSAGE(denied.policies[0].kind == PolicyKind::kDeny, host);
  }
  CHECK(has_warning(t, "AuthUrlUnresolved", "neither an IP address"));
  CHECK(has_warning(t, "AuthUrlUnresolved", "n/nope not found"));
  CHECK(build_snapshot(t.model).diagnostics.empty());
}
