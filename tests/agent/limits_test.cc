// limit-rps, limit-rpm, limit-burst-multiplier, limit-connections, limit-allowlist (limit-whitelist),
// limit-rate and limit-rate-after: how the agent reads them (agent/ingress/), the kRateLimit and kBandwidth
// records they become (policy/rate_limit.h) and what the compiler adds: the Ingress's uid (its counters)
// and the status of a refusal.
#include <doctest.h>

#include <algorithm>
#include <vector>

#include "compiler.h"
#include "ingress/annotations.h"
#include "ingress/policies.h"
#include "json_helpers.h"
#include "policy/cidr.h"
#include "policy/deny.h"
#include "policy/kinds.h"
#include "policy/rate_limit.h"
#include "store.h"

using namespace kroute;
using namespace kroute::agent;

namespace {

AnnotationReading read(const std::string& annotations) { return read_annotations(json(annotations), kDefaultAnnotationPrefix); }

std::vector<PolicyRecord> records_of(const std::vector<PolicyRecord>& records, PolicyKind kind) {
  std::vector<PolicyRecord> out;
  std::copy_if(records.begin(), records.end(), std::back_inserter(out), [&](const PolicyRecord& p) { return p.kind == kind; });
  return out;
}

struct Compiled {
  Compiled(const std::string& annotations, const std::string& uid, CompileOptions options = {}) {
    options.watch_without_class = true;
    store.apply(Kind::kService, kube::EventType::kAdded,
                json(R"({"metadata": {"name": "s", "namespace": "n"}, "spec": {"ports": [{"port": 80}]}})"));
    store.apply(Kind::kIngress, kube::EventType::kAdded,
                json(R"({"metadata": {"name": "i", "namespace": "n", "uid": ")" + uid + R"(", "annotations": )" +
                     annotations + R"(}, "spec": {"rules": [{"host": "a.com", "http": {"paths": [{"path": "/",
                     "pathType": "Prefix", "backend": {"service": {"name": "s", "port": {"number": 80}}}}]}}]}})"));
    table = compile(store, options);
    REQUIRE(table.model.rules.size() == 1);
  }
  Metrics metrics;
  Store store{metrics, nullptr};
  CompiledTable table;
};

}  // namespace

TEST_CASE("limits: values as ingress-nginx reads them, with its defaults") {
  const AnnotationReading r = read(R"({"nginx.ingress.kubernetes.io/limit-rps": "10",
      "nginx.ingress.kubernetes.io/limit-rpm": "120", "nginx.ingress.kubernetes.io/limit-connections": "2",
      "nginx.ingress.kubernetes.io/limit-rate": "100", "nginx.ingress.kubernetes.io/limit-rate-after": "50",
      "nginx.ingress.kubernetes.io/limit-whitelist": "10.0.0.0/8, 2001:db8::1"})");
  CHECK(r.problems.empty());
  CHECK(r.values.limit_rps == 10);
  CHECK(r.values.limit_rpm == 120);
  CHECK(r.values.limit_connections == 2);
  CHECK(r.values.limit_burst_multiplier == 5);
  CHECK(r.values.limit_rate_kb == 100);
  CHECK(r.values.limit_rate_after_kb == 50);
  CHECK(policy::cidr_list_text(r.values.limit_exempt) == "10.0.0.0/8,2001:db8::1/128");

  const std::vector<PolicyRecord> records = rule_policies(r.values, "/");
  const std::vector<PolicyRecord> limits = records_of(records, PolicyKind::kRateLimit);
  REQUIRE(limits.size() == 3);
  // ingress-nginx's order: connections, then rps, then rpm; burst = limit * multiplier.
  CHECK(limits[0].flags == policy::kConnections);
  CHECK(limits[0].value == 2);
  CHECK(limits[1].flags == policy::kRequestsPerSecond);
  CHECK(limits[1].value == (std::uint64_t{50} << 32 | 10));
  CHECK(limits[2].flags == policy::kRequestsPerMinute);
  CHECK(limits[2].value == (std::uint64_t{600} << 32 | 120));
  for (const PolicyRecord& p : limits) {
    CHECK(p.code == 503);
    CHECK(p.b == r.values.limit_exempt);
  }
  const std::vector<PolicyRecord> bandwidth = records_of(records, PolicyKind::kBandwidth);
  REQUIRE(bandwidth.size() == 1);
  CHECK(bandwidth[0].value == (std::uint64_t{50} << 32 | 100));
  CHECK(policy::check_record(bandwidth[0], false) == "");

  // limit-burst-multiplier; limit-allowlist wins over its alias; 0 is no limit.
  const AnnotationReading m = read(R"({"nginx.ingress.kubernetes.io/limit-rps": "4",
      "nginx.ingress.kubernetes.io/limit-burst-multiplier": "1", "nginx.ingress.kubernetes.io/limit-rpm": "0",
      "nginx.ingress.kubernetes.io/limit-whitelist": "10.0.0.0/8", "nginx.ingress.kubernetes.io/limit-allowlist": "192.168.0.0/16"})");
  CHECK(m.problems.empty());
  const std::vector<PolicyRecord> one = records_of(rule_policies(m.values, "/"), PolicyKind::kRateLimit);
  REQUIRE(one.size() == 1);
  CHECK(one[0].value == (std::uint64_t{4} << 32 | 4));
  CHECK(policy::cidr_list_text(one[0].b) == "192.168.0.0/16");

  // No limit annotations, or limit-rate-after alone: no records, a plain rule costs nothing.
  CHECK(records_of(rule_policies(read(R"({"nginx.ingress.kubernetes.io/limit-rate-after": "10"})").values, "/"),
                   PolicyKind::kBandwidth).empty());
  CHECK(records_of(rule_policies(IngressAnnotations{}, "/"), PolicyKind::kRateLimit).empty());
}

TEST_CASE("limits: a value that cannot be read denies every rule of the Ingress (fail closed)") {
  for (const char* bad : {R"("limit-rps": "ten")", R"("limit-rpm": "-5")", R"("limit-connections": "1.5")",
                          R"("limit-burst-multiplier": "x")", R"("limit-rate": "")", R"("limit-rate-after": "9999999999")",
                          R"("limit-whitelist": "10.0.0.0/33")", R"("limit-allowlist": "not-an-ip")"}) {
    std::string annotations = bad;
    CAPTURE(annotations);
    annotations.insert(1, "nginx.ingress.kubernetes.io/");
    const AnnotationReading r = read("{" + annotations + "}");
    CHECK_FALSE(r.values.access_denied.empty());
    REQUIRE(r.problems.size() == 1);
    CHECK(r.problems[0].reason == "AccessAnnotationInvalid");
    const std::vector<PolicyRecord> records = rule_policies(r.values, "/");
    REQUIRE_FALSE(records.empty());
    CHECK(records.front().kind == PolicyKind::kDeny);
  }
}

TEST_CASE("limits: the compiler names the counters by Ingress and uid, and sets the refusal statuses") {
  CompileOptions options;
  options.limit_req_status = 429;
  options.limit_conn_status = 503;
  Compiled c(R"({"nginx.ingress.kubernetes.io/limit-rps": "10", "nginx.ingress.kubernetes.io/limit-connections": "2"})",
             "u-1", options);
  const std::vector<PolicyRecord> limits = records_of(c.table.model.rules[0].policies, PolicyKind::kRateLimit);
  REQUIRE(limits.size() == 2);
  CHECK(limits[0].a == "u-1");
  CHECK(limits[0].code == 503);  // connections
  CHECK(limits[1].a == "u-1");
  CHECK(limits[1].code == 429);  // requests
  for (const PolicyRecord& p : limits) CHECK(policy::check_record(p, false) == "");
  // Another uid (the Ingress re-created): other counters.
  Compiled again(R"({"nginx.ingress.kubernetes.io/limit-rps": "10"})", "u-2");
  CHECK(records_of(again.table.model.rules[0].policies, PolicyKind::kRateLimit).at(0).a == "u-2");
}

TEST_CASE("limits: the records' checks") {
  PolicyRecord ok = policy::rate_limit(policy::kRequestsPerSecond, 100, 5, "");
  CHECK(policy::check_record(ok, false) == "");
  ok.a = "0b7c-uid";
  CHECK(policy::check_record(ok, false) == "");
  PolicyRecord p = ok;
  p.a = "a\nb";
  CHECK(policy::check_record(p, false) != "");
  p = ok;
  p.code = 200;
  CHECK(policy::check_record(p, false) != "");
  p = ok;
  p.flags = 9;
  CHECK(policy::check_record(p, false) != "");
  p = ok;
  p.value = std::uint64_t{5} << 32;  // limit 0
  CHECK(policy::check_record(p, false) != "");
  p = ok;
  p.b = "garbage";
  CHECK(policy::check_record(p, false) != "");
  PolicyRecord conn = policy::rate_limit(policy::kConnections, 2, 5, "");
  CHECK(conn.value == 2);  // no burst
  CHECK(policy::check_record(conn, false) == "");
  // A huge multiplier saturates the burst instead of wrapping.
  const PolicyRecord huge = policy::rate_limit(policy::kRequestsPerSecond, policy::kMaxLimit, policy::kMaxLimit, "");
  CHECK((huge.value >> 32) == 0xffffffffu);
  CHECK(policy::check_record(policy::bandwidth(0, 10), false) != "");
  // kroute-table prints the exempt list as text, not as packed bytes.
  CHECK(policy::cidr_fields(PolicyKind::kRateLimit) == policy::kCidrB);
  CHECK(policy::cidr_fields(PolicyKind::kBandwidth) == policy::kNoCidr);
}
