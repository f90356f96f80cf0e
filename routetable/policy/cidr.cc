#include "cidr.h"

#include <arpa/inet.h>

#include <cstdint>

namespace kroute::policy {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string parse_one(std::string_view item, std::string& packed) {
  const std::string text(item);
  const std::size_t slash = text.find('/');
  const std::string address = text.substr(0, slash);
  unsigned char bytes[16] = {};
  int family = 0;
  if (inet_pton(AF_INET, address.c_str(), bytes) == 1) {
    family = 4;
  } else if (inet_pton(AF_INET6, address.c_str(), bytes) == 1) {
    family = 6;
  } else {
    return "\"" + text.substr(0, 64) + "\" is not an IP address or CIDR";
  }
  const unsigned max = family == 4 ? 32 : 128;
  unsigned prefix = max;
  if (slash != std::string::npos) {
    const std::string digits = text.substr(slash + 1);
    if (digits.empty() || digits.size() > 3) return "\"" + text.substr(0, 64) + "\" has no valid prefix length";
    prefix = 0;
    for (const char c : digits) {
      if (c < '0' || c > '9') return "\"" + text.substr(0, 64) + "\" has no valid prefix length";
      prefix = prefix * 10 + static_cast<unsigned>(c - '0');
    }
    if (prefix > max) return "\"" + text.substr(0, 64) + "\" has a prefix longer than " + std::to_string(max) + " bits";
  }
  for (unsigned bit = prefix; bit < max; ++bit) bytes[bit / 8] &= static_cast<unsigned char>(~(0x80u >> (bit % 8)));
  packed.push_back(static_cast<char>(family));
  packed.push_back(static_cast<char>(prefix));
  packed.append(reinterpret_cast<const char*>(bytes), 16);
  return {};
}

}  // namespace

std::string parse_cidr_list(std::string_view list, std::string& packed) {
  std::string out;
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    const std::string_view item = trim(list.substr(0, comma));
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    if (item.empty()) continue;
    if (out.size() / kCidrSize >= kMaxCidrs) return "more than " + std::to_string(kMaxCidrs) + " ranges";
    if (std::string problem = parse_one(item, out); !problem.empty()) return problem;
  }
  packed += out;
  return {};
}

std::string check_cidr_list(std::string_view packed) {
  if (packed.size() % kCidrSize != 0) return "a CIDR list whose size is not a multiple of " + std::to_string(kCidrSize);
  if (packed.size() / kCidrSize > kMaxCidrs) return "more than " + std::to_string(kMaxCidrs) + " ranges";
  for (std::size_t i = 0; i < packed.size(); i += kCidrSize) {
    const auto family = static_cast<unsigned char>(packed[i]);
    const auto prefix = static_cast<unsigned char>(packed[i + 1]);
    if (family != 4 && family != 6) return "a CIDR entry of unknown family " + std::to_string(family);
    if (prefix > (family == 4 ? 32 : 128)) return "a CIDR entry with prefix length " + std::to_string(prefix);
  }
  return {};
}

std::string cidr_list_text(std::string_view packed) {
  std::string text;
  for (std::size_t i = 0; i + kCidrSize <= packed.size(); i += kCidrSize) {
    char buf[INET6_ADDRSTRLEN] = {};
    const int family = packed[i] == 4 ? AF_INET : AF_INET6;
    if (inet_ntop(family, packed.data() + i + 2, buf, sizeof buf) == nullptr) continue;
    if (!text.empty()) text += ',';
    text += buf;
    text += '/' + std::to_string(static_cast<unsigned char>(packed[i + 1]));
  }
  return text;
}

}  // namespace kroute::policy
