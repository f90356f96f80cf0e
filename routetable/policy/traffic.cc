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

namespace {

// The numbers after `name` ("Chrome/" -> 66, 0, ...): up to three, 0 when absent.
void version_after(std::string_view ua, std::string_view name, unsigned (&v)[3]) {
  v[0] = v[1] = v[2] = 0;
  const std::size_t at = ua.find(name);
  if (at == std::string_view::npos) return;
  std::size_t i = at + name.size();
  for (unsigned part = 0; part < 3 && i < ua.size(); ++part) {
    while (i < ua.size() && ua[i] >= '0' && ua[i] <= '9') v[part] = v[part] * 10 + static_cast<unsigned>(ua[i++] - '0');
    if (i >= ua.size() || ua[i] != '.') break;
    ++i;
  }
}

}  // namespace

// Chromium's list of clients known to be incompatible with SameSite=None (chromium.org, "SameSite=None:
// Known Incompatible Clients"), which ingress-nginx follows.
bool same_site_none_compatible(std::string_view ua) noexcept {
  const auto has = [&](std::string_view s) { return ua.find(s) != std::string_view::npos; };
  unsigned v[3];
  for (const std::string_view chrome : {std::string_view("Chrome/"), std::string_view("Chromium/")}) {
    version_after(ua, chrome, v);
    if (v[0] >= 51 && v[0] <= 66) return false;
  }
  if (has("UCBrowser/")) {
    version_after(ua, "UCBrowser/", v);
    if (v[0] < 12 || (v[0] == 12 && (v[1] < 13 || (v[1] == 13 && v[2] < 2)))) return false;
  }
  // Every browser on iOS 12; Safari and embedded browsers on macOS 10.14.
  if ((has("iPhone OS 12_") || has("iPad; CPU OS 12_") || has("iPod touch; CPU iPhone OS 12_")) && has("AppleWebKit/"))
    return false;
  if (has("Macintosh; Intel Mac OS X 10_14") && !has("Chrom") &&
      ((has("Version/") && has("Safari")) || ua.ends_with("(KHTML, like Gecko)")))
    return false;
  return true;
}

std::string check_balance(const PolicyRecord& record, bool) {
  if (record.code > kHash) return "unknown balance method";
  if (record.code == kHash && record.a.empty()) return "hash key is empty";
  if (record.code != kHash && !record.a.empty()) return "only hashing takes a key";
  return check_header_value(record.a);
}

}  // namespace kroute::policy
