// Checks of kRequestHeader and kResponseHeader records.
#include "header_modifier.h"

#include <array>

#include "headers.h"

namespace kroute::policy {

namespace {

// Framing and hop-by-hop headers (RFC 9110 7.6.1, 6.4.1; RFC 9112 6): nginx writes them for each
// connection and each message, and a route changing them would break the exchange, not adjust it.
constexpr std::array<std::string_view, 9> kNginxOwned = {
    "connection", "content-length", "keep-alive", "proxy-connection", "te", "trailer",
    "transfer-encoding", "upgrade", "expect"};

bool same_name(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const char x = a[i] >= 'A' && a[i] <= 'Z' ? static_cast<char>(a[i] + ('a' - 'A')) : a[i];
    if (x != b[i]) return false;
  }
  return true;
}

std::string check_header_record(const PolicyRecord& record) {
  if (record.code < kSetHeader || record.code > kRemoveHeader) return "unknown header action";
  if (record.flags != 0 || record.value != 0)
    return "has fields a header record does not use";
  if (std::string problem = check_modifiable_header(record.a); !problem.empty()) return problem;
  if (record.code == kRemoveHeader) return record.b.empty() ? "" : "remove takes no value";
  if (std::string problem = check_header_value(record.b); !problem.empty()) return "the value of " + record.a + " " + problem;
  return {};
}

}  // namespace

std::string check_modifiable_header(std::string_view name) {
  if (!is_header_name(name)) return "header name must be a token (letters, digits, -)";
  for (const std::string_view owned : kNginxOwned) {
    if (same_name(name, owned)) return "header " + std::string(name) + " is nginx's to write";
  }
  return {};
}

std::string check_request_header(const PolicyRecord& record, bool) { return check_header_record(record); }

std::string check_response_header(const PolicyRecord& record, bool) { return check_header_record(record); }

}  // namespace kroute::policy
