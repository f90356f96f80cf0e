// kServerName records: their check, and how a TLS server name is matched against one.
#include "server_name.h"

#include "../host.h"

namespace kroute::policy {

namespace {

char lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool same_name(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

}  // namespace

std::string check_server_name(const PolicyRecord& record, bool) {
  if (record.code != 0 || record.flags != 0 || record.value != 0 || record.backend != kNoRecordBackend ||
      !record.b.empty())
    return "has fields a server-name record does not use";
  if (record.a.empty()) return "needs a host name pattern";
  std::string normalized;
  if (std::string problem = check_rule_host(record.a, normalized); !problem.empty()) return problem;
  return {};
}

bool server_name_matches(std::string_view pattern, std::string_view server_name) noexcept {
  if (!server_name.empty() && server_name.back() == '.') server_name.remove_suffix(1);
  if (!pattern.starts_with("*.")) return same_name(pattern, server_name);
  // "*.example.org": one or more whole labels, then ".example.org".
  const std::string_view suffix = pattern.substr(1);
  if (server_name.size() <= suffix.size()) return false;
  const std::string_view labels = server_name.substr(0, server_name.size() - suffix.size());
  if (labels.front() == '.' || labels.back() == '.' || labels.find("..") != std::string_view::npos) return false;
  return same_name(suffix, server_name.substr(labels.size()));
}

}  // namespace kroute::policy
