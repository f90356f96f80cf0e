// Leader election on a coordination.k8s.io/v1 Lease with client-go's semantics: a follower takes the
// lease only after it has seen the same record unchanged for leaseDurationSeconds; the leader renews
// every retry period and steps down when it could not renew for the renew deadline. Updates carry the
// resourceVersion, so two candidates never both win.
#pragma once

#include <json/json.h>

#include <chrono>
#include <functional>
#include <string>

#include "kube/client.h"
#include "metrics.h"

namespace kroute::agent {

struct ElectionOptions {
  std::string ns = "default";
  std::string lease_name = "kroute-agent";
  std::string identity;
  std::chrono::seconds lease_duration{15};
  std::chrono::seconds renew_deadline{10};
  std::chrono::seconds retry_period{2};
};

// The spec fields client-go compares to decide whether a lease record changed.
struct LeaseRecord {
  std::string holder;
  long duration_seconds = 0;
  std::string acquire_time;
  std::string renew_time;
  long transitions = 0;
  bool operator==(const LeaseRecord&) const = default;
};

LeaseRecord parse_lease_record(const Json::Value& lease);

class Elector {
 public:
  Elector(kube::Client& client, Metrics& metrics, ElectionOptions options, std::function<void(bool)> on_change);
  ~Elector();
  void start();
  // Gives the lease up (holder cleared) if this replica holds it; `done` runs when that is over.
  void release(std::function<void()> done);
  bool leader() const { return leader_; }

 private:
  void attempt();
  void on_get(kube::Response&& response);
  void write(Json::Value lease, bool create);
  void on_written(kube::Response&& response, const LeaseRecord& record);
  void failed(const std::string& why);
  void set_leader(bool leader);
  void schedule();
  std::string lease_path() const;

  kube::Client& client_;
  Metrics& metrics_;
  ElectionOptions options_;
  std::function<void(bool)> on_change_;
  bool leader_ = false;
  bool stopped_ = false;
  LeaseRecord observed_;
  std::chrono::steady_clock::time_point observed_at_{};
  std::chrono::steady_clock::time_point renewed_at_{};
  kube::RequestId request_ = 0;
  kube::TimerId timer_ = 0;
  std::string last_error_;
};

}  // namespace kroute::agent
