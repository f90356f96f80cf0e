// What the elected replica writes back for the Gateway API: GatewayClass, Gateway and route status as
// gateway/compile.h decided it. Each object is compared with the status the watch last saw (conditions
// without lastTransitionTime) and written only when it differs; a route's entries of other controllers
// are kept, and the write carries the route's resourceVersion so a concurrent writer is never overwritten.
#pragma once

#include <map>
#include <set>
#include <string>

#include "gateway/compile.h"
#include "kind.h"
#include "kube/client.h"
#include "metrics.h"

namespace kroute::agent {
class Store;
}

namespace kroute::agent::gateway {

class StatusWriter {
 public:
  StatusWriter(kube::Client& client, Metrics& metrics, const Store& store, std::string controller);
  void set_leader(bool leader);
  // After each compile: the statuses the current table implies. Everything that differs is written.
  void update(const Statuses& desired);
  // After a status-only change of one object (our own writes, mostly): checked again.
  void reconcile(Kind kind, const std::string& key);

 private:
  void reconcile_all();
  void check(Kind kind, const std::string& key);
  void pump();
  void write(Kind kind, const std::string& key);
  void retry_soon();

  kube::Client& client_;
  Metrics& metrics_;
  const Store& store_;
  std::string controller_;
  bool leader_ = false;
  std::map<std::string, const ClassStatus*> classes_;
  std::map<std::string, const GatewayStatus*> gateways_;
  std::map<std::string, const RouteStatus*> routes_;
  Statuses desired_;
  std::set<std::pair<Kind, std::string>> queue_;
  std::set<std::pair<Kind, std::string>> in_flight_;
  std::set<std::pair<Kind, std::string>> recheck_;  // found differing while a write of it was under way
  bool retry_scheduled_ = false;
  std::string last_error_;
};

}  // namespace kroute::agent::gateway
