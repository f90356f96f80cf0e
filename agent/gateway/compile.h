// Gateway API objects -> the route model (the same rules, backends, policy records and TLS entries Ingresses
// make) and the status the Gateway API asks for: which GatewayClasses are ours, which Gateway listeners
// can be served on nginx's fixed ports, which routes attach to which listeners and with what hostnames, and
// which references resolve. Pure: no I/O; docs/gateway-api.md explains the design and its limits.
#pragma once

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "gateway/objects.h"
#include "model.h"

namespace kroute::agent {
class Store;
}

namespace kroute::agent::gateway {

inline constexpr const char* kDefaultController = "kroute.dev/gateway-controller";

// An address of a Gateway's own (docs/gateway-api.md, "Isolation"): clients reach it at `address` (written
// to the Gateway's status.addresses); nginx sees its connections arrive on `locals` (by default the address
// itself, any port). A Gateway that holds a slot is routed in a scope of its own.
struct Slot {
  std::string address;
  std::vector<LocalAddress> locals;
  bool operator==(const Slot&) const = default;
};

// "ADDRESS" or "ADDRESS=LOCAL[+LOCAL...]", LOCAL being "IP", "IP:PORT", ":PORT" or "[IPv6]:PORT" (the
// --gateway-slot flag). False with `error` set when it is not.
bool parse_slot(const std::string& text, Slot& slot, std::string& error);

struct Options {
  std::string controller;                 // GatewayClass spec.controllerName that is ours; "" disables
  // Written to the status.addresses of Gateways without a slot, which share one scope (all of them, when
  // `slots` is empty).
  std::vector<std::string> addresses;
  // One per Gateway, as long as they last; with slots, a Gateway without one is not served
  // (Programmed=False, AddressNotAssigned).
  std::vector<Slot> slots;
  std::set<std::uint32_t> http_ports{80};    // listener ports nginx serves plain HTTP on
  std::set<std::uint32_t> https_ports{443};  // listener ports nginx serves HTTPS on
};

struct ClassStatus {
  std::string name;
  std::int64_t generation = 0;
  std::vector<Condition> conditions;
  std::vector<std::string> features;
  bool operator==(const ClassStatus&) const = default;
};

struct GatewayStatus {
  std::string ns;
  std::string name;
  std::vector<Condition> conditions;
  std::vector<ListenerStatus> listeners;
  std::vector<std::string> addresses;
  bool operator==(const GatewayStatus&) const = default;
};

struct RouteStatus {
  std::string ns;
  std::string name;
  std::vector<ParentStatus> parents;  // ours only, in the order of spec.parentRefs
  bool operator==(const RouteStatus&) const = default;
};

// What the elected agent writes back.
struct Statuses {
  std::vector<ClassStatus> classes;
  std::vector<GatewayStatus> gateways;
  std::vector<RouteStatus> routes;
  bool operator==(const Statuses&) const = default;
};

// A Service port's backend in the model being built (kNoBackend when the reference cannot be used);
// `source` is the route's, `ns` the Service's namespace.
using BackendFor = std::function<std::uint32_t(const Source& source, const std::string& ns, const std::string& service,
                                               std::uint32_t port)>;

// The Gateway API features kroute claims (sigs.k8s.io/gateway-api/pkg/features names), sorted: written to
// our GatewayClasses' status.supportedFeatures, which the conformance suite reads. A feature is listed only
// when every conformance test of it passes (docs/conformance/).
std::vector<std::string> supported_features(const Options& options);

// Adds the routes of every HTTPRoute attached to a Gateway of ours to `model` and returns the statuses.
Statuses compile(const Store& store, const Options& options, RouteModel& model, const BackendFor& backend_for);

// Listener and route hostnames as the Gateway API intersects them ("" is "any"); what a route attached to
// a listener is served for, or nothing when they do not meet.
std::vector<std::string> intersect_hostnames(const std::string& listener, const std::vector<std::string>& route);

}  // namespace kroute::agent::gateway
