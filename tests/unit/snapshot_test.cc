// Validation: a snapshot that is truncated, oversized, corrupted, of another version or magic, or whose
// offsets point outside the file is refused with one clear error, and never followed.
#include <doctest.h>

#include <cstddef>
#include <cstring>
#include <span>
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
  SUBCASE("a source's kind past the pool") {
    auto bytes = sample();
    section<format::SourceEntry>(bytes, format::kSources)[0].kind = {0, 1u << 30};
    reseal(bytes);
    CHECK(check(bytes).error.find("sources[0]: string outside the string pool") != std::string::npos);
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

namespace {

// A rule without conditions (/z, longest first), then two rules of one key with conditions (a chain).
std::vector<std::byte> conditional_sample() {
  kroute::testing::ModelBuilder m;
  m.prefix("a.com", "/", "a").when({kroute::testing::header_is("x", "1"), kroute::testing::query_is("q", "2")});
  m.prefix("a.com", "/", "b").when({kroute::testing::method_is("GET")});
  m.prefix("a.com", "/z", "c");
  return kroute::build_snapshot(m.model(), {1}).bytes;
}

}  // namespace

TEST_CASE("match conditions and rule chains: validation follows what lookup follows") {
  const auto original = conditional_sample();
  REQUIRE(check(original).ok);
  const auto rules = [](std::vector<std::byte>& bytes) { return section<format::RuleEntry>(bytes, format::kRules); };
  {
    auto bytes = original;
    REQUIRE(rules(bytes)[0].flags == 0);
    REQUIRE(rules(bytes)[1].flags == (format::kHasConditions | format::kChainNext));
    REQUIRE(rules(bytes)[2].flags == format::kHasConditions);
  }
  SUBCASE("an unknown rule flag") {
    auto bytes = original;
    rules(bytes)[0].flags = 4;
    reseal(bytes);
    CHECK(check(bytes).error.find("rules[0]: unknown flags") != std::string::npos);
  }
  SUBCASE("a chain past the last rule") {
    auto bytes = original;
    const auto n = header_of(bytes).sections[format::kRules].count;
    rules(bytes)[n - 1].flags |= format::kChainNext;
    reseal(bytes);
    CHECK(check(bytes).error.find("chain runs past the last rule") != std::string::npos);
  }
  SUBCASE("a chain to a rule of another path") {
    auto bytes = original;
    rules(bytes)[0].flags |= format::kChainNext;  // /z, then the chain of /
    reseal(bytes);
    CHECK(check(bytes).error.find("chained to a rule with another host or path") != std::string::npos);
  }
  SUBCASE("conditions without the per-rule table") {
    auto bytes = original;
    header_of(bytes).sections[format::kRuleConditions].count = 0;
    reseal(bytes);
    CHECK(check(bytes).error.find("conditions without a rule conditions table") != std::string::npos);
  }
  SUBCASE("a per-rule table of another size") {
    auto bytes = original;
    for (auto& rule : std::span(rules(bytes), header_of(bytes).sections[format::kRules].count)) rule.flags = 0;
    header_of(bytes).sections[format::kRuleConditions].count = 1;
    reseal(bytes);
    CHECK(check(bytes).error.find("rule conditions[0]: neither empty nor one entry per rule") != std::string::npos);
  }
  SUBCASE("a rule's conditions out of range, or none though flagged") {
    auto bytes = original;
    section<format::ConditionRange>(bytes, format::kRuleConditions)[1].first = 40;
    reseal(bytes);
    CHECK(check(bytes).error.find("rules[1]: conditions out of range") != std::string::npos);
    bytes = original;
    section<format::ConditionRange>(bytes, format::kRuleConditions)[2].count = 0;
    reseal(bytes);
    CHECK(check(bytes).error.find("rules[2]: flagged with conditions but has none") != std::string::npos);
  }
  SUBCASE("a condition of an unknown kind, or with a string outside the pool") {
    auto bytes = original;
    section<format::ConditionEntry>(bytes, format::kConditions)[0].kind = static_cast<format::ConditionKind>(5);
    reseal(bytes);
    CHECK(check(bytes).error.find("conditions[0]: unknown kind") != std::string::npos);
    bytes = original;
    section<format::ConditionEntry>(bytes, format::kConditions)[1].value = {0, 1u << 30};
    reseal(bytes);
    CHECK(check(bytes).error.find("conditions[1]: string outside the string pool") != std::string::npos);
  }
}

namespace {

// Two scopes with two local addresses each, scope 1 with host-less rules and a default certificate.
std::vector<std::byte> scoped_sample() {
  kroute::testing::ModelBuilder m;
  m.scope("a", {{"10.0.0.7", 80}, {"fd00::7", 0}}, {"CHAIN", "KEY"});
  m.scope("b", {{"", 8080}, {"10.0.0.8", 0}});
  m.prefix("a.com", "/", "a");
  m.in_scope(1).prefix("a.com", "/", "one").prefix("", "/", "one-any");
  m.in_scope(2).prefix("*.a.com", "/", "two");
  m.model().scopes[0].listener_names = {"", "b.com", "*.a.com"};
  return kroute::build_snapshot(m.model(), {1}).bytes;
}

}  // namespace

TEST_CASE("scopes: every field of a scope entry is checked, and a host's scope") {
  const auto original = scoped_sample();
  REQUIRE(check(original).ok);
  const auto scopes = [](std::vector<std::byte>& bytes) { return section<format::ScopeEntry>(bytes, format::kScopes); };
  const auto hosts = [](std::vector<std::byte>& bytes) { return section<format::HostEntry>(bytes, format::kHosts); };
  {
    auto bytes = original;
    REQUIRE(header_of(bytes).sections[format::kScopes].count == 4);
    REQUIRE(scopes(bytes)[0].any_host != format::kNone);
    REQUIRE(scopes(bytes)[0].default_tls != format::kNone);
    REQUIRE(scopes(bytes)[2].scope == 2);
    REQUIRE(scopes(bytes)[0].listener_name_count == 3);
    REQUIRE(scopes(bytes)[2].listener_name_count == 0);
    REQUIRE(header_of(bytes).sections[format::kListenerNames].count == 3);
  }
  const auto refused = [&](auto&& corrupt, const std::string& error) {
    auto bytes = original;
    corrupt(bytes);
    reseal(bytes);
    const auto result = check(bytes);
    CHECK_FALSE(result.ok);
    CHECK(result.error.find(error) != std::string::npos);
  };
  SUBCASE("an unknown family, or address bytes beyond it") {
    refused([&](auto& b) { scopes(b)[0].family = 5; }, "scopes[0]: unknown address family");
    refused([&](auto& b) { scopes(b)[0].address[4] = 1; }, "scopes[0]: address bytes beyond its family");
    refused([&](auto& b) { scopes(b)[2].address[0] = 1; }, "scopes[2]: address bytes beyond its family");
  }
  SUBCASE("reserved fields, an entry for the shared scope, entries out of order") {
    refused([&](auto& b) { scopes(b)[1].reserved2 = 1; }, "scopes[1]: reserved fields are not zero");
    refused([&](auto& b) { scopes(b)[0].scope = 0; }, "scopes[0]: an entry for the shared scope");
    refused([&](auto& b) { scopes(b)[3].scope = 1; }, "scopes[3]: entries out of scope order");
  }
  SUBCASE("the host-less host: in range, host-less, of the entry's scope") {
    refused([&](auto& b) { scopes(b)[0].any_host = 1000; }, "scopes[0]: host-less host out of range");
    refused([&](auto& b) { scopes(b)[2].any_host = scopes(b)[0].any_host; },
            "scopes[2]: host-less host is not of the host-less kind in this scope");
    refused([&](auto& b) { scopes(b)[0].any_host = 0; }, "host-less host is not of the host-less kind");
    refused([&](auto& b) { header_of(b).any_host = scopes(b)[0].any_host; },
            "header[0]: host-less host is not of the host-less kind in the shared scope");
  }
  SUBCASE("the default certificate and the name") {
    refused([&](auto& b) { scopes(b)[1].default_tls = 99; }, "scopes[1]: default certificate out of range");
    refused([&](auto& b) { scopes(b)[3].name = {0, 1u << 30}; }, "scopes[3]: string outside the string pool");
  }
  SUBCASE("entries of one scope disagree on what lookup reads from the first") {
    refused([&](auto& b) { scopes(b)[1].default_tls = format::kNone; }, "scopes[1]: entries of one scope disagree");
    refused([&](auto& b) { scopes(b)[3].name.length = 0; }, "scopes[3]: entries of one scope disagree");
  }
  SUBCASE("listener names: in range, strings in the pool, the same for every entry of a scope") {
    const auto names = [](std::vector<std::byte>& b) { return section<format::StrRef>(b, format::kListenerNames); };
    refused([&](auto& b) { scopes(b)[0].listener_name_count = 4; }, "scopes[0]: listener names out of range");
    refused([&](auto& b) { scopes(b)[2].first_listener_name = 9; }, "scopes[2]: listener names out of range");
    refused([&](auto& b) { names(b)[1] = {0, 1u << 30}; }, "listener names[1]: string outside the string pool");
    refused([&](auto& b) { scopes(b)[1].listener_name_count = 2; }, "scopes[1]: entries of one scope disagree");
  }
  SUBCASE("a host of a scope the table does not have") {
    refused([&](auto& b) { hosts(b)[0].scope = 3; }, "hosts[0]: scope beyond the table's scopes");
    refused(
        [&](auto& b) {
          header_of(b).sections[format::kScopes].count = 0;
        },
        "scope beyond the table's scopes");
  }
}
