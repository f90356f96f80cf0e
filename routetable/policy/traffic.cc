// Checks of the kinds that choose where a request goes: kCanary, kAffinity, kBalance.
#include "affinity.h"
#include "balance.h"
#include "canary.h"
#include "headers.h"
#include "../value_patterns.h"

namespace kroute::policy {

namespace {

bool token(std::string_view s) {
  if (s.empty() || s.size() > 256) return false;
  for (const unsigned char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                    c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

std::string check_canary(const PolicyRecord& record, bool) {
  if (record.backend == kNoRecordBackend) return "canary names no backend";
  switch (record.code) {
    case kByHeader:
      if (!token(record.a)) return "canary header name must be letters, digits, '-', '_' or '.'";
      if ((record.flags & ~std::uint32_t{kPattern}) != 0) return "unknown canary flags";
      if ((record.flags & kPattern) != 0) {
        if (record.b.empty()) return "canary header pattern is empty";
        if (std::string problem = check_value_pattern(record.b); !problem.empty()) return "canary header pattern: " + problem;
      }
      return check_header_value(record.b);
    case kByCookie:
      if (!token(record.a)) return "canary cookie name must be letters, digits, '-', '_' or '.'";
      return record.flags == 0 ? "" : "unknown canary flags";
    case kByWeight:
      if (static_cast<std::uint32_t>(record.value) == 0) return "canary weight total is 0";
      return record.flags == 0 ? "" : "unknown canary flags";
    default: return "unknown canary code";
  }
}

std::string check_affinity(const PolicyRecord& record, bool) {
  if (record.code != kBalanced && record.code != kPersistent) return "unknown affinity mode";
  if ((record.flags & ~kAffinityFlags) != 0) return "unknown affinity flags";
  if (!token(record.a)) return "affinity cookie name must be letters, digits, '-', '_' or '.'";
  for (const unsigned char c : record.b) {
    if (c < 0x20 || c >= 0x7f || c == ',') return "affinity cookie attributes must be printable ASCII without ','";
  }
  return check_header_value(record.b);
}

std::string check_balance(const PolicyRecord& record, bool) {
  if (record.code > kHash) return "unknown balance method";
  if (record.code == kHash && record.a.empty()) return "hash key is empty";
  if (record.code != kHash && !record.a.empty()) return "only hashing takes a key";
  return check_header_value(record.a);
}

}  // namespace kroute::policy
