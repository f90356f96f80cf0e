// The agent: watchers feed the store; changes are coalesced, compiled and published; the elected
// replica writes status and Events. Everything runs on the client's loop thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <vector>

#include "compiler.h"
#include "election.h"
#include "gateway/status_writer.h"
#include "kube/client.h"
#include "kube/watcher.h"
#include "metrics.h"
#include "status.h"
#include "store.h"
#include "table_publisher.h"

namespace kroute::agent {

struct AgentOptions {
  CompileOptions compile;
  // Where ingress-nginx's annotations are read (besides kroute.dev), as ingress-nginx's --annotations-prefix.
  std::string annotation_prefix = std::string(kDefaultAnnotationPrefix);
  kube::WatchOptions watch;                   // watch.ns restricts namespaced kinds
  std::chrono::milliseconds coalesce{5};      // from the first change of a burst to the publish
  bool elect = true;                          // false: never write status or Events
  ElectionOptions election;
  StatusOptions status;
};

class Agent {
 public:
  Agent(kube::Client& client, TablePublisher& publisher, Metrics& metrics, AgentOptions options);
  void start();
  // Gives up the lease if held; `done` runs on the loop thread when finished.
  void shutdown(std::function<void()> done);

 private:
  void on_change(Change change, Kind kind, const std::string& key);
  bool all_synced() const;
  void publish();

  kube::Client& client_;
  TablePublisher& publisher_;
  Metrics& metrics_;
  AgentOptions options_;
  Store store_;
  CompileCache compile_cache_;
  std::vector<std::unique_ptr<kube::Watcher>> watchers_;
  StatusWriter status_;
  gateway::StatusWriter gateway_status_;
  std::unique_ptr<Elector> elector_;
  kube::TimerId publish_timer_ = 0;
  std::chrono::steady_clock::time_point last_publish_{};  // when the last compile that built a table started
  bool table_current_ = false;  // the last built table is the one published (no write failed since)
  // When the first change not yet in a published table arrived (after the first sync); empty: none.
  std::optional<std::chrono::steady_clock::time_point> pending_since_;
  // Ingresses whose spec changed since the last publish (their status is checked after it); a relist
  // of Ingresses checks them all.
  std::set<std::string> changed_ingresses_;
  bool ingresses_relisted_ = false;
  // Every compile since the last status update patched the table: only changed_ingresses_ can have
  // changed hands (a class change, say, could change any Ingress's).
  bool only_patched_ = true;
  bool synced_ = false;
  std::set<Warning> warnings_;
  std::string default_certificate_problem_;  // logged when it changes
};

}  // namespace kroute::agent
