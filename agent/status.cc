#include "status.h"

#include <algorithm>
#include <arpa/inet.h>

#include "kube/watch_event.h"
#include "log.h"
#include "text.h"

namespace kroute::agent {
namespace {

bool is_ip(const std::string& text) {
  unsigned char buffer[16];
  return inet_pton(AF_INET, text.c_str(), buffer) == 1 || inet_pton(AF_INET6, text.c_str(), buffer) == 1;
}

std::vector<LoadBalancerAddress> sorted(std::vector<LoadBalancerAddress> list) {
  std::sort(list.begin(), list.end());
  list.erase(std::unique(list.begin(), list.end()), list.end());
  return list;
}

}  // namespace

std::vector<LoadBalancerAddress> publish_addresses(const StatusOptions& options, const Store& store) {
  std::vector<LoadBalancerAddress> out;
  for (const std::string& a : options.publish_addresses) {
    if (a.empty()) continue;
    out.push_back(is_ip(a) ? LoadBalancerAddress{a, ""} : LoadBalancerAddress{"", a});
  }
  if (out.empty() && !options.publish_service.empty()) {
    auto it = store.services.find(options.publish_service);
    if (it != store.services.end()) {
      const Service& s = it->second;
      out = s.load_balancer;
      if (out.empty()) {
        for (const std::string& ip : s.external_ips) out.push_back({ip, ""});
      }
      if (out.empty() && !s.cluster_ip.empty() && s.cluster_ip != "None") out.push_back({s.cluster_ip, ""});
    }
  }
  return sorted(std::move(out));
}

StatusWriter::StatusWriter(kube::Client& client, Metrics& metrics, const Store& store, StatusOptions options)
    : client_(client), metrics_(metrics), store_(store), options_(std::move(options)) {}

void StatusWriter::set_leader(bool leader) {
  leader_ = leader;
  if (!leader) {
    status_queue_.clear();
    event_queue_.clear();
    return;
  }
  // A new leader re-checks everything, and reports the warnings that hold now.
  written_.clear();
  emitted_.clear();
  for (const Warning& w : warnings_) {
    emitted_.insert(w);
    event_queue_.push_back(w);
  }
  reconcile();
}

void StatusWriter::update(const std::vector<std::string>& owned, const std::vector<Warning>& warnings,
                          const std::set<std::string>* candidates) {
  std::vector<std::string> changed;
  if (candidates != nullptr) {
    for (const std::string& key : *candidates) {
      if (std::binary_search(owned.begin(), owned.end(), key) != is_owned(key)) changed.push_back(key);
    }
  } else {
    std::set_symmetric_difference(owned_.begin(), owned_.end(), owned.begin(), owned.end(),
                                  std::back_inserter(changed));
  }
  // Usually one Ingress came or went: applying the difference spares copying thousands of keys.
  if (changed.size() > 16) {
    owned_ = owned;
  } else {
    for (const std::string& key : changed) {
      auto at = std::lower_bound(owned_.begin(), owned_.end(), key);
      if (at != owned_.end() && *at == key) {
        owned_.erase(at);
      } else {
        owned_.insert(at, key);
      }
    }
  }
  if (warnings_.size() != warnings.size() || !std::equal(warnings_.begin(), warnings_.end(), warnings.begin())) {
    warnings_ = std::set<Warning>(warnings.begin(), warnings.end());
    for (auto it = emitted_.begin(); it != emitted_.end();) {
      it = warnings_.count(*it) != 0 ? std::next(it) : emitted_.erase(it);
    }
    if (leader_) {
      for (const Warning& w : warnings_) {
        if (emitted_.insert(w).second) event_queue_.push_back(w);
      }
    }
  }
  if (!leader_) return;
  // The publish addresses come from flags or a Service: when they change, every Ingress is checked.
  if (publish_addresses(options_, store_) != addresses_) {
    reconcile();
    return;
  }
  for (const std::string& key : changed) reconcile(key);
  pump();
}

bool StatusWriter::is_owned(const std::string& key) const {
  return std::binary_search(owned_.begin(), owned_.end(), key);
}

void StatusWriter::reconcile() {
  if (!leader_) return;
  addresses_ = publish_addresses(options_, store_);
  for (const auto& [key, ingress] : store_.ingresses) check(key, ingress);
  pump();
}

void StatusWriter::reconcile(const std::string& key) {
  if (!leader_) return;
  auto it = store_.ingresses.find(key);
  if (it == store_.ingresses.end()) {
    written_.erase(key);
    return;
  }
  check(key, it->second);
  pump();
}

void StatusWriter::check(const std::string& key, const Ingress& ingress) {
  const std::vector<LoadBalancerAddress> current = sorted(ingress.status);
  std::vector<LoadBalancerAddress> want;
  if (is_owned(key)) {
    want = addresses_;
  } else if (!addresses_.empty() && current == addresses_) {
    want = {};  // ours before (it carries exactly our addresses): clear it
  } else {
    written_.erase(key);
    return;
  }
  if (want == current) {
    written_.erase(key);
    return;
  }
  auto w = written_.find(key);
  if (w != written_.end() && w->second == ingress.resource_version) return;  // written; the watch lags
  status_queue_.insert(key);
}

void StatusWriter::pump() {
  while (leader_ && in_flight_ < options_.max_in_flight && (!event_queue_.empty() || !status_queue_.empty())) {
    if (!event_queue_.empty()) {
      Warning w = std::move(event_queue_.front());
      event_queue_.pop_front();
      emit_event(w);
      continue;
    }
    auto it = status_queue_.begin();
    const std::string key = *it;
    status_queue_.erase(it);
    if (in_flight_keys_.count(key) != 0) {
      // The write under way carries what was wanted before: look again when it ends.
      recheck_.insert(key);
      continue;
    }
    write_status(key);
  }
}

void StatusWriter::write_status(const std::string& key) {
  auto it = store_.ingresses.find(key);
  if (it == store_.ingresses.end()) return;
  const Ingress& ingress = it->second;
  Json::Value patch;
  Json::Value list(Json::arrayValue);
  if (is_owned(key)) {
    for (const LoadBalancerAddress& a : addresses_) {
      Json::Value item(Json::objectValue);
      if (!a.ip.empty()) item["ip"] = a.ip;
      if (!a.hostname.empty()) item["hostname"] = a.hostname;
      list.append(item);
    }
  }
  patch["status"]["loadBalancer"]["ingress"] = list.empty() ? Json::Value(Json::nullValue) : list;
  kube::Request request;
  request.method = "PATCH";
  request.content_type = "application/merge-patch+json";
  request.path = "/apis/networking.k8s.io/v1/namespaces/" + kube::url_encode(ingress.ns) + "/ingresses/" +
                 kube::url_encode(ingress.name) + "/status?fieldManager=kroute-agent";
  request.body = kube::to_json(patch);
  const std::string rv = ingress.resource_version;
  in_flight_keys_.insert(key);
  ++in_flight_;
  client_.send(std::move(request), [this, key, rv](kube::Response&& response) {
    --in_flight_;
    in_flight_keys_.erase(key);
    if (recheck_.erase(key) != 0) {
      if (auto it = store_.ingresses.find(key); it != store_.ingresses.end()) check(key, it->second);
    }
    if (response.ok()) {
      metrics_.status_updates.fetch_add(1, std::memory_order_relaxed);
      written_[key] = rv;
      log::debug("ingress status written", {{"ingress", key}});
    } else if (response.status != 404) {
      metrics_.status_errors.fetch_add(1, std::memory_order_relaxed);
      const std::string why = response.describe();
      if (why != last_error_) log::warn("cannot write ingress status", {{"ingress", key}, {"error", why}});
      last_error_ = why;
      // Nothing else may come along to check this Ingress again: look at everything in a second.
      if (!retry_scheduled_) {
        retry_scheduled_ = true;
        client_.after(std::chrono::seconds(1), [this] {
          retry_scheduled_ = false;
          reconcile();
        });
      }
    }
    pump();
  });
}

void StatusWriter::emit_event(const Warning& warning) {
  if (!warning.kind.empty()) return;  // a Gateway API route's problems are in its status
  auto it = store_.ingresses.find(warning.ns + "/" + warning.name);
  if (it == store_.ingresses.end()) return;
  const Ingress& ingress = it->second;
  const std::string now = now_rfc3339();
  Json::Value event;
  event["apiVersion"] = "v1";
  event["kind"] = "Event";
  event["metadata"]["generateName"] = ingress.name + ".";
  event["metadata"]["namespace"] = ingress.ns;
  Json::Value& object = event["involvedObject"];
  object["apiVersion"] = "networking.k8s.io/v1";
  object["kind"] = "Ingress";
  object["namespace"] = ingress.ns;
  object["name"] = ingress.name;
  object["uid"] = ingress.uid;
  object["resourceVersion"] = ingress.resource_version;
  event["reason"] = warning.reason;
  event["message"] = warning.message;
  event["type"] = "Warning";
  event["source"]["component"] = "kroute-agent";
  event["firstTimestamp"] = now;
  event["lastTimestamp"] = now;
  event["count"] = 1;
  event["reportingComponent"] = "kroute-agent";
  event["reportingInstance"] = options_.identity;
  kube::Request request;
  request.method = "POST";
  request.path = "/api/v1/namespaces/" + kube::url_encode(ingress.ns) + "/events";
  request.body = kube::to_json(event);
  const std::string key = ingress.ns + "/" + ingress.name;
  ++in_flight_;
  client_.send(std::move(request), [this, key, warning](kube::Response&& response) {
    --in_flight_;
    if (response.ok()) {
      metrics_.events_emitted.fetch_add(1, std::memory_order_relaxed);
    } else {
      metrics_.status_errors.fetch_add(1, std::memory_order_relaxed);
      log::warn("cannot create event", {{"ingress", key}, {"reason", warning.reason}, {"error", response.describe()}});
    }
    pump();
  });
}

}  // namespace kroute::agent
