// Canary Ingresses (ingress-nginx's canary annotations) merged into their primaries' rules, as
// ingress-nginx's controller.go mergeAlternativeBackends does: a canary Ingress adds kCanary records
// (routetable/policy/canary.h) to the rule of another Ingress with the same host and path, whose
// everything else (path type, redirects, rewrites, ...) stays the primary's; only the canary's backend
// and its own affinity and balancing records come from the canary. One canary per host+path (the oldest;
// others get a Warning); a canary without a primary is ignored with a Warning.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ingress/annotations.h"
#include "model.h"

namespace kroute::agent {

struct CanaryIngress {
  Source source;
  const IngressAnnotations* annotations = nullptr;
  std::vector<Rule> rules;  // host, path and type as written; backend and policies unset
};

// The kCanary records of a canary Ingress's annotations, for its backend `backend`, in precedence order.
std::vector<PolicyRecord> canary_records(const IngressAnnotations& annotations, std::uint32_t backend);

// Adds each canary's records to the primary rules in `rules`. `backend_of(canary, rule)`: the model
// backend of that canary rule, made on first use (kNoRecordBackend: unusable, already warned about);
// `warn(source, reason, message)`.
void merge_canaries(std::vector<Rule>& rules, std::vector<CanaryIngress> canaries,
                    const std::function<std::uint32_t(std::size_t, std::size_t)>& backend_of,
                    const std::function<void(const Source&, std::string, std::string)>& warn);

}  // namespace kroute::agent
