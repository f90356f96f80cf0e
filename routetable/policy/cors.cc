#include "cors.h"

#include <string>

#include "kinds.h"

namespace kroute::policy {

namespace {

bool alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

// `^(item,?\s?)+$` over the value with every space removed, as ingress-nginx validates these lists;
// `item(c)` says which characters an item holds, `star`: "*" alone is an item too.
bool comma_list(std::string_view value, bool (*item)(char), bool star) {
  std::string v;
  for (const char c : value) {
    if (c == '\t' || c == '\r' || c == '\n') return false;
    if (c != ' ') v += c;
  }
  if (v.empty()) return false;
  std::size_t i = 0;
  while (i < v.size()) {
    const std::size_t start = i;
    if (star && v[i] == '*') {
      ++i;
    } else {
      while (i < v.size() && item(v[i])) ++i;
      if (i == start) return false;
    }
    if (i < v.size()) {
      if (v[i] != ',') return false;
      ++i;
    }
  }
  return value.size() <= kMaxCorsList;
}

}  // namespace

bool cors_origin_valid(std::string_view o) {
  if (o == "null") return true;
  std::size_t i = 0;
  while (i < o.size() && o[i] >= 'a' && o[i] <= 'z') ++i;
  if (i == 0 || o.substr(i, 3) != "://") return false;
  i += 3;
  if (o.substr(i, 2) == "*.") i += 2;
  while (i < o.size() && (alnum(o[i]) || o[i] == '-' || o[i] == '.')) ++i;
  if (i < o.size() && o[i] == ':') {
    const std::size_t digits = ++i;
    while (i < o.size() && o[i] >= '0' && o[i] <= '9') ++i;
    if (i == digits || i - digits > 5) return false;
  }
  return i == o.size() && o.size() <= 512;
}

bool cors_methods_valid(std::string_view value) {
  return comma_list(value, [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }, false);
}

bool cors_headers_valid(std::string_view value) {
  if (value.size() > kMaxCorsList) return false;
  for (const char c : value) {
    if (!(alnum(c) || c == '-' || c == '_' || c == ',' || c == ' ')) return false;
  }
  return true;
}

bool cors_expose_headers_valid(std::string_view value) {
  return comma_list(value, [](char c) { return alnum(c) || c == '-' || c == '_'; }, true);
}

std::string check_cors(const PolicyRecord& record, bool) {
  if (record.code != 0 || record.backend != kNoRecordBackend) return "cors takes no code or backend";
  if ((record.flags & ~kCorsFlags) != 0) return "unknown cors flags";
  if (record.value > 0x7fffffff) return "cors max-age out of range";
  if ((record.flags & kCorsAnyOrigin) != 0) {
    if (!record.a.empty()) return "cors for any origin lists origins";
  } else {
    if (record.a.empty()) return "cors without origins";
    if (record.a.size() > kMaxCorsList) return "cors origin list too long";
    std::string_view rest = record.a;
    while (true) {
      const std::size_t space = rest.find(' ');
      if (!cors_origin_valid(rest.substr(0, space))) return "malformed cors origin";
      if (space == std::string_view::npos) break;
      rest.remove_prefix(space + 1);
    }
  }
  const std::string_view b = record.b;
  const std::size_t first = b.find('\n');
  const std::size_t second = first == std::string_view::npos ? first : b.find('\n', first + 1);
  if (second == std::string_view::npos || b.find('\n', second + 1) != std::string_view::npos)
    return "cors needs methods, headers and exposed headers";
  const std::string_view methods = b.substr(0, first);
  const std::string_view headers = b.substr(first + 1, second - first - 1);
  const std::string_view expose = b.substr(second + 1);
  const bool echo = (record.flags & kCorsEcho) != 0;
  if (!(echo && (methods == "*" || methods.empty())) && !cors_methods_valid(methods)) return "malformed cors methods";
  if (!(echo && headers == "*") && !cors_headers_valid(headers)) return "malformed cors headers";
  if (!expose.empty() && !cors_expose_headers_valid(expose)) return "malformed cors exposed headers";
  return {};
}

}  // namespace kroute::policy
