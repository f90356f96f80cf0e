#include <doctest.h>
#include <openssl/err.h>

#include <set>

#include "certificates.h"
#include "compiler.h"
#include "json_helpers.h"
#include "snapshot.h"
#include "store.h"
#include "validate.h"

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
  // Expired: still usable, as ingress-nginx serves it, with the date for the Warning Event.
  CHECK(old.error == "");
  CHECK(old.expired_on.rfind("20", 0) == 0);
  CHECK(old.certificate.key_pem == expired.key_pem);
  CHECK(s.expired_on == "");
  Metrics metrics;
  Store store(metrics, nullptr);
  store.apply(Kind::kSecret, EventType::kAdded, json(tls_secret_json("c", expired.chain_pem, expired.key_pem)));
  store.apply(Kind::kSecret, EventType::kAdded, json(tls_secret_json("d", good.chain_pem, good.key_pem)));
  CHECK(metrics.tls_certificates_expired == 1);
  store.apply(Kind::kSecret, EventType::kModified, json(tls_secret_json("c", good.chain_pem, good.key_pem)));
  CHECK(metrics.tls_certificates_expired == 0);
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
    return in.annotations.ssl_redirect;
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
  CHECK(ERR_peek_error() == 0);  // nothing left in OpenSSL's error queue for curl to trip over
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

TEST_CASE("store: a bad object is remembered once, until it is fixed, deleted or gone from a relist") {
  Metrics metrics;
  Store store(metrics, nullptr);
  const auto ingress = [](const std::string& name, const std::string& spec) {
    return json(R"({"metadata": {"name": ")" + name + R"(", "namespace": "n"}, "spec": )" + spec + "}");
  };
  // One object bad on every update: counted each time, remembered (and logged) once.
  for (int i = 0; i < 50; ++i) {
    std::string spec = "[";
    spec += std::to_string(i);
    spec += ']';
    store.apply(Kind::kIngress, EventType::kModified, ingress("a", spec));
  }
  CHECK(metrics.bad_objects[Metrics::at(Kind::kIngress)] == 50);
  CHECK(store.bad_objects_remembered() == 1);
  store.apply(Kind::kIngress, EventType::kModified, ingress("a", "{}"));  // fixed
  CHECK(store.bad_objects_remembered() == 0);
  CHECK(store.ingresses.count("n/a") == 1);
  store.apply(Kind::kIngress, EventType::kModified, ingress("a", "1"));
  store.apply(Kind::kIngress, EventType::kModified, ingress("b", "1"));
  CHECK(store.bad_objects_remembered() == 2);
  store.apply(Kind::kIngress, EventType::kDeleted, ingress("b", "1"));  // a delete event carries the last state
  CHECK(store.bad_objects_remembered() == 1);
  // A relist that no longer has "a" (deleted while the watch was down) but a new bad "c".
  store.apply(Kind::kService, EventType::kAdded, json(R"({"metadata": {"name": "Bad_Name", "namespace": "n"}})"));
  CHECK(store.bad_objects_remembered() == 2);
  store.begin_list(Kind::kIngress);
  store.listed(Kind::kIngress, ingress("c", "1"));
  store.listed(Kind::kIngress, ingress("d", "{}"));
  store.end_list(Kind::kIngress);
  CHECK(store.bad_objects_remembered() == 2);  // Ingress c and the Service
  CHECK(store.ingresses.count("n/d") == 1);
  CHECK(store.ingresses.count("n/a") == 0);
}

TEST_CASE("projections read fields of the wrong JSON type as absent and never throw") {
  Ingress in;
  CHECK_NOTHROW(CHECK(parse_ingress(json(R"({"metadata": {"name": "x", "namespace": "n", "annotations": 5},
      "spec": {"rules": [5, "x", {"host": 7, "http": {"paths": [1, {"path": 5, "backend": 3}]}}, {"http": 4}],
               "tls": [1, {"hosts": [1]}], "defaultBackend": {"service": "x"}},
      "status": {"loadBalancer": []}})"), in) == ""));
  REQUIRE(in.rules.size() == 4);
  REQUIRE(in.rules[2].paths.size() == 2);
  CHECK(in.rules[2].paths[1].type_error == "no pathType");
  CHECK(in.tls.size() == 2);  // without secret and hosts: the compiler passes over them
  REQUIRE(in.problems.size() == 1);
  CHECK(in.problems[0].message == "spec.tls host \"\" is skipped: a host must not be empty (leave it out for a host-less rule)");
  Ingress annotations_list;
  CHECK_NOTHROW(parse_ingress(json(R"({"metadata": {"name": "x", "annotations": ["a"]}, "spec": {}})"), annotations_list));
  Service svc;
  CHECK_NOTHROW(CHECK(parse_service(json(R"({"metadata": {"name": "s", "namespace": "n"}, "status": 1,
      "spec": {"ports": [1, {"port": 1e19}, {"port": 18446744073709551615}, {"port": -80}, {"port": 80.5}],
               "externalIPs": 5}})"), svc) == ""));
  REQUIRE(svc.ports.size() == 5);
  for (const ServicePort& p : svc.ports) CHECK(p.port == 0);
  Service spec_list;
  CHECK_NOTHROW(parse_service(json(R"({"metadata": {"name": "s"}, "spec": [1]})"), spec_list));
  EndpointSlice slice;
  CHECK_NOTHROW(CHECK(parse_endpoint_slice(json(R"({"metadata": {"name": "e", "namespace": "n", "labels": 1},
      "ports": [{"port": "x"}, 2], "endpoints": [1, {"conditions": 5, "addresses": "x"}, {"addresses": [1, "10.0.0.1"]}]})"),
                                           slice) == ""));
  REQUIRE(slice.endpoints.size() == 3);
  CHECK(slice.endpoints[2].addresses == std::vector<std::string>{"", "10.0.0.1"});
  TlsSecret secret;
  CHECK_NOTHROW(CHECK(parse_tls_secret(json(R"({"metadata": {"name": "t", "namespace": "n"}, "data": [1]})"), secret) == ""));
  CHECK(secret.error == "no tls.crt");
  IngressClass cls;
  CHECK_NOTHROW(CHECK(parse_ingress_class(json(R"({"metadata": {"name": "c", "annotations": []}, "spec": 1})"), cls) == ""));
}

TEST_CASE("projections refuse names the API server would refuse") {
  Ingress in;
  CHECK(parse_ingress(json(R"({"metadata": {"name": "Web", "namespace": "n"}, "spec": {}})"), in).rfind("metadata.name ", 0) == 0);
  CHECK(parse_ingress(json(R"({"metadata": {"name": "web\r\nX-Evil: 1", "namespace": "n"}, "spec": {}})"), in)
            .find("\\x0d\\x0a") != std::string::npos);
  CHECK(parse_ingress(json(R"({"metadata": {"name": "web", "namespace": "a.b"}, "spec": {}})"), in)
            .rfind("metadata.namespace ", 0) == 0);
  Service svc;
  CHECK(parse_service(json(R"({"metadata": {"name": "a.b", "namespace": "n"}})"), svc) != "");
  CHECK(parse_service(json(R"({"metadata": {"name": "1st", "namespace": "n"}})"), svc) == "");
  TlsSecret secret;
  CHECK(parse_tls_secret(json(R"({"metadata": {"name": "a_b", "namespace": "n"}})"), secret) != "");
  EndpointSlice slice;
  CHECK(parse_endpoint_slice(json(R"({"metadata": {"name": "e\n", "namespace": "n"}})"), slice) != "");
  IngressClass cls;
  CHECK(parse_ingress_class(json(R"({"metadata": {"name": "C"}})"), cls) != "");
}

TEST_CASE("ingress projection: hostile paths, hosts and backend names are skipped, shown printable") {
  const auto path = [](const std::string& p, const std::string& service = "s", const std::string& port = R"({"number": 80})") {
    return R"({"path": ")" + p + R"(", "pathType": "ImplementationSpecific", "backend": {"service": {"name": ")" + service +
           R"(", "port": )" + port + "}}}";
  };
  Ingress in;
  REQUIRE(parse_ingress(json(R"({"metadata": {"name": "h", "namespace": "n"}, "spec": {"rules": [
      {"host": "a.com", "http": {"paths": [)" + path("/ok") + "," + path("/a b") + "," + path("/a\\r\\nb") + "," +
                             path("/a/../b") + "," + path("/\\u0000") + "," + path("/%00") + "," + path("/ok2", "Bad_Name") +
                             "," + path("/ok3", "s", R"({"name": "HTTP"})") + "," + path("/ok4", "s\\nx") + R"(]}},
      {"host": "a\r\n.com", "http": {"paths": [)" + path("/") + "]}}]}})"),
                        in) == "");
  REQUIRE(in.rules.size() == 2);
  const auto& paths = in.rules[0].paths;
  REQUIRE(paths.size() == 9);
  CHECK(paths[0].type_error == "");
  CHECK(paths[1].type_error == "path must not contain spaces or control characters");
  CHECK(paths[2].type_error == "path must not contain spaces or control characters");
  CHECK(paths[2].path == "/a\\x0d\\x0ab");
  CHECK(paths[3].type_error.find("could never match") != std::string::npos);
  CHECK(paths[4].path == "/\\x00");
  CHECK(paths[5].type_error == "");  // "%00" is three characters; nginx compares decoded request paths
  CHECK(paths[6].type_error.rfind("backend service name ", 0) == 0);
  CHECK(paths[7].type_error.rfind("backend port name ", 0) == 0);
  CHECK(paths[8].type_error.rfind("backend service name ", 0) == 0);
  CHECK(paths[8].backend.service == "s\\x0ax");
  CHECK(in.rules[1].host == "a\\x0d\\x0a.com");
  CHECK(in.rules[1].paths[0].type_error == "host may contain only letters, digits, '-' and '.'");
}

TEST_CASE("ingress projection: a host with a label that starts or ends with '-' is refused") {
  for (const char* host : {"-a.com", "a-.com", "a.-b.com", "*.a-.com"}) {
    CAPTURE(host);
    Ingress in;
    REQUIRE(parse_ingress(json(R"({"metadata": {"name": "h", "namespace": "n"}, "spec": {"rules": [
        {"host": ")" + std::string(host) + R"(", "http": {"paths": [{"path": "/", "pathType": "Prefix",
         "backend": {"service": {"name": "s", "port": {"number": 80}}}}]}}]}})"),
                          in) == "");
    REQUIRE(in.rules.size() == 1);
    REQUIRE(in.rules[0].paths.size() == 1);
    CHECK(in.rules[0].paths[0].type_error == "host must start and end each label with a letter or digit");
  }
}

TEST_CASE("ingress projection: a bad TLS entry, default backend or annotation becomes a problem, the rest stays") {
  Ingress in;
  REQUIRE(parse_ingress(json(R"({"metadata": {"name": "h", "namespace": "n",
      "annotations": {"kroute.dev/ssl-redirect": "}; location / { return 200 owned; }\n",
                      "nginx.ingress.kubernetes.io/ssl-redirect": "false"}},
      "spec": {"defaultBackend": {"service": {"name": "s\r\n", "port": {"number": 80}}},
               "tls": [{"hosts": ["a.com"], "secretName": "bad\nname"},
                       {"hosts": ["b.com", "bad host", "*.c.com"], "secretName": "good"}]}})"),
                        in) == "");
  CHECK_FALSE(in.default_backend);
  CHECK_FALSE(in.annotations.ssl_redirect);  // the junk own annotation is ignored; ingress-nginx's applies
  REQUIRE(in.tls.size() == 1);
  CHECK(in.tls[0].hosts == std::vector<std::string>{"b.com", "*.c.com"});
  REQUIRE(in.problems.size() == 4);
  CHECK(in.problems[0].reason == "InvalidAnnotation");
  CHECK(in.problems[0].message ==
        "annotation kroute.dev/ssl-redirect is ignored: \"}; location / { return 200 owned; }\\x0a\" is not true or false");
  CHECK(in.problems[1].reason == "InvalidBackend");
  CHECK(in.problems[2].reason == "InvalidTLS");
  CHECK(in.problems[2].message.find("bad\\x0aname") != std::string::npos);
  CHECK(in.problems[3].message.rfind("spec.tls host \"bad host\" is skipped", 0) == 0);
  for (const IngressProblem& p : in.problems) CHECK(p.message.find('\n') == std::string::npos);
}

TEST_CASE("hostile Ingress next to a healthy one: warnings for the bad parts, a table without control characters") {
  Metrics metrics;
  Store store(metrics, nullptr);
  store.apply(Kind::kService, EventType::kAdded, json(R"({"metadata": {"name": "s", "namespace": "n"},
      "spec": {"ports": [{"name": "http", "port": 80}]}})"));
  store.apply(Kind::kEndpointSlice, EventType::kAdded, json(R"({"metadata": {"name": "s-1", "namespace": "n",
      "labels": {"kubernetes.io/service-name": "s"}}, "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
      "endpoints": [{"addresses": ["10.0.0.1"]}]})"));
  const auto rule = [](const std::string& host, const std::string& path, const std::string& service) {
    return R"({"host": ")" + host + R"(", "http": {"paths": [{"path": ")" + path +
           R"(", "pathType": "ImplementationSpecific", "backend": {"service": {"name": ")" + service +
           R"(", "port": {"name": "http"}}}}]}})";
  };
  store.apply(Kind::kIngress, EventType::kAdded, json(R"({"metadata": {"name": "healthy", "namespace": "n"},
      "spec": {"rules": [)" + rule("ok.example.com", "/", "s") + "]}}"));
  store.apply(Kind::kIngress, EventType::kAdded, json(R"({"metadata": {"name": "hostile", "namespace": "n",
      "annotations": {"kroute.dev/ssl-redirect": "x\r\nLocation: http://evil"}},
      "spec": {"defaultBackend": {"service": {"name": "s\r\nX: y", "port": {"number": 80}}},
               "tls": [{"hosts": ["ok.example.com"], "secretName": "a\r\nb"}],
               "rules": [)" + rule("ok.example.com", "/x\r\ny", "s") + "," + rule("bad\r\nhost", "/", "s") + "," +
                                                      rule("ok.example.com", "/z", "s\r\nX-Evil: 1") + "]}}"));
  CompileOptions options;
  options.watch_without_class = true;
  CompiledTable table = compile(store, options);
  BuildResult build = build_snapshot(table.model);
  add_build_warnings(table, build, table.warnings);
  std::set<std::string> reasons;
  for (const Warning& w : table.warnings) {
    CHECK(w.name == "hostile");
    CHECK(check_header_value(w.message) == "");
    reasons.insert(w.reason);
  }
  CHECK(reasons == std::set<std::string>{"InvalidAnnotation", "InvalidBackend", "InvalidRule", "InvalidTLS"});
  CHECK(build.stats.rules == 1);
  SnapshotView view;
  REQUIRE(SnapshotView::open(build.bytes, view).ok);
  const RouteMatch match = view.lookup("ok.example.com", "/x");
  REQUIRE(match.backend != nullptr);
  CHECK(view.str(view.source_of(*match.rule).name) == "healthy");
  CHECK(view.default_backend() == nullptr);
  CHECK(view.tls().empty());
}

TEST_CASE("a 1 MiB annotation (more than the API server allows) is read and ignored") {
  Ingress in;
  Json::Value object = json(R"({"metadata": {"name": "big", "namespace": "n"}, "spec": {"rules": [
      {"host": "a.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
       "backend": {"service": {"name": "s", "port": {"number": 80}}}}]}}]}})");
  object["metadata"]["annotations"]["example.com/blob"] = std::string(1 << 20, '}');
  object["metadata"]["annotations"]["kroute.dev/ssl-redirect"] = std::string(1 << 20, 'x');
  REQUIRE(parse_ingress(object, in) == "");
  REQUIRE(in.rules.size() == 1);
  CHECK(in.rules[0].paths[0].type_error == "");
  REQUIRE(in.problems.size() == 1);
  CHECK(in.problems[0].message.size() < 200);  // the value is shown cut short
}

TEST_CASE("opaque secrets: only those an access annotation can name are kept, and found by key") {
  Metrics metrics;
  Store store(metrics, nullptr);
  // An application's Opaque Secret (neither `auth` nor `ca.crt`): not kept, no recompile.
  store.apply(Kind::kOpaqueSecret, EventType::kAdded,
              json(R"({"metadata": {"name": "app", "namespace": "n"}, "type": "Opaque", "data": {"password": "c2VjcmV0"}})"));
  CHECK(store.opaque_secrets.empty());
  CHECK(store.secret("n/app") == nullptr);
  CHECK(store.revision(Kind::kOpaqueSecret) == 0);
  // An htpasswd Secret: kept with its decoded `auth` key.
  store.apply(Kind::kOpaqueSecret, EventType::kAdded,
              json(R"({"metadata": {"name": "users", "namespace": "n"}, "type": "Opaque", "data": {"auth": ")" +
                   base64("alice:{PLAIN}pw\n") + R"("}})"));
  const TlsSecret* users = store.secret("n/users");
  REQUIRE(users != nullptr);
  CHECK(users->auth == "alice:{PLAIN}pw\n");
  CHECK(store.revision(Kind::kOpaqueSecret) == 1);
  // The same data again: no change; then the key goes away: the Secret is forgotten.
  store.apply(Kind::kOpaqueSecret, EventType::kModified,
              json(R"({"metadata": {"name": "users", "namespace": "n"}, "type": "Opaque", "data": {"auth": ")" +
                   base64("alice:{PLAIN}pw\n") + R"("}})"));
  CHECK(store.revision(Kind::kOpaqueSecret) == 1);
  store.apply(Kind::kOpaqueSecret, EventType::kModified,
              json(R"({"metadata": {"name": "users", "namespace": "n"}, "type": "Opaque", "data": {"other": "eA=="}})"));
  CHECK(store.secret("n/users") == nullptr);
  CHECK(store.revision(Kind::kOpaqueSecret) == 2);
  // A CA bundle that is not PEM is kept, with its problem, so the annotation naming it can say why.
  store.apply(Kind::kOpaqueSecret, EventType::kAdded,
              json(R"({"metadata": {"name": "ca", "namespace": "n"}, "type": "Opaque", "data": {"ca.crt": ")" +
                   base64("not a certificate") + R"("}})"));
  REQUIRE(store.secret("n/ca") != nullptr);
  CHECK(store.secret("n/ca")->ca_error != "");
  CHECK(store.revision(Kind::kOpaqueSecret) == 3);
}

TEST_CASE("a Gateway API object with a string that is not UTF-8 is refused whole, and a stored one goes") {
  // The API server never sends such bytes; fuzz-objects did, and they reached the table's header records.
  Metrics metrics;
  Store store(metrics, [](Change, Kind, const std::string&) {});
  const std::string good = R"({"metadata": {"name": "r", "namespace": "n"}, "spec": {"rules": [{"filters": [
      {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"add": [{"name": "X-B", "value": "2"}]}}]}]}})";
  store.event(Kind::kHTTPRoute, EventType::kAdded, json(good));
  CHECK(store.http_routes.count("n/r") == 1);
  std::string bad = good;
  bad.replace(bad.find("\"2\""), 3, "\"2\xb4\xb4\"");
  store.event(Kind::kHTTPRoute, EventType::kModified, json(bad));
  CHECK(store.http_routes.count("n/r") == 0);
  // A key is refused too.
  std::string bad_key = good;
  bad_key.replace(bad_key.find("\"spec\""), 6, "\"sp\xff\"");
  store.event(Kind::kHTTPRoute, EventType::kAdded, json(bad_key));
  CHECK(store.http_routes.count("n/r") == 0);
  store.event(Kind::kHTTPRoute, EventType::kAdded, json(good));
  CHECK(store.http_routes.count("n/r") == 1);
}
