#include <doctest.h>

#include <algorithm>
#include <iterator>

#include "certificates.h"
#include "compiler.h"
#include "json_helpers.h"
#include "path_patterns.h"
#include "policy/redirect.h"
#include "snapshot.h"
#include "store.h"
#include "validate.h"

using namespace kroute;
using namespace kroute::agent;
using kube::EventType;

namespace {

// Whether plain HTTP to the rule is redirected to https:// (its ssl-redirect record; the builder keeps a
// conditional one only when the host has TLS, which the snapshot tests below check).
bool redirects_to_https(const Rule& rule) {
  return std::any_of(rule.policies.begin(), rule.policies.end(), [](const PolicyRecord& p) {
    return p.kind == PolicyKind::kRedirect && (p.flags & policy::kOnlyPlainHttp) != 0;
  });
}

struct Fixture {
  Metrics metrics;
  Store store{metrics, nullptr};
  CompileOptions options;

  void add(Kind kind, const std::string& text) { store.apply(kind, EventType::kAdded, json(text)); }

  void ingress(const std::string& name, const std::string& extra_metadata, const std::string& spec,
               const std::string& created = "2024-01-01T00:00:00Z") {
    add(Kind::kIngress, R"({"metadata": {"name": ")" + name + R"(", "namespace": "n", "uid": "uid-)" + name +
                            R"(", "creationTimestamp": ")" + created + R"(")" + extra_metadata + R"(}, "spec": )" +
                            spec + "}");
  }
  // A rule for host -> service:port (port a number or a quoted name).
  static std::string rule(const std::string& host, const std::string& path, const std::string& service,
                          const std::string& port) {
    const std::string port_json = port[0] == '"' ? R"({"name": )" + port + "}" : R"({"number": )" + port + "}";
    return R"({"host": ")" + host + R"(", "http": {"paths": [{"path": ")" + path +
           R"(", "pathType": "Prefix", "backend": {"service": {"name": ")" + service + R"(", "port": )" + port_json +
           "}}}]}}";
  }
  void service(const std::string& name, const std::string& ports, const std::string& type = "ClusterIP") {
    add(Kind::kService, R"({"metadata": {"name": ")" + name + R"(", "namespace": "n"}, "spec": {"type": ")" + type +
                            R"(", "ports": )" + ports + "}}");
  }
  void slice(const std::string& name, const std::string& service, const std::string& ports,
             const std::string& endpoints) {
    add(Kind::kEndpointSlice, R"({"metadata": {"name": ")" + name +
                                  R"(", "namespace": "n", "labels": {"kubernetes.io/service-name": ")" + service +
                                  R"("}}, "addressType": "IPv4", "ports": )" + ports + R"(, "endpoints": )" +
                                  endpoints + "}");
  }
  void ours_class(bool is_default = false) {
    add(Kind::kIngressClass, std::string(R"({"metadata": {"name": "kroute")") +
                                 (is_default ? R"(, "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"})"
                                             : "") +
                                 R"(}, "spec": {"controller": "kroute.dev/ingress-controller"}})");
    add(Kind::kIngressClass, R"({"metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx"}})");
  }
  CompiledTable compile_and_build(BuildResult* out = nullptr) {
    CompiledTable table = compile(store, options);
    BuildResult build = build_snapshot(table.model);
    add_build_warnings(table, build, table.warnings);
    if (out != nullptr) *out = std::move(build);
    return table;
  }
};

bool has_warning(const CompiledTable& t, const std::string& name, const std::string& reason) {
  return std::any_of(t.warnings.begin(), t.warnings.end(),
                     [&](const Warning& w) { return w.name == name && w.reason == reason; });
}

// Compiles with the cache and from scratch and checks that both give the same table; returns the cached.
CompiledTable same_as_from_scratch(Fixture& f, CompileCache& cache, const char* step) {
  CAPTURE(step);
  const CompiledTable cached = compile(f.store, f.options, cache);
  const CompiledTable fresh = compile(f.store, f.options);
  CHECK(cached.owned == fresh.owned);
  CHECK(cached.warnings == fresh.warnings);
  // Nothing stays behind in a patched model (it would grow as Ingresses come and go).
  CHECK(cached.model.sources.size() == fresh.model.sources.size());
  CHECK(cached.model.rules.size() == fresh.model.rules.size());
  CHECK(cached.model.backends.size() == fresh.model.backends.size());
  CHECK(cached.model.tls.size() == fresh.model.tls.size());
  const BuildOptions at{1};
  CHECK(build_snapshot(cached.model, at).bytes == build_snapshot(fresh.model, at).bytes);
  return cached;
}

// The endpoints of the backends named `service`, as "address:port" in the model's order, ready or not.
std::vector<std::string> endpoints_of(const CompiledTable& t, const std::string& service) {
  std::vector<std::string> out;
  for (const Backend& b : t.model.backends) {
    if (b.service != service) continue;
    for (const Endpoint& e : b.endpoints) out.push_back(e.address + ":" + std::to_string(e.port));
  }
  return out;
}

}  // namespace

TEST_CASE("class selection: ingressClassName, legacy annotation, default class, --watch-without-class") {
  Fixture f;
  f.ours_class();
  const std::string spec = R"({"rules": [)" + Fixture::rule("a.com", "/", "s", "80") + "]}";
  f.ingress("by-class", "", R"({"ingressClassName": "kroute", "rules": [)" + Fixture::rule("a.com", "/", "s", "80") + "]}");
  f.ingress("other-class", "", R"({"ingressClassName": "nginx", "rules": []})");
  f.ingress("unknown-class", "", R"({"ingressClassName": "ghost", "rules": []})");
  f.ingress("annotated", R"(, "annotations": {"kubernetes.io/ingress.class": "kroute"})", spec);
  f.ingress("annotated-other", R"(, "annotations": {"kubernetes.io/ingress.class": "nginx"})",
            R"({"ingressClassName": "kroute"})");
  f.ingress("classless", "", spec);
  CHECK(compile(f.store, f.options).owned == std::vector<std::string>{"n/annotated", "n/by-class"});

  f.options.watch_without_class = true;
  CHECK(compile(f.store, f.options).owned == std::vector<std::string>{"n/annotated", "n/by-class", "n/classless"});

  f.options.watch_without_class = false;
  f.ours_class(true);
  CHECK(compile(f.store, f.options).owned == std::vector<std::string>{"n/annotated", "n/by-class", "n/classless"});

  f.options.annotation_class = "custom";
  f.options.controller = "example.com/other";
  CHECK(compile(f.store, f.options).owned.empty());
}

TEST_CASE("backends: Service port by number or name, EndpointSlice port by the Service port's name") {
  Fixture f;
  f.options.watch_without_class = true;
  f.service("web", R"([{"name": "http", "port": 80}, {"name": "admin", "port": 9000}])");
  f.slice("web-a", "web", R"([{"name": "http", "port": 8080}, {"name": "admin", "port": 9090}])",
          R"([{"addresses": ["10.0.0.2"]}, {"addresses": ["10.0.0.1"]}])");
  f.slice("web-b", "web", R"([{"name": "http", "port": 8080}])",
          R"([{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.3"], "conditions": {"ready": false}}])");
  f.ingress("i", "", R"({"rules": [)" + Fixture::rule("a.com", "/", "web", "80") + "," +
                         Fixture::rule("b.com", "/", "web", R"("admin")") + "]}");
  const CompiledTable t = f.compile_and_build();
  REQUIRE(t.model.backends.size() == 2);
  const Backend& by_number = t.model.backends[0];
  CHECK(by_number.port == 80);
  REQUIRE(by_number.endpoints.size() == 3);  // 10.0.0.1 appears in two slices: once
  CHECK(by_number.endpoints[0].address == "10.0.0.1");
  CHECK(by_number.endpoints[0].port == 8080);
  CHECK(by_number.endpoints[2].address == "10.0.0.3");
  CHECK_FALSE(by_number.endpoints[2].ready);
  const Backend& by_name = t.model.backends[1];
  CHECK(by_name.port_name == "admin");
  REQUIRE(by_name.endpoints.size() == 2);
  CHECK(by_name.endpoints[0].port == 9090);
  CHECK(t.warnings.empty());
}

TEST_CASE("endpoint readiness: serving+terminating endpoints serve only when nothing is ready") {
  Fixture f;
  f.options.watch_without_class = true;
  f.service("s", R"([{"port": 80}])");
  f.slice("s-1", "s", R"([{"port": 8080}])",
          R"([{"addresses": ["10.0.0.1"], "conditions": {"ready": false, "serving": true, "terminating": true}},
              {"addresses": ["10.0.0.2"], "conditions": {"ready": false, "serving": false, "terminating": true}}])");
  f.ingress("i", "", R"({"rules": [)" + Fixture::rule("a.com", "/", "s", "80") + "]}");
  {
    const CompiledTable t = f.compile_and_build();
    REQUIRE(t.model.backends[0].endpoints.size() == 2);
    CHECK(t.model.backends[0].endpoints[0].ready);         // serving while terminating: the fallback
    CHECK_FALSE(t.model.backends[0].endpoints[1].ready);   // neither ready nor serving
  }
  f.slice("s-2", "s", R"([{"port": 8080}])", R"([{"addresses": ["10.0.0.9"], "conditions": {"ready": true}}])");
  const CompiledTable t = f.compile_and_build();
  REQUIRE(t.model.backends[0].endpoints.size() == 3);
  for (const Endpoint& e : t.model.backends[0].endpoints) CHECK(e.ready == (e.address == "10.0.0.9"));
}

TEST_CASE("warnings: missing Service, unknown port, ExternalName, TLS Secret missing or invalid") {
  Fixture f;
  f.options.watch_without_class = true;
  f.service("s", R"([{"name": "http", "port": 80}])");
  f.service("ext", R"([{"port": 80}])", "ExternalName");
  f.add(Kind::kSecret, R"({"metadata": {"name": "bad", "namespace": "n"}, "data": {}})");
  f.ingress("i", "", R"({"rules": [)" + Fixture::rule("a.com", "/a", "missing", "80") + "," +
                         Fixture::rule("a.com", "/b", "s", "81") + "," + Fixture::rule("a.com", "/c", "s", R"("grpc")") +
                         "," + Fixture::rule("a.com", "/d", "ext", "80") +
                         R"(], "tls": [{"hosts": ["a.com"], "secretName": "nope"}, {"hosts": ["b.com"], "secretName": "bad"}]})");
  const CompiledTable t = f.compile_and_build();
  CHECK(has_warning(t, "i", "ServiceNotFound"));
  CHECK(has_warning(t, "i", "ServicePortNotFound"));
  CHECK(has_warning(t, "i", "ExternalNameUnsupported"));
  CHECK(has_warning(t, "i", "TLSSecretNotFound"));
  CHECK(has_warning(t, "i", "TLSSecretInvalid"));
  // The rules stay (and answer 503): a broken backend must not send its traffic to another route.
  CHECK(t.model.rules.size() == 4);
  // TLS hosts stay too, without a certificate: the handshake falls back to a wildcard or the default.
  REQUIRE(t.model.tls.size() == 2);
  for (const TlsHost& tls : t.model.tls) CHECK(tls.certificate.chain_pem.empty());
}

TEST_CASE("certificates: kept for a valid or expired Secret (as ingress-nginx), blanked for a missing or mismatched one") {
  Fixture f;
  f.options.watch_without_class = true;
  f.service("s", R"([{"port": 80}])");
  const TestCertificate good = make_certificate("good.com");
  const TestCertificate other = make_certificate("other.com");
  const TestCertificate expired = make_certificate("expired.com", -30, -1);
  f.add(Kind::kSecret, tls_secret_json("good", good.chain_pem, good.key_pem));
  f.add(Kind::kSecret, tls_secret_json("mismatch", good.chain_pem, other.key_pem));
  f.add(Kind::kSecret, tls_secret_json("expired", expired.chain_pem, expired.key_pem));
  const auto tls_ingress = [&](const std::string& name, const std::string& secret) {
    const std::string host = name + ".com";
    f.ingress(name, "", R"({"rules": [)" + Fixture::rule(host, "/", "s", "80") + R"(], "tls": [{"hosts": [")" + host +
                            R"("], "secretName": ")" + secret + R"("}]})");
  };
  tls_ingress("good", "good");
  tls_ingress("mismatch", "mismatch");
  tls_ingress("expired", "expired");
  tls_ingress("missing", "missing");
  const CompiledTable t = f.compile_and_build();
  const auto certificate_of = [&](const std::string& host) -> const Certificate* {
    for (const TlsHost& tls : t.model.tls) {
      if (tls.host == host) return &tls.certificate;
    }
    return nullptr;
  };
  REQUIRE(certificate_of("good.com") != nullptr);
  CHECK(certificate_of("good.com")->chain_pem == good.chain_pem);
  CHECK(certificate_of("good.com")->key_pem == good.key_pem);
  REQUIRE(certificate_of("expired.com") != nullptr);
  CHECK(certificate_of("expired.com")->chain_pem == expired.chain_pem);
  for (const char* host : {"mismatch.com", "missing.com"}) {
    CAPTURE(host);
    REQUIRE(certificate_of(host) != nullptr);
    CHECK(certificate_of(host)->chain_pem.empty());
    CHECK(certificate_of(host)->key_pem.empty());
  }
  CHECK_FALSE(has_warning(t, "good", "TLSSecretInvalid"));
  CHECK(has_warning(t, "mismatch", "TLSSecretInvalid"));
  CHECK_FALSE(has_warning(t, "expired", "TLSSecretInvalid"));
  CHECK(has_warning(t, "expired", "TLSCertificateExpired"));
  CHECK(has_warning(t, "missing", "TLSSecretNotFound"));
  for (const Warning& w : t.warnings) {
    CHECK(w.message.find("PRIVATE KEY") == std::string::npos);
    if (w.name == "expired") CHECK(w.message.find("expired on") != std::string::npos);
  }

  // The default certificate comes from the named Secret, only when it is usable.
  CHECK(t.model.default_certificate.chain_pem.empty());
  f.options.default_certificate = "n/good";
  CHECK(compile(f.store, f.options).model.default_certificate.key_pem == good.key_pem);
  f.options.default_certificate = "n/mismatch";
  const CompiledTable without = compile(f.store, f.options);
  CHECK(without.model.default_certificate.chain_pem.empty());
  CHECK(without.default_certificate_problem.find("does not match") != std::string::npos);
  f.options.default_certificate = "n/expired";
  CHECK(compile(f.store, f.options).model.default_certificate.chain_pem == expired.chain_pem);
}

TEST_CASE("ssl redirect: rules of hosts with TLS, unless an annotation says false (kroute's first)") {
  Fixture f;
  f.options.watch_without_class = true;
  f.service("s", R"([{"port": 80}])");
  const std::string spec = R"({"rules": [)" + Fixture::rule("a.com", "/", "s", "80") + "," +
                           Fixture::rule("x.w.com", "/", "s", "80") + "," + Fixture::rule("plain.com", "/", "s", "80") +
                           R"(], "tls": [{"hosts": ["a.com", "*.w.com"], "secretName": "cert"}]})";
  f.ingress("default", "", spec);
  f.ingress("off", R"(, "annotations": {"kroute.dev/ssl-redirect": "false"})", spec, "2024-02-01T00:00:00Z");
  f.ingress("nginx-off", R"(, "annotations": {"nginx.ingress.kubernetes.io/ssl-redirect": "false"})", spec,
            "2024-03-01T00:00:00Z");
  f.ingress("kroute-wins", R"(, "annotations": {"nginx.ingress.kubernetes.io/ssl-redirect": "false", "kroute.dev/ssl-redirect": "true"})",
            spec, "2024-04-01T00:00:00Z");
  const CompiledTable t = f.compile_and_build();
  const auto redirect = [&](const std::string& ingress, const std::string& host) {
    for (const Rule& r : t.model.rules) {
      if (t.model.sources[r.source].name == ingress && r.host == host) return redirects_to_https(r);
    }
    FAIL("no rule for " << ingress << " " << host);
    return false;
  };
  CHECK(redirect("default", "a.com"));
  CHECK(redirect("default", "x.w.com"));
  CHECK_FALSE(redirect("off", "a.com"));
  CHECK_FALSE(redirect("nginx-off", "a.com"));
  CHECK(redirect("kroute-wins", "a.com"));
}

TEST_CASE("ssl redirect: never for paths under /.well-known/acme-challenge (ingress-nginx's no-tls-redirect-locations)") {
  Fixture f;
  f.options.watch_without_class = true;
  f.service("s", R"([{"port": 80}])");
  f.ingress("solver", "",
            R"({"rules": [)" + Fixture::rule("a.com", "/.well-known/acme-challenge/tok3n", "s", "80") + "," +
                Fixture::rule("a.com", "/.well-known/acme", "s", "80") + "," +
                Fixture::rule("a.com", "/app", "s", "80") + R"(], "tls": [{"hosts": ["a.com"], "secretName": "cert"}]})");
  const CompiledTable t = f.compile_and_build();
  const auto redirect = [&](const std::string& path) {
    for (const Rule& r : t.model.rules) {
      if (r.path == path) return redirects_to_https(r);
    }
    FAIL("no rule for " << path);
    return false;
  };
  CHECK_FALSE(redirect("/.well-known/acme-challenge/tok3n"));
  CHECK(redirect("/.well-known/acme"));  // a prefix of the location, not under it
  CHECK(redirect("/app"));
}

TEST_CASE("collisions: the younger Ingress's rule is shadowed and warned about, whatever the arrival order") {
  Fixture f;
  f.options.watch_without_class = true;
  f.service("s", R"([{"port": 80}])");
  f.ingress("young", "", R"({"rules": [)" + Fixture::rule("a.com", "/x", "s", "80") + "]}", "2024-06-01T00:00:00Z");
  f.ingress("old", "", R"({"rules": [)" + Fixture::rule("a.com", "/x/", "s", "80") + "]}", "2024-01-01T00:00:00Z");
  BuildResult build;
  const CompiledTable t = f.compile_and_build(&build);
  REQUIRE(build.conflicts.size() == 1);
  CHECK(has_warning(t, "young", "RuleShadowed"));
  CHECK_FALSE(has_warning(t, "old", "RuleShadowed"));
}

TEST_CASE("bad rules are skipped with a warning and never take the other routes with them") {
  Fixture f;
  f.options.watch_without_class = true;
  f.service("s", R"([{"port": 80}])");
  f.ingress("i", "", R"({"rules": [)" + Fixture::rule("bad host!", "/", "s", "80") + "," +
                         Fixture::rule("a.com", "no-slash", "s", "80") + "," + Fixture::rule("a.com", "/ok", "s", "80") +
                         R"(, {"host": "a.com", "http": {"paths": [{"path": "/t", "pathType": "Nope",
                             "backend": {"service": {"name": "s", "port": {"number": 80}}}},
                             {"path": "/r", "pathType": "Prefix", "backend": {"resource": {"kind": "X", "name": "y"}}},
                             {"path": "/n", "pathType": "Prefix", "backend": {"service": {"name": "s", "port": {}}}}]}}]})");
  BuildResult build;
  const CompiledTable t = f.compile_and_build(&build);
  CHECK(build.stats.rules == 1);
  CHECK(has_warning(t, "i", "InvalidRule"));
  CHECK(has_warning(t, "i", "ResourceBackendUnsupported"));
  CHECK(std::count_if(t.warnings.begin(), t.warnings.end(), [](const Warning& w) { return w.reason == "InvalidRule"; }) == 4);
}

TEST_CASE("default backend: the oldest Ingress's wins") {
  Fixture f;
  f.options.watch_without_class = true;
  f.service("a", R"([{"port": 80}])");
  f.service("b", R"([{"port": 80}])");
  f.ingress("newer", "", R"({"defaultBackend": {"service": {"name": "a", "port": {"number": 80}}}})", "2024-02-01T00:00:00Z");
  f.ingress("older", "", R"({"defaultBackend": {"service": {"name": "b", "port": {"number": 80}}}})", "2024-01-01T00:00:00Z");
  const CompiledTable t = f.compile_and_build();
  REQUIRE(t.model.default_backend != kNoBackend);
  CHECK(t.model.backends[t.model.default_backend].service == "b");
  CHECK(has_warning(t, "newer", "DefaultBackendShadowed"));
}

TEST_CASE("compile cache: only what a Service or EndpointSlice change touches is resolved again, and correctly") {
  Fixture f;
  f.options.watch_without_class = true;
  CompileCache cache;
  f.service("a", R"([{"name": "http", "port": 80}])");
  f.service("b", R"([{"name": "http", "port": 80}])");
  f.slice("a-1", "a", R"([{"name": "http", "port": 8080}])", R"([{"addresses": ["10.0.0.1"]}])");
  f.slice("b-1", "b", R"([{"name": "http", "port": 8080}])", R"([{"addresses": ["10.0.1.1"]}])");
  f.ingress("i", "", R"({"rules": [)" + Fixture::rule("a.com", "/", "a", "80") + "," +
                         Fixture::rule("b.com", "/", "b", "80") + "]}");
  const auto addresses = [&](std::size_t backend) {
    std::vector<std::string> out;
    const CompiledTable t = compile(f.store, f.options, cache);
    for (const Endpoint& e : t.model.backends.at(backend).endpoints) out.push_back(e.address);
    return out;
  };
  CHECK(addresses(0) == std::vector<std::string>{"10.0.0.1"});
  // A second slice for a, then a's first slice deleted: each reported change is seen.
  f.slice("a-2", "a", R"([{"name": "http", "port": 8080}])", R"([{"addresses": ["10.0.0.2"]}])");
  cache.slice_changed(f.store, "n/a-2");
  CHECK(addresses(0) == std::vector<std::string>{"10.0.0.1", "10.0.0.2"});
  f.store.apply(Kind::kEndpointSlice, EventType::kDeleted, json(R"({"metadata": {"name": "a-1", "namespace": "n"}})"));
  cache.slice_changed(f.store, "n/a-1");
  CHECK(addresses(0) == std::vector<std::string>{"10.0.0.2"});
  // A slice moving to another Service leaves the first one.
  f.slice("a-2", "b", R"([{"name": "http", "port": 8080}])", R"([{"addresses": ["10.0.0.2"]}])");
  cache.slice_changed(f.store, "n/a-2");
  CHECK(addresses(0).empty());
  CHECK(addresses(1) == std::vector<std::string>{"10.0.0.2", "10.0.1.1"});
  // A Service that loses its port: the rule stays, without endpoints, and the Ingress hears why.
  f.service("b", R"([{"name": "grpc", "port": 90}])");
  cache.service_changed("n/b");
  const CompiledTable t = compile(f.store, f.options, cache);
  CHECK(t.model.backends.at(1).endpoints.empty());
  CHECK(has_warning(t, "i", "ServicePortNotFound"));
  // Compiling with the cache gives what compiling from scratch gives.
  CHECK(compile(f.store, f.options).model.backends.size() == t.model.backends.size());
  CHECK(compile(f.store, f.options).warnings == t.warnings);
}

TEST_CASE("compile cache: a patch takes out the changed Ingress by its store key, also without a namespace") {
  Fixture f;
  f.options.watch_without_class = true;
  CompileCache cache;
  f.service("a", R"([{"name": "http", "port": 80}])");
  const std::string spec = R"({"rules": [)" + Fixture::rule("a.com", "/", "a", "80") + "]}";
  f.add(Kind::kIngress, R"({"metadata": {"name": "bare"}, "spec": )" + spec + "}");
  f.ingress("other", "", R"({"rules": [)" + Fixture::rule("b.com", "/", "a", "80") + "]}");
  CHECK(compile(f.store, f.options, cache).owned == std::vector<std::string>{"bare", "n/other"});
  f.store.apply(Kind::kIngress, EventType::kDeleted, json(R"({"metadata": {"name": "bare"}})"));
  cache.ingress_changed("bare");
  const CompiledTable& t = compile(f.store, f.options, cache);
  CHECK(cache.last_patched());
  CHECK(t.owned == std::vector<std::string>{"n/other"});
  REQUIRE(t.model.sources.size() == 1);
  CHECK(t.model.sources[0].name == "other");
  CHECK(t.model.rules.size() == 1);
}

TEST_CASE("compile cache: an EndpointSlice change patches the endpoints of the backends naming its Service") {
  Fixture f;
  f.ours_class();
  CompileCache cache;
  const auto same_as_from_scratch = [&](const char* step) { return ::same_as_from_scratch(f, cache, step); };
  const auto slice = [&](const std::string& name, const std::string& service, const std::string& endpoints) {
    f.slice(name, service, R"([{"name": "http", "port": 8080}])", endpoints);
    cache.slice_changed(f.store, "n/" + name);
  };
  const auto delete_slice = [&](const std::string& name) {
    f.store.apply(Kind::kEndpointSlice, EventType::kDeleted, json(R"({"metadata": {"name": ")" + name + R"(", "namespace": "n"}})"));
    cache.slice_changed(f.store, "n/" + name);
  };
  for (const char* name : {"a", "b", "c"}) f.service(name, R"([{"name": "http", "port": 80}])");
  slice("a-1", "a", R"([{"addresses": ["10.0.0.1"]}])");
  slice("b-1", "b", R"([{"addresses": ["10.0.1.1"]}])");
  f.ingress("i1", "", R"({"ingressClassName": "kroute", "rules": [)" + Fixture::rule("a.com", "/", "a", "80") + "]}");
  f.ingress("i2", "", R"({"ingressClassName": "kroute", "defaultBackend": {"service": {"name": "b", "port": {"number": 80}}},
                         "rules": [)" + Fixture::rule("b.com", "/", "b", "\"http\"") + "]}");
  CompiledTable t = same_as_from_scratch("first compile");
  CHECK_FALSE(cache.last_patched());

  slice("a-1", "a", R"([{"addresses": ["10.0.0.2"]}, {"addresses": ["10.0.0.3"], "conditions": {"ready": false}}])");
  t = same_as_from_scratch("a's endpoints replaced");
  CHECK(cache.last_patched());
  CHECK_FALSE(cache.last_unchanged());
  CHECK(endpoints_of(t, "a") == std::vector<std::string>{"10.0.0.2:8080", "10.0.0.3:8080"});

  slice("a-2", "a", R"([{"addresses": ["10.0.0.9"]}])");
  t = same_as_from_scratch("a second slice for a");
  CHECK(cache.last_patched());
  CHECK(endpoints_of(t, "a").size() == 3);

  // b backs a rule (by port name) and the default backend (by number): both lose their endpoints.
  delete_slice("b-1");
  t = same_as_from_scratch("b's only slice deleted");
  CHECK(cache.last_patched());
  CHECK(endpoints_of(t, "b").empty());
  REQUIRE(t.model.default_backend != kNoBackend);

  slice("c-1", "c", R"([{"addresses": ["10.0.2.1"]}])");
  t = same_as_from_scratch("a slice of a Service no rule names");
  CHECK(cache.last_patched());
  CHECK(cache.last_unchanged());  // the agent builds nothing
  CHECK(endpoints_of(t, "c").empty());
  slice("a-1", "a", R"([{"addresses": ["10.0.0.3"], "conditions": {"ready": false}}, {"addresses": ["10.0.0.2"]}])");
  t = same_as_from_scratch("a's slice written again with the same endpoints");
  CHECK(cache.last_unchanged());

  // A slice moving to another Service (its label changed), together with an Ingress change.
  slice("a-2", "b", R"([{"addresses": ["10.0.0.9"]}])");
  f.ingress("i3", "", R"({"ingressClassName": "kroute", "rules": [)" + Fixture::rule("c.com", "/", "c", "80") + "]}");
  cache.ingress_changed("n/i3");
  t = same_as_from_scratch("a-2 now b's, and an Ingress for c");
  CHECK(cache.last_patched());
  CHECK_FALSE(cache.last_unchanged());
  CHECK(endpoints_of(t, "b").size() == 2);  // the rule's and the default backend's
  CHECK(endpoints_of(t, "c") == std::vector<std::string>{"10.0.2.1:8080"});

  // A Service change or a relist of the slices is compiled in full.
  f.service("a", R"([{"name": "http", "port": 80}, {"name": "admin", "port": 81}])");
  cache.service_changed("n/a");
  t = same_as_from_scratch("a Service changed");
  CHECK_FALSE(cache.last_patched());
  CHECK_FALSE(cache.last_unchanged());
  cache.slice_changed(f.store, "");
  t = same_as_from_scratch("slices relisted");
  CHECK_FALSE(cache.last_patched());
  slice("a-1", "a", R"([{"addresses": ["10.0.0.4"]}])");
  t = same_as_from_scratch("after the relist, a slice change patches again");
  CHECK(cache.last_patched());
}

TEST_CASE("compile cache: with every Ingress change reported, a compile gives what one from scratch gives") {
  Fixture f;
  f.ours_class();
  CompileCache cache;
  f.service("a", R"([{"name": "http", "port": 80}])");
  f.service("b", R"([{"name": "http", "port": 80}])");
  f.slice("a-1", "a", R"([{"name": "http", "port": 8080}])", R"([{"addresses": ["10.0.0.1"]}])");
  f.slice("b-1", "b", R"([{"name": "http", "port": 8080}])", R"([{"addresses": ["10.0.1.1"]}])");
  const auto same_as_from_scratch = [&](const char* step) { return ::same_as_from_scratch(f, cache, step); };
  const auto ingress = [&](const std::string& name, const std::string& spec, const std::string& created) {
    f.ingress(name, "", spec, created);
    cache.ingress_changed("n/" + name);
  };
  const std::string route_a = Fixture::rule("a.com", "/", "a", "80");
  ingress("i1", R"({"ingressClassName": "kroute", "rules": [)" + route_a + "]}", "2024-01-02T00:00:00Z");
  ingress("i2", R"({"rules": [)" + Fixture::rule("two.com", "/", "b", "80") + "]}", "2024-01-02T00:00:00Z");
  ingress("i3", R"({"ingressClassName": "kroute", "tls": [{"hosts": ["a.com"], "secretName": "missing"}],
                    "rules": [)" + Fixture::rule("a.com", "/x", "b", "\"http\"") + "]}", "2024-01-03T00:00:00Z");
  ingress("i4", R"({"ingressClassName": "kroute", "defaultBackend": {"service": {"name": "b", "port": {"number": 80}}}})",
          "2024-01-04T00:00:00Z");
  CompiledTable t = same_as_from_scratch("first compile");
  CHECK(t.owned == std::vector<std::string>{"n/i1", "n/i3", "n/i4"});
  CHECK(has_warning(t, "i3", "TLSSecretNotFound"));
  REQUIRE(t.model.default_backend != kNoBackend);

  CHECK_FALSE(cache.last_patched());

  ingress("i1", R"({"ingressClassName": "kroute", "rules": [)" + Fixture::rule("a.com", "/", "b", "80") + "]}",
          "2024-01-02T00:00:00Z");
  t = same_as_from_scratch("i1 routes to b now");
  CHECK(cache.last_patched());
  CHECK(std::all_of(t.model.rules.begin(), t.model.rules.end(),
                    [&](const Rule& r) { return t.model.backends.at(r.backend).service == "b"; }));

  // Patches: a younger Ingress shadowing i1 and one on a Service no other rule names, then i1 gone (the
  // younger one is served now) and the other one gone with its backend.
  ingress("i5", R"({"ingressClassName": "kroute", "rules": [)" + Fixture::rule("a.com", "/", "a", "80") + "]}",
          "2024-01-05T00:00:00Z");
  ingress("i6", R"({"ingressClassName": "kroute", "rules": [)" + Fixture::rule("six.com", "/", "missing", "80") + "]}",
          "2024-01-06T00:00:00Z");
  t = same_as_from_scratch("i5 shadowed by i1, i6 on a missing Service");
  CHECK(cache.last_patched());
  CHECK(has_warning(t, "i6", "ServiceNotFound"));
  f.store.apply(Kind::kIngress, EventType::kDeleted, json(R"({"metadata": {"name": "i1", "namespace": "n"}})"));
  cache.ingress_changed("n/i1");
  f.store.apply(Kind::kIngress, EventType::kDeleted, json(R"({"metadata": {"name": "i6", "namespace": "n"}})"));
  cache.ingress_changed("n/i6");
  t = same_as_from_scratch("i1 and i6 deleted");
  CHECK(cache.last_patched());
  CHECK_FALSE(has_warning(t, "i6", "ServiceNotFound"));
  // i2 becomes ours through its annotation (an Ingress change), then i3 goes.
  f.ingress("i2", R"(, "annotations": {"kubernetes.io/ingress.class": "kroute"})",
            R"({"rules": [)" + Fixture::rule("two.com", "/", "b", "80") + "]}", "2024-01-02T00:00:00Z");
  cache.ingress_changed("n/i2");
  t = same_as_from_scratch("i2 ours by annotation");
  CHECK(cache.last_patched());
  CHECK(std::count(t.owned.begin(), t.owned.end(), "n/i2") == 1);
  ingress("i2", R"({"rules": [)" + Fixture::rule("two.com", "/", "b", "80") + "]}", "2024-01-02T00:00:00Z");
  t = same_as_from_scratch("i2 without the annotation");
  CHECK(cache.last_patched());
  CHECK(std::count(t.owned.begin(), t.owned.end(), "n/i2") == 0);

  f.store.apply(Kind::kIngress, EventType::kDeleted, json(R"({"metadata": {"name": "i3", "namespace": "n"}})"));
  cache.ingress_changed("n/i3");
  t = same_as_from_scratch("i3 deleted");
  CHECK(cache.last_patched());
  CHECK_FALSE(has_warning(t, "i3", "TLSSecretNotFound"));

  ingress("i0", R"({"ingressClassName": "kroute", "defaultBackend": {"service": {"name": "a", "port": {"number": 80}}},
                    "rules": [{"host": "bad.com", "http": {"paths": [{"path": "/", "pathType": "Weird",
                      "backend": {"service": {"name": "a", "port": {"number": 80}}}},
                      {"path": "/r", "pathType": "Prefix", "backend": {"resource": {"kind": "Bucket", "name": "r"}}}]}}]})",
          "2024-01-01T00:00:00Z");
  t = same_as_from_scratch("an older default backend, a bad path type, a resource backend");
  CHECK_FALSE(cache.last_patched());  // the default backend changed hands: compiled in full
  CHECK(has_warning(t, "i4", "DefaultBackendShadowed"));
  CHECK(has_warning(t, "i0", "ResourceBackendUnsupported"));
  CHECK(t.owned.front() == "n/i0");

  // A class change is not an Ingress change: whether each part is ours is decided at every compile.
  f.add(Kind::kIngressClass, R"({"metadata": {"name": "kroute", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
                                 "spec": {"controller": "kroute.dev/ingress-controller"}})");
  t = same_as_from_scratch("kroute is the default class");
  CHECK_FALSE(cache.last_patched());  // not reported to the cache: seen in the store's revision
  CHECK(std::count(t.owned.begin(), t.owned.end(), "n/i2") == 1);
  f.store.apply(Kind::kIngressClass, EventType::kDeleted, json(R"({"metadata": {"name": "kroute"}})"));
  t = same_as_from_scratch("no class of ours");
  CHECK(t.owned.empty());

  // A relist replaces every Ingress: the cache starts over.
  f.ours_class();
  f.store.begin_list(Kind::kIngress);
  f.store.listed(Kind::kIngress, json(R"({"metadata": {"name": "only", "namespace": "n"}, "spec": {"ingressClassName": "kroute",
                                          "rules": [)" + route_a + "]}}"));
  f.store.end_list(Kind::kIngress);
  cache.ingress_changed("");
  t = same_as_from_scratch("after a relist");
  CHECK(t.owned == std::vector<std::string>{"n/only"});
}

TEST_CASE("annotations: regex paths host-wide, aliases and host records through compile and build") {
  Fixture f;
  f.options.watch_without_class = true;
  f.service("s", R"([{"port": 80}])");
  f.service("t", R"([{"port": 80}])");
  f.ingress("regex", R"(, "annotations": {"nginx.ingress.kubernetes.io/rewrite-target": "/$2",
                                          "nginx.ingress.kubernetes.io/server-alias": "alias.com, plain.com",
                                          "nginx.ingress.kubernetes.io/app-root": "/app1"})",
            R"({"rules": [)" + Fixture::rule("r.com", "/something(/|$)(.*)", "s", "80") + "]}",
            "2024-01-01T00:00:00Z");
  // Another Ingress on the same host: its path becomes a regex too, without a rewrite.
  f.ingress("other", "", R"({"rules": [)" + Fixture::rule("r.com", "/other", "t", "80") + "," +
                             Fixture::rule("plain.com", "/", "t", "80") + "]}",
            "2024-02-01T00:00:00Z");
  f.ingress("bad", R"(, "annotations": {"nginx.ingress.kubernetes.io/use-regex": "true"})",
            R"({"rules": [)" + Fixture::rule("bad.com", "/(unclosed", "t", "80") + "]}", "2024-03-01T00:00:00Z");
  BuildResult build;
  const CompiledTable t = f.compile_and_build(&build);
  SnapshotView view;
  REQUIRE(SnapshotView::open(build.bytes, view).ok);
  PatternCache cache;
  const PathPatterns patterns(view, cache);
  PathCaptures captures;
  const RouteMatch m = view.lookup("R.com", "/SOMETHING/new", &patterns, &captures);
  REQUIRE(m.rule != nullptr);
  CHECK((m.host->flags & format::kRegexPaths) != 0);
  CHECK(view.policies(m.rule->policies).size() == 1);
  CHECK(captures.count == 3);
  const RouteMatch other = view.lookup("r.com", "/OTHER", &patterns, nullptr);
  REQUIRE(other.rule != nullptr);
  CHECK(other.rule->policies == format::kNone);
  CHECK(view.lookup("alias.com", "/something", &patterns, nullptr).rule != nullptr);
  REQUIRE(m.server != nullptr);
  CHECK(view.policies(m.server->policies).size() == 1);  // app-root
  CHECK(has_warning(t, "regex", "AnnotationIgnored"));   // plain.com is routed by "other"
  CHECK(has_warning(t, "bad", "InvalidRule"));
}

TEST_CASE("ssl redirect: every Ingress of a host with TLS redirects, as ingress-nginx's server does") {
  Fixture f;
  f.options.watch_without_class = true;
  f.service("s", R"([{"port": 80}])");
  f.ingress("secure", "", R"({"rules": [)" + Fixture::rule("a.com", "/", "s", "80") + "," +
                              Fixture::rule("x.w.com", "/", "s", "80") +
                              R"(], "tls": [{"hosts": ["a.com", "*.w.com"], "secretName": "cert"}]})");
  // Another Ingress on the same hosts without a tls section of its own, and a host nobody has TLS for.
  f.ingress("split", "", R"({"rules": [)" + Fixture::rule("a.com", "/api", "s", "80") + "," +
                             Fixture::rule("y.w.com", "/", "s", "80") + "," +
                             Fixture::rule("plain.com", "/", "s", "80") + "]}",
            "2024-02-01T00:00:00Z");
  f.ingress("optout", R"(, "annotations": {"nginx.ingress.kubernetes.io/ssl-redirect": "false"})",
            R"({"rules": [)" + Fixture::rule("a.com", "/plain", "s", "80") + "]}", "2024-03-01T00:00:00Z");
  BuildResult build;
  f.compile_and_build(&build);
  SnapshotView view;
  REQUIRE(SnapshotView::open(build.bytes, view).ok);
  const auto https = [&](const char* host, const char* path) {
    const RouteMatch m = view.lookup(host, path);
    REQUIRE(m.rule != nullptr);
    const auto records = view.policies(m.rule->policies);
    return std::any_of(records.begin(), records.end(), [](const format::PolicyRecord& p) {
      return p.kind == PolicyKind::kRedirect && (p.flags & policy::kOnlyPlainHttp) != 0 &&
             (p.flags & policy::kIfHostHasTls) == 0;
    });
  };
  CHECK(https("a.com", "/"));
  CHECK(https("a.com", "/api"));       // TLS from the other Ingress
  CHECK(https("y.w.com", "/"));        // covered by the other Ingress's wildcard
  CHECK(https("x.w.com", "/"));
  CHECK_FALSE(https("plain.com", "/"));
  CHECK_FALSE(https("a.com", "/plain"));  // ssl-redirect "false"
}

TEST_CASE("canary: merged into its primary's rule; without a primary or second for a path: warned and ignored") {
  Fixture f;
  f.options.watch_without_class = true;
  CompileCache cache;
  f.service("main", R"([{"name": "http", "port": 80}])");
  f.service("next", R"([{"name": "http", "port": 80}])");
  const auto canary_meta = [](const std::string& extra) {
    return R"(, "annotations": {"nginx.ingress.kubernetes.io/canary": "true", )" + extra + "}";
  };
  f.ingress("primary", R"(, "annotations": {"nginx.ingress.kubernetes.io/rewrite-target": "/x"})",
            R"({"rules": [)" + Fixture::rule("a.com", "/", "main", "80") + "]}");
  f.ingress("canary",
            canary_meta(R"("nginx.ingress.kubernetes.io/canary-by-header": "X-C", )"
                        R"("nginx.ingress.kubernetes.io/canary-weight": "20", )"
                        R"("nginx.ingress.kubernetes.io/rewrite-target": "/ignored", )"
                        R"("nginx.ingress.kubernetes.io/affinity": "cookie")"),
            R"({"rules": [)" + Fixture::rule("a.com", "/", "next", "80") + "," +
                Fixture::rule("lonely.com", "/", "next", "80") + "]}",
            "2024-01-02T00:00:00Z");
  f.ingress("late", canary_meta(R"("nginx.ingress.kubernetes.io/canary-weight": "50")"),
            R"({"rules": [)" + Fixture::rule("a.com", "/", "main", "80") + "]}", "2024-01-03T00:00:00Z");
  CompiledTable t = same_as_from_scratch(f, cache, "first");
  REQUIRE(t.model.rules.size() == 1);  // canaries add no rules of their own
  const Rule& r = t.model.rules[0];
  CHECK(t.model.backends[r.backend].service == "main");
  // Without the https redirect every rule has (ssl-redirect, settled by the builder).
  const auto records = [](const Rule& rule) {
    std::vector<PolicyRecord> out;
    std::copy_if(rule.policies.begin(), rule.policies.end(), std::back_inserter(out),
                 [](const PolicyRecord& p) { return p.kind != PolicyKind::kRedirect; });
    return out;
  };
  const std::vector<PolicyRecord> own = records(r);
  std::vector<PolicyKind> kinds;
  for (const PolicyRecord& p : own) kinds.push_back(p.kind);
  // The primary's own rewrite (not the canary's), then the canary's header and weight, then its affinity.
  REQUIRE(kinds == std::vector<PolicyKind>{PolicyKind::kRewrite, PolicyKind::kCanary, PolicyKind::kCanary,
                                           PolicyKind::kAffinity});
  CHECK(own[0].a == "/x");
  CHECK(own[1].a == "X-C");
  CHECK(own[2].value == (std::uint64_t{20} << 32 | 100));
  for (std::size_t i = 1; i < 4; ++i) CHECK(t.model.backends[own[i].backend].service == "next");
  CHECK(has_warning(t, "canary", "CanaryWithoutPrimary"));
  CHECK(has_warning(t, "late", "CanaryIgnored"));
  CHECK(build_snapshot(t.model).diagnostics.empty());

  // A change of the canary or of its primary is compiled in full and gives the right table.
  f.ingress("canary", canary_meta(R"("nginx.ingress.kubernetes.io/canary-weight": "70")"),
            R"({"rules": [)" + Fixture::rule("a.com", "/", "next", "80") + "]}", "2024-01-02T00:00:00Z");
  cache.ingress_changed("n/canary");
  t = same_as_from_scratch(f, cache, "canary changed");
  CHECK_FALSE(cache.last_patched());
  CHECK(records(t.model.rules[0]).back().value == (std::uint64_t{70} << 32 | 100));
  f.ingress("primary", "", R"({"rules": [)" + Fixture::rule("a.com", "/", "main", "80") + "]}");
  cache.ingress_changed("n/primary");
  t = same_as_from_scratch(f, cache, "primary changed");
  CHECK_FALSE(cache.last_patched());
  REQUIRE(records(t.model.rules[0]).size() == 1);
  CHECK(records(t.model.rules[0])[0].kind == PolicyKind::kCanary);
  // An Ingress of another host still patches.
  f.ingress("other", "", R"({"rules": [)" + Fixture::rule("b.com", "/", "main", "80") + "]}");
  cache.ingress_changed("n/other");
  same_as_from_scratch(f, cache, "unrelated");
  CHECK(cache.last_patched());
  // Without the primary the canary is ignored again.
  f.store.apply(Kind::kIngress, EventType::kDeleted, json(R"({"metadata": {"name": "primary", "namespace": "n"}})"));
  cache.ingress_changed("n/primary");
  t = same_as_from_scratch(f, cache, "primary gone");
  CHECK(has_warning(t, "canary", "CanaryWithoutPrimary"));
  CHECK(std::none_of(t.model.backends.begin(), t.model.backends.end(),
                     [](const Backend& b) { return b.service == "next"; }));
}

TEST_CASE("build warnings are printable text and go to the object they came from, whatever the model quotes") {
  // A Gateway API listener hostname with a NUL byte reached a server-name host policy, and the builder's
  // refusal quoted it into an Event message (found by fuzz-objects).
  CompiledTable table;
  table.model.sources.push_back({"n", "r", 0, "HTTPRoute"});
  HostPolicy policy;
  policy.host = std::string("a.example.c\0\0om\x01", 16);
  table.model.host_policies.push_back(policy);
  BuildResult build;
  build.diagnostics.push_back({Item::kHostPolicy, 0, 0, "host " + policy.host + " is not a host name \\ at all"});
  std::vector<Warning> warnings;
  add_build_warnings(table, build, warnings);
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].kind == "HTTPRoute");
  CHECK(check_header_value(warnings[0].message).empty());
  CHECK(warnings[0].message.find("a.example.c\\x00\\x00om") != std::string::npos);
}
