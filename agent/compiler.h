// Store -> route model: which Ingresses are ours, their rules with backends resolved to endpoints, TLS
// references, and the Warning events the result deserves. Pure: no I/O, unit-tested without a server.
#pragma once

#include <array>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "builder.h"
#include "gateway/compile.h"
#include "model.h"
#include "policy/rate_limit.h"
#include "store.h"

namespace kroute::agent {

inline constexpr const char* kDefaultController = "kroute.dev/ingress-controller";

struct CompileOptions {
  std::string controller = kDefaultController;  // IngressClass spec.controller that means "ours"
  std::string annotation_class = "kroute";      // kubernetes.io/ingress.class value that means "ours"
  bool watch_without_class = false;             // Ingresses without any class are ours
  // Class names that are ours by name alone (--ingress-class-name), given as spec.ingressClassName or as
  // the legacy annotation, whatever their IngressClass says or whether it exists: a takeover of another
  // controller's class (ingress-nginx's "nginx") survives the deletion of that controller's IngressClass.
  std::vector<std::string> class_names;
  std::string default_certificate;              // "ns/name" of the TLS Secret served when no host matches
  bool use_forwarded_headers = false;           // RouteModel::use_forwarded_headers
  // The status of a request refused by limit-rps / limit-rpm, and by limit-connections (400-599).
  std::uint16_t limit_req_status = policy::kDefaultLimitStatus;
  std::uint16_t limit_conn_status = policy::kDefaultLimitStatus;
  gateway::Options gateway;  // Gateway API: off while gateway.controller is ""
};

// Something wrong with one Ingress (or Gateway API route), to be logged and, for an Ingress, turned into a
// Warning Event on it (a route's problems are in its status).
struct Warning {
  std::string ns;
  std::string name;
  std::string reason;   // CamelCase, as Event reasons are
  std::string message;
  std::string kind;     // "" for an Ingress, as Source::kind
  auto operator<=>(const Warning&) const = default;
};

struct CompiledTable {
  RouteModel model;
  std::vector<std::string> owned;  // keys ("ns/name") of the Ingresses that are ours, sorted
  std::vector<Warning> warnings;   // sorted, without duplicates
  // Why the default certificate Secret gives no certificate ("" when it does, or none is configured).
  std::string default_certificate_problem;
  gateway::Statuses gateway_status;  // what the Gateway API objects' status should say
};

// What compile() keeps between runs so that a change costs what it touches: what each Ingress
// contributes on its own (its rules, checked), the EndpointSlices of each Service, the resolved backend
// (endpoints and problems) of each Service port, and the last table. A compile then walks these compact
// parts instead of every Ingress in the store, whose objects are scattered through memory; when only a
// few Ingresses and EndpointSlices changed since the last compile (no class, Service or Secret, no
// default backend changing hands), it patches the last table instead: the changed Ingresses' old share
// out and their new share in, the endpoints of the backends naming a Service whose slices changed
// resolved again. The agent reports every Ingress, Service and EndpointSlice change; a relist of a kind
// (key "") starts that kind over. Other kinds are noticed through the store's revisions.
class CompileCache {
 public:
  void ingress_changed(const std::string& key);
  void service_changed(const std::string& key);
  void slice_changed(const Store& store, const std::string& key);
  // Whether the last compile patched the table before it (true) or compiled every Ingress.
  bool last_patched() const { return last_patched_; }
  // Whether the last compile gave the same table as the one before it: a patch that changed nothing
  // (slices of Services no backend names, or endpoints as they were). The caller may skip the build.
  bool last_unchanged() const { return last_unchanged_; }

 private:
  friend class Compiler;
  friend CompiledTable compile(const Store& store, const CompileOptions& options);
  struct Resolved {
    Backend backend;
    std::vector<Warning> problems;  // without ns/name: they go to each Ingress naming the port
  };
  // One Ingress's share of the table, from the Ingress alone (no Service, Secret or class looked up).
  struct Part {
    const Ingress* ingress = nullptr;  // in the store; valid until the Ingress changes, which is reported
    Source source;
    std::optional<std::string> class_annotation;
    std::optional<std::string> class_name;
    std::vector<Rule> rules;               // `backend` and `source` are set when the table is assembled
    std::vector<HostPolicy> host_policies; // `source` too
    std::vector<HostAlias> aliases;        // `source` too
    std::vector<ServiceBackendRef> refs;   // the backend of each rule, usable (checked)
    std::vector<Warning> warnings;         // problems of the Ingress itself
    bool has_default_backend = false;
    bool has_tls = false;
    bool canary = false;  // its rules are merged into other Ingresses' (ingress/canary.h)
  };
  static Part make_part(const Ingress& ingress);
  void index(const Store& store);
  void refresh_parts(const Store& store);
  bool indexed_ = false;
  std::unordered_map<std::string, std::string> service_of_slice_;               // slice key -> "ns/service"
  // "ns/service" -> its slices by name (the name is kept: a deleted slice's pointer must not be read)
  std::unordered_map<std::string, std::vector<std::pair<std::string, const EndpointSlice*>>> slices_;
  std::unordered_map<std::string, std::unordered_map<std::string, Resolved>> resolved_;  // "ns/service" -> port
  bool parts_complete_ = false;    // false: every Ingress is read again
  std::set<std::string> changed_;  // Ingresses changed since the last compile
  std::set<std::string> changed_services_;  // "ns/service" whose EndpointSlices changed since the last compile
  bool slices_relisted_ = false;            // since the last compile: every slice may have changed
  std::map<std::string, Part> parts_;  // by Ingress key, in the store's (sorted) order
  std::set<std::string> canaries_;     // keys of the parts that are canaries
  // The last table and what a patch needs to know about it.
  struct BackendSlot {
    std::uint32_t index;            // in table_.model.backends
    std::vector<Warning> problems;  // as in Resolved
  };
  CompiledTable table_;
  bool table_valid_ = false;
  bool last_patched_ = false;
  bool last_unchanged_ = false;
  std::array<std::uint64_t, kKindCount> revisions_{};  // the store's, when table_ was made
  std::unordered_map<std::string, BackendSlot> backends_;  // "ns/service:port" -> its backend in table_
};

// Whether an Ingress is ours. `default_class_is_ours`: one of our IngressClasses is the cluster default.
bool owns(const Ingress& ingress, const Store& store, const CompileOptions& options, bool default_class_is_ours);

CompiledTable compile(const Store& store, const CompileOptions& options);
// The table lives in the cache: valid until the next compile with it.
const CompiledTable& compile(const Store& store, const CompileOptions& options, CompileCache& cache);

// Adds warnings for what the builder skipped or shadowed (collisions: the younger Ingress loses).
void add_build_warnings(const CompiledTable& table, const BuildResult& build, std::vector<Warning>& warnings);

}  // namespace kroute::agent
