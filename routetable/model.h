// The route model: what the builder turns into a snapshot. The agent's compiler and kroute-table's JSON
// description both produce it; it knows nothing about Kubernetes objects or nginx.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "policy/record.h"

namespace kroute {

enum class PathType { kExact, kPrefix, kImplementationSpecific };

struct Endpoint {
  std::string address;  // IPv4 or IPv6 literal
  std::uint16_t port = 0;
  std::uint16_t weight = 1;
  bool ready = true;
  bool serving = true;
  bool terminating = false;
  bool operator==(const Endpoint&) const = default;
};

// A Service port as an Ingress backend names it, with the endpoints behind it.
struct Backend {
  std::string ns;
  std::string service;
  std::uint32_t port = 0;   // set when the Ingress names the port by number
  std::string port_name;    // set when it names it by name
  std::vector<Endpoint> endpoints;
};

// The object a rule comes from (an Ingress, or a Gateway API route); the oldest one wins when two rules
// collide.
struct Source {
  std::string ns;
  std::string name;
  std::int64_t created_unix = 0;
  std::string kind;  // "" for an Ingress; "HTTPRoute" for a Gateway API route
};

// What else a request must have for a rule to match, besides host and path (Gateway API HTTPRouteMatch:
// method, headers, query parameters). docs/route-table.md, "Match conditions". The kinds are the
// snapshot's own (format.h): kMethod, kHeaderExact, kHeaderRegex, kQueryExact, kQueryRegex.
using format::ConditionKind;

struct MatchCondition {
  ConditionKind kind = ConditionKind::kMethod;
  std::string name;   // header name (compared case-insensitively) or query parameter name (exact); "" for kMethod
  std::string value;  // the method ("GET"), the exact value, or a regular expression (whole-value match)
  bool operator==(const MatchCondition&) const = default;
};

// PEM text of a certificate chain and its private key; both empty for a reference without a usable
// certificate (the Secret is missing or invalid: the host then gets the default certificate).
struct Certificate {
  std::string chain_pem;
  std::string key_pem;
};

// Scopes: host spaces of their own (docs/gateway-api.md, "Isolation"). A request is routed by the rules of
// the scope whose local addresses include the address and port its connection arrived on, and by those
// alone; a connection that arrived elsewhere uses the shared scope 0 (every Ingress, and Gateways without
// an address of their own). Scope s (1, 2, ...) is RouteModel::scopes[s - 1]. The same host may have
// rules in several scopes; they never meet.
using ScopeId = std::uint16_t;
inline constexpr ScopeId kSharedScope = 0;

// Where connections of a scope arrive: nginx's local address and port as the connection has it ("" or 0:
// any). Listening sockets bound to the address itself (`listen 10.0.0.7:80`) give the address without a
// syscall; behind a wildcard listen only the port tells scopes apart.
struct LocalAddress {
  std::string address;    // IPv4 or IPv6 literal; "" for any
  std::uint16_t port = 0;  // 0 for any
  bool operator==(const LocalAddress&) const = default;
};

struct Scope {
  std::string name;  // what it is, for kroute-table dump and logs ("gateway infra/gw-a")
  std::vector<LocalAddress> locals;
  // Served in this scope for server names none of its TLS hosts matches (before the table's default).
  Certificate default_certificate;
  // The hostnames of the HTTPS listeners its connections reach ("" for a listener without hostname, a host
  // name, or "*.example.org" for any number of labels), each once. A TLS request whose Host selects another
  // of them than its SNI does (the most specific that covers each: exact, then the longest wildcard, then
  // "") was misdirected, and gets 421 (SnapshotView::misdirected). Empty: no such check.
  std::vector<std::string> listener_names;
};

struct Rule {
  std::string host;         // "" for host-less rules; "*.example.com" for a one-label wildcard
  std::string path;         // as written in the Ingress; "" means "/"
  PathType type = PathType::kPrefix;
  std::uint32_t backend = 0;  // index into RouteModel::backends
  std::uint32_t source = 0;   // index into RouteModel::sources
  // The path is a regular expression: its whole host then matches by regex (ingress-nginx's use-regex).
  bool regex = false;
  // A wildcard host matches any number of labels (Gateway API hostnames); else exactly one (Ingress). A
  // wildcard host is any-depth when one of its rules asks for it.
  bool any_depth = false;
  // Requests the host names are routed by its rules alone: when none matches, they are not tried against a
  // wildcard or the host-less rules (a Gateway API listener serves only its own routes). A host is isolated
  // when one of its rules asks for it. Ingress hosts fall through.
  bool isolated = false;
  std::vector<PolicyRecord> policies;  // in the order they apply
  // All must hold; empty: none. Rules with the same host, path type and path but other conditions are
  // all kept and tried in precedence order (method first, then more headers, more query parameters).
  std::vector<MatchCondition> conditions;
  ScopeId scope = kSharedScope;
};

// Records that apply to every request of a host, before its rules (ingress-nginx's server-level
// app-root; the redirect of from-to-www-redirect). Several for one host apply oldest Ingress first.
struct HostPolicy {
  std::string host;
  std::uint32_t source = 0;
  std::vector<PolicyRecord> records;
  // Only when no rule names the host (from-to-www-redirect gives way to a real host of that name).
  bool unless_routed = false;
  ScopeId scope = kSharedScope;
};

// Another name for a host: it gets every rule of the host (ingress-nginx's server-alias). Ignored when
// a rule names the alias itself, or an older Ingress already claimed it.
struct HostAlias {
  std::string alias;
  std::string host;
  std::uint32_t source = 0;
};

struct TlsHost {
  ScopeId scope = kSharedScope;
  std::string host;
  std::string secret_ns;
  std::string secret_name;
  std::uint32_t source = 0;
  Certificate certificate;
};

inline constexpr std::uint32_t kNoBackend = 0xffffffffu;

struct RouteModel {
  std::vector<Source> sources;
  std::vector<Backend> backends;
  std::vector<Rule> rules;
  std::vector<TlsHost> tls;
  std::vector<HostPolicy> host_policies;
  std::vector<HostAlias> aliases;  // shared scope only
  std::vector<Scope> scopes;
  std::uint32_t default_backend = kNoBackend;
  bool use_forwarded_headers = false;  // format::kUseForwardedHeaders
  Certificate default_certificate;  // served for names no TLS host matches; empty: none
};

}  // namespace kroute
