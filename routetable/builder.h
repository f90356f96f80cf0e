// RouteTableBuilder: route model -> snapshot bytes. Checks every input, skips what is invalid with a
// diagnostic, merges the rules of all Ingresses per host and settles collisions (oldest Ingress wins).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "model.h"

namespace kroute {

enum class Item { kRule, kBackend, kEndpoint, kTls, kSource, kDefaultBackend, kHostPolicy, kAlias, kScope };

// Something in the model that was skipped. `index` is the item's index in its model vector; for
// endpoints, `index` is the backend and `sub_index` the endpoint within it; for a scope's local address,
// `index` is the scope's index in RouteModel::scopes (its ScopeId - 1) and `sub_index` the local address.
struct Diagnostic {
  Item item;
  std::uint32_t index = 0;
  std::uint32_t sub_index = 0;
  std::string message;
};

// Two rules (or two TLS entries) claimed the same host + path + type; the loser is not in the table.
struct Conflict {
  Item item;               // kRule or kTls
  std::uint32_t winner;    // index into RouteModel::rules or ::tls
  std::uint32_t loser;
  std::string host;
  std::string path;        // normalized; "" for TLS
};

struct BuildStats {
  std::size_t hosts = 0;
  std::size_t rules = 0;
  std::size_t backends = 0;
  std::size_t endpoints = 0;
  std::size_t tls = 0;
  std::size_t policy_sets = 0;
  std::size_t policy_records = 0;
};

struct BuildResult {
  std::vector<std::byte> bytes;   // a complete snapshot with generation 0; the publisher stamps it
  std::vector<Diagnostic> diagnostics;
  std::vector<Conflict> conflicts;
  BuildStats stats;
};

struct BuildOptions {
  std::uint64_t built_unix_ms = 0;  // 0: now
};

BuildResult build_snapshot(const RouteModel& model, const BuildOptions& options = {});

// Normalized form of a rule path for matching, or an error. Prefix paths lose trailing slashes ("/" -> "").
struct NormalizedPath {
  std::string path;
  std::string error;
};
NormalizedPath normalize_rule_path(std::string_view path, PathType type);

const char* item_name(Item item) noexcept;

}  // namespace kroute
