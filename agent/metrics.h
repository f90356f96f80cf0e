// Counters and gauges of the agent, updated with relaxed atomics from the loop thread and rendered in
// the Prometheus text format by the health listener's thread.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "kind.h"

namespace kroute::agent {

class Histogram {
 public:
  static constexpr std::array<double, 12> kBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                     0.1,   0.25,   0.5,   1.0,  2.5,   5.0};
  void observe(std::chrono::nanoseconds value);
  void render(std::string& out, const char* name) const;

 private:
  std::array<std::atomic<std::uint64_t>, kBounds.size()> buckets_{};
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> sum_ns_{0};
};

enum class WatchEventKind { kAdded, kModified, kDeleted, kBookmark };

// One condition of readiness (/readyz): "synced", "apiserver" or "table".
struct ReadinessCheck {
  const char* name;
  bool ok;
  std::string reason;  // why not, when not ok
};

struct Metrics {
  using Counter = std::atomic<std::uint64_t>;
  template <typename T>
  using PerKind = std::array<T, kKindCount>;

  // The resources this agent watches (the Gateway API kinds only with --gateway-controller); the
  // per-resource series are rendered for these alone.
  PerKind<std::atomic<bool>> watched{};
  PerKind<Counter> watch_restarts{};
  PerKind<Counter> relists{};
  PerKind<Counter> bad_objects{};
  PerKind<Counter> objects{};  // gauge
  PerKind<std::array<Counter, 4>> events{};
  Counter publishes{0};
  Counter publishes_unchanged{0};
  Counter compiles_patched{0};
  Counter publish_errors{0};
  Counter generation{0};  // gauge
  Counter routes{0};      // gauge: rules in the current table
  Counter tls_certificates_expired{0};  // gauge: TLS Secrets whose certificate had expired when read
  Histogram publish_duration;
  Histogram change_to_publish;
  Counter status_updates{0};
  Counter status_errors{0};
  Counter events_emitted{0};
  Counter leader{0};  // gauge: 1 while this replica holds the lease
  Counter leader_transitions{0};
  std::atomic<bool> ready{false};  // every watch has synced and the first table is published
  // The API server (docs/agent.md, "Faults"): contact means any HTTP answer; a failed probe loses it.
  std::atomic<bool> apiserver_connected{false};
  Counter apiserver_unreachable_since_ms{0};  // steady-clock ms when contact was lost; 0 while connected
  Counter apiserver_disconnects{0};
  Counter apiserver_probe_failures{0};
  // The table directory: true from a failed publish until the next one succeeds (nginx serves the last).
  std::atomic<bool> table_publish_failing{false};
  Counter table_repairs{0};  // tables put back after their directory, control file or snapshot vanished
  Counter table_dir_full{0};  // publishes that found the table directory full and removed older snapshots

  static std::size_t at(Kind kind) { return static_cast<std::size_t>(kind); }
  // Every readiness condition, at steady-clock time `now_ms`; ready means all of them hold.
  std::vector<ReadinessCheck> readiness(long long now_ms) const;
  std::string render() const;
};

}  // namespace kroute::agent
