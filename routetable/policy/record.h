// A policy record in the route model: what a rule or a host does besides choosing a backend. The
// meaning of `code`, `flags`, `a` and `b` belongs to the kind (one header per kind in this directory);
// the builder stores records as they are, after the kind's own check (kinds.h).
#pragma once

#include <cstdint>
#include <string>

#include "../format.h"

namespace kroute {

using format::PolicyKind;

inline constexpr std::uint32_t kNoRecordBackend = format::kNone;

struct PolicyRecord {
  PolicyKind kind = PolicyKind::kRedirect;
  std::uint16_t code = 0;
  std::uint32_t flags = 0;
  // A backend of the model (an index into RouteModel::backends) the record sends requests to, or
  // kNoRecordBackend; the builder stores the snapshot's index of it.
  std::uint32_t backend = kNoRecordBackend;
  std::uint64_t value = 0;
  std::string a;
  std::string b;
  bool operator==(const PolicyRecord&) const = default;
};

}  // namespace kroute
