#include "rate_limit.h"

#include "cidr.h"
#include "headers.h"

namespace kroute::policy {

std::string check_rate_limit(const PolicyRecord& record, bool) {
  if (record.flags != kRequestsPerSecond && record.flags != kRequestsPerMinute && record.flags != kConnections)
    return "unknown rate limit " + std::to_string(record.flags);
  if (record.code < 400 || record.code > 599) return "status " + std::to_string(record.code) + " is not 400-599";
  const std::uint64_t limit = record.value & 0xffffffffu;
  if (limit == 0 || limit > kMaxLimit) return "limit " + std::to_string(limit) + " is not 1 to 2^31-1";
  if (record.flags == kConnections && (record.value >> 32) != 0) return "a connection limit has no burst";
  if (record.backend != kNoRecordBackend) return "a rate limit names no backend";
  if (std::string problem = check_header_value(record.a); !problem.empty()) return "uid " + problem;
  if (std::string problem = check_cidr_list(record.b); !problem.empty()) return "exempt list: " + problem;
  return {};
}

std::string check_bandwidth(const PolicyRecord& record, bool) {
  if (record.code != 0 || record.flags != 0 || record.backend != kNoRecordBackend || !record.a.empty() ||
      !record.b.empty())
    return "has fields a bandwidth record does not use";
  if ((record.value & 0xffffffffu) > kMaxLimit || (record.value >> 32) > kMaxLimit) return "KB count above 2^31-1";
  if ((record.value & 0xffffffffu) == 0) return "a bandwidth record without a rate";
  return {};
}

}  // namespace kroute::policy
