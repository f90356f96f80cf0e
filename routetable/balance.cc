#include "balance.h"

#include <cmath>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace kroute {

std::uint64_t endpoint_id(const format::EndpointEntry& endpoint) noexcept {
  std::uint8_t key[1 + 16 + 2];
  key[0] = endpoint.family;
  const std::size_t length = endpoint.family == 6 ? 16 : 4;
  for (std::size_t i = 0; i < length; ++i) key[1 + i] = endpoint.address[i];
  key[1 + length] = static_cast<std::uint8_t>(endpoint.port >> 8);
  key[2 + length] = static_cast<std::uint8_t>(endpoint.port);
  return XXH3_64bits(key, 3 + length);
}

std::uint64_t key_hash(std::string_view key) noexcept { return XXH3_64bits(key.data(), key.size()); }

void format_cookie_value(std::uint64_t number, char out[kCookieValueLength]) noexcept {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (std::size_t i = 0; i < kCookieValueLength; ++i) {
    out[kCookieValueLength - 1 - i] = kDigits[number & 0xf];
    number >>= 4;
  }
}

bool parse_cookie_value(std::string_view text, std::uint64_t& number) noexcept {
  if (text.size() != kCookieValueLength) return false;
  std::uint64_t n = 0;
  for (const char c : text) {
    unsigned digit;
    if (c >= '0' && c <= '9') {
      digit = static_cast<unsigned>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      digit = static_cast<unsigned>(c - 'a' + 10);
    } else {
      return false;
    }
    n = (n << 4) | digit;
  }
  number = n;
  return true;
}

double ewma_update(double average, double sample_ms, std::uint64_t elapsed_ms) noexcept {
  constexpr double kDecayMs = 10000.0;
  const double weight = std::exp(-static_cast<double>(elapsed_ms) / kDecayMs);
  return average * weight + sample_ms * (1.0 - weight);
}

}  // namespace kroute
