// The small HTTP listener: /healthz (the loop is alive), /readyz (synced and published) and /metrics
// (Prometheus text format), served by cpp-httplib on its own thread.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "metrics.h"

namespace httplib {
class Server;
}

namespace kroute::agent {

class HealthServer {
 public:
  // `heartbeat_ms` is the steady-clock time (ms) of the loop's last tick; /healthz fails when it is stale.
  HealthServer(const Metrics& metrics, const std::atomic<long long>& heartbeat_ms);
  ~HealthServer();
  // Binds host:port (port 0: any); returns false and sets `error` on failure.
  bool start(const std::string& listen, std::string& error);
  int port() const { return port_; }

 private:
  const Metrics& metrics_;
  const std::atomic<long long>& heartbeat_ms_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

long long steady_ms();

}  // namespace kroute::agent
