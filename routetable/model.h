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

// The Ingress a rule comes from; the oldest one wins when two rules collide.
struct Source {
  std::string ns;
  std::string name;
  std::int64_t created_unix = 0;
};

struct Rule {
  std::string host;         // "" for host-less rules; "*.example.com" for a one-label wildcard
  std::string path;         // as written in the Ingress; "" means "/"
  PathType type = PathType::kPrefix;
  std::uint32_t backend = 0;  // index into RouteModel::backends
  std::uint32_t source = 0;   // index into RouteModel::sources
  // The path is a regular expression: its whole host then matches by regex (ingress-nginx's use-regex).
  bool regex = false;
  std::vector<PolicyRecord> policies;  // in the order they apply
};

// Records that apply to every request of a host, before its rules (ingress-nginx's server-level
// app-root; the redirect of from-to-www-redirect). Several for one host apply oldest Ingress first.
struct HostPolicy {
  std::string host;
  std::uint32_t source = 0;
  std::vector<PolicyRecord> records;
  // Only when no rule names the host (from-to-www-redirect gives way to a real host of that name).
  bool unless_routed = false;
};

// Another name for a host: it gets every rule of the host (ingress-nginx's server-alias). Ignored when
// a rule names the alias itself, or an older Ingress already claimed it.
struct HostAlias {
  std::string alias;
  std::string host;
  std::uint32_t source = 0;
};

// PEM text of a certificate chain and its private key; both empty for a reference without a usable
// certificate (the Secret is missing or invalid: the host then gets the default certificate).
struct Certificate {
  std::string chain_pem;
  std::string key_pem;
};

struct TlsHost {
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
  std::vector<HostAlias> aliases;
  std::uint32_t default_backend = kNoBackend;
  bool use_forwarded_headers = false;  // format::kUseForwardedHeaders
  Certificate default_certificate;  // served for names no TLS host matches; empty: none
};

}  // namespace kroute
