// Store -> route model: which Ingresses are ours, their rules with backends resolved to endpoints, TLS
// references, and the Warning events the result deserves. Pure: no I/O, unit-tested without a server.
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include "builder.h"
#include "model.h"
#include "store.h"

namespace kroute::agent {

inline constexpr const char* kDefaultController = "kroute.dev/ingress-controller";

struct CompileOptions {
  std::string controller = kDefaultController;  // IngressClass spec.controller that means "ours"
  std::string annotation_class = "kroute";      // kubernetes.io/ingress.class value that means "ours"
  bool watch_without_class = false;             // Ingresses without any class are ours
  std::string default_certificate;              // "ns/name" of the TLS Secret served when no host matches
};

// Something wrong with one Ingress, to be logged and turned into a Warning Event on it.
struct Warning {
  std::string ns;
  std::string name;
  std::string reason;   // CamelCase, as Event reasons are
  std::string message;
  auto operator<=>(const Warning&) const = default;
};

struct CompiledTable {
  RouteModel model;
  std::vector<std::string> owned;  // keys ("ns/name") of the Ingresses that are ours, sorted
  std::vector<Warning> warnings;   // sorted, without duplicates
  // Why the default certificate Secret gives no certificate ("" when it does, or none is configured).
  std::string default_certificate_problem;
};

// What compile() keeps between runs so that a change costs what it touches: the EndpointSlices of each
// Service and the resolved backend (endpoints and problems) of each Service port. The agent reports
// every Service and EndpointSlice change; a relist of either kind (key "") starts over.
class CompileCache {
 public:
  void service_changed(const std::string& key);
  void slice_changed(const Store& store, const std::string& key);

 private:
  friend class Compiler;
  struct Resolved {
    Backend backend;
    std::vector<Warning> problems;  // without ns/name: they go to each Ingress naming the port
  };
  void index(const Store& store);
  bool indexed_ = false;
  std::unordered_map<std::string, std::string> service_of_slice_;               // slice key -> "ns/service"
  // "ns/service" -> its slices by name (the name is kept: a deleted slice's pointer must not be read)
  std::unordered_map<std::string, std::vector<std::pair<std::string, const EndpointSlice*>>> slices_;
  std::unordered_map<std::string, std::unordered_map<std::string, Resolved>> resolved_;  // "ns/service" -> port
};

// Whether an Ingress is ours. `default_class_is_ours`: one of our IngressClasses is the cluster default.
bool owns(const Ingress& ingress, const Store& store, const CompileOptions& options, bool default_class_is_ours);

CompiledTable compile(const Store& store, const CompileOptions& options);
CompiledTable compile(const Store& store, const CompileOptions& options, CompileCache& cache);

// Adds warnings for what the builder skipped or shadowed (collisions: the younger Ingress loses).
void add_build_warnings(const CompiledTable& table, const BuildResult& build, std::vector<Warning>& warnings);

}  // namespace kroute::agent
