// auth-tls-*: how the agent reads them (agent/ingress/annotations.cc), the host-wide kClientCert record
// (agent/ingress/policies.cc) and what the compiler does with auth-tls-secret: the CA in the record, or
// every rule of the Ingress denied (503) with a Warning when the Secret cannot give one.
#include <doctest.h>

#include <algorithm>

#include "certificates.h"
#include "compiler.h"
#include "ingress/annotations.h"
#include "ingress/policies.h"
#include "json_helpers.h"
#include "policy/client_cert.h"
#include "policy/kinds.h"
#include "store.h"

using namespace kroute;
using namespace kroute::agent;

namespace {

AnnotationReading read(const std::string& annotations) { return read_annotations(json(annotations), kDefaultAnnotationPrefix); }

std::string key(const std::string& name) { return "\"nginx.ingress.kubernetes.io/" + name + "\""; }

// One Ingress n/i for a.com/ -> s:80 (plus a host-less rule when asked) with `annotations` and Secrets.
struct Compiled {
  explicit Compiled(const std::string& annotations, const std::vector<std::string>& secrets = {}, bool hostless = false) {
    options.watch_without_class = true;
    for (const std::string& secret : secrets) store.apply(Kind::kSecret, kube::EventType::kAdded, json(secret));
    store.apply(Kind::kService, kube::EventType::kAdded,
                json(R"({"metadata": {"name": "s", "namespace": "n"}, "spec": {"ports": [{"port": 80}]}})"));
    const std::string paths = R"({"paths": [{"path": "/", "pathType": "Prefix",
                     "backend": {"service": {"name": "s", "port": {"number": 80}}}}]})";
    store.apply(Kind::kIngress, kube::EventType::kAdded,
                json(R"({"metadata": {"name": "i", "namespace": "n", "annotations": )" + annotations +
                     R"(}, "spec": {"rules": [{"host": "a.com", "http": )" + paths + "}" +
                     (hostless ? R"(, {"http": )" + paths + "}" : std::string()) + "]}}"));
    table = compile(store, options);
  }
  bool warned(const std::string& reason, const std::string& text = "") const {
    return std::any_of(table.warnings.begin(), table.warnings.end(), [&](const Warning& w) {
      return w.reason == reason && w.message.find(text) != std::string::npos;
    });
  }
  const PolicyRecord* host_record() const {
    for (const HostPolicy& p : table.model.host_policies) {
      for (const PolicyRecord& r : p.records) {
        if (r.kind == PolicyKind::kClientCert && p.host == "a.com") return &r;
      }
    }
    return nullptr;
  }
  bool denied(std::size_t rule = 0) const {
    const auto& records = table.model.rules.at(rule).policies;
    return !records.empty() && records.front().kind == PolicyKind::kDeny;
  }
  Metrics metrics;
  Store store{metrics, nullptr};
  CompileOptions options;
  CompiledTable table;
};

std::string opaque(const std::string& name, const std::string& data) {
  return R"({"metadata": {"name": ")" + name + R"(", "namespace": "n"}, "type": "Opaque", "data": {)" + data + "}}";
}

const std::string kSecret = key("auth-tls-secret") + R"(: "n/ca")";

// An empty CRL of the CA `ca` (its certificate as issuer, signed with its key), as PEM.
std::string make_crl(const TestCertificate& ca) {
  std::unique_ptr<BIO, decltype(&BIO_free)> in(BIO_new_mem_buf(ca.chain_pem.data(), static_cast<int>(ca.chain_pem.size())), BIO_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(PEM_read_bio_X509(in.get(), nullptr, nullptr, nullptr), X509_free);
  in.reset(BIO_new_mem_buf(ca.key_pem.data(), static_cast<int>(ca.key_pem.size())));
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> pkey(PEM_read_bio_PrivateKey(in.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
  std::unique_ptr<X509_CRL, decltype(&X509_CRL_free)> crl(X509_CRL_new(), X509_CRL_free);
  REQUIRE((cert && pkey && crl));
  std::unique_ptr<ASN1_TIME, decltype(&ASN1_TIME_free)> now(X509_gmtime_adj(nullptr, 0), ASN1_TIME_free);
  std::unique_ptr<ASN1_TIME, decltype(&ASN1_TIME_free)> next(X509_gmtime_adj(nullptr, 86400), ASN1_TIME_free);
  REQUIRE(X509_CRL_set_version(crl.get(), 1) == 1);
  REQUIRE(X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(cert.get())) == 1);
  REQUIRE(X509_CRL_set1_lastUpdate(crl.get(), now.get()) == 1);
  REQUIRE(X509_CRL_set1_nextUpdate(crl.get(), next.get()) == 1);
  REQUIRE(X509_CRL_sign(crl.get(), pkey.get(), EVP_sha256()) > 0);
  std::unique_ptr<BIO, decltype(&BIO_free)> out(BIO_new(BIO_s_mem()), BIO_free);
  REQUIRE(PEM_write_bio_X509_CRL(out.get(), crl.get()) == 1);
  char* data = nullptr;
  const long n = BIO_get_mem_data(out.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

}  // namespace

TEST_CASE("auth-tls annotations: ingress-nginx's values and defaults") {
  const AnnotationReading none = read("{}");
  CHECK(none.values.auth_tls_secret.empty());
  CHECK(none.values.auth_tls_verify_client == policy::kVerifyOn);
  CHECK(none.values.auth_tls_verify_depth == 1);
  const AnnotationReading all = read("{" + kSecret + ", " + key("auth-tls-verify-client") + R"(: "optional_no_ca", )" +
                                     key("auth-tls-verify-depth") + R"(: "3", )" + key("auth-tls-error-page") +
                                     R"(: "https://e.com/x", )" + key("auth-tls-pass-certificate-to-upstream") +
                                     R"(: "true", )" + key("auth-tls-match-cn") + R"(: "CN=(alice|bob)$"})");
  CHECK(all.values.access_denied.empty());
  CHECK(all.values.auth_tls_secret == "n/ca");
  CHECK(all.values.auth_tls_verify_client == policy::kVerifyOptionalNoCa);
  CHECK(all.values.auth_tls_verify_depth == 3);
  CHECK(all.values.auth_tls_error_page == "https://e.com/x");
  CHECK(all.values.auth_tls_pass_certificate);
  CHECK(all.values.auth_tls_match_cn == "CN=(alice|bob)$");
  CHECK(read("{" + key("auth-tls-verify-depth") + R"(: "0"})").values.auth_tls_verify_depth == 1);
}

TEST_CASE("auth-tls annotations fail closed: a value that cannot be read denies the Ingress") {
  for (const auto& entry : std::vector<std::pair<std::string, std::string>>{
           {"auth-tls-secret", "ca"}, {"auth-tls-verify-client", "sometimes"}, {"auth-tls-verify-depth", "x"},
           {"auth-tls-verify-depth", "101"}, {"auth-tls-error-page", "/local"}, {"auth-tls-error-page", "https://e.com/$uri"},
           {"auth-tls-pass-certificate-to-upstream", "yes"}, {"auth-tls-match-cn", "CN=("},
           {"auth-tls-match-cn", "alice"}}) {
    const std::string& name = entry.first;
    const std::string& value = entry.second;
    CAPTURE(name);
    CAPTURE(value);
    const AnnotationReading r = read("{" + key(name) + ": \"" + value + "\"}");
    CHECK(!r.values.access_denied.empty());
    CHECK(std::any_of(r.problems.begin(), r.problems.end(),
                      [](const IngressProblem& p) { return p.reason == "AccessAnnotationInvalid"; }));
  }
}

TEST_CASE("auth-tls-secret: the host-wide record carries the CA; the rule has no deny") {
  const TestCertificate ca = make_certificate("client CA");
  const Compiled c("{" + kSecret + ", " + key("auth-tls-verify-client") + R"(: "optional", )" +
                   key("auth-tls-match-cn") + R"(: "CN=alice"})",
                   {opaque("ca", R"("ca.crt": ")" + base64(ca.chain_pem) + "\"")});
  const PolicyRecord* record = c.host_record();
  REQUIRE(record != nullptr);
  CHECK(record->a == ca.chain_pem);
  // the digest: SHA-256 over mode, depth and CA, so another mode (or CA) is another digest
  CHECK(policy::client_digest(*record).size() == policy::kClientDigestLength);
  const Compiled on("{" + kSecret + "}", {opaque("ca", R"("ca.crt": ")" + base64(ca.chain_pem) + "\"")});
  REQUIRE(on.host_record() != nullptr);
  CHECK(policy::client_digest(*on.host_record()) != policy::client_digest(*record));
  const TestCertificate other = make_certificate("other CA");
  const Compiled other_ca("{" + kSecret + "}", {opaque("ca", R"("ca.crt": ")" + base64(other.chain_pem) + "\"")});
  REQUIRE(other_ca.host_record() != nullptr);
  CHECK(policy::client_digest(*other_ca.host_record()) != policy::client_digest(*on.host_record()));
  CHECK((record->flags & policy::kVerifyModeMask) == policy::kVerifyOptional);
  CHECK(policy::client_match_cn(*record) == "CN=alice");
  CHECK(policy::client_error_page(*record).empty());
  CHECK(policy::check_record(*record, false) == "");
  CHECK(!c.denied());
}

TEST_CASE("auth-tls-secret fails closed: missing, no ca.crt, bad PEM, another namespace, a host-less rule") {
  const TestCertificate ca = make_certificate("client CA");
  SUBCASE("missing") {
    const Compiled c("{" + kSecret + "}");
    CHECK(c.host_record() == nullptr);
    CHECK(c.denied());
    CHECK(c.warned("ClientCertSecretUnusable", "n/ca not found"));
  }
  SUBCASE("no ca.crt") {
    const Compiled c("{" + kSecret + "}", {opaque("ca", R"("auth": ")" + base64("u:{SHA}x") + "\"")});
    CHECK(c.host_record() == nullptr);
    CHECK(c.denied());
    CHECK(c.warned("ClientCertSecretUnusable", "has no ca.crt"));
  }
  SUBCASE("bad PEM") {
    const Compiled c("{" + kSecret + "}",
                     {opaque("ca", R"("ca.crt": ")" + base64("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n") + "\"")});
    CHECK(c.host_record() == nullptr);
    CHECK(c.denied());
    CHECK(c.warned("ClientCertSecretUnusable", "ca.crt"));
    CHECK(!c.warned("ClientCertSecretUnusable", "AAAA"));
  }
  SUBCASE("another namespace") {
    const Compiled c("{" + key("auth-tls-secret") + R"(: "other/ca"})");
    CHECK(c.denied());
    CHECK(c.warned("ClientCertSecretUnusable", "not in the Ingress's namespace"));
  }
  SUBCASE("a host-less rule is denied, the host's rule is not") {
    const Compiled c("{" + kSecret + "}", {opaque("ca", R"("ca.crt": ")" + base64(ca.chain_pem) + "\"")}, true);
    REQUIRE(c.table.model.rules.size() == 2);
    const bool first_hostless = c.table.model.rules[0].host.empty();
    CHECK(c.denied(first_hostless ? 0 : 1));
    CHECK(!c.denied(first_hostless ? 1 : 0));
    CHECK(c.warned("ClientCertNeedsHost"));
    CHECK(c.host_record() != nullptr);
  }
  SUBCASE("a bad verify-client: no host record, the rule denied") {
    const Compiled c("{" + kSecret + ", " + key("auth-tls-verify-client") + R"(: "maybe"})",
                     {opaque("ca", R"("ca.crt": ")" + base64(ca.chain_pem) + "\"")});
    CHECK(c.host_record() == nullptr);
    CHECK(c.denied());
  }
}

TEST_CASE("auth-tls-secret's ca.crl: its CRLs follow the CA in the record; a bad one denies the Ingress") {
  const TestCertificate ca = make_certificate("client CA");
  const std::string crl = make_crl(ca);
  SUBCASE("good") {
    const Compiled c("{" + kSecret + "}", {opaque("ca", R"("ca.crt": ")" + base64(ca.chain_pem) + R"(", "ca.crl": ")" +
                                                           base64(crl) + "\"")});
    const PolicyRecord* record = c.host_record();
    REQUIRE(record != nullptr);
    CHECK(record->a.starts_with(ca.chain_pem));
    CHECK(record->a.ends_with(crl));
    CHECK(policy::check_record(*record, false) == "");
    CHECK(!c.denied());
  }
  SUBCASE("not a CRL") {
    const Compiled c("{" + kSecret + "}", {opaque("ca", R"("ca.crt": ")" + base64(ca.chain_pem) + R"(", "ca.crl": ")" +
                                                           base64(ca.chain_pem) + "\"")});
    CHECK(c.host_record() == nullptr);
    CHECK(c.denied());
    CHECK(c.warned("ClientCertSecretUnusable", "ca.crl"));
  }
}

TEST_CASE("kClientCert records: the builder's check") {
  const TestCertificate ca = make_certificate("client CA");
  const std::string digest(policy::kClientDigestLength, 'a');
  const auto make = [&](std::uint8_t depth, const std::string& page, const std::string& cn) {
    PolicyRecord r = policy::client_cert(policy::kVerifyOn, depth, true, page, cn);
    policy::with_client_ca(r, ca.chain_pem, digest);
    return r;
  };
  PolicyRecord good = make(2, "https://e.com/", "CN=a");
  CHECK(policy::check_record(good, false) == "");
  CHECK(policy::client_digest(good) == digest);
  CHECK(policy::client_error_page(good) == "https://e.com/");
  CHECK(policy::client_match_cn(good) == "CN=a");
  PolicyRecord bad = good;
  bad.a = "";
  CHECK(policy::check_record(bad, false) != "");
  bad = good;
  bad.b[3] = 'X';  // not a digest
  CHECK(policy::check_record(bad, false) == "no CA digest");
  bad = policy::client_cert(policy::kVerifyOn, 1, false, "", "");
  bad.a = ca.chain_pem;  // no digest at all
  CHECK(policy::check_record(bad, false) == "no CA digest");
  CHECK(policy::check_record(make(0, "", ""), false) != "");
  CHECK(policy::check_record(make(1, "", "CN=("), false).find("match-cn") != std::string::npos);
  CHECK(policy::check_record(make(1, "ftp://x", ""), false) != "");
  bad = good;
  bad.flags |= 8;
  CHECK(policy::check_record(bad, false) != "");
  bad = good;
  bad.value |= std::uint64_t{1000} << 32;
  CHECK(policy::check_record(bad, false) != "");
  CHECK(std::string(policy::kind_name(PolicyKind::kClientCert)) == "client-cert");
}
