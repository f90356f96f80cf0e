// The store's projections of Gateway API objects (gateway.networking.k8s.io v1): GatewayClass, Gateway,
// HTTPRoute, ReferenceGrant, and the labels of Namespaces (a listener's allowedRoutes selector reads them).
// Plain structs with defaulted ==: what the compiler reads, plus the status the agent last saw, so the
// status writer compares without asking the API server.
#pragma once

#include <json/json.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kroute::agent::gateway {

inline constexpr const char* kGroup = "gateway.networking.k8s.io";

// A status condition (metav1.Condition). lastTransitionTime is kept so that a rewrite of an unchanged
// condition keeps it; == compares everything but it.
struct Condition {
  std::string type;
  std::string status;  // "True", "False", "Unknown"
  std::string reason;
  std::string message;
  std::int64_t observed_generation = 0;
  std::string last_transition;
  bool operator==(const Condition& o) const {
    return type == o.type && status == o.status && reason == o.reason && message == o.message &&
           observed_generation == o.observed_generation;
  }
};
std::vector<Condition> parse_conditions(const Json::Value& list);

struct GroupKind {
  std::string group;
  std::string kind;
  bool operator==(const GroupKind&) const = default;
  auto operator<=>(const GroupKind&) const = default;
};

// A label selector (matchLabels and matchExpressions), as allowedRoutes.namespaces.selector holds it.
struct LabelSelector {
  struct Expression {
    std::string key;
    std::string op;  // In, NotIn, Exists, DoesNotExist
    std::vector<std::string> values;
    bool operator==(const Expression&) const = default;
  };
  std::map<std::string, std::string> match_labels;
  std::vector<Expression> expressions;
  bool valid = true;  // false: an operator this agent does not know (matches nothing)
  bool matches(const std::map<std::string, std::string>& labels) const;
  bool operator==(const LabelSelector&) const = default;
};

struct GatewayClass {
  std::string name;
  std::string controller;  // spec.controllerName
  std::int64_t generation = 0;
  std::int64_t created_unix = 0;
  std::vector<Condition> conditions;             // status, as last seen
  std::vector<std::string> supported_features;  // status.supportedFeatures[].name, as last seen
  bool operator==(const GatewayClass&) const = default;
};

struct SecretObjectRef {
  std::string group;  // "" for core
  std::string kind = "Secret";
  std::string ns;     // already defaulted to the Gateway's namespace
  std::string name;
  bool operator==(const SecretObjectRef&) const = default;
};

struct Listener {
  std::string name;
  std::string hostname;  // "" for any
  std::uint32_t port = 0;
  std::string protocol;  // HTTP, HTTPS, TLS, TCP, UDP, or a domain-prefixed one
  std::string tls_mode = "Terminate";
  std::vector<SecretObjectRef> certificate_refs;
  std::string allowed_from = "Same";  // All, Same, Selector
  LabelSelector selector;
  bool kinds_given = false;          // allowedRoutes.kinds was set (else: the protocol's defaults)
  std::vector<GroupKind> kinds;
  bool operator==(const Listener&) const = default;
};

struct ListenerStatus {
  std::string name;
  std::vector<GroupKind> supported_kinds;
  std::int64_t attached_routes = 0;
  std::vector<Condition> conditions;
  bool operator==(const ListenerStatus&) const = default;
};

// An address a Gateway asks for (spec.addresses).
struct RequestedAddress {
  std::string type = "IPAddress";
  std::string value;
  bool operator==(const RequestedAddress&) const = default;
};

struct Gateway {
  std::string ns;
  std::string name;
  std::int64_t generation = 0;
  std::int64_t created_unix = 0;
  std::string class_name;
  std::vector<Listener> listeners;
  std::vector<RequestedAddress> requested;  // spec.addresses
  // status, as last seen
  std::vector<Condition> conditions;
  std::vector<ListenerStatus> listener_status;
  std::vector<std::string> addresses;  // status.addresses[].value
  bool operator==(const Gateway&) const = default;
  bool same_spec(const Gateway& o) const {
    return ns == o.ns && name == o.name && generation == o.generation && created_unix == o.created_unix &&
           class_name == o.class_name && listeners == o.listeners && requested == o.requested;
  }
};

struct ParentRef {
  std::string group = kGroup;
  std::string kind = "Gateway";
  std::string ns;  // defaulted to the route's namespace
  std::string name;
  std::string section_name;  // "" for none
  std::uint32_t port = 0;    // 0 for none
  bool operator==(const ParentRef&) const = default;
  auto operator<=>(const ParentRef&) const = default;
};

struct HeaderMatch {
  bool regex = false;  // type RegularExpression (else Exact)
  std::string name;
  std::string value;
  bool operator==(const HeaderMatch&) const = default;
};

struct RouteMatch {
  std::string path_type = "PathPrefix";  // Exact, PathPrefix, RegularExpression
  std::string path = "/";
  std::vector<HeaderMatch> headers;
  std::vector<HeaderMatch> query;
  std::string method;  // "" for any
  bool operator==(const RouteMatch&) const = default;
};

struct HeaderChange {
  std::string name;
  std::string value;
  bool operator==(const HeaderChange&) const = default;
};

struct HeaderModifier {
  std::vector<HeaderChange> set;
  std::vector<HeaderChange> add;
  std::vector<std::string> remove;
  bool operator==(const HeaderModifier&) const = default;
};

struct PathModifier {
  std::string type;  // ReplaceFullPath, ReplacePrefixMatch; "" for none
  std::string value;
  bool operator==(const PathModifier&) const = default;
};

// A reference to a Service (or another kind, refused) and its port: a backendRef without weight and
// filters, as RequestMirror names one.
struct ServiceRef {
  std::string group;  // "" for core
  std::string kind = "Service";
  std::string ns;     // defaulted to the route's namespace
  std::string name;
  std::uint32_t port = 0;  // 0: not given
  bool operator==(const ServiceRef&) const = default;
};

// A CORS filter's `cors` (HTTPRouteCORS).
struct Cors {
  std::vector<std::string> origins;  // allowOrigins
  std::vector<std::string> methods;  // allowMethods
  std::vector<std::string> headers;  // allowHeaders
  std::vector<std::string> expose;   // exposeHeaders
  bool credentials = false;          // allowCredentials
  std::int64_t max_age = 5;          // maxAge: the API's default is 5 seconds
  bool operator==(const Cors&) const = default;
};

struct Filter {
  std::string type;  // RequestHeaderModifier, ResponseHeaderModifier, RequestRedirect, URLRewrite, ...
  HeaderModifier headers;  // the two header modifiers
  // RequestRedirect
  std::string scheme;
  std::string hostname;  // also URLRewrite's
  PathModifier path;     // also URLRewrite's
  std::uint32_t port = 0;
  std::uint32_t status_code = 302;
  // RequestMirror: where the copies go, and which part of the requests is copied, in millionths
  // (percent, or fraction numerator / denominator).
  ServiceRef mirror;
  std::uint64_t mirror_millionths = 1000000;
  Cors cors;
  bool operator==(const Filter&) const = default;
};

struct BackendRef : ServiceRef {
  std::uint32_t weight = 1;
  std::vector<Filter> filters;
  bool operator==(const BackendRef&) const = default;
};

// A rule's `retry` stanza (HTTPRouteRetry).
struct Retry {
  bool given = false;               // the rule has one (even empty: then connection errors are retried)
  std::vector<std::int64_t> codes;  // status codes, as written (the API allows 400-599)
  std::int64_t attempts = 0;        // retries at most; 0 when not given (the API's minimum is 1)
  std::string backoff;              // as written (a Gateway API duration); "" when not given
  bool operator==(const Retry&) const = default;
};

struct RouteRule {
  std::vector<RouteMatch> matches;  // never empty: the API's default is one PathPrefix "/"
  std::vector<Filter> filters;
  std::vector<BackendRef> backends;
  std::string request_timeout;  // timeouts.request as written (a Gateway API duration); "" when not given
  std::string backend_timeout;  // timeouts.backendRequest, likewise
  Retry retry;
  bool operator==(const RouteRule&) const = default;
};

// A parent's entry in status.parents, as last seen.
struct ParentStatus {
  ParentRef ref;
  std::string controller;
  std::vector<Condition> conditions;
  bool operator==(const ParentStatus&) const = default;
};

struct HTTPRoute {
  std::string ns;
  std::string name;
  std::int64_t generation = 0;
  std::int64_t created_unix = 0;
  std::vector<ParentRef> parents;
  std::vector<std::string> hostnames;
  std::vector<RouteRule> rules;
  std::vector<ParentStatus> status;
  std::string resource_version;  // a status write carries it: other controllers' entries are never lost
  bool operator==(const HTTPRoute&) const = default;
  bool same_spec(const HTTPRoute& o) const {
    return ns == o.ns && name == o.name && generation == o.generation && created_unix == o.created_unix &&
           parents == o.parents && hostnames == o.hostnames && rules == o.rules;
  }
};

struct ReferenceGrant {
  struct From {
    std::string group;
    std::string kind;
    std::string ns;
    bool operator==(const From&) const = default;
  };
  struct To {
    std::string group;
    std::string kind;
    std::string name;  // "" for every object of the kind
    bool operator==(const To&) const = default;
  };
  std::string ns;
  std::string name;
  std::vector<From> from;
  std::vector<To> to;
  bool operator==(const ReferenceGrant&) const = default;
};

struct Namespace {
  std::string name;
  std::map<std::string, std::string> labels;
  bool operator==(const Namespace&) const = default;
};

// Projections from JSON; "" or why the object cannot be used at all. What the API server's schema already
// refuses is not checked again beyond what keeps the agent safe; values that reach the route table are
// checked where they are compiled, so one bad rule is reported on its route and the others still work.
std::string parse_gateway_class(const Json::Value& object, GatewayClass& out);
std::string parse_gateway(const Json::Value& object, Gateway& out);
std::string parse_http_route(const Json::Value& object, HTTPRoute& out);
std::string parse_reference_grant(const Json::Value& object, ReferenceGrant& out);
std::string parse_namespace(const Json::Value& object, Namespace& out);

// A Gateway API duration (GEP-2257: one to four of <1-5 digits><h|m|s|ms>, as "1h30m" or "500ms") in
// milliseconds; nullopt when `text` is not one.
std::optional<std::uint64_t> duration_ms(const std::string& text);

}  // namespace kroute::agent::gateway
