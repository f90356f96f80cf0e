#include "text.h"

#include <chrono>
#include <array>
#include <cstdio>
#include <ctime>

namespace kroute::agent {

bool base64_decode(std::string_view in, std::string& out) {
  static constexpr unsigned char kInvalid = 0xff;
  static const auto table = [] {
    std::array<unsigned char, 256> t{};
    t.fill(kInvalid);
    const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(alphabet[i])] = static_cast<unsigned char>(i);
    return t;
  }();
  out.clear();
  out.reserve(in.size() * 3 / 4);
  unsigned int bits = 0;
  int count = 0;
  for (char c : in) {
    if (c == '=' || c == '\n' || c == '\r' || c == ' ') continue;
    const unsigned char v = table[static_cast<unsigned char>(c)];
    if (v == kInvalid) return false;
    bits = ((bits << 6) | v) & 0xffffff;
    count += 6;
    if (count >= 8) {
      count -= 8;
      out.push_back(static_cast<char>((bits >> count) & 0xff));
    }
  }
  return true;
}

std::string trim(std::string_view s) {
  const auto space = [](char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; };
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  return std::string(s);
}

bool parse_rfc3339(std::string_view text, std::int64_t& unix_seconds) {
  std::tm tm{};
  int consumed = 0;
  const std::string copy(text);
  if (std::sscanf(copy.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                  &tm.tm_min, &tm.tm_sec, &consumed) != 6) {
    return false;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  unix_seconds = static_cast<std::int64_t>(timegm(&tm));
  return true;
}

std::string now_rfc3339(int fraction_digits) {
  const auto now = std::chrono::system_clock::now();
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
  const std::time_t seconds = static_cast<std::time_t>(us / 1000000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[48];
  const std::size_t n = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
  const int micros = static_cast<int>(us % 1000000);
  if (fraction_digits == 6) {
    std::snprintf(text + n, sizeof text - n, ".%06dZ", micros);
  } else if (fraction_digits == 3) {
    std::snprintf(text + n, sizeof text - n, ".%03dZ", micros / 1000);
  } else {
    std::snprintf(text + n, sizeof text - n, "Z");
  }
  return text;
}

}  // namespace kroute::agent
