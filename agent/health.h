// The small HTTP listener: /healthz (the loop is alive), /readyz (synced and published, the API server
// answering, the table written) and /metrics (Prometheus text format), served by cpp-httplib on its own
// thread.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "kube/client.h"
#include "metrics.h"

namespace httplib {
class Server;
}

namespace kroute::agent {

// --listen: "host:port" or "[ipv6]:port"; the host an address or a name (no ':' outside brackets), the
// port 0 to 65535 (0: any free port).
struct ListenAddress {
  std::string host;
  int port = 0;
};
bool parse_listen(std::string_view text, ListenAddress& out, std::string& error);

class HealthServer {
 public:
  // `heartbeat_ms` is the steady-clock time (ms) of the loop's last tick; /healthz fails when it is stale.
  HealthServer(const Metrics& metrics, const std::atomic<long long>& heartbeat_ms);
  ~HealthServer();
  // Binds host:port (port 0: any); returns false and sets `error` on failure.
  bool start(const ListenAddress& listen, std::string& error);
  int port() const { return port_; }

 private:
  const Metrics& metrics_;
  const std::atomic<long long>& heartbeat_ms_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

long long steady_ms();

// Keeps the API server's reachability (the client's probes and answers) in `metrics`, for /readyz and
// /metrics, and logs each change once.
void track_apiserver(kube::Client& client, Metrics& metrics);

struct ReadinessAnswer {
  int status;
  std::string body;
};

// /readyz in kube-apiserver's manner: 200 "ok" when every check holds, 503 naming those that do not.
// `exclude` skips checks by name (an unknown name is a 400, so a typo in a probe shows at once);
// `verbose` lists each check as "[+]name ok" or "[-]name failed: reason".
ReadinessAnswer answer_readiness(const std::vector<ReadinessCheck>& checks, bool verbose,
                                 const std::vector<std::string>& exclude);

}  // namespace kroute::agent
