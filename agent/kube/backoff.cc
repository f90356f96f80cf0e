#include "kube/backoff.h"

#include <algorithm>
#include <cmath>

namespace kroute::agent::kube {

Backoff::Backoff(BackoffPolicy policy, std::uint64_t seed) : policy_(policy), random_(seed) {}

std::chrono::milliseconds Backoff::next(std::chrono::steady_clock::time_point now) {
  if (last_failure_ && now - *last_failure_ >= policy_.reset_after) attempt_ = 0;
  last_failure_ = now;
  const double base = std::min(static_cast<double>(policy_.max.count()),
                               static_cast<double>(policy_.initial.count()) * std::pow(policy_.factor, attempt_));
  if (base < static_cast<double>(policy_.max.count())) ++attempt_;
  std::uniform_real_distribution<double> spread(1.0 - policy_.jitter, 1.0 + policy_.jitter);
  const double delay = std::min(base * spread(random_), static_cast<double>(policy_.max.count()));
  return std::chrono::milliseconds(static_cast<long long>(delay));
}

}  // namespace kroute::agent::kube
