// auth-type/auth-secret/auth-secret-type/auth-realm and the CORS annotations: how the agent reads them
// (agent/ingress/annotations.cc), the records they make (policies.cc), and the kBasicAuth record the
// compiler fills from the Secret, or the rule it denies (agent/compiler.cc).
#include <doctest.h>

#include <algorithm>

#include "certificates.h"
#include "compiler.h"
#include "ingress/annotations.h"
#include "ingress/policies.h"
#include "json_helpers.h"
#include "policy/basic_auth.h"
#include "policy/cors.h"
#include "policy/kinds.h"
#include "store.h"

using namespace kroute;
using namespace kroute::agent;

namespace {

AnnotationReading read(const std::string& annotations) {
  return read_annotations(json(annotations), kDefaultAnnotationPrefix);
}

const PolicyRecord* find(const std::vector<PolicyRecord>& records, PolicyKind kind) {
  auto it = std::find_if(records.begin(), records.end(), [&](const PolicyRecord& p) { return p.kind == kind; });
  return it == records.end() ? nullptr : &*it;
}

std::string opaque(const std::string& ns, const std::string& name, const std::string& data) {
  return R"({"metadata": {"name": ")" + name + R"(", "namespace": ")" + ns + R"("}, "type": "Opaque", "data": {)" +
         data + "}}";
}

// One Ingress in namespace n with two paths (/ and /b) to s:80, with `annotations` and the Opaque Secrets.
struct Compiled {
  explicit Compiled(const std::string& annotations, const std::vector<std::string>& secrets = {}) {
    options.watch_without_class = true;
    for (const std::string& secret : secrets) store.apply(Kind::kOpaqueSecret, kube::EventType::kAdded, json(secret));
    store.apply(Kind::kService, kube::EventType::kAdded,
                json(R"({"metadata": {"name": "s", "namespace": "n"}, "spec": {"ports": [{"port": 80}]}})"));
    store.apply(Kind::kIngress, kube::EventType::kAdded,
                json(R"({"metadata": {"name": "i", "namespace": "n", "annotations": )" + annotations +
                     R"(}, "spec": {"rules": [{"host": "a.com", "http": {"paths": [
                     {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "s", "port": {"number": 80}}}},
                     {"path": "/b", "pathType": "Prefix", "backend": {"service": {"name": "s", "port": {"number": 80}}}}
                     ]}}]}})"));
    table = compile(store, options);
    REQUIRE(table.model.rules.size() == 2);
  }
  const std::vector<PolicyRecord>& policies(std::size_t i = 0) const { return table.model.rules[i].policies; }
  bool denied() const {
    return std::all_of(table.model.rules.begin(), table.model.rules.end(), [](const Rule& r) {
      return !r.policies.empty() && r.policies.front().kind == PolicyKind::kDeny &&
             find(r.policies, PolicyKind::kBasicAuth) == nullptr;
    });
  }
  const Warning* warning(const std::string& reason) const {
    auto it = std::find_if(table.warnings.begin(), table.warnings.end(), [&](const Warning& w) { return w.reason == reason; });
    return it == table.warnings.end() ? nullptr : &*it;
  }
  Metrics metrics;
  Store store{metrics, nullptr};
  CompileOptions options;
  CompiledTable table;
};

const std::string kAlice = "alice:$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/\n";
const std::string kBasic = R"({"nginx.ingress.kubernetes.io/auth-type": "basic",
    "nginx.ingress.kubernetes.io/auth-secret": "users", "nginx.ingress.kubernetes.io/auth-realm": "Go away"})";

}  // namespace

TEST_CASE("auth-* annotations: ingress-nginx's values; a bad one fails closed") {
  const AnnotationReading r = read(kBasic);
  CHECK(r.problems.empty());
  CHECK(r.values.auth_basic);
  CHECK(r.values.auth_secret == "users");
  CHECK_FALSE(r.values.auth_secret_map);
  CHECK(r.values.auth_realm == "Go away");
  CHECK(r.values.access_denied.empty());
  const std::vector<PolicyRecord> records = rule_policies(r.values, "/");
  const PolicyRecord* record = find(records, PolicyKind::kBasicAuth);
  REQUIRE(record != nullptr);
  CHECK(record->b == "Go away");
  CHECK(record->a.empty());  // the compiler's to fill
  CHECK(read(R"({"nginx.ingress.kubernetes.io/auth-secret-type": "auth-map"})").values.auth_secret_map);
  CHECK(read(R"({"nginx.ingress.kubernetes.io/auth-secret": "other/users"})").values.auth_secret == "other/users");

  for (const char* bad : {R"({"nginx.ingress.kubernetes.io/auth-type": "digest"})",
                          R"({"nginx.ingress.kubernetes.io/auth-type": "Basic "})",
                          R"({"nginx.ingress.kubernetes.io/auth-secret": "a/b/c"})",
                          R"({"nginx.ingress.kubernetes.io/auth-secret": "Users"})",
                          R"({"nginx.ingress.kubernetes.io/auth-secret-type": "file"})",
                          R"({"nginx.ingress.kubernetes.io/auth-realm": "say \"hi\""})"}) {
    CAPTURE(bad);
    const AnnotationReading b = read(bad);
    CHECK_FALSE(b.values.access_denied.empty());
    REQUIRE(b.problems.size() == 1);
    CHECK(b.problems[0].reason == "AccessAnnotationInvalid");
    CHECK(rule_policies(b.values, "/").front().kind == PolicyKind::kDeny);
  }
}

TEST_CASE("basic auth: the compiler fills the users from the Secret, or denies every path") {
  SUBCASE("auth-file") {
    const Compiled c(kBasic, {opaque("n", "users", R"("auth": ")" + base64(kAlice + "bob:garbage\n") + "\"")});
    for (std::size_t i = 0; i < 2; ++i) {
      const PolicyRecord* record = find(c.policies(i), PolicyKind::kBasicAuth);
      REQUIRE(record != nullptr);
      CHECK(record->a == kAlice);
      CHECK(find(c.policies(i), PolicyKind::kDeny) == nullptr);
    }
    const Warning* skipped = c.warning("AuthSecretLineSkipped");
    REQUIRE(skipped != nullptr);
    CHECK(skipped->message.find("line 2") != std::string::npos);
    CHECK(skipped->message.find("garbage") == std::string::npos);
  }
  SUBCASE("auth-map: each key a user") {
    const Compiled c(R"({"nginx.ingress.kubernetes.io/auth-type": "basic", "nginx.ingress.kubernetes.io/auth-secret": "n/map",
                         "nginx.ingress.kubernetes.io/auth-secret-type": "auth-map"})",
                     {opaque("n", "map", R"("alice": ")" + base64("{PLAIN}pw\n") + R"(", "bob": ")" + base64("nohash") + "\"")});
    const PolicyRecord* record = find(c.policies(), PolicyKind::kBasicAuth);
    REQUIRE(record != nullptr);
    CHECK(record->a == "alice:{PLAIN}pw\n");
    const Warning* skipped = c.warning("AuthSecretLineSkipped");
    REQUIRE(skipped != nullptr);
    CHECK(skipped->message.find("key bob") != std::string::npos);
  }
  SUBCASE("fail closed") {
    const std::string users = opaque("n", "users", R"("auth": ")" + base64(kAlice) + "\"");
    struct Case {
      std::string annotations;
      std::vector<std::string> secrets;
      std::string says;
    };
    const Case cases[] = {
        {kBasic, {}, "not found"},
        {kBasic, {opaque("n", "users", R"("ca.crt": ")" + base64("x") + "\"")}, "has no `auth` key"},
        {kBasic, {opaque("n", "users", R"("auth": ")" + base64("alice:plaintext\n# x\n") + "\"")}, "no usable user"},
        {kBasic, {opaque("n", "users", R"("other": ")" + base64("{PLAIN}x") + "\"")}, "has no `auth` key"},
        {R"({"nginx.ingress.kubernetes.io/auth-type": "basic"})", {users}, "needs an auth-secret"},
        {R"({"nginx.ingress.kubernetes.io/auth-secret": "users"})", {users}, "auth-type is not basic"},
        {R"({"nginx.ingress.kubernetes.io/auth-type": "basic", "nginx.ingress.kubernetes.io/auth-secret": "o/users"})",
         {opaque("o", "users", R"("auth": ")" + base64(kAlice) + "\"")}, "not in the Ingress's namespace"},
    };
    for (const Case& test : cases) {
      CAPTURE(test.annotations);
      CAPTURE(test.says);
      const Compiled c(test.annotations, test.secrets);
      CHECK(c.denied());
      const Warning* warning = c.warning("AuthSecretInvalid");
      REQUIRE(warning != nullptr);
      CHECK(warning->message.find(test.says) != std::string::npos);
      CHECK(warning->message.find("$apr1$") == std::string::npos);
    }
  }
}

TEST_CASE("CORS annotations: ingress-nginx's defaults and lists; never more than asked") {
  const AnnotationReading defaults = read(R"({"nginx.ingress.kubernetes.io/enable-cors": "true"})");
  const std::vector<PolicyRecord> default_records = rule_policies(defaults.values, "/");
  const PolicyRecord* record = find(default_records, PolicyKind::kCors);
  REQUIRE(record != nullptr);
  CHECK(record->flags == (policy::kCorsCredentials | policy::kCorsAnyOrigin));
  CHECK(record->a.empty());
  CHECK(record->b == std::string(policy::kDefaultCorsMethods) + "\n" + std::string(policy::kDefaultCorsHeaders) + "\n");
  CHECK(record->value == 1728000);
  CHECK(find(rule_policies(read("{}").values, "/"), PolicyKind::kCors) == nullptr);

  const AnnotationReading set = read(R"({"nginx.ingress.kubernetes.io/enable-cors": "true",
      "nginx.ingress.kubernetes.io/cors-allow-origin": "https://origin-123.cors.com:8080,   ,http://*.b.com, bad.com,",
      "nginx.ingress.kubernetes.io/cors-allow-methods": "GET, POST",
      "nginx.ingress.kubernetes.io/cors-allow-headers": "X-Foo",
      "nginx.ingress.kubernetes.io/cors-expose-headers": "X-Bar, *",
      "nginx.ingress.kubernetes.io/cors-allow-credentials": "false",
      "nginx.ingress.kubernetes.io/cors-max-age": "60"})");
  REQUIRE(set.problems.size() == 1);  // bad.com dropped
  CHECK(set.problems[0].message.find("bad.com") != std::string::npos);
  const std::vector<PolicyRecord> set_records = rule_policies(set.values, "/");
  record = find(set_records, PolicyKind::kCors);
  REQUIRE(record != nullptr);
  CHECK(record->flags == 0);
  CHECK(record->a == "https://origin-123.cors.com:8080 http://*.b.com");
  CHECK(record->b == "GET, POST\nX-Foo\nX-Bar, *");
  CHECK(record->value == 60);
  CHECK(policy::check_record(*record, false) == "");

  // "*" anywhere in the list: any origin (ingress-nginx's parser).
  CHECK(read(R"({"nginx.ingress.kubernetes.io/cors-allow-origin": "https://a.com, *"})").values.cors_origins == "*");
  // Nothing valid: no origin at all (ingress-nginx would fall back to *).
  const AnnotationReading none = read(R"({"nginx.ingress.kubernetes.io/enable-cors": "true",
      "nginx.ingress.kubernetes.io/cors-allow-origin": "a.com, $http_host"})");
  CHECK(none.values.cors_origins.empty());
  CHECK(find(rule_policies(none.values, "/"), PolicyKind::kCors) == nullptr);
  // A bad methods, headers, expose or credentials value: no CORS.
  for (const char* bad : {R"(cors-allow-methods": "GET;DROP")", R"(cors-allow-headers": "X-A: b")",
                          R"(cors-expose-headers": "$upstream_addr")", R"(cors-allow-credentials": "maybe")"}) {
    CAPTURE(bad);
    const AnnotationReading b =
        read(std::string(R"({"nginx.ingress.kubernetes.io/enable-cors": "true", "nginx.ingress.kubernetes.io/)") + bad + "}");
    CHECK(b.problems.size() == 1);
    CHECK(find(rule_policies(b.values, "/"), PolicyKind::kCors) == nullptr);
    CHECK(b.values.access_denied.empty());  // CORS only ever narrows: the rule itself is served
  }
  // enable-cors invalid: off; max-age invalid: the default.
  CHECK_FALSE(read(R"({"nginx.ingress.kubernetes.io/enable-cors": "yes"})").values.enable_cors);
  CHECK(read(R"({"nginx.ingress.kubernetes.io/cors-max-age": "-5"})").values.cors_max_age == 1728000);
}
