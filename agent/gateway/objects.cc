#include "gateway/objects.h"

#include <algorithm>

#include "json_read.h"
#include "object_meta.h"
#include "validate.h"

namespace kroute::agent::gateway {
namespace {

std::int64_t generation_of(const Json::Value& object) {
  return integer(at(object, "metadata", "generation"), 0, INT64_MAX, 0);
}

// metadata and the name checks every kind shares; `cluster_scoped` objects have no namespace.
std::string read_names(const Json::Value& object, std::string& ns, std::string& name, bool cluster_scoped) {
  if (std::string error = common_metadata(object, ns, name); !error.empty()) return error;
  if (!cluster_scoped && ns.empty()) return "no metadata.namespace";
  return check_object_names(ns, name, check_dns_subdomain);
}

std::vector<GroupKind> parse_kinds(const Json::Value& list) {
  std::vector<GroupKind> kinds;
  for (const Json::Value& k : elements(list)) {
    GroupKind gk{at(k, "group").isString() ? str(at(k, "group")) : std::string(kGroup), str(at(k, "kind"))};
    kinds.push_back(std::move(gk));
  }
  return kinds;
}

LabelSelector parse_selector(const Json::Value& v) {
  LabelSelector selector;
  const Json::Value& labels = at(v, "matchLabels");
  if (labels.isObject()) {
    for (const std::string& key : labels.getMemberNames()) selector.match_labels[key] = str(labels[key]);
  }
  for (const Json::Value& e : elements(at(v, "matchExpressions"))) {
    LabelSelector::Expression expression{str(at(e, "key")), str(at(e, "operator")), {}};
    for (const Json::Value& value : elements(at(e, "values"))) expression.values.push_back(str(value));
    if (expression.op != "In" && expression.op != "NotIn" && expression.op != "Exists" &&
        expression.op != "DoesNotExist") {
      selector.valid = false;
    }
    selector.expressions.push_back(std::move(expression));
  }
  return selector;
}

ParentRef parse_parent_ref(const Json::Value& p, const std::string& route_ns) {
  ParentRef ref;
  if (at(p, "group").isString()) ref.group = str(at(p, "group"));
  if (at(p, "kind").isString()) ref.kind = str(at(p, "kind"));
  ref.ns = at(p, "namespace").isString() ? str(at(p, "namespace")) : route_ns;
  ref.name = str(at(p, "name"));
  ref.section_name = str(at(p, "sectionName"));
  ref.port = port_number(at(p, "port"));
  return ref;
}

HeaderModifier parse_header_modifier(const Json::Value& v) {
  HeaderModifier m;
  for (const Json::Value& h : elements(at(v, "set"))) m.set.push_back({str(at(h, "name")), str(at(h, "value"))});
  for (const Json::Value& h : elements(at(v, "add"))) m.add.push_back({str(at(h, "name")), str(at(h, "value"))});
  for (const Json::Value& h : elements(at(v, "remove"))) m.remove.push_back(str(h));
  return m;
}

PathModifier parse_path_modifier(const Json::Value& v) {
  PathModifier m;
  m.type = str(at(v, "type"));
  m.value = m.type == "ReplaceFullPath" ? str(at(v, "replaceFullPath")) : str(at(v, "replacePrefixMatch"));
  return m;
}

ServiceRef parse_service_ref(const Json::Value& b, const std::string& route_ns);

Filter parse_filter(const Json::Value& f, const std::string& route_ns) {
  Filter filter;
  filter.type = str(at(f, "type"));
  if (filter.type == "RequestHeaderModifier") filter.headers = parse_header_modifier(at(f, "requestHeaderModifier"));
  if (filter.type == "ResponseHeaderModifier") filter.headers = parse_header_modifier(at(f, "responseHeaderModifier"));
  if (filter.type == "RequestRedirect") {
    const Json::Value& r = at(f, "requestRedirect");
    filter.scheme = str(at(r, "scheme"));
    filter.hostname = str(at(r, "hostname"));
    filter.path = parse_path_modifier(at(r, "path"));
    filter.port = port_number(at(r, "port"));
    filter.status_code = static_cast<std::uint32_t>(integer(at(r, "statusCode"), 100, 599, 302));
  }
  if (filter.type == "URLRewrite") {
    const Json::Value& r = at(f, "urlRewrite");
    filter.hostname = str(at(r, "hostname"));
    filter.path = parse_path_modifier(at(r, "path"));
  }
  if (filter.type == "CORS") {
    const Json::Value& c = at(f, "cors");
    for (const Json::Value& o : elements(at(c, "allowOrigins"))) filter.cors.origins.push_back(str(o));
    for (const Json::Value& m : elements(at(c, "allowMethods"))) filter.cors.methods.push_back(str(m));
    for (const Json::Value& h : elements(at(c, "allowHeaders"))) filter.cors.headers.push_back(str(h));
    for (const Json::Value& h : elements(at(c, "exposeHeaders"))) filter.cors.expose.push_back(str(h));
    filter.cors.credentials = at(c, "allowCredentials").isBool() && at(c, "allowCredentials").asBool();
    filter.cors.max_age = integer(at(c, "maxAge"), 0, INT32_MAX, 5);
  }
  if (filter.type == "RequestMirror") {
    const Json::Value& m = at(f, "requestMirror");
    filter.mirror = parse_service_ref(at(m, "backendRef"), route_ns);
    if (at(m, "percent").isIntegral()) {
      filter.mirror_millionths = static_cast<std::uint64_t>(integer(at(m, "percent"), 0, 100, 100)) * 10000;
    } else if (at(m, "fraction").isObject()) {
      const std::int64_t numerator = integer(at(m, "fraction", "numerator"), 0, INT32_MAX, 0);
      const std::int64_t denominator = integer(at(m, "fraction", "denominator"), 1, INT32_MAX, 100);
      filter.mirror_millionths =
          static_cast<std::uint64_t>(std::min(numerator, denominator)) * 1000000 / static_cast<std::uint64_t>(denominator);
    }
  }
  return filter;
}

RouteMatch parse_match(const Json::Value& m) {
  RouteMatch match;
  if (at(m, "path").isObject()) {
    if (at(m, "path", "type").isString()) match.path_type = str(at(m, "path", "type"));
    if (at(m, "path", "value").isString()) match.path = str(at(m, "path", "value"));
  }
  for (const Json::Value& h : elements(at(m, "headers"))) {
    match.headers.push_back({str(at(h, "type")) == "RegularExpression", str(at(h, "name")), str(at(h, "value"))});
  }
  for (const Json::Value& q : elements(at(m, "queryParams"))) {
    match.query.push_back({str(at(q, "type")) == "RegularExpression", str(at(q, "name")), str(at(q, "value"))});
  }
  match.method = str(at(m, "method"));
  return match;
}

ServiceRef parse_service_ref(const Json::Value& b, const std::string& route_ns) {
  ServiceRef ref;
  ref.group = str(at(b, "group"));
  if (at(b, "kind").isString()) ref.kind = str(at(b, "kind"));
  ref.ns = at(b, "namespace").isString() ? str(at(b, "namespace")) : route_ns;
  ref.name = str(at(b, "name"));
  ref.port = port_number(at(b, "port"));
  return ref;
}

BackendRef parse_backend_ref(const Json::Value& b, const std::string& route_ns) {
  BackendRef ref;
  static_cast<ServiceRef&>(ref) = parse_service_ref(b, route_ns);
  ref.weight = static_cast<std::uint32_t>(integer(at(b, "weight"), 0, 1000000, 1));
  for (const Json::Value& f : elements(at(b, "filters"))) ref.filters.push_back(parse_filter(f, route_ns));
  return ref;
}

}  // namespace

std::vector<Condition> parse_conditions(const Json::Value& list) {
  std::vector<Condition> out;
  for (const Json::Value& c : elements(list)) {
    out.push_back({str(at(c, "type")), str(at(c, "status")), str(at(c, "reason")), str(at(c, "message")),
                   integer(at(c, "observedGeneration"), 0, INT64_MAX, 0), str(at(c, "lastTransitionTime"))});
  }
  return out;
}

bool LabelSelector::matches(const std::map<std::string, std::string>& labels) const {
  if (!valid) return false;
  for (const auto& [key, value] : match_labels) {
    auto it = labels.find(key);
    if (it == labels.end() || it->second != value) return false;
  }
  for (const Expression& e : expressions) {
    auto it = labels.find(e.key);
    const bool has = it != labels.end();
    const bool listed = has && std::find(e.values.begin(), e.values.end(), it->second) != e.values.end();
    if (e.op == "In" && !listed) return false;
    if (e.op == "NotIn" && listed) return false;
    if (e.op == "Exists" && !has) return false;
    if (e.op == "DoesNotExist" && has) return false;
  }
  return true;
}

std::string parse_gateway_class(const Json::Value& object, GatewayClass& out) {
  std::string ns;
  if (std::string error = read_names(object, ns, out.name, true); !error.empty()) return error;
  out.controller = str(at(object, "spec", "controllerName"));
  out.generation = generation_of(object);
  out.created_unix = creation_unix(object);
  out.conditions = parse_conditions(at(object, "status", "conditions"));
  for (const Json::Value& f : elements(at(object, "status", "supportedFeatures"))) {
    out.supported_features.push_back(str(at(f, "name")));
  }
  return {};
}

std::string parse_gateway(const Json::Value& object, Gateway& out) {
  if (std::string error = read_names(object, out.ns, out.name, false); !error.empty()) return error;
  out.generation = generation_of(object);
  out.created_unix = creation_unix(object);
  const Json::Value& spec = at(object, "spec");
  out.class_name = str(at(spec, "gatewayClassName"));
  for (const Json::Value& a : elements(at(spec, "addresses"))) {
    RequestedAddress address;
    if (at(a, "type").isString()) address.type = str(at(a, "type"));
    address.value = str(at(a, "value"));
    out.requested.push_back(std::move(address));
  }
  for (const Json::Value& l : elements(at(spec, "listeners"))) {
    Listener listener;
    listener.name = str(at(l, "name"));
    listener.hostname = str(at(l, "hostname"));
    listener.port = port_number(at(l, "port"));
    listener.protocol = str(at(l, "protocol"));
    if (at(l, "tls", "mode").isString()) listener.tls_mode = str(at(l, "tls", "mode"));
    for (const Json::Value& c : elements(at(l, "tls", "certificateRefs"))) {
      SecretObjectRef ref;
      ref.group = str(at(c, "group"));
      if (at(c, "kind").isString()) ref.kind = str(at(c, "kind"));
      ref.ns = at(c, "namespace").isString() ? str(at(c, "namespace")) : out.ns;
      ref.name = str(at(c, "name"));
      listener.certificate_refs.push_back(std::move(ref));
    }
    const Json::Value& allowed = at(l, "allowedRoutes");
    if (at(allowed, "namespaces", "from").isString()) listener.allowed_from = str(at(allowed, "namespaces", "from"));
    listener.selector = parse_selector(at(allowed, "namespaces", "selector"));
    listener.kinds_given = at(allowed, "kinds").isArray();
    listener.kinds = parse_kinds(at(allowed, "kinds"));
    out.listeners.push_back(std::move(listener));
  }
  const Json::Value& status = at(object, "status");
  out.conditions = parse_conditions(at(status, "conditions"));
  for (const Json::Value& a : elements(at(status, "addresses"))) out.addresses.push_back(str(at(a, "value")));
  for (const Json::Value& l : elements(at(status, "listeners"))) {
    ListenerStatus listener;
    listener.name = str(at(l, "name"));
    listener.supported_kinds = parse_kinds(at(l, "supportedKinds"));
    listener.attached_routes = integer(at(l, "attachedRoutes"), 0, INT64_MAX, 0);
    listener.conditions = parse_conditions(at(l, "conditions"));
    out.listener_status.push_back(std::move(listener));
  }
  return {};
}

std::string parse_http_route(const Json::Value& object, HTTPRoute& out) {
  if (std::string error = read_names(object, out.ns, out.name, false); !error.empty()) return error;
  out.generation = generation_of(object);
  out.created_unix = creation_unix(object);
  const Json::Value& spec = at(object, "spec");
  for (const Json::Value& p : elements(at(spec, "parentRefs"))) out.parents.push_back(parse_parent_ref(p, out.ns));
  for (const Json::Value& h : elements(at(spec, "hostnames"))) out.hostnames.push_back(str(h));
  const Json::Value& rules = at(spec, "rules");
  for (const Json::Value& r : elements(rules)) {
    RouteRule rule;
    for (const Json::Value& m : elements(at(r, "matches"))) rule.matches.push_back(parse_match(m));
    if (rule.matches.empty()) rule.matches.emplace_back();
    for (const Json::Value& f : elements(at(r, "filters"))) rule.filters.push_back(parse_filter(f, out.ns));
    for (const Json::Value& b : elements(at(r, "backendRefs"))) rule.backends.push_back(parse_backend_ref(b, out.ns));
    rule.request_timeout = str(at(r, "timeouts", "request"));
    rule.backend_timeout = str(at(r, "timeouts", "backendRequest"));
    if (const Json::Value& retry = at(r, "retry"); retry.isObject()) {
      rule.retry.given = true;
      for (const Json::Value& c : elements(at(retry, "codes"))) rule.retry.codes.push_back(integer(c, 0, 999, 0));
      rule.retry.attempts = integer(at(retry, "attempts"), 0, INT32_MAX, 0);
      rule.retry.backoff = str(at(retry, "backoff"));
    }
    out.rules.push_back(std::move(rule));
  }
  // The API's default: a route without rules has one that matches every path and has no backend.
  if (!rules.isArray()) out.rules.emplace_back().matches.emplace_back();
  out.resource_version = str(at(object, "metadata", "resourceVersion"));
  for (const Json::Value& p : elements(at(object, "status", "parents"))) {
    ParentStatus parent;
    parent.ref = parse_parent_ref(at(p, "parentRef"), out.ns);
    parent.controller = str(at(p, "controllerName"));
    parent.conditions = parse_conditions(at(p, "conditions"));
    out.status.push_back(std::move(parent));
  }
  return {};
}

std::string parse_reference_grant(const Json::Value& object, ReferenceGrant& out) {
  if (std::string error = read_names(object, out.ns, out.name, false); !error.empty()) return error;
  const Json::Value& spec = at(object, "spec");
  for (const Json::Value& f : elements(at(spec, "from"))) {
    out.from.push_back({str(at(f, "group")), str(at(f, "kind")), str(at(f, "namespace"))});
  }
  for (const Json::Value& t : elements(at(spec, "to"))) {
    out.to.push_back({str(at(t, "group")), str(at(t, "kind")), str(at(t, "name"))});
  }
  return {};
}

std::string parse_namespace(const Json::Value& object, Namespace& out) {
  std::string ns;
  if (std::string error = common_metadata(object, ns, out.name); !error.empty()) return error;
  const Json::Value& labels = at(object, "metadata", "labels");
  if (labels.isObject()) {
    for (const std::string& key : labels.getMemberNames()) out.labels[key] = str(labels[key]);
  }
  // The well-known label the selectors of allowedRoutes may rely on, set by the API server since 1.22.
  out.labels.emplace("kubernetes.io/metadata.name", out.name);
  return {};
}

std::optional<std::uint64_t> duration_ms(const std::string& text) {
  std::uint64_t total = 0;
  std::size_t i = 0;
  int parts = 0;
  while (i < text.size()) {
    std::size_t digits = 0;
    std::uint64_t number = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      number = number * 10 + static_cast<std::uint64_t>(text[i++] - '0');
      ++digits;
    }
    if (digits == 0 || digits > 5 || i == text.size() || ++parts > 4) return std::nullopt;
    std::uint64_t unit = 0;
    if (text.compare(i, 2, "ms") == 0) {
      unit = 1;
      i += 2;
    } else if (text[i] == 'h' || text[i] == 'm' || text[i] == 's') {
      unit = text[i] == 'h' ? 3600000 : text[i] == 'm' ? 60000 : 1000;
      ++i;
    } else {
      return std::nullopt;
    }
    total += number * unit;
  }
  if (parts == 0) return std::nullopt;
  return total;
}

}  // namespace kroute::agent::gateway
