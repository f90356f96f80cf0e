#include "metrics.h"

#include <fmt/format.h>

namespace kroute::agent {
namespace {

void header(std::string& out, const char* name, const char* type, const char* help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void per_kind(std::string& out, const char* name, const char* type, const char* help, const Metrics& metrics,
              const Metrics::PerKind<Metrics::Counter>& values) {
  header(out, name, type, help);
  for (Kind kind : kAllKinds) {
    if (!metrics.watched[Metrics::at(kind)].load(std::memory_order_relaxed)) continue;
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
           "Watches that ended with an error or went silent and were started again.", *this, watch_restarts);
  per_kind(out, "kroute_agent_relists_total", "counter",
           "Full LISTs after the first one (410 Gone, expired resourceVersion, failed list).", *this, relists);
  per_kind(out, "kroute_agent_bad_objects_total", "counter", "Objects that could not be used and were skipped.",
           *this, bad_objects);
  per_kind(out, "kroute_agent_objects", "gauge", "Objects in the agent's store.", *this, objects);
  header(out, "kroute_agent_watch_events_total", "counter", "Watch events processed.");
  static constexpr const char* kEventNames[] = {"ADDED", "MODIFIED", "DELETED", "BOOKMARK"};
  for (Kind kind : kAllKinds) {
    if (!watched[at(kind)].load(std::memory_order_relaxed)) continue;
    for (std::size_t t = 0; t < 4; ++t) {
      out += fmt::format("kroute_agent_watch_events_total{{resource=\"{}\",type=\"{}\"}} {}\n", kind_info(kind).name,
                         kEventNames[t], events[at(kind)][t].load(std::memory_order_relaxed));
    }
  }
  single(out, "kroute_agent_tls_certificates_expired", "gauge",
         "TLS Secrets whose certificate had expired when last read (served anyway, as ingress-nginx does).",
         tls_certificates_expired);
  single(out, "kroute_agent_publishes_total", "counter", "Route tables published.", publishes);
  single(out, "kroute_agent_publishes_unchanged_total", "counter",
         "Compilations whose table equalled the published one (not published).", publishes_unchanged);
  single(out, "kroute_agent_compiles_patched_total", "counter",
         "Compilations that patched the last table (a few Ingresses changed) instead of compiling every Ingress.",
         compiles_patched);
  single(out, "kroute_agent_publish_errors_total", "counter", "Route tables that could not be published.",
         publish_errors);
  single(out, "kroute_agent_table_generation", "gauge", "Generation of the table this agent published last.",
         generation);
  single(out, "kroute_agent_table_rules", "gauge", "Rules in the table this agent published last.", routes);
  header(out, "kroute_agent_publish_duration_seconds", "histogram",
         "Compile, build and publish time of a route table (also when unchanged).");
  publish_duration.render(out, "kroute_agent_publish_duration_seconds");
  header(out, "kroute_agent_change_to_publish_seconds", "histogram",
         "From the first watch event of a change to its table being published (or found unchanged): the "
         "agent's share of route propagation, with any coalescing wait.");
  change_to_publish.render(out, "kroute_agent_change_to_publish_seconds");
  single(out, "kroute_agent_status_updates_total", "counter", "Ingress status updates written.", status_updates);
  single(out, "kroute_agent_status_errors_total", "counter", "Ingress status or Event writes that failed.",
         status_errors);
  single(out, "kroute_agent_events_total", "counter", "Warning Events created.", events_emitted);
  single(out, "kroute_agent_leader", "gauge", "1 while this replica holds the leader Lease.", leader);
  single(out, "kroute_agent_leader_transitions_total", "counter", "Times this replica became leader.",
         leader_transitions);
  header(out, "kroute_agent_apiserver_connected", "gauge",
         "1 while the API server answers; 0 from a failed probe until the next answer.");
  out += fmt::format("kroute_agent_apiserver_connected {}\n", apiserver_connected.load(std::memory_order_relaxed) ? 1 : 0);
  single(out, "kroute_agent_apiserver_disconnects_total", "counter", "Times the API server stopped answering.",
         apiserver_disconnects);
  single(out, "kroute_agent_apiserver_probe_failures_total", "counter",
         "Probes of the API server that got no answer.", apiserver_probe_failures);
  header(out, "kroute_agent_table_publish_failing", "gauge",
         "1 while the route table cannot be written (nginx serves the last one published).");
  out += fmt::format("kroute_agent_table_publish_failing {}\n",
                     table_publish_failing.load(std::memory_order_relaxed) ? 1 : 0);
  single(out, "kroute_agent_table_repairs_total", "counter",
         "Tables published again because their directory, control file or snapshot was removed.", table_repairs);
  single(out, "kroute_agent_table_dir_full_total", "counter",
         "Publishes that found the table directory full and removed all snapshots but the current one first.",
         table_dir_full);
  bool all_ready = true;
  for (const ReadinessCheck& check : readiness(0)) all_ready = all_ready && check.ok;
  header(out, "kroute_agent_ready", "gauge",
         "1 while /readyz answers 200: watches synced and a table published, the API server answering, the "
         "last publish written.");
  out += fmt::format("kroute_agent_ready {}\n", all_ready ? 1 : 0);
  return out;
}

std::vector<ReadinessCheck> Metrics::readiness(long long now_ms) const {
  std::vector<ReadinessCheck> checks;
  const bool synced = ready.load(std::memory_order_relaxed);
  checks.push_back({"synced", synced, synced ? "" : "watches syncing or no table published yet"});
  const bool connected = apiserver_connected.load(std::memory_order_relaxed);
  std::string why;
  if (!connected) {
    const auto since = static_cast<long long>(apiserver_unreachable_since_ms.load(std::memory_order_relaxed));
    why = since == 0 ? "no answer from the API server yet"
                     : fmt::format("the API server has not answered for {}s", (now_ms - since) / 1000);
  }
  checks.push_back({"apiserver", connected, why});
  const bool failing = table_publish_failing.load(std::memory_order_relaxed);
  checks.push_back({"table", !failing, failing ? "the route table cannot be written; nginx serves the last one" : ""});
  return checks;
}

}  // namespace kroute::agent
