// Writes a seed corpus for fuzz-objects: a mode byte, then Kubernetes objects as JSON (see
// fuzz_objects.cc). The seeds cover a working cluster (with real certificates, so mutations reach
// the TLS checks), watch events that change and delete objects, a LIST, and the hostile shapes of
// tests/README.md: bad paths and names, control characters, non-UTF-8 bytes, duplicate hosts,
// garbage PEM and fields of the wrong JSON type.
#include <json/json.h>

#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "certificates.h"

namespace {

Json::Value parse(const std::string& text) {
  Json::Value value;
  std::string error;
  Json::CharReaderBuilder builder;
  std::unique_ptr<Json::CharReader> reader(builder.newCharReader());
  if (!reader->parse(text.data(), text.data() + text.size(), &value, &error)) {
    throw std::runtime_error("bad seed JSON: " + error + "\n" + text);
  }
  return value;
}

std::string to_text(const Json::Value& value) {
  Json::StreamWriterBuilder builder;
  builder["indentation"] = "";
  return Json::writeString(builder, value);
}

Json::Value tls_secret(const std::string& ns, const std::string& name, const std::string& crt, const std::string& key) {
  Json::Value secret = parse(R"({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls"})");
  secret["metadata"]["namespace"] = ns;
  secret["metadata"]["name"] = name;
  secret["data"]["tls.crt"] = base64(crt);
  secret["data"]["tls.key"] = base64(key);
  return secret;
}

// A small working cluster: a class, a Service with two ports, its EndpointSlice, Secrets and an
// Ingress with every kind of rule, TLS and a default backend.
std::vector<Json::Value> cluster() {
  const TestCertificate web = make_certificate("a.example.com");
  const TestCertificate fallback = make_certificate("default.example.com");
  return {
      parse(R"({"kind": "IngressClass", "metadata": {"name": "kroute",
          "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
          "spec": {"controller": "kroute.dev/ingress-controller"}})"),
      parse(R"({"kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
          "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10",
                   "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "admin", "port": 9000}]}})"),
      parse(R"({"kind": "EndpointSlice", "metadata": {"name": "web-1", "namespace": "shop",
          "labels": {"kubernetes.io/service-name": "web"}}, "addressType": "IPv4",
          "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "admin", "port": 9090}],
          "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": true}},
                        {"addresses": ["10.0.0.2"], "conditions": {"ready": false, "serving": true, "terminating": true}}]})"),
      parse(R"({"kind": "EndpointSlice", "metadata": {"name": "web-2", "namespace": "shop",
          "labels": {"kubernetes.io/service-name": "web"}}, "addressType": "IPv6",
          "ports": [{"name": "http", "port": 8080}], "endpoints": [{"addresses": ["fd00::1"]}]})"),
      tls_secret("shop", "web-tls", web.chain_pem, web.key_pem),
      tls_secret("default", "tls", fallback.chain_pem, fallback.key_pem),
      parse(R"({"kind": "Ingress", "metadata": {"name": "web", "namespace": "shop", "uid": "u-1",
          "creationTimestamp": "2024-01-02T03:04:05Z", "annotations": {"kroute.dev/ssl-redirect": "false"}},
        "spec": {"ingressClassName": "kroute",
          "defaultBackend": {"service": {"name": "web", "port": {"number": 80}}},
          "rules": [
            {"host": "a.example.com", "http": {"paths": [
              {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"name": "http"}}}},
              {"path": "/api/", "pathType": "Exact", "backend": {"service": {"name": "web", "port": {"number": 9000}}}},
              {"path": "/img", "pathType": "ImplementationSpecific",
               "backend": {"service": {"name": "web", "port": {"name": "admin"}}}}]}},
            {"host": "*.example.com", "http": {"paths": [
              {"path": "/w", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}},
            {"http": {"paths": [
              {"path": "/any", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}],
          "tls": [{"hosts": ["a.example.com", "*.example.com"], "secretName": "web-tls"}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}})"),
  };
}

Json::Value array(const std::vector<Json::Value>& items) {
  Json::Value out(Json::arrayValue);
  for (const Json::Value& item : items) out.append(item);
  return out;
}

Json::Value event(const char* type, const Json::Value& object) {
  Json::Value out;
  out["type"] = type;
  out["object"] = object;
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: fuzz-object-corpus DIR\n";
    return 1;
  }
  std::vector<std::pair<char, std::string>> seeds;
  const std::vector<Json::Value> objects = cluster();
  const std::string whole = to_text(array(objects));
  // The cluster as events, plain, with a default certificate, with class-less Ingresses ours, as a LIST.
  for (char mode : {'\0', '\x10', '\x08', '\x20'}) seeds.emplace_back(mode, whole);

  // Changes after the first compile: a Service port renamed, a slice deleted, the Ingress modified.
  {
    std::vector<Json::Value> events;
    for (const Json::Value& o : objects) events.push_back(event("ADDED", o));
    Json::Value service = objects[1];
    service["spec"]["ports"][0]["name"] = "web";
    Json::Value ingress = objects.back();
    ingress["spec"]["rules"][0]["http"]["paths"][0]["path"] = "/v2";
    events.push_back(event("MODIFIED", service));
    events.push_back(event("DELETED", objects[2]));
    events.push_back(event("MODIFIED", ingress));
    events.push_back(event("DELETED", objects[4]));
    seeds.emplace_back('\0', to_text(array(events)));
  }

  // Endpoint churn after the first compile, each change compiled as it lands (mode bit 64: the compile
  // patches the endpoints of the backends naming the slice's Service): endpoints replaced, a slice
  // moved to a Service no rule names and back, a slice added and one deleted. As many changes as
  // cluster objects, so that the first compile comes right after the cluster.
  {
    std::vector<Json::Value> events;
    for (const Json::Value& o : objects) events.push_back(event("ADDED", o));
    Json::Value web1 = objects[2];
    Json::Value web2 = objects[3];
    std::vector<Json::Value> churn;
    web1["endpoints"][0]["addresses"][0] = "10.0.0.7";
    churn.push_back(event("MODIFIED", web1));
    web2["endpoints"][0]["conditions"]["ready"] = false;
    churn.push_back(event("MODIFIED", web2));
    Json::Value moved = web1;
    moved["metadata"]["labels"]["kubernetes.io/service-name"] = "other";
    churn.push_back(event("MODIFIED", moved));
    Json::Value web3 = web1;
    web3["metadata"]["name"] = "web-3";
    web3["endpoints"][0]["addresses"][0] = "10.0.0.9";
    churn.push_back(event("ADDED", web3));
    churn.push_back(event("DELETED", web2));
    churn.push_back(event("MODIFIED", web1));
    web3["endpoints"][1]["conditions"]["ready"] = true;
    churn.push_back(event("MODIFIED", web3));
    churn.resize(objects.size(), event("MODIFIED", web3));
    events.insert(events.end(), churn.begin(), churn.end());
    seeds.emplace_back('\x40', to_text(array(events)));
  }

  // Hostile paths, hosts, names and annotations next to a good rule (tests/README.md lists them).
  // The raw bytes \xff and \xc3\x28 are not UTF-8; \u escapes give NUL, CR, LF and a lone surrogate.
  const std::string good_service = R"({"kind": "Service", "metadata": {"name": "s", "namespace": "n"},
      "spec": {"ports": [{"name": "http", "port": 80}]}})";
  const auto path = [](const std::string& p, const std::string& type = "ImplementationSpecific",
                       const std::string& service = "s", const std::string& port = R"({"name": "http"})") {
    return R"({"path": ")" + p + R"(", "pathType": ")" + type + R"(", "backend": {"service": {"name": ")" + service +
           R"(", "port": )" + port + "}}}";
  };
  seeds.emplace_back('\x08', "[" + good_service + R"(, {"kind": "Ingress", "metadata": {"name": "hostile", "namespace": "n",
      "annotations": {"kroute.dev/ssl-redirect": "}; location / { return 200 owned; }\n",
                      "nginx.ingress.kubernetes.io/configuration-snippet": "return 200 owned;\r\n"}},
    "spec": {"rules": [{"host": "h.example.com", "http": {"paths": [)" +
                             path("/ok", "Prefix") + "," + path("/a/../b") + "," + path("/a/./b") + "," + path("/a//b") +
                             "," + path("/%00") + "," + path("/a b") + "," + path("/a\\r\\nb") + "," + path("/nul\\u0000") +
                             "," + path("/\xff") + "," + path("/\xc3\x28") + "," + path("/\\udc00") + "," +
                             path("/\\u00e9t\\u00e9", "Prefix") + "," + path("relative") + "," +
                             path("/bad-service", "Prefix", "Bad_Name") + "," +
                             path("/bad-port", "Prefix", "s", R"({"name": "a-very-long-port-name"})") + "," +
                             path("/no-port", "Prefix", "s", "{}") + R"(]}},
      {"host": "bad host!", "http": {"paths": [)" + path("/", "Prefix") + R"(]}},
      {"host": "UPPER.Example.COM", "http": {"paths": [)" + path("/", "Prefix") + R"(]}},
      {"host": "h\r\n.example.com", "http": {"paths": [)" + path("/", "Prefix") + R"(]}}],
      "tls": [{"hosts": ["h.example.com", "bad host"], "secretName": "bad\nname"}, {"hosts": ["h.example.com"]}],
      "defaultBackend": {"service": {"name": "s\r\nx", "port": {"number": 80}}}}}])");

  // Every routing annotation of ingress-nginx kroute reads, valid and hostile, on two hosts sharing one.
  seeds.emplace_back('\x08', "[" + good_service + R"(, {"kind": "Ingress", "metadata": {"name": "annotated", "namespace": "n",
      "annotations": {"nginx.ingress.kubernetes.io/rewrite-target": "/$2$1",
                      "nginx.ingress.kubernetes.io/app-root": "/app",
                      "nginx.ingress.kubernetes.io/permanent-redirect": "https://new.example.com$request_uri",
                      "nginx.ingress.kubernetes.io/permanent-redirect-code": "999",
                      "kroute.dev/temporal-redirect": "https://x/$nope",
                      "nginx.ingress.kubernetes.io/server-alias": "alias.example.com, h.example.com, bad alias",
                      "nginx.ingress.kubernetes.io/from-to-www-redirect": "true",
                      "nginx.ingress.kubernetes.io/force-ssl-redirect": "true",
                      "nginx.ingress.kubernetes.io/upstream-vhost": "internal:8080",
                      "nginx.ingress.kubernetes.io/x-forwarded-prefix": "/p\r\nX: 1"}},
    "spec": {"rules": [{"host": "r.example.com", "http": {"paths": [)" +
                             path("/something(/|$)(.*)", "Prefix") + "," + path("/(a+)+$") + "," + path("/(unclosed") + "," +
                             path("/[z-a]", "Exact") + R"(]}},
      {"host": "www.h.example.com", "http": {"paths": [)" + path("/", "Prefix") + R"(]}}]}},
    {"kind": "Ingress", "metadata": {"name": "neighbour", "namespace": "n", "annotations": {"nginx.ingress.kubernetes.io/use-regex": "true"}},
     "spec": {"rules": [{"host": "r.example.com", "http": {"paths": [)" + path("/plain", "Exact") + R"(]}}]}}])");

  // The traffic annotations (issue 18), valid and hostile: a primary with every proxy setting, protocol,
  // error page and mirror annotation; two canaries for its path (the second is ignored), one for a path
  // without a primary; a service-upstream rule; the canary's Service is deleted by a later event in
  // some modes.
  const std::string canary_service = R"({"kind": "Service", "metadata": {"name": "canary", "namespace": "n"},
      "spec": {"clusterIP": "10.96.0.9", "ports": [{"name": "http", "port": 80}]}})";
  seeds.emplace_back('\x08', "[" + good_service + "," + canary_service + R"(,
    {"kind": "Ingress", "metadata": {"name": "primary", "namespace": "n", "creationTimestamp": "2024-01-01T00:00:00Z",
      "annotations": {"nginx.ingress.kubernetes.io/proxy-connect-timeout": "-5",
                      "nginx.ingress.kubernetes.io/proxy-read-timeout": "120",
                      "nginx.ingress.kubernetes.io/proxy-send-timeout": "99999999999999999999",
                      "nginx.ingress.kubernetes.io/proxy-next-upstream": "error timeout http_503 bogus",
                      "nginx.ingress.kubernetes.io/proxy-next-upstream-tries": "0",
                      "nginx.ingress.kubernetes.io/proxy-next-upstream-timeout": "3",
                      "nginx.ingress.kubernetes.io/proxy-body-size": "8m",
                      "kroute.dev/proxy-body-size": "12 parsecs",
                      "nginx.ingress.kubernetes.io/client-body-buffer-size": "1k",
                      "nginx.ingress.kubernetes.io/proxy-buffering": "off",
                      "nginx.ingress.kubernetes.io/proxy-buffer-size": "16k",
                      "nginx.ingress.kubernetes.io/proxy-buffers-number": "-1",
                      "nginx.ingress.kubernetes.io/proxy-request-buffering": "maybe",
                      "nginx.ingress.kubernetes.io/proxy-max-temp-file-size": "0",
                      "nginx.ingress.kubernetes.io/proxy-http-version": "1.0",
                      "nginx.ingress.kubernetes.io/backend-protocol": "GRPCS",
                      "nginx.ingress.kubernetes.io/proxy-ssl-verify": "on",
                      "nginx.ingress.kubernetes.io/proxy-ssl-secret": "n/missing",
                      "nginx.ingress.kubernetes.io/proxy-ssl-name": "backend.internal\r\nX: 1",
                      "nginx.ingress.kubernetes.io/proxy-ssl-protocols": "TLSv1.3 SSLv2",
                      "nginx.ingress.kubernetes.io/affinity": "cookie",
                      "nginx.ingress.kubernetes.io/session-cookie-name": "bad;name",
                      "nginx.ingress.kubernetes.io/session-cookie-max-age": "3600",
                      "nginx.ingress.kubernetes.io/upstream-hash-by": "$request_uri$http_x_user",
                      "nginx.ingress.kubernetes.io/load-balance": "ewma",
                      "nginx.ingress.kubernetes.io/custom-http-errors": "404,503,999,abc",
                      "nginx.ingress.kubernetes.io/default-backend": "canary",
                      "nginx.ingress.kubernetes.io/mirror-target": "http://10.0.0.5$request_uri; return 200",
                      "nginx.ingress.kubernetes.io/mirror-host": "m.example.com"}},
     "spec": {"rules": [{"host": "c.example.com", "http": {"paths": [)" + path("/", "Prefix") + R"(]}}]}},
    {"kind": "Ingress", "metadata": {"name": "canary", "namespace": "n", "creationTimestamp": "2024-02-01T00:00:00Z",
      "annotations": {"nginx.ingress.kubernetes.io/canary": "true",
                      "nginx.ingress.kubernetes.io/canary-by-header": "X-Canary",
                      "nginx.ingress.kubernetes.io/canary-by-header-pattern": "^(a|b)+$",
                      "nginx.ingress.kubernetes.io/canary-by-cookie": "canary\u0000",
                      "nginx.ingress.kubernetes.io/canary-weight": "30",
                      "nginx.ingress.kubernetes.io/canary-weight-total": "20",
                      "nginx.ingress.kubernetes.io/affinity": "cookie",
                      "nginx.ingress.kubernetes.io/affinity-mode": "persistent"}},
     "spec": {"rules": [{"host": "c.example.com", "http": {"paths": [)" + path("/", "Prefix", "canary") + R"(]}},
                        {"host": "lonely.example.com", "http": {"paths": [)" + path("/", "Prefix", "canary") + R"(]}}]}},
    {"kind": "Ingress", "metadata": {"name": "canary2", "namespace": "n", "creationTimestamp": "2024-03-01T00:00:00Z",
      "annotations": {"nginx.ingress.kubernetes.io/canary": "true", "nginx.ingress.kubernetes.io/canary-weight": "100"}},
     "spec": {"rules": [{"host": "c.example.com", "http": {"paths": [)" + path("/", "Prefix") + R"(]}}]}},
    {"kind": "Ingress", "metadata": {"name": "clusterip", "namespace": "n",
      "annotations": {"nginx.ingress.kubernetes.io/service-upstream": "true"}},
     "spec": {"rules": [{"host": "s.example.com", "http": {"paths": [)" + path("/", "Prefix", "canary") + R"(]}}]}}])");
  // Error pages, mirrors and service-upstream, valid and hostile: an error backend that exists and one that
  // does not, mirror targets by IP, by Service name, by outside name and with injected text, a headless
  // Service's ClusterIP.
  seeds.emplace_back('\x08', "[" + good_service + R"(, {"kind": "Service", "metadata": {"name": "m", "namespace": "n"},
      "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 8080}]}},
    {"kind": "Ingress", "metadata": {"name": "errors", "namespace": "n",
      "annotations": {"nginx.ingress.kubernetes.io/custom-http-errors": "404,503,404",
                      "nginx.ingress.kubernetes.io/default-backend": "m",
                      "nginx.ingress.kubernetes.io/disable-proxy-intercept-errors": "true",
                      "nginx.ingress.kubernetes.io/service-upstream": "true",
                      "nginx.ingress.kubernetes.io/mirror-target": "http://m.n.svc.cluster.local:8080$request_uri",
                      "nginx.ingress.kubernetes.io/mirror-host": "copy.example",
                      "nginx.ingress.kubernetes.io/mirror-request-body": "off"}},
     "spec": {"rules": [{"host": "e.example.com", "http": {"paths": [)" + path("/", "Prefix") + R"(]}}]}},
    {"kind": "Ingress", "metadata": {"name": "errors-bad", "namespace": "n",
      "annotations": {"nginx.ingress.kubernetes.io/custom-http-errors": "404,abc,",
                      "nginx.ingress.kubernetes.io/default-backend": "nowhere",
                      "kroute.dev/mirror-target": "http://10.0.0.1/;return 200 x;",
                      "nginx.ingress.kubernetes.io/mirror-target": "http://outside.example.com/$host"}},
     "spec": {"rules": [{"host": "f.example.com", "http": {"paths": [)" + path("/", "Prefix") + R"(]}}]}}])");
  // The proxy settings (timeouts, retries, sizes, buffering), valid and hostile, on one rule each.
  seeds.emplace_back('\x08', "[" + good_service + R"(, {"kind": "Ingress", "metadata": {"name": "proxied", "namespace": "n",
      "annotations": {"nginx.ingress.kubernetes.io/proxy-read-timeout": "-5",
                      "nginx.ingress.kubernetes.io/proxy-connect-timeout": "99999999999999999999",
                      "nginx.ingress.kubernetes.io/proxy-send-timeout": "7",
                      "nginx.ingress.kubernetes.io/proxy-next-upstream": "error off\ttimeout",
                      "kroute.dev/proxy-next-upstream": "http_502 non_idempotent",
                      "nginx.ingress.kubernetes.io/proxy-next-upstream-tries": "0",
                      "nginx.ingress.kubernetes.io/proxy-next-upstream-timeout": "1e3",
                      "nginx.ingress.kubernetes.io/proxy-body-size": "8g",
                      "nginx.ingress.kubernetes.io/client-body-buffer-size": "1b",
                      "nginx.ingress.kubernetes.io/proxy-buffering": "on",
                      "nginx.ingress.kubernetes.io/proxy-buffer-size": "65m",
                      "nginx.ingress.kubernetes.io/proxy-buffers-number": "1",
                      "nginx.ingress.kubernetes.io/proxy-request-buffering": "off",
                      "nginx.ingress.kubernetes.io/proxy-max-temp-file-size": "0"}},
    "spec": {"rules": [{"host": "p.example.com", "http": {"paths": [)" + path("/", "Prefix") + R"(]}}]}}])");

  // How nginx talks to the backend: protocols, HTTP/1.0 and upstream TLS with good, garbage and foreign
  // Secrets, valid and hostile values.
  seeds.emplace_back('\x08', "[" + good_service + R"(, {"kind": "Ingress", "metadata": {"name": "protocols", "namespace": "n",
      "annotations": {"nginx.ingress.kubernetes.io/backend-protocol": "GRPCS",
                      "nginx.ingress.kubernetes.io/proxy-http-version": "1.0",
                      "nginx.ingress.kubernetes.io/proxy-ssl-secret": "n/ca",
                      "nginx.ingress.kubernetes.io/proxy-ssl-verify": "on",
                      "nginx.ingress.kubernetes.io/proxy-ssl-verify-depth": "300",
                      "nginx.ingress.kubernetes.io/proxy-ssl-name": "b\r\n.example.com",
                      "nginx.ingress.kubernetes.io/proxy-ssl-server-name": "on",
                      "nginx.ingress.kubernetes.io/proxy-ssl-protocols": "TLSv1.3 SSLv2",
                      "kroute.dev/backend-protocol": "FCGI"}},
    "spec": {"rules": [{"host": "p.example.com", "http": {"paths": [)" + path("/", "Prefix") + R"(]}}]}},
    {"kind": "Ingress", "metadata": {"name": "protocols-foreign", "namespace": "n",
      "annotations": {"nginx.ingress.kubernetes.io/backend-protocol": "https",
                      "nginx.ingress.kubernetes.io/proxy-ssl-secret": "other/ca"}},
    "spec": {"rules": [{"host": "q.example.com", "http": {"paths": [)" + path("/", "Prefix") + R"(]}}]}},
    {"kind": "Secret", "metadata": {"name": "ca", "namespace": "n"},
     "data": {"ca.crt": ")" + base64("-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n") +
                             R"(", "tls.crt": "", "tls.key": ""}}])");

  // Canaries (one with a primary, one without, a second for the same path) and the balancing
  // annotations, valid and hostile.
  seeds.emplace_back('\x08', "[" + good_service + R"(,
    {"kind": "Ingress", "metadata": {"name": "primary", "namespace": "n", "creationTimestamp": "2024-01-01T00:00:00Z",
      "annotations": {"nginx.ingress.kubernetes.io/affinity": "cookie",
                      "nginx.ingress.kubernetes.io/affinity-mode": "persistent",
                      "nginx.ingress.kubernetes.io/session-cookie-name": "S\r\nX",
                      "nginx.ingress.kubernetes.io/session-cookie-samesite": "None",
                      "nginx.ingress.kubernetes.io/session-cookie-conditional-samesite-none": "true",
                      "nginx.ingress.kubernetes.io/session-cookie-path": "/a;b",
                      "nginx.ingress.kubernetes.io/upstream-hash-by": "$request_uri$http_x",
                      "nginx.ingress.kubernetes.io/load-balance": "ewma"}},
     "spec": {"rules": [{"host": "c.example.com", "http": {"paths": [)" + path("/", "Prefix") + R"(]}}]}},
    {"kind": "Ingress", "metadata": {"name": "canary", "namespace": "n", "creationTimestamp": "2024-01-02T00:00:00Z",
      "annotations": {"nginx.ingress.kubernetes.io/canary": "true",
                      "nginx.ingress.kubernetes.io/canary-by-header": "X-Canary",
                      "nginx.ingress.kubernetes.io/canary-by-header-pattern": "^(a+)+$",
                      "nginx.ingress.kubernetes.io/canary-by-cookie": "c",
                      "nginx.ingress.kubernetes.io/canary-weight": "-1",
                      "nginx.ingress.kubernetes.io/canary-weight-total": "0",
                      "nginx.ingress.kubernetes.io/affinity": "cookie"}},
     "spec": {"rules": [{"host": "c.example.com", "http": {"paths": [)" + path("/", "Prefix") + R"(]}},
                        {"host": "lonely.example.com", "http": {"paths": [)" + path("/", "Prefix") + R"(]}}]}},
    {"kind": "Ingress", "metadata": {"name": "second", "namespace": "n", "creationTimestamp": "2024-01-03T00:00:00Z",
      "annotations": {"nginx.ingress.kubernetes.io/canary": "true", "nginx.ingress.kubernetes.io/canary-weight": "50"}},
     "spec": {"rules": [{"host": "c.example.com", "http": {"paths": [)" + path("/", "Prefix") + R"(]}}]}}])");

  // The Gateway API (mode bit 7; bit 0: address slots): a class of ours, a Gateway with HTTP and HTTPS
  // listeners, routes with every match, filter, timeout and retry kind, one across namespaces with its
  // grant, one whose values are hostile, and an Ingress on the same host.
  const std::string gateway_objects = good_service + R"(,
    {"kind": "EndpointSlice", "metadata": {"name": "s-1", "namespace": "n", "labels": {"kubernetes.io/service-name": "s"}},
     "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
     "endpoints": [{"addresses": ["10.0.0.5"], "conditions": {"ready": true}}]},
    {"kind": "Namespace", "metadata": {"name": "n", "labels": {"team": "a"}}},
    {"kind": "GatewayClass", "metadata": {"name": "k", "generation": 1}, "spec": {"controllerName": "kroute.dev/fuzz"}},
    {"kind": "Gateway", "metadata": {"name": "gw", "namespace": "n", "generation": 2},
     "spec": {"gatewayClassName": "k", "addresses": [{"type": "IPAddress", "value": "192.0.2.10"}],
              "listeners": [{"name": "http", "port": 80, "protocol": "HTTP",
                             "allowedRoutes": {"namespaces": {"from": "Selector", "selector": {"matchLabels": {"team": "a"}}}}},
                            {"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "*.g.example.com",
                             "tls": {"certificateRefs": [{"name": "tls"}]}}]}},
    {"kind": "Secret", "type": "kubernetes.io/tls", "metadata": {"name": "tls", "namespace": "n"},
     "data": {"tls.crt": "", "tls.key": ""}},
    {"kind": "HTTPRoute", "metadata": {"name": "r", "namespace": "n", "generation": 1, "creationTimestamp": "2024-01-01T00:00:00Z"},
     "spec": {"parentRefs": [{"name": "gw"}, {"name": "gw", "sectionName": "https", "port": 443}],
              "hostnames": ["a.g.example.com", "*.g.example.com"],
              "rules": [{"name": "one", "matches": [{"path": {"type": "PathPrefix", "value": "/a"}, "method": "GET",
                                          "headers": [{"name": "x", "value": "1"}, {"type": "RegularExpression", "name": "y", "value": "v[0-9]+"}],
                                          "queryParams": [{"name": "q", "value": "a b"}]},
                                         {"path": {"type": "Exact", "value": "/e"}}],
                         "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "X-A", "value": "1"}], "remove": ["Y"]}},
                                     {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"add": [{"name": "X-B", "value": "2"}]}},
                                     {"type": "URLRewrite", "urlRewrite": {"hostname": "h", "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/b"}}},
                                     {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "s", "port": 80}, "fraction": {"numerator": 1, "denominator": 3}}},
                                     {"type": "CORS", "cors": {"allowOrigins": ["https://*.x.com"], "allowMethods": ["*"], "allowCredentials": true, "maxAge": 10}}],
                         "backendRefs": [{"name": "s", "port": 80, "weight": 3,
                                          "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [{"name": "B", "value": "s"}]}}]},
                                         {"name": "gone", "port": 80, "weight": 1}],
                         "timeouts": {"request": "2s", "backendRequest": "500ms"},
                         "retry": {"codes": [500, 503], "attempts": 2, "backoff": "100ms"}},
                        {"matches": [{"path": {"type": "PathPrefix", "value": "/r"}}],
                         "filters": [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "port": 8443, "statusCode": 301,
                                                                                   "path": {"type": "ReplaceFullPath", "replaceFullPath": "/x"}}}]}]}},
    {"kind": "HTTPRoute", "metadata": {"name": "across", "namespace": "m", "generation": 1},
     "spec": {"parentRefs": [{"name": "gw", "namespace": "n"}], "rules": [{"backendRefs": [{"name": "s", "namespace": "n", "port": 80}]}]}},
    {"kind": "ReferenceGrant", "metadata": {"name": "g", "namespace": "n"},
     "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "m"}],
              "to": [{"group": "", "kind": "Service"}]}},
    {"kind": "HTTPRoute", "metadata": {"name": "hostile", "namespace": "n", "generation": 1},
     "spec": {"parentRefs": [{"name": "gw", "port": 70000}, {"name": 5}], "hostnames": ["*", "a..b", "A.G.EXAMPLE.COM"],
              "rules": [{"matches": [{"path": {"type": "RegularExpression", "value": "(a+)+$"}},
                                     {"path": {"type": "PathPrefix", "value": "/\r\nx"}, "headers": [{"name": "x\ny", "value": "\u0001"}]}],
                         "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "Host", "value": "a\r\nb"}]}},
                                     {"type": "CORS", "cors": {"allowOrigins": ["*", "https://*"], "allowHeaders": ["a b"], "maxAge": -1}},
                                     {"type": "ExtensionRef"}],
                         "backendRefs": [{"name": "s", "port": 80, "weight": 4294967296}],
                         "timeouts": {"request": "1.5s"}, "retry": {"codes": [418, 99999], "attempts": -3, "backoff": "soon"}}]}},
    {"kind": "Ingress", "metadata": {"name": "i", "namespace": "n"},
     "spec": {"rules": [{"host": "a.g.example.com", "http": {"paths": [)" + path("/i", "Prefix") + R"(]}}]}})";
  seeds.emplace_back(static_cast<char>(0x88), "[" + gateway_objects + "]");
  seeds.emplace_back(static_cast<char>(0x89), "[" + gateway_objects + "]");
  seeds.emplace_back(static_cast<char>(0xa8), "[" + gateway_objects + "]");

  // Two Ingresses claim the same host and path: the older one wins.
  seeds.emplace_back('\x08', "[" + good_service + R"(,
    {"kind": "Ingress", "metadata": {"name": "young", "namespace": "n", "creationTimestamp": "2024-06-01T00:00:00Z"},
     "spec": {"rules": [{"host": "dup.example.com", "http": {"paths": [)" + path("/", "Prefix") + R"(]}}]}},
    {"kind": "Ingress", "metadata": {"name": "old", "namespace": "n", "creationTimestamp": "2024-01-01T00:00:00Z"},
     "spec": {"rules": [{"host": "dup.example.com", "http": {"paths": [)" + path("/", "Prefix") + "," +
                             path("/", "Exact") + R"(]}}],
              "tls": [{"hosts": ["dup.example.com"], "secretName": "garbage"}]}},
    {"kind": "Secret", "metadata": {"name": "garbage", "namespace": "n"},
     "data": {"tls.crt": ")" + base64("-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n") +
                             R"(", "tls.key": "bm90IGEga2V5"}}])");

  // Fields of the wrong JSON type everywhere a projection looks.
  seeds.emplace_back('\x08', R"([{"kind": "Ingress", "metadata": {"name": "shapes", "namespace": "n", "annotations": 5},
      "spec": {"rules": [5, "x", {"host": 7, "http": {"paths": [1, {"path": 5, "backend": 3}]}}],
               "tls": [1, {"hosts": [1]}], "defaultBackend": {"service": "x"}}, "status": []},
    {"kind": "Service", "metadata": {"name": "s", "namespace": "n"}, "spec": {"ports": [1, {"port": 1e19}, {"port": -1}]}},
    {"kind": "EndpointSlice", "metadata": {"name": "e", "namespace": "n", "labels": 1},
     "ports": [{"port": 18446744073709551615}], "endpoints": [1, {"conditions": 5, "addresses": "x"}]},
    {"kind": "Secret", "metadata": {"name": "t", "namespace": "n"}, "data": []},
    {"kind": "IngressClass", "metadata": {"name": "c", "annotations": []}, "spec": 1},
    {"type": "DELETED", "object": 5}, 17, null])");

  // Nested past the JSON reader's depth limit (jsoncpp threw here, found by this fuzzer), and watch
  // events of every type, an ERROR event with fields of the wrong type among them.
  seeds.emplace_back('\x02', R"({"kind": "Service", "metadata": {"name": )" + std::string(250, '[') + "}}");
  seeds.emplace_back('\0', R"({"type": "ERROR", "object": {"code": "410", "reason": {}, "message": [1]}})");
  seeds.emplace_back('\0', R"({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": 7}}})");

  // Each kind alone, picked by the mode byte (no "kind" field).
  for (std::size_t k = 0; k < objects.size(); ++k) {
    Json::Value object = objects[k];
    const std::string kind = object["kind"].asString();
    object.removeMember("kind");
    const char mode = kind == "Ingress" ? 0 : kind == "IngressClass" ? 1 : kind == "Service" ? 2
                    : kind == "EndpointSlice" ? 3 : 4;
    seeds.emplace_back(mode, to_text(object));
  }

  int n = 0;
  for (const auto& [mode, text] : seeds) {
    std::ofstream out(std::string(argv[1]) + "/seed-" + std::to_string(n++), std::ios::binary);
    out.put(mode);
    out << text;
  }
  return 0;
}
