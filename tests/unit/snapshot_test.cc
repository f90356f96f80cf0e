// Validation: a snapshot that is truncated, oversized, corrupted, of another version or magic, or whose
// offsets point outside the file is refused with one clear error, and never followed.
#include <doctest.h>

#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#include "format.h"
#include "hashing.h"
#include "model_builder.h"

using kroute::SnapshotView;
using kroute::ValidationResult;
namespace format = kroute::format;

namespace {

std::vector<std::byte> sample() {
  kroute::testing::ModelBuilder m;
  m.prefix("a.com", "/", "a").exact("a.com", "/x", "b").prefix("*.b.com", "/y", "c").tls("a.com", "cert");
  m.prefix("", "/z", "d").default_backend("a");
  return kroute::build_snapshot(m.model(), {1}).bytes;
}

format::Header& header_of(std::vector<std::byte>& bytes) { return *reinterpret_cast<format::Header*>(bytes.data()); }

// After editing the payload, make the checksum right again so the structural checks are reached.
void reseal(std::vector<std::byte>& bytes) {
  header_of(bytes).checksum = kroute::payload_checksum(bytes.data() + sizeof(format::Header),
                                                       bytes.size() - sizeof(format::Header));
}

ValidationResult check(const std::vector<std::byte>& bytes) {
  SnapshotView view;
  return SnapshotView::open(bytes, view);
}

template <typename T>
T* section(std::vector<std::byte>& bytes, format::Section s) {
  return reinterpret_cast<T*>(bytes.data() + header_of(bytes).sections[s].offset);
}

}  // namespace

TEST_CASE("a built snapshot validates") {
  const auto bytes = sample();
  const auto result = check(bytes);
  CHECK(result.ok);
  CHECK(result.error.empty());
}

TEST_CASE("truncated snapshots are refused") {
  auto bytes = sample();
  for (std::size_t size : {std::size_t{0}, std::size_t{10}, sizeof(format::Header) - 1, sizeof(format::Header),
                           bytes.size() - 8}) {
    CAPTURE(size);
    const std::vector<std::byte> cut(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(size));
    const auto result = check(cut);
    CHECK_FALSE(result.ok);
    CHECK((result.error.find("truncated") != std::string::npos || result.error.find("size mismatch") != std::string::npos));
  }
}

TEST_CASE("oversized snapshots are refused") {
  auto bytes = sample();
  bytes.resize(bytes.size() + 64);
  const auto result = check(bytes);
  CHECK_FALSE(result.ok);
  CHECK(result.error.find("size mismatch") != std::string::npos);
}

TEST_CASE("a flipped bit anywhere in the payload is caught by the checksum") {
  const auto original = sample();
  for (std::size_t at = sizeof(format::Header); at < original.size(); at += 7) {
    auto bytes = original;
    bytes[at] ^= std::byte{0x10};
    const auto result = check(bytes);
    CAPTURE(at);
    CHECK_FALSE(result.ok);
    CHECK(result.error.find("checksum") != std::string::npos);
  }
}

TEST_CASE("wrong magic and wrong version are refused with their own message") {
  auto bytes = sample();
  header_of(bytes).magic ^= 1;
  CHECK(check(bytes).error.find("bad magic") != std::string::npos);
  bytes = sample();
  header_of(bytes).version = format::kVersion + 1;
  const auto result = check(bytes);
  CHECK_FALSE(result.ok);
  CHECK(result.error.find("format version " + std::to_string(format::kVersion + 1)) != std::string::npos);
}

TEST_CASE("sections outside the file are refused") {
  auto bytes = sample();
  header_of(bytes).sections[format::kRules].offset = bytes.size() + 8;
  CHECK(check(bytes).error.find("'rules' lies outside") != std::string::npos);
  bytes = sample();
  header_of(bytes).sections[format::kEndpoints].count = 1ULL << 40;
  CHECK(check(bytes).error.find("'endpoints' lies outside") != std::string::npos);
  bytes = sample();
  header_of(bytes).sections[format::kHosts].offset = 4;  // inside the header
  CHECK_FALSE(check(bytes).ok);
  bytes = sample();
  header_of(bytes).sections[format::kHosts].offset += 1;  // misaligned
  CHECK_FALSE(check(bytes).ok);
}

TEST_CASE("offsets and indexes out of range are refused, never followed") {
  SUBCASE("a string past the pool") {
    auto bytes = sample();
    section<format::HostEntry>(bytes, format::kHosts)[0].name.length = 1u << 30;
    reseal(bytes);
    CHECK(check(bytes).error.find("hosts[0]: string outside the string pool") != std::string::npos);
  }
  SUBCASE("a string whose offset + length wraps 32 bits") {
    auto bytes = sample();
    auto& name = section<format::HostEntry>(bytes, format::kHosts)[0].name;
    name.offset = 0xfffffff0u;
    name.length = 0x20u;
    reseal(bytes);
    CHECK(check(bytes).error.find("string outside the string pool") != std::string::npos);
  }
  SUBCASE("a rule's backend") {
    auto bytes = sample();
    section<format::RuleEntry>(bytes, format::kRules)[0].backend = 1000;
    reseal(bytes);
    CHECK(check(bytes).error.find("rules[0]: backend out of range") != std::string::npos);
  }
  SUBCASE("a host's rule range") {
    auto bytes = sample();
    section<format::HostEntry>(bytes, format::kHosts)[0].rule_count = 0xffffffffu;
    reseal(bytes);
    CHECK(check(bytes).error.find("hosts[0]: rules out of range") != std::string::npos);
  }
  SUBCASE("a backend's endpoints") {
    auto bytes = sample();
    section<format::BackendEntry>(bytes, format::kBackends)[0].first_endpoint = 500;
    reseal(bytes);
    CHECK(check(bytes).error.find("endpoints out of range") != std::string::npos);
  }
  SUBCASE("more ready endpoints than endpoints") {
    auto bytes = sample();
    section<format::BackendEntry>(bytes, format::kBackends)[0].ready_count = 9;
    reseal(bytes);
    CHECK(check(bytes).error.find("more ready endpoints") != std::string::npos);
  }
  SUBCASE("a slot past its entries") {
    auto bytes = sample();
    section<std::uint32_t>(bytes, format::kPathSlots)[0] = 77;
    reseal(bytes);
    CHECK(check(bytes).error.find("path slots") != std::string::npos);
  }
  SUBCASE("a full slot table, which would never end a probe") {
    auto bytes = sample();
    const auto capacity = header_of(bytes).sections[format::kPathSlots].count;
    for (std::uint64_t i = 0; i < capacity; ++i) section<std::uint32_t>(bytes, format::kPathSlots)[i] = 1;
    reseal(bytes);
    CHECK(check(bytes).error.find("no empty slot") != std::string::npos);
  }
  SUBCASE("the default backend and the host-less host") {
    auto bytes = sample();
    header_of(bytes).default_backend = 12345;
    CHECK(check(bytes).error.find("default backend out of range") != std::string::npos);
    bytes = sample();
    header_of(bytes).any_host = 0;  // an exact host, not the host-less entry
    CHECK(check(bytes).error.find("host-less host is not") != std::string::npos);
    bytes = sample();
    header_of(bytes).default_tls = 40;
    CHECK(check(bytes).error.find("default certificate out of range") != std::string::npos);
  }
  SUBCASE("a certificate outside the string pool") {
    auto bytes = sample();
    section<format::TlsEntry>(bytes, format::kTls)[0].key_pem = {0, 1u << 31};
    reseal(bytes);
    CHECK(check(bytes).error.find("tls[0]: string outside the string pool") != std::string::npos);
  }
  SUBCASE("a ready endpoint of weight 0 (a share of nothing) or without the ready flag") {
    const auto first_ready = [](std::vector<std::byte>& bytes) -> format::EndpointEntry& {
      const auto& backend = section<format::BackendEntry>(bytes, format::kBackends)[0];
      REQUIRE(backend.ready_count > 0);
      return section<format::EndpointEntry>(bytes, format::kEndpoints)[backend.first_endpoint];
    };
    auto bytes = sample();
    first_ready(bytes).weight = 0;
    reseal(bytes);
    CHECK(check(bytes).error.find("ready endpoint with weight 0") != std::string::npos);
    bytes = sample();
    first_ready(bytes).flags = 0;
    reseal(bytes);
    CHECK(check(bytes).error.find("counted ready without the ready flag") != std::string::npos);
  }
  SUBCASE("an unknown address family") {
    auto bytes = sample();
    section<format::EndpointEntry>(bytes, format::kEndpoints)[0].family = 5;
    reseal(bytes);
    CHECK(check(bytes).error.find("unknown address family") != std::string::npos);
  }
}
