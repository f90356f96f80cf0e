#include "health.h"

#include <httplib.h>

#include <chrono>

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

bool HealthServer::start(const std::string& listen, std::string& error) {
  const std::size_t colon = listen.rfind(':');
  if (colon == std::string::npos) {
    error = "--listen must be host:port, not " + listen;
    return false;
  }
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty()) host = "0.0.0.0";
  int port = 0;
  try {
    port = std::stoi(listen.substr(colon + 1));
  } catch (const std::exception&) {
    error = "--listen has no port number: " + listen;
    return false;
  }
  server_->Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
    // The loop ticks at least every second; ten seconds without a tick is a wedged agent.
    const bool alive = steady_ms() - heartbeat_ms_.load(std::memory_order_relaxed) < 10000;
    res.status = alive ? 200 : 500;
    res.set_content(alive ? "ok\n" : "event loop stalled\n", "text/plain");
  });
  server_->Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
    const bool ready = metrics_.ready.load(std::memory_order_relaxed);
    res.status = ready ? 200 : 503;
    res.set_content(ready ? "ok\n" : "not ready: watches syncing or no table published yet\n", "text/plain");
  });
  server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_.render(), "text/plain; version=0.0.4");
  });
  server_->new_task_queue = [] { return new httplib::ThreadPool(2); };
  if (port == 0) {
    port_ = server_->bind_to_any_port(host);
    if (port_ < 0) {
      error = "cannot listen on " + listen;
      return false;
    }
  } else {
    if (!server_->bind_to_port(host, port)) {
      error = "cannot listen on " + listen + " (in use, or not a local address)";
      return false;
    }
    port_ = port;
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  return true;
}

}  // namespace kroute::agent
