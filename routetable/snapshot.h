// SnapshotView: a validated snapshot, read in place, and lookup(host, path) over it with Kubernetes
// Ingress v1 semantics. Validation checks every offset once, so lookups can follow them unchecked.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "format.h"
#include "model.h"

namespace kroute {

class PathPatterns;
struct PathCaptures;
struct RequestData;

struct ValidationResult {
  bool ok = false;
  std::string error;  // one line, says what is wrong and where
};

// Which host entry matched a request host.
enum class HostMatch { kNone, kExact, kWildcard, kAny };

struct RouteMatch {
  // The host entry the request's host named (exact, else wildcard), whether or not one of its rules
  // matched: its host-wide policies apply. Null when neither exists.
  const format::HostEntry* server = nullptr;
  const format::HostEntry* host = nullptr;       // null when the default backend (or nothing) matched
  const format::RuleEntry* rule = nullptr;       // null when the default backend (or nothing) matched
  const format::BackendEntry* backend = nullptr; // null: no route at all (404)
  HostMatch host_match = HostMatch::kNone;
  bool default_backend = false;
};

class SnapshotView {
 public:
  SnapshotView() = default;

  // Validates `bytes` (a whole snapshot file) and, when it is sound, returns a view over it in `view`.
  // `verify_checksum` is false only for callers that already trust the bytes (the fuzzer's fixed inputs).
  static ValidationResult open(std::span<const std::byte> bytes, SnapshotView& view, bool verify_checksum = true);

  const format::Header& header() const noexcept { return *header_; }
  std::uint64_t generation() const noexcept { return header_->generation; }

  std::string_view str(format::StrRef ref) const noexcept { return {strings_ + ref.offset, ref.length}; }

  std::span<const format::HostEntry> hosts() const noexcept { return {hosts_, count(format::kHosts)}; }
  std::span<const format::RuleEntry> rules() const noexcept { return {rules_, count(format::kRules)}; }
  std::span<const format::BackendEntry> backends() const noexcept { return {backends_, count(format::kBackends)}; }
  std::span<const format::EndpointEntry> endpoints() const noexcept { return {endpoints_, count(format::kEndpoints)}; }
  std::span<const format::SourceEntry> sources() const noexcept { return {sources_, count(format::kSources)}; }
  std::span<const format::TlsEntry> tls() const noexcept { return {tls_, count(format::kTls)}; }
  std::span<const format::PolicySet> policy_sets() const noexcept { return {policy_sets_, count(format::kPolicySets)}; }
  std::span<const format::PolicyRecord> policy_records() const noexcept {
    return {policy_records_, count(format::kPolicyRecords)};
  }
  std::span<const format::ConditionEntry> conditions() const noexcept {
    return {conditions_, count(format::kConditions)};
  }
  std::span<const format::ScopeEntry> scopes() const noexcept { return {scopes_, count(format::kScopes)}; }
  // A rule's match conditions (empty for a rule without kHasConditions).
  std::span<const format::ConditionEntry> conditions_of(const format::RuleEntry& rule) const noexcept {
    if ((rule.flags & format::kHasConditions) == 0) return {};
    const format::ConditionRange& range = rule_conditions_[&rule - rules_];
    return {conditions_ + range.first, range.count};
  }
  // The records of a rule's or host's `policies` (empty for kNone).
  std::span<const format::PolicyRecord> policies(std::uint32_t set) const noexcept {
    if (set == format::kNone) return {};
    return {policy_records_ + policy_sets_[set].first, policy_sets_[set].count};
  }

  std::span<const format::EndpointEntry> endpoints_of(const format::BackendEntry& b) const noexcept {
    return {endpoints_ + b.first_endpoint, b.endpoint_count};
  }
  std::span<const format::EndpointEntry> ready_endpoints_of(const format::BackendEntry& b) const noexcept {
    return {endpoints_ + b.first_endpoint, b.ready_count};
  }
  const format::SourceEntry& source_of(const format::RuleEntry& rule) const noexcept { return sources_[rule.source]; }
  const format::BackendEntry* default_backend() const noexcept {
    return header_->default_backend == format::kNone ? nullptr : &backends_[header_->default_backend];
  }

  // The scope of a connection that arrived on local address `address` (network byte order: 4 bytes for
  // `family` 4, 16 for 6) and `port`: that of the first scope entry whose address (any, for family 0)
  // and port (any, for 0) match; the shared scope when none does. Family 0, or an unspecified address
  // (a wildcard listen's 0.0.0.0 or ::), is an address not known: only entries for any address match it.
  // An IPv4-mapped IPv6 address is its IPv4 address. Costs one comparison when the table has no scopes.
  ScopeId scope_for(int family, const unsigned char* address, std::uint16_t port) const noexcept {
    if (count(format::kScopes) == 0) return kSharedScope;
    return find_scope(family, address, port);
  }

  // The route for a request. `host` is what the client sent (any case, maybe with a port); `path` is
  // the request path without the query string. Allocation-free. Hosts with regex paths match only with
  // `patterns` (compiled from this snapshot); `captures` receives what the matching pattern captured.
  // A rule with match conditions matches only when they hold for `request` (never without it; regex
  // conditions also need `patterns`); when none of the rules for a (host, match, path) holds, the lookup
  // goes on as if that path had no rule. Only the hosts of `scope` (scope_for()) are tried, its exact
  // host, wildcards and host-less rules; the default backend serves in every scope.
  RouteMatch lookup(std::string_view host, std::string_view path, const PathPatterns* patterns = nullptr,
                    PathCaptures* captures = nullptr, const RequestData* request = nullptr,
                    ScopeId scope = kSharedScope) const noexcept;

  // The exact or wildcard host entry of `scope` for a TLS server name (no host-less fallback).
  const format::HostEntry* find_host(std::string_view host, HostMatch& how, ScopeId scope = kSharedScope) const noexcept;

  // The certificate for a TLS server name in `scope`: the scope's exact host's, else its one-label
  // wildcard's, else the scope's default certificate, else the table's. A host whose Secret gave no
  // usable certificate falls back the same way (to a wildcard certificate that covers it, which clients
  // accept, before the default). Null when there is none at all.
  const format::TlsEntry* certificate_for(std::string_view server_name, ScopeId scope = kSharedScope) const noexcept;
  // The table's default certificate (every scope's last resort), or null.
  const format::TlsEntry* default_certificate() const noexcept {
    return header_->default_tls == format::kNone ? nullptr : &tls_[header_->default_tls];
  }
  // A scope's own default certificate (Scope::default_certificate), or null; null for the shared scope.
  const format::TlsEntry* scope_certificate(ScopeId scope) const noexcept {
    const format::ScopeEntry* entry = scope_entry(scope);
    return entry == nullptr || entry->default_tls == format::kNone ? nullptr : &tls_[entry->default_tls];
  }
  // The first entry of a scope (each of them names its host-less host, certificate and name), or null
  // for the shared scope and scopes the table does not have.
  const format::ScopeEntry* scope_entry(ScopeId scope) const noexcept;
  // A scope's HTTPS listener names (model.h's Scope::listener_names); none for the shared scope.
  std::span<const format::StrRef> listener_names(ScopeId scope) const noexcept;
  // Whether a request over TLS in `scope` was misdirected: its Host (`host`, normalized: lowercase, no
  // port) selects another of the scope's listeners than its connection's SNI `server_name` does, the most
  // specific of each (an equal name, else the longest wildcard that covers it, else the listener without
  // hostname, else none). Never for a scope without listener names or a connection without SNI. The
  // answer is 421: the client should open a connection for that host (RFC 9110, 15.5.20).
  bool misdirected(ScopeId scope, std::string_view server_name, std::string_view host) const noexcept;

 private:
  std::size_t count(format::Section s) const noexcept { return header_->sections[s].count; }
  // The index in `names` of the listener that serves `name` (see misdirected()), or -1.
  int listener_for(std::span<const format::StrRef> names, std::string_view name) const noexcept;
  // A path probe computed ahead of the host entry (see lookup()): its kind, length and hash.
  struct PathHint {
    format::Match match = format::Match::kPrefix;
    std::size_t length = 0;
    std::uint64_t hash = 0;
    bool valid = false;
  };
  ScopeId find_scope(int family, const unsigned char* address, std::uint16_t port) const noexcept;
  // The host entry of the scope's host-less rules, or null.
  const format::HostEntry* any_host(ScopeId scope) const noexcept;
  const format::HostEntry* probe_host(format::Section slots, std::string_view name, ScopeId scope) const noexcept;
  // The most specific wildcard host entry covering `host` that `accept` takes: the one-label wildcard (the
  // suffix after the first label), then, when the table has any-depth wildcards, those after each further
  // label, any-depth entries only.
  template <typename Accept>
  const format::HostEntry* find_wildcard(std::string_view host, ScopeId scope, Accept accept) const noexcept {
    std::size_t dot = host.find('.');
    if (dot == std::string_view::npos || dot == 0) return nullptr;
    if (const format::HostEntry* h = probe_host(format::kWildcardSlots, host.substr(dot + 1), scope);
        h != nullptr && accept(h))
      return h;
    if ((header_->flags & format::kAnyDepthHosts) == 0) return nullptr;
    for (dot = host.find('.', dot + 1); dot != std::string_view::npos; dot = host.find('.', dot + 1)) {
      const format::HostEntry* h = probe_host(format::kWildcardSlots, host.substr(dot + 1), scope);
      if (h != nullptr && (h->flags & format::kAnyDepth) != 0 && accept(h)) return h;
    }
    return nullptr;
  }
  const format::HostEntry* probe_host(format::Section slots, std::string_view name, std::uint64_t hash,
                                      ScopeId scope) const noexcept;
  const format::RuleEntry* probe_rule(std::uint32_t host, format::Match match, std::string_view path,
                                      std::uint64_t hash) const noexcept;
  const format::RuleEntry* match_path(const format::HostEntry& host, std::string_view path, const PathHint& hint,
                                      const PathPatterns* patterns, const RequestData* request) const noexcept;
  // The first rule of the chain starting at `rule` whose conditions hold, or null.
  const format::RuleEntry* first_holding(const format::RuleEntry* rule, const PathPatterns* patterns,
                                         const RequestData* request) const noexcept;
  bool conditions_hold(const format::RuleEntry& rule, const PathPatterns* patterns,
                       const RequestData* request) const noexcept;
  const format::RuleEntry* match_pattern(const format::HostEntry& host, std::string_view path,
                                         const PathPatterns* patterns, PathCaptures* captures,
                                         const RequestData* request) const noexcept;
  PathHint first_probe(std::uint64_t host_hash, std::string_view path) const noexcept;
  bool key_equals(const char (&key)[format::kInlineKey], format::StrRef ref, std::string_view text) const noexcept;

  const format::Header* header_ = nullptr;
  const char* strings_ = nullptr;
  const format::HostEntry* hosts_ = nullptr;
  const std::uint32_t* host_slots_ = nullptr;
  const std::uint32_t* wildcard_slots_ = nullptr;
  const format::RuleEntry* rules_ = nullptr;
  const std::uint32_t* path_slots_ = nullptr;
  const format::BackendEntry* backends_ = nullptr;
  const format::EndpointEntry* endpoints_ = nullptr;
  const format::SourceEntry* sources_ = nullptr;
  const format::TlsEntry* tls_ = nullptr;
  const format::PolicySet* policy_sets_ = nullptr;
  const format::PolicyRecord* policy_records_ = nullptr;
  const format::ConditionEntry* conditions_ = nullptr;
  const format::ConditionRange* rule_conditions_ = nullptr;
  const format::ScopeEntry* scopes_ = nullptr;
  const format::StrRef* listener_names_ = nullptr;
  // The longest Prefix and Exact rule paths of any host: bound the probe computed before the host is known.
  std::uint32_t max_prefix_length_ = 0;
  std::uint32_t max_exact_length_ = 0;
};

const char* path_type_name(format::DeclaredType type) noexcept;
const char* host_match_name(HostMatch match) noexcept;
// "10.0.0.1:8080" or "[fd00::1]:8080".
std::string endpoint_address(const format::EndpointEntry& endpoint);

}  // namespace kroute
