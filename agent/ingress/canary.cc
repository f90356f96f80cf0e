#include "ingress/canary.h"

#include <algorithm>
#include <map>
#include <tuple>

#include "ingress/policies.h"
#include "policy/canary.h"

namespace kroute::agent {

std::vector<PolicyRecord> canary_records(const IngressAnnotations& a, std::uint32_t backend) {
  std::vector<PolicyRecord> records;
  if (!a.canary_by_header.empty()) {
    // As balancer.lua: the exact value when given, else the pattern, else always / never.
    const bool pattern = a.canary_by_header_value.empty() && !a.canary_by_header_pattern.empty();
    records.push_back(policy::canary_by_header(a.canary_by_header,
                                               pattern ? a.canary_by_header_pattern : a.canary_by_header_value,
                                               pattern));
  }
  if (!a.canary_by_cookie.empty()) records.push_back(policy::canary_by_cookie(a.canary_by_cookie));
  // Always present: weight 0 sends nothing, and the module needs one record to find the canary backend.
  records.push_back(policy::canary_by_weight(a.canary_weight, a.canary_weight_total));
  for (PolicyRecord& r : records) r.backend = backend;
  return records;
}

void merge_canaries(std::vector<Rule>& rules, std::vector<CanaryIngress> canaries,
                    const std::function<std::uint32_t(std::size_t, std::size_t)>& backend_of,
                    const std::function<void(const Source&, std::string, std::string)>& warn) {
  std::vector<std::size_t> by_age(canaries.size());
  for (std::size_t i = 0; i < by_age.size(); ++i) by_age[i] = i;
  std::stable_sort(by_age.begin(), by_age.end(), [&](std::size_t x, std::size_t y) {
    const Source& a = canaries[x].source;
    const Source& b = canaries[y].source;
    return std::tie(a.created_unix, a.ns, a.name) < std::tie(b.created_unix, b.ns, b.name);
  });
  // host + path -> the canary that has it
  std::map<std::pair<std::string, std::string>, const Source*> taken;
  const auto key = [](const Rule& r) { return std::pair{r.host, r.path.empty() ? std::string("/") : r.path}; };
  for (const std::size_t c : by_age) {
    const CanaryIngress& canary = canaries[c];
    for (std::size_t i = 0; i < canary.rules.size(); ++i) {
      const Rule& rule = canary.rules[i];
      const auto where = key(rule);
      const std::string what = "canary rule " + (rule.host.empty() ? std::string("(any)") : rule.host) + " " +
                               where.second;
      if (auto it = taken.find(where); it != taken.end()) {
        warn(canary.source, "CanaryIgnored",
             what + " is ignored: the older canary Ingress " + it->second->ns + "/" + it->second->name +
                 " has the same host and path");
        continue;
      }
      std::vector<Rule*> primaries;
      for (Rule& r : rules) {
        if (key(r) == where) primaries.push_back(&r);
      }
      if (primaries.empty()) {
        warn(canary.source, "CanaryWithoutPrimary",
             what + " is ignored: no other Ingress routes this host and path");
        continue;
      }
      const std::uint32_t backend = backend_of(c, i);
      if (backend == kNoRecordBackend) continue;
      taken.emplace(where, &canary.source);
      std::vector<PolicyRecord> records = canary_records(*canary.annotations, backend);
      const std::vector<PolicyRecord> own = traffic_policies(*canary.annotations, rule.path, backend);
      records.insert(records.end(), own.begin(), own.end());
      for (Rule* primary : primaries) {
        primary->policies.insert(primary->policies.end(), records.begin(), records.end());
      }
    }
  }
}

}  // namespace kroute::agent
