// The limits of ingress-nginx's limit-* annotations, applied per request by ngx_http_kroute_limit_module.c
// (preaccess phase) and counted per client address in shared memory the module owns (`kroute_limits`).
//
// kRateLimit: one record per limit of a rule. `flags` says which (kRequestsPerSecond, kRequestsPerMinute:
// a leaky bucket as nginx's limit_req with a burst and nodelay; kConnections: requests in progress, as
// limit_conn). The low 32 bits of `value` are the limit (1 .. 2^31-1), the high 32 bits the burst in
// requests (rate limits only). `code` is the status a refused request gets (503, or the agent's
// --limit-req-status-code / --limit-conn-status-code). The counters are the rule's Ingress's: the module
// keys them by its namespace, name and `a`, its uid (the agent's; "" from a description), as ingress-nginx
// names its zones <namespace>_<name>_<uid>: two Ingresses never share counters, a changed limit keeps
// them, a re-created Ingress starts afresh. `b` is the exempt client addresses (limit-allowlist), a
// packed CIDR list (cidr.h).
//
// kBandwidth: limit-rate and limit-rate-after in ingress-nginx's unit, kilobytes (1024 bytes): the low
// 32 bits of `value` are the response's rate in KB/s (above 0), the high 32 bits the KB sent at full
// speed first. The module sets nginx's per-request limit_rate and limit_rate_after in bytes.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "record.h"

namespace kroute::policy {

enum RateLimitKind : std::uint32_t {
  kRequestsPerSecond = 1,
  kRequestsPerMinute = 2,
  kConnections = 3,
};

// ingress-nginx's limit-burst-multiplier default: the burst is five times the limit.
inline constexpr std::uint64_t kDefaultBurstMultiplier = 5;
// ingress-nginx's limit-req-status-code and limit-conn-status-code default.
inline constexpr std::uint16_t kDefaultLimitStatus = 503;
// A limit, burst multiplier or KB count at most this (ingress-nginx's annotations are Go ints; larger
// values mean nothing to nginx either).
inline constexpr std::uint64_t kMaxLimit = 0x7fffffff;

inline std::uint64_t rate_limit_value(std::uint64_t limit, std::uint64_t burst) {
  return std::min<std::uint64_t>(burst, 0xffffffffu) << 32 | (limit & 0xffffffffu);
}

inline PolicyRecord rate_limit(RateLimitKind kind, std::uint64_t limit, std::uint64_t burst_multiplier,
                               std::string exempt, std::uint16_t status = kDefaultLimitStatus) {
  const std::uint64_t burst = kind == kConnections ? 0 : limit * std::min(burst_multiplier, kMaxLimit);
  return {.kind = PolicyKind::kRateLimit,
          .code = status,
          .flags = kind,
          .value = rate_limit_value(limit, burst),
          .b = std::move(exempt)};
}

inline PolicyRecord bandwidth(std::uint64_t rate_kb, std::uint64_t after_kb) {
  return {.kind = PolicyKind::kBandwidth, .value = (after_kb << 32) | (rate_kb & 0xffffffffu)};
}

std::string check_rate_limit(const PolicyRecord& record, bool captures);
std::string check_bandwidth(const PolicyRecord& record, bool captures);

}  // namespace kroute::policy
