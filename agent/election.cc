#include "election.h"

#include "json_read.h"
#include "kube/watch_event.h"
#include "log.h"
#include "text.h"

namespace kroute::agent {
LeaseRecord parse_lease_record(const Json::Value& lease) {
  const Json::Value& spec = at(lease, "spec");
  LeaseRecord r;
  r.holder = str(at(spec, "holderIdentity"));
  r.duration_seconds = static_cast<int>(integer(at(spec, "leaseDurationSeconds"), 0, INT32_MAX, 0));
  r.acquire_time = str(at(spec, "acquireTime"));
  r.renew_time = str(at(spec, "renewTime"));
  r.transitions = static_cast<int>(integer(at(spec, "leaseTransitions"), 0, INT32_MAX, 0));
  return r;
}

Elector::Elector(kube::Client& client, Metrics& metrics, ElectionOptions options, std::function<void(bool)> on_change)
    : client_(client), metrics_(metrics), options_(std::move(options)), on_change_(std::move(on_change)) {}

Elector::~Elector() {
  client_.cancel(request_);
  client_.cancel_timer(timer_);
}

std::string Elector::lease_path() const {
  return "/apis/coordination.k8s.io/v1/namespaces/" + kube::url_encode(options_.ns) + "/leases";
}

void Elector::start() {
  log::info("leader election started", {{"lease", options_.ns + "/" + options_.lease_name}, {"identity", options_.identity}});
  attempt();
}

void Elector::schedule() {
  if (stopped_) return;
  timer_ = client_.after(options_.retry_period, [this] {
    timer_ = 0;
    attempt();
  });
}

void Elector::attempt() {
  kube::Request request;
  request.path = lease_path() + "/" + kube::url_encode(options_.lease_name);
  request.timeout = options_.retry_period;
  request_ = client_.send(std::move(request), [this](kube::Response&& r) { on_get(std::move(r)); });
}

void Elector::on_get(kube::Response&& response) {
  request_ = 0;
  const auto now = std::chrono::steady_clock::now();
  const std::string stamp = now_rfc3339_micro();
  if (response.status == 404) {
    Json::Value lease;
    lease["apiVersion"] = "coordination.k8s.io/v1";
    lease["kind"] = "Lease";
    lease["metadata"]["name"] = options_.lease_name;
    lease["metadata"]["namespace"] = options_.ns;
    Json::Value& spec = lease["spec"];
    spec["holderIdentity"] = options_.identity;
    spec["leaseDurationSeconds"] = static_cast<Json::Int>(options_.lease_duration.count());
    spec["acquireTime"] = stamp;
    spec["renewTime"] = stamp;
    spec["leaseTransitions"] = 0;
    write(std::move(lease), true);
    return;
  }
  Json::Value lease;
  std::string error;
  if (!response.ok() || !kube::parse_json(response.body, lease, error) || !lease.isObject()) {
    failed("get lease: " + (response.ok() ? error : response.describe()));
    return;
  }
  // The spec is written below through operator[], which throws on a value that is neither an object nor
  // absent; a Lease we cannot read is not one to take over either.
  if (const Json::Value& spec = at(lease, "spec"); !spec.isObject() && !spec.isNull()) {
    failed("get lease: the Lease's spec is not an object");
    return;
  }
  const LeaseRecord record = parse_lease_record(lease);
  if (!(record == observed_) || observed_at_ == std::chrono::steady_clock::time_point{}) {
    observed_ = record;
    observed_at_ = now;
  }
  const auto duration = std::chrono::seconds(record.duration_seconds > 0 ? record.duration_seconds
                                                                         : options_.lease_duration.count());
  if (!record.holder.empty() && record.holder != options_.identity && now < observed_at_ + duration) {
    set_leader(false);
    schedule();
    return;
  }
  Json::Value& spec = lease["spec"];
  if (record.holder != options_.identity) {
    spec["acquireTime"] = stamp;
    spec["leaseTransitions"] = static_cast<Json::Int>(record.transitions + (record.holder.empty() ? 0 : 1));
  }
  spec["holderIdentity"] = options_.identity;
  spec["leaseDurationSeconds"] = static_cast<Json::Int>(options_.lease_duration.count());
  spec["renewTime"] = stamp;
  write(std::move(lease), false);
}

void Elector::write(Json::Value lease, bool create) {
  const LeaseRecord record = parse_lease_record(lease);
  kube::Request request;
  request.method = create ? "POST" : "PUT";
  request.path = lease_path();
  if (!create) request.path.append("/").append(kube::url_encode(options_.lease_name));
  request.body = kube::to_json(lease);
  request.timeout = options_.retry_period;
  request_ = client_.send(std::move(request), [this, record](kube::Response&& r) { on_written(std::move(r), record); });
}

void Elector::on_written(kube::Response&& response, const LeaseRecord& record) {
  request_ = 0;
  if (!response.ok()) {
    // 409: another candidate wrote first; it is the leader now.
    failed("write lease: " + response.describe());
    return;
  }
  last_error_.clear();
  observed_ = record;
  observed_at_ = std::chrono::steady_clock::now();
  renewed_at_ = observed_at_;
  set_leader(true);
  schedule();
}

void Elector::failed(const std::string& why) {
  if (why != last_error_) {
    log::warn("leader election: request failed", {{"error", why}});
    last_error_ = why;
  }
  if (leader_ && std::chrono::steady_clock::now() - renewed_at_ > options_.renew_deadline) {
    log::warn("leader election: could not renew within the renew deadline; stepping down");
    set_leader(false);
  }
  schedule();
}

void Elector::set_leader(bool leader) {
  if (leader == leader_) return;
  leader_ = leader;
  metrics_.leader.store(leader ? 1 : 0, std::memory_order_relaxed);
  if (leader) metrics_.leader_transitions.fetch_add(1, std::memory_order_relaxed);
  log::info(leader ? "became leader" : "not leader", {{"lease", options_.ns + "/" + options_.lease_name},
                                                      {"identity", options_.identity},
                                                      {"holder", observed_.holder}});
  if (on_change_) on_change_(leader);
}

void Elector::release(std::function<void()> done) {
  stopped_ = true;
  client_.cancel_timer(timer_);
  client_.cancel(request_);
  if (!leader_) {
    done();
    return;
  }
  set_leader(false);
  kube::Request get;
  get.path = lease_path() + "/" + kube::url_encode(options_.lease_name);
  get.timeout = std::chrono::seconds(2);
  request_ = client_.send(std::move(get), [this, done](kube::Response&& response) {
    request_ = 0;
    Json::Value lease;
    std::string error;
    if (!response.ok() || !kube::parse_json(response.body, lease, error) ||
        parse_lease_record(lease).holder != options_.identity) {
      done();
      return;
    }
    // As client-go's ReleaseOnCancel: an empty holder lets the next candidate take over at once.
    lease["spec"]["holderIdentity"] = "";
    lease["spec"]["leaseDurationSeconds"] = 1;
    kube::Request put;
    put.method = "PUT";
    put.path = lease_path() + "/" + kube::url_encode(options_.lease_name);
    put.body = kube::to_json(lease);
    put.timeout = std::chrono::seconds(2);
    request_ = client_.send(std::move(put), [this, done](kube::Response&& r) {
      request_ = 0;
      if (r.ok()) log::info("released the leader lease");
      done();
    });
  });
}

}  // namespace kroute::agent
