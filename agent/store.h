// The agent's view of the cluster: minimal projections of Ingress, IngressClass, Service,
// EndpointSlice and TLS Secret, keeping only what the compiler and the status writer need.
#pragma once

#include <json/json.h>

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "gateway/objects.h"
#include "ingress/annotations.h"
#include "kind.h"
#include "kube/watch_event.h"
#include "kube/watcher.h"
#include "metrics.h"
#include "model.h"

namespace kroute::agent {

struct ServiceBackendRef {
  std::string service;
  std::uint32_t port_number = 0;  // one of number and name is set
  std::string port_name;
  bool is_resource = false;       // spec.backend.resource: kroute does not serve those
  bool operator==(const ServiceBackendRef&) const = default;
};

struct IngressPath {
  std::string path;  // as written; when the path is skipped, a printable rendering for the warning
  PathType type = PathType::kPrefix;
  // Why the path is skipped with a warning ("" when it is served): an unknown pathType, a path, host or
  // backend reference that fails the checks of validate.h.
  std::string type_error;
  ServiceBackendRef backend;
  bool operator==(const IngressPath&) const = default;
};

struct IngressRule {
  std::string host;  // as written; printable (see IngressPath::path) when it fails check_rule_host
  std::vector<IngressPath> paths;
  bool operator==(const IngressRule&) const = default;
};

struct IngressTls {
  std::vector<std::string> hosts;
  std::string secret_name;
  bool operator==(const IngressTls&) const = default;
};

struct LoadBalancerAddress {
  std::string ip;
  std::string hostname;
  bool operator==(const LoadBalancerAddress&) const = default;
  auto operator<=>(const LoadBalancerAddress&) const = default;
};

struct Ingress {
  std::string ns;
  std::string name;
  std::string uid;
  std::string resource_version;
  std::int64_t created_unix = 0;
  std::optional<std::string> class_name;        // spec.ingressClassName
  std::optional<std::string> class_annotation;  // kubernetes.io/ingress.class
  std::optional<ServiceBackendRef> default_backend;
  std::vector<IngressRule> rules;
  std::vector<IngressTls> tls;
  IngressAnnotations annotations;               // ingress/annotations.h
  std::vector<LoadBalancerAddress> status;      // status.loadBalancer.ingress
  std::vector<IngressProblem> problems;

  bool operator==(const Ingress&) const = default;
  // Everything that can change the route table (all but status and resourceVersion).
  bool same_routes(const Ingress& other) const;
};

struct IngressClass {
  std::string name;
  std::string controller;
  bool is_default = false;
  bool operator==(const IngressClass&) const = default;
};

struct ServicePort {
  std::string name;
  std::uint32_t port = 0;
  std::string protocol = "TCP";
  bool operator==(const ServicePort&) const = default;
};

struct Service {
  std::string ns;
  std::string name;
  std::string type = "ClusterIP";
  std::string external_name;
  std::string cluster_ip;
  std::vector<ServicePort> ports;
  std::vector<std::string> external_ips;
  std::vector<LoadBalancerAddress> load_balancer;
  bool operator==(const Service&) const = default;
};

struct SlicePort {
  std::string name;
  std::uint32_t port = 0;
  std::string protocol = "TCP";
  bool operator==(const SlicePort&) const = default;
};

struct SliceEndpoint {
  std::vector<std::string> addresses;
  bool ready = true;   // conditions.ready; absent means ready (the API's rule)
  bool serving = true; // conditions.serving; absent means the same as ready
  bool terminating = false;
  bool operator==(const SliceEndpoint&) const = default;
};

struct EndpointSlice {
  std::string ns;
  std::string name;
  std::string service;  // label kubernetes.io/service-name
  std::string address_type;
  std::vector<SlicePort> ports;
  std::vector<SliceEndpoint> endpoints;
  bool operator==(const EndpointSlice&) const = default;
};

// The decoded certificate chain and key when they are usable (a PEM certificate, not expired, and the
// private key that matches it); otherwise only why not. The key material is never logged.
struct TlsSecret {
  std::string ns;
  std::string name;
  Certificate certificate;  // empty when `error` is set
  std::string error;        // empty: `certificate` holds the Secret's tls.crt and tls.key
  // When the certificate had expired as the Secret was read: its notAfter date. Such a certificate is
  // still served, as ingress-nginx does, with a Warning Event and the agent's expired-certificates gauge.
  std::string expired_on;
  // ca.crt, when the Secret has one: PEM certificates an upstream's certificate is checked against
  // (proxy-ssl-secret). Empty with `ca_error` set when it holds no certificate.
  std::string ca_pem;
  std::string ca_error;
  // ca.crl, when the Secret has one: PEM CRLs the client certificates of auth-tls-secret are checked
  // against. Empty with `crl_error` set when it holds no CRL or something else.
  std::string crl_pem;
  std::string crl_error;
  // The `auth` key, decoded, when the Secret has one (auth-secret: htpasswd lines or an auth-map); the
  // annotation that names the Secret checks it. Secret material: never logged.
  std::string auth;
  // The Secret as an auth-map (auth-secret-type: auth-map): "key:value\n" for every key whose value is
  // one line; kept for an Opaque Secret only when some value is a password hash (policy/basic_auth.h).
  // Secret material: never logged.
  std::string auth_map;
  bool operator==(const TlsSecret& other) const;
};

// Projections from JSON. An object without a valid metadata.name or namespace (or a kind-specific fatal
// problem) fails with `error`; smaller problems are kept inside the projection for the compiler to
// report. Strings that can reach the route table pass the checks of validate.h, so none carries a
// control character into nginx's variables, logs or headers.
// `annotation_prefix`: where ingress-nginx's annotations are read (--annotation-prefix), besides kroute.dev.
std::string parse_ingress(const Json::Value& object, Ingress& out,
                          std::string_view annotation_prefix = kDefaultAnnotationPrefix);
std::string parse_ingress_class(const Json::Value& object, IngressClass& out);
std::string parse_service(const Json::Value& object, Service& out);
std::string parse_endpoint_slice(const Json::Value& object, EndpointSlice& out);
std::string parse_tls_secret(const Json::Value& object, TlsSecret& out);

// "namespace/name" (or "name" for cluster-scoped objects) of a JSON object; "" without a name.
std::string object_key(const Json::Value& object);

enum class Change { kNone, kStatus, kRoutes };

class Store : public kube::WatchSink {
 public:
  // `on_change` runs after every change, with what it may affect, the kind and the object's key ("" when
  // a relist replaced every object of the kind).
  using OnChange = std::function<void(Change, Kind, const std::string& key)>;
  Store(Metrics& metrics, OnChange on_change, std::string annotation_prefix = std::string(kDefaultAnnotationPrefix));

  void begin_list(Kind kind) override;
  void listed(Kind kind, const Json::Value& item) override;
  void end_list(Kind kind) override;
  void abort_list(Kind kind) override;
  void event(Kind kind, kube::EventType type, const Json::Value& object) override;

  // Applies one object as a watch event would; returns what changed (for tests and the sink).
  Change apply(Kind kind, kube::EventType type, const Json::Value& object);
  // How many objects are remembered as bad (for tests: the memory this takes stays one entry per object).
  std::size_t bad_objects_remembered() const { return reported_.size(); }
  // Counts the route changes (events and relists) of a kind, so a reader can tell whether a kind changed
  // since it last looked without being told of each change.
  std::uint64_t revision(Kind kind) const { return revisions_[static_cast<std::size_t>(kind)]; }

  // Ordered by key: the compiler walks them in that order (the table's `owned` list is sorted) without
  // sorting thousands of keys again for every change.
  std::map<std::string, Ingress> ingresses;
  std::unordered_map<std::string, IngressClass> classes;
  std::unordered_map<std::string, Service> services;
  std::unordered_map<std::string, EndpointSlice> slices;
  std::unordered_map<std::string, TlsSecret> secrets;         // kubernetes.io/tls
  std::unordered_map<std::string, TlsSecret> opaque_secrets;  // Opaque
  // Gateway API objects (watched with --gateway-controller); ordered, so status and rules come out sorted.
  std::map<std::string, gateway::GatewayClass> gateway_classes;
  std::map<std::string, gateway::Gateway> gateways;
  std::map<std::string, gateway::HTTPRoute> http_routes;
  std::map<std::string, gateway::ReferenceGrant> reference_grants;
  std::map<std::string, gateway::Namespace> namespaces;
  // The Secret "namespace/name" of either type, or null.
  const TlsSecret* secret(const std::string& key) const;

 private:
  void report_bad(Kind kind, const std::string& key, const std::string& error);
  void update_gauge(Kind kind);

  Metrics& metrics_;
  OnChange on_change_;
  std::string annotation_prefix_;
  std::array<std::uint64_t, kKindCount> revisions_{};
  bool staging_ = false;  // this Store collects a LIST in progress for another
  std::unordered_map<int, std::unique_ptr<Store>> pending_;  // a LIST in progress, per kind
  // The error last logged per bad object ("kind key" -> error): an object is logged when its error
  // changes, not on every relist; one entry per object that is bad now, dropped when it is fixed or gone.
  std::map<std::string, std::string> reported_;
  // While this Store collects a LIST: the owner's reported_, so an object bad in the same way before the
  // relist is not logged again. At the end of the LIST this Store's entries of the kind replace the owner's.
  const std::map<std::string, std::string>* reported_before_ = nullptr;
};

}  // namespace kroute::agent
