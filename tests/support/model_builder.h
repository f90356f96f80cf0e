// Test helper: a fluent way to write route models, and a built snapshot kept alive with its view.
#pragma once

#include <cctype>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "builder.h"
#include "conditions.h"
#include "model.h"
#include "path_patterns.h"
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
    model_.rules.back().scope = scope_;
    return *this;
  }
  // A scope (RouteModel::scopes) that gets the next ScopeId; rules and tls() after in_scope(id) are its.
  ModelBuilder& scope(std::string name, std::vector<LocalAddress> locals, Certificate default_certificate = {}) {
    model_.scopes.push_back({std::move(name), std::move(locals), std::move(default_certificate)});
    return *this;
  }
  ModelBuilder& in_scope(ScopeId scope) {
    scope_ = scope;
    return *this;
  }
  ModelBuilder& prefix(std::string host, std::string path, const std::string& service) {
    return rule(std::move(host), std::move(path), PathType::kPrefix, service);
  }
  ModelBuilder& exact(std::string host, std::string path, const std::string& service) {
    return rule(std::move(host), std::move(path), PathType::kExact, service);
  }
  // Match conditions of the last rule.
  ModelBuilder& when(std::vector<MatchCondition> conditions) {
    model_.rules.back().conditions = std::move(conditions);
    return *this;
  }
  ModelBuilder& tls(std::string host, std::string secret) {
    ensure_ingress();
    model_.tls.push_back({scope_, std::move(host), model_.sources.back().ns, std::move(secret),
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
  ScopeId scope_ = kSharedScope;
};

inline MatchCondition method_is(std::string method) { return {ConditionKind::kMethod, "", std::move(method)}; }
inline MatchCondition header_is(std::string name, std::string value) {
  return {ConditionKind::kHeaderExact, std::move(name), std::move(value)};
}
inline MatchCondition header_matches(std::string name, std::string pattern) {
  return {ConditionKind::kHeaderRegex, std::move(name), std::move(pattern)};
}
inline MatchCondition query_is(std::string name, std::string value) {
  return {ConditionKind::kQueryExact, std::move(name), std::move(value)};
}
inline MatchCondition query_matches(std::string name, std::string pattern) {
  return {ConditionKind::kQueryRegex, std::move(name), std::move(pattern)};
}

// A request's method, headers and query for lookups with conditions, as the module gives them:
// headers by name in any case, repeated ones joined with ", ", scratch memory from a pool it owns.
struct TestRequest {
  std::string method = "GET";
  std::string args;
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<std::unique_ptr<char[]>> pool;
  std::deque<std::string> joined;  // element addresses stay put

  RequestData data() const {
    RequestData d;
    d.method = method;
    d.args = args;
    d.context = this;
    d.header = [](const void* context, std::string_view name, std::string_view& value) noexcept {
      auto* self = const_cast<TestRequest*>(static_cast<const TestRequest*>(context));
      std::string all;
      int found = 0;
      for (const auto& [key, v] : self->headers) {
        if (key.size() != name.size()) continue;
        bool same = true;
        for (std::size_t i = 0; i < key.size() && same; ++i)
          same = std::tolower(static_cast<unsigned char>(key[i])) == std::tolower(static_cast<unsigned char>(name[i]));
        if (!same) continue;
        all += (found++ ? ", " : "") + v;
      }
      if (found == 0) return false;
      self->joined.push_back(std::move(all));
      value = self->joined.back();
      return true;
    };
    d.scratch = [](const void* context, std::size_t size) noexcept -> char* {
      auto* self = const_cast<TestRequest*>(static_cast<const TestRequest*>(context));
      self->pool.push_back(std::make_unique<char[]>(size + 1));
      return self->pool.back().get();
    };
    return d;
  }
};

// Owns built bytes, a validated view over them and its compiled patterns (regex paths and conditions).
struct BuiltTable {
  BuildResult result;
  SnapshotView view;
  ValidationResult validation;
  std::unique_ptr<PatternCache> cache = std::make_unique<PatternCache>();
  std::unique_ptr<PathPatterns> patterns;

  explicit BuiltTable(const RouteModel& model) : result(build_snapshot(model, {1700000000000})) {
    validation = SnapshotView::open(result.bytes, view);
    if (validation.ok) patterns = std::make_unique<PathPatterns>(view, *cache);
  }

  // The service name of the backend serving host + path; "default:<svc>" for the default backend;
  // "404" when nothing matches. With `request`, rules with conditions can match.
  std::string route(std::string_view host, std::string_view path, const TestRequest* request = nullptr,
                    ScopeId scope = kSharedScope) const {
    RequestData data;
    if (request != nullptr) data = request->data();
    const RouteMatch m = view.lookup(host, path, patterns.get(), nullptr, request != nullptr ? &data : nullptr, scope);
    if (m.backend == nullptr) return "404";
    const std::string service(view.str(m.backend->service));
    return m.default_backend ? "default:" + service : service;
  }
};

}  // namespace kroute::testing
