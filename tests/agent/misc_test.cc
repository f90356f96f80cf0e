#include <doctest.h>

#include "election.h"
#include "json_helpers.h"
#include "kube/backoff.h"
#include "kube/client.h"
#include "log.h"
#include "metrics.h"
#include "status.h"
#include "text.h"

using namespace kroute::agent;
using namespace std::chrono_literals;

TEST_CASE("backoff: grows exponentially with jitter, caps, and starts over after a healthy period") {
  kube::BackoffPolicy policy;
  policy.initial = 100ms;
  policy.max = 1000ms;
  policy.jitter = 0.5;
  policy.reset_after = 60s;
  kube::Backoff backoff(policy, 42);
  auto now = std::chrono::steady_clock::now();
  std::vector<long long> delays;
  for (int i = 0; i < 8; ++i) {
    delays.push_back(backoff.next(now).count());
    now += 1s;
  }
  CHECK(delays[0] >= 50);
  CHECK(delays[0] < 150);
  CHECK(delays[3] >= 400);   // 800 ms +-50%
  for (long long d : delays) CHECK(d <= 1000);
  CHECK(delays[7] >= 500);
  CHECK(backoff.next(now + 61s).count() < 150);
}

TEST_CASE("logfmt lines: one line, quoted when needed") {
  const std::string line = log::format_line(log::Level::kWarn, "bad object", {{"object", "n/a b"}, {"n", 3}, {"e", "x\"y\nz"}});
  CHECK(line.find(" level=warn msg=\"bad object\" object=\"n/a b\" n=3 e=\"x\\\"y\\nz\"\n") != std::string::npos);
  CHECK(line.find('\n') == line.size() - 1);
  log::Level level;
  CHECK(log::parse_level("debug", level));
  CHECK(level == log::Level::kDebug);
  CHECK_FALSE(log::parse_level("loud", level));
}

TEST_CASE("text helpers") {
  std::string out;
  CHECK(base64_decode("aGVsbG8=", out));
  CHECK(out == "hello");
  CHECK_FALSE(base64_decode("a*b", out));
  std::int64_t t = 0;
  CHECK(parse_rfc3339("1970-01-02T00:00:01Z", t));
  CHECK(t == 86401);
  CHECK_FALSE(parse_rfc3339("yesterday", t));
}

TEST_CASE("metrics render in the Prometheus text format") {
  Metrics m;
  m.watched[Metrics::at(Kind::kEndpointSlice)] = true;
  m.relists[Metrics::at(Kind::kEndpointSlice)] = 2;
  m.publish_duration.observe(3ms);
  const std::string text = m.render();
  CHECK(text.find("kroute_agent_relists_total{resource=\"endpointslice\"} 2\n") != std::string::npos);
  CHECK(text.find("kroute_agent_publish_duration_seconds_bucket{le=\"0.005\"} 1\n") != std::string::npos);
  CHECK(text.find("kroute_agent_publish_duration_seconds_bucket{le=\"0.001\"} 0\n") != std::string::npos);
  CHECK(text.find("# TYPE kroute_agent_objects gauge\n") != std::string::npos);
  // Only watched resources have series: an agent without --gateway-controller shows no gatewayclass at 0.
  CHECK(text.find("resource=\"gatewayclass\"") == std::string::npos);
  CHECK(text.find("resource=\"ingress\"") == std::string::npos);
}

TEST_CASE("a Lease or an error body of an unexpected shape is read as far as it goes") {
  // Any of these made jsoncpp throw, which ended the election loop (and the agent with it).
  for (const char* text : {R"([1, 2])", R"("spec")", R"({"spec": []})", R"({"spec": "x"})",
                           R"({"spec": {"holderIdentity": {}, "leaseDurationSeconds": "15", "renewTime": [],
                               "acquireTime": 7, "leaseTransitions": 1e300}})"}) {
    CAPTURE(text);
    LeaseRecord r;
    CHECK_NOTHROW(r = parse_lease_record(json(text)));
    CHECK(r.holder.empty());
    CHECK(r.duration_seconds == 0);
    CHECK(r.transitions == 0);
  }
  const LeaseRecord r = parse_lease_record(json(R"({"spec": {"holderIdentity": "b", "leaseTransitions": -2}})"));
  CHECK(r.holder == "b");
  CHECK(r.transitions == 0);

  kube::Response response;
  response.status = 409;
  response.body = R"({"kind": "Status", "reason": {"a": 1}, "message": ["x"]})";
  std::string text;
  CHECK_NOTHROW(text = response.describe());
  CHECK(text == "HTTP 409");
  response.body = R"({"kind": "Status", "reason": "Conflict", "message": "the object has been modified"})";
  CHECK(response.describe() == "HTTP 409 Conflict: the object has been modified");
}

TEST_CASE("an error body nested too deep is described, never thrown") {
  kube::Response response;
  response.status = 500;
  response.body = std::string(10000, '[') + std::string(10000, ']');
  std::string text;
  CHECK_NOTHROW(text = response.describe());
  CHECK(text.starts_with("HTTP 500: [[["));
  response.body = std::string(10000, '{');
  CHECK_NOTHROW(text = response.describe());
  CHECK(text.starts_with("HTTP 500"));
}

TEST_CASE("lease records and publish addresses") {
  const LeaseRecord r = parse_lease_record(json(R"({"spec": {"holderIdentity": "a", "leaseDurationSeconds": 15,
      "renewTime": "2024-01-01T00:00:00.000000Z", "leaseTransitions": 3}})"));
  CHECK(r.holder == "a");
  CHECK(r.duration_seconds == 15);
  CHECK(r.transitions == 3);

  Metrics metrics;
  Store store(metrics, nullptr);
  StatusOptions options;
  options.publish_addresses = {"lb.example.com", "192.0.2.7"};
  CHECK(publish_addresses(options, store) ==
        std::vector<LoadBalancerAddress>{{"", "lb.example.com"}, {"192.0.2.7", ""}});
  options.publish_addresses.clear();
  options.publish_service = "infra/kroute";
  store.apply(Kind::kService, kube::EventType::kAdded,
              json(R"({"metadata": {"name": "kroute", "namespace": "infra"}, "spec": {"clusterIP": "10.96.0.10"}})"));
  CHECK(publish_addresses(options, store) == std::vector<LoadBalancerAddress>{{"10.96.0.10", ""}});
  store.apply(Kind::kService, kube::EventType::kModified,
              json(R"({"metadata": {"name": "kroute", "namespace": "infra"}, "spec": {"clusterIP": "10.96.0.10"},
                       "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.5"}]}}})"));
  CHECK(publish_addresses(options, store) == std::vector<LoadBalancerAddress>{{"203.0.113.5", ""}});
}
