#include "host.h"

#include <algorithm>

namespace kroute {

namespace {

char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool is_lower_alnum(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

}  // namespace

// One pass: lowercase into the buffer and stop at the port.
std::string_view normalize_request_host(std::string_view raw, HostBuffer& buffer) noexcept {
  std::size_t length = 0;
  if (!raw.empty() && raw.front() == '[') {
    const auto close = raw.find(']');
    if (close == std::string_view::npos || close >= sizeof buffer.bytes) return {};
    length = close + 1;
    for (std::size_t i = 0; i < length; ++i) buffer.bytes[i] = lower(raw[i]);
  } else {
    const std::size_t limit = std::min(raw.size(), sizeof buffer.bytes);
    while (length < limit && raw[length] != ':') {
      buffer.bytes[length] = lower(raw[length]);
      ++length;
    }
    if (length == sizeof buffer.bytes) return {};
  }
  if (length > 0 && buffer.bytes[length - 1] == '.') --length;
  if (length == 0 || length > format::kMaxHostLength) return {};
  return {buffer.bytes, length};
}

LabelProblem dns_label_problem(std::string_view label) noexcept {
  if (label.empty()) return LabelProblem::kEmpty;
  if (label.size() > 63) return LabelProblem::kTooLong;
  for (char c : label) {
    if (!is_lower_alnum(c) && c != '-') return LabelProblem::kCharacter;
  }
  if (label.front() == '-' || label.back() == '-') return LabelProblem::kHyphenAtEdge;
  return LabelProblem::kNone;
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
  for (char c : name) normalized.push_back(lower(c));
  for (std::size_t start = 0; start <= normalized.size();) {
    const std::size_t dot = std::min(normalized.find('.', start), normalized.size());
    switch (dns_label_problem(std::string_view(normalized).substr(start, dot - start))) {
      case LabelProblem::kNone: break;
      case LabelProblem::kEmpty: return "host has an empty label";
      case LabelProblem::kTooLong: return "host has a label longer than 63 characters";
      case LabelProblem::kCharacter: return "host may contain only letters, digits, '-' and '.'";
      case LabelProblem::kHyphenAtEdge: return "host must start and end each label with a letter or digit";
    }
    start = dot + 1;
  }
  if (host.starts_with("*.")) normalized = "*." + normalized;
  return {};
}

}  // namespace kroute
