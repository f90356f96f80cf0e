// A store and compile options for compiler tests of annotations: Services with one ready endpoint and
// one-host Ingresses in namespace "n", and a check for the compiler's Warnings.
#pragma once

#include <algorithm>
#include <string>

#include "compiler.h"
#include "json_helpers.h"
#include "store.h"

namespace kroute::agent::testing {

struct TestCluster {
  Metrics metrics;
  Store store{metrics, nullptr};
  CompileOptions options;
  TestCluster() { options.watch_without_class = true; }
  void add(Kind kind, const std::string& text) { store.apply(kind, kube::EventType::kAdded, json(text)); }
  void service(const std::string& name, const std::string& cluster_ip = "") {
    add(Kind::kService, R"({"metadata": {"name": ")" + name + R"(", "namespace": "n"}, "spec": {"clusterIP": ")" +
                            cluster_ip + R"(", "ports": [{"name": "http", "port": 80}]}})");
    add(Kind::kEndpointSlice, R"({"metadata": {"name": ")" + name +
                                  R"(-1", "namespace": "n", "labels": {"kubernetes.io/service-name": ")" + name +
                                  R"("}}, "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
                                  "endpoints": [{"addresses": ["10.0.0.9"]}]})");
  }
  // One rule: host, path /, Service `service` port "http"; `extra_spec` goes first into spec.
  void ingress(const std::string& name, const std::string& host, const std::string& service,
               const std::string& annotations, const std::string& extra_spec = "") {
    add(Kind::kIngress, R"({"metadata": {"name": ")" + name + R"(", "namespace": "n", "uid": "u-)" + name +
                            R"(", "creationTimestamp": "2024-01-01T00:00:00Z", "annotations": )" + annotations +
                            R"(}, "spec": {)" + extra_spec + R"("rules": [{"host": ")" + host +
                            R"(", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service":
                            {"name": ")" + service + R"(", "port": {"name": "http"}}}}]}}]}})");
  }
};

// Whether the compiled table has a Warning with this reason whose message contains `text`.
inline bool has_warning(const CompiledTable& t, const std::string& reason, const std::string& text) {
  return std::any_of(t.warnings.begin(), t.warnings.end(), [&](const Warning& w) {
    return w.reason == reason && w.message.find(text) != std::string::npos;
  });
}

}  // namespace kroute::agent::testing
