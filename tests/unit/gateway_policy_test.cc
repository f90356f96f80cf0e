// The Gateway API's record kinds: split (weighted backendRefs) and the request and response header
// modifiers, as the builder checks and stores them and validation refuses them broken.
#include <doctest.h>

#include <array>
#include <cstring>
#include <string>
#include <vector>

#include "format.h"
#include "hashing.h"
#include "model_builder.h"
#include "policy/header_modifier.h"
#include "policy/kinds.h"
#include "policy/split.h"

using namespace kroute;
using kroute::testing::BuiltTable;
using kroute::testing::ModelBuilder;

namespace {

// A built table's first rule's records.
std::vector<format::PolicyRecord> records_of(const BuiltTable& t) {
  REQUIRE(!t.view.rules().empty());
  const auto span = t.view.policies(t.view.rules()[0].policies);
  return {span.begin(), span.end()};
}

void reseal(std::vector<std::byte>& bytes) {
  auto& header = *reinterpret_cast<format::Header*>(bytes.data());
  header.checksum = payload_checksum(bytes.data() + sizeof(format::Header), bytes.size() - sizeof(format::Header));
}

std::string validate(const std::vector<std::byte>& bytes) {
  SnapshotView view;
  return SnapshotView::open(bytes, view).error;
}

format::PolicyRecord& first_record(std::vector<std::byte>& bytes) {
  const auto& header = *reinterpret_cast<format::Header*>(bytes.data());
  return *reinterpret_cast<format::PolicyRecord*>(bytes.data() + header.sections[format::kPolicyRecords].offset);
}

}  // namespace

TEST_CASE("split records: one per backendRef with its weight; an invalid ref has no backend") {
  ModelBuilder m;
  m.backend("unused").backend("v1").backend("v2");
  m.prefix("a.com", "/", "v1");
  m.model().rules[0].policies = {policy::split(1, 3), policy::split(2, 1), policy::split(kNoRecordBackend, 0),
                                 policy::split(kNoRecordBackend, 2)};
  const BuiltTable t(m.model());
  REQUIRE(t.validation.ok);
  CHECK(t.result.diagnostics.empty());
  const auto records = records_of(t);
  REQUIRE(records.size() == 4);
  CHECK(std::string(policy::kind_name(records[0].kind)) == "split");
  CHECK(t.view.str(t.view.backends()[records[0].backend].service) == "v1");
  CHECK(t.view.str(t.view.backends()[records[1].backend].service) == "v2");
  CHECK(records[0].value == 3);
  CHECK(records[2].backend == format::kNone);
  CHECK(records[3].value == 2);
  // The rule's own backend is the one the agent named (the first valid ref's).
  CHECK(t.view.str(t.view.backends()[t.view.rules()[0].backend].service) == "v1");
}

TEST_CASE("split records the builder refuses") {
  const auto problem = [](PolicyRecord record) { return policy::check_record(record, false); };
  CHECK(problem(policy::split(0, 1000000)).empty());
  CHECK(problem(policy::split(kNoRecordBackend, 0)).empty());
  PolicyRecord heavy = policy::split(0, 1);
  heavy.value = std::uint64_t{1} << 32;
  CHECK(problem(heavy).find("above") != std::string::npos);
  PolicyRecord text = policy::split(0, 1);
  text.a = "x";
  CHECK(problem(text).find("does not use") != std::string::npos);

  ModelBuilder m;
  m.prefix("a.com", "/", "v1");
  m.model().rules[0].policies = {policy::split(7, 1)};  // no such backend
  const BuiltTable t(m.model());
  REQUIRE(t.result.diagnostics.size() == 1);
  CHECK(t.result.diagnostics[0].message == "split policy: refers to a missing or invalid backend");
}

TEST_CASE("a split pick follows the weights; zero weights are never chosen; a zero sum is no share") {
  std::vector<format::PolicyRecord> records(4);
  records[0] = {PolicyKind::kRequestHeader, policy::kSetHeader, 0, format::kNone, 0, 0, {}, {}};
  records[1] = {PolicyKind::kSplit, 0, 0, 0, 0, 3, {}, {}};
  records[2] = {PolicyKind::kSplit, 0, 0, 1, 0, 0, {}, {}};
  records[3] = {PolicyKind::kSplit, 0, 0, format::kNone, 0, 1, {}, {}};
  std::array<int, 4> picks{};
  for (std::uint64_t random = 0; random < 4000; ++random) {
    const std::size_t i = policy::pick_split(records, random * 2654435761u);
    REQUIRE(i < records.size());
    ++picks[i];
  }
  CHECK(picks[0] == 0);
  CHECK(picks[2] == 0);
  CHECK(picks[1] == 3000);  // random % 4 < 3: exactly three quarters of consecutive multiples of an odd number
  CHECK(picks[3] == 1000);
  records[1].value = 0;
  records[3].value = 0;
  CHECK(policy::pick_split(records, 12345) == policy::kNoShare);
  CHECK(policy::pick_split({}, 1) == policy::kNoShare);
}

TEST_CASE("header modifier records: actions, names and values checked, stored in order") {
  const auto problem = [](PolicyRecord record) { return policy::check_record(record, false); };
  CHECK(problem(policy::request_header(policy::kSetHeader, "X-Set", "v")).empty());
  CHECK(problem(policy::request_header(policy::kAddHeader, "X-Add", "a,b")).empty());
  CHECK(problem(policy::request_header(policy::kRemoveHeader, "X-Remove")).empty());
  CHECK(problem(policy::response_header(policy::kSetHeader, "Host", "x")).empty());
  CHECK(problem(policy::request_header(policy::kSetHeader, "X-Empty", "")).empty());
  CHECK(problem(policy::response_header(policy::kRemoveHeader, "X", "v")) == "remove takes no value");
  CHECK(problem(policy::request_header(static_cast<policy::HeaderAction>(4), "X", "v")) == "unknown header action");
  CHECK(problem(policy::request_header(policy::kSetHeader, "X Y", "v")).find("token") != std::string::npos);
  CHECK(problem(policy::request_header(policy::kSetHeader, "", "v")).find("token") != std::string::npos);
  CHECK(problem(policy::request_header(policy::kSetHeader, "X", "a\r\nInjected: 1")).find("control") !=
        std::string::npos);
  for (const char* owned : {"Content-Length", "transfer-encoding", "Connection", "Keep-Alive", "TE", "Upgrade",
                            "Trailer", "Proxy-Connection", "Expect"}) {
    CAPTURE(owned);
    CHECK(problem(policy::request_header(policy::kSetHeader, owned, "1")).find("nginx's to write") !=
          std::string::npos);
    CHECK(problem(policy::response_header(policy::kRemoveHeader, owned)).find("nginx's to write") !=
          std::string::npos);
  }

  ModelBuilder m;
  m.prefix("a.com", "/", "v1");
  m.model().rules[0].policies = {policy::request_header(policy::kSetHeader, "X-Set", "one"),
                                 policy::request_header(policy::kRemoveHeader, "X-Remove"),
                                 policy::response_header(policy::kAddHeader, "X-Add", "two")};
  const BuiltTable t(m.model());
  REQUIRE(t.validation.ok);
  const auto records = records_of(t);
  REQUIRE(records.size() == 3);
  CHECK(std::string(policy::kind_name(records[0].kind)) == "request-header");
  CHECK(std::string(policy::kind_name(records[2].kind)) == "response-header");
  CHECK(records[0].code == policy::kSetHeader);
  CHECK(t.view.str(records[0].a) == "X-Set");
  CHECK(t.view.str(records[0].b) == "one");
  CHECK(records[1].code == policy::kRemoveHeader);
  CHECK(t.view.str(records[2].b) == "two");
}

TEST_CASE("validation refuses broken split and header records") {
  ModelBuilder m;
  m.prefix("a.com", "/", "v1");
  m.model().rules[0].policies = {policy::request_header(policy::kSetHeader, "X-Set", "one")};
  const std::vector<std::byte> header_table = build_snapshot(m.model(), {1}).bytes;
  REQUIRE(validate(header_table).empty());
  SUBCASE("an unknown action") {
    auto bytes = header_table;
    first_record(bytes).code = 9;
    reseal(bytes);
    CHECK(validate(bytes).find("bad header record") != std::string::npos);
  }
  SUBCASE("a name nginx owns") {
    auto bytes = header_table;
    auto& record = first_record(bytes);
    record.kind = PolicyKind::kResponseHeader;
    // "X-Set" -> "one" rewritten in place: the value's bytes as a name that is not a token
    record.a = record.b;
    record.a.length = 0;
    reseal(bytes);
    CHECK(validate(bytes).find("bad header record") != std::string::npos);
  }
  SUBCASE("a split weight above 32 bits") {
    auto bytes = header_table;
    auto& record = first_record(bytes);
    record = {PolicyKind::kSplit, 0, 0, format::kNone, 0, std::uint64_t{1} << 40, {}, {}};
    reseal(bytes);
    CHECK(validate(bytes).find("split weight out of range") != std::string::npos);
  }
}
