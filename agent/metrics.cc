#include "metrics.h"

#include <fmt/format.h>

namespace kroute::agent {
namespace {

void header(std::string& out, const char* name, const char* type, const char* help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void per_kind(std::string& out, const char* name, const char* type, const char* help,
              const Metrics::PerKind<Metrics::Counter>& values) {
  header(out, name, type, help);
  for (Kind kind : kAllKinds) {
    out += fmt::format("{}{{resource=\"{}\"}} {}\n", name, kind_info(kind).name,
                       values[Metrics::at(kind)].load(std::memory_order_relaxed));
  }
}

void single(std::string& out, const char* name, const char* type, const char* help, const Metrics::Counter& value) {
  header(out, name, type, help);
  out += fmt::format("{} {}\n", name, value.load(std::memory_order_relaxed));
}

}  // namespace

void Histogram::observe(std::chrono::nanoseconds value) {
  const double seconds = std::chrono::duration<double>(value).count();
  for (std::size_t i = 0; i < kBounds.size(); ++i) {
    if (seconds <= kBounds[i]) buckets_[i].fetch_add(1, std::memory_order_relaxed);
  }
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(static_cast<std::uint64_t>(value.count()), std::memory_order_relaxed);
}

void Histogram::render(std::string& out, const char* name) const {
  for (std::size_t i = 0; i < kBounds.size(); ++i) {
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, kBounds[i], buckets_[i].load(std::memory_order_relaxed));
  }
  const std::uint64_t count = count_.load(std::memory_order_relaxed);
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n", name, count);
  out += fmt::format("{}_sum {:.6f}\n", name, static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9);
  out += fmt::format("{}_count {}\n", name, count);
}

std::string Metrics::render() const {
  std::string out;
  out.reserve(8192);
  per_kind(out, "kroute_agent_watch_restarts_total", "counter",
           "Watches that ended with an error or went silent and were started again.", watch_restarts);
  per_kind(out, "kroute_agent_relists_total", "counter",
           "Full LISTs after the first one (410 Gone, expired resourceVersion, failed list).", relists);
  per_kind(out, "kroute_agent_bad_objects_total", "counter", "Objects that could not be used and were skipped.",
           bad_objects);
  per_kind(out, "kroute_agent_objects", "gauge", "Objects in the agent's store.", objects);
  header(out, "kroute_agent_watch_events_total", "counter", "Watch events processed.");
  static constexpr const char* kEventNames[] = {"ADDED", "MODIFIED", "DELETED", "BOOKMARK"};
  for (Kind kind : kAllKinds) {
    for (std::size_t t = 0; t < 4; ++t) {
      out += fmt::format("kroute_agent_watch_events_total{{resource=\"{}\",type=\"{}\"}} {}\n", kind_info(kind).name,
                         kEventNames[t], events[at(kind)][t].load(std::memory_order_relaxed));
    }
  }
  single(out, "kroute_agent_publishes_total", "counter", "Route tables published.", publishes);
  single(out, "kroute_agent_publishes_unchanged_total", "counter",
         "Compilations whose table equalled the published one (not published).", publishes_unchanged);
  single(out, "kroute_agent_publish_errors_total", "counter", "Route tables that could not be published.",
         publish_errors);
  single(out, "kroute_agent_table_generation", "gauge", "Generation of the table this agent published last.",
         generation);
  single(out, "kroute_agent_table_rules", "gauge", "Rules in the table this agent published last.", routes);
  header(out, "kroute_agent_publish_duration_seconds", "histogram",
         "Compile, build and publish time of a route table (also when unchanged).");
  publish_duration.render(out, "kroute_agent_publish_duration_seconds");
  single(out, "kroute_agent_status_updates_total", "counter", "Ingress status updates written.", status_updates);
  single(out, "kroute_agent_status_errors_total", "counter", "Ingress status or Event writes that failed.",
         status_errors);
  single(out, "kroute_agent_events_total", "counter", "Warning Events created.", events_emitted);
  single(out, "kroute_agent_leader", "gauge", "1 while this replica holds the leader Lease.", leader);
  single(out, "kroute_agent_leader_transitions_total", "counter", "Times this replica became leader.",
         leader_transitions);
  header(out, "kroute_agent_ready", "gauge", "1 once every watch has synced and the first table is published.");
  out += fmt::format("kroute_agent_ready {}\n", ready.load(std::memory_order_relaxed) ? 1 : 0);
  return out;
}

}  // namespace kroute::agent
