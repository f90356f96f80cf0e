// The API server client: one curl multi handle driving every request and streaming watch, plus the
// timers of the agent, all on one thread. Authentication (bearer token from a file that is re-read,
// client certificates) and TLS (CA bundle) come from ClusterAccess.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kube/config.h"

namespace kroute::agent::kube {

struct Request {
  std::string method = "GET";
  std::string path;                              // "/api/v1/...", query included
  std::string body;
  std::string content_type = "application/json";
  bool stream = false;                           // deliver a 200 body in chunks as it arrives
  std::chrono::seconds stall_timeout{0};         // stream: give up when nothing arrives this long
  std::chrono::milliseconds timeout{30000};      // not a stream: the whole request
};

struct Response {
  long status = 0;              // HTTP status; 0 when none was received
  std::string body;             // the body (a stream's only when its status is not 200)
  std::string transport_error;  // set when the transfer failed (connection, TLS, timeout)
  bool aborted = false;         // the chunk handler asked to stop

  bool ok() const { return transport_error.empty() && !aborted && status >= 200 && status < 300; }
  // "HTTP 403 Forbidden: <the Status message>" or the transport error, for logs.
  std::string describe() const;
};

using RequestId = std::uint64_t;
using TimerId = std::uint64_t;

// What a reachability handler hears: after every failed probe (reachable false), and when an answer
// comes after none (reachable true). `changed`: the state differs from the last one heard.
struct Reachability {
  bool reachable = false;
  bool changed = false;
  std::string error;  // the failed probe's
};

class Client {
 public:
  using ChunkHandler = std::function<bool(std::string_view)>;  // false: abort the transfer
  using DoneHandler = std::function<void(Response&&)>;

  struct Transfer;  // one request in flight (defined in client.cc)

  static std::unique_ptr<Client> create(const ClusterAccess& access, std::string& error);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Starts a request; `on_done` runs on the loop thread when it ends (never from inside send), also
  // when it is sent from a chunk handler (curl runs those, and takes no new transfer then: it starts
  // when curl returns) or curl refuses it (an error answer).
  RequestId send(Request request, DoneHandler on_done, ChunkHandler on_chunk = {});
  // Stops a request; its `on_done` is not called. Unknown ids are ignored. From a chunk handler the
  // transfer is let go when curl returns.
  void cancel(RequestId id);

  TimerId after(std::chrono::milliseconds delay, std::function<void()> fn);
  void cancel_timer(TimerId id);

  // Runs transfers and timers until `stop` is true. Another thread (or a signal handler that sets
  // `stop`) calls wakeup() so the loop notices at once.
  void run(const std::atomic<bool>& stop);
  void wakeup();

  const ClusterAccess& access() const { return access_; }

  // Whether the API server answers. Any HTTP answer to any request (a watch's first bytes included) is
  // contact. After a request fails without one, and every `interval` anyway, a probe (GET /version,
  // timing out after `interval`) decides: no answer, no contact. A watch on a connection that went
  // dark (a network partition) only learns it from a probe: its stream just stays silent.
  void probe_every(std::chrono::milliseconds interval);
  using ReachabilityHandler = std::function<void(const Reachability&)>;
  std::uint64_t add_reachability_handler(ReachabilityHandler handler);
  void remove_reachability_handler(std::uint64_t id);

 private:
  enum class Reach { kUnknown, kReachable, kUnreachable };

  explicit Client(ClusterAccess access);
  void start(RequestId id);
  void start_deferred();
  void finish_done_transfers();
  void release_cancelled();
  void run_due_timers();
  std::chrono::milliseconds until_next_timer() const;
  void contact();
  void probe();
  void probe_soon();
  void schedule_probe();
  void notify(const Reachability& reachability);

  ClusterAccess access_;
  TokenSource token_;
  void* multi_ = nullptr;  // CURLM*
  RequestId next_id_ = 1;
  std::unordered_map<RequestId, std::unique_ptr<Transfer>> transfers_;
  // While curl runs (curl_multi_perform, which calls the chunk handlers) it refuses to add or remove a
  // transfer: those wait here until it returns. A refused start is answered with an error.
  bool in_curl_ = false;
  std::vector<RequestId> deferred_starts_;
  std::vector<std::unique_ptr<Transfer>> cancelled_;
  std::vector<std::pair<RequestId, std::string>> refused_;
  std::map<std::pair<std::chrono::steady_clock::time_point, TimerId>, std::function<void()>> timers_;
  std::unordered_map<TimerId, std::chrono::steady_clock::time_point> timer_due_;
  TimerId next_timer_ = 1;
  Reach reach_ = Reach::kUnknown;
  std::chrono::milliseconds probe_interval_{0};  // 0: no probes
  RequestId probe_request_ = 0;
  TimerId probe_timer_ = 0;
  TimerId probe_soon_timer_ = 0;
  std::chrono::steady_clock::time_point last_probe_{};
  std::map<std::uint64_t, ReachabilityHandler> reachability_handlers_;
  std::uint64_t next_handler_ = 1;
};

// Percent-encodes a query parameter value.
std::string url_encode(std::string_view value);

}  // namespace kroute::agent::kube
