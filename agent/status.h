// What the elected replica writes back: status.loadBalancer.ingress on the Ingresses it owns (cleared
// on those it stopped owning) and Warning Events on Ingresses the compiler complained about.
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "compiler.h"
#include "kube/client.h"
#include "metrics.h"
#include "store.h"

namespace kroute::agent {

struct StatusOptions {
  std::vector<std::string> publish_addresses;  // --publish-address: IPs or hostnames
  std::string publish_service;                 // --publish-service ns/name: its load balancer, external or cluster IPs
  std::string identity;                        // reportingInstance of Events
  std::size_t max_in_flight = 8;
};

// The addresses to write, from the flag or the Service; sorted.
std::vector<LoadBalancerAddress> publish_addresses(const StatusOptions& options, const Store& store);

class StatusWriter {
 public:
  StatusWriter(kube::Client& client, Metrics& metrics, const Store& store, StatusOptions options);
  void set_leader(bool leader);
  // After each compile: the Ingresses we own (sorted) and the warnings of the current table. Only the
  // Ingresses whose ownership changed are checked again, unless the addresses to publish changed.
  // `candidates`, when given, holds every Ingress whose ownership may have changed since the last
  // update (the changed Ingresses, when nothing else changed): only those are compared.
  void update(const std::vector<std::string>& owned, const std::vector<Warning>& warnings,
              const std::set<std::string>* candidates = nullptr);
  // Compares every Ingress's status with what it should be and queues the writes that differ.
  void reconcile();
  // The same for one Ingress, after a change of its status alone (our own writes, mostly): with
  // thousands of Ingresses a full pass per status event would cost more than the compile.
  void reconcile(const std::string& key);

 private:
  void check(const std::string& key, const Ingress& ingress);
  bool is_owned(const std::string& key) const;
  void pump();
  void write_status(const std::string& key);
  void emit_event(const Warning& warning);

  kube::Client& client_;
  Metrics& metrics_;
  const Store& store_;
  StatusOptions options_;
  bool leader_ = false;
  std::vector<std::string> owned_;   // sorted
  std::vector<LoadBalancerAddress> addresses_;  // what reconcile() last wrote
  bool retry_scheduled_ = false;
  std::set<Warning> warnings_;       // of the current table
  std::set<Warning> emitted_;        // Events created while these warnings held
  std::deque<Warning> event_queue_;
  std::set<std::string> status_queue_;
  // key -> resourceVersion the Ingress had when we wrote it: skip rewriting until the watch catches up.
  std::map<std::string, std::string> written_;
  // Requests in flight (their handlers never run after the agent is gone: the loop has stopped by then).
  std::size_t in_flight_ = 0;
  std::set<std::string> in_flight_keys_;
  std::set<std::string> recheck_;  // found differing while a write of it was under way: checked when it ends
  std::string last_error_;
};

}  // namespace kroute::agent
