#include "compiler.h"

#include <arpa/inet.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <memory>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <unordered_map>

#include "ingress/canary.h"
#include "ingress/policies.h"
#include "policy/basic_auth.h"
#include "policy/client_cert.h"
#include "policy/deny.h"
#include "policy/error_pages.h"
#include "policy/external_auth.h"
#include "policy/protocol.h"
#include "validate.h"

namespace kroute::agent {
namespace {

// Lowercase hex of SHA-256 (a client-cert record's digest, policy/client_cert.h).
std::string sha256_hex(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("SHA-256 failed");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out;
}

const char* path_type_name(PathType type) {
  switch (type) {
    case PathType::kExact: return "Exact";
    case PathType::kPrefix: return "Prefix";
    case PathType::kImplementationSpecific: return "ImplementationSpecific";
  }
  return "?";
}

// Endpoint readiness (docs/agent.md): ready endpoints serve. Only when a backend has none, endpoints
// that are still serving while terminating take traffic (as kube-proxy does), so a rollout of the last
// pods does not turn into 503s. Everything else is kept as not ready, for `kroute-table dump`.
void settle_readiness(std::vector<Endpoint>& endpoints) {
  const bool any_ready = std::any_of(endpoints.begin(), endpoints.end(), [](const Endpoint& e) { return e.ready; });
  if (!any_ready) {
    for (Endpoint& e : endpoints) {
      if (e.serving && e.terminating) e.ready = true;
    }
  }
}

int readiness_rank(const Endpoint& e) { return (e.ready ? 4 : 0) + (e.serving ? 2 : 0) + (e.terminating ? 0 : 1); }

// Whether OpenSSL takes `list` as a TLS 1.2 cipher list (proxy-ssl-ciphers), as nginx's workers will.
bool known_ciphers(const std::string& list) {
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_method()), SSL_CTX_free);
  const bool known = ctx && SSL_CTX_set_cipher_list(ctx.get(), list.c_str()) == 1;
  ERR_clear_error();  // curl shares this thread's error queue
  return known;
}

// Whether spec.tls lists host, by name or by a one-label wildcard that covers it.
bool has_tls_for(const Ingress& ingress, const std::string& host) {
  for (const IngressTls& tls : ingress.tls) {
    for (const std::string& name : tls.hosts) {
      if (tls_name_covers(name, host)) return true;
    }
  }
  return false;
}

std::string display_host(const std::string& host) { return host.empty() ? "(any)" : host; }

// Why a backend reference cannot be used at all (reason, message), or nothing when it can.
std::optional<std::pair<const char*, std::string>> unusable(const ServiceBackendRef& ref) {
  if (ref.is_resource) {
    return std::pair{"ResourceBackendUnsupported", "backend.resource " + ref.service + " is not supported; rule skipped"};
  }
  if (ref.service.empty() || (ref.port_number == 0) == ref.port_name.empty()) {
    return std::pair{"InvalidRule", std::string("backend needs a service name and exactly one of port.number and port.name")};
  }
  return std::nullopt;
}

// Whether the object ns/name has the store key `key` (as object_key() makes it), without making it.
bool has_key(const std::string& ns, const std::string& name, std::string_view key) {
  if (ns.empty()) return key == name;
  return key.size() == ns.size() + 1 + name.size() && key.starts_with(ns) && key[ns.size()] == '/' &&
         key.ends_with(name);
}

// The class fields of an Ingress decide whether it is ours (see owns()).
bool owns_class(const std::optional<std::string>& annotation, const std::optional<std::string>& class_name,
                const Store& store, const CompileOptions& options, bool default_class_is_ours) {
  const auto taken_over = [&](const std::string& name) {
    return std::find(options.class_names.begin(), options.class_names.end(), name) != options.class_names.end();
  };
  // The legacy annotation, when present, decides (it predates and overrides ingressClassName).
  if (annotation) return *annotation == options.annotation_class || taken_over(*annotation);
  if (class_name) {
    if (taken_over(*class_name)) return true;
    auto it = store.classes.find(*class_name);
    return it != store.classes.end() && it->second.controller == options.controller;
  }
  return options.watch_without_class || default_class_is_ours;
}

}  // namespace

CompileCache::Part CompileCache::make_part(const Ingress& ingress) {
  Part part;
  part.ingress = &ingress;
  part.source = {ingress.ns, ingress.name, ingress.created_unix};
  part.class_annotation = ingress.class_annotation;
  part.class_name = ingress.class_name;
  part.has_default_backend = ingress.default_backend.has_value();
  part.has_tls = !ingress.tls.empty();
  const auto warn = [&](std::string reason, std::string message) {
    part.warnings.push_back({ingress.ns, ingress.name, std::move(reason), std::move(message)});
  };
  for (const IngressProblem& problem : ingress.problems) warn(problem.reason, problem.message);
  const bool regex = regex_paths(ingress.annotations);
  part.canary = ingress.annotations.canary;
  std::vector<std::string> hosts;
  for (const IngressRule& rule : ingress.rules) {
    for (const IngressPath& path : rule.paths) {
      if (!path.type_error.empty()) {
        warn("InvalidRule", "path " + path.path + " of host " + display_host(rule.host) + " skipped: " + path.type_error);
        continue;
      }
      if (auto problem = unusable(path.backend)) {
        warn(problem->first, std::move(problem->second));
        continue;
      }
      Rule& added = part.rules.emplace_back();
      added.host = rule.host;
      added.path = path.path;
      added.type = path.type;
      added.backend = kNoBackend;
      added.regex = regex;
      if (!part.canary) added.policies = rule_policies(ingress.annotations, path.path);
      part.refs.push_back(path.backend);
      if (std::find(hosts.begin(), hosts.end(), rule.host) == hosts.end()) hosts.push_back(rule.host);
    }
  }
  // A canary takes everything but its backend from its primary: no host-wide records of its own.
  if (!part.canary) {
    host_policies(ingress.annotations, hosts, [&](const std::string& host) { return has_tls_for(ingress, host); },
                  part.host_policies, part.aliases);
  }
  return part;
}

class Compiler {
 public:
  Compiler(const Store& store, const CompileOptions& options, CompileCache& cache)
      : store_(store), options_(options), cache_(cache), table_(cache.table_) {
    cache_.index(store);
    patch_ = can_patch();
    if (patch_) changed_.assign(cache_.changed_.begin(), cache_.changed_.end());
    // A canary's records live in its primary's rules: a change of either is compiled in full (the old
    // parts are looked at before they are replaced, the new ones after).
    if (patch_ && touches_canary()) patch_ = false;
    cache_.refresh_parts(store);
    for (const std::string& key : changed_) {
      auto it = cache_.parts_.find(key);
      if (it != cache_.parts_.end() && it->second.has_default_backend) patch_ = false;
    }
    if (patch_ && touches_canary()) patch_ = false;
    for (const auto& [name, cls] : store.classes) {
      if (cls.controller == options.controller && cls.is_default) default_class_is_ours_ = true;
    }
  }

  const CompiledTable& run() {
    if (patch_ && !patch_endpoints()) patch_ = false;
    if (patch_) {
      patch();
    } else {
      compile_all();
    }
    cache_.last_unchanged_ = patch_ && changed_.empty() && !endpoints_changed_;
    cache_.changed_services_.clear();
    cache_.slices_relisted_ = false;
    cache_.table_valid_ = true;
    cache_.last_patched_ = patch_;
    for (Kind kind : kAllKinds) cache_.revisions_[static_cast<std::size_t>(kind)] = store_.revision(kind);
    return table_;
  }

 private:
  // Patching pays only when few Ingresses changed; the default backend (the oldest Ingress's) and
  // everything resolved from other kinds but EndpointSlices are left to a full compile.
  bool can_patch() const {
    if (!cache_.table_valid_ || !cache_.parts_complete_ || cache_.changed_.size() > 16) return false;
    if (cache_.slices_relisted_ || cache_.changed_services_.size() > 16) return false;
    for (Kind kind : kAllKinds) {
      if (kind == Kind::kIngress || kind == Kind::kEndpointSlice) continue;  // every change reported
      if (store_.revision(kind) != cache_.revisions_[static_cast<std::size_t>(kind)]) return false;
    }
    for (const std::string& key : cache_.changed_) {
      auto it = cache_.parts_.find(key);
      if (it != cache_.parts_.end() && it->second.has_default_backend) return false;
    }
    return true;
  }

  // The Gateway API's routes (gateway/compile.h) share the backends of the Ingresses, so EndpointSlice
  // changes patch them too; any change of a Gateway API object compiles in full (can_patch).
  void add_gateway_routes() {
    if (options_.gateway.controller.empty()) return;
    table_.gateway_status = gateway::compile(
        store_, options_.gateway, table_.model,
        [&](const Source& route, const std::string& ns, const std::string& service, std::uint32_t port) {
          Source at_service = route;
          at_service.ns = ns;
          return backend_for(at_service, ServiceBackendRef{service, port, "", false});
        });
  }

  // Whether a changed Ingress is a canary or shares a host with one (then it may be a primary).
  bool touches_canary() const {
    if (cache_.canaries_.empty()) return false;
    for (const std::string& key : changed_) {
      auto it = cache_.parts_.find(key);
      if (it == cache_.parts_.end()) continue;
      if (it->second.canary) return true;
      for (const std::string& canary_key : cache_.canaries_) {
        auto canary = cache_.parts_.find(canary_key);
        if (canary == cache_.parts_.end()) continue;
        for (const Rule& c : canary->second.rules) {
          for (const Rule& r : it->second.rules) {
            if (r.host == c.host) return true;
          }
        }
      }
    }
    return false;
  }

  void compile_all() {
    table_ = CompiledTable{};
    cache_.backends_.clear();
    const std::size_t n = cache_.parts_.size();
    table_.owned.reserve(n);
    table_.model.sources.reserve(n);
    table_.model.rules.reserve(n);
    table_.model.backends.reserve(n);
    // In key order (the parts are kept sorted), which `owned` promises; oldest first for the default
    // backend. Sources keep the key order: the builder settles collisions by age itself.
    std::vector<const CompileCache::Part*> by_age;
    std::vector<const CompileCache::Part*> canaries;
    for (const auto& [key, part] : cache_.parts_) {
      if (!owned(part)) continue;
      table_.owned.push_back(key);
      add_part(part);
      if (part.has_default_backend) by_age.push_back(&part);
      if (part.canary) canaries.push_back(&part);
    }
    add_canaries(canaries);
    std::stable_sort(by_age.begin(), by_age.end(), [](const CompileCache::Part* a, const CompileCache::Part* b) {
      return std::tie(a->source.created_unix, a->source.ns, a->source.name) <
             std::tie(b->source.created_unix, b->source.ns, b->source.name);
    });
    for (const CompileCache::Part* part : by_age) {
      if (table_.model.default_backend == kNoBackend) {
        table_.model.default_backend = backend_for(part->source, *part->ingress->default_backend);
      } else {
        const Source& winner = by_age.front()->source;
        warn(part->source.ns, part->source.name, "DefaultBackendShadowed",
             "spec.defaultBackend is not used: Ingress " + winner.ns + "/" + winner.name + " is older and has one");
      }
    }
    add_gateway_routes();
    settle_default_error_backends();
    add_default_certificate();
    table_.model.use_forwarded_headers = options_.use_forwarded_headers;
    std::sort(table_.warnings.begin(), table_.warnings.end());
    table_.warnings.erase(std::unique(table_.warnings.begin(), table_.warnings.end()), table_.warnings.end());
  }

  // The endpoints of the last table's backends that name a Service whose slices changed, resolved again
  // (before the Ingress changes, which may name the same backends). A backend is keyed by the port as an
  // Ingress names it, so the Service's ports give every key that can have endpoints; backends of a
  // missing Service or port have none whatever the slices say. The problems a backend carries come from
  // the Service alone, unchanged here: false (compile in full) if they differ all the same.
  bool patch_endpoints() {
    for (const std::string& service_key : cache_.changed_services_) {
      auto service = store_.services.find(service_key);
      if (service == store_.services.end()) continue;
      const std::string service_name = service_key.substr(service_key.find('/') + 1);
      for (const ServicePort& port : service->second.ports) {
        for (const std::string& label : {std::to_string(port.port), port.name}) {
          if (label.empty()) continue;
          auto slot = cache_.backends_.find(service_key + ":" + label);
          if (slot == cache_.backends_.end()) continue;
          Backend& backend = table_.model.backends[slot->second.index];
          const ServiceBackendRef ref{service_name, backend.port, backend.port_name};
          CompileCache::Resolved fresh;
          fresh.backend = backend;
          fresh.backend.endpoints.clear();
          resolve_endpoints(service_key, ref, label, fresh.backend, fresh.problems);
          if (fresh.problems != slot->second.problems) return false;
          if (backend.endpoints != fresh.backend.endpoints) {
            backend.endpoints = fresh.backend.endpoints;
            endpoints_changed_ = true;
          }
          cache_.resolved_[service_key].insert_or_assign(label, std::move(fresh));
        }
      }
    }
    return true;
  }

  // The last table with the changed Ingresses' old share taken out and their new share added. The model's
  // order differs from a full compile's (new shares come last), which the builder does not depend on:
  // it sorts hosts and settles collisions by age, and numbers backends and sources as it meets them.
  void patch() {
    RouteModel& model = table_.model;
    std::vector<bool> gone(model.sources.size(), false);
    bool any_gone = false;
    for (const std::string& key : changed_) {
      std::erase_if(table_.warnings, [&](const Warning& w) { return w.kind.empty() && has_key(w.ns, w.name, key); });
      auto listed = std::lower_bound(table_.owned.begin(), table_.owned.end(), key);
      if (listed == table_.owned.end() || *listed != key) continue;
      table_.owned.erase(listed);
      for (std::size_t i = 0; i < model.sources.size(); ++i) {
        if (!gone[i] && model.sources[i].kind.empty() && has_key(model.sources[i].ns, model.sources[i].name, key)) {
          gone[i] = any_gone = true;
          break;
        }
      }
    }
    if (any_gone) drop_sources(gone);
    const std::size_t kept_warnings = table_.warnings.size();
    for (const std::string& key : changed_) {
      auto it = cache_.parts_.find(key);
      if (it == cache_.parts_.end() || !owned(it->second)) continue;
      table_.owned.insert(std::lower_bound(table_.owned.begin(), table_.owned.end(), key), key);
      add_part(it->second);
    }
    settle_default_error_backends();
    drop_unused_backends();
    const auto middle = table_.warnings.begin() + static_cast<std::ptrdiff_t>(kept_warnings);
    std::sort(middle, table_.warnings.end());
    std::inplace_merge(table_.warnings.begin(), middle, table_.warnings.end());
    table_.warnings.erase(std::unique(table_.warnings.begin(), table_.warnings.end()), table_.warnings.end());
  }

  // Removes the sources marked gone with their rules and TLS entries; the rest are renumbered.
  void drop_sources(const std::vector<bool>& gone) {
    RouteModel& model = table_.model;
    std::vector<std::uint32_t> renumbered(model.sources.size(), kNoBackend);
    std::uint32_t kept = 0;
    for (std::uint32_t i = 0; i < model.sources.size(); ++i) {
      if (gone[i]) continue;
      renumbered[i] = kept;
      if (kept != i) model.sources[kept] = std::move(model.sources[i]);
      ++kept;
    }
    model.sources.resize(kept);
    std::erase_if(model.rules, [&](const Rule& r) { return gone[r.source]; });
    for (Rule& r : model.rules) r.source = renumbered[r.source];
    std::erase_if(model.tls, [&](const TlsHost& t) { return gone[t.source]; });
    for (TlsHost& t : model.tls) t.source = renumbered[t.source];
    std::erase_if(model.host_policies, [&](const HostPolicy& p) { return gone[p.source]; });
    for (HostPolicy& p : model.host_policies) p.source = renumbered[p.source];
    std::erase_if(model.aliases, [&](const HostAlias& a) { return gone[a.source]; });
    for (HostAlias& a : model.aliases) a.source = renumbered[a.source];
  }

  // A full compile makes a backend only for a rule or the default backend that names it; so does a patch.
  void drop_unused_backends() {
    RouteModel& model = table_.model;
    std::vector<std::uint32_t> uses(model.backends.size(), 0);
    for (const Rule& r : model.rules) {
      ++uses[r.backend];
      for (const PolicyRecord& p : r.policies) {
        if (p.backend != kNoRecordBackend) ++uses[p.backend];
      }
    }
    if (model.default_backend != kNoBackend) ++uses[model.default_backend];
    if (std::find(uses.begin(), uses.end(), 0u) == uses.end()) return;
    std::vector<std::uint32_t> renumbered(model.backends.size(), kNoBackend);
    std::uint32_t kept = 0;
    for (std::uint32_t i = 0; i < model.backends.size(); ++i) {
      if (uses[i] == 0) continue;
      renumbered[i] = kept;
      if (kept != i) model.backends[kept] = std::move(model.backends[i]);
      ++kept;
    }
    model.backends.resize(kept);
    for (Rule& r : model.rules) {
      r.backend = renumbered[r.backend];
      for (PolicyRecord& p : r.policies) {
        if (p.backend != kNoRecordBackend) p.backend = renumbered[p.backend];
      }
    }
    if (model.default_backend != kNoBackend) model.default_backend = renumbered[model.default_backend];
    for (auto it = cache_.backends_.begin(); it != cache_.backends_.end();) {
      it->second.index = renumbered[it->second.index];
      it = it->second.index == kNoBackend ? cache_.backends_.erase(it) : std::next(it);
    }
  }

  bool owned(const CompileCache::Part& part) const {
    return owns_class(part.class_annotation, part.class_name, store_, options_, default_class_is_ours_);
  }

  void warn(const std::string& ns, const std::string& name, std::string reason, std::string message,
            const std::string& kind = {}) {
    table_.warnings.push_back({ns, name, std::move(reason), std::move(message), kind});
  }

  void add_canaries(const std::vector<const CompileCache::Part*>& parts) {
    if (parts.empty()) return;
    std::vector<CanaryIngress> canaries;
    for (const CompileCache::Part* part : parts) {
      canaries.push_back({part->source, &part->ingress->annotations, part->rules});
    }
    merge_canaries(
        table_.model.rules, std::move(canaries),
        [&](std::size_t c, std::size_t i) {
          const std::uint32_t backend = backend_for(parts[c]->source, parts[c]->refs[i]);
          return backend == kNoBackend ? kNoRecordBackend : backend;
        },
        [&](const Source& source, std::string reason, std::string message) {
          warn(source.ns, source.name, std::move(reason), std::move(message));
        });
  }

  void add_part(const CompileCache::Part& part) {
    const auto source = static_cast<std::uint32_t>(table_.model.sources.size());
    table_.model.sources.push_back(part.source);
    table_.warnings.insert(table_.warnings.end(), part.warnings.begin(), part.warnings.end());
    const IngressAnnotations& annotations = part.ingress->annotations;
    for (std::size_t i = 0; part.canary ? false : i < part.rules.size(); ++i) {
      const std::uint32_t backend = backend_for(part.source, part.refs[i], annotations.service_upstream);
      if (backend == kNoBackend) continue;
      Rule& rule = table_.model.rules.emplace_back(part.rules[i]);
      rule.backend = backend;
      rule.source = source;
      settle_records(part, part.refs[i], rule);
      complete_protocol(*part.ingress, part.refs[i], rule);
      complete_access(*part.ingress, rule);
    }
    if (part.has_tls) {
      for (const IngressTls& tls : part.ingress->tls) add_tls(*part.ingress, tls, source);
    }
    for (const HostPolicy& policy : part.host_policies) {
      table_.model.host_policies.push_back(policy);
      table_.model.host_policies.back().source = source;
      if (!complete_client_cert_host(*part.ingress, table_.model.host_policies.back())) {
        table_.model.host_policies.pop_back();
      }
    }
    for (const HostAlias& alias : part.aliases) {
      table_.model.aliases.push_back(alias);
      table_.model.aliases.back().source = source;
    }
  }

  // What rule_policies() left to the compiler, which knows the Services: the error backend and Service
  // port of kErrorPages, a Service host name of kMirror as its ClusterIP. The table's default backend,
  // unknown until every Ingress is read, is settled later (settle_default_error_backends).
  void settle_records(const CompileCache::Part& part, const ServiceBackendRef& ref, Rule& rule) {
    const Source& ingress = part.source;
    for (auto record = rule.policies.begin(); record != rule.policies.end();) {
      if (record->kind == PolicyKind::kErrorPages) {
        record->b = ref.port_name.empty() ? std::to_string(ref.port_number) : ref.port_name;
        record->backend = error_backend(ingress, part.ingress->annotations.default_backend);
        if (record->backend == kNoRecordBackend) record->flags &= ~policy::kWhenNoEndpoints;
        if (record->backend == kNoRecordBackend && record->a.empty()) {
          record = rule.policies.erase(record);
          continue;
        }
      } else if (record->kind == PolicyKind::kMirror) {
        std::string problem = resolve_mirror_host(record->a);
        if (!problem.empty()) {
          warn(ingress.ns, ingress.name, "AnnotationIgnored", "mirror-target: " + problem + "; no mirror");
          record = rule.policies.erase(record);
          continue;
        }
      }
      ++record;
    }
  }

  // default-backend: the Service's first port, as ingress-nginx takes it; kNoRecordBackend when there is
  // none (the annotation is not set, or its Service or port is missing).
  std::uint32_t error_backend(const Source& ingress, const std::string& service) {
    if (service.empty()) return kNoRecordBackend;
    auto it = store_.services.find(ingress.ns + "/" + service);
    if (it == store_.services.end() || it->second.ports.empty()) {
      warn(ingress.ns, ingress.name, "DefaultBackendNotFound",
           "default-backend: Service " + ingress.ns + "/" + service +
               " not found or without ports; custom-http-errors go to the table's default backend");
      return kNoRecordBackend;
    }
    const ServicePort& port = it->second.ports.front();
    return backend_for(ingress, ServiceBackendRef{service, port.port, ""});
  }

  // The host of a mirror-target is an IP address, or a Service of the cluster by its DNS name
  // (<name>.<namespace>.svc[.cluster.local]), which becomes its ClusterIP: nginx has no resolver, and
  // the agent does not look up names outside the cluster. "" or why the target cannot be used.
  std::string resolve_mirror_host(std::string& target) {
    const std::size_t start = target.find("://") + 3;
    const std::size_t end = std::min(target.find_first_of(":/$?", start), target.size());
    if (target[start] == '[') return {};
    const std::string host = target.substr(start, end - start);
    in6_addr address;
    if (inet_pton(AF_INET, host.c_str(), &address) == 1) return {};
    std::string name = host;
    for (const std::string_view suffix : {".svc.cluster.local", ".svc"}) {
      if (name.ends_with(suffix)) {
        name.resize(name.size() - suffix.size());
        break;
      }
    }
    const std::size_t dot = name.find('.');
    if (name == host || dot == std::string::npos || name.find('.', dot + 1) != std::string::npos) {
      return "host " + host + " is neither an IP address nor a Service's <name>.<namespace>.svc[.cluster.local]";
    }
    const std::string key = name.substr(dot + 1) + "/" + name.substr(0, dot);
    auto it = store_.services.find(key);
    if (it == store_.services.end() || it->second.cluster_ip.empty() || it->second.cluster_ip == "None") {
      return "Service " + key + " not found or without a ClusterIP";
    }
    const std::string& ip = it->second.cluster_ip;
    target.replace(start, end - start, ip.find(':') == std::string::npos ? ip : "[" + ip + "]");
    return {};
  }

  // custom-http-errors without a default-backend of its own go to the table's default backend; without
  // one, the record goes and the rule's answers pass unchanged.
  void settle_default_error_backends() {
    RouteModel& model = table_.model;
    for (Rule& rule : model.rules) {
      for (auto record = rule.policies.begin(); record != rule.policies.end();) {
        if (record->kind != PolicyKind::kErrorPages || record->backend != kNoRecordBackend) {
          ++record;
          continue;
        }
        if (model.default_backend != kNoBackend) {
          record->backend = model.default_backend;
          ++record;
          continue;
        }
        const Source& source = model.sources[rule.source];
        warn(source.ns, source.name, "AnnotationIgnored",
             "custom-http-errors: no default-backend annotation and no default backend (spec.defaultBackend of "
             "any Ingress); the statuses pass unchanged");
        record = rule.policies.erase(record);
      }
    }
  }

  // The access records (issue 19) with what only the store knows: each kind that names a Secret fills its
  // record from it here, or denies the rule (deny_rule) when it cannot.
  void complete_access(const Ingress& ingress, Rule& rule) {
    complete_external_auth(ingress, rule);
    complete_basic_auth(ingress, rule);
    complete_limits(ingress, rule);
    complete_client_cert(ingress, rule);
  }

  // auth-url names an IP address or a Service of the cluster (<name>.<namespace>.svc[.cluster.local]),
  // which becomes its ClusterIP as a mirror target's does: nginx has no resolver. Any other name, or a
  // Service that is missing, denies the rule: it is never served without its auth check.
  void complete_external_auth(const Ingress& ingress, Rule& rule) {
    auto record = std::find_if(rule.policies.begin(), rule.policies.end(), [](const PolicyRecord& p) {
      return p.kind == PolicyKind::kExternalAuth && p.code == policy::kAuthRequest;
    });
    if (record == rule.policies.end()) return;
    if (std::string problem = resolve_mirror_host(record->a); !problem.empty()) {
      deny_rule(ingress, rule, "AuthUrlUnresolved", "auth-url: " + problem);
    }
  }

  // An auth-map's problem names its key (a user name), not the line of the text the store made of it.
  static std::string map_key_problem(std::string_view lines, const std::string& problem) {
    std::size_t number = 0;
    if (!problem.starts_with("line ")) return problem;
    std::size_t i = 5;
    while (i < problem.size() && problem[i] >= '0' && problem[i] <= '9') number = number * 10 + (problem[i++] - '0');
    for (std::size_t n = 1; n < number && !lines.empty(); ++n) lines.remove_prefix(std::min(lines.find('\n') + 1, lines.size()));
    const std::string_view user = lines.substr(0, std::min(lines.find(':'), lines.find('\n')));
    return "key " + printable(user, 64) + problem.substr(i);
  }

  // kBasicAuth: the users of auth-secret (a Secret of the Ingress's namespace), as htpasswd lines from
  // its `auth` key, or (auth-secret-type: auth-map) one per key. Lines with an unsupported or malformed
  // hash are skipped with a Warning naming their line (or key), never their text; a Secret that is
  // missing or has no usable user denies the rule. An auth-secret without auth-type: basic denies it
  // too (ingress-nginx would serve the paths without authentication).
  void complete_basic_auth(const Ingress& ingress, Rule& rule) {
    const IngressAnnotations& a = ingress.annotations;
    auto record = std::find_if(rule.policies.begin(), rule.policies.end(),
                               [](const PolicyRecord& p) { return p.kind == PolicyKind::kBasicAuth; });
    if (record == rule.policies.end()) {
      if (!a.auth_secret.empty() && a.access_denied.empty())
        deny_rule(ingress, rule, "AuthSecretInvalid", "auth-secret is set but auth-type is not basic");
      return;
    }
    const std::string& name = a.auth_secret;
    const std::string key = name.find('/') == std::string::npos ? ingress.ns + "/" + name : name;
    std::string problem;
    const TlsSecret* secret = nullptr;
    if (name.empty()) {
      problem = "auth-type basic needs an auth-secret";
    } else if (!key.starts_with(ingress.ns + "/")) {
      problem = "auth-secret " + key + " is not in the Ingress's namespace (cross-namespace Secrets are not allowed)";
    } else if (secret = store_.secret(key); secret == nullptr) {
      problem = "auth-secret " + key + " not found (or it has no `auth` key and no key holding a password hash)";
    } else if (!a.auth_secret_map && secret->auth.empty()) {
      problem = "auth-secret " + key + " has no `auth` key";
    } else if (a.auth_secret_map && secret->auth_map.empty()) {
      problem = "auth-secret " + key + " has no keys (auth-map: each key is a user)";
    }
    if (problem.empty()) {
      policy::HtpasswdReading users = policy::read_htpasswd(a.auth_secret_map ? secret->auth_map : secret->auth);
      const std::size_t shown = std::min<std::size_t>(users.problems.size(), 5);
      for (std::size_t i = 0; i < shown; ++i) {
        warn(ingress.ns, ingress.name, "AuthSecretLineSkipped",
             "auth-secret " + key + ": " + (a.auth_secret_map ? map_key_problem(secret->auth_map, users.problems[i])
                                                                : users.problems[i]) +
                 "; that user cannot log in" +
                 (i + 1 == shown && users.problems.size() > shown
                      ? " (and " + std::to_string(users.problems.size() - shown) + " more lines)"
                      : ""));
      }
      if (users.users.empty()) {
        problem = "auth-secret " + key + " holds no usable user (user:hash with a supported hash)";
      } else {
        record->a = std::move(users.users);
      }
    }
    if (!problem.empty()) {
      rule.policies.erase(record);
      deny_rule(ingress, rule, "AuthSecretInvalid", problem);
    }
  }

  // The rate limits count per Ingress (the module's key is its namespace, name and uid), as ingress-nginx's
  // zones <namespace>_<name>_<uid>_rps: a re-created Ingress starts afresh. The status of a refusal is
  // the --limit-*-status-code flags'.
  void complete_limits(const Ingress& ingress, Rule& rule) {
    for (PolicyRecord& record : rule.policies) {
      if (record.kind != PolicyKind::kRateLimit) continue;
      record.a = ingress.uid;
      record.code = record.flags == policy::kConnections ? options_.limit_conn_status : options_.limit_req_status;
    }
  }

  // auth-tls-secret's CA bundle (ca.crt of a Secret of any type in the Ingress's namespace) followed by
  // its CRLs (ca.crl, when there is one), or "" with `problem` set.
  std::string client_ca(const Ingress& ingress, std::string& problem) const {
    const std::string& key = ingress.annotations.auth_tls_secret;
    const TlsSecret* secret = store_.secret(key);
    if (!key.starts_with(ingress.ns + "/")) {
      problem = "auth-tls-secret " + key + " is not in the Ingress's namespace";
    } else if (secret == nullptr) {
      problem = "auth-tls-secret " + key + " not found (or it has neither ca.crt nor auth)";
    } else if (!secret->ca_error.empty()) {
      problem = "auth-tls-secret " + key + ": ca.crt: " + secret->ca_error;
    } else if (secret->ca_pem.empty()) {
      problem = "auth-tls-secret " + key + " has no ca.crt";
    } else if (!secret->crl_error.empty()) {
      problem = "auth-tls-secret " + key + ": ca.crl: " + secret->crl_error;
    } else {
      std::string pem = secret->ca_pem;
      if (!secret->crl_pem.empty()) {
        if (!pem.ends_with('\n')) pem += '\n';
        pem += secret->crl_pem;
      }
      return pem;
    }
    return {};
  }

  // auth-tls-*: the host-wide kClientCert record (policy/client_cert.h) carries the checks; a rule of an
  // Ingress whose CA cannot be had, or a rule without a host (no SNI names it), answers 503 instead.
  void complete_client_cert(const Ingress& ingress, Rule& rule) {
    if (ingress.annotations.auth_tls_secret.empty() || !ingress.annotations.access_denied.empty()) return;
    std::string problem;
    if (client_ca(ingress, problem).empty()) {
      deny_rule(ingress, rule, "ClientCertSecretUnusable", problem);
    } else if (rule.host.empty()) {
      deny_rule(ingress, rule, "ClientCertNeedsHost",
                "auth-tls-secret: a rule without a host cannot ask for client certificates (no SNI names it)");
    }
  }

  // The CA of a host-wide kClientCert record; false when there is none (the record must then go: the
  // Ingress's rules answer 503 by complete_client_cert).
  bool complete_client_cert_host(const Ingress& ingress, HostPolicy& policy) {
    for (PolicyRecord& record : policy.records) {
      if (record.kind != PolicyKind::kClientCert) continue;
      std::string problem;
      std::string ca = client_ca(ingress, problem);
      if (ca.empty()) return false;
      const std::string digest = sha256_hex(policy::client_digest_input(record, ca));
      policy::with_client_ca(record, std::move(ca), digest);
    }
    return true;
  }

  // Access annotations fail closed: the rule answers 503 (policy/deny.h) with a Warning saying why. The
  // problem names Secrets and keys, never their data.
  void deny_rule(const Ingress& ingress, Rule& rule, std::string reason, const std::string& problem) {
    if (std::none_of(rule.policies.begin(), rule.policies.end(),
                     [](const PolicyRecord& p) { return p.kind == PolicyKind::kDeny; })) {
      rule.policies.insert(rule.policies.begin(), policy::deny(problem));
    }
    warn(ingress.ns, ingress.name, std::move(reason), problem + "; path " + rule.path + " answers 503");
  }

  // A rule's kProtocol record with what only the store knows: the CA and client certificate of
  // proxy-ssl-secret (a kubernetes.io/tls Secret of the Ingress's namespace) and the default TLS name,
  // <service>.<namespace>.svc. A Secret that is missing or unusable, or verification without one, makes
  // the rule answer 503 (deny_rule, as the access annotations do) with a Warning: it never talks to a
  // backend unverified.
  void complete_protocol(const Ingress& ingress, const ServiceBackendRef& ref, Rule& rule) {
    auto record = std::find_if(rule.policies.begin(), rule.policies.end(),
                               [](const PolicyRecord& p) { return p.kind == PolicyKind::kProtocol; });
    if (record == rule.policies.end()) return;
    const IngressAnnotations& a = ingress.annotations;
    if ((record->a.empty() || record->a.front() == ' ') && (a.proxy_ssl_verify || a.proxy_ssl_server_name))
      record->a.insert(0, ref.service + "." + ingress.ns + ".svc");
    if (const std::size_t space = record->a.find(' ');
        space != std::string::npos && !known_ciphers(record->a.substr(space + 1))) {
      record->a.resize(space);
      warn(ingress.ns, ingress.name, "InvalidAnnotation",
           "annotation proxy-ssl-ciphers is ignored: OpenSSL knows none of its ciphers");
    }
    const std::string& key = a.proxy_ssl_secret;
    std::string problem;
    if (key.empty()) {
      if (a.proxy_ssl_verify) problem = "proxy-ssl-verify is on but no proxy-ssl-secret names the CA";
    } else if (!key.starts_with(ingress.ns + "/")) {
      problem = "proxy-ssl-secret " + key + " is not in the Ingress's namespace";
    } else if (auto it = store_.secrets.find(key); it == store_.secrets.end()) {
      problem = "proxy-ssl-secret " + key + " not found (or not of type kubernetes.io/tls)";
    } else if (const TlsSecret& secret = it->second; !secret.ca_error.empty()) {
      problem = "proxy-ssl-secret " + key + ": " + secret.ca_error;
    } else if (secret.ca_pem.empty()) {
      problem = "proxy-ssl-secret " + key + " has no ca.crt";
    } else if (!secret.error.empty() && secret.error != "no tls.crt" && secret.error != "no tls.key") {
      problem = "proxy-ssl-secret " + key + ": " + secret.error;
    } else {
      record->b = secret.ca_pem;
      record->value |= std::uint64_t{static_cast<std::uint32_t>(record->b.size())} << 32;
      if (secret.error.empty()) {
        if (!record->b.ends_with('\n')) record->b += '\n';
        record->b += secret.certificate.chain_pem;
        if (!record->b.ends_with('\n')) record->b += '\n';
        record->b += secret.certificate.key_pem;
      }
    }
    if (!problem.empty()) {
      rule.policies.erase(record);
      deny_rule(ingress, rule, "ProxySSLSecretUnusable", problem);
    }
  }

  // A host whose Secret is missing or invalid keeps its entry with an empty certificate: the handshake
  // then falls back to a wildcard certificate covering it, or the default one, and its rules still
  // redirect to HTTPS as the Ingress asked. Messages name the problem, never key material.
  void add_tls(const Ingress& ingress, const IngressTls& tls, std::uint32_t source) {
    if (tls.secret_name.empty() || tls.hosts.empty()) return;
    const std::string key = ingress.ns + "/" + tls.secret_name;
    const Certificate* certificate = nullptr;
    auto it = store_.secrets.find(key);
    if (it == store_.secrets.end()) {
      warn(ingress.ns, ingress.name, "TLSSecretNotFound", "TLS Secret " + key + " not found (or not of type kubernetes.io/tls)");
    } else if (!it->second.error.empty()) {
      warn(ingress.ns, ingress.name, "TLSSecretInvalid", "TLS Secret " + key + ": " + it->second.error);
    } else {
      certificate = &it->second.certificate;
      if (!it->second.expired_on.empty()) {
        warn(ingress.ns, ingress.name, "TLSCertificateExpired",
             "TLS Secret " + key + ": the certificate in tls.crt expired on " + it->second.expired_on +
                 "; it is served anyway, as ingress-nginx does");
      }
    }
    for (const std::string& host : tls.hosts) {
      table_.model.tls.push_back({kSharedScope, host, ingress.ns, tls.secret_name, source, certificate ? *certificate : Certificate{}});
    }
  }

  void add_default_certificate() {
    const std::string& key = options_.default_certificate;
    if (key.empty()) return;
    auto it = store_.secrets.find(key);
    if (it == store_.secrets.end()) {
      table_.default_certificate_problem = "TLS Secret " + key + " not found (or not of type kubernetes.io/tls)";
    } else if (!it->second.error.empty()) {
      table_.default_certificate_problem = "TLS Secret " + key + ": " + it->second.error;
    } else {
      table_.model.default_certificate = it->second.certificate;
    }
  }

  // The backend of a service reference, shared by every rule naming the same Service port. kNoBackend
  // when the reference itself is unusable; a missing Service or port still yields a backend without
  // endpoints, so the rule answers 503 rather than falling through to another route.
  // `cluster_ip` (service-upstream): the backend's one endpoint is the Service's ClusterIP and port, a
  // backend of its own (key "ns/service:port@clusterip") so that other rules naming the Service keep its
  // endpoints and EndpointSlice changes leave it alone (patch_endpoints looks up "ns/service:port").
  std::uint32_t backend_for(const Source& ingress, const ServiceBackendRef& ref, bool cluster_ip = false) {
    if (auto problem = unusable(ref)) {
      warn(ingress.ns, ingress.name, problem->first, std::move(problem->second));
      return kNoBackend;
    }
    const std::string port_label =
        (ref.port_name.empty() ? std::to_string(ref.port_number) : ref.port_name) + (cluster_ip ? "@clusterip" : "");
    std::string service_key = ingress.ns + "/" + ref.service;
    const std::size_t service_length = service_key.size();
    service_key += ':';
    service_key += port_label;
    auto [known, inserted] = cache_.backends_.try_emplace(service_key);
    if (!inserted) {
      for (const Warning& w : known->second.problems) warn(ingress.ns, ingress.name, w.reason, w.message, ingress.kind);
      return known->second.index;
    }
    service_key.resize(service_length);
    // A missing Service is resolved again in each compile, not cached: no event of that Service would
    // ever drop the entry, so Ingresses naming Services that come and go would grow the cache forever.
    // A Service already in the cache exists (its deletion drops the entry), so the store is asked only
    // about the others.
    auto in_cache = cache_.resolved_.find(service_key);
    auto& cached = in_cache != cache_.resolved_.end()            ? in_cache->second
                   : store_.services.count(service_key) != 0 ? cache_.resolved_[service_key]
                                                             : unresolved_[service_key];
    auto resolved = cached.find(port_label);
    if (resolved == cached.end()) {
      CompileCache::Resolved fresh;
      fresh.backend.ns = ingress.ns;
      fresh.backend.service = ref.service;
      fresh.backend.port = ref.port_number;
      fresh.backend.port_name = ref.port_name;
      resolve_endpoints(service_key, ref, port_label, fresh.backend, fresh.problems, cluster_ip);
      resolved = cached.emplace(port_label, std::move(fresh)).first;
    }
    const auto index = static_cast<std::uint32_t>(table_.model.backends.size());
    known->second = {index, resolved->second.problems};
    table_.model.backends.push_back(resolved->second.backend);
    for (const Warning& w : resolved->second.problems) warn(ingress.ns, ingress.name, w.reason, w.message, ingress.kind);
    return index;
  }

  void resolve_endpoints(const std::string& service_key, const ServiceBackendRef& ref, const std::string& port_label,
                         Backend& backend, std::vector<Warning>& problems, bool cluster_ip = false) {
    auto service = store_.services.find(service_key);
    if (service == store_.services.end()) {
      problems.push_back({"", "", "ServiceNotFound", "Service " + service_key + " not found"});
      return;
    }
    if (service->second.type == "ExternalName") {
      problems.push_back({"", "", "ExternalNameUnsupported",
                          "Service " + service_key + " is of type ExternalName, which kroute does not route to"});
      return;
    }
    const ServicePort* port = nullptr;
    for (const ServicePort& p : service->second.ports) {
      if ((ref.port_number != 0 && p.port == ref.port_number) || (!ref.port_name.empty() && p.name == ref.port_name)) {
        port = &p;
        break;
      }
    }
    if (port == nullptr) {
      problems.push_back({"", "", "ServicePortNotFound", "Service " + service_key + " has no port " + port_label.substr(0, port_label.find('@'))});
      return;
    }
    if (cluster_ip) {
      const std::string& ip = service->second.cluster_ip;
      if (!ip.empty() && ip != "None") {
        backend.endpoints.push_back(Endpoint{ip, static_cast<std::uint16_t>(port->port), 1, true, true, false});
        return;
      }
      problems.push_back({"", "", "AnnotationIgnored",
                          "service-upstream: Service " + service_key + " has no ClusterIP; its endpoints are used"});
    }
    std::map<std::pair<std::string, std::uint16_t>, Endpoint> unique;
    if (auto slices = cache_.slices_.find(service_key); slices != cache_.slices_.end()) {
      for (const auto& [name, slice] : slices->second) {
        if (slice->address_type != "IPv4" && slice->address_type != "IPv6") continue;
        // EndpointSlice ports carry the Service port's name, with the container's port number.
        const SlicePort* target = nullptr;
        for (const SlicePort& p : slice->ports) {
          if (p.name == port->name && p.protocol == port->protocol && p.port != 0) target = &p;
        }
        if (target == nullptr) continue;
        for (const SliceEndpoint& e : slice->endpoints) {
          for (const std::string& address : e.addresses) {
            Endpoint endpoint{address, static_cast<std::uint16_t>(target->port), 1, e.ready, e.serving, e.terminating};
            auto [it, inserted] = unique.try_emplace({address, endpoint.port}, endpoint);
            if (!inserted && readiness_rank(endpoint) > readiness_rank(it->second)) it->second = endpoint;
          }
        }
      }
    }
    backend.endpoints.reserve(unique.size());
    for (auto& [key, endpoint] : unique) backend.endpoints.push_back(std::move(endpoint));
    settle_readiness(backend.endpoints);
  }

  const Store& store_;
  const CompileOptions& options_;
  CompileCache& cache_;
  CompiledTable& table_;  // the cache's
  bool default_class_is_ours_ = false;
  bool patch_ = false;
  bool endpoints_changed_ = false;    // patch_endpoints() changed a backend's endpoints
  std::vector<std::string> changed_;  // the Ingresses a patch takes out and puts back, sorted
  // Resolutions of Services not in the store, for this compile only (see backend_for).
  std::unordered_map<std::string, std::unordered_map<std::string, CompileCache::Resolved>> unresolved_;
};

void CompileCache::index(const Store& store) {
  if (indexed_) return;
  service_of_slice_.clear();
  slices_.clear();
  resolved_.clear();
  for (const auto& [key, slice] : store.slices) {
    if (slice.service.empty()) continue;
    const std::string service = slice.ns + "/" + slice.service;
    service_of_slice_.emplace(key, service);
    slices_[service].emplace_back(slice.name, &slice);
  }
  for (auto& [service, list] : slices_) std::sort(list.begin(), list.end());
  indexed_ = true;
}

void CompileCache::service_changed(const std::string& key) {
  if (key.empty()) {
    resolved_.clear();
  } else {
    resolved_.erase(key);
  }
}

void CompileCache::slice_changed(const Store& store, const std::string& key) {
  // Pointers into the store's map stay valid for elements that were not erased; a relist replaces the map.
  if (key.empty() || !indexed_) {
    indexed_ = false;
    slices_relisted_ = true;
    return;
  }
  if (auto old = service_of_slice_.find(key); old != service_of_slice_.end()) {
    changed_services_.insert(old->second);
    auto& list = slices_[old->second];
    const std::string name = key.substr(key.find('/') + 1);
    std::erase_if(list, [&](const auto& entry) { return entry.first == name; });
    resolved_.erase(old->second);
    if (list.empty()) slices_.erase(old->second);
    service_of_slice_.erase(old);
  }
  auto it = store.slices.find(key);
  if (it == store.slices.end() || it->second.service.empty()) return;
  const EndpointSlice& slice = it->second;
  const std::string service = slice.ns + "/" + slice.service;
  service_of_slice_.emplace(key, service);
  changed_services_.insert(service);
  auto& list = slices_[service];
  const std::pair<std::string, const EndpointSlice*> entry{slice.name, &slice};
  list.insert(std::upper_bound(list.begin(), list.end(), entry), entry);
  resolved_.erase(service);
}

bool owns(const Ingress& ingress, const Store& store, const CompileOptions& options, bool default_class_is_ours) {
  return owns_class(ingress.class_annotation, ingress.class_name, store, options, default_class_is_ours);
}

void CompileCache::ingress_changed(const std::string& key) {
  if (key.empty()) {
    parts_complete_ = false;
    changed_.clear();
  } else if (parts_complete_) {
    changed_.insert(key);
  }
}

void CompileCache::refresh_parts(const Store& store) {
  if (!parts_complete_) {
    parts_.clear();
    canaries_.clear();
    for (const auto& [key, ingress] : store.ingresses) {
      auto it = parts_.emplace_hint(parts_.end(), key, make_part(ingress));
      if (it->second.canary) canaries_.insert(key);
    }
    parts_complete_ = true;
  } else {
    for (const std::string& key : changed_) {
      auto it = store.ingresses.find(key);
      canaries_.erase(key);
      if (it == store.ingresses.end()) {
        parts_.erase(key);
      } else {
        auto part = parts_.insert_or_assign(key, make_part(it->second)).first;
        if (part->second.canary) canaries_.insert(key);
      }
    }
  }
  changed_.clear();
}

const CompiledTable& compile(const Store& store, const CompileOptions& options, CompileCache& cache) {
  return Compiler(store, options, cache).run();
}

CompiledTable compile(const Store& store, const CompileOptions& options) {
  CompileCache cache;
  compile(store, options, cache);
  return std::move(cache.table_);
}

// "Ingress ns/name" or "HTTPRoute ns/name".
std::string source_name(const Source& source) {
  return (source.kind.empty() ? std::string("Ingress") : source.kind) + " " + source.ns + "/" + source.name;
}

void add_build_warnings(const CompiledTable& table, const BuildResult& build, std::vector<Warning>& warnings) {
  const RouteModel& model = table.model;
  const auto source_of = [&](std::uint32_t index) -> const Source* {
    return index < model.sources.size() ? &model.sources[index] : nullptr;
  };
  const std::size_t first = warnings.size();
  for (const Conflict& c : build.conflicts) {
    const bool rule = c.item == Item::kRule;
    const std::uint32_t winner_source = rule ? model.rules[c.winner].source : model.tls[c.winner].source;
    const std::uint32_t loser_source = rule ? model.rules[c.loser].source : model.tls[c.loser].source;
    const Source* winner = source_of(winner_source);
    const Source* loser = source_of(loser_source);
    if (winner == nullptr || loser == nullptr) continue;
    const std::string host = c.host.empty() ? "(any)" : c.host;
    if (rule) {
      const Rule& r = model.rules[c.loser];
      warnings.push_back({loser->ns, loser->name, "RuleShadowed",
                          "rule " + host + " " + (r.path.empty() ? "/" : r.path) + " (" + path_type_name(r.type) +
                              ") is served by the older " + source_name(*winner),
                          loser->kind});
    } else {
      warnings.push_back({loser->ns, loser->name, "TLSShadowed",
                          "TLS for host " + host + " comes from the older " + source_name(*winner), loser->kind});
    }
  }
  for (const Diagnostic& d : build.diagnostics) {
    const Source* source = nullptr;
    std::string what;
    if (d.item == Item::kRule && d.index < model.rules.size()) {
      const Rule& r = model.rules[d.index];
      source = source_of(r.source);
      what = "rule " + (r.host.empty() ? std::string("(any)") : r.host) + " " + r.path;
    } else if (d.item == Item::kTls && d.index < model.tls.size()) {
      source = source_of(model.tls[d.index].source);
      what = "TLS host " + model.tls[d.index].host;
    } else if (d.item == Item::kHostPolicy && d.index < model.host_policies.size()) {
      const HostPolicy& p = model.host_policies[d.index];
      if (const Source* s = source_of(p.source)) {
        warnings.push_back({s->ns, s->name, "AnnotationIgnored", "host-wide policy for " + p.host + " " + d.message, s->kind});
      }
      continue;
    } else if (d.item == Item::kAlias && d.index < model.aliases.size()) {
      if (const Source* s = source_of(model.aliases[d.index].source)) {
        warnings.push_back({s->ns, s->name, "AnnotationIgnored", "server-alias: " + d.message, s->kind});
      }
      continue;
    }
    if (source != nullptr) {
      warnings.push_back({source->ns, source->name, "InvalidRule", what + " skipped: " + d.message, source->kind});
    }
  }
  // The builder's messages quote hosts, paths and addresses as the model has them; those of a Gateway API
  // object were not all checked as an Ingress's are, and an Event must be printable text.
  for (std::size_t i = first; i < warnings.size(); ++i) warnings[i].message = printable(warnings[i].message, 1024);
  std::sort(warnings.begin(), warnings.end());
  warnings.erase(std::unique(warnings.begin(), warnings.end()), warnings.end());
}

}  // namespace kroute::agent
