#include "builder.h"

#include <arpa/inet.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <set>
#include <string_view>
#include <tuple>
#include <unordered_map>

#include "format.h"
#include "hashing.h"
#include "host.h"

namespace kroute {

namespace {

using format::kNone;

class StringPool {
 public:
  format::StrRef add(std::string_view s) {
    if (auto it = index_.find(std::string(s)); it != index_.end()) return it->second;
    const format::StrRef ref{static_cast<std::uint32_t>(bytes_.size()), static_cast<std::uint32_t>(s.size())};
    bytes_.append(s);
    index_.emplace(std::string(s), ref);
    return ref;
  }
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
  std::unordered_map<std::string, format::StrRef> index_;
};

// A rule that passed its checks, with its host and path in matching form.
struct CheckedRule {
  std::uint32_t model_index;
  format::HostKind kind;
  std::string host_key;  // exact name, wildcard suffix, or "" for host-less
  std::string path;      // normalized
  format::Match match;
  format::DeclaredType declared;
};

struct HostKey {
  format::HostKind kind;
  std::string name;
  bool operator<(const HostKey& other) const { return std::tie(kind, name) < std::tie(other.kind, other.name); }
};

format::DeclaredType declared_type(PathType type) {
  switch (type) {
    case PathType::kExact: return format::DeclaredType::kExact;
    case PathType::kPrefix: return format::DeclaredType::kPrefix;
    case PathType::kImplementationSpecific: return format::DeclaredType::kImplementationSpecific;
  }
  return format::DeclaredType::kPrefix;
}

HostKey host_key(const std::string& normalized) {
  if (normalized.empty()) return {format::HostKind::kAny, ""};
  if (normalized.starts_with("*.")) return {format::HostKind::kWildcard, normalized.substr(2)};
  return {format::HostKind::kExact, normalized};
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

// Open addressing with linear probing; slot value is entry index + 1.
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

class SnapshotWriter {
 public:
  SnapshotWriter() : bytes_(sizeof(format::Header)) {}

  template <typename T>
  void section(format::Section id, const std::vector<T>& elements) {
    raw_section(id, elements.data(), elements.size() * sizeof(T), elements.size());
  }

  void raw_section(format::Section id, const void* data, std::size_t size, std::size_t count) {
    bytes_.resize((bytes_.size() + format::kAlign - 1) / format::kAlign * format::kAlign);
    header_.sections[id] = {bytes_.size(), count};
    const auto* begin = static_cast<const std::byte*>(data);
    bytes_.insert(bytes_.end(), begin, begin + size);
  }

  std::vector<std::byte> finish(format::Header header) {
    bytes_.resize((bytes_.size() + format::kAlign - 1) / format::kAlign * format::kAlign);
    std::copy(std::begin(header_.sections), std::end(header_.sections), std::begin(header.sections));
    header.header_size = sizeof(format::Header);
    header.total_size = bytes_.size();
    header.checksum = payload_checksum(bytes_.data() + sizeof header, bytes_.size() - sizeof header);
    std::memcpy(bytes_.data(), &header, sizeof header);
    return std::move(bytes_);
  }

 private:
  std::vector<std::byte> bytes_;
  format::Header header_{};
};

}  // namespace

const char* item_name(Item item) noexcept {
  switch (item) {
    case Item::kRule: return "rule";
    case Item::kBackend: return "backend";
    case Item::kEndpoint: return "endpoint";
    case Item::kTls: return "tls";
    case Item::kSource: return "source";
    case Item::kDefaultBackend: return "default backend";
  }
  return "item";
}

NormalizedPath normalize_rule_path(std::string_view path, PathType type) {
  if (path.empty()) path = "/";
  if (path.front() != '/') return {{}, "path must start with '/'"};
  if (path.size() > format::kMaxPathLength) return {{}, "path is longer than 4096 characters"};
  for (unsigned char c : path) {
    if (c <= 0x20 || c == 0x7f) return {{}, "path must not contain spaces or control characters"};
  }
  std::string normalized(path);
  if (type != PathType::kExact) {
    while (!normalized.empty() && normalized.back() == '/') normalized.pop_back();
  }
  return {std::move(normalized), {}};
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
  // Endpoints of every backend are checked here, used or not, so every mistake is reported.
  std::vector<bool> backend_ok(model.backends.size(), true);
  std::vector<std::vector<format::EndpointEntry>> backend_endpoints(model.backends.size());
  std::vector<std::uint32_t> backend_ready(model.backends.size(), 0);
  for (std::uint32_t i = 0; i < model.backends.size(); ++i) {
    const Backend& b = model.backends[i];
    if (b.ns.empty() || b.service.empty()) {
      report(Item::kBackend, i, "backend needs a namespace and a service");
      backend_ok[i] = false;
    } else if ((b.port == 0) == b.port_name.empty()) {
      report(Item::kBackend, i, "backend needs exactly one of a port number (1-65535) or a port name");
      backend_ok[i] = false;
    } else if (b.port > 65535) {
      report(Item::kBackend, i, "backend port must be 1-65535");
      backend_ok[i] = false;
    }
    std::vector<format::EndpointEntry> ready;
    std::vector<format::EndpointEntry> not_ready;
    std::set<std::tuple<std::uint8_t, std::string, std::uint16_t>> seen;
    for (std::uint32_t e = 0; e < b.endpoints.size(); ++e) {
      const Endpoint& ep = b.endpoints[e];
      format::EndpointEntry out{};
      if (!parse_address(ep.address, out)) {
        report(Item::kEndpoint, i, "endpoint address is not an IPv4 or IPv6 address: " + ep.address, e);
        continue;
      }
      if (ep.port == 0) {
        report(Item::kEndpoint, i, "endpoint port must be 1-65535", e);
        continue;
      }
      const std::string address(reinterpret_cast<const char*>(out.address), sizeof out.address);
      if (!seen.emplace(out.family, address, ep.port).second) continue;  // duplicates add nothing
      out.port = ep.port;
      out.weight = ep.weight;
      out.flags = static_cast<std::uint8_t>((ep.ready ? format::kReady : 0) | (ep.serving ? format::kServing : 0) |
                                            (ep.terminating ? format::kTerminating : 0));
      // A zero weight takes no traffic: such an endpoint is kept for dump but not counted as ready.
      (ep.ready && ep.weight > 0 ? ready : not_ready).push_back(out);
    }
    backend_ready[i] = static_cast<std::uint32_t>(ready.size());
    ready.insert(ready.end(), not_ready.begin(), not_ready.end());
    backend_endpoints[i] = std::move(ready);
  }

  // Rules: check, normalize, then settle collisions on (host, match, path).
  std::map<std::tuple<HostKey, format::Match, std::string>, CheckedRule> winners;
  for (std::uint32_t i = 0; i < model.rules.size(); ++i) {
    const Rule& rule = model.rules[i];
    if (rule.source >= model.sources.size() || !source_ok[rule.source]) {
      report(Item::kRule, i, "rule refers to a missing or invalid source");
      continue;
    }
    if (rule.backend >= model.backends.size() || !backend_ok[rule.backend]) {
      report(Item::kRule, i, "rule refers to a missing or invalid backend");
      continue;
    }
    std::string host;
    if (!rule.host.empty()) {
      if (std::string error = check_rule_host(rule.host, host); !error.empty()) {
        report(Item::kRule, i, std::move(error));
        continue;
      }
    }
    NormalizedPath path = normalize_rule_path(rule.path, rule.type);
    if (!path.error.empty()) {
      report(Item::kRule, i, std::move(path.error));
      continue;
    }
    const format::Match match = rule.type == PathType::kExact ? format::Match::kExact : format::Match::kPrefix;
    const HostKey key = host_key(host);
    CheckedRule checked{i, key.kind, key.name, std::move(path.path), match, declared_type(rule.type)};
    auto [it, inserted] = winners.try_emplace(std::make_tuple(key, match, checked.path), checked);
    if (inserted) continue;
    CheckedRule& current = it->second;
    const Rule& held = model.rules[current.model_index];
    if (older(model, rule.source, i, held.source, current.model_index)) {
      result.conflicts.push_back({Item::kRule, i, current.model_index, host, checked.path});
      current = std::move(checked);
    } else {
      result.conflicts.push_back({Item::kRule, current.model_index, i, host, checked.path});
    }
  }

  // TLS: one certificate reference per host, oldest Ingress wins.
  std::map<HostKey, std::uint32_t> tls_winner;
  for (std::uint32_t i = 0; i < model.tls.size(); ++i) {
    const TlsHost& tls = model.tls[i];
    std::string host;
    if (tls.source >= model.sources.size() || !source_ok[tls.source]) {
      report(Item::kTls, i, "tls entry refers to a missing or invalid source");
      continue;
    }
    if (std::string error = check_rule_host(tls.host, host); !error.empty()) {
      report(Item::kTls, i, std::move(error));
      continue;
    }
    if (tls.secret_ns.empty() || tls.secret_name.empty()) {
      report(Item::kTls, i, "tls entry needs a secret namespace and name");
      continue;
    }
    auto [it, inserted] = tls_winner.try_emplace(host_key(host), i);
    if (inserted) continue;
    const std::uint32_t held = it->second;
    if (older(model, tls.source, i, model.tls[held].source, held)) {
      result.conflicts.push_back({Item::kTls, i, held, host, {}});
      it->second = i;
    } else {
      result.conflicts.push_back({Item::kTls, held, i, host, {}});
    }
  }

  std::uint32_t default_backend = kNone;
  if (model.default_backend != kNoBackend) {
    if (model.default_backend < model.backends.size() && backend_ok[model.default_backend]) {
      default_backend = model.default_backend;
    } else {
      report(Item::kDefaultBackend, 0, "default backend refers to a missing or invalid backend");
    }
  }

  // Hosts in a stable order; every host with rules or TLS gets an entry.
  std::map<HostKey, std::vector<const CheckedRule*>> rules_by_host;
  for (const auto& [key, rule] : winners) rules_by_host[std::get<0>(key)].push_back(&rule);
  for (const auto& [key, index] : tls_winner) rules_by_host[key];

  StringPool strings;
  std::vector<std::uint32_t> backend_map(model.backends.size(), kNone);
  std::vector<std::uint32_t> source_map(model.sources.size(), kNone);
  std::vector<format::BackendEntry> backends;
  std::vector<format::EndpointEntry> endpoints;
  std::vector<format::SourceEntry> sources;

  auto use_source = [&](std::uint32_t index) {
    if (source_map[index] == kNone) {
      const Source& s = model.sources[index];
      source_map[index] = static_cast<std::uint32_t>(sources.size());
      sources.push_back({strings.add(s.ns), strings.add(s.name), s.created_unix});
    }
    return source_map[index];
  };
  auto use_backend = [&](std::uint32_t index) {
    if (backend_map[index] != kNone) return backend_map[index];
    const Backend& b = model.backends[index];
    format::BackendEntry entry{};
    entry.ns = strings.add(b.ns);
    entry.service = strings.add(b.service);
    entry.port_name = strings.add(b.port_name);
    entry.port = b.port;
    entry.first_endpoint = static_cast<std::uint32_t>(endpoints.size());
    entry.endpoint_count = static_cast<std::uint32_t>(backend_endpoints[index].size());
    entry.ready_count = backend_ready[index];
    endpoints.insert(endpoints.end(), backend_endpoints[index].begin(), backend_endpoints[index].end());
    backend_map[index] = static_cast<std::uint32_t>(backends.size());
    backends.push_back(entry);
    return backend_map[index];
  };

  std::vector<format::HostEntry> hosts;
  std::vector<format::RuleEntry> rules;
  std::vector<format::TlsEntry> tls_entries;
  std::vector<std::pair<std::uint64_t, std::uint32_t>> exact_index, wildcard_index, path_index;
  std::uint32_t any_host = kNone;

  for (auto& [key, host_rules] : rules_by_host) {
    const auto host_number = static_cast<std::uint32_t>(hosts.size());
    format::HostEntry host{};
    host.name = strings.add(key.name);
    host.hash = host_hash(key.name);
    host.kind = key.kind;
    host.first_rule = static_cast<std::uint32_t>(rules.size());
    host.rule_count = static_cast<std::uint32_t>(host_rules.size());
    host.tls = kNone;
    // Precedence order: longest path first, Exact before Prefix on a tie. Lookup uses the hash
    // tables, so this order is for dump and for anyone reading the snapshot.
    std::sort(host_rules.begin(), host_rules.end(), [](const CheckedRule* a, const CheckedRule* b) {
      return std::make_tuple(b->path.size(), a->match, a->path) < std::make_tuple(a->path.size(), b->match, b->path);
    });
    for (const CheckedRule* checked : host_rules) {
      const Rule& rule = model.rules[checked->model_index];
      format::RuleEntry entry{};
      entry.path = strings.add(checked->path);
      entry.hash = path_hash(host_number, checked->match, checked->path);
      entry.host = host_number;
      entry.match = checked->match;
      entry.declared = checked->declared;
      entry.declared_path = strings.add(rule.path.empty() ? "/" : rule.path);
      entry.backend = use_backend(rule.backend);
      entry.source = use_source(rule.source);
      if (checked->match == format::Match::kPrefix)
        host.max_prefix_length = std::max<std::uint32_t>(host.max_prefix_length, checked->path.size());
      path_index.emplace_back(entry.hash, static_cast<std::uint32_t>(rules.size()));
      rules.push_back(entry);
    }
    if (auto it = tls_winner.find(key); it != tls_winner.end()) {
      const TlsHost& tls = model.tls[it->second];
      host.tls = static_cast<std::uint32_t>(tls_entries.size());
      const std::string full = key.kind == format::HostKind::kWildcard ? "*." + key.name : key.name;
      tls_entries.push_back(
          {strings.add(full), strings.add(tls.secret_ns), strings.add(tls.secret_name), use_source(tls.source), 0});
    }
    switch (key.kind) {
      case format::HostKind::kExact: exact_index.emplace_back(host.hash, host_number); break;
      case format::HostKind::kWildcard: wildcard_index.emplace_back(host.hash, host_number); break;
      case format::HostKind::kAny: any_host = host_number; break;
    }
    hosts.push_back(host);
  }
  if (default_backend != kNone) default_backend = use_backend(default_backend);

  SnapshotWriter writer;
  writer.raw_section(format::kStrings, strings.bytes().data(), strings.bytes().size(), strings.bytes().size());
  writer.section(format::kHosts, hosts);
  writer.section(format::kHostSlots, make_slots(exact_index));
  writer.section(format::kWildcardSlots, make_slots(wildcard_index));
  writer.section(format::kRules, rules);
  writer.section(format::kPathSlots, make_slots(path_index));
  writer.section(format::kBackends, backends);
  writer.section(format::kEndpoints, endpoints);
  writer.section(format::kSources, sources);
  writer.section(format::kTls, tls_entries);

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
  header.any_host = any_host;
  header.default_backend = default_backend;
  result.bytes = writer.finish(header);
  result.stats = {hosts.size(), rules.size(), backends.size(), endpoints.size(), tls_entries.size()};
  return result;
}

}  // namespace kroute
