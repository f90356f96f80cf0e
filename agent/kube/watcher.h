// One resource kept in sync: paged LIST, then WATCH from the list's resourceVersion with bookmarks and
// a server timeout. 410 Gone or an expired resourceVersion: LIST again. Other errors: watch again from
// the last resourceVersion after an exponential backoff with jitter. A stream that stays silent longer
// than its timeout plus a margin is cut by curl and started again. When the client's probe finds the
// API server gone, the request under way is given up (its connection may be dark) and retried with
// backoff; when the server answers again, a retry waiting out its backoff starts within a second.
#pragma once

#include <json/json.h>

#include <chrono>
#include <string>

#include "kind.h"
#include "kube/backoff.h"
#include "kube/client.h"
#include "kube/watch_event.h"
#include "metrics.h"

namespace kroute::agent::kube {

// Receives what a watcher learns. A LIST is delivered as begin_list, listed (per item, page by page),
// then end_list (the listed items replace everything known of that kind) or abort_list.
class WatchSink {
 public:
  virtual ~WatchSink() = default;
  virtual void begin_list(Kind kind) = 0;
  virtual void listed(Kind kind, const Json::Value& item) = 0;
  virtual void end_list(Kind kind) = 0;
  virtual void abort_list(Kind kind) = 0;
  virtual void event(Kind kind, EventType type, const Json::Value& object) = 0;
};

struct WatchOptions {
  std::chrono::seconds timeout{300};        // timeoutSeconds asked of the server, spread over [t, 2t)
  std::chrono::seconds silence_margin{30};  // a stream silent for timeoutSeconds + this is restarted
  int page_size = 500;
  BackoffPolicy backoff;
  std::string ns;                           // "" watches every namespace
};

class Watcher {
 public:
  Watcher(Client& client, Kind kind, WatchSink& sink, Metrics& metrics, WatchOptions options);
  ~Watcher();
  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;

  void start();
  bool synced() const { return synced_; }
  const std::string& resource_version() const { return resource_version_; }

 private:
  void list(std::string continue_token);
  void on_list(Response&& response);
  void watch();
  bool on_watch_chunk(std::string_view chunk);
  void on_watch_done(Response&& response);
  void relist_soon(const std::string& why);
  void retry_later(bool relist, const std::string& why);
  void retry_after(std::chrono::milliseconds delay, bool relist);
  void interrupt(const std::string& why);
  void resume();
  std::string collection_path() const;

  Client& client_;
  Kind kind_;
  const KindInfo& info_;
  WatchSink& sink_;
  Metrics& metrics_;
  WatchOptions options_;
  Backoff backoff_;
  std::mt19937_64 random_;
  RequestId request_ = 0;
  TimerId timer_ = 0;
  bool timer_relists_ = false;      // what timer_ starts: a LIST, or a WATCH
  std::uint64_t reachability_handler_ = 0;
  bool synced_ = false;
  bool listing_ = false;
  bool expired_ = false;            // the current watch reported 410
  std::string stream_error_;        // the current watch reported another error
  std::string resource_version_;
  LineSplitter lines_;
  std::chrono::steady_clock::time_point watch_started_{};
  std::size_t watch_events_ = 0;
};

}  // namespace kroute::agent::kube
