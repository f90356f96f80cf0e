// Which ready endpoint of a backend takes the next request. Shared by the nginx module's balancer and the
// tests, so the choice is testable without nginx. An endpoint of weight 0 takes no share, whatever its
// flags: when every candidate has weight 0 (or is skipped) there is no pick and the caller answers 503.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

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

// An endpoint's identity for session cookies: a hash of its address and port only, so the same pod
// has the same id in every snapshot, every worker and every nginx replica.
std::uint64_t endpoint_id(const format::EndpointEntry& endpoint) noexcept;

// The hash of an upstream-hash-by key.
std::uint64_t key_hash(std::string_view key) noexcept;

// A 64-bit mix of a key and an endpoint id (rendezvous hashing's score).
inline std::uint64_t rendezvous_score(std::uint64_t key, std::uint64_t id) noexcept {
  std::uint64_t x = key ^ (id * 0x9e3779b97f4a7c15ULL);
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// Rendezvous (highest random weight) hashing: the candidate with the highest score for `key`. A key
// moves only when its endpoint leaves or a new endpoint outscores it (1/N of the keys for the N-th),
// whatever the endpoints' order. O(N) per request and allocation-free; weights are not considered
// (every ready endpoint of a Service weighs the same).
template <typename Skip>
std::size_t pick_hashed(std::span<const format::EndpointEntry> ready, std::uint64_t key, Skip&& skip) noexcept {
  std::size_t best = kNoPick;
  std::uint64_t best_score = 0;
  for (std::size_t i = 0; i < ready.size(); ++i) {
    if (ready[i].weight == 0 || skip(i)) continue;
    const std::uint64_t score = rendezvous_score(key, endpoint_id(ready[i]));
    if (best == kNoPick || score > best_score) {
      best = i;
      best_score = score;
    }
  }
  return best;
}

// The ready endpoint whose endpoint_id() is `id`, or kNoPick.
template <typename Skip>
std::size_t find_endpoint(std::span<const format::EndpointEntry> ready, std::uint64_t id, Skip&& skip) noexcept {
  for (std::size_t i = 0; i < ready.size(); ++i) {
    if (ready[i].weight != 0 && !skip(i) && endpoint_id(ready[i]) == id) return i;
  }
  return kNoPick;
}

// Power of two choices (ingress-nginx's ewma balancer): of two distinct candidates drawn from `random`,
// the one with the lower score (expected latency); the only candidate when there is one.
template <typename Score, typename Skip>
std::size_t pick_two_choices(std::span<const format::EndpointEntry> ready, std::uint64_t random, Score&& score,
                             Skip&& skip) noexcept {
  std::size_t count = 0;
  for (std::size_t i = 0; i < ready.size(); ++i) count += ready[i].weight != 0 && !skip(i);
  if (count == 0) return kNoPick;
  const auto nth = [&](std::size_t n) {
    for (std::size_t i = 0; i < ready.size(); ++i) {
      if (ready[i].weight == 0 || skip(i)) continue;
      if (n-- == 0) return i;
    }
    return kNoPick;
  };
  const std::size_t first_n = random % count;
  const std::size_t first = nth(first_n);
  if (count == 1) return first;
  std::size_t second_n = (random >> 32) % (count - 1);  // among the others
  if (second_n >= first_n) ++second_n;
  const std::size_t second = nth(second_n);
  return score(second) < score(first) ? second : first;
}

// Session cookie values: 16 lowercase hex digits of a 64-bit number (an endpoint id or a session key).
inline constexpr std::size_t kCookieValueLength = 16;
void format_cookie_value(std::uint64_t number, char out[kCookieValueLength]) noexcept;
// False for anything but 16 hex digits (a cookie from elsewhere, or tampered with).
bool parse_cookie_value(std::string_view text, std::uint64_t& number) noexcept;

// Exponentially weighted moving average of response time, decaying with time as ingress-nginx's ewma.lua
// does (decay time 10 s): `elapsed_ms` since the last update.
double ewma_update(double average, double sample_ms, std::uint64_t elapsed_ms) noexcept;

}  // namespace kroute
