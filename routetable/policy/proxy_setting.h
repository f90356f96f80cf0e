// kProxySetting: one location-wide proxy setting of nginx overridden for a rule's requests. `code` says
// which (ProxySetting), `value` is the new value in the setting's unit: milliseconds for timeouts,
// bytes for sizes, a count, 0/1 for a switch, or a NextUpstream bit set. A rule has at most one record
// per setting and only for settings that differ from nginx.conf's (ingress-nginx's) defaults. Made from
// ingress-nginx's proxy-* and client-body-buffer-size annotations; applied by the module's proxy phase
// (ngx_http_kroute_proxy_module.c): body limits before the body is read, upstream ones in the balancer.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "record.h"

namespace kroute::policy {

enum class ProxySetting : std::uint16_t {
  kConnectTimeout = 1,       // ms, proxy_connect_timeout
  kReadTimeout = 2,          // ms, proxy_read_timeout
  kSendTimeout = 3,          // ms, proxy_send_timeout
  kNextUpstream = 4,         // NextUpstream bits, proxy_next_upstream
  kNextUpstreamTries = 5,    // count (0: no limit), proxy_next_upstream_tries
  kNextUpstreamTimeout = 6,  // ms (0: no limit), proxy_next_upstream_timeout
  kBodySize = 7,             // bytes (0: no limit), client_max_body_size
  kBodyBufferSize = 8,       // bytes, client_body_buffer_size
  kBuffering = 9,            // 0/1, proxy_buffering
  kBufferSize = 10,          // bytes, proxy_buffer_size and the size of each of proxy_buffers
  kBuffersNumber = 11,       // count, the number of proxy_buffers
  kRequestBuffering = 12,    // 0/1, proxy_request_buffering
  kMaxTempFileSize = 13,     // bytes (0: no temporary files), proxy_max_temp_file_size
};
inline constexpr std::uint16_t kProxySettingCount = 13;

// proxy_next_upstream's conditions (nginx's names), as ingress-nginx's proxy-next-upstream lists them.
enum NextUpstream : std::uint32_t {
  kNextError = 1,
  kNextTimeout = 2,
  kNextInvalidHeader = 4,
  kNextHttp500 = 8,
  kNextHttp502 = 16,
  kNextHttp503 = 32,
  kNextHttp504 = 64,
  kNextHttp403 = 128,
  kNextHttp404 = 256,
  kNextHttp429 = 512,
  kNextNonIdempotent = 1024,
  kNextOff = 2048,  // alone: never try another endpoint
  // kroute's own, not nginx's and not an annotation's word: once every ready endpoint has failed, a try may
  // go to one again (HTTPRoute retries, which a one-pod backend must get), up to proxy-next-upstream-tries.
  kNextRepeat = 4096,
};
inline constexpr std::uint32_t kNextUpstreamBits = 8191;

// Upper bounds the check enforces (generous; they keep values inside what nginx's types and timers hold
// and what a request may sensibly allocate).
inline constexpr std::uint64_t kMaxProxyTimeoutMs = 7ull * 24 * 3600 * 1000;  // a week
inline constexpr std::uint64_t kMaxProxyTries = 1000;
inline constexpr std::uint64_t kMaxBodySize = 1ull << 50;        // 1 PiB: "unlimited" is 0
inline constexpr std::uint64_t kMaxProxyBufferSize = 64ull << 20; // per buffer
inline constexpr std::uint64_t kMaxProxyBuffers = 1024;
inline constexpr std::uint64_t kMaxTempFileSize = 1ull << 40;

inline PolicyRecord proxy_setting(ProxySetting setting, std::uint64_t value) {
  return {.kind = PolicyKind::kProxySetting, .code = static_cast<std::uint16_t>(setting), .value = value};
}

// The settings' names as ingress-nginx's annotations call them (dump, logs).
const char* proxy_setting_name(std::uint16_t code) noexcept;
// "" when `value` is in range for setting `code`; else why not. The builder's check and the snapshot's
// validation both use it, so the module never sees a value out of range.
std::string proxy_setting_problem(std::uint16_t code, std::uint64_t value);
std::string check_proxy_setting(const PolicyRecord& record, bool captures);

// Readers for annotation values, with nginx's syntax as ingress-nginx writes them into nginx.conf.
// Seconds as a decimal integer (ingress-nginx's timeouts); milliseconds out.
std::optional<std::uint64_t> parse_seconds(std::string_view text);
// A decimal integer.
std::optional<std::uint64_t> parse_count(std::string_view text);
// An nginx size: digits with an optional k/K or m/M suffix, and g/G when `gigabytes` (offsets, as
// client_max_body_size takes); bytes out.
std::optional<std::uint64_t> parse_size(std::string_view text, bool gigabytes);
// proxy_next_upstream's conditions separated by spaces; NextUpstream bits out. nginx refuses "off" next
// to other conditions, and so does this.
std::optional<std::uint32_t> parse_next_upstream(std::string_view text);

}  // namespace kroute::policy
