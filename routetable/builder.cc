#include "builder.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <deque>
#include <numeric>
#include <unordered_map>
#include <unordered_set>
#include <stdexcept>
#include <string_view>
#include <tuple>

#include "conditions.h"
#include "format.h"
#include "hashing.h"
#include "host.h"
#include "path_patterns.h"
#include "policy/kinds.h"
#include "policy/redirect.h"

namespace kroute {

namespace {

using format::kNone;

// Open addressing from a 64-bit hash to u32 ids. It stores no keys: callers confirm a candidate id with
// their own equality, so the keys stay where they already are and building allocates per table, not per
// key. Slots are 8 bytes (32 bits of the hash and the id) to stay small in cache; the table does not
// grow, so callers size it with an upper bound on the keys they will add.
class HashIndex {
 public:
  explicit HashIndex(std::size_t max_keys) : slots_(std::max<std::size_t>(16, slot_capacity(max_keys))) {}

  // The id already stored under an equal key, or `fresh` after storing it.
  template <typename Equal>
  std::uint32_t find_or_insert(std::uint64_t hash, std::uint32_t fresh, Equal&& equal) {
    const std::size_t mask = slots_.size() - 1;
    const auto check = static_cast<std::uint32_t>(hash >> 32);
    for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
      Slot& slot = slots_[i];
      if (slot.id == kNone) {
        if (++size_ * 2 > slots_.size()) throw std::logic_error("HashIndex sized below its keys");
        slot = {check, fresh};
        return fresh;
      }
      if (slot.check == check && equal(slot.id)) return slot.id;
    }
  }

 private:
  struct Slot {
    std::uint32_t check = 0;
    std::uint32_t id = kNone;
  };
  std::vector<Slot> slots_;
  std::size_t size_ = 0;
};

// Every distinct string once.
class StringPool {
 public:
  explicit StringPool(std::size_t expected) : index_(expected) {}

  format::StrRef add(std::string_view s) {
    if (s.empty()) return {0, 0};
    // The same few strings come again and again (a namespace, "/" as a declared path): a small table of
    // recent ones, in L1, answers them before the main index, whose slots are spread over a big array.
    format::StrRef& recent = recent_[(s.size() * 31 + static_cast<unsigned char>(s.front()) * 7 +
                                      static_cast<unsigned char>(s.back())) % recent_.size()];
    if (recent.length == s.size() && view(recent) == s) return recent;
    const auto fresh = static_cast<std::uint32_t>(refs_.size());
    const std::uint32_t id = index_.find_or_insert(host_hash(s), fresh,
                                                   [&](std::uint32_t existing) { return view(refs_[existing]) == s; });
    if (id == fresh) {
      refs_.push_back({static_cast<std::uint32_t>(bytes_.size()), static_cast<std::uint32_t>(s.size())});
      bytes_.append(s);
    }
    recent = refs_[id];
    return recent;
  }
  const std::string& bytes() const { return bytes_; }

 private:
  std::string_view view(format::StrRef ref) const { return std::string_view(bytes_).substr(ref.offset, ref.length); }

  std::string bytes_;
  std::vector<format::StrRef> refs_;
  HashIndex index_;
  std::array<format::StrRef, 64> recent_{};  // length 0: empty slot
};

// Hosts are per scope: the same name in two scopes is two hosts that never meet.
struct HostKey {
  ScopeId scope;
  format::HostKind kind;
  std::string_view name;  // exact name, wildcard suffix, or "" for host-less; see stable_host()
  bool operator==(const HostKey&) const = default;
};

// One host of the table and its TLS entry; its rules are the checked rules that name the group.
struct HostGroup {
  HostKey key;
  std::uint32_t tls = kNone;  // index into RouteModel::tls
  std::uint32_t rule_count = 0;
  bool regex = false;                      // some rule of the host has a regex path: all are patterns
  bool any_depth = false;                  // a wildcard that matches any number of labels (Rule::any_depth)
  bool isolated = false;                   // a miss does not fall through (Rule::isolated)
  std::vector<std::uint32_t> host_policies;  // indexes into RouteModel::host_policies, oldest first
};

// A rule to build: one of the model's, or a copy of one under a host alias (`host` is then the alias).
struct RuleRef {
  const Rule* rule;
  std::uint32_t model_index;
  const std::string* host;
  bool alias_copy;
};

// A rule that passed its checks, in matching form.
struct CheckedRule {
  std::uint32_t ref;  // index into the RuleRefs
  std::uint32_t group;
  std::string_view path;  // normalized: a prefix of the model's path (or of "/"), see normalized_view(); a
                          // regex host's pattern as written
  format::Match match;
  format::DeclaredType declared;
  std::uint32_t conditions = kNone;  // its canonical conditions (an index into the build's sets), or none
  std::uint32_t next = kNone;        // the next checked rule of the same (group, match, path), other conditions
};

format::DeclaredType declared_type(PathType type) {
  switch (type) {
    case PathType::kExact: return format::DeclaredType::kExact;
    case PathType::kPrefix: return format::DeclaredType::kPrefix;
    case PathType::kImplementationSpecific: return format::DeclaredType::kImplementationSpecific;
  }
  return format::DeclaredType::kPrefix;
}

// The host as an Ingress writes it: "*.example.com" for a wildcard, "" for host-less rules.
std::string display_name(const HostKey& key) {
  return key.kind == format::HostKind::kWildcard ? "*." + std::string(key.name) : std::string(key.name);
}

HostKey host_key(ScopeId scope, std::string_view normalized) {
  if (normalized.empty()) return {scope, format::HostKind::kAny, ""};
  if (normalized.starts_with("*.")) return {scope, format::HostKind::kWildcard, normalized.substr(2)};
  return {scope, format::HostKind::kExact, normalized};
}

// Normalized host names that live as long as a build: a view of the model's own string when it is
// already normalized (the usual case), else a copy kept here. Spares a string per host.
class StableHosts {
 public:
  // check_rule_host's verdict on `raw`; on success `out` views the normalized name.
  std::string check(const std::string& raw, std::string_view& out) {
    std::string error = check_rule_host(raw, scratch_);
    if (!error.empty()) return error;
    if (scratch_ == raw) {
      out = raw;
    } else {
      copies_.push_back(scratch_);
      out = copies_.back();
    }
    return {};
  }

 private:
  std::string scratch_;
  std::deque<std::string> copies_;  // element addresses stay put as it grows
};

// normalize_rule_path() as a view: a rule path normalizes to a prefix of itself, or of "/" when empty.
std::string_view normalized_view(std::string_view path, PathType type, std::string& error) {
  if (path.empty()) path = "/";
  if (path.front() != '/') {
    error = "path must start with '/'";
    return {};
  }
  if (path.size() > format::kMaxPathLength) {
    error = "path is longer than 4096 characters";
    return {};
  }
  for (unsigned char c : path) {
    if (c <= 0x20 || c == 0x7f) {
      error = "path must not contain spaces or control characters";
      return {};
    }
  }
  if (type != PathType::kExact) {
    while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  }
  return path;
}

// The oldest Ingress wins; namespace/name breaks ties; within one Ingress the first rule wins.
bool older(const RouteModel& model, std::uint32_t a_source, std::uint32_t a_index, std::uint32_t b_source,
           std::uint32_t b_index) {
  const Source& a = model.sources[a_source];
  const Source& b = model.sources[b_source];
  return std::tie(a.created_unix, a.ns, a.name, a_index) < std::tie(b.created_unix, b.ns, b.name, b_index);
}

bool parse_address(const std::string& text, format::EndpointEntry& entry) {
  std::memset(entry.address, 0, sizeof entry.address);
  if (inet_pton(AF_INET, text.c_str(), entry.address) == 1) {
    entry.family = 4;
    return true;
  }
  if (inet_pton(AF_INET6, text.c_str(), entry.address) == 1) {
    entry.family = 6;
    return true;
  }
  return false;
}

// A scope's local address as its ScopeEntry holds it; false when the address is neither "" nor an IP
// literal. The unspecified addresses (0.0.0.0, ::) mean any address as "" does: nginx reports a wildcard
// listen's connections with them, whatever address they arrived on. An IPv4-mapped IPv6 address is the
// IPv4 address it maps, as SnapshotView::scope_for compares them.
bool parse_local_address(const LocalAddress& local, format::ScopeEntry& entry) {
  entry.port = local.port;
  entry.family = 0;
  std::memset(entry.address, 0, sizeof entry.address);
  if (local.address.empty()) return true;
  format::EndpointEntry parsed{};
  if (!parse_address(local.address, parsed)) return false;
  static constexpr std::uint8_t kV4Mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (parsed.family == 6 && std::memcmp(parsed.address, kV4Mapped, sizeof kV4Mapped) == 0) {
    std::memmove(parsed.address, parsed.address + 12, 4);
    std::memset(parsed.address + 4, 0, 12);
    parsed.family = 4;
  }
  if (std::all_of(std::begin(parsed.address), std::end(parsed.address), [](std::uint8_t b) { return b == 0; }))
    return true;
  entry.family = parsed.family;
  std::memcpy(entry.address, parsed.address, sizeof entry.address);
  return true;
}

format::TlsEntry tls_entry(StringPool& strings, std::string_view host, std::string_view secret_ns,
                           std::string_view secret_name, const Certificate& certificate, std::uint32_t source) {
  format::TlsEntry entry{};
  entry.host = strings.add(host);
  entry.secret_ns = strings.add(secret_ns);
  entry.secret_name = strings.add(secret_name);
  entry.chain_pem = strings.add(certificate.chain_pem);
  entry.key_pem = strings.add(certificate.key_pem);
  entry.fingerprint = certificate_fingerprint(certificate.chain_pem, certificate.key_pem);
  entry.source = source;
  return entry;
}

// The slot tables of the snapshot: linear probing; a slot holds entry index + 1, 0 is empty.
std::vector<std::uint32_t> make_slots(const std::vector<std::pair<std::uint64_t, std::uint32_t>>& entries) {
  std::vector<std::uint32_t> slots(slot_capacity(entries.size()), 0);
  const std::uint64_t mask = slots.size() - 1;
  for (const auto& [hash, index] : entries) {
    std::uint64_t slot = hash & mask;
    while (slots[slot] != 0) slot = (slot + 1) & mask;
    slots[slot] = index + 1;
  }
  return slots;
}

void set_key(char (&key)[format::kInlineKey], std::string_view text) {
  std::memcpy(key, text.data(), std::min(text.size(), format::kInlineKey));
}

class SnapshotWriter {
 public:
  explicit SnapshotWriter(std::size_t expected_bytes) : bytes_(sizeof(format::Header)) {
    bytes_.reserve(expected_bytes);
  }

  template <typename T>
  void section(format::Section id, const std::vector<T>& elements) {
    raw_section(id, elements.data(), elements.size() * sizeof(T), elements.size());
  }

  template <typename T>
  void section(format::Section id, const std::vector<T>& elements, std::size_t alignment) {
    bytes_.resize((bytes_.size() + alignment - 1) / alignment * alignment);
    section(id, elements);
  }

  void raw_section(format::Section id, const void* data, std::size_t size, std::size_t count) {
    align();
    header_.sections[id] = {bytes_.size(), count};
    const auto* begin = static_cast<const std::byte*>(data);
    bytes_.insert(bytes_.end(), begin, begin + size);
  }

  std::vector<std::byte> finish(format::Header header) {
    align();
    std::copy(std::begin(header_.sections), std::end(header_.sections), std::begin(header.sections));
    header.header_size = sizeof(format::Header);
    header.total_size = bytes_.size();
    header.checksum = payload_checksum(bytes_.data() + sizeof header, bytes_.size() - sizeof header);
    std::memcpy(bytes_.data(), &header, sizeof header);
    return std::move(bytes_);
  }

 private:
  void align() { bytes_.resize((bytes_.size() + format::kAlign - 1) / format::kAlign * format::kAlign); }

  std::vector<std::byte> bytes_;
  format::Header header_{};
};

// Checks backends and their endpoints. Endpoints come out ready first, each group sorted by address, so
// the order they arrive in never changes the table; a duplicate address + port adds nothing.
struct CheckedBackends {
  std::vector<bool> ok;
  std::vector<std::vector<format::EndpointEntry>> endpoints;
  std::vector<std::uint32_t> ready;
};

template <typename Report>
CheckedBackends check_backends(const RouteModel& model, Report&& report) {
  CheckedBackends out{std::vector<bool>(model.backends.size(), true),
                      std::vector<std::vector<format::EndpointEntry>>(model.backends.size()),
                      std::vector<std::uint32_t>(model.backends.size(), 0)};
  // A total order: by address, and among equal addresses ready first, then by weight and flags, so
  // unique() keeps the ready duplicate and the result depends only on the set of endpoints given.
  const auto by_address = [](const format::EndpointEntry& x, const format::EndpointEntry& y) {
    if (x.family != y.family) return x.family < y.family;
    if (const int c = std::memcmp(x.address, y.address, sizeof x.address); c != 0) return c < 0;
    if (x.port != y.port) return x.port < y.port;
    if ((x.flags & format::kReady) != (y.flags & format::kReady)) return (x.flags & format::kReady) != 0;
    return std::tie(x.weight, x.flags) < std::tie(y.weight, y.flags);
  };
  const auto same_address = [](const format::EndpointEntry& x, const format::EndpointEntry& y) {
    return x.family == y.family && x.port == y.port && std::memcmp(x.address, y.address, sizeof x.address) == 0;
  };
  const auto ready_first = [&](const format::EndpointEntry& x, const format::EndpointEntry& y) {
    if ((x.flags & format::kReady) != (y.flags & format::kReady)) return (x.flags & format::kReady) != 0;
    return by_address(x, y);
  };
  for (std::uint32_t i = 0; i < model.backends.size(); ++i) {
    const Backend& b = model.backends[i];
    if (b.ns.empty() || b.service.empty()) {
      report(Item::kBackend, i, "backend needs a namespace and a service");
      out.ok[i] = false;
    } else if ((b.port == 0) == b.port_name.empty()) {
      report(Item::kBackend, i, "backend needs exactly one of a port number (1-65535) or a port name");
      out.ok[i] = false;
    } else if (b.port > 65535) {
      report(Item::kBackend, i, "backend port must be 1-65535");
      out.ok[i] = false;
    }
    std::vector<format::EndpointEntry>& checked = out.endpoints[i];
    checked.reserve(b.endpoints.size());
    for (std::uint32_t e = 0; e < b.endpoints.size(); ++e) {
      const Endpoint& ep = b.endpoints[e];
      format::EndpointEntry entry{};
      if (!parse_address(ep.address, entry)) {
        report(Item::kEndpoint, i, "endpoint address is not an IPv4 or IPv6 address: " + ep.address, e);
        continue;
      }
      if (ep.port == 0) {
        report(Item::kEndpoint, i, "endpoint port must be 1-65535", e);
        continue;
      }
      entry.port = ep.port;
      entry.weight = ep.weight;
      // A zero weight takes no traffic: such an endpoint is kept for dump but not counted as ready.
      entry.flags = static_cast<std::uint8_t>((ep.ready && ep.weight > 0 ? format::kReady : 0) |
                                              (ep.serving ? format::kServing : 0) |
                                              (ep.terminating ? format::kTerminating : 0));
      checked.push_back(entry);
    }
    std::sort(checked.begin(), checked.end(), by_address);
    checked.erase(std::unique(checked.begin(), checked.end(), same_address), checked.end());
    std::sort(checked.begin(), checked.end(), ready_first);
    out.ready[i] = static_cast<std::uint32_t>(std::count_if(
        checked.begin(), checked.end(), [](const format::EndpointEntry& x) { return (x.flags & format::kReady) != 0; }));
  }
  return out;
}

// A scope's listener names (Scope::listener_names), normalized into `out`: "" or a host name or "*." wildcard,
// each once, at most kMaxListenerNames (a Gateway's listener limit). "" when they are usable; else why not.
std::string check_listener_names(const std::vector<std::string>& names, std::vector<std::string>& out) {
  constexpr std::size_t kMaxListenerNames = 64;
  out.clear();
  if (names.size() > kMaxListenerNames) return "more than 64 names";
  for (const std::string& name : names) {
    std::string normalized;
    if (!name.empty()) {
      if (std::string problem = check_rule_host(name, normalized); !problem.empty())
        return "\"" + name + "\": " + problem;
    }
    if (std::find(out.begin(), out.end(), normalized) != out.end())
      return "\"" + name + "\" is named twice";
    out.push_back(std::move(normalized));
  }
  return {};
}

// Checks each scope's local addresses: `locals[s - 1]` are scope s's usable ones, as ScopeEntries (their
// host-less host, certificate and name are filled in later). A scope without one can never be chosen.
struct CheckedScopes {
  std::vector<std::vector<format::ScopeEntry>> locals;
  // `names[s - 1]`: scope s's listener names, normalized; empty when it has none or they were refused.
  std::vector<std::vector<std::string>> names;

  // "" when items may name `scope`; else why not.
  std::string problem(ScopeId scope) const {
    if (scope <= locals.size()) return {};
    return "refers to scope " + std::to_string(scope) + ", but the table has " +
           (locals.empty() ? std::string("no scopes") : "scopes 1 to " + std::to_string(locals.size()));
  }
  // Whether requests can reach the scope's hosts at all (the shared scope always).
  bool reachable(ScopeId scope) const { return scope == kSharedScope || !locals[scope - 1].empty(); }
};

template <typename Report>
CheckedScopes check_scopes(const RouteModel& model, Report&& report) {
  constexpr std::size_t kMaxScopes = 0xffff;  // ScopeId is 16 bits; 0 is the shared scope
  CheckedScopes out;
  out.locals.resize(std::min(model.scopes.size(), kMaxScopes));
  out.names.resize(out.locals.size());
  for (std::uint32_t i = 0; i < model.scopes.size(); ++i) {
    if (i >= kMaxScopes) {
      report(Item::kScope, i, "a table has at most 65535 scopes");
      continue;
    }
    const Scope& scope = model.scopes[i];
    for (std::uint32_t l = 0; l < scope.locals.size(); ++l) {
      format::ScopeEntry entry{};
      if (!parse_local_address(scope.locals[l], entry)) {
        report(Item::kScope, i, "local address is neither \"\" (any) nor an IPv4 or IPv6 address: " + scope.locals[l].address, l);
        continue;
      }
      entry.scope = static_cast<std::uint16_t>(i + 1);
      out.locals[i].push_back(entry);
    }
    if (std::string problem = check_listener_names(scope.listener_names, out.names[i]); !problem.empty()) {
      report(Item::kScope, i, "listener names refused, so no request of the scope is found misdirected: " + problem);
      out.names[i].clear();
    }
  }
  return out;
}

// `backend_ok[i]`: the model's backend i is usable; a record naming another one is not.
// `host_wide`: the records are a host's (HostPolicy), which may hold kinds that only hosts take.
std::string check_policies(const std::vector<PolicyRecord>& records, bool captures, const std::vector<bool>& backend_ok,
                           bool host_wide) {
  for (const PolicyRecord& record : records) {
    if (record.backend != kNoRecordBackend && (record.backend >= backend_ok.size() || !backend_ok[record.backend]))
      return std::string(policy::kind_name(record.kind)) + " policy: refers to a missing or invalid backend";
    if (const policy::KindInfo* info = policy::kind_info(record.kind); !host_wide && info != nullptr && info->host_only)
      return std::string(info->name) + " policy: applies to a whole host, not to a rule (a host policy)";
    if (std::string problem = policy::check_record(record, captures); !problem.empty())
      return std::string(policy::kind_name(record.kind)) + " policy: " + problem;
  }
  return {};
}

// The model's rules, then for each alias that takes effect (oldest Ingress first) a copy of every
// shared-scope rule of its host under the alias's name (kept in `names`; `aliases_of` lists them by host, normalized). An alias a rule already names, or that an older
// Ingress claimed, is reported and ignored.
template <typename Report>
std::vector<RuleRef> expand_aliases(const RouteModel& model, std::deque<std::string>& names,
                                    std::unordered_map<std::string, std::vector<std::string>>& aliases_of,
                                    Report&& report) {
  std::vector<RuleRef> refs;
  refs.reserve(model.rules.size());
  for (std::uint32_t i = 0; i < model.rules.size(); ++i) refs.push_back({&model.rules[i], i, &model.rules[i].host, false});
  if (model.aliases.empty()) return refs;
  // Aliases are of the shared scope: only its rules name hosts for them.
  std::unordered_map<std::string, std::vector<std::uint32_t>> rules_of;  // normalized host -> rule indexes
  std::string normalized;
  for (std::uint32_t i = 0; i < model.rules.size(); ++i) {
    if (model.rules[i].scope == kSharedScope && check_rule_host(model.rules[i].host, normalized).empty())
      rules_of[normalized].push_back(i);
  }
  std::vector<std::uint32_t> order(model.aliases.size());
  std::iota(order.begin(), order.end(), 0u);
  const auto valid_source = [&](std::uint32_t s) { return s < model.sources.size(); };
  std::erase_if(order, [&](std::uint32_t a) {
    if (valid_source(model.aliases[a].source)) return false;
    report(Item::kAlias, a, "host alias refers to a missing source");
    return true;
  });
  std::sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
    return older(model, model.aliases[a].source, a, model.aliases[b].source, b);
  });
  std::unordered_map<std::string, std::uint32_t> claimed;  // alias -> the HostAlias that has it
  for (const std::uint32_t a : order) {
    const HostAlias& alias = model.aliases[a];
    std::string name;
    std::string host;
    if (std::string error = check_rule_host(alias.alias, name); !error.empty() || name.empty()) {
      report(Item::kAlias, a, "alias \"" + alias.alias + "\" is ignored: " + (error.empty() ? "it is empty" : error));
      continue;
    }
    if (!check_rule_host(alias.host, host).empty()) continue;  // the host's own rules are reported
    if (rules_of.count(name) != 0) {
      report(Item::kAlias, a, "alias " + name + " is ignored: a rule names that host");
      continue;
    }
    if (auto [it, inserted] = claimed.try_emplace(name, a); !inserted) {
      const HostAlias& holder = model.aliases[it->second];
      if (holder.source != alias.source)
        report(Item::kAlias, a, "alias " + name + " is ignored: it is already an alias of " + holder.host);
      continue;
    }
    auto rules = rules_of.find(host);
    if (rules == rules_of.end()) continue;
    aliases_of[host].push_back(name);
    names.push_back(std::move(name));
    for (const std::uint32_t r : rules->second) refs.push_back({&model.rules[r], r, &names.back(), true});
  }
  return refs;
}

std::uint64_t records_hash(const std::vector<PolicyRecord>& records) {
  std::uint64_t h = records.size();
  for (const PolicyRecord& r : records) {
    h = h * 0x9e3779b97f4a7c15ULL ^ host_hash(r.a) ^ (host_hash(r.b) << 1) ^
        (static_cast<std::uint64_t>(r.kind) << 48 | static_cast<std::uint64_t>(r.code) << 32 | r.flags) ^
        (r.value * 0xff51afd7ed558ccdULL) ^ (static_cast<std::uint64_t>(r.backend) << 17);
  }
  return h;
}

}  // namespace

const char* item_name(Item item) noexcept {
  switch (item) {
    case Item::kRule: return "rule";
    case Item::kBackend: return "backend";
    case Item::kEndpoint: return "endpoint";
    case Item::kTls: return "tls";
    case Item::kSource: return "source";
    case Item::kDefaultBackend: return "default backend";
    case Item::kHostPolicy: return "host policy";
    case Item::kAlias: return "host alias";
    case Item::kScope: return "scope";
  }
  return "item";
}

NormalizedPath normalize_rule_path(std::string_view path, PathType type) {
  std::string error;
  const std::string_view normalized = normalized_view(path, type, error);
  if (!error.empty()) return {{}, std::move(error)};
  return {std::string(normalized), {}};
}

BuildResult build_snapshot(const RouteModel& model, const BuildOptions& options) {
  BuildResult result;
  auto report = [&](Item item, std::uint32_t index, std::string message, std::uint32_t sub = 0) {
    result.diagnostics.push_back({item, index, sub, std::move(message)});
  };

  // Sources and backends first: rules that point at a broken one are skipped with it.
  std::vector<bool> source_ok(model.sources.size(), true);
  for (std::uint32_t i = 0; i < model.sources.size(); ++i) {
    if (model.sources[i].ns.empty() || model.sources[i].name.empty()) {
      report(Item::kSource, i, "source needs a namespace and a name");
      source_ok[i] = false;
    }
  }
  const CheckedBackends backends_checked = check_backends(model, report);
  const CheckedScopes scopes_checked = check_scopes(model, report);

  // Hosts, found by (scope, kind, name). Every item that makes one names at most one (an alias copy too).
  std::vector<HostGroup> groups;
  HashIndex group_index(model.rules.size() + model.tls.size() + model.host_policies.size() + model.aliases.size());
  StableHosts stable_hosts;
  auto group_of = [&](HostKey key) {
    const auto fresh = static_cast<std::uint32_t>(groups.size());
    const std::uint32_t id = group_index.find_or_insert(
        path_hash(static_cast<std::uint32_t>(key.kind) | std::uint32_t{key.scope} << 8, format::Match::kExact, key.name),
        fresh, [&](std::uint32_t g) { return groups[g].key == key; });
    if (id == fresh) groups.push_back({key, kNone, 0});
    return id;
  };
  // Consecutive rules usually share a host; remember the last one checked.
  const std::string* last_host = nullptr;
  ScopeId last_scope = kSharedScope;
  std::uint32_t last_group = kNone;
  std::string last_host_error;
  auto group_of_host = [&](ScopeId scope, const std::string& raw, std::string& error) {
    if (last_host == nullptr || raw != *last_host || scope != last_scope) {
      std::string_view normalized;
      last_host_error = raw.empty() ? std::string() : stable_hosts.check(raw, normalized);
      last_host = &raw;
      last_scope = scope;
      last_group = last_host_error.empty() ? group_of(host_key(scope, normalized)) : kNone;
    }
    error = last_host_error;
    return last_group;
  };
  // Items of a scope no request can reach (none of its local addresses is usable) are left out
  // quietly: the scope's own diagnostics say why. Those naming a scope the model lacks are reported.
  const auto scope_usable = [&](ScopeId scope) {
    return scopes_checked.problem(scope).empty() && scopes_checked.reachable(scope);
  };

  // The rules to build: the model's, then each alias's copies of its host's rules.
  std::deque<std::string> alias_names;
  std::unordered_map<std::string, std::vector<std::string>> aliases_of;
  const std::vector<RuleRef> refs = expand_aliases(model, alias_names, aliases_of, report);

  // Hosts with a regex rule match all their paths by regex: known before any path is checked.
  // Wildcards that match any depth are known the same way.
  bool any_depth_hosts = false;
  for (const RuleRef& ref : refs) {
    if (!ref.rule->regex && !ref.rule->any_depth && !ref.rule->isolated) continue;
    if (!scope_usable(ref.rule->scope)) continue;
    std::string host_error;
    const std::uint32_t group = group_of_host(ref.rule->scope, *ref.host, host_error);
    if (!host_error.empty()) continue;
    if (ref.rule->regex) groups[group].regex = true;
    if (ref.rule->isolated) groups[group].isolated = true;
    if (ref.rule->any_depth && groups[group].key.kind == format::HostKind::kWildcard) {
      groups[group].any_depth = any_depth_hosts = true;
    }
  }

  // Rules: check, normalize, then settle collisions on (host, match, path).
  std::vector<CheckedRule> checked;
  checked.reserve(refs.size());
  std::vector<std::pair<std::uint32_t, std::uint32_t>> rule_losers;  // (ref, checked index of the winner)
  HashIndex rule_index(refs.size());
  // Rules of one (host, match, path) with other conditions all stay: they are tried in precedence order.
  std::vector<std::vector<MatchCondition>> condition_sets;  // canonical; CheckedRule::conditions indexes it
  const auto same_conditions = [&](std::uint32_t a, std::uint32_t b) {
    return a == kNone || b == kNone ? a == b : condition_sets[a] == condition_sets[b];
  };
  bool chained = false;
  // Rules in a row usually carry the same records: checked once (regex or not changes the check).
  const std::vector<PolicyRecord>* checked_records = nullptr;
  bool checked_regex = false;
  for (std::uint32_t i = 0; i < refs.size(); ++i) {
    const RuleRef& ref = refs[i];
    const Rule& rule = *ref.rule;
    // An alias copy's problems are its original's, reported once.
    auto skip = [&](std::string message) {
      if (!ref.alias_copy) report(Item::kRule, ref.model_index, std::move(message));
    };
    if (rule.source >= model.sources.size() || !source_ok[rule.source]) {
      skip("rule refers to a missing or invalid source");
      continue;
    }
    if (rule.backend >= model.backends.size() || !backends_checked.ok[rule.backend]) {
      skip("rule refers to a missing or invalid backend");
      continue;
    }
    if (std::string problem = scopes_checked.problem(rule.scope); !problem.empty()) {
      skip("rule " + problem);
      continue;
    }
    if (!scopes_checked.reachable(rule.scope)) continue;
    std::string host_error;
    const std::uint32_t group = group_of_host(rule.scope, *ref.host, host_error);
    if (!host_error.empty()) {
      skip(std::move(host_error));
      continue;
    }
    const bool regex = groups[group].regex;
    std::string path_error;
    std::string_view path = normalized_view(rule.path, regex ? PathType::kExact : rule.type, path_error);
    if (path_error.empty() && regex) path_error = check_path_pattern(path);
    if (!path_error.empty()) {
      skip(std::move(path_error));
      continue;
    }
    if (!rule.policies.empty() &&
        !(checked_records != nullptr && checked_regex == regex && *checked_records == rule.policies)) {
      if (std::string problem = check_policies(rule.policies, regex, backends_checked.ok, false); !problem.empty()) {
        skip(std::move(problem));
        continue;
      }
      checked_records = &rule.policies;
      checked_regex = regex;
    }
    std::uint32_t conditions = kNone;
    if (!rule.conditions.empty()) {
      CanonicalConditions canonical = canonical_conditions(rule.conditions);
      if (!canonical.problem.empty()) {
        skip(std::move(canonical.problem));
        continue;
      }
      conditions = static_cast<std::uint32_t>(condition_sets.size());
      condition_sets.push_back(std::move(canonical.conditions));
    }
    // On a regex host the type does not change how a path matches: one pattern, one rule.
    const format::Match match =
        regex || rule.type != PathType::kExact ? format::Match::kPrefix : format::Match::kExact;
    const auto fresh = static_cast<std::uint32_t>(checked.size());
    const std::uint32_t held = rule_index.find_or_insert(path_hash(group, match, path), fresh, [&](std::uint32_t c) {
      return checked[c].group == group && checked[c].match == match && checked[c].path == path;
    });
    if (held == fresh) {
      checked.push_back({i, group, path, match, declared_type(rule.type), conditions});
      ++groups[group].rule_count;
      continue;
    }
    // Two rules collide only when their conditions are equal too; else the new one joins the key's chain.
    std::uint32_t same = held;
    while (!same_conditions(checked[same].conditions, conditions) && checked[same].next != kNone)
      same = checked[same].next;
    if (!same_conditions(checked[same].conditions, conditions)) {
      checked[same].next = fresh;  // `same` is the last of the chain
      checked.push_back({i, group, path, match, declared_type(rule.type), conditions});
      ++groups[group].rule_count;
      chained = true;
      continue;
    }
    CheckedRule& current = checked[same];
    const RuleRef& current_ref = refs[current.ref];
    if (older(model, rule.source, i, current_ref.rule->source, current.ref)) {
      rule_losers.push_back({current.ref, same});
      current.ref = i;
      current.declared = declared_type(rule.type);
    } else {
      rule_losers.push_back({i, same});
    }
  }
  // Where a chain stands among a regex host's patterns: where its oldest rule would (ingress-nginx orders
  // regex locations by length, then by the older Ingress). Without chains a rule stands for itself.
  std::vector<std::uint32_t> chain_oldest;
  if (chained) {
    chain_oldest.resize(checked.size());
    std::vector<bool> has_previous(checked.size(), false);
    for (const CheckedRule& c : checked) {
      if (c.next != kNone) has_previous[c.next] = true;
    }
    for (std::uint32_t head = 0; head < checked.size(); ++head) {
      if (has_previous[head]) continue;
      std::uint32_t oldest = checked[head].ref;
      for (std::uint32_t c = checked[head].next; c != kNone; c = checked[c].next) {
        const std::uint32_t ref = checked[c].ref;
        if (older(model, refs[ref].rule->source, ref, refs[oldest].rule->source, oldest)) oldest = ref;
      }
      for (std::uint32_t c = head; c != kNone; c = checked[c].next) chain_oldest[c] = oldest;
    }
  }
  const auto oldest_of = [&](std::uint32_t c) { return chain_oldest.empty() ? checked[c].ref : chain_oldest[c]; };
  // Reported once settled, against the rule that is served (the model's order decides only which
  // comparisons happen, not what wins). A collision among alias copies repeats one of the originals.
  for (const auto& [loser, held] : rule_losers) {
    const CheckedRule& winner = checked[held];
    if (refs[loser].alias_copy) continue;
    result.conflicts.push_back({Item::kRule, refs[winner.ref].model_index, refs[loser].model_index,
                                display_name(groups[winner.group].key), std::string(winner.path)});
  }

  // Host-wide records: on the host they name, oldest Ingress first; a redirect that gives way to a real
  // host (from-to-www-redirect) is dropped when a rule names that host.
  for (std::uint32_t i = 0; i < model.host_policies.size(); ++i) {
    const HostPolicy& policy = model.host_policies[i];
    if (policy.source >= model.sources.size() || !source_ok[policy.source]) {
      report(Item::kHostPolicy, i, "host policy refers to a missing or invalid source");
      continue;
    }
    if (std::string problem = scopes_checked.problem(policy.scope); !problem.empty()) {
      report(Item::kHostPolicy, i, "host policy " + problem);
      continue;
    }
    std::string_view host;
    if (std::string error = stable_hosts.check(policy.host, host); !error.empty()) {
      report(Item::kHostPolicy, i, std::move(error));
      continue;
    }
    if (std::string problem = check_policies(policy.records, false, backends_checked.ok, true); !problem.empty()) {
      report(Item::kHostPolicy, i, std::move(problem));
      continue;
    }
    if (!scopes_checked.reachable(policy.scope)) continue;
    HostGroup& group = groups[group_of(host_key(policy.scope, host))];
    if (policy.unless_routed && group.rule_count != 0) {
      report(Item::kHostPolicy, i, "not applied: a rule names host " + display_name(group.key));
      continue;
    }
    group.host_policies.push_back(i);
    // An alias is the same server: it gets the host's records too (not a www redirect, which names
    // a host without rules of its own). Aliases are of the shared scope.
    if (policy.unless_routed || policy.scope != kSharedScope) continue;
    if (auto aliases = aliases_of.find(std::string(host)); aliases != aliases_of.end()) {
      for (const std::string& alias : aliases->second)
        groups[group_of(host_key(kSharedScope, alias))].host_policies.push_back(i);
    }
  }
  for (HostGroup& group : groups) {
    std::sort(group.host_policies.begin(), group.host_policies.end(), [&](std::uint32_t a, std::uint32_t b) {
      return older(model, model.host_policies[a].source, a, model.host_policies[b].source, b);
    });
  }

  // TLS: one certificate reference per host, oldest Ingress wins.
  std::vector<std::pair<std::uint32_t, std::uint32_t>> tls_losers;  // (model index, host group)
  for (std::uint32_t i = 0; i < model.tls.size(); ++i) {
    const TlsHost& tls = model.tls[i];
    std::string_view host;
    if (tls.source >= model.sources.size() || !source_ok[tls.source]) {
      report(Item::kTls, i, "tls entry refers to a missing or invalid source");
      continue;
    }
    if (std::string problem = scopes_checked.problem(tls.scope); !problem.empty()) {
      report(Item::kTls, i, "tls entry " + problem);
      continue;
    }
    if (std::string error = stable_hosts.check(tls.host, host); !error.empty()) {
      report(Item::kTls, i, std::move(error));
      continue;
    }
    if (tls.secret_ns.empty() || tls.secret_name.empty()) {
      report(Item::kTls, i, "tls entry needs a secret namespace and name");
      continue;
    }
    if (tls.certificate.chain_pem.empty() != tls.certificate.key_pem.empty()) {
      report(Item::kTls, i, "tls entry needs both a certificate chain and a key, or neither");
      continue;
    }
    if (!scopes_checked.reachable(tls.scope)) continue;
    const std::uint32_t g = group_of(host_key(tls.scope, host));
    HostGroup& group = groups[g];
    if (group.tls == kNone) {
      group.tls = i;
    } else if (older(model, tls.source, i, model.tls[group.tls].source, group.tls)) {
      tls_losers.push_back({group.tls, g});
      group.tls = i;
    } else {
      tls_losers.push_back({i, g});
    }
  }
  for (const auto& [loser, g] : tls_losers) {
    result.conflicts.push_back({Item::kTls, groups[g].tls, loser, display_name(groups[g].key), {}});
  }

  std::uint32_t default_backend = kNone;
  if (model.default_backend != kNoBackend) {
    if (model.default_backend < model.backends.size() && backends_checked.ok[model.default_backend]) {
      default_backend = model.default_backend;
    } else {
      report(Item::kDefaultBackend, 0, "default backend refers to a missing or invalid backend");
    }
  }

  // Hosts in a stable order, whatever order the model came in (the keys sorted in one array, not
  // through indexes into the groups): the shared scope's first, then scope 1's, ...
  // The first 8 bytes of a name, big-endian, order names as their bytes do; most comparisons end there.
  struct OrderedHost {
    std::uint64_t prefix;
    HostKey key;
    std::uint32_t group;
  };
  const auto prefix_of = [](std::string_view name) {
    std::uint64_t prefix = 0;
    for (std::size_t i = 0; i < 8; ++i) prefix = prefix << 8 | (i < name.size() ? static_cast<unsigned char>(name[i]) : 0u);
    return prefix;
  };
  std::vector<OrderedHost> host_order;
  host_order.reserve(groups.size());
  for (std::uint32_t g = 0; g < groups.size(); ++g) host_order.push_back({prefix_of(groups[g].key.name), groups[g].key, g});
  std::sort(host_order.begin(), host_order.end(), [](const OrderedHost& a, const OrderedHost& b) {
    if (a.key.scope != b.key.scope) return a.key.scope < b.key.scope;
    if (a.key.kind != b.key.kind) return a.key.kind < b.key.kind;
    if (a.prefix != b.prefix) return a.prefix < b.prefix;
    return a.key.name < b.key.name;
  });
  // Each group's winning rules side by side: grouped[group_first[g]] onwards, in the order checked.
  std::vector<std::uint32_t> group_first(groups.size() + 1, 0);
  for (std::uint32_t g = 0; g < groups.size(); ++g) group_first[g + 1] = group_first[g] + groups[g].rule_count;
  std::vector<std::uint32_t> grouped(checked.size());
  {
    std::vector<std::uint32_t> next(group_first.begin(), group_first.end() - 1);
    for (std::uint32_t c = 0; c < checked.size(); ++c) grouped[next[checked[c].group]++] = c;
  }

  std::size_t policy_strings = 0;
  for (const Rule& rule : model.rules) policy_strings += 2 * rule.policies.size();
  for (const std::vector<MatchCondition>& set : condition_sets) policy_strings += 2 * set.size();
  for (const HostPolicy& policy : model.host_policies) policy_strings += 2 * policy.records.size();
  StringPool strings(groups.size() + 5 * (model.tls.size() + 1) + 6 * model.scopes.size() + 2 * checked.size() + 3 * model.backends.size() +
                     2 * model.sources.size() + policy_strings);
  std::vector<std::uint32_t> backend_map(model.backends.size(), kNone);
  std::vector<std::uint32_t> source_map(model.sources.size(), kNone);
  std::vector<format::BackendEntry> backends;
  std::vector<format::EndpointEntry> endpoints;
  std::vector<format::SourceEntry> sources;

  auto use_source = [&](std::uint32_t index) {
    if (source_map[index] == kNone) {
      const Source& s = model.sources[index];
      source_map[index] = static_cast<std::uint32_t>(sources.size());
      sources.push_back({strings.add(s.ns), strings.add(s.name), s.created_unix, strings.add(s.kind)});
    }
    return source_map[index];
  };
  auto use_backend = [&](std::uint32_t index) {
    if (backend_map[index] != kNone) return backend_map[index];
    const Backend& b = model.backends[index];
    const std::vector<format::EndpointEntry>& list = backends_checked.endpoints[index];
    format::BackendEntry entry{};
    entry.ns = strings.add(b.ns);
    entry.service = strings.add(b.service);
    entry.port_name = strings.add(b.port_name);
    entry.port = b.port;
    entry.first_endpoint = static_cast<std::uint32_t>(endpoints.size());
    entry.endpoint_count = static_cast<std::uint32_t>(list.size());
    entry.ready_count = backends_checked.ready[index];
    endpoints.insert(endpoints.end(), list.begin(), list.end());
    backend_map[index] = static_cast<std::uint32_t>(backends.size());
    backends.push_back(entry);
    return backend_map[index];
  };

  // Policy sets, each distinct list of records stored once (a copy kept per set, to compare with).
  std::vector<format::PolicySet> policy_sets;
  std::vector<format::PolicyRecord> policy_records;
  std::deque<std::vector<PolicyRecord>> set_contents;
  std::unordered_map<std::uint64_t, std::vector<std::uint32_t>> set_index;
  auto policy_set = [&](const std::vector<PolicyRecord>& records) -> std::uint32_t {
    if (records.empty()) return kNone;
    std::vector<std::uint32_t>& candidates = set_index[records_hash(records)];
    for (const std::uint32_t id : candidates) {
      if (set_contents[id] == records) return id;
    }
    const auto id = static_cast<std::uint32_t>(policy_sets.size());
    policy_sets.push_back({static_cast<std::uint32_t>(policy_records.size()), static_cast<std::uint32_t>(records.size())});
    for (const PolicyRecord& r : records) {
      const std::uint32_t backend = r.backend == kNoRecordBackend ? kNone : use_backend(r.backend);
      policy_records.push_back({r.kind, r.code, r.flags, backend, 0, r.value, strings.add(r.a), strings.add(r.b)});
    }
    set_contents.push_back(records);
    candidates.push_back(id);
    return id;
  };
  // A rule's records with policy::kIfHostHasTls settled: kept without the flag when the host has a TLS
  // entry (its own, or its one-label wildcard's), else dropped.
  struct WildcardHash {
    std::size_t operator()(const HostKey& key) const noexcept { return host_hash(key.name, key.scope); }
  };
  std::unordered_set<HostKey, WildcardHash> wildcard_tls;  // wildcard hosts with a TLS entry
  for (const HostGroup& group : groups) {
    if (group.key.kind == format::HostKind::kWildcard && group.tls != kNone) wildcard_tls.insert(group.key);
  }
  std::vector<PolicyRecord> settled;
  // Rule after rule usually carries the same records (ssl-redirect's alone, on most): the last answer
  // is reused without hashing again.
  const std::vector<PolicyRecord>* last_records = nullptr;
  bool last_tls = false;
  std::uint32_t last_set = kNone;
  auto rule_set = [&](const std::vector<PolicyRecord>& records, const HostGroup& group) -> std::uint32_t {
    if (records.empty()) return kNone;
    const bool conditional = std::any_of(records.begin(), records.end(), [](const PolicyRecord& r) {
      return r.kind == PolicyKind::kRedirect && (r.flags & policy::kIfHostHasTls) != 0;
    });
    std::string_view parent;
    if (conditional && group.key.kind == format::HostKind::kExact) {
      const std::size_t dot = group.key.name.find('.');
      if (dot != std::string_view::npos) parent = group.key.name.substr(dot + 1);
    }
    const bool tls =
        conditional && (group.tls != kNone ||
                        (!parent.empty() &&
                         wildcard_tls.count({group.key.scope, format::HostKind::kWildcard, parent}) != 0));
    if (last_records != nullptr && last_tls == tls && *last_records == records) return last_set;
    last_records = &records;
    last_tls = tls;
    if (!conditional) return last_set = policy_set(records);
    settled.clear();
    for (const PolicyRecord& r : records) {
      if (r.kind != PolicyKind::kRedirect || (r.flags & policy::kIfHostHasTls) == 0) {
        settled.push_back(r);
      } else if (tls) {
        settled.push_back(r);
        settled.back().flags &= ~std::uint32_t{policy::kIfHostHasTls};
      }
    }
    return last_set = policy_set(settled);
  };
  std::vector<format::HostEntry> hosts;
  std::vector<format::RuleEntry> rules;
  std::vector<format::TlsEntry> tls_entries;
  // One range per rule once any rule has conditions; none at all in a table without them.
  std::vector<format::ConditionEntry> condition_entries;
  std::vector<format::ConditionRange> rule_conditions;
  if (!condition_sets.empty()) rule_conditions.assign(checked.size(), {0, 0});
  // Precedence among rules of one (host, match, path): a method first, then more headers, then more query
  // parameters (Gateway API), then the older source, then the model's order.
  const auto weight_of = [&](const CheckedRule& c) {
    return c.conditions == kNone ? ConditionWeight{} : condition_weight(condition_sets[c.conditions]);
  };
  const auto chain_before = [&](const CheckedRule& a, const CheckedRule& b) {
    const ConditionWeight wa = weight_of(a);
    const ConditionWeight wb = weight_of(b);
    if (wa.method != wb.method) return wa.method;
    if (wa.headers != wb.headers) return wa.headers > wb.headers;
    if (wa.queries != wb.queries) return wa.queries > wb.queries;
    return older(model, refs[a.ref].rule->source, a.ref, refs[b.ref].rule->source, b.ref);
  };
  const auto same_key = [](const CheckedRule& a, const CheckedRule& b) {
    return a.group == b.group && a.match == b.match && a.path == b.path;
  };
  std::vector<std::pair<std::uint64_t, std::uint32_t>> exact_index, wildcard_index, path_index;
  std::vector<std::uint32_t> any_host(scopes_checked.locals.size() + 1, kNone);  // by scope
  hosts.reserve(groups.size());
  rules.reserve(checked.size());
  path_index.reserve(checked.size());

  for (const OrderedHost& ordered : host_order) {
    const HostGroup& group = groups[ordered.group];
    const HostKey& key = group.key;
    const auto first = grouped.begin() + group_first[ordered.group];
    const auto last = first + group.rule_count;
    const auto host_number = static_cast<std::uint32_t>(hosts.size());
    format::HostEntry host{};
    host.name = strings.add(key.name);
    host.hash = host_hash(key.name, key.scope);
    host.scope = key.scope;
    set_key(host.key, key.name);
    host.kind = key.kind;
    host.flags = static_cast<std::uint8_t>((group.regex ? format::kRegexPaths : 0) |
                                           (group.any_depth ? format::kAnyDepth : 0) |
                                           (group.isolated ? format::kIsolated : 0));
    host.first_rule = static_cast<std::uint32_t>(rules.size());
    host.rule_count = group.rule_count;
    host.tls = kNone;
    host.policies = kNone;
    if (!group.host_policies.empty()) {
      std::vector<PolicyRecord> gathered;
      for (const std::uint32_t p : group.host_policies) {
        const std::vector<PolicyRecord>& records = model.host_policies[p].records;
        gathered.insert(gathered.end(), records.begin(), records.end());
      }
      host.policies = policy_set(gathered);
    }
    if (group.regex) {
      // As ingress-nginx orders regex locations: longest path first, then the older Ingress. Lookup
      // tries them in this order; the rules of one pattern (a chain) stay together.
      std::sort(first, last, [&](std::uint32_t x, std::uint32_t y) {
        const CheckedRule& a = checked[x];
        const CheckedRule& b = checked[y];
        if (a.path.size() != b.path.size()) return a.path.size() > b.path.size();
        if (a.path != b.path) {
          const std::uint32_t ra = oldest_of(x);
          const std::uint32_t rb = oldest_of(y);
          return older(model, refs[ra].rule->source, ra, refs[rb].rule->source, rb);
        }
        return chain_before(a, b);
      });
    } else {
      // Precedence order: longest path first, Exact before Prefix on a tie, then a key's chain in its
      // order. Lookup finds a key by the hash tables, so only a chain's order matters to it.
      std::sort(first, last, [&](std::uint32_t x, std::uint32_t y) {
        const CheckedRule& a = checked[x];
        const CheckedRule& b = checked[y];
        if (a.path.size() != b.path.size()) return a.path.size() > b.path.size();
        if (a.match != b.match) return a.match < b.match;
        if (const int order = a.path.compare(b.path); order != 0) return order < 0;
        return chain_before(a, b);
      });
    }
    bool chained_from_previous = false;
    for (auto it = first; it != last; ++it) {
      const CheckedRule& rule = checked[*it];
      const bool chain_head = !chained_from_previous;
      const bool chain_next = it + 1 != last && same_key(rule, checked[*(it + 1)]);
      chained_from_previous = chain_next;
      const Rule& declared = *refs[rule.ref].rule;
      format::RuleEntry entry{};
      entry.path = strings.add(rule.path);
      entry.hash = path_hash(host.hash, rule.match, rule.path);
      set_key(entry.key, rule.path);
      entry.host = host_number;
      entry.match = rule.match;
      entry.declared = rule.declared;
      const std::string_view declared_path = declared.path.empty() ? std::string_view("/") : declared.path;
      entry.declared_path = declared_path == rule.path ? entry.path : strings.add(declared_path);
      entry.backend = use_backend(declared.backend);
      entry.source = use_source(declared.source);
      entry.policies = rule_set(declared.policies, group);
      entry.flags = chain_next ? std::uint16_t{format::kChainNext} : std::uint16_t{0};
      if (rule.conditions != kNone) {
        entry.flags |= format::kHasConditions;
        const std::vector<MatchCondition>& set = condition_sets[rule.conditions];
        rule_conditions[rules.size()] = {static_cast<std::uint32_t>(condition_entries.size()),
                                         static_cast<std::uint32_t>(set.size())};
        for (const MatchCondition& c : set)
          condition_entries.push_back({strings.add(c.name), strings.add(c.value), c.kind, {}});
      }
      const auto length = static_cast<std::uint32_t>(rule.path.size());
      // Patterns are not probed by length: the bounds are for hashed lookups only.
      if (!group.regex && rule.match == format::Match::kPrefix) {
        host.max_prefix_length = std::max(host.max_prefix_length, length);
      } else if (!group.regex) {
        host.max_exact_length = std::max(host.max_exact_length, length);
      }
      if (chain_head) path_index.emplace_back(entry.hash, static_cast<std::uint32_t>(rules.size()));
      rules.push_back(entry);
    }
    if (group.tls != kNone) {
      const TlsHost& tls = model.tls[group.tls];
      host.tls = static_cast<std::uint32_t>(tls_entries.size());
      const std::string full = display_name(key);
      tls_entries.push_back(tls_entry(strings, full, tls.secret_ns, tls.secret_name, tls.certificate,
                                      use_source(tls.source)));
    }
    switch (key.kind) {
      case format::HostKind::kExact: exact_index.emplace_back(host.hash, host_number); break;
      case format::HostKind::kWildcard: wildcard_index.emplace_back(host.hash, host_number); break;
      case format::HostKind::kAny: any_host[key.scope] = host_number; break;
    }
    hosts.push_back(host);
  }
  if (default_backend != kNone) default_backend = use_backend(default_backend);
  std::uint32_t default_tls = kNone;
  if (!model.default_certificate.chain_pem.empty()) {
    default_tls = static_cast<std::uint32_t>(tls_entries.size());
    tls_entries.push_back(tls_entry(strings, "", "", "", model.default_certificate, kNone));
  }
  // Each scope's entries, one per usable local address, with what its lookups need.
  std::vector<format::ScopeEntry> scope_entries;
  std::vector<format::StrRef> listener_names;
  for (std::size_t i = 0; i < scopes_checked.locals.size(); ++i) {
    if (scopes_checked.locals[i].empty()) continue;
    const Scope& scope = model.scopes[i];
    std::uint32_t scope_tls = kNone;
    if (!scope.default_certificate.chain_pem.empty()) {
      scope_tls = static_cast<std::uint32_t>(tls_entries.size());
      tls_entries.push_back(tls_entry(strings, "", "", "", scope.default_certificate, kNone));
    }
    const format::StrRef name = strings.add(scope.name);
    const auto first_name = static_cast<std::uint32_t>(listener_names.size());
    for (const std::string& listener : scopes_checked.names[i]) listener_names.push_back(strings.add(listener));
    for (format::ScopeEntry entry : scopes_checked.locals[i]) {
      entry.any_host = any_host[i + 1];
      entry.default_tls = scope_tls;
      entry.name = name;
      entry.first_listener_name = first_name;
      entry.listener_name_count = static_cast<std::uint32_t>(scopes_checked.names[i].size());
      scope_entries.push_back(entry);
    }
  }

  const std::vector<std::uint32_t> host_slots = make_slots(exact_index);
  const std::vector<std::uint32_t> wildcard_slots = make_slots(wildcard_index);
  const std::vector<std::uint32_t> path_slots = make_slots(path_index);
  SnapshotWriter writer(sizeof(format::Header) + strings.bytes().size() + hosts.size() * sizeof(format::HostEntry) +
                        (host_slots.size() + wildcard_slots.size() + path_slots.size()) * 4 +
                        rules.size() * sizeof(format::RuleEntry) + backends.size() * sizeof(format::BackendEntry) +
                        endpoints.size() * sizeof(format::EndpointEntry) + sources.size() * sizeof(format::SourceEntry) +
                        tls_entries.size() * sizeof(format::TlsEntry) + policy_sets.size() * sizeof(format::PolicySet) +
                        policy_records.size() * sizeof(format::PolicyRecord) +
                        condition_entries.size() * sizeof(format::ConditionEntry) +
                        rule_conditions.size() * sizeof(format::ConditionRange) +
                        scope_entries.size() * sizeof(format::ScopeEntry) +
                        listener_names.size() * sizeof(format::StrRef) + format::kSectionCount * format::kEntryAlign);
  writer.raw_section(format::kStrings, strings.bytes().data(), strings.bytes().size(), strings.bytes().size());
  writer.section(format::kHosts, hosts, format::kEntryAlign);
  writer.section(format::kHostSlots, host_slots);
  writer.section(format::kWildcardSlots, wildcard_slots);
  writer.section(format::kRules, rules, format::kEntryAlign);
  writer.section(format::kPathSlots, path_slots);
  writer.section(format::kBackends, backends);
  writer.section(format::kEndpoints, endpoints);
  writer.section(format::kSources, sources);
  writer.section(format::kTls, tls_entries);
  writer.section(format::kPolicySets, policy_sets);
  writer.section(format::kPolicyRecords, policy_records);
  writer.section(format::kConditions, condition_entries);
  writer.section(format::kRuleConditions, rule_conditions);
  writer.section(format::kScopes, scope_entries);
  writer.section(format::kListenerNames, listener_names);

  format::Header header{};
  header.magic = format::kMagic;
  header.version = format::kVersion;
  header.generation = 0;
  header.built_unix_ms =
      options.built_unix_ms != 0
          ? options.built_unix_ms
          : static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                           std::chrono::system_clock::now().time_since_epoch())
                                           .count());
  header.any_host = any_host[kSharedScope];
  header.default_backend = default_backend;
  header.default_tls = default_tls;
  header.flags = (model.use_forwarded_headers ? std::uint32_t{format::kUseForwardedHeaders} : 0u) |
                 (any_depth_hosts ? std::uint32_t{format::kAnyDepthHosts} : 0u);
  result.bytes = writer.finish(header);
  result.stats = {hosts.size(),         rules.size(),       backends.size(),       endpoints.size(),
                  tls_entries.size(),   policy_sets.size(), policy_records.size()};
  return result;
}

}  // namespace kroute
