#include "health.h"

#include <httplib.h>

#include <algorithm>
#include <chrono>

#include "log.h"

namespace kroute::agent {

long long steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

HealthServer::HealthServer(const Metrics& metrics, const std::atomic<long long>& heartbeat_ms)
    : metrics_(metrics), heartbeat_ms_(heartbeat_ms), server_(std::make_unique<httplib::Server>()) {}

HealthServer::~HealthServer() {
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

void track_apiserver(kube::Client& client, Metrics& metrics) {
  client.add_reachability_handler([&metrics](const kube::Reachability& reachability) {
    if (!reachability.reachable) metrics.apiserver_probe_failures.fetch_add(1, std::memory_order_relaxed);
    if (!reachability.changed) return;
    metrics.apiserver_connected.store(reachability.reachable, std::memory_order_relaxed);
    if (reachability.reachable) {
      const auto since = static_cast<long long>(metrics.apiserver_unreachable_since_ms.exchange(0));
      if (since != 0) log::info("the API server answers again", {{"after_s", (steady_ms() - since) / 1000}});
      return;
    }
    metrics.apiserver_disconnects.fetch_add(1, std::memory_order_relaxed);
    metrics.apiserver_unreachable_since_ms.store(static_cast<std::uint64_t>(steady_ms()), std::memory_order_relaxed);
    log::warn("the API server does not answer; nginx keeps serving the last table; retrying with backoff",
              {{"error", reachability.error}});
  });
}

ReadinessAnswer answer_readiness(const std::vector<ReadinessCheck>& checks, bool verbose,
                                 const std::vector<std::string>& exclude) {
  for (const std::string& name : exclude) {
    if (std::none_of(checks.begin(), checks.end(), [&](const ReadinessCheck& c) { return name == c.name; })) {
      std::string known;
      for (const ReadinessCheck& c : checks) known += std::string(known.empty() ? "" : ", ") + c.name;
      return {400, "no readiness check named \"" + name + "\" (there are: " + known + ")\n"};
    }
  }
  bool ok = true;
  std::string listing;
  std::string reasons;
  for (const ReadinessCheck& check : checks) {
    const bool excluded = std::find(exclude.begin(), exclude.end(), check.name) != exclude.end();
    if (excluded) {
      listing += std::string("[+]") + check.name + " excluded: " + (check.ok ? "ok" : check.reason) + "\n";
      continue;
    }
    listing += std::string(check.ok ? "[+]" : "[-]") + check.name + (check.ok ? " ok" : " failed: " + check.reason) + "\n";
    if (!check.ok) {
      ok = false;
      reasons += (reasons.empty() ? "" : "; ") + check.reason;
    }
  }
  if (verbose) return {ok ? 200 : 503, listing + (ok ? "readyz check passed\n" : "readyz check failed\n")};
  return {ok ? 200 : 503, ok ? "ok\n" : "not ready: " + reasons + "\n"};
}

bool parse_listen(std::string_view text, ListenAddress& out, std::string& error) {
  const auto refuse = [&](const std::string& why) {
    error = "--listen must be host:port such as 0.0.0.0:10254 or [::1]:10254; \"" + std::string(text) + "\" " + why;
    return false;
  };
  const std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return refuse("has no port");
  std::string_view host = text.substr(0, colon);
  const std::string_view port = text.substr(colon + 1);
  const bool bracketed = host.size() >= 2 && host.front() == '[' && host.back() == ']';
  if (bracketed) host = host.substr(1, host.size() - 2);
  if (host.empty()) return refuse("has no host (0.0.0.0 for every address)");
  const std::string_view allowed = bracketed ? "0123456789abcdefABCDEF:."
                                             : "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-.";
  if (host.find_first_not_of(allowed) != std::string_view::npos) {
    return refuse(bracketed ? "has a bracketed host that is not an IPv6 address"
                            : "has a host that is neither an address nor a name (IPv6 goes in brackets)");
  }
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string_view::npos ||
      std::stoi(std::string(port)) > 65535) {
    return refuse("has no port number from 0 to 65535");
  }
  out = {std::string(host), std::stoi(std::string(port))};
  return true;
}

bool HealthServer::start(const ListenAddress& listen, std::string& error) {
  const std::string shown = listen.host + ":" + std::to_string(listen.port);
  server_->Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
    // The loop ticks at least every second; ten seconds without a tick is a wedged agent.
    const bool alive = steady_ms() - heartbeat_ms_.load(std::memory_order_relaxed) < 10000;
    res.status = alive ? 200 : 500;
    res.set_content(alive ? "ok\n" : "event loop stalled\n", "text/plain");
  });
  server_->Get("/readyz", [this](const httplib::Request& req, httplib::Response& res) {
    std::vector<std::string> exclude;
    for (std::size_t i = 0; i < req.get_param_value_count("exclude"); ++i)
      exclude.push_back(req.get_param_value("exclude", i));
    const ReadinessAnswer answer =
        answer_readiness(metrics_.readiness(steady_ms()), req.has_param("verbose"), exclude);
    res.status = answer.status;
    res.set_content(answer.body, "text/plain");
  });
  server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_.render(), "text/plain; version=0.0.4");
  });
  server_->new_task_queue = [] { return new httplib::ThreadPool(2); };
  if (listen.port == 0) {
    port_ = server_->bind_to_any_port(listen.host);
    if (port_ < 0) {
      error = "cannot listen on " + shown;
      return false;
    }
  } else {
    if (!server_->bind_to_port(listen.host, listen.port)) {
      error = "cannot listen on " + shown + " (in use, or not a local address)";
      return false;
    }
    port_ = listen.port;
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  return true;
}

}  // namespace kroute::agent
