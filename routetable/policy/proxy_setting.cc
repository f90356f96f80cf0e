#include "proxy_setting.h"

#include <array>
#include <utility>

namespace kroute::policy {

namespace {

struct SettingInfo {
  const char* name;
  std::uint64_t min;
  std::uint64_t max;
};

// Indexed by code - 1. Timeouts of 0 would time out at once in nginx: at least 1 ms.
constexpr std::array<SettingInfo, kProxySettingCount> kSettings = {{
    {"proxy-connect-timeout", 1, kMaxProxyTimeoutMs},
    {"proxy-read-timeout", 1, kMaxProxyTimeoutMs},
    {"proxy-send-timeout", 1, kMaxProxyTimeoutMs},
    {"proxy-next-upstream", 1, kNextUpstreamBits},
    {"proxy-next-upstream-tries", 0, kMaxProxyTries},
    {"proxy-next-upstream-timeout", 0, kMaxProxyTimeoutMs},
    {"proxy-body-size", 0, kMaxBodySize},
    {"client-body-buffer-size", 1, kMaxProxyBufferSize},
    {"proxy-buffering", 0, 1},
    {"proxy-buffer-size", 1, kMaxProxyBufferSize},
    // nginx needs two buffers at least: one busy sending while the next is read.
    {"proxy-buffers-number", 2, kMaxProxyBuffers},
    {"proxy-request-buffering", 0, 1},
    {"proxy-max-temp-file-size", 0, kMaxTempFileSize},
}};

constexpr std::pair<std::string_view, std::uint32_t> kConditions[] = {
    {"error", kNextError},           {"timeout", kNextTimeout},   {"invalid_header", kNextInvalidHeader},
    {"http_500", kNextHttp500},      {"http_502", kNextHttp502},  {"http_503", kNextHttp503},
    {"http_504", kNextHttp504},      {"http_403", kNextHttp403},  {"http_404", kNextHttp404},
    {"http_429", kNextHttp429},      {"non_idempotent", kNextNonIdempotent}, {"off", kNextOff},
};

const SettingInfo* setting(std::uint16_t code) noexcept {
  return code >= 1 && code <= kProxySettingCount ? &kSettings[code - 1] : nullptr;
}

}  // namespace

const char* proxy_setting_name(std::uint16_t code) noexcept {
  const SettingInfo* info = setting(code);
  return info ? info->name : "unknown proxy setting";
}

std::string proxy_setting_problem(std::uint16_t code, std::uint64_t value) {
  const SettingInfo* info = setting(code);
  if (info == nullptr) return "unknown proxy setting " + std::to_string(code);
  if (value < info->min || value > info->max) {
    return std::string(info->name) + " " + std::to_string(value) + " is outside " + std::to_string(info->min) +
           ".." + std::to_string(info->max);
  }
  if (code == static_cast<std::uint16_t>(ProxySetting::kNextUpstream) && (value & kNextOff) && value != kNextOff)
    return "proxy-next-upstream off combined with other conditions";
  return {};
}

std::string check_proxy_setting(const PolicyRecord& record, bool) {
  if (record.flags != 0 || !record.a.empty() || !record.b.empty() || record.backend != kNoRecordBackend)
    return "a proxy setting has only a code and a value";
  return proxy_setting_problem(record.code, record.value);
}

std::optional<std::uint64_t> parse_count(std::string_view text) {
  if (text.empty() || text.size() > 18) return std::nullopt;
  std::uint64_t n = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return n;
}

std::optional<std::uint64_t> parse_seconds(std::string_view text) {
  const std::optional<std::uint64_t> seconds = parse_count(text);
  if (!seconds || *seconds > kMaxProxyTimeoutMs / 1000) return std::nullopt;
  return *seconds * 1000;
}

std::optional<std::uint64_t> parse_size(std::string_view text, bool gigabytes) {
  if (text.empty()) return std::nullopt;
  std::uint64_t scale = 1;
  switch (text.back()) {
    case 'k': case 'K': scale = 1ull << 10; break;
    case 'm': case 'M': scale = 1ull << 20; break;
    case 'g': case 'G':
      if (!gigabytes) return std::nullopt;
      scale = 1ull << 30;
      break;
    default: break;
  }
  if (scale != 1) text.remove_suffix(1);
  const std::optional<std::uint64_t> n = parse_count(text);
  if (!n || *n > (std::uint64_t{1} << 62) / scale) return std::nullopt;
  return *n * scale;
}

std::optional<std::uint32_t> parse_next_upstream(std::string_view text) {
  std::uint32_t bits = 0;
  while (!text.empty()) {
    const std::size_t start = text.find_first_not_of(" \t");
    if (start == std::string_view::npos) break;
    text.remove_prefix(start);
    const std::size_t end = text.find_first_of(" \t");
    const std::string_view word = text.substr(0, end);
    std::uint32_t bit = 0;
    for (const auto& [name, value] : kConditions) {
      if (word == name) bit = value;
    }
    if (bit == 0) return std::nullopt;
    bits |= bit;
    text = end == std::string_view::npos ? std::string_view() : text.substr(end);
  }
  if (bits == 0 || ((bits & kNextOff) && bits != kNextOff)) return std::nullopt;
  return bits;
}

}  // namespace kroute::policy
