#include "gateway/status_writer.h"

#include "kube/watch_event.h"
#include "log.h"
#include "store.h"
#include "text.h"

namespace kroute::agent::gateway {
namespace {

constexpr std::size_t kMaxInFlight = 8;
const std::string kApi = "/apis/gateway.networking.k8s.io/v1";

// The conditions to write: `desired`, each keeping the lastTransitionTime of the current condition of its
// type when the status did not change.
Json::Value conditions_json(const std::vector<Condition>& desired, const std::vector<Condition>& current,
                            const std::string& now) {
  Json::Value list(Json::arrayValue);
  for (const Condition& c : desired) {
    std::string since = now;
    for (const Condition& old : current) {
      if (old.type == c.type && old.status == c.status && !old.last_transition.empty()) since = old.last_transition;
    }
    Json::Value item(Json::objectValue);
    item["type"] = c.type;
    item["status"] = c.status;
    item["reason"] = c.reason;
    item["message"] = c.message;
    item["observedGeneration"] = static_cast<Json::Int64>(c.observed_generation);
    item["lastTransitionTime"] = since;
    list.append(item);
  }
  return list;
}

Json::Value parent_ref_json(const ParentRef& ref) {
  Json::Value v(Json::objectValue);
  v["group"] = ref.group;
  v["kind"] = ref.kind;
  v["namespace"] = ref.ns;
  v["name"] = ref.name;
  if (!ref.section_name.empty()) v["sectionName"] = ref.section_name;
  if (ref.port != 0) v["port"] = ref.port;
  return v;
}

Json::Value kinds_json(const std::vector<GroupKind>& kinds) {
  Json::Value list(Json::arrayValue);
  for (const GroupKind& k : kinds) {
    Json::Value item(Json::objectValue);
    item["group"] = k.group;
    item["kind"] = k.kind;
    list.append(item);
  }
  return list;
}

// Conditions equal but for lastTransitionTime (Condition::operator== ignores it).
bool same(const std::vector<Condition>& a, const std::vector<Condition>& b) { return a == b; }

}  // namespace

StatusWriter::StatusWriter(kube::Client& client, Metrics& metrics, const Store& store, std::string controller)
    : client_(client), metrics_(metrics), store_(store), controller_(std::move(controller)) {}

void StatusWriter::set_leader(bool leader) {
  leader_ = leader;
  if (leader_) reconcile_all();
}

void StatusWriter::update(const Statuses& desired) {
  if (desired == desired_ && !classes_.empty()) return;
  desired_ = desired;
  classes_.clear();
  gateways_.clear();
  routes_.clear();
  for (const ClassStatus& c : desired_.classes) classes_[c.name] = &c;
  for (const GatewayStatus& g : desired_.gateways) gateways_[g.ns + "/" + g.name] = &g;
  for (const RouteStatus& r : desired_.routes) routes_[r.ns + "/" + r.name] = &r;
  reconcile_all();
}

void StatusWriter::reconcile_all() {
  if (!leader_) return;
  for (const auto& [name, status] : classes_) check(Kind::kGatewayClass, name);
  for (const auto& [key, status] : gateways_) check(Kind::kGateway, key);
  // Every route: one we no longer serve may still carry our entries.
  for (const auto& [key, route] : store_.http_routes) check(Kind::kHTTPRoute, key);
  pump();
}

void StatusWriter::reconcile(Kind kind, const std::string& key) {
  if (!leader_) return;
  if (key.empty()) {
    reconcile_all();
    return;
  }
  check(kind, key);
  pump();
}

void StatusWriter::check(Kind kind, const std::string& key) {
  bool differs = false;
  if (kind == Kind::kGatewayClass) {
    auto want = classes_.find(key);
    auto have = store_.gateway_classes.find(key);
    if (want == classes_.end() || have == store_.gateway_classes.end()) return;
    differs = !same(want->second->conditions, have->second.conditions) ||
              want->second->features != have->second.supported_features;
  } else if (kind == Kind::kGateway) {
    auto want = gateways_.find(key);
    auto have = store_.gateways.find(key);
    if (want == gateways_.end() || have == store_.gateways.end()) return;
    differs = !same(want->second->conditions, have->second.conditions) ||
              want->second->listeners != have->second.listener_status ||
              want->second->addresses != have->second.addresses;
  } else if (kind == Kind::kHTTPRoute) {
    auto have = store_.http_routes.find(key);
    if (have == store_.http_routes.end()) return;
    auto want = routes_.find(key);
    std::vector<ParentStatus> ours;
    for (const ParentStatus& p : have->second.status) {
      if (p.controller == controller_) ours.push_back(p);
    }
    differs = want == routes_.end() ? !ours.empty() : ours != want->second->parents;
  } else {
    return;
  }
  if (differs) queue_.emplace(kind, key);
}

void StatusWriter::pump() {
  while (leader_ && in_flight_.size() < kMaxInFlight && !queue_.empty()) {
    auto item = *queue_.begin();
    queue_.erase(queue_.begin());
    if (in_flight_.count(item) != 0) {
      // Checked again when the write under way ends: the watch may bring our own write before its answer.
      recheck_.insert(item);
      continue;
    }
    write(item.first, item.second);
  }
}

void StatusWriter::retry_soon() {
  if (retry_scheduled_) return;
  retry_scheduled_ = true;
  client_.after(std::chrono::seconds(1), [this] {
    retry_scheduled_ = false;
    reconcile_all();
  });
}

void StatusWriter::write(Kind kind, const std::string& key) {
  const std::string now = now_rfc3339();
  Json::Value patch(Json::objectValue);
  Json::Value& status = patch["status"];
  std::string path;
  const auto slash = key.find('/');
  if (kind == Kind::kGatewayClass) {
    const ClassStatus& want = *classes_.at(key);
    const GatewayClass& have = store_.gateway_classes.at(key);
    status["conditions"] = conditions_json(want.conditions, have.conditions, now);
    Json::Value features(Json::arrayValue);
    for (const std::string& f : want.features) {
      Json::Value item(Json::objectValue);
      item["name"] = f;
      features.append(item);
    }
    status["supportedFeatures"] = features;
    path = kApi + "/gatewayclasses/" + kube::url_encode(key) + "/status";
  } else if (kind == Kind::kGateway) {
    const GatewayStatus& want = *gateways_.at(key);
    const Gateway& have = store_.gateways.at(key);
    status["conditions"] = conditions_json(want.conditions, have.conditions, now);
    Json::Value addresses(Json::arrayValue);
    for (const std::string& a : want.addresses) {
      Json::Value item(Json::objectValue);
      item["type"] = a.find_first_not_of("0123456789.:abcdefABCDEF") == std::string::npos ? "IPAddress" : "Hostname";
      item["value"] = a;
      addresses.append(item);
    }
    status["addresses"] = addresses;
    Json::Value listeners(Json::arrayValue);
    for (const ListenerStatus& l : want.listeners) {
      std::vector<Condition> current;
      for (const ListenerStatus& old : have.listener_status) {
        if (old.name == l.name) current = old.conditions;
      }
      Json::Value item(Json::objectValue);
      item["name"] = l.name;
      item["supportedKinds"] = kinds_json(l.supported_kinds);
      item["attachedRoutes"] = static_cast<Json::Int64>(l.attached_routes);
      item["conditions"] = conditions_json(l.conditions, current, now);
      listeners.append(item);
    }
    status["listeners"] = listeners;
    path = kApi + "/namespaces/" + kube::url_encode(key.substr(0, slash)) + "/gateways/" +
           kube::url_encode(key.substr(slash + 1)) + "/status";
  } else {
    const HTTPRoute& have = store_.http_routes.at(key);
    Json::Value parents(Json::arrayValue);
    for (const ParentStatus& p : have.status) {
      if (p.controller == controller_) continue;
      Json::Value item(Json::objectValue);
      item["parentRef"] = parent_ref_json(p.ref);
      item["controllerName"] = p.controller;
      item["conditions"] = conditions_json(p.conditions, p.conditions, now);
      parents.append(item);
    }
    if (auto want = routes_.find(key); want != routes_.end()) {
      for (const ParentStatus& p : want->second->parents) {
        std::vector<Condition> current;
        for (const ParentStatus& old : have.status) {
          if (old.controller == controller_ && old.ref == p.ref) current = old.conditions;
        }
        Json::Value item(Json::objectValue);
        item["parentRef"] = parent_ref_json(p.ref);
        item["controllerName"] = controller_;
        item["conditions"] = conditions_json(p.conditions, current, now);
        parents.append(item);
      }
    }
    status["parents"] = parents;
    patch["metadata"]["resourceVersion"] = have.resource_version;
    path = kApi + "/namespaces/" + kube::url_encode(key.substr(0, slash)) + "/httproutes/" +
           kube::url_encode(key.substr(slash + 1)) + "/status";
  }
  kube::Request request;
  request.method = "PATCH";
  request.content_type = "application/merge-patch+json";
  request.path = path + "?fieldManager=kroute-agent";
  request.body = kube::to_json(patch);
  const std::pair<Kind, std::string> item{kind, key};
  in_flight_.insert(item);
  client_.send(std::move(request), [this, item](kube::Response&& response) {
    in_flight_.erase(item);
    if (recheck_.erase(item) != 0) check(item.first, item.second);
    if (response.ok()) {
      metrics_.status_updates.fetch_add(1, std::memory_order_relaxed);
      log::debug("gateway api status written", {{"resource", kind_info(item.first).name}, {"object", item.second}});
    } else if (response.status == 409) {
      // Someone else wrote the route since the watch last saw it: the watch brings that version, and the
      // status-only change it reports checks the route again. Also look again in a second.
      retry_soon();
    } else if (response.status != 404) {
      metrics_.status_errors.fetch_add(1, std::memory_order_relaxed);
      const std::string why = response.describe();
      if (why != last_error_) {
        log::warn("cannot write gateway api status",
                  {{"resource", kind_info(item.first).name}, {"object", item.second}, {"error", why}});
      }
      last_error_ = why;
      retry_soon();
    }
    pump();
  });
}

}  // namespace kroute::agent::gateway
