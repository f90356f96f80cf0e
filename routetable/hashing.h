// The hashes the slot tables are keyed by, and the payload checksum. Builder and reader must agree on
// them, so they live here once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "format.h"

namespace kroute {

std::uint64_t host_hash(std::string_view host) noexcept;
// A host's hash in a scope (format::HostEntry::hash): the same host in two scopes hashes apart, and the
// shared scope's is host_hash(host), as before scopes.
std::uint64_t host_hash(std::string_view host, std::uint16_t scope) noexcept;
// Keyed by the host's hash (not its index), so a lookup can compute a path's slot before the host
// entry arrives and fetch both at once.
std::uint64_t path_hash(std::uint64_t host_hash, format::Match match, std::string_view path) noexcept;

std::uint64_t payload_checksum(const void* data, std::size_t size) noexcept;
// Identifies a certificate + key pair: equal PEM text, equal fingerprint. 0 for an empty pair.
std::uint64_t certificate_fingerprint(std::string_view chain_pem, std::string_view key_pem) noexcept;

// Slot tables have a power-of-two capacity of at least twice their entries, so probes stay short and
// there is always an empty slot to end a probe.
std::uint64_t slot_capacity(std::uint64_t entries) noexcept;

}  // namespace kroute
