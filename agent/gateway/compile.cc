#include "gateway/compile.h"

#include <arpa/inet.h>

#include <algorithm>
#include <map>
#include <optional>

#include "host.h"
#include "policy/cors.h"
#include "policy/deny.h"
#include "policy/header_modifier.h"
#include "policy/headers.h"
#include "policy/mirror.h"
#include "policy/proxy_setting.h"
#include "policy/redirect.h"
#include "policy/rewrite.h"
#include "policy/server_name.h"
#include "policy/split.h"
#include "store.h"
#include "validate.h"

namespace kroute::agent::gateway {
namespace {

constexpr const char* kHTTPRouteKind = "HTTPRoute";

Condition condition(std::string type, bool status, std::string reason, std::string message, std::int64_t generation) {
  return {std::move(type), status ? "True" : "False", std::move(reason), std::move(message), generation, {}};
}

bool is_wildcard(const std::string& host) { return host.starts_with("*."); }

// Whether `name` (exact) is covered by `wildcard` ("*.example.com": one or more labels before the suffix).
bool wildcard_covers(const std::string& wildcard, const std::string& name) {
  const std::string_view suffix = std::string_view(wildcard).substr(1);  // ".example.com"
  return name.size() > suffix.size() && name.ends_with(suffix) && !is_wildcard(name);
}

// Whether a ReferenceGrant in `to_ns` lets objects of from_kind in from_ns refer to the named object.
bool granted(const Store& store, const std::string& from_kind, const std::string& from_ns, const std::string& to_group,
             const std::string& to_kind, const std::string& to_ns, const std::string& to_name) {
  const std::string prefix = to_ns + "/";
  for (auto it = store.reference_grants.lower_bound(prefix); it != store.reference_grants.end(); ++it) {
    if (!it->first.starts_with(prefix)) break;
    const ReferenceGrant& grant = it->second;
    const bool from = std::any_of(grant.from.begin(), grant.from.end(), [&](const ReferenceGrant::From& f) {
      return f.group == kGroup && f.kind == from_kind && f.ns == from_ns;
    });
    if (!from) continue;
    const bool to = std::any_of(grant.to.begin(), grant.to.end(), [&](const ReferenceGrant::To& t) {
      return t.group == to_group && t.kind == to_kind && (t.name.empty() || t.name == to_name);
    });
    if (to) return true;
  }
  return false;
}

// A listener as compiled: whether routes can attach and what its status says.
struct ListenerState {
  const Listener* spec = nullptr;
  ListenerStatus status;
  bool usable = false;                     // served: accepted, no conflict, references resolved
  bool attachable = false;                 // routes attach (and count) even while its references do not resolve
  bool https = false;
  std::optional<SecretObjectRef> certificate;  // the Secret served for its hosts (HTTPS)
  std::set<std::string> route_keys;         // routes attached to it
  ScopeId scope = kSharedScope;             // its Gateway's
  bool addressed = true;                    // its Gateway has an address (always, without slots)
};

struct GatewayState {
  const Gateway* spec = nullptr;
  std::vector<ListenerState> listeners;
  const Slot* slot = nullptr;  // its own address, when slots are configured and one was free
  // spec.addresses: the slot asked for, or why the Gateway cannot have what it asked for (then it is not
  // served): UnsupportedAddress (not accepted) or AddressNotUsable (not programmed).
  const Slot* requested_slot = nullptr;
  std::string address_reason;
  std::string address_message;
};

// The hosts a route serves in each scope: a Gateway with an address of its own has a scope of its own.
using ScopedHosts = std::map<ScopeId, std::vector<std::string>>;

// Which SNI may carry a host's requests (policy/server_name.h): the hostnames of the HTTPS listeners it is
// served through, unless one of them has none (then any).
struct ServerNames {
  std::set<std::string> patterns;
  bool any = false;
  std::uint32_t source = 0;
};

// One route's parentRef as resolved against our Gateways.
struct Attachment {
  bool ours = false;  // the parent is a Gateway of ours: we write its status
  std::vector<Condition> conditions;
  std::vector<std::pair<ListenerState*, std::vector<std::string>>> listeners;  // with the hostnames served there
};

class Compiler {
 public:
  Compiler(const Store& store, const Options& options, RouteModel& model, const BackendFor& backend_for)
      : store_(store), options_(options), model_(model), backend_for_(backend_for) {}

  Statuses run() {
    compile_classes();
    for (const auto& [key, gateway] : store_.gateways) {
      if (classes_.count(gateway.class_name) == 0) continue;
      auto [it, added] = gateways_.emplace(key, compile_gateway(gateway));
      check_requested_addresses(it->second);
    }
    assign_slots();
    for (auto& [key, state] : gateways_) {
      if (state.address_reason.empty()) continue;
      for (ListenerState& l : state.listeners) l.addressed = false;
    }
    add_listener_certificates();
    add_listener_names();
    for (const auto& [key, route] : store_.http_routes) compile_route(key, route);
    for (auto& [key, state] : gateways_) statuses_.gateways.push_back(gateway_status(state));
    add_server_names();
    return std::move(statuses_);
  }

 private:
  void compile_classes() {
    for (const auto& [name, cls] : store_.gateway_classes) {
      if (cls.controller != options_.controller) continue;
      classes_.insert(name);
      ClassStatus status{name, cls.generation, {}, supported_features(options_)};
      status.conditions.push_back(condition("Accepted", true, "Accepted", "kroute serves this class", cls.generation));
      status.conditions.push_back(
          condition("SupportedVersion", true, "SupportedVersion", "Gateway API v1.6", cls.generation));
      statuses_.classes.push_back(std::move(status));
    }
  }

  std::vector<GroupKind> supported_kinds(const Listener& listener, bool& invalid) const {
    const GroupKind http_route{kGroup, kHTTPRouteKind};
    invalid = false;
    if (!listener.kinds_given) return {http_route};
    std::vector<GroupKind> kinds;
    for (const GroupKind& k : listener.kinds) {
      if (k == http_route) {
        if (std::find(kinds.begin(), kinds.end(), k) == kinds.end()) kinds.push_back(k);
      } else {
        invalid = true;
      }
    }
    return kinds;
  }

  // spec.addresses: kroute serves IP addresses of its own only: a slot's (one per Gateway), or without
  // slots those of --gateway-address. Another type is UnsupportedAddress; an address kroute does not have
  // is AddressNotUsable.
  void check_requested_addresses(GatewayState& gw) const {
    const auto fail = [&](const char* reason, std::string message) {
      gw.address_reason = reason;
      gw.address_message = std::move(message);
    };
    for (const RequestedAddress& a : gw.spec->requested) {
      unsigned char buffer[sizeof(in6_addr)];
      const bool ip = inet_pton(AF_INET, a.value.c_str(), buffer) == 1 || inet_pton(AF_INET6, a.value.c_str(), buffer) == 1;
      if (a.type != "IPAddress" || !ip) {
        return fail("UnsupportedAddress", "kroute serves addresses of type IPAddress only, not " + printable(a.type) +
                                              " " + printable(a.value));
      }
    }
    for (const RequestedAddress& a : gw.spec->requested) {
      if (options_.slots.empty()) {
        const auto& ours = options_.addresses;
        if (std::find(ours.begin(), ours.end(), a.value) == ours.end()) {
          return fail("AddressNotUsable", a.value + " is not an address of kroute (--gateway-address)");
        }
        continue;
      }
      const auto slot = std::find_if(options_.slots.begin(), options_.slots.end(),
                                     [&](const Slot& s) { return s.address == a.value; });
      if (slot == options_.slots.end()) {
        return fail("AddressNotUsable", a.value + " is not an address of kroute's pool (--gateway-slot)");
      }
      if (gw.requested_slot != nullptr && gw.requested_slot != &*slot) {
        return fail("AddressNotUsable", "kroute gives a Gateway one address of its pool");
      }
      gw.requested_slot = &*slot;
    }
  }

  // With slots, every Gateway of ours gets one while they last and keeps it for as long as it exists: first
  // the Gateways that ask for a slot's address in spec.addresses get it (the oldest, should two ask), then
  // the Gateways whose status already shows a slot's address keep it (the oldest, should two show one),
  // then the others take free slots, oldest Gateway first. Each gets a scope of its own.
  void assign_slots() {
    if (options_.slots.empty()) return;
    std::vector<GatewayState*> order;
    for (auto& [key, state] : gateways_) order.push_back(&state);
    std::stable_sort(order.begin(), order.end(), [](const GatewayState* a, const GatewayState* b) {
      return a->spec->created_unix < b->spec->created_unix;
    });
    std::set<const Slot*> taken;
    auto take = [&](GatewayState* gw, const Slot& slot) {
      taken.insert(&slot);
      gw->slot = &slot;
    };
    // First the addresses Gateways ask for (the oldest asking wins); such a Gateway takes no other.
    for (GatewayState* gw : order) {
      if (gw->requested_slot == nullptr || !gw->address_reason.empty()) continue;
      if (taken.count(gw->requested_slot) != 0) {
        gw->address_reason = "AddressNotUsable";
        gw->address_message = gw->requested_slot->address + " is taken by an older Gateway";
        continue;
      }
      take(gw, *gw->requested_slot);
    }
    const std::vector<GatewayState*> all = order;
    std::erase_if(order, [](const GatewayState* gw) { return !gw->spec->requested.empty(); });
    for (GatewayState* gw : order) {
      for (const Slot& slot : options_.slots) {
        const auto& shown = gw->spec->addresses;
        if (taken.count(&slot) == 0 && std::find(shown.begin(), shown.end(), slot.address) != shown.end()) {
          take(gw, slot);
          break;
        }
      }
    }
    for (GatewayState* gw : order) {
      for (const Slot& slot : options_.slots) {
        if (gw->slot != nullptr) break;
        if (taken.count(&slot) == 0) take(gw, slot);
      }
    }
    for (GatewayState* gw : all) {
      const std::string name = "gateway " + gw->spec->ns + "/" + gw->spec->name;
      const Slot* slot = gw->slot;
      // A slot of addresses alone (no port named): nginx sees the port clients used, so each listener port
      // gets a scope of its own and a route is served only on the ports of the listeners it attached to.
      const bool by_port = slot != nullptr && std::all_of(slot->locals.begin(), slot->locals.end(),
                                                          [](const LocalAddress& l) { return l.port == 0; });
      std::map<std::uint32_t, ScopeId> port_scopes;
      ScopeId whole = kSharedScope;
      for (ListenerState& l : gw->listeners) {
        l.addressed = slot != nullptr;
        if (slot == nullptr) continue;
        if (!by_port) {
          if (whole == kSharedScope) whole = new_scope(name, slot->locals);
          l.scope = whole;
          continue;
        }
        auto [it, added] = port_scopes.try_emplace(l.spec->port, kSharedScope);
        if (added) {
          std::vector<LocalAddress> locals = slot->locals;
          for (LocalAddress& local : locals) local.port = static_cast<std::uint16_t>(l.spec->port);
          it->second = new_scope(name + " port " + std::to_string(l.spec->port), std::move(locals));
          scope_listener_[it->second] = &l;
        }
        l.scope = it->second;
      }
    }
  }

  ScopeId new_scope(std::string name, std::vector<LocalAddress> locals) {
    model_.scopes.push_back({std::move(name), std::move(locals), {}});
    return static_cast<ScopeId>(model_.scopes.size());
  }

  // An HTTPS listener without hostname serves its certificate for every server name its Gateway's routes do
  // not name: its scope's default certificate (the table's, in the shared scope, when it has none).
  void add_listener_certificates() {
    for (auto& [key, gw] : gateways_) {
      for (const ListenerState& l : gw.listeners) {
        if (!l.https || !l.usable || !l.addressed || !l.certificate || !l.spec->hostname.empty()) continue;
        auto secret = store_.secrets.find(l.certificate->ns + "/" + l.certificate->name);
        if (secret == store_.secrets.end()) continue;
        Certificate& fallback = l.scope == kSharedScope ? model_.default_certificate
                                                        : model_.scopes[l.scope - 1].default_certificate;
        if (fallback.chain_pem.empty()) fallback = secret->second.certificate;
      }
    }
  }

  // The hostnames of the HTTPS listeners each scope of its own serves: a TLS request whose Host selects
  // another of them than its SNI did gets 421 (model.h's Scope::listener_names). Only where they share one
  // port (a scope of a slot with ports holds every listener of its Gateway; the module cannot tell which
  // port a client used), and only when one has a hostname (else every name selects the same listener).
  void add_listener_names() {
    for (auto& [key, gw] : gateways_) {
      std::map<ScopeId, std::vector<const ListenerState*>> by_scope;
      for (const ListenerState& l : gw.listeners) {
        if (l.https && l.usable && l.addressed && l.scope != kSharedScope) by_scope[l.scope].push_back(&l);
      }
      for (const auto& [scope, listeners] : by_scope) {
        const std::uint32_t port = listeners.front()->spec->port;
        const bool one_port = std::all_of(listeners.begin(), listeners.end(),
                                          [port](const ListenerState* l) { return l->spec->port == port; });
        const bool named = std::any_of(listeners.begin(), listeners.end(),
                                       [](const ListenerState* l) { return !l->spec->hostname.empty(); });
        if (!one_port || !named) continue;
        std::vector<std::string>& names = model_.scopes[scope - 1].listener_names;
        for (const ListenerState* l : listeners) names.push_back(l->spec->hostname);
      }
    }
  }

  GatewayState compile_gateway(const Gateway& gateway) {
    GatewayState state;
    state.spec = &gateway;
    const std::int64_t gen = gateway.generation;
    for (const Listener& listener : gateway.listeners) {
      ListenerState& l = state.listeners.emplace_back();
      l.spec = &listener;
      l.status.name = listener.name;
      bool invalid_kinds = false;
      l.status.supported_kinds = supported_kinds(listener, invalid_kinds);
      // Accepted: can nginx serve this protocol on this port?
      std::string accept_reason = "Accepted";
      std::string accept_message = "served on nginx's fixed ports";
      if (listener.protocol == "HTTP") {
        if (options_.http_ports.count(listener.port) == 0) {
          accept_reason = "PortUnavailable";
          accept_message = "nginx serves plain HTTP only on the configured ports (--gateway-http-port)";
        }
      } else if (listener.protocol == "HTTPS") {
        l.https = true;
        if (options_.https_ports.count(listener.port) == 0) {
          accept_reason = "PortUnavailable";
          accept_message = "nginx serves HTTPS only on the configured ports (--gateway-https-port)";
        } else if (listener.tls_mode != "Terminate") {
          accept_reason = "UnsupportedValue";
          accept_message = "only TLS mode Terminate is supported";
        }
      } else {
        accept_reason = "UnsupportedProtocol";
        accept_message = "protocol " + printable(listener.protocol) + " is not supported";
        l.status.supported_kinds.clear();
      }
      const bool accepted = accept_reason == "Accepted";
      // Conflicts within the Gateway: one port, one protocol; one hostname per port.
      std::string conflict;
      for (const Listener& other : gateway.listeners) {
        if (&other == &listener || other.port != listener.port) continue;
        if (other.protocol != listener.protocol) conflict = "ProtocolConflict";
        else if (other.hostname == listener.hostname && conflict.empty()) conflict = "HostnameConflict";
      }
      // ResolvedRefs: kinds and certificates.
      std::string refs_reason = "ResolvedRefs";
      std::string refs_message = "every reference resolved";
      if (invalid_kinds) {
        refs_reason = "InvalidRouteKinds";
        refs_message = "allowedRoutes.kinds names a kind kroute does not serve";
      }
      if (l.https && accepted) {
        if (listener.certificate_refs.empty()) {
          refs_reason = "InvalidCertificateRef";
          refs_message = "an HTTPS listener needs tls.certificateRefs";
        }
        for (const SecretObjectRef& ref : listener.certificate_refs) {
          std::string why;
          const std::string key = ref.ns + "/" + ref.name;
          if (!ref.group.empty() || ref.kind != "Secret") {
            refs_reason = "InvalidCertificateRef";
            why = "certificateRef " + printable(ref.kind) + " " + printable(ref.name) + " is not a core Secret";
          } else if (ref.ns != gateway.ns && !granted(store_, "Gateway", gateway.ns, "", "Secret", ref.ns, ref.name)) {
            refs_reason = "RefNotPermitted";
            why = "no ReferenceGrant in " + ref.ns + " lets this Gateway use Secret " + key;
          } else if (auto it = store_.secrets.find(key); it == store_.secrets.end() || !it->second.error.empty()) {
            refs_reason = "InvalidCertificateRef";
            why = it == store_.secrets.end() ? "Secret " + key + " is not a kubernetes.io/tls Secret that exists"
                                             : "Secret " + key + ": " + it->second.error;
          } else if (!l.certificate) {
            l.certificate = ref;
          }
          if (!why.empty()) {
            refs_message = why;
            l.certificate.reset();
            break;
          }
        }
      }
      const bool resolved = refs_reason == "ResolvedRefs" || refs_reason == "InvalidRouteKinds";
      l.attachable = accepted && conflict.empty() && !l.status.supported_kinds.empty();
      l.usable = l.attachable && resolved;
      const bool programmed = accepted && conflict.empty() && refs_reason == "ResolvedRefs";
      l.status.conditions.push_back(condition("Accepted", accepted, accept_reason, accept_message, gen));
      l.status.conditions.push_back(condition("Conflicted", !conflict.empty(), conflict.empty() ? "NoConflicts" : conflict,
                                              conflict.empty() ? "no conflicts" : "another listener uses this port",
                                              gen));
      l.status.conditions.push_back(
          condition("ResolvedRefs", refs_reason == "ResolvedRefs", refs_reason, refs_message, gen));
      l.status.conditions.push_back(condition("Programmed", programmed, programmed ? "Programmed" : "Invalid",
                                              programmed ? "live in the route table" : "the listener is not served",
                                              gen));
    }
    return state;
  }

  GatewayStatus gateway_status(GatewayState& state) {
    const Gateway& gateway = *state.spec;
    GatewayStatus status{gateway.ns, gateway.name, {}, {}, options_.addresses};
    if (!options_.slots.empty()) status.addresses = state.slot ? std::vector<std::string>{state.slot->address}
                                                               : std::vector<std::string>{};
    if (options_.slots.empty() && !gateway.requested.empty()) {
      status.addresses.clear();
      for (const RequestedAddress& a : gateway.requested) status.addresses.push_back(a.value);
    }
    if (!state.address_reason.empty()) status.addresses.clear();
    std::size_t usable = 0;
    for (ListenerState& l : state.listeners) {
      l.status.attached_routes = static_cast<std::int64_t>(l.route_keys.size());
      if (l.usable) ++usable;
      status.listeners.push_back(l.status);
    }
    const std::int64_t gen = gateway.generation;
    if (state.address_reason == "UnsupportedAddress") {
      status.conditions.push_back(condition("Accepted", false, state.address_reason, state.address_message, gen));
      status.conditions.push_back(condition("Programmed", false, "Invalid", state.address_message, gen));
      return status;
    }
    if (!state.address_reason.empty()) {
      status.conditions.push_back(condition("Accepted", true, "Accepted", "kroute serves this Gateway", gen));
      status.conditions.push_back(condition("Programmed", false, state.address_reason, state.address_message, gen));
      return status;
    }
    if (usable == state.listeners.size()) {
      status.conditions.push_back(condition("Accepted", true, "Accepted", "kroute serves this Gateway", gen));
    } else {
      status.conditions.push_back(condition("Accepted", usable > 0, "ListenersNotValid",
                                            "some listeners cannot be served; see their conditions", gen));
    }
    if (!options_.slots.empty() && state.slot == nullptr) {
      status.conditions.push_back(condition("Programmed", false, "AddressNotAssigned",
                                            "every address of kroute's pool (--gateway-slot) is in use", gen));
    } else if (status.addresses.empty()) {
      status.conditions.push_back(
          condition("Programmed", false, "AddressNotAssigned", "kroute has no address to publish", gen));
    } else {
      status.conditions.push_back(condition("Programmed", true, "Programmed", "live in the route table", gen));
    }
    return status;
  }

  bool namespace_allowed(const Listener& listener, const std::string& gateway_ns, const std::string& route_ns) const {
    if (listener.allowed_from == "All") return true;
    if (listener.allowed_from == "Same") return route_ns == gateway_ns;
    if (listener.allowed_from == "Selector") {
      auto it = store_.namespaces.find(route_ns);
      return it != store_.namespaces.end() && listener.selector.matches(it->second.labels);
    }
    return false;
  }

  // How specific a listener hostname is: none, then wildcards by the length of their suffix, then exact names.
  static std::size_t specificity(const std::string& hostname) {
    if (hostname.empty()) return 0;
    return is_wildcard(hostname) ? hostname.size() : 1000;
  }

  // Whether listener hostname `listener` takes all of `host` (a name, or a wildcard within it).
  static bool covers(const std::string& listener, const std::string& host) {
    if (listener == host) return true;
    if (!is_wildcard(listener)) return false;
    return is_wildcard(host) ? host.ends_with(listener.substr(1)) : wildcard_covers(listener, host);
  }

  static bool taken_by_narrower(const GatewayState& gw, const ListenerState& l, const std::string& host) {
    for (const ListenerState& other : gw.listeners) {
      if (&other == &l || !other.attachable || other.spec->port != l.spec->port) continue;
      if (specificity(other.spec->hostname) > specificity(l.spec->hostname) && covers(other.spec->hostname, host))
        return true;
    }
    return false;
  }

  Attachment attach(const HTTPRoute& route, const ParentRef& ref) {
    Attachment a;
    if (ref.group != kGroup || ref.kind != "Gateway") return a;
    auto it = gateways_.find(ref.ns + "/" + ref.name);
    if (it == gateways_.end()) return a;
    a.ours = true;
    GatewayState& gw = it->second;
    const std::int64_t gen = route.generation;
    bool any_candidate = false;
    bool any_allowed = false;
    for (ListenerState& l : gw.listeners) {
      if (!ref.section_name.empty() && ref.section_name != l.spec->name) continue;
      if (ref.port != 0 && ref.port != l.spec->port) continue;
      any_candidate = true;
      if (!l.attachable) continue;
      const GroupKind kind{kGroup, kHTTPRouteKind};
      if (std::find(l.status.supported_kinds.begin(), l.status.supported_kinds.end(), kind) ==
          l.status.supported_kinds.end()) {
        continue;
      }
      if (!namespace_allowed(*l.spec, gw.spec->ns, route.ns)) continue;
      any_allowed = true;
      std::vector<std::string> hosts = intersect_hostnames(l.spec->hostname, route.hostnames);
      // A request goes to the most specific listener of its port whose hostname matches it: a name that a
      // more specific listener takes is not this one's (GatewayHTTPListenerIsolation).
      std::erase_if(hosts, [&](const std::string& host) { return taken_by_narrower(gw, l, host); });
      if (hosts.empty()) continue;
      a.listeners.emplace_back(&l, std::move(hosts));
    }
    if (!a.listeners.empty()) {
      a.conditions.push_back(condition("Accepted", true, "Accepted", "attached", gen));
    } else if (!any_candidate) {
      a.conditions.push_back(condition("Accepted", false, "NoMatchingParent",
                                       "no listener of the Gateway matches sectionName and port", gen));
    } else if (!any_allowed) {
      a.conditions.push_back(
          condition("Accepted", false, "NotAllowedByListeners", "no listener allows this route to attach", gen));
    } else {
      a.conditions.push_back(condition("Accepted", false, "NoMatchingListenerHostname",
                                       "no listener hostname meets the route's hostnames", gen));
    }
    return a;
  }

  // Why a backendRef cannot be used ({reason, message}), or nothing.
  std::optional<std::pair<std::string, std::string>> backend_problem(const HTTPRoute& route, const ServiceRef& ref) const {
    if (!ref.group.empty() || ref.kind != "Service") {
      return std::pair<std::string, std::string>{"InvalidKind", "backendRef " + printable(ref.group) + "/" +
                                                                    printable(ref.kind) + " is not a Service"};
    }
    const std::string key = ref.ns + "/" + ref.name;
    if (ref.ns != route.ns && !granted(store_, kHTTPRouteKind, route.ns, "", "Service", ref.ns, ref.name)) {
      return std::pair<std::string, std::string>{"RefNotPermitted",
                                                 "no ReferenceGrant in " + ref.ns + " lets this route use Service " + key};
    }
    auto service = store_.services.find(key);
    if (service == store_.services.end()) {
      return std::pair<std::string, std::string>{"BackendNotFound", "Service " + key + " not found"};
    }
    if (ref.port == 0) return std::pair<std::string, std::string>{"BackendNotFound", "backendRef " + key + " has no port"};
    const auto& ports = service->second.ports;
    if (std::none_of(ports.begin(), ports.end(), [&](const ServicePort& p) { return p.port == ref.port; })) {
      return std::pair<std::string, std::string>{"BackendNotFound",
                                                 "Service " + key + " has no port " + std::to_string(ref.port)};
    }
    return std::nullopt;
  }

  // The path template of a RequestRedirect's or URLRewrite's path (policy/template.h): the full path, or the
  // replacement of the matched prefix followed by what the request had after it. "" with `problem` set when
  // kroute cannot write it.
  static std::string replaced_path(const PathModifier& path, std::string& problem) {
    if (path.value.find('$') != std::string::npos) {
      problem = "a path with '$' in a filter is not supported";
      return {};
    }
    if (path.type == "ReplaceFullPath") return path.value.empty() ? "/" : path.value;
    if (path.type == "ReplacePrefixMatch") {
      std::string prefix = path.value;
      while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
      return prefix.empty() ? "$prefix_rest_or_slash" : prefix + "$prefix_rest";
    }
    problem = "path modifier " + printable(path.type) + " is not supported";
    return {};
  }

  // The records of a rule's filters; `problem` is set for a filter kroute cannot apply.
  // `where`: the listener whose port the rule is compiled for, when its scope has one port (then a redirect
  // without scheme or port takes the listener's, as the spec asks); else the request's scheme, no port.
  std::vector<PolicyRecord> filter_records(const std::vector<Filter>& filters, std::string& problem,
                                           const ListenerState* where = nullptr) const {
    std::vector<PolicyRecord> records;
    for (const Filter& f : filters) {
      if (f.type == "RequestRedirect") {
        const auto well_known = [](const std::string& scheme) -> std::uint32_t {
          return scheme == "http" ? 80 : scheme == "https" ? 443 : 0;
        };
        std::string scheme = f.scheme;
        std::uint32_t port = f.port;
        if (where != nullptr) {
          if (scheme.empty()) scheme = where->https ? "https" : "http";
          if (port == 0) port = f.scheme.empty() ? where->spec->port : well_known(scheme);
        }
        std::string location = scheme.empty() ? "$scheme://" : scheme + "://";
        location += f.hostname.empty() ? std::string("$host") : f.hostname;
        if (port != 0 && port != well_known(scheme)) location += ":" + std::to_string(port);
        if (f.path.type.empty()) {
          location += "$request_uri";
        } else if (std::string path = replaced_path(f.path, problem); !path.empty()) {
          location += path + "$is_args$args";
        }
        records.push_back(policy::redirect(static_cast<std::uint16_t>(f.status_code), std::move(location), 0));
      } else if (f.type == "URLRewrite") {
        if (!f.hostname.empty()) records.push_back(policy::upstream_host(f.hostname));
        if (!f.path.type.empty()) {
          if (std::string path = replaced_path(f.path, problem); !path.empty()) {
            records.push_back(policy::rewrite(std::move(path)));
          }
        }
      } else if (f.type == "RequestHeaderModifier" || f.type == "ResponseHeaderModifier") {
        const auto make = f.type == "RequestHeaderModifier" ? policy::request_header : policy::response_header;
        for (const HeaderChange& h : f.headers.set) records.push_back(make(policy::kSetHeader, h.name, h.value));
        for (const HeaderChange& h : f.headers.add) records.push_back(make(policy::kAddHeader, h.name, h.value));
        for (const std::string& name : f.headers.remove) records.push_back(make(policy::kRemoveHeader, name, {}));
      } else if (f.type == "CORS") {
        if (std::optional<PolicyRecord> record = cors_record(f.cors, problem)) records.push_back(std::move(*record));
      } else if (f.type != "RequestMirror") {  // mirror_records() makes those: they need the store's backends
        problem = "filter " + printable(f.type) + " is not supported yet";
      }
    }
    return records;
  }

  // A CORS filter as the kCors record the cors-* annotations make, with the Gateway API's wildcards: a "*."
  // origin covers any number of labels (kCorsAnyDepth), and "*" origins, methods and headers are answered
  // with what the request asked for where credentials rule "*" out (kCorsEcho). Without origins nothing is
  // allowed: no record. An exposeHeaders "*" with credentials, which the spec forbids answering, exposes
  // only the safelisted headers. A list the table cannot hold is an unsupported value.
  static std::optional<PolicyRecord> cors_record(const Cors& cors, std::string& problem) {
    if (cors.origins.empty()) return std::nullopt;
    std::uint32_t flags = policy::kCorsAnyDepth | policy::kCorsEcho;
    if (cors.credentials) flags |= policy::kCorsCredentials;
    std::string origins;
    for (const std::string& origin : cors.origins) {
      if (origin == "*") {
        flags |= policy::kCorsAnyOrigin;
      } else {
        origins += (origins.empty() ? "" : " ") + origin;
      }
    }
    if ((flags & policy::kCorsAnyOrigin) != 0) origins.clear();
    const auto joined = [](const std::vector<std::string>& items) {
      std::string text;
      for (const std::string& item : items) text += (text.empty() ? "" : ", ") + item;
      return text;
    };
    std::string expose = joined(cors.expose);
    if (cors.credentials && expose == "*") expose.clear();
    PolicyRecord record = policy::cors(flags, std::move(origins), joined(cors.methods), joined(cors.headers),
                                       expose, static_cast<std::uint64_t>(cors.max_age));
    if (std::string why = policy::check_cors(record, false); !why.empty()) {
      problem = "CORS filter: " + why;
      return std::nullopt;
    }
    return record;
  }

  // The kMirror records of a rule's RequestMirror filters: each copy goes to an endpoint of the filter's
  // Service, in the share of the requests it asks for. A reference that cannot be resolved copies nothing
  // (the route's ResolvedRefs says why).
  std::vector<PolicyRecord> mirror_records(const HTTPRoute& route, const Source& src,
                                           const std::vector<Filter>& filters) const {
    std::vector<PolicyRecord> records;
    for (const Filter& f : filters) {
      if (f.type != "RequestMirror" || f.mirror_millionths == 0) continue;
      const ServiceRef& ref = f.mirror;
      if (backend_problem(route, ref)) continue;
      const std::uint32_t b = backend_for_(src, ref.ns, ref.name, ref.port);
      if (b != kNoBackend) records.push_back(policy::mirror_to_backend(b, f.mirror_millionths));
    }
    return records;
  }

  // A rule's timeouts as nginx's proxy timeouts. Each try's connect, send and read waits are bounded by
  // backendRequest (or request when there is no backendRequest), and no new try starts once request has
  // passed (proxy_next_upstream_timeout). "0s" turns a limit off. nginx times the waits between reads, so an
  // answer that keeps trickling in can take longer than `request` (docs/gateway-api.md, "Timeouts").
  static std::vector<PolicyRecord> timeout_records(const RouteRule& rule, std::string& problem) {
    std::vector<PolicyRecord> records;
    const auto read = [&](const std::string& text, const char* field) -> std::optional<std::uint64_t> {
      if (text.empty()) return std::nullopt;
      std::optional<std::uint64_t> ms = duration_ms(text);
      if (!ms) problem = std::string(field) + " " + printable(text) + " is not a Gateway API duration";
      else *ms = std::min(*ms, policy::kMaxProxyTimeoutMs);
      return ms;
    };
    const std::optional<std::uint64_t> request = read(rule.request_timeout, "timeouts.request");
    const std::optional<std::uint64_t> backend = read(rule.backend_timeout, "timeouts.backendRequest");
    std::optional<std::uint64_t> per_try = backend ? backend : request;
    if (backend && request && *request != 0 && (*backend == 0 || *backend > *request)) per_try = request;
    if (per_try) {
      const std::uint64_t wait = *per_try == 0 ? policy::kMaxProxyTimeoutMs : *per_try;
      if (*per_try != 0) records.push_back(policy::proxy_setting(policy::ProxySetting::kConnectTimeout, wait));
      records.push_back(policy::proxy_setting(policy::ProxySetting::kSendTimeout, wait));
      records.push_back(policy::proxy_setting(policy::ProxySetting::kReadTimeout, wait));
    }
    if (request && *request != 0) {
      records.push_back(policy::proxy_setting(policy::ProxySetting::kNextUpstreamTimeout, *request));
    }
    return records;
  }

  // A rule's retry stanza as nginx's proxy_next_upstream. Connection errors and timeouts are retried (the
  // spec's SHOULD), and the listed codes of those nginx can retry. `attempts` retries at most, so
  // attempts + 1 tries (kDefaultRetries when not given); once every ready endpoint has failed a try may go
  // to one again (kNextRepeat), as a one-pod backend needs. nginx retries POST, LOCK and PATCH only before
  // their request was sent, and does not wait between tries: `backoff` is read, not honoured
  // (docs/gateway-api.md, "Retries").
  static constexpr std::uint64_t kDefaultRetries = 2;
  static std::vector<PolicyRecord> retry_records(const RouteRule& rule, std::string& problem) {
    const Retry& retry = rule.retry;
    if (!retry.given) return {};
    static constexpr std::pair<std::int64_t, std::uint32_t> kCodes[] = {
        {500, policy::kNextHttp500}, {502, policy::kNextHttp502}, {503, policy::kNextHttp503},
        {504, policy::kNextHttp504}, {403, policy::kNextHttp403}, {404, policy::kNextHttp404},
        {429, policy::kNextHttp429}};
    std::uint32_t bits = policy::kNextError | policy::kNextTimeout | policy::kNextRepeat;
    for (const std::int64_t code : retry.codes) {
      const auto* known = std::find_if(std::begin(kCodes), std::end(kCodes), [&](const auto& c) { return c.first == code; });
      if (known == std::end(kCodes)) {
        problem = "retry code " + std::to_string(code) + " is not one nginx can retry (500, 502, 503, 504, 403, 404, 429)";
      } else {
        bits |= known->second;
      }
    }
    if (!retry.backoff.empty() && !duration_ms(retry.backoff)) {
      problem = "retry.backoff " + printable(retry.backoff) + " is not a Gateway API duration";
    }
    const std::uint64_t attempts = retry.attempts > 0 ? static_cast<std::uint64_t>(retry.attempts) : kDefaultRetries;
    return {policy::proxy_setting(policy::ProxySetting::kNextUpstream, bits),
            policy::proxy_setting(policy::ProxySetting::kNextUpstreamTries, std::min(attempts + 1, policy::kMaxProxyTries))};
  }

  void compile_route(const std::string& key, const HTTPRoute& route) {
    RouteStatus status{route.ns, route.name, {}};
    ScopedHosts hosts;  // what the route is served for, across its parents
    std::vector<std::pair<ListenerState*, std::vector<std::string>>> attached;
    for (const ParentRef& ref : route.parents) {
      Attachment a = attach(route, ref);
      if (!a.ours) continue;
      for (auto& [listener, names] : a.listeners) {
        listener->route_keys.insert(key);
        if (!listener->addressed) continue;
        std::vector<std::string>& scoped = hosts[listener->scope];
        for (const std::string& name : names) {
          if (std::find(scoped.begin(), scoped.end(), name) == scoped.end()) scoped.push_back(name);
        }
        attached.emplace_back(listener, std::move(names));
      }
      status.parents.push_back({ref, options_.controller, std::move(a.conditions)});
    }
    if (status.parents.empty()) return;
    // Backend references and filters, checked once for every parent.
    std::string refs_reason = "ResolvedRefs";
    std::string refs_message = "every backendRef resolved";
    std::string unsupported;
    for (const RouteRule& rule : route.rules) {
      for (const BackendRef& ref : rule.backends) {
        if (auto problem = backend_problem(route, ref); problem && refs_reason == "ResolvedRefs") {
          refs_reason = problem->first;
          refs_message = problem->second;
        }
      }
      for (const Filter& f : rule.filters) {
        if (f.type != "RequestMirror") continue;
        if (auto problem = backend_problem(route, f.mirror); problem && refs_reason == "ResolvedRefs") {
          refs_reason = problem->first;
          refs_message = "RequestMirror: " + problem->second;
        }
      }
      for (const RouteMatch& m : rule.matches) {
        if (m.path_type == "RegularExpression") unsupported = "path type RegularExpression is not supported yet";
      }
      filter_records(rule.filters, unsupported);
      timeout_records(rule, unsupported);
      retry_records(rule, unsupported);
      for (const BackendRef& ref : rule.backends) {
        for (const Filter& f : ref.filters) {
          if (f.type != "RequestHeaderModifier" && f.type != "ResponseHeaderModifier") {
            unsupported = "filter " + printable(f.type) + " of a backendRef is not supported";
          }
        }
      }
    }
    for (ParentStatus& parent : status.parents) {
      if (!unsupported.empty() && parent.conditions.front().status == "True") {
        parent.conditions.front() = condition("Accepted", false, "UnsupportedValue", unsupported, route.generation);
      }
      parent.conditions.push_back(
          condition("ResolvedRefs", refs_reason == "ResolvedRefs", refs_reason, refs_message, route.generation));
    }
    const bool accepted = unsupported.empty() && !hosts.empty();
    statuses_.routes.push_back(std::move(status));
    if (!accepted) return;
    add_rules(route, hosts);
    const auto source = static_cast<std::uint32_t>(model_.sources.size() - 1);  // the route's, just added
    for (const auto& [listener, names] : attached) {
      add_tls(*listener, route, hosts[listener->scope]);
      if (!listener->https) continue;
      for (const std::string& host : names) {
        auto [it, added] = server_names_.try_emplace({listener->scope, host});
        if (added) it->second.source = source;
        if (listener->spec->hostname.empty()) it->second.any = true;
        else it->second.patterns.insert(listener->spec->hostname);
      }
    }
  }

  // A host served only through HTTPS listeners with hostnames takes only their SNI (HTTPRouteHTTPSListener:
  // a request for it over a connection whose SNI chose another listener is answered 404).
  void add_server_names() {
    for (const auto& [key, names] : server_names_) {
      if (names.any || names.patterns.empty() || key.second.empty()) continue;
      HostPolicy& policy = model_.host_policies.emplace_back();
      policy.scope = key.first;
      policy.host = key.second;
      policy.source = names.source;
      for (const std::string& pattern : names.patterns) policy.records.push_back(policy::server_name(pattern));
    }
  }

  void add_rules(const HTTPRoute& route, const ScopedHosts& scoped_hosts) {
    const auto source = static_cast<std::uint32_t>(model_.sources.size());
    model_.sources.push_back({route.ns, route.name, route.created_unix, kHTTPRouteKind});
    const Source& src = model_.sources.back();
    for (const RouteRule& rule : route.rules) {
      std::string ignored;
      std::vector<PolicyRecord> records = filter_records(rule.filters, ignored);
      for (const auto& more : {timeout_records(rule, ignored), retry_records(rule, ignored)}) {
        records.insert(records.end(), more.begin(), more.end());
      }
      const std::vector<PolicyRecord> mirrors = mirror_records(route, src, rule.filters);
      records.insert(records.end(), mirrors.begin(), mirrors.end());
      const bool redirects = std::any_of(records.begin(), records.end(),
                                         [](const PolicyRecord& r) { return r.kind == PolicyKind::kRedirect; });
      // Each backendRef's share: its backend, or none (its requests get 500, as the spec asks).
      std::uint32_t backend = kNoBackend;
      std::vector<PolicyRecord> shares;
      std::vector<PolicyRecord> own;  // the backendRefs' own filters
      std::size_t usable = 0;
      for (const BackendRef& ref : rule.backends) {
        std::uint32_t b = backend_problem(route, ref) ? kNoBackend : backend_for_(src, ref.ns, ref.name, ref.port);
        if (b != kNoBackend && ref.weight > 0) {
          ++usable;
          if (backend == kNoBackend) backend = b;
        }
        shares.push_back(policy::split(b == kNoBackend ? kNoRecordBackend : b, ref.weight));
        // A backendRef's header filters apply to the requests sent to its backend only (after the split).
        if (b == kNoBackend) continue;
        for (PolicyRecord& record : filter_records(ref.filters, ignored)) {
          record.backend = b;
          own.push_back(std::move(record));
        }
      }
      if (!redirects && usable == 0) {
        // No usable backend: the Gateway API asks for 500 (a rule without backendRefs, or only bad ones).
        PolicyRecord deny = policy::deny("no usable backendRef");
        deny.code = 500;
        records.insert(records.begin(), std::move(deny));
      } else if (!redirects && shares.size() > 1) {
        records.insert(records.end(), shares.begin(), shares.end());
      }
      if (!redirects) records.insert(records.end(), own.begin(), own.end());
      if (backend == kNoBackend) backend = placeholder_backend(src);
      for (const auto& [scope, hosts] : scoped_hosts) {
        auto where = scope_listener_.find(scope);
        const std::vector<PolicyRecord> scoped = redirects && where != scope_listener_.end()
                                                     ? filter_records(rule.filters, ignored, where->second)
                                                     : records;
        for (const std::string& host : hosts) {
          for (const RouteMatch& m : rule.matches) add_rule(scope, host, m, backend, source, scoped);
        }
      }
    }
  }

  // One rule of a route: a match, for one host in one scope.
  void add_rule(ScopeId scope, const std::string& host, const RouteMatch& m, std::uint32_t backend,
                std::uint32_t source, const std::vector<PolicyRecord>& policies) {
    Rule& r = model_.rules.emplace_back();
    r.scope = scope;
    r.host = host;
    r.any_depth = is_wildcard(host);  // the Gateway API's wildcards cover any number of labels
    r.isolated = true;                // a listener serves only its own routes (no falling through)
    r.path = m.path;
    r.type = m.path_type == "Exact" ? PathType::kExact : PathType::kPrefix;
    r.backend = backend;
    r.source = source;
    r.policies = policies;
    if (!m.method.empty()) r.conditions.push_back({ConditionKind::kMethod, "", m.method});
    for (const HeaderMatch& h : m.headers) {
      r.conditions.push_back({h.regex ? ConditionKind::kHeaderRegex : ConditionKind::kHeaderExact, h.name, h.value});
    }
    for (const HeaderMatch& q : m.query) {
      r.conditions.push_back({q.regex ? ConditionKind::kQueryRegex : ConditionKind::kQueryExact, q.name, q.value});
    }
  }

  // A rule that answers by itself (a redirect, a 500) still names a backend: one without endpoints.
  std::uint32_t placeholder_backend(const Source& source) {
    if (placeholder_ == kNoBackend) {
      placeholder_ = static_cast<std::uint32_t>(model_.backends.size());
      Backend& b = model_.backends.emplace_back();
      b.ns = source.ns;
      b.service = "kroute-no-backend";
      b.port = 1;
    }
    return placeholder_;
  }

  void add_tls(const ListenerState& listener, const HTTPRoute& route, const std::vector<std::string>& hosts) {
    if (!listener.https || !listener.certificate) return;
    const std::string key = listener.certificate->ns + "/" + listener.certificate->name;
    auto secret = store_.secrets.find(key);
    if (secret == store_.secrets.end()) return;
    const auto source = static_cast<std::uint32_t>(model_.sources.size() - 1);  // the route's, just added
    for (const std::string& host : intersect_hostnames(listener.spec->hostname, route.hostnames)) {
      if (host.empty()) continue;  // the listener's certificate is its scope's default (add_listener_certificates)
      if (std::find(hosts.begin(), hosts.end(), host) == hosts.end()) continue;
      model_.tls.push_back({listener.scope, host, listener.certificate->ns, listener.certificate->name, source,
                            secret->second.certificate});
    }
  }

  const Store& store_;
  const Options& options_;
  RouteModel& model_;
  const BackendFor& backend_for_;
  std::set<std::string> classes_;
  std::map<std::string, GatewayState> gateways_;
  std::map<std::pair<ScopeId, std::string>, ServerNames> server_names_;
  std::map<ScopeId, const ListenerState*> scope_listener_;  // scopes of one listener port (slots of addresses)
  Statuses statuses_;
  std::uint32_t placeholder_ = kNoBackend;
};

}  // namespace

std::vector<std::string> intersect_hostnames(const std::string& listener, const std::vector<std::string>& route) {
  std::vector<std::string> out;
  const auto add = [&](const std::string& host) {
    if (std::find(out.begin(), out.end(), host) == out.end()) out.push_back(host);
  };
  if (route.empty()) {
    add(listener);
    return out;
  }
  for (const std::string& host : route) {
    if (listener.empty() || host == listener) {
      add(host);
    } else if (is_wildcard(listener) && !is_wildcard(host)) {
      if (wildcard_covers(listener, host)) add(host);
    } else if (!is_wildcard(listener) && is_wildcard(host)) {
      if (wildcard_covers(host, listener)) add(listener);
    } else if (is_wildcard(listener) && is_wildcard(host)) {
      // The narrower wildcard of the two, when one contains the other.
      if (host.ends_with(listener.substr(1))) add(host);
      else if (listener.ends_with(host.substr(1))) add(listener);
    }
  }
  return out;
}

namespace {

// "IP", "IP:PORT", ":PORT" or "[IPv6]:PORT"; a bare IPv6 address has no port.
bool parse_local(std::string_view text, LocalAddress& local, std::string& error) {
  const std::string quoted = "\"" + printable(std::string(text)) + "\": ";
  std::string_view ip = text;
  std::string_view port;
  bool has_port = false;
  if (text.starts_with('[')) {
    const auto close = text.find(']');
    const std::string_view rest = close == std::string_view::npos ? "" : text.substr(close + 1);
    if (close == std::string_view::npos || (!rest.empty() && rest.front() != ':')) {
      error = quoted + "an IPv6 address with a port is [address]:port";
      return false;
    }
    ip = text.substr(1, close - 1);
    has_port = !rest.empty();
    if (has_port) port = rest.substr(1);
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    const auto colon = text.find(':');
    ip = text.substr(0, colon);
    port = text.substr(colon + 1);
    has_port = true;
  }
  if (ip.empty() && !has_port) {
    error = quoted + "an IP address, IP:PORT or :PORT is needed";
    return false;
  }
  unsigned char buffer[16];
  local.address = std::string(ip);
  if (!local.address.empty() && inet_pton(AF_INET, local.address.c_str(), buffer) != 1 &&
      inet_pton(AF_INET6, local.address.c_str(), buffer) != 1) {
    error = quoted + "not an IP address";
    return false;
  }
  local.port = 0;
  if (has_port) {
    unsigned value = 0;
    for (char c : port) value = c >= '0' && c <= '9' && value <= 65535 ? value * 10 + static_cast<unsigned>(c - '0') : 70000;
    if (port.empty() || value == 0 || value > 65535) {
      error = quoted + "the port must be 1 to 65535";
      return false;
    }
    local.port = static_cast<std::uint16_t>(value);
  }
  return true;
}

}  // namespace

bool parse_slot(const std::string& text, Slot& slot, std::string& error) {
  const auto equals = text.find('=');
  slot.address = text.substr(0, equals);
  slot.locals.clear();
  if (slot.address.empty()) {
    error = "--gateway-slot \"" + printable(text) + "\": the address clients use comes first";
    return false;
  }
  std::string_view locals = equals == std::string::npos ? std::string_view(slot.address)
                                                        : std::string_view(text).substr(equals + 1);
  while (true) {
    const auto plus = locals.find('+');
    LocalAddress& local = slot.locals.emplace_back();
    if (!parse_local(locals.substr(0, plus), local, error)) {
      error = "--gateway-slot " + error;
      return false;
    }
    if (plus == std::string_view::npos) break;
    locals.remove_prefix(plus + 1);
  }
  return true;
}

std::vector<std::string> supported_features(const Options& options) {
  // docs/conformance/features.txt claims the same for the conformance run (which listens on 8080 too).
  std::vector<std::string> features = {
      "Gateway", "GatewayAddressEmpty", "GatewayHTTPListenerIsolation", "HTTPRoute",
      "HTTPRoute303RedirectStatusCode", "HTTPRoute307RedirectStatusCode", "HTTPRoute308RedirectStatusCode",
      "GatewayStaticAddresses", "HTTPRouteBackendProtocolWebSocket", "HTTPRouteBackendRequestHeaderModification",
      "HTTPRouteBackendTimeout",
      "HTTPRouteDestinationPortMatching", "HTTPRouteHostRewrite", "HTTPRouteMethodMatching",
      "HTTPRouteNamedRouteRule", "HTTPRouteParentRefPort", "HTTPRoutePathRedirect", "HTTPRoutePathRewrite",
      "HTTPRoutePortRedirect", "HTTPRouteQueryParamMatching", "HTTPRouteRequestMirror",
      "HTTPRouteRequestMultipleMirrors", "HTTPRouteRequestPercentageMirror", "HTTPRouteRequestTimeout",
      "HTTPRouteResponseHeaderModification", "HTTPRouteSchemeRedirect", "ReferenceGrant"};
  if (options.http_ports.count(8080) != 0) features.push_back("GatewayPort8080");
  std::sort(features.begin(), features.end());
  return features;
}

Statuses compile(const Store& store, const Options& options, RouteModel& model, const BackendFor& backend_for) {
  if (options.controller.empty()) return {};
  return Compiler(store, options, model, backend_for).run();
}

}  // namespace kroute::agent::gateway
