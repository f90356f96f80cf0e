// backend-protocol, proxy-http-version and proxy-ssl-*: how the agent reads them (agent/ingress/) and the
// kProtocol record the compiler completes from proxy-ssl-secret (agent/compiler.cc).
#include <doctest.h>

#include <algorithm>

#include "certificates.h"
#include "compiler.h"
#include "ingress/annotations.h"
#include "ingress/policies.h"
#include "json_helpers.h"
#include "policy/protocol.h"
#include "store.h"

using namespace kroute;
using namespace kroute::agent;

namespace {

AnnotationReading read(const std::string& annotations) { return read_annotations(json(annotations), kDefaultAnnotationPrefix); }

const PolicyRecord* protocol_record(const std::vector<PolicyRecord>& records) {
  auto it = std::find_if(records.begin(), records.end(), [](const PolicyRecord& p) { return p.kind == PolicyKind::kProtocol; });
  return it == records.end() ? nullptr : &*it;
}

// One Ingress in namespace n for a.com/ -> s:80 with `annotations`, the Secrets given, compiled.
struct Compiled {
  explicit Compiled(const std::string& annotations, const std::vector<std::string>& secrets = {}) {
    options.watch_without_class = true;
    for (const std::string& secret : secrets) store.apply(Kind::kSecret, kube::EventType::kAdded, json(secret));
    store.apply(Kind::kService, kube::EventType::kAdded,
                json(R"({"metadata": {"name": "s", "namespace": "n"}, "spec": {"ports": [{"port": 80}]}})"));
    store.apply(Kind::kIngress, kube::EventType::kAdded,
                json(R"({"metadata": {"name": "i", "namespace": "n", "annotations": )" + annotations +
                     R"(}, "spec": {"rules": [{"host": "a.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                     "backend": {"service": {"name": "s", "port": {"number": 80}}}}]}}]}})"));
    table = compile(store, options);
    REQUIRE(table.model.rules.size() == 1);
    record = protocol_record(table.model.rules[0].policies);
  }
  // Whether the rule answers 503: its first record is a deny (policy/deny.h).
  bool denied() const {
    const std::vector<PolicyRecord>& records = table.model.rules[0].policies;
    return !records.empty() && records.front().kind == PolicyKind::kDeny && records.front().code == 503;
  }
  bool warned(const std::string& reason) const {
    return std::any_of(table.warnings.begin(), table.warnings.end(), [&](const Warning& w) { return w.reason == reason; });
  }
  Metrics metrics;
  Store store{metrics, nullptr};
  CompileOptions options;
  CompiledTable table;
  const PolicyRecord* record = nullptr;
};

std::string secret_json(const std::string& ns, const std::string& name, const std::string& data) {
  return R"({"metadata": {"name": ")" + name + R"(", "namespace": ")" + ns +
         R"("}, "type": "kubernetes.io/tls", "data": {)" + data + "}}";
}

}  // namespace

TEST_CASE("backend-protocol and proxy-http-version: ingress-nginx's values, bad ones keep HTTP and 1.1") {
  CHECK(read(R"({"nginx.ingress.kubernetes.io/backend-protocol": "HTTPS"})").values.backend_protocol == policy::kHttps);
  CHECK(read(R"({"nginx.ingress.kubernetes.io/backend-protocol": " grpcs "})").values.backend_protocol == policy::kGrpcs);
  CHECK(read(R"({"nginx.ingress.kubernetes.io/backend-protocol": "GRPC"})").values.backend_protocol == policy::kGrpc);
  CHECK(read(R"({"nginx.ingress.kubernetes.io/backend-protocol": "auto_http"})").values.backend_protocol == policy::kAutoHttp);
  for (const char* bad : {"FCGI", "h2c", "", "HTTP2"}) {
    CAPTURE(bad);
    const AnnotationReading r = read(std::string(R"({"nginx.ingress.kubernetes.io/backend-protocol": ")") + bad + "\"}");
    CHECK(r.values.backend_protocol == policy::kHttp);
    CHECK(r.problems.size() == 1);
  }
  CHECK(read(R"({"nginx.ingress.kubernetes.io/proxy-http-version": "1.0"})").values.proxy_http_10);
  const AnnotationReading bad = read(R"({"nginx.ingress.kubernetes.io/proxy-http-version": "2"})");
  CHECK_FALSE(bad.values.proxy_http_10);
  CHECK(bad.problems.size() == 1);
  // Defaults make no record: a plain rule costs nothing.
  CHECK(protocol_record(rule_policies(IngressAnnotations{}, "/")) == nullptr);
}

TEST_CASE("proxy-ssl-*: values as ingress-nginx reads them") {
  const AnnotationReading r = read(R"({"nginx.ingress.kubernetes.io/proxy-ssl-secret": "n/ca",
      "nginx.ingress.kubernetes.io/proxy-ssl-verify": "on", "nginx.ingress.kubernetes.io/proxy-ssl-name": "Backend.N.svc",
      "nginx.ingress.kubernetes.io/proxy-ssl-server-name": "on", "nginx.ingress.kubernetes.io/proxy-ssl-verify-depth": "3",
      "nginx.ingress.kubernetes.io/proxy-ssl-protocols": "TLSv1.3 TLSv1.2"})");
  CHECK(r.problems.empty());
  CHECK(r.values.proxy_ssl_secret == "n/ca");
  CHECK(r.values.proxy_ssl_verify);
  CHECK(r.values.proxy_ssl_name == "backend.n.svc");
  CHECK(r.values.proxy_ssl_server_name);
  CHECK(r.values.proxy_ssl_verify_depth == 3);
  CHECK(r.values.proxy_ssl_min_version == 3);
  CHECK(r.values.proxy_ssl_max_version == 4);
  const PolicyRecord record = protocol_policy(r.values);
  CHECK(record.flags == (policy::kVerify | policy::kServerName));
  CHECK(policy::min_tls_version(record.value) == 3);
  CHECK(policy::max_tls_version(record.value) == 4);
  CHECK(policy::verify_depth(record.value) == 3);

  const AnnotationReading bad = read(R"({"nginx.ingress.kubernetes.io/proxy-ssl-secret": "ca",
      "nginx.ingress.kubernetes.io/proxy-ssl-verify": "yes", "nginx.ingress.kubernetes.io/proxy-ssl-name": "a b",
      "nginx.ingress.kubernetes.io/proxy-ssl-server-name": "true", "nginx.ingress.kubernetes.io/proxy-ssl-verify-depth": "-1",
      "nginx.ingress.kubernetes.io/proxy-ssl-protocols": "SSLv3"})");
  CHECK(bad.problems.size() == 6);
  CHECK(bad.values == IngressAnnotations{});
}

TEST_CASE("proxy-ssl-secret: CA and client certificate in the record; anything unusable denies the rule") {
  const TestCertificate ca = make_certificate("ca.test");
  const TestCertificate client = make_certificate("client.test");
  const std::string full = secret_json("n", "full", R"("ca.crt": ")" + base64(ca.chain_pem) + R"(", "tls.crt": ")" +
                                                        base64(client.chain_pem) + R"(", "tls.key": ")" +
                                                        base64(client.key_pem) + "\"");
  const std::string ca_only = secret_json("n", "ca-only", R"("ca.crt": ")" + base64(ca.chain_pem) + R"(", "tls.crt": "", "tls.key": "")");
  const std::string no_ca = secret_json("n", "no-ca", R"("tls.crt": ")" + base64(client.chain_pem) + R"(", "tls.key": ")" +
                                                          base64(client.key_pem) + "\"");
  const std::string bad_ca = secret_json("n", "bad-ca", R"("ca.crt": ")" + base64("not a certificate") + "\"");
  const std::string elsewhere = secret_json("other", "full", R"("ca.crt": ")" + base64(ca.chain_pem) + "\"");
  const std::vector<std::string> secrets = {full, ca_only, no_ca, bad_ca, elsewhere};
  const auto annotations = [](const std::string& secret) {
    return R"({"nginx.ingress.kubernetes.io/backend-protocol": "HTTPS", "nginx.ingress.kubernetes.io/proxy-ssl-verify": "on",
               "nginx.ingress.kubernetes.io/proxy-ssl-secret": ")" + secret + "\"}";
  };

  const Compiled with_client(annotations("n/full"), secrets);
  REQUIRE(with_client.record != nullptr);
  CHECK(with_client.record->code == policy::kHttps);
  CHECK_FALSE(with_client.denied());
  CHECK(with_client.record->a == "s.n.svc");  // the default name: the Service's
  const std::uint32_t ca_length = policy::ca_length(with_client.record->value);
  CHECK(with_client.record->b.substr(0, ca_length) == ca.chain_pem);
  CHECK(with_client.record->b.find(client.key_pem) != std::string::npos);
  CHECK(policy::min_tls_version(with_client.record->value) == 3);  // ingress-nginx's default: TLSv1.2
  CHECK(policy::check_protocol(*with_client.record, false).empty());
  CHECK_FALSE(with_client.warned("ProxySSLSecretUnusable"));

  const Compiled only_ca(annotations("n/ca-only"), secrets);
  REQUIRE(only_ca.record != nullptr);
  CHECK_FALSE(only_ca.denied());
  CHECK(only_ca.record->b == ca.chain_pem);

  for (const char* secret : {"n/missing", "n/no-ca", "n/bad-ca", "other/full"}) {
    CAPTURE(secret);
    const Compiled denied(annotations(secret), secrets);
    CHECK(denied.record == nullptr);  // no record that could reach a backend unverified
    CHECK(denied.denied());
    CHECK(denied.warned("ProxySSLSecretUnusable"));
  }
  // proxy-ssl-ciphers follows the name; a list OpenSSL does not know is dropped with a Warning.
  const auto with_ciphers = [&](const std::string& ciphers) {
    return R"({"nginx.ingress.kubernetes.io/backend-protocol": "HTTPS", "nginx.ingress.kubernetes.io/proxy-ssl-secret": "n/full",
               "nginx.ingress.kubernetes.io/proxy-ssl-server-name": "on", "nginx.ingress.kubernetes.io/proxy-ssl-ciphers": ")" +
           ciphers + "\"}";
  };
  const Compiled ciphers(with_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256:!aNULL"), secrets);
  REQUIRE(ciphers.record != nullptr);
  CHECK(ciphers.record->a == "s.n.svc ECDHE-ECDSA-AES128-GCM-SHA256:!aNULL");
  CHECK(policy::check_protocol(*ciphers.record, false).empty());
  const Compiled unknown(with_ciphers("NOPE-CIPHER"), secrets);
  REQUIRE(unknown.record != nullptr);
  CHECK(unknown.record->a == "s.n.svc");
  CHECK(unknown.warned("InvalidAnnotation"));
  CHECK(read(R"({"nginx.ingress.kubernetes.io/proxy-ssl-ciphers": "A B"})").problems.size() == 1);
  CHECK(read(R"({"nginx.ingress.kubernetes.io/proxy-ssl-ciphers": "DEFAULT"})").values.proxy_ssl_ciphers.empty());

  // Verification without any Secret fails closed too.
  const Compiled no_secret(R"({"nginx.ingress.kubernetes.io/backend-protocol": "HTTPS", "nginx.ingress.kubernetes.io/proxy-ssl-verify": "on"})");
  CHECK(no_secret.record == nullptr);
  CHECK(no_secret.denied());
  CHECK(no_secret.warned("ProxySSLSecretUnusable"));
  // HTTPS without verification needs nothing from the store.
  const Compiled plain(R"({"nginx.ingress.kubernetes.io/backend-protocol": "GRPCS"})");
  REQUIRE(plain.record != nullptr);
  CHECK(plain.record->flags == 0);
  CHECK(plain.record->code == policy::kGrpcs);
  CHECK(plain.table.warnings.empty());
}
