// Test helper: a fluent way to write route models, and a built snapshot kept alive with its view.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "builder.h"
#include "model.h"
#include "snapshot.h"

namespace kroute::testing {

class ModelBuilder {
 public:
  // An Ingress; later rules() and tls() belong to it.
  ModelBuilder& ingress(std::string ns, std::string name, std::int64_t created = 1000) {
    model_.sources.push_back({std::move(ns), std::move(name), created});
    return *this;
  }
  // A backend named after its service; endpoints default to one ready 10.0.0.1:8080.
  ModelBuilder& backend(std::string service, std::vector<Endpoint> endpoints = {{"10.0.0.1", 8080}},
                        std::string ns = "default", std::uint32_t port = 80) {
    model_.backends.push_back({std::move(ns), std::move(service), port, {}, std::move(endpoints)});
    return *this;
  }
  ModelBuilder& rule(std::string host, std::string path, PathType type, const std::string& service) {
    ensure_ingress();
    model_.rules.push_back({std::move(host), std::move(path), type, backend_index(service),
                            static_cast<std::uint32_t>(model_.sources.size() - 1)});
    return *this;
  }
  ModelBuilder& prefix(std::string host, std::string path, const std::string& service) {
    return rule(std::move(host), std::move(path), PathType::kPrefix, service);
  }
  ModelBuilder& exact(std::string host, std::string path, const std::string& service) {
    return rule(std::move(host), std::move(path), PathType::kExact, service);
  }
  ModelBuilder& tls(std::string host, std::string secret) {
    ensure_ingress();
    model_.tls.push_back({std::move(host), model_.sources.back().ns, std::move(secret),
                          static_cast<std::uint32_t>(model_.sources.size() - 1)});
    return *this;
  }
  ModelBuilder& default_backend(const std::string& service) {
    model_.default_backend = backend_index(service);
    return *this;
  }
  const RouteModel& model() const { return model_; }
  RouteModel& model() { return model_; }

  std::uint32_t backend_index(const std::string& service) {
    for (std::uint32_t i = 0; i < model_.backends.size(); ++i) {
      if (model_.backends[i].service == service) return i;
    }
    backend(service);
    return static_cast<std::uint32_t>(model_.backends.size() - 1);
  }

 private:
  void ensure_ingress() {
    if (model_.sources.empty()) ingress("default", "ingress");
  }
  RouteModel model_;
};

// Owns built bytes and a validated view over them.
struct BuiltTable {
  BuildResult result;
  SnapshotView view;
  ValidationResult validation;

  explicit BuiltTable(const RouteModel& model) : result(build_snapshot(model, {1700000000000})) {
    validation = SnapshotView::open(result.bytes, view);
  }

  // The service name of the backend serving host + path; "default:<svc>" for the default backend;
  // "404" when nothing matches.
  std::string route(std::string_view host, std::string_view path) const {
    const RouteMatch m = view.lookup(host, path);
    if (m.backend == nullptr) return "404";
    const std::string service(view.str(m.backend->service));
    return m.default_backend ? "default:" + service : service;
  }
};

}  // namespace kroute::testing
