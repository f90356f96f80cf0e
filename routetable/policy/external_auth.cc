#include "external_auth.h"

#include <algorithm>
#include <iterator>
#include <vector>

#include "headers.h"
#include "template.h"

namespace kroute::policy {

namespace {

bool digits(std::string_view s) {
  if (s.empty()) return false;
  for (const char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// nginx's time units, in seconds (ms rounds up to a whole second); nullopt for anything else.
std::optional<std::uint64_t> duration_seconds(std::string_view s) {
  std::size_t n = 0;
  while (n < s.size() && s[n] >= '0' && s[n] <= '9') ++n;
  if (n == 0 || n > 9) return std::nullopt;
  const std::uint64_t number = std::stoull(std::string(s.substr(0, n)));
  const std::string_view unit = s.substr(n);
  if (unit == "ms") return (number + 999) / 1000;
  if (unit == "s") return number;
  if (unit == "m") return number * 60;
  if (unit == "h") return number * 3600;
  if (unit == "d") return number * 86400;
  if (unit == "w") return number * 7 * 86400;
  if (unit == "M") return number * 30 * 86400;
  if (unit == "y") return number * 365 * 86400;
  return std::nullopt;
}

bool header_name(std::string_view s) {
  if (s.empty() || s.size() > 256) return false;
  for (const char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

std::optional<std::uint64_t> auth_method(std::string_view method) {
  for (std::size_t i = 0; i < std::size(kAuthMethods); ++i) {
    if (kAuthMethods[i] == method) return i + 1;
  }
  return std::nullopt;
}

std::optional<std::string> parse_auth_cache_durations(std::string_view text) {
  std::string out;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t comma = std::min(text.find(',', start), text.size());
    std::string_view entry = text.substr(start, comma - start);
    start = comma + 1;
    std::vector<std::string_view> statuses;
    std::uint64_t seconds = 0;
    bool seen_duration = false;
    while (true) {
      const std::size_t begin = entry.find_first_not_of(" \t");
      if (begin == std::string_view::npos) break;
      entry.remove_prefix(begin);
      const std::size_t end = std::min(entry.find_first_of(" \t"), entry.size());
      const std::string_view word = entry.substr(0, end);
      entry.remove_prefix(end);
      if (word.size() == 3 && digits(word)) {
        if (seen_duration || word[0] < '1' || word[0] > '5') return std::nullopt;
        statuses.push_back(word);
      } else if (const auto d = duration_seconds(word)) {
        seen_duration = true;
        seconds += *d;
      } else {
        return std::nullopt;
      }
    }
    if (!seen_duration) {
      if (!statuses.empty()) return std::nullopt;
      continue;  // an empty entry, which ingress-nginx skips
    }
    if (statuses.empty()) statuses = {"200", "301", "302"};
    for (const std::string_view status : statuses) {
      if (!out.empty()) out += ' ';
      out += std::string(status) + "=" + std::to_string(seconds);
    }
  }
  if (out.empty()) return std::nullopt;
  return out;
}

std::string check_auth_cache_key(std::string_view key) {
  if (key.empty()) return "the cache key is empty";
  if (std::string problem = check_header_value(key); !problem.empty()) return "the cache key " + problem;
  static constexpr std::string_view kNames[] = {"remote_addr", "remote_user", "host",
                                                "http_host",   "scheme",      "request_uri",
                                                "uri",         "args"};
  static constexpr std::string_view kPrefixes[] = {"http_", "cookie_", "arg_"};
  for (std::size_t at = key.find('$'); at != std::string_view::npos; at = key.find('$', at + 1)) {
    std::size_t end = at + 1;
    while (end < key.size() && ((key[end] >= 'a' && key[end] <= 'z') || (key[end] >= '0' && key[end] <= '9') ||
                                key[end] == '_'))
      ++end;
    const std::string_view name = key.substr(at + 1, end - at - 1);
    bool known = false;
    for (const std::string_view n : kNames) known = known || name == n;
    for (const std::string_view p : kPrefixes) known = known || (name.size() > p.size() && name.starts_with(p));
    if (!known) {
      return "\"$" + std::string(name) +
             "\" in the cache key is not one of $remote_addr, $remote_user, $host, $http_host, $scheme, "
             "$request_uri, $uri, $args, $http_<name>, $cookie_<name>, $arg_<name>";
    }
  }
  return {};
}

std::string check_external_auth(const PolicyRecord& record, bool captures) {
  if (record.backend != kNoRecordBackend) return "external auth takes no backend";
  if (record.code != kAuthRequest && (record.flags != 0 || (record.value != 0 && record.code != kAuthCache)))
    return "only the auth request part takes flags or a method";
  if (std::string problem = check_header_value(record.a); !problem.empty()) return "auth " + problem;
  switch (record.code) {
    case kAuthRequest:
      if ((record.flags & ~kExternalAuthFlags) != 0) return "unknown external auth flags";
      if (record.value > std::size(kAuthMethods)) return "unknown auth method";
      if (!record.a.starts_with("http://") && !record.a.starts_with("https://")) return "auth URL is not http(s)";
      if (record.b.empty()) return "auth host is empty";
      if (std::string problem = check_header_value(record.b); !problem.empty()) return "auth host " + problem;
      return check_template(record.a, captures);
    case kAuthSignin:
    case kAuthRequestRedirect:
      if (record.a.empty() || !record.b.empty()) return "auth part needs a template and nothing else";
      return check_template(record.a, captures);
    case kAuthResponseHeaders: {
      if (record.a.empty() || !record.b.empty()) return "auth response headers need names and nothing else";
      std::string_view names = record.a;
      while (true) {
        const std::size_t comma = std::min(names.find(','), names.size());
        if (!header_name(names.substr(0, comma))) return "auth response headers are not header names";
        if (comma == names.size()) return {};
        names.remove_prefix(comma + 1);
      }
    }
    case kAuthCache: {
      if (std::string problem = check_auth_cache_key(record.a); !problem.empty()) return problem;
      std::string_view list = record.b;
      if (list.empty()) return "auth cache durations are empty";
      while (!list.empty()) {
        const std::size_t space = std::min(list.find(' '), list.size());
        const std::string_view item = list.substr(0, space);
        if (item.size() < 5 || item[3] != '=' || !digits(item.substr(0, 3)) || !digits(item.substr(4)) ||
            item.size() > 14)
          return "auth cache durations are not status=seconds";
        list.remove_prefix(std::min(space + 1, list.size()));
      }
      return {};
    }
    default: return "unknown external auth part " + std::to_string(record.code);
  }
}

}  // namespace kroute::policy
