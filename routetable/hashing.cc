#include "hashing.h"

#include <bit>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace kroute {

std::uint64_t host_hash(std::string_view host) noexcept {
  return XXH3_64bits(host.data(), host.size());
}

std::uint64_t host_hash(std::string_view host, std::uint16_t scope) noexcept {
  if (scope == 0) return host_hash(host);
  return XXH3_64bits_withSeed(host.data(), host.size(), scope * 0x9e3779b97f4a7c15ULL);
}

std::uint64_t path_hash(std::uint64_t host_hash, format::Match match, std::string_view path) noexcept {
  const std::uint64_t seed = host_hash ^ (static_cast<std::uint64_t>(match) * 0x9e3779b97f4a7c15ULL);
  return XXH3_64bits_withSeed(path.data(), path.size(), seed);
}

std::uint64_t payload_checksum(const void* data, std::size_t size) noexcept {
  return XXH3_64bits(data, size);
}

std::uint64_t certificate_fingerprint(std::string_view chain_pem, std::string_view key_pem) noexcept {
  if (chain_pem.empty() && key_pem.empty()) return 0;
  return XXH3_64bits_withSeed(key_pem.data(), key_pem.size(), XXH3_64bits(chain_pem.data(), chain_pem.size()));
}

std::uint64_t slot_capacity(std::uint64_t entries) noexcept {
  if (entries == 0) return 0;
  return std::bit_ceil(entries * 2);
}

}  // namespace kroute
