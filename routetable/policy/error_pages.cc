#include "error_pages.h"

#include <algorithm>
#include <vector>

#include "headers.h"

namespace kroute::policy {

PolicyRecord error_pages(std::span<const std::uint16_t> statuses, std::uint32_t flags, std::uint32_t backend,
                         std::string service_port) {
  std::vector<std::uint16_t> sorted(statuses.begin(), statuses.end());
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  std::string list;
  for (const std::uint16_t status : sorted) {
    if (!list.empty()) list += ',';
    list += std::to_string(status);
  }
  return {.kind = PolicyKind::kErrorPages,
          .flags = flags,
          .backend = backend,
          .a = std::move(list),
          .b = std::move(service_port)};
}

std::string check_status_list(std::string_view list) {
  if (list.empty()) return {};
  if (list.size() % 4 != 3) return "status list is not 3-digit statuses separated by commas";
  unsigned previous = 0;
  for (std::size_t i = 0; i < list.size(); i += 4) {
    if (i > 0 && list[i - 1] != ',') return "status list is not 3-digit statuses separated by commas";
    unsigned status = 0;
    for (std::size_t j = i; j < i + 3; ++j) {
      if (list[j] < '0' || list[j] > '9') return "status list is not 3-digit statuses separated by commas";
      status = status * 10 + static_cast<unsigned>(list[j] - '0');
    }
    if (status < kFirstErrorStatus || status > kLastErrorStatus) return "status " + std::to_string(status) + " is not 400-599";
    if (status <= previous) return "status list is not ascending without repeats";
    previous = status;
  }
  return {};
}

std::string check_error_pages(const PolicyRecord& record, bool) {
  if (record.code != 0 || record.value != 0) return "error pages take no code or value";
  if ((record.flags & ~kErrorPagesFlags) != 0) return "unknown error pages flags";
  if (record.backend == kNoRecordBackend) return "error pages need a backend";
  if (record.a.empty() && (record.flags & kWhenNoEndpoints) == 0) return "error pages need statuses or kWhenNoEndpoints";
  if (std::string problem = check_status_list(record.a); !problem.empty()) return problem;
  if (std::string problem = check_header_value(record.b); !problem.empty()) return "service port " + problem;
  return {};
}

}  // namespace kroute::policy
