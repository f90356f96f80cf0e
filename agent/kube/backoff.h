// Exponential backoff with jitter for failed lists and watches; it starts over after a healthy period.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <random>

namespace kroute::agent::kube {

struct BackoffPolicy {
  std::chrono::milliseconds initial{500};
  std::chrono::milliseconds max{30000};
  double factor = 2.0;
  double jitter = 0.5;                       // the delay is scaled by a random factor in [1-jitter, 1+jitter)
  std::chrono::milliseconds reset_after{60000};  // a failure this long after the previous one starts over
};

class Backoff {
 public:
  explicit Backoff(BackoffPolicy policy = {}, std::uint64_t seed = std::random_device{}());
  // The delay before retrying after a failure at `now`.
  std::chrono::milliseconds next(std::chrono::steady_clock::time_point now);
  // Starts over: the failures so far were someone else's (an outage that has ended).
  void reset() {
    attempt_ = 0;
    last_failure_.reset();
  }
  int attempts() const { return attempt_; }

 private:
  BackoffPolicy policy_;
  std::mt19937_64 random_;
  int attempt_ = 0;
  std::optional<std::chrono::steady_clock::time_point> last_failure_;
};

}  // namespace kroute::agent::kube
