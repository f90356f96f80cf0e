#include "agent.h"

#include "log.h"

namespace kroute::agent {

Agent::Agent(kube::Client& client, TablePublisher& publisher, Metrics& metrics, AgentOptions options)
    : client_(client),
      publisher_(publisher),
      metrics_(metrics),
      options_(std::move(options)),
      store_(metrics, [this](Change change, Kind kind, const std::string& key) { on_change(change, kind, key); },
             options_.annotation_prefix),
      status_(client, metrics, store_, options_.status),
      gateway_status_(client, metrics, store_, options_.compile.gateway.controller) {}

void Agent::start() {
  for (Kind kind : kAllKinds) {
    if (is_gateway_kind(kind) && options_.compile.gateway.controller.empty()) continue;
    kube::WatchOptions watch = options_.watch;
    if (!kind_info(kind).namespaced) watch.ns.clear();
    metrics_.watched[Metrics::at(kind)].store(true, std::memory_order_relaxed);
    watchers_.push_back(std::make_unique<kube::Watcher>(client_, kind, store_, metrics_, watch));
  }
  for (auto& watcher : watchers_) watcher->start();
  if (options_.elect) {
    elector_ = std::make_unique<Elector>(client_, metrics_, options_.election,
                                         [this](bool leader) {
                                           status_.set_leader(leader);
                                           gateway_status_.set_leader(leader);
                                         });
    elector_->start();
  }
}

void Agent::shutdown(std::function<void()> done) {
  client_.cancel_timer(publish_timer_);
  watchers_.clear();
  if (elector_) {
    elector_->release(std::move(done));
  } else {
    done();
  }
}

bool Agent::all_synced() const {
  for (const auto& watcher : watchers_) {
    if (!watcher->synced()) return false;
  }
  return !watchers_.empty();
}

void Agent::on_change(Change change, Kind kind, const std::string& key) {
  // What reached the store, in order (with --log-level debug): enough to tell a lost event from a lost write.
  if (log::enabled(log::Level::kDebug)) {
    log::debug("object changed", {{"resource", kind_info(kind).name},
                                  {"object", key.empty() ? std::string("(relisted)") : key},
                                  {"change", change == Change::kStatus ? "status" : "routes"}});
  }
  if (change == Change::kStatus) {
    if (is_gateway_kind(kind)) {
      gateway_status_.reconcile(kind, key);
    } else {
      status_.reconcile(key);
    }
    return;
  }
  if (kind == Kind::kIngress) compile_cache_.ingress_changed(key);
  if (kind == Kind::kService) compile_cache_.service_changed(key);
  if (kind == Kind::kEndpointSlice) compile_cache_.slice_changed(store_, key);
  if (kind == Kind::kIngress) {
    if (key.empty()) {
      ingresses_relisted_ = true;
    } else {
      changed_ingresses_.insert(key);
    }
  }
  // Nothing is published before every kind has synced: a table with Ingresses but no endpoints yet
  // would answer 503 for routes that work.
  if (!synced_) {
    if (!all_synced()) return;
    synced_ = true;
    log::info("every watch has synced; publishing the first table");
  }
  if (!pending_since_) pending_since_ = std::chrono::steady_clock::now();
  if (publish_timer_ != 0) return;
  // The first change after a quiet spell is published at once (after the events already received are
  // applied); later ones wait until a coalescing window has passed since that publish, so a burst
  // costs one compile per window and a single change costs no waiting at all.
  const auto now = std::chrono::steady_clock::now();
  const auto next = last_publish_ + options_.coalesce;
  const auto delay = next > now ? std::chrono::duration_cast<std::chrono::milliseconds>(next - now) +
                                      std::chrono::milliseconds(1)
                                : std::chrono::milliseconds(0);
  publish_timer_ = client_.after(delay, [this] {
    publish_timer_ = 0;
    publish();
  });
}

void Agent::publish() {
  const auto started = std::chrono::steady_clock::now();
  // The cache's table: valid until the next compile.
  const CompiledTable& table = compile(store_, options_.compile, compile_cache_);
  if (compile_cache_.last_patched()) {
    metrics_.compiles_patched.fetch_add(1, std::memory_order_relaxed);
  } else {
    only_patched_ = false;
  }
  if (compile_cache_.last_unchanged() && table_current_) {
    // The table nginx has (endpoints of a Service no Ingress routes to, say): nothing to build or write,
    // and no coalescing window for the next change to wait out.
    const auto finished = std::chrono::steady_clock::now();
    metrics_.publish_duration.observe(finished - started);
    if (pending_since_) metrics_.change_to_publish.observe(finished - *pending_since_);
    pending_since_.reset();
    metrics_.publishes_unchanged.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  last_publish_ = started;
  if (table.default_certificate_problem != default_certificate_problem_) {
    default_certificate_problem_ = table.default_certificate_problem;
    if (default_certificate_problem_.empty()) {
      log::info("default certificate in use", {{"secret", options_.compile.default_certificate}});
    } else {
      log::warn("no default certificate; nginx serves its own", {{"error", default_certificate_problem_}});
    }
  }
  PublishOutcome outcome = publisher_.publish(table);
  const auto finished = std::chrono::steady_clock::now();
  metrics_.publish_duration.observe(finished - started);
  table_current_ = outcome.error.empty();
  if (!outcome.error.empty()) {
    // Logged and counted by the publisher. Try again later: the directory may come back (a remounted
    // tmpfs, a full disk freed).
    publish_timer_ = client_.after(std::chrono::seconds(1), [this] {
      publish_timer_ = 0;
      publish();
    });
    return;
  }
  // One thread runs the watches and this: every change pending now is in this table.
  if (pending_since_) {
    metrics_.change_to_publish.observe(finished - *pending_since_);
    pending_since_.reset();
  }
  if (outcome.published) {
    metrics_.publishes.fetch_add(1, std::memory_order_relaxed);
    metrics_.generation.store(outcome.generation, std::memory_order_relaxed);
    metrics_.routes.store(outcome.stats.rules, std::memory_order_relaxed);
    log::info("route table published",
              {{"generation", outcome.generation}, {"ingresses", table.owned.size()}, {"hosts", outcome.stats.hosts},
               {"rules", outcome.stats.rules}, {"backends", outcome.stats.backends},
               {"endpoints", outcome.stats.endpoints},
               {"ms", std::chrono::duration<double, std::milli>(outcome.duration).count()}});
  } else {
    metrics_.publishes_unchanged.fetch_add(1, std::memory_order_relaxed);
    log::debug("route table unchanged", {{"generation", outcome.generation}});
  }
  if (!metrics_.ready.exchange(true)) log::info("ready", {{"generation", outcome.generation}});
  // Each warning is logged once, when it appears.
  std::set<Warning> current(outcome.warnings.begin(), outcome.warnings.end());
  for (const Warning& w : current) {
    if (warnings_.count(w) == 0) {
      log::warn(w.kind.empty() ? "ingress problem" : "route problem",
                {{w.kind.empty() ? "ingress" : "route", w.ns + "/" + w.name}, {"reason", w.reason}, {"message", w.message}});
    }
  }
  warnings_ = std::move(current);
  status_.update(table.owned, outcome.warnings, only_patched_ && !ingresses_relisted_ ? &changed_ingresses_ : nullptr);
  only_patched_ = true;
  if (ingresses_relisted_) {
    status_.reconcile();
  } else {
    for (const std::string& key : changed_ingresses_) status_.reconcile(key);
  }
  ingresses_relisted_ = false;
  changed_ingresses_.clear();
  gateway_status_.update(table.gateway_status);
}

}  // namespace kroute::agent
