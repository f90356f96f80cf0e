#include "snapshot.h"

#include <arpa/inet.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <string>

#include "conditions.h"
#include "hashing.h"
#include "host.h"
#include "path_patterns.h"
#include "policy/error_pages.h"
#include "policy/kinds.h"
#include "policy/proxy_setting.h"
#include "policy/mirror.h"
#include "policy/protocol.h"
#include "policy/header_modifier.h"
#include "policy/headers.h"
#include "policy/redirect.h"
#include "policy/server_name.h"
#include "policy/split.h"

namespace kroute {

namespace {

using format::kNone;

constexpr const char* kSectionNames[format::kSectionCount] = {
    "strings", "hosts", "host slots", "wildcard slots", "rules", "path slots", "backends", "endpoints",
    "sources", "tls", "policy sets", "policy records", "conditions", "rule conditions", "scopes", "listener names"};

constexpr std::size_t kElementSize[format::kSectionCount] = {
    1,
    sizeof(format::HostEntry),
    sizeof(std::uint32_t),
    sizeof(std::uint32_t),
    sizeof(format::RuleEntry),
    sizeof(std::uint32_t),
    sizeof(format::BackendEntry),
    sizeof(format::EndpointEntry),
    sizeof(format::SourceEntry),
    sizeof(format::TlsEntry),
    sizeof(format::PolicySet),
    sizeof(format::PolicyRecord),
    sizeof(format::ConditionEntry),
    sizeof(format::ConditionRange),
    sizeof(format::ScopeEntry),
    sizeof(format::StrRef)};

ValidationResult fail(std::string message) { return {false, std::move(message)}; }

// Collects the first problem found; later checks are skipped once one fails.
class Checker {
 public:
  explicit Checker(std::uint64_t string_bytes) : string_bytes_(string_bytes) {}

  bool ok() const { return error_.empty(); }
  ValidationResult result() const { return ok() ? ValidationResult{true, {}} : fail(error_); }

  void require(bool condition, const char* what, std::uint64_t index, const char* problem) {
    if (!condition && ok()) error_ = std::string(what) + "[" + std::to_string(index) + "]: " + problem;
  }
  void string(format::StrRef ref, const char* what, std::uint64_t index) {
    require(static_cast<std::uint64_t>(ref.offset) + ref.length <= string_bytes_, what, index,
            "string outside the string pool");
  }
  // An entry's inline key must be the start of its string (checked after string(ref) passed).
  void key(const char (&key)[format::kInlineKey], format::StrRef ref, const char* strings, const char* what,
           std::uint64_t index) {
    if (!ok()) return;
    require(std::memcmp(key, strings + ref.offset, std::min<std::size_t>(ref.length, format::kInlineKey)) == 0,
            what, index, "inline key differs from its string");
  }
  void index(std::uint32_t value, std::uint64_t limit, const char* what, std::uint64_t i, const char* problem) {
    require(value < limit, what, i, problem);
  }
  void optional_index(std::uint32_t value, std::uint64_t limit, const char* what, std::uint64_t i,
                      const char* problem) {
    require(value == kNone || value < limit, what, i, problem);
  }
  void range(std::uint32_t first, std::uint32_t count, std::uint64_t limit, const char* what, std::uint64_t i,
             const char* problem) {
    require(static_cast<std::uint64_t>(first) + count <= limit, what, i, problem);
  }
  // A slot table over `entries` keys whose values index an array of `limit` elements: power-of-two
  // capacity (or none for no keys), values in range, at least one empty slot so every probe ends.
  void slots(const std::uint32_t* slots, std::uint64_t capacity, std::uint64_t entries, std::uint64_t limit,
             const char* what) {
    if (capacity == 0) {
      require(entries == 0, what, 0, "no table for a non-empty section");
      return;
    }
    require(capacity >= entries, what, 0, "table smaller than its entries");
    require(std::has_single_bit(capacity), what, 0, "capacity is not a power of two");
    std::uint64_t empty = 0;
    for (std::uint64_t i = 0; i < capacity && ok(); ++i) {
      if (slots[i] == 0) {
        ++empty;
      } else {
        require(slots[i] <= limit, what, i, "slot points past the end of its entries");
      }
    }
    require(empty > 0, what, 0, "table has no empty slot");
  }

 private:
  std::uint64_t string_bytes_;
  std::string error_;
};

}  // namespace

ValidationResult SnapshotView::open(std::span<const std::byte> bytes, SnapshotView& view, bool verify_checksum) {
  if (bytes.size() < sizeof(format::Header))
    return fail("snapshot is truncated: " + std::to_string(bytes.size()) + " bytes, header needs " +
                std::to_string(sizeof(format::Header)));
  if (reinterpret_cast<std::uintptr_t>(bytes.data()) % format::kAlign != 0)
    return fail("snapshot is not 8-byte aligned in memory");
  const auto* header = reinterpret_cast<const format::Header*>(bytes.data());
  if (header->magic != format::kMagic) return fail("not a kroute snapshot (bad magic)");
  if (header->version != format::kVersion)
    return fail("snapshot format version " + std::to_string(header->version) + ", this build reads version " +
                std::to_string(format::kVersion));
  if (header->header_size != sizeof(format::Header)) return fail("snapshot header size is wrong");
  if (header->total_size != bytes.size())
    return fail("snapshot size mismatch: header says " + std::to_string(header->total_size) + " bytes, file has " +
                std::to_string(bytes.size()));
  if (header->total_size > format::kMaxSnapshotBytes) return fail("snapshot is larger than 1 GiB");
  if (verify_checksum &&
      payload_checksum(bytes.data() + header->header_size, bytes.size() - header->header_size) != header->checksum)
    return fail("snapshot checksum mismatch (corrupt or partly written)");

  // Every section inside the payload, aligned, without overflow.
  for (std::size_t s = 0; s < format::kSectionCount; ++s) {
    const format::SectionRef& ref = header->sections[s];
    const std::uint64_t limit = bytes.size();
    if (ref.offset < header->header_size || ref.offset > limit || ref.offset % format::kAlign != 0 ||
        ref.count > (limit - ref.offset) / kElementSize[s])
      return fail(std::string("snapshot section '") + kSectionNames[s] + "' lies outside the file");
  }

  SnapshotView v;
  const std::byte* base = bytes.data();
  auto at = [&](format::Section s) { return base + header->sections[s].offset; };
  v.header_ = header;
  v.strings_ = reinterpret_cast<const char*>(at(format::kStrings));
  v.hosts_ = reinterpret_cast<const format::HostEntry*>(at(format::kHosts));
  v.host_slots_ = reinterpret_cast<const std::uint32_t*>(at(format::kHostSlots));
  v.wildcard_slots_ = reinterpret_cast<const std::uint32_t*>(at(format::kWildcardSlots));
  v.rules_ = reinterpret_cast<const format::RuleEntry*>(at(format::kRules));
  v.path_slots_ = reinterpret_cast<const std::uint32_t*>(at(format::kPathSlots));
  v.backends_ = reinterpret_cast<const format::BackendEntry*>(at(format::kBackends));
  v.endpoints_ = reinterpret_cast<const format::EndpointEntry*>(at(format::kEndpoints));
  v.sources_ = reinterpret_cast<const format::SourceEntry*>(at(format::kSources));
  v.tls_ = reinterpret_cast<const format::TlsEntry*>(at(format::kTls));
  v.policy_sets_ = reinterpret_cast<const format::PolicySet*>(at(format::kPolicySets));
  v.policy_records_ = reinterpret_cast<const format::PolicyRecord*>(at(format::kPolicyRecords));
  v.conditions_ = reinterpret_cast<const format::ConditionEntry*>(at(format::kConditions));
  v.rule_conditions_ = reinterpret_cast<const format::ConditionRange*>(at(format::kRuleConditions));
  v.scopes_ = reinterpret_cast<const format::ScopeEntry*>(at(format::kScopes));
  v.listener_names_ = reinterpret_cast<const format::StrRef*>(at(format::kListenerNames));

  const std::uint64_t n_hosts = v.count(format::kHosts);
  const std::uint64_t n_rules = v.count(format::kRules);
  const std::uint64_t n_backends = v.count(format::kBackends);
  const std::uint64_t n_endpoints = v.count(format::kEndpoints);
  const std::uint64_t n_sources = v.count(format::kSources);
  const std::uint64_t n_tls = v.count(format::kTls);
  const std::uint64_t n_sets = v.count(format::kPolicySets);
  const std::uint64_t n_records = v.count(format::kPolicyRecords);
  const std::uint64_t n_conditions = v.count(format::kConditions);
  const std::uint64_t n_rule_conditions = v.count(format::kRuleConditions);
  const std::uint64_t n_scopes = v.count(format::kScopes);
  const std::uint64_t n_listener_names = v.count(format::kListenerNames);
  // Sizes are bounded by the file size, and every index field is 32 bits; larger counts cannot be valid.
  for (std::size_t s = 1; s < format::kSectionCount; ++s) {
    if (header->sections[s].count >= kNone)
      return fail(std::string("snapshot section '") + kSectionNames[s] + "' has too many entries");
  }

  Checker check(v.count(format::kStrings));
  check.optional_index(header->default_backend, n_backends, "header", 0, "default backend out of range");
  check.require((header->flags & ~(format::kUseForwardedHeaders | format::kAnyDepthHosts)) == 0, "header", 0,
                "unknown flags");
  check.optional_index(header->default_tls, n_tls, "header", 0, "default certificate out of range");
  check.optional_index(header->any_host, n_hosts, "header", 0, "host-less host out of range");
  if (header->any_host != kNone && header->any_host < n_hosts)
    check.require(v.hosts_[header->any_host].kind == format::HostKind::kAny &&
                      v.hosts_[header->any_host].scope == kSharedScope,
                  "header", 0, "host-less host is not of the host-less kind in the shared scope");

  // Scope entries come by scope (lookup finds a scope's first entry by binary search), and the entries of
  // one scope agree on what lookup reads from the first. A host-less host of a scope is of that scope.
  for (std::uint64_t i = 0; i < n_scopes && check.ok(); ++i) {
    const format::ScopeEntry& e = v.scopes_[i];
    check.require(e.family == 0 || e.family == 4 || e.family == 6, "scopes", i, "unknown address family");
    const std::size_t used = e.family == 6 ? 16 : e.family == 4 ? 4 : 0;
    check.require(std::all_of(e.address + used, e.address + sizeof e.address, [](std::uint8_t b) { return b == 0; }),
                  "scopes", i, "address bytes beyond its family");
    check.require(e.reserved == 0 && e.reserved2 == 0, "scopes", i, "reserved fields are not zero");
    check.require(e.scope != kSharedScope, "scopes", i, "an entry for the shared scope");
    check.string(e.name, "scopes", i);
    check.optional_index(e.any_host, n_hosts, "scopes", i, "host-less host out of range");
    check.optional_index(e.default_tls, n_tls, "scopes", i, "default certificate out of range");
    check.range(e.first_listener_name, e.listener_name_count, n_listener_names, "scopes", i,
                "listener names out of range");
    if (!check.ok()) break;
    for (std::uint32_t n = 0; n < e.listener_name_count; ++n) {
      check.string(v.listener_names_[e.first_listener_name + n], "listener names", e.first_listener_name + n);
    }
    if (e.any_host != kNone)
      check.require(v.hosts_[e.any_host].kind == format::HostKind::kAny && v.hosts_[e.any_host].scope == e.scope,
                    "scopes", i, "host-less host is not of the host-less kind in this scope");
    if (i > 0) {
      const format::ScopeEntry& previous = v.scopes_[i - 1];
      check.require(previous.scope <= e.scope, "scopes", i, "entries out of scope order");
      if (previous.scope == e.scope)
        check.require(previous.any_host == e.any_host && previous.default_tls == e.default_tls &&
                          previous.name.offset == e.name.offset && previous.name.length == e.name.length &&
                          previous.first_listener_name == e.first_listener_name &&
                          previous.listener_name_count == e.listener_name_count,
                      "scopes", i, "entries of one scope disagree");
    }
  }
  const ScopeId max_scope = n_scopes == 0 ? kSharedScope : v.scopes_[n_scopes - 1].scope;

  std::uint64_t exact_hosts = 0;
  std::uint64_t wildcard_hosts = 0;
  for (std::uint64_t i = 0; i < n_hosts && check.ok(); ++i) {
    const format::HostEntry& h = v.hosts_[i];
    check.string(h.name, "hosts", i);
    check.key(h.key, h.name, v.strings_, "hosts", i);
    check.require(h.kind == format::HostKind::kExact || h.kind == format::HostKind::kWildcard ||
                      h.kind == format::HostKind::kAny,
                  "hosts", i, "unknown host kind");
    check.range(h.first_rule, h.rule_count, n_rules, "hosts", i, "rules out of range");
    check.optional_index(h.tls, n_tls, "hosts", i, "tls out of range");
    check.optional_index(h.policies, n_sets, "hosts", i, "policies out of range");
    check.require((h.flags & ~(format::kRegexPaths | format::kAnyDepth | format::kIsolated)) == 0, "hosts", i,
                  "unknown flags");
    check.require(h.scope <= max_scope, "hosts", i, "scope beyond the table's scopes");
    check.require((h.flags & format::kAnyDepth) == 0 || h.kind == format::HostKind::kWildcard, "hosts", i,
                  "an any-depth host that is not a wildcard");
    check.require(h.max_prefix_length <= format::kMaxPathLength && h.max_exact_length <= format::kMaxPathLength,
                  "hosts", i, "path length bound too large");
    check.require(h.name.length <= format::kMaxHostLength, "hosts", i, "host name too long");
    v.max_prefix_length_ = std::max(v.max_prefix_length_, h.max_prefix_length);
    v.max_exact_length_ = std::max(v.max_exact_length_, h.max_exact_length);
    exact_hosts += h.kind == format::HostKind::kExact;
    wildcard_hosts += h.kind == format::HostKind::kWildcard;
  }
  check.slots(v.host_slots_, v.count(format::kHostSlots), exact_hosts, n_hosts, "host slots");
  check.slots(v.wildcard_slots_, v.count(format::kWildcardSlots), wildcard_hosts, n_hosts, "wildcard slots");

  std::uint64_t chain_heads = 0;  // the path slots hold the first rule of each chain
  for (std::uint64_t i = 0; i < n_rules && check.ok(); ++i) {
    const format::RuleEntry& r = v.rules_[i];
    chain_heads += i == 0 || (v.rules_[i - 1].flags & format::kChainNext) == 0;
    check.string(r.path, "rules", i);
    check.key(r.key, r.path, v.strings_, "rules", i);
    check.string(r.declared_path, "rules", i);
    check.index(r.host, n_hosts, "rules", i, "host out of range");
    check.index(r.backend, n_backends, "rules", i, "backend out of range");
    check.index(r.source, n_sources, "rules", i, "source out of range");
    check.require(r.match == format::Match::kExact || r.match == format::Match::kPrefix, "rules", i,
                  "unknown match kind");
    check.require(static_cast<std::uint8_t>(r.declared) <= 2, "rules", i, "unknown path type");
    check.require((r.flags & ~(format::kHasConditions | format::kChainNext)) == 0, "rules", i, "unknown flags");
    check.optional_index(r.policies, n_sets, "rules", i, "policies out of range");
    // Lookup follows a chain to the next rule and reads a rule's conditions without checks.
    if ((r.flags & format::kChainNext) != 0) {
      check.require(i + 1 < n_rules, "rules", i, "chain runs past the last rule");
      if (!check.ok()) break;
      const format::RuleEntry& next = v.rules_[i + 1];
      check.require(next.host == r.host && next.match == r.match && next.hash == r.hash &&
                        next.path.offset == r.path.offset && next.path.length == r.path.length,
                    "rules", i, "chained to a rule with another host or path");
    }
    if ((r.flags & format::kHasConditions) != 0) {
      check.require(n_rule_conditions == n_rules, "rules", i, "conditions without a rule conditions table");
      if (!check.ok()) break;
      const format::ConditionRange& range = v.rule_conditions_[i];
      check.require(range.count > 0, "rules", i, "flagged with conditions but has none");
      check.range(range.first, range.count, n_conditions, "rules", i, "conditions out of range");
    }
  }
  check.require(n_rule_conditions == 0 || n_rule_conditions == n_rules, "rule conditions", 0,
                "neither empty nor one entry per rule");
  for (std::uint64_t i = 0; i < n_conditions && check.ok(); ++i) {
    const format::ConditionEntry& c = v.conditions_[i];
    check.require(c.kind <= format::ConditionKind::kQueryRegex, "conditions", i, "unknown kind");
    check.string(c.name, "conditions", i);
    check.string(c.value, "conditions", i);
  }
  check.slots(v.path_slots_, v.count(format::kPathSlots), chain_heads, n_rules, "path slots");

  for (std::uint64_t i = 0; i < n_backends && check.ok(); ++i) {
    const format::BackendEntry& b = v.backends_[i];
    check.string(b.ns, "backends", i);
    check.string(b.service, "backends", i);
    check.string(b.port_name, "backends", i);
    check.range(b.first_endpoint, b.endpoint_count, n_endpoints, "backends", i, "endpoints out of range");
    check.require(b.ready_count <= b.endpoint_count, "backends", i, "more ready endpoints than endpoints");
    if (!check.ok()) break;
    // The balancer divides by the ready endpoints' total weight: each of them weighs at least 1.
    for (const format::EndpointEntry& e : v.ready_endpoints_of(b)) {
      check.require((e.flags & format::kReady) != 0, "backends", i, "an endpoint counted ready without the ready flag");
      check.require(e.weight > 0, "backends", i, "a ready endpoint with weight 0");
    }
  }
  for (std::uint64_t i = 0; i < n_endpoints && check.ok(); ++i) {
    const format::EndpointEntry& e = v.endpoints_[i];
    check.require(e.family == 4 || e.family == 6, "endpoints", i, "unknown address family");
  }
  for (std::uint64_t i = 0; i < n_sources && check.ok(); ++i) {
    check.string(v.sources_[i].ns, "sources", i);
    check.string(v.sources_[i].name, "sources", i);
    check.string(v.sources_[i].kind, "sources", i);
  }
  for (std::uint64_t i = 0; i < n_tls && check.ok(); ++i) {
    const format::TlsEntry& t = v.tls_[i];
    check.string(t.host, "tls", i);
    check.string(t.secret_ns, "tls", i);
    check.string(t.secret_name, "tls", i);
    check.string(t.chain_pem, "tls", i);
    check.string(t.key_pem, "tls", i);
    check.optional_index(t.source, n_sources, "tls", i, "source out of range");
  }
  for (std::uint64_t i = 0; i < n_sets && check.ok(); ++i) {
    check.range(v.policy_sets_[i].first, v.policy_sets_[i].count, n_records, "policy sets", i, "records out of range");
  }
  for (std::uint64_t i = 0; i < n_records && check.ok(); ++i) {
    const format::PolicyRecord& p = v.policy_records_[i];
    check.require(policy::kind_info(p.kind) != nullptr, "policy records", i, "unknown kind");
    check.string(p.a, "policy records", i);
    check.string(p.b, "policy records", i);
    check.optional_index(p.backend, n_backends, "policy records", i, "backend out of range");
    if (p.kind == format::PolicyKind::kRedirect) {
      check.require(p.code >= 300 && p.code <= 308, "policy records", i, "redirect code out of range");
      check.require((p.flags & ~(policy::kRedirectFlags & ~policy::kIfHostHasTls)) == 0, "policy records", i,
                    "unknown redirect flags");
    }
    if (p.kind == format::PolicyKind::kProxySetting) {
      check.require(policy::proxy_setting_problem(p.code, p.value).empty(), "policy records", i,
                    "proxy setting out of range");
    }
    if (p.kind == format::PolicyKind::kErrorPages) {
      // the module reads status i of `a` at 4*i and needs the backend
      check.require(p.backend != format::kNone && (p.flags & ~policy::kErrorPagesFlags) == 0 &&
                        check.ok() && policy::check_status_list(v.str(p.a)).empty(),
                    "policy records", i, "bad error pages record");
    }
    if (p.kind == format::PolicyKind::kMirror) {
      // A URL mirror names its Host; a backend mirror may keep the request's. The module draws the share
      // against a million.
      check.require((p.flags & ~policy::kMirrorFlags) == 0 && p.a.length > 0 &&
                        (p.b.length > 0 || p.backend != format::kNone) && p.value < policy::kMirrorWhole,
                    "policy records", i, "bad mirror record");
    }
    // The canary module sends requests to a canary record's backend: it must name one.
    if (p.kind == format::PolicyKind::kCanary) {
      check.require(p.backend != format::kNone, "policy records", i, "canary without a backend");
    }
    if (p.kind == format::PolicyKind::kSplit) {
      check.require(p.value <= policy::kMaxSplitWeight, "policy records", i, "split weight out of range");
    }
    // The header modules write `a` and `b` into requests and responses as they are.
    if ((p.kind == format::PolicyKind::kRequestHeader || p.kind == format::PolicyKind::kResponseHeader) && check.ok()) {
      check.require(p.code >= policy::kSetHeader && p.code <= policy::kRemoveHeader &&
                        policy::check_modifiable_header(v.str(p.a)).empty() &&
                        policy::check_header_value(v.str(p.b)).empty(),
                    "policy records", i, "bad header record");
    }
    if (p.kind == format::PolicyKind::kProtocol) {
      // The module splits `b` at the CA length and picks a location by the code.
      check.require(p.code >= policy::kHttp && p.code <= policy::kLastProtocol, "policy records", i,
                    "unknown upstream protocol");
      check.require((p.flags & ~policy::kProtocolFlags) == 0, "policy records", i, "unknown protocol flags");
      check.require(policy::ca_length(p.value) <= p.b.length, "policy records", i, "CA length beyond the PEM");
    }
  }
  if (!check.ok()) return fail("snapshot is inconsistent: " + check.result().error);
  view = v;
  return {true, {}};
}

// A short key is compared in the entry itself; only a longer one reads its tail from the string pool.
bool SnapshotView::key_equals(const char (&key)[format::kInlineKey], format::StrRef ref,
                              std::string_view text) const noexcept {
  if (ref.length != text.size()) return false;
  if (text.size() <= format::kInlineKey) return std::memcmp(key, text.data(), text.size()) == 0;
  return std::memcmp(key, text.data(), format::kInlineKey) == 0 &&
         std::memcmp(strings_ + ref.offset + format::kInlineKey, text.data() + format::kInlineKey,
                     text.size() - format::kInlineKey) == 0;
}

const format::HostEntry* SnapshotView::probe_host(format::Section slots_id, std::string_view name,
                                                  ScopeId scope) const noexcept {
  return probe_host(slots_id, name, host_hash(name, scope), scope);
}

const format::HostEntry* SnapshotView::probe_host(format::Section slots_id, std::string_view name,
                                                  std::uint64_t hash, ScopeId scope) const noexcept {
  const std::uint64_t capacity = count(slots_id);
  if (capacity == 0) return nullptr;
  const std::uint32_t* slots = slots_id == format::kHostSlots ? host_slots_ : wildcard_slots_;
  const std::uint64_t mask = capacity - 1;
  for (std::uint64_t i = hash & mask, probes = 0; probes < capacity; i = (i + 1) & mask, ++probes) {
    const std::uint32_t slot = slots[i];
    if (slot == 0) return nullptr;
    const format::HostEntry& h = hosts_[slot - 1];
    if (h.hash == hash && h.scope == scope && key_equals(h.key, h.name, name)) return &h;
  }
  return nullptr;
}

const format::RuleEntry* SnapshotView::probe_rule(std::uint32_t host, format::Match match, std::string_view path,
                                                  std::uint64_t hash) const noexcept {
  const std::uint64_t capacity = count(format::kPathSlots);
  if (capacity == 0) return nullptr;
  const std::uint64_t mask = capacity - 1;
  for (std::uint64_t i = hash & mask, probes = 0; probes < capacity; i = (i + 1) & mask, ++probes) {
    const std::uint32_t slot = path_slots_[i];
    if (slot == 0) return nullptr;
    const format::RuleEntry& r = rules_[slot - 1];
    if (r.hash == hash && r.host == host && r.match == match && key_equals(r.key, r.path, path)) return &r;
  }
  return nullptr;
}

namespace {

// The Prefix candidates of a path, longest first: "/a/b/c" gives "/a/b/c", "/a/b", "/a" and "" (the
// rule "/"), skipping those longer than `max_length`. Trailing slashes are not part of a candidate.
class PrefixCandidates {
 public:
  PrefixCandidates(std::string_view path, std::uint32_t max_length) noexcept : path_(path), max_(max_length) {
    while (!path_.empty() && path_.back() == '/') path_.remove_suffix(1);
    end_ = path_.size();
    skip();
  }
  // Starting at a candidate already known (`end` is the length of one), for a bound <= the one it was
  // found with: the longer ones were skipped then and would be now.
  PrefixCandidates(std::string_view path, std::uint32_t max_length, std::size_t end) noexcept
      : path_(path.substr(0, end)), max_(max_length), end_(end) {
    skip();
  }
  bool done() const noexcept { return done_; }
  std::string_view current() const noexcept { return path_.substr(0, end_); }
  void next() noexcept {
    step();
    skip();
  }

 private:
  void step() noexcept {
    if (end_ == 0) {
      done_ = true;
      return;
    }
    const std::size_t slash = path_.rfind('/', end_ - 1);
    if (slash == std::string_view::npos) {
      done_ = true;
      return;
    }
    end_ = slash;
  }
  void skip() noexcept {
    while (!done_ && end_ > max_ && end_ != 0) step();
  }
  std::string_view path_;
  std::uint32_t max_;
  std::size_t end_ = 0;
  bool done_ = false;
};

}  // namespace

// The first probe match_path() would make for a host with the longest paths of any host, computed from
// the request host's hash alone, with its path slot and rule fetched: those cache misses then overlap
// the ones of the host slot and host entry instead of following them.
SnapshotView::PathHint SnapshotView::first_probe(std::uint64_t hash_of_host, std::string_view path) const noexcept {
  PathHint hint;
  const std::uint64_t capacity = count(format::kPathSlots);
  if (capacity == 0) return hint;
  if (path.size() <= max_exact_length_) {
    hint = {format::Match::kExact, path.size(), path_hash(hash_of_host, format::Match::kExact, path), true};
  } else {
    const PrefixCandidates candidates(path, max_prefix_length_);
    if (candidates.done()) return hint;
    const std::string_view prefix = candidates.current();
    hint = {format::Match::kPrefix, prefix.size(), path_hash(hash_of_host, format::Match::kPrefix, prefix), true};
  }
  // The slot's rule too: nothing waits on this load, so the host probe proceeds while both arrive.
  if (const std::uint32_t slot = path_slots_[hint.hash & (capacity - 1)]; slot != 0) __builtin_prefetch(&rules_[slot - 1]);
  return hint;
}

// Exact first (when the host has an Exact rule that long): an Exact rule equal to the whole path is at
// least as long as any Prefix match and wins ties. Then Prefix candidates at element boundaries, longest
// first, never longer than the host's longest Prefix rule. `hint` supplies a hash already computed.
bool SnapshotView::conditions_hold(const format::RuleEntry& rule, const PathPatterns* patterns,
                                   const RequestData* request) const noexcept {
  if (request == nullptr) return false;
  const format::ConditionRange& range = rule_conditions_[&rule - rules_];
  for (std::uint32_t c = range.first; c < range.first + range.count; ++c) {
    const format::ConditionEntry& condition = conditions_[c];
    if (!condition_holds(condition.kind, str(condition.name), str(condition.value), c, *request, patterns))
      return false;
  }
  return true;
}

// Rules of one (host, match, path) are stored side by side in precedence order; validation made sure a
// chain ends within the rules.
const format::RuleEntry* SnapshotView::first_holding(const format::RuleEntry* rule, const PathPatterns* patterns,
                                                     const RequestData* request) const noexcept {
  for (;; ++rule) {
    if ((rule->flags & format::kHasConditions) == 0 || conditions_hold(*rule, patterns, request)) return rule;
    if ((rule->flags & format::kChainNext) == 0) return nullptr;
  }
}

const format::RuleEntry* SnapshotView::match_path(const format::HostEntry& host, std::string_view path,
                                                  const PathHint& hint, const PathPatterns* patterns,
                                                  const RequestData* request) const noexcept {
  if (host.rule_count == 0) return nullptr;
  const auto host_index = static_cast<std::uint32_t>(&host - hosts_);
  auto hash_of = [&](format::Match match, std::string_view candidate) {
    if (hint.valid && hint.match == match && hint.length == candidate.size()) return hint.hash;
    return path_hash(host.hash, match, candidate);
  };
  // A rule without conditions (every Ingress rule) is taken after one test of its flags.
  if (path.size() <= host.max_exact_length) {
    if (const format::RuleEntry* exact =
            probe_rule(host_index, format::Match::kExact, path, hash_of(format::Match::kExact, path))) {
      if (exact->flags == 0) return exact;
      if (const format::RuleEntry* holding = first_holding(exact, patterns, request)) return holding;
    }
  }
  PrefixCandidates candidates = hint.valid && hint.match == format::Match::kPrefix
                                    ? PrefixCandidates(path, host.max_prefix_length, hint.length)
                                    : PrefixCandidates(path, host.max_prefix_length);
  for (; !candidates.done(); candidates.next()) {
    const std::string_view prefix = candidates.current();
    if (const format::RuleEntry* rule =
            probe_rule(host_index, format::Match::kPrefix, prefix, hash_of(format::Match::kPrefix, prefix))) {
      if (rule->flags == 0) return rule;
      if (const format::RuleEntry* holding = first_holding(rule, patterns, request)) return holding;
    }
  }
  return nullptr;
}

// A regex host's rules in their order (longest pattern first); the first whose pattern matches (and whose
// conditions hold) wins. A chain's rules share one pattern: it is matched once.
const format::RuleEntry* SnapshotView::match_pattern(const format::HostEntry& host, std::string_view path,
                                                     const PathPatterns* patterns, PathCaptures* captures,
                                                     const RequestData* request) const noexcept {
  if (patterns == nullptr) return nullptr;
  const std::uint32_t end = host.first_rule + host.rule_count;
  for (std::uint32_t r = host.first_rule; r < end; ++r) {
    const bool matched = patterns->match(r, path, captures);
    if (matched && rules_[r].flags == 0) return &rules_[r];
    if (matched) {
      if (const format::RuleEntry* holding = first_holding(&rules_[r], patterns, request)) return holding;
    }
    while (r + 1 < end && (rules_[r].flags & format::kChainNext) != 0) ++r;
  }
  return nullptr;
}

ScopeId SnapshotView::find_scope(int family, const unsigned char* address, std::uint16_t port) const noexcept {
  static constexpr unsigned char kV4Mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (family == 6 && std::memcmp(address, kV4Mapped, sizeof kV4Mapped) == 0) {
    family = 4;
    address += sizeof kV4Mapped;
  }
  std::size_t length = family == 4 ? 4 : family == 6 ? 16 : 0;
  if (length != 0 && std::all_of(address, address + length, [](unsigned char b) { return b == 0; })) length = 0;
  for (const format::ScopeEntry& e : scopes()) {
    if (e.port != 0 && e.port != port) continue;
    if (e.family == 0 || (length != 0 && e.family == family && std::memcmp(e.address, address, length) == 0))
      return e.scope;
  }
  return kSharedScope;
}

const format::ScopeEntry* SnapshotView::scope_entry(ScopeId scope) const noexcept {
  if (scope == kSharedScope) return nullptr;
  const auto all = scopes();
  const auto it = std::partition_point(all.begin(), all.end(), [&](const format::ScopeEntry& e) { return e.scope < scope; });
  return it == all.end() || it->scope != scope ? nullptr : &*it;
}

std::span<const format::StrRef> SnapshotView::listener_names(ScopeId scope) const noexcept {
  const format::ScopeEntry* entry = scope_entry(scope);
  if (entry == nullptr) return {};
  return {listener_names_ + entry->first_listener_name, entry->listener_name_count};
}

int SnapshotView::listener_for(std::span<const format::StrRef> names, std::string_view name) const noexcept {
  int best = -1;
  std::size_t best_length = 0;  // of the best wildcard so far
  for (std::size_t i = 0; i < names.size(); ++i) {
    const std::string_view pattern = str(names[i]);
    if (pattern.empty()) {
      if (best < 0) best = static_cast<int>(i);
    } else if (!pattern.starts_with("*.")) {
      if (policy::server_name_matches(pattern, name)) return static_cast<int>(i);
    } else if (pattern.size() > best_length && policy::server_name_matches(pattern, name)) {
      best = static_cast<int>(i);
      best_length = pattern.size();
    }
  }
  return best;
}

bool SnapshotView::misdirected(ScopeId scope, std::string_view server_name, std::string_view host) const noexcept {
  const std::span<const format::StrRef> names = listener_names(scope);
  if (names.empty() || server_name.empty()) return false;
  return listener_for(names, server_name) != listener_for(names, host);
}

const format::HostEntry* SnapshotView::any_host(ScopeId scope) const noexcept {
  std::uint32_t index = header_->any_host;
  if (scope != kSharedScope) {
    const format::ScopeEntry* entry = scope_entry(scope);
    index = entry == nullptr ? kNone : entry->any_host;
  }
  return index == kNone ? nullptr : &hosts_[index];
}

const format::HostEntry* SnapshotView::find_host(std::string_view raw_host, HostMatch& how, ScopeId scope) const noexcept {
  HostBuffer buffer;
  const std::string_view host = normalize_request_host(raw_host, buffer);
  how = HostMatch::kNone;
  if (host.empty()) return nullptr;
  if (const format::HostEntry* exact = probe_host(format::kHostSlots, host, scope)) {
    how = HostMatch::kExact;
    return exact;
  }
  if (const format::HostEntry* wildcard = find_wildcard(host, scope, [](const format::HostEntry*) { return true; })) {
    how = HostMatch::kWildcard;
    return wildcard;
  }
  return nullptr;
}

const format::TlsEntry* SnapshotView::certificate_for(std::string_view server_name, ScopeId scope) const noexcept {
  HostBuffer buffer;
  const std::string_view name = normalize_request_host(server_name, buffer);
  if (!name.empty()) {
    auto usable = [&](const format::HostEntry* h) -> const format::TlsEntry* {
      if (h == nullptr || h->tls == format::kNone || tls_[h->tls].chain_pem.length == 0) return nullptr;
      return &tls_[h->tls];
    };
    if (const auto* exact = usable(probe_host(format::kHostSlots, name, scope))) return exact;
    if (const auto* wildcard =
            find_wildcard(name, scope, [&](const format::HostEntry* h) { return usable(h) != nullptr; }))
      return usable(wildcard);
  }
  if (const format::TlsEntry* own = scope_certificate(scope); own != nullptr && own->chain_pem.length != 0) return own;
  return default_certificate();
}

RouteMatch SnapshotView::lookup(std::string_view raw_host, std::string_view path, const PathPatterns* patterns,
                                PathCaptures* captures, const RequestData* request, ScopeId scope) const noexcept {
  if (path.empty()) path = "/";
  RouteMatch match;
  if (path.size() <= format::kMaxPathLength) {
    HostBuffer buffer;
    const std::string_view host = normalize_request_host(raw_host, buffer);
    // A host's rules are tried most specific first: exact host, its one-label wildcard, then the
    // host-less rules. A request falls through to the next when the more specific has no matching path,
    // unless that host is isolated (kIsolated): then nothing less specific is tried.
    bool isolated_miss = false;
    auto try_host = [&](const format::HostEntry* h, HostMatch how, const PathHint& hint) {
      if (h == nullptr || isolated_miss) return false;
      if (match.server == nullptr && how != HostMatch::kAny) match.server = h;
      const format::RuleEntry* rule = (h->flags & format::kRegexPaths) != 0
                                          ? match_pattern(*h, path, patterns, captures, request)
                                          : match_path(*h, path, hint, patterns, request);
      if (rule == nullptr) {
        isolated_miss = (h->flags & format::kIsolated) != 0;
        return false;
      }
      match.host = h;
      match.rule = rule;
      match.backend = &backends_[rule->backend];
      match.host_match = how;
      return true;
    };
    const PathHint none;
    if (!host.empty()) {
      const std::uint64_t hash = host_hash(host, scope);
      if (const std::uint64_t capacity = count(format::kHostSlots); capacity != 0)
        __builtin_prefetch(&host_slots_[hash & (capacity - 1)]);
      const PathHint hint = first_probe(hash, path);
      if (try_host(probe_host(format::kHostSlots, host, hash, scope), HostMatch::kExact, hint)) return match;
      // The most specific wildcard whose rules match the path (a miss falls through to the next one).
      if (find_wildcard(host, scope,
                        [&](const format::HostEntry* h) { return try_host(h, HostMatch::kWildcard, none); }))
        return match;
    }
    if (try_host(any_host(scope), HostMatch::kAny, none)) return match;
  }
  if (const format::BackendEntry* fallback = default_backend()) {
    match.backend = fallback;
    match.default_backend = true;
  }
  return match;
}

const char* path_type_name(format::DeclaredType type) noexcept {
  switch (type) {
    case format::DeclaredType::kExact: return "Exact";
    case format::DeclaredType::kPrefix: return "Prefix";
    case format::DeclaredType::kImplementationSpecific: return "ImplementationSpecific";
  }
  return "Unknown";
}

const char* host_match_name(HostMatch match) noexcept {
  switch (match) {
    case HostMatch::kNone: return "none";
    case HostMatch::kExact: return "exact";
    case HostMatch::kWildcard: return "wildcard";
    case HostMatch::kAny: return "any-host";
  }
  return "unknown";
}

std::string endpoint_address(const format::EndpointEntry& endpoint) {
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(endpoint.family == 6 ? AF_INET6 : AF_INET, endpoint.address, text, sizeof text);
  return endpoint.family == 6 ? "[" + std::string(text) + "]:" + std::to_string(endpoint.port)
                              : std::string(text) + ":" + std::to_string(endpoint.port);
}

}  // namespace kroute
