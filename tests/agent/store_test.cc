#include <doctest.h>

#include "certificates.h"
#include "json_helpers.h"
#include "store.h"

using namespace kroute;
using namespace kroute::agent;
using kube::EventType;

TEST_CASE("ingress projection: rules, paths, backends by number and name, TLS, class, status") {
  Ingress in;
  const std::string error = parse_ingress(json(R"({
    "metadata": {"name": "web", "namespace": "shop", "uid": "u1", "resourceVersion": "7",
                 "creationTimestamp": "2024-01-02T03:04:05Z",
                 "annotations": {"kubernetes.io/ingress.class": "kroute"}},
    "spec": {"ingressClassName": "kroute",
             "defaultBackend": {"service": {"name": "fallback", "port": {"number": 8080}}},
             "rules": [{"host": "a.example.com", "http": {"paths": [
                {"path": "/x", "pathType": "Exact", "backend": {"service": {"name": "s", "port": {"name": "http"}}}},
                {"path": "/y", "pathType": "Weird", "backend": {"service": {"name": "s", "port": {"number": 80}}}},
                {"path": "/r", "pathType": "Prefix", "backend": {"resource": {"kind": "Bucket", "name": "b"}}}]}}],
             "tls": [{"hosts": ["a.example.com"], "secretName": "cert"}]},
    "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}})"), in);
  REQUIRE(error == "");
  CHECK(in.ns == "shop");
  CHECK(in.created_unix == 1704164645);
  CHECK(in.class_name == std::optional<std::string>("kroute"));
  CHECK(in.class_annotation == std::optional<std::string>("kroute"));
  REQUIRE(in.default_backend);
  CHECK(in.default_backend->port_number == 8080);
  REQUIRE(in.rules.size() == 1);
  REQUIRE(in.rules[0].paths.size() == 3);
  CHECK(in.rules[0].paths[0].type == PathType::kExact);
  CHECK(in.rules[0].paths[0].backend.port_name == "http");
  CHECK(in.rules[0].paths[1].type_error == "unknown pathType Weird");
  CHECK(in.rules[0].paths[2].backend.is_resource);
  CHECK(in.tls.size() == 1);
  CHECK(in.status == std::vector<LoadBalancerAddress>{{"192.0.2.1", ""}});
}

TEST_CASE("projections refuse objects without a name and tolerate wrong types") {
  Ingress in;
  CHECK(parse_ingress(json(R"({"metadata": {}})"), in) == "no metadata.name");
  CHECK(parse_ingress(json(R"([1, 2])"), in) == "not a JSON object");
  Ingress odd;
  CHECK(parse_ingress(json(R"({"metadata": {"name": "x", "namespace": 5},
      "spec": {"rules": [{"host": 7, "http": {"paths": "no"}}], "tls": 3}})"), odd) == "");
  Service svc;
  CHECK(parse_service(json(R"({"metadata": {"name": "s", "namespace": "n"},
      "spec": {"ports": [{"port": "eighty"}, {"port": 70000}, {"name": "h", "port": 80}]}})"), svc) == "");
  REQUIRE(svc.ports.size() == 3);
  CHECK(svc.ports[0].port == 0);
  CHECK(svc.ports[1].port == 0);
  CHECK(svc.ports[2].port == 80);
}

TEST_CASE("endpointslice projection: conditions default to ready; serving follows ready when absent") {
  EndpointSlice s;
  REQUIRE(parse_endpoint_slice(json(R"({"metadata": {"name": "s-1", "namespace": "n",
        "labels": {"kubernetes.io/service-name": "s"}}, "addressType": "IPv4",
      "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
      "endpoints": [{"addresses": ["10.0.0.1"]},
                    {"addresses": ["10.0.0.2"], "conditions": {"ready": false}},
                    {"addresses": ["10.0.0.3"], "conditions": {"ready": false, "serving": true, "terminating": true}}]})"),
                               s) == "");
  CHECK(s.service == "s");
  REQUIRE(s.endpoints.size() == 3);
  CHECK((s.endpoints[0].ready && s.endpoints[0].serving && !s.endpoints[0].terminating));
  CHECK((!s.endpoints[1].ready && !s.endpoints[1].serving));
  CHECK((!s.endpoints[2].ready && s.endpoints[2].serving && s.endpoints[2].terminating));
}

TEST_CASE("tls secret projection keeps a usable chain and key, and says why others are not") {
  const TestCertificate good = make_certificate("a.com");
  TlsSecret s;
  REQUIRE(parse_tls_secret(json(tls_secret_json("c", good.chain_pem, good.key_pem)), s) == "");
  CHECK(s.error == "");
  CHECK(s.certificate.chain_pem == good.chain_pem);
  CHECK(s.certificate.key_pem == good.key_pem);
  const TestCertificate expired = make_certificate("a.com", -10, -2);
  TlsSecret old;
  REQUIRE(parse_tls_secret(json(tls_secret_json("c", expired.chain_pem, expired.key_pem)), old) == "");
  CHECK(old.error.rfind("the certificate in tls.crt expired on 20", 0) == 0);
  CHECK(old.certificate.key_pem.empty());
  TlsSecret mismatch;
  REQUIRE(parse_tls_secret(json(tls_secret_json("c", good.chain_pem, expired.key_pem)), mismatch) == "");
  CHECK(mismatch.error == "tls.key does not match the certificate in tls.crt");
  CHECK(mismatch.certificate.chain_pem.empty());
}

TEST_CASE("ingress projection: ssl-redirect annotations, kroute's before ingress-nginx's") {
  const auto redirect = [](const std::string& annotations) {
    Ingress in;
    REQUIRE(parse_ingress(json(R"({"metadata": {"name": "a", "namespace": "n", "annotations": )" + annotations +
                               R"(}, "spec": {}})"), in) == "");
    return in.ssl_redirect;
  };
  CHECK(redirect("{}"));
  CHECK_FALSE(redirect(R"({"kroute.dev/ssl-redirect": "false"})"));
  CHECK_FALSE(redirect(R"({"nginx.ingress.kubernetes.io/ssl-redirect": "false"})"));
  CHECK(redirect(R"({"nginx.ingress.kubernetes.io/ssl-redirect": "false", "kroute.dev/ssl-redirect": "true"})"));
  CHECK_FALSE(redirect(R"({"nginx.ingress.kubernetes.io/ssl-redirect": "true", "kroute.dev/ssl-redirect": "false"})"));
  CHECK(redirect(R"({"kroute.dev/ssl-redirect": "maybe"})"));
}

TEST_CASE("tls secret projection: missing or junk data") {
  TlsSecret s;
  REQUIRE(parse_tls_secret(json(R"({"metadata": {"name": "c", "namespace": "n"}, "data": {}})"), s) == "");
  CHECK(s.error == "no tls.crt");
  TlsSecret junk;
  REQUIRE(parse_tls_secret(json(R"({"metadata": {"name": "c", "namespace": "n"},
      "data": {"tls.crt": "bm90IGEgY2VydA==", "tls.key": "bm90IGEga2V5"}})"), junk) == "");
  CHECK(junk.error == "tls.crt holds no PEM certificate");
}

TEST_CASE("store: changes, status-only changes, deletes, relists replace, bad objects are skipped") {
  Metrics metrics;
  std::vector<Change> changes;
  Store store(metrics, [&](Change c, Kind, const std::string&) { changes.push_back(c); });
  const auto ingress = [](const std::string& rv, const std::string& ip, const std::string& host) {
    return json(R"({"metadata": {"name": "a", "namespace": "n", "resourceVersion": ")" + rv +
                R"("}, "spec": {"rules": [{"host": ")" + host + R"("}]},
                "status": {"loadBalancer": {"ingress": [{"ip": ")" + ip + R"("}]}}})");
  };
  CHECK(store.apply(Kind::kIngress, EventType::kAdded, ingress("1", "1.1.1.1", "a.com")) == Change::kRoutes);
  CHECK(store.apply(Kind::kIngress, EventType::kModified, ingress("2", "1.1.1.1", "a.com")) == Change::kNone);
  CHECK(store.apply(Kind::kIngress, EventType::kModified, ingress("3", "2.2.2.2", "a.com")) == Change::kStatus);
  CHECK(store.ingresses.at("n/a").resource_version == "3");
  CHECK(store.apply(Kind::kIngress, EventType::kModified, ingress("4", "2.2.2.2", "b.com")) == Change::kRoutes);
  CHECK(metrics.objects[Metrics::at(Kind::kIngress)] == 1);

  // An update that no longer parses removes the object rather than keep a stale version routing.
  CHECK(store.apply(Kind::kIngress, EventType::kModified, json(R"({"metadata": {"name": "a", "namespace": "n"}})")) ==
        Change::kRoutes);
  CHECK(store.ingresses.empty());
  CHECK(metrics.bad_objects[Metrics::at(Kind::kIngress)] == 1);
  CHECK(store.apply(Kind::kService, EventType::kAdded, json(R"({"metadata": {}})")) == Change::kNone);

  store.apply(Kind::kService, EventType::kAdded, json(R"({"metadata": {"name": "old", "namespace": "n"}})"));
  store.begin_list(Kind::kService);
  store.listed(Kind::kService, json(R"({"metadata": {"name": "new", "namespace": "n"}})"));
  CHECK(store.services.count("n/old") == 1);  // the old state stays until the list is complete
  changes.clear();
  store.end_list(Kind::kService);
  CHECK(store.services.count("n/old") == 0);
  CHECK(store.services.count("n/new") == 1);
  CHECK(changes == std::vector<Change>{Change::kRoutes});
  store.begin_list(Kind::kService);
  store.listed(Kind::kService, json(R"({"metadata": {"name": "other", "namespace": "n"}})"));
  store.abort_list(Kind::kService);
  CHECK(store.services.count("n/new") == 1);

  store.event(Kind::kService, EventType::kDeleted, json(R"({"metadata": {"name": "new", "namespace": "n"}})"));
  CHECK(store.services.empty());
}
