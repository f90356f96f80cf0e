// Which ready endpoint of a backend takes the next request. Shared by the nginx module's balancer and the
// tests, so the choice is testable without nginx. An endpoint of weight 0 takes no share, whatever its
// flags: when every candidate has weight 0 (or is skipped) there is no pick and the caller answers 503.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "format.h"

namespace kroute {

inline constexpr std::size_t kNoPick = static_cast<std::size_t>(-1);

// Smooth weighted round-robin (nginx's own algorithm) when `current` holds one running weight per
// endpoint of `ready` (the caller keeps it per snapshot); a weighted random choice from `random` when
// `current` is null. `skip(i)` leaves out endpoint i (already tried, recently failed). No allocation,
// no system call: this runs for every proxied request.
template <typename Skip>
std::size_t pick_endpoint(std::span<const format::EndpointEntry> ready, std::int64_t* current,
                          std::uint64_t random, Skip&& skip) noexcept {
  const auto candidate = [&](std::size_t i) { return ready[i].weight != 0 && !skip(i); };
  std::int64_t total = 0;
  std::size_t best = kNoPick;
  for (std::size_t i = 0; i < ready.size(); ++i) {
    if (!candidate(i)) continue;
    total += ready[i].weight;
    if (current != nullptr) {
      current[i] += ready[i].weight;
      if (best == kNoPick || current[i] > current[best]) best = i;
    } else if (best == kNoPick) {
      best = i;
    }
  }
  if (best == kNoPick) return kNoPick;  // else total > 0: every candidate weighs at least 1
  if (current != nullptr) {
    current[best] -= total;
    return best;
  }
  auto point = static_cast<std::int64_t>(random % static_cast<std::uint64_t>(total));
  for (std::size_t i = 0; i < ready.size(); ++i) {
    if (!candidate(i)) continue;
    point -= ready[i].weight;
    if (point < 0) return i;
  }
  return best;
}

}  // namespace kroute
