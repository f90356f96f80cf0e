#include "host.h"

namespace kroute {

namespace {

char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool is_label_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

}  // namespace

std::string_view normalize_request_host(std::string_view raw, HostBuffer& buffer) noexcept {
  std::string_view host = raw;
  if (!host.empty() && host.front() == '[') {
    const auto close = host.find(']');
    if (close == std::string_view::npos) return {};
    host = host.substr(0, close + 1);
  } else if (const auto colon = host.find(':'); colon != std::string_view::npos) {
    host = host.substr(0, colon);
  }
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  if (host.empty() || host.size() > format::kMaxHostLength) return {};
  for (std::size_t i = 0; i < host.size(); ++i) buffer.bytes[i] = lower(host[i]);
  return {buffer.bytes, host.size()};
}

std::string check_rule_host(std::string_view host, std::string& normalized) {
  normalized.clear();
  std::string_view name = host;
  if (name.starts_with("*.")) name.remove_prefix(2);
  if (name.empty()) return "a host must not be empty (leave it out for a host-less rule)";
  if (host.size() > format::kMaxHostLength) return "host is longer than 253 characters";
  if (name.find('*') != std::string_view::npos)
    return "a wildcard is allowed only as the whole first label (\"*.example.com\")";
  normalized.reserve(host.size());
  std::size_t label_length = 0;
  for (char raw : name) {
    const char c = lower(raw);
    if (c == '.') {
      if (label_length == 0) return "host has an empty label";
      label_length = 0;
    } else if (is_label_char(c)) {
      if (++label_length > 63) return "host has a label longer than 63 characters";
    } else {
      return "host may contain only letters, digits, '-' and '.'";
    }
    normalized.push_back(c);
  }
  if (label_length == 0) return "host has an empty label";
  if (host.starts_with("*.")) normalized = "*." + normalized;
  return {};
}

}  // namespace kroute
