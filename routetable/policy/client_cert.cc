#include "client_cert.h"

#include <algorithm>

#include "../value_patterns.h"
#include "headers.h"

namespace kroute::policy {

std::string check_client_cert(const PolicyRecord& record, bool) {
  if (record.code != 0 || record.backend != kNoRecordBackend) return "client-cert takes no code or backend";
  if ((record.flags & ~kClientCertFlags) != 0) return "unknown client-cert flags";
  const std::uint8_t depth = client_verify_depth(record.value);
  if (depth < 1 || depth > kMaxVerifyDepth) return "verify depth must be 1-100";
  if ((record.value & 0xffffff00u) != 0) return "unknown client-cert numbers";
  if (record.b.size() < kClientDigestLength ||
      !std::all_of(record.b.begin(), record.b.begin() + kClientDigestLength,
                   [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }))
    return "no CA digest";
  if (client_error_page_length(record.value) > record.b.size() - kClientDigestLength)
    return "error page length beyond the string";
  if (record.a.find("-----BEGIN CERTIFICATE-----") == std::string::npos) return "no CA certificate";
  const std::string_view page = client_error_page(record);
  if (!page.empty() && !page.starts_with("http://") && !page.starts_with("https://"))
    return "error page is not an http(s) URL";
  if (std::string problem = check_header_value(record.b); !problem.empty()) return "error page or match-cn " + problem;
  const std::string_view match_cn = client_match_cn(record);
  if (!match_cn.empty()) {
    if (std::string problem = check_value_pattern(match_cn); !problem.empty()) return "match-cn: " + problem;
  }
  return {};
}

}  // namespace kroute::policy
