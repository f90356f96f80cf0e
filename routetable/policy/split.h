// kSplit: a rule's requests are shared among backends by weight (Gateway API HTTPRoute backendRefs).
// One record per backendRef, in the order given: `backend` the backend (a model backend index, or
// kNoRecordBackend for an invalid backendRef, whose share of the requests gets 500, as the Gateway API
// asks), `value` its weight (0: never chosen). A rule with split records takes each request to one
// record with probability weight / sum of weights; a sum of 0 answers 500. The rule's own backend stays
// what dump and logs name until a record is chosen; the agent gives it the first valid backendRef's (or,
// when none is valid, a Backend without endpoints naming the first one). The chosen backend's endpoints
// are then balanced as any rule's. Applied per request by ngx_http_kroute_split_module.c.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>

#include "record.h"

namespace kroute::policy {

// Weights are 32-bit (the Gateway API allows 0 to 1,000,000), so sums of any number of them fit.
inline constexpr std::uint64_t kMaxSplitWeight = std::numeric_limits<std::uint32_t>::max();

inline PolicyRecord split(std::uint32_t backend, std::uint32_t weight) {
  return {.kind = PolicyKind::kSplit, .backend = backend, .value = weight};
}

inline constexpr std::size_t kNoShare = static_cast<std::size_t>(-1);

// The index (into `records`) of the kSplit record a uniform random number picks, each with probability
// weight / total; other kinds in `records` are skipped. kNoShare when the weights add up to 0.
inline std::size_t pick_split(std::span<const format::PolicyRecord> records, std::uint64_t random) noexcept {
  std::uint64_t total = 0;
  for (const format::PolicyRecord& r : records) {
    if (r.kind == PolicyKind::kSplit) total += r.value;
  }
  if (total == 0) return kNoShare;
  std::uint64_t point = random % total;
  for (std::size_t i = 0; i < records.size(); ++i) {
    if (records[i].kind != PolicyKind::kSplit) continue;
    if (point < records[i].value) return i;
    point -= records[i].value;
  }
  return kNoShare;
}

std::string check_split(const PolicyRecord& record, bool captures);

}  // namespace kroute::policy
