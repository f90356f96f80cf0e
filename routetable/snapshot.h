// SnapshotView: a validated snapshot, read in place, and lookup(host, path) over it with Kubernetes
// Ingress v1 semantics. Validation checks every offset once, so lookups can follow them unchecked.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "format.h"

namespace kroute {

class PathPatterns;
struct PathCaptures;

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

  // The route for a request. `host` is what the client sent (any case, maybe with a port); `path` is
  // the request path without the query string. Allocation-free. Hosts with regex paths match only with
  // `patterns` (compiled from this snapshot); `captures` receives what the matching pattern captured.
  RouteMatch lookup(std::string_view host, std::string_view path, const PathPatterns* patterns = nullptr,
                    PathCaptures* captures = nullptr) const noexcept;

  // The exact or wildcard host entry for a TLS server name (no host-less fallback).
  const format::HostEntry* find_host(std::string_view host, HostMatch& how) const noexcept;

  // The certificate for a TLS server name: the exact host's, else its one-label wildcard's, else the
  // default certificate. A host whose Secret gave no usable certificate falls back the same way (to a
  // wildcard certificate that covers it, which clients accept, before the default). Null when there
  // is none at all.
  const format::TlsEntry* certificate_for(std::string_view server_name) const noexcept;
  const format::TlsEntry* default_certificate() const noexcept {
    return header_->default_tls == format::kNone ? nullptr : &tls_[header_->default_tls];
  }

 private:
  std::size_t count(format::Section s) const noexcept { return header_->sections[s].count; }
  // A path probe computed ahead of the host entry (see lookup()): its kind, length and hash.
  struct PathHint {
    format::Match match = format::Match::kPrefix;
    std::size_t length = 0;
    std::uint64_t hash = 0;
    bool valid = false;
  };
  const format::HostEntry* probe_host(format::Section slots, std::string_view name) const noexcept;
  const format::HostEntry* probe_host(format::Section slots, std::string_view name, std::uint64_t hash) const noexcept;
  const format::RuleEntry* probe_rule(std::uint32_t host, format::Match match, std::string_view path,
                                      std::uint64_t hash) const noexcept;
  const format::RuleEntry* match_path(const format::HostEntry& host, std::string_view path,
                                      const PathHint& hint) const noexcept;
  const format::RuleEntry* match_pattern(const format::HostEntry& host, std::string_view path,
                                         const PathPatterns* patterns, PathCaptures* captures) const noexcept;
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
  // The longest Prefix and Exact rule paths of any host: bound the probe computed before the host is known.
  std::uint32_t max_prefix_length_ = 0;
  std::uint32_t max_exact_length_ = 0;
};

const char* path_type_name(format::DeclaredType type) noexcept;
const char* host_match_name(HostMatch match) noexcept;
// "10.0.0.1:8080" or "[fd00::1]:8080".
std::string endpoint_address(const format::EndpointEntry& endpoint);

}  // namespace kroute
