// custom-http-errors, default-backend, disable-proxy-intercept-errors, mirror-* and service-upstream: how
// kroute reads them (agent/ingress/annotations.cc), the records they become (agent/ingress/policies.cc)
// and what the compiler settles (the error backend, a mirror's Service name, the ClusterIP backend).
#include <doctest.h>

#include <algorithm>

#include "cluster_fixture.h"
#include "compiler.h"
#include "ingress/annotations.h"
#include "ingress/policies.h"
#include "json_helpers.h"
#include "policy/error_pages.h"
#include "policy/kinds.h"
#include "policy/mirror.h"
#include "store.h"

using namespace kroute;
using namespace kroute::agent;
using kube::EventType;
using kroute::agent::testing::has_warning;
using kroute::agent::testing::TestCluster;

namespace {

AnnotationReading read(const std::string& annotations) {
  return read_annotations(json(annotations), kDefaultAnnotationPrefix);
}

bool has_problem(const AnnotationReading& r, const std::string& text) {
  return std::any_of(r.problems.begin(), r.problems.end(),
                     [&](const IngressProblem& p) { return p.message.find(text) != std::string::npos; });
}

const PolicyRecord* record_of(const CompiledTable& t, const std::string& host, PolicyKind kind) {
  for (const Rule& r : t.model.rules) {
    if (r.host != host) continue;
    for (const PolicyRecord& p : r.policies) {
      if (p.kind == kind) return &p;
    }
  }
  return nullptr;
}

const Backend& backend_of(const CompiledTable& t, const std::string& host) {
  for (const Rule& r : t.model.rules) {
    if (r.host == host) return t.model.backends[r.backend];
  }
  FAIL("no rule for " << host);
  return t.model.backends.front();
}

}  // namespace

TEST_CASE("error annotations: custom-http-errors as ingress-nginx's pattern, default-backend a Service name") {
  auto r = read(R"({"nginx.ingress.kubernetes.io/custom-http-errors": "503,404,404",
                    "nginx.ingress.kubernetes.io/default-backend": "errors",
                    "nginx.ingress.kubernetes.io/disable-proxy-intercept-errors": "true"})");
  CHECK(r.values.custom_http_errors == std::vector<std::uint16_t>{503, 404, 404});
  CHECK(r.values.default_backend == "errors");
  CHECK(r.values.disable_proxy_intercept_errors);
  CHECK(r.problems.empty());
  for (const char* bad : {"", "404,", "404, 503", "399", "600", "4o4", "404;503", "1404"}) {
    r = read(std::string(R"({"nginx.ingress.kubernetes.io/custom-http-errors": ")") + bad + "\"}");
    CHECK_MESSAGE(r.values.custom_http_errors.empty(), bad);
    CHECK_MESSAGE(has_problem(r, "custom-http-errors"), bad);
  }
  r = read(R"({"nginx.ingress.kubernetes.io/default-backend": "Bad_Name"})");
  CHECK(r.values.default_backend.empty());
  CHECK(has_problem(r, "default-backend"));
}

TEST_CASE("error annotations: the record lists the statuses sorted, once; its check") {
  IngressAnnotations a;
  a.custom_http_errors = {503, 404, 404};
  auto records = rule_policies(a, "/");
  REQUIRE(records.size() == 2);  // with ssl-redirect's conditional redirect first
  PolicyRecord pages = records[1];
  CHECK(pages.kind == PolicyKind::kErrorPages);
  CHECK(pages.a == "404,503");
  CHECK(pages.flags == 0);
  CHECK(pages.backend == kNoRecordBackend);  // the compiler's
  CHECK_FALSE(policy::check_record(pages, false).empty());
  pages.backend = 0;
  pages.b = "http";
  CHECK(policy::check_record(pages, false).empty());
  a.default_backend = "errors";
  a.disable_proxy_intercept_errors = true;
  CHECK(rule_policies(a, "/")[1].flags == (policy::kWhenNoEndpoints | policy::kOnlyOwnErrors));
  a.custom_http_errors.clear();
  CHECK(rule_policies(a, "/")[1].a.empty());

  for (const char* bad : {"404,404", "503,404", "404,", "40", "404;503", "399", "600"}) {
    CHECK_FALSE_MESSAGE(policy::check_status_list(bad).empty(), bad);
  }
  CHECK(policy::check_status_list("400,404,599").empty());
  pages.a.clear();
  pages.flags = 0;
  CHECK_FALSE(policy::check_record(pages, false).empty());
}

TEST_CASE("mirror annotations: an http(s) URL with $request_uri only; the Host; the body") {
  auto r = read(R"({"nginx.ingress.kubernetes.io/mirror-target": "https://10.1.2.3:8443/copy$request_uri",
                    "nginx.ingress.kubernetes.io/mirror-request-body": "off"})");
  CHECK(r.values.mirror_target == "https://10.1.2.3:8443/copy$request_uri");
  CHECK_FALSE(r.values.mirror_request_body);
  CHECK(r.problems.empty());
  auto records = rule_policies(r.values, "/");
  REQUIRE(records.size() == 2);
  CHECK(records[1] == policy::mirror("https://10.1.2.3:8443/copy$request_uri", "10.1.2.3", false));
  CHECK(policy::check_record(records[1], false).empty());

  r = read(R"({"nginx.ingress.kubernetes.io/mirror-target": "http://m.ns.svc", "nginx.ingress.kubernetes.io/mirror-host": "h.example",
               "nginx.ingress.kubernetes.io/mirror-request-body": "on"})");
  CHECK(r.values.mirror_request_body);
  CHECK(rule_policies(r.values, "/")[1] == policy::mirror("http://m.ns.svc$request_uri", "h.example", true));
  CHECK(mirror_target_host("http://[fd00::1]:80/x") == "[fd00::1]");

  for (const char* bad : {"ftp://h/", "http://", "http:///x", "http://h/$host", "http://h/$request_uri_x",
                          "http://h/a;b", "http://h/a b", "http://h:99999999/", "http://h:x/", "h/x",
                          "http://h/{x}", "http://h/\\\"", "http://[zz]/"}) {
    r = read(std::string(R"({"nginx.ingress.kubernetes.io/mirror-target": ")") + bad + "\"}");
    CHECK_MESSAGE(r.values.mirror_target.empty(), bad);
    CHECK_MESSAGE(has_problem(r, "mirror-target"), bad);
  }
}

TEST_CASE("compiler: error backend from default-backend, else the table's default backend, else no record") {
  TestCluster c;
  c.service("web");
  c.service("errors");
  c.ingress("own", "own.com", "web",
            R"({"nginx.ingress.kubernetes.io/custom-http-errors": "404", "nginx.ingress.kubernetes.io/default-backend": "errors"})");
  c.ingress("global", "global.com", "web", R"({"nginx.ingress.kubernetes.io/custom-http-errors": "418"})");
  c.ingress("missing", "missing.com", "web",
            R"({"nginx.ingress.kubernetes.io/default-backend": "nowhere"})");
  CompiledTable t = compile(c.store, c.options);
  const PolicyRecord* own = record_of(t, "own.com", PolicyKind::kErrorPages);
  REQUIRE(own != nullptr);
  CHECK(t.model.backends[own->backend].service == "errors");
  CHECK(own->b == "http");
  CHECK(own->flags == policy::kWhenNoEndpoints);
  CHECK(record_of(t, "global.com", PolicyKind::kErrorPages) == nullptr);
  CHECK(has_warning(t, "AnnotationIgnored", "no default backend"));
  CHECK(record_of(t, "missing.com", PolicyKind::kErrorPages) == nullptr);
  CHECK(has_warning(t, "DefaultBackendNotFound", "n/nowhere"));
  CHECK(build_snapshot(t.model).diagnostics.empty());

  c.ingress("default", "default.com", "web", "{}",
            R"("defaultBackend": {"service": {"name": "errors", "port": {"number": 80}}}, )");
  t = compile(c.store, c.options);
  const PolicyRecord* global = record_of(t, "global.com", PolicyKind::kErrorPages);
  REQUIRE(global != nullptr);
  CHECK(global->backend == t.model.default_backend);
  CHECK(build_snapshot(t.model).diagnostics.empty());
}

TEST_CASE("compiler: a mirror's Service host name becomes its ClusterIP; other names are refused") {
  TestCluster c;
  c.service("web");
  c.service("mirror", "10.96.0.7");
  c.ingress("svc", "svc.com", "web",
            R"({"nginx.ingress.kubernetes.io/mirror-target": "http://mirror.n.svc.cluster.local:8080/x$request_uri"})");
  c.ingress("short", "short.com", "web", R"({"nginx.ingress.kubernetes.io/mirror-target": "http://mirror.n.svc"})");
  c.ingress("ext", "ext.com", "web", R"({"nginx.ingress.kubernetes.io/mirror-target": "http://example.com/"})");
  c.ingress("gone", "gone.com", "web", R"({"nginx.ingress.kubernetes.io/mirror-target": "http://nope.n.svc/"})");
  const CompiledTable t = compile(c.store, c.options);
  const PolicyRecord* svc = record_of(t, "svc.com", PolicyKind::kMirror);
  REQUIRE(svc != nullptr);
  CHECK(svc->a == "http://10.96.0.7:8080/x$request_uri");
  CHECK(svc->b == "mirror.n.svc.cluster.local");
  const PolicyRecord* short_name = record_of(t, "short.com", PolicyKind::kMirror);
  REQUIRE(short_name != nullptr);
  CHECK(short_name->a == "http://10.96.0.7$request_uri");
  CHECK(record_of(t, "ext.com", PolicyKind::kMirror) == nullptr);
  CHECK(has_warning(t, "AnnotationIgnored", "neither an IP address"));
  CHECK(record_of(t, "gone.com", PolicyKind::kMirror) == nullptr);
  CHECK(has_warning(t, "AnnotationIgnored", "n/nope not found"));
}

TEST_CASE("compiler: service-upstream is a backend of its own at the ClusterIP; slices do not change it") {
  TestCluster c;
  c.service("web", "10.96.0.5");
  c.ingress("up", "up.com", "web", R"({"nginx.ingress.kubernetes.io/service-upstream": "true"})");
  c.ingress("plain", "plain.com", "web", "{}");
  CompileCache cache;
  CompiledTable t = compile(c.store, c.options, cache);
  REQUIRE(backend_of(t, "up.com").endpoints.size() == 1);
  CHECK(backend_of(t, "up.com").endpoints[0].address == "10.96.0.5");
  CHECK(backend_of(t, "up.com").endpoints[0].port == 80);
  REQUIRE(backend_of(t, "plain.com").endpoints.size() == 1);
  CHECK(backend_of(t, "plain.com").endpoints[0].address == "10.0.0.9");

  c.store.apply(Kind::kEndpointSlice, EventType::kModified, json(R"({"metadata": {"name": "web-1", "namespace": "n",
      "labels": {"kubernetes.io/service-name": "web"}}, "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
      "endpoints": [{"addresses": ["10.0.0.10"]}]})"));
  cache.slice_changed(c.store, "n/web-1");
  t = compile(c.store, c.options, cache);
  CHECK(backend_of(t, "up.com").endpoints[0].address == "10.96.0.5");
  CHECK(backend_of(t, "plain.com").endpoints[0].address == "10.0.0.10");

  TestCluster headless;
  headless.service("web", "None");
  headless.ingress("up", "up.com", "web", R"({"nginx.ingress.kubernetes.io/service-upstream": "true"})");
  t = compile(headless.store, headless.options);
  CHECK(backend_of(t, "up.com").endpoints[0].address == "10.0.0.9");
  CHECK(has_warning(t, "AnnotationIgnored", "no ClusterIP"));
}

TEST_CASE("compiler: a patch that adds or changes these annotations gives the table a full compile gives") {
  TestCluster c;
  c.service("web", "10.96.0.5");
  c.service("errors");
  c.service("mirror", "10.96.0.8");
  c.ingress("default", "default.com", "web", "{}",
            R"("defaultBackend": {"service": {"name": "errors", "port": {"number": 80}}}, )");
  c.ingress("i", "i.com", "web", "{}");
  CompileCache cache;
  compile(c.store, c.options, cache);
  const std::string variants[] = {
      R"({"nginx.ingress.kubernetes.io/custom-http-errors": "404"})",
      R"({"nginx.ingress.kubernetes.io/custom-http-errors": "404,503", "nginx.ingress.kubernetes.io/default-backend": "errors"})",
      R"({"nginx.ingress.kubernetes.io/service-upstream": "true", "nginx.ingress.kubernetes.io/mirror-target": "http://mirror.n.svc"})",
      "{}"};
  for (const std::string& annotations : variants) {
    CAPTURE(annotations);
    c.ingress("i", "i.com", "web", annotations);
    cache.ingress_changed("n/i");
    const CompiledTable patched = compile(c.store, c.options, cache);
    CHECK(cache.last_patched());
    const CompiledTable fresh = compile(c.store, c.options);
    CHECK(patched.warnings == fresh.warnings);
    CHECK(build_snapshot(patched.model, {1}).bytes == build_snapshot(fresh.model, {1}).bytes);
  }
}
