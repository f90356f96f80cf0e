// kProtocol records (routetable/policy/protocol.h): the kind's check and what snapshot validation refuses,
// since the module splits a record's PEM at the CA length it carries.
#include <doctest.h>

#include <vector>

#include "model_builder.h"
#include "policy/kinds.h"
#include "policy/protocol.h"

using namespace kroute;
using kroute::testing::BuiltTable;
using kroute::testing::ModelBuilder;

TEST_CASE("protocol records: the check refuses what the module could not apply") {
  const std::string pem = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n";
  const std::uint64_t tls = policy::tls_numbers(3, 4, 1, static_cast<std::uint32_t>(pem.size()));
  CHECK(policy::check_protocol(policy::protocol(policy::kGrpc, 0), false).empty());
  CHECK(policy::check_protocol(policy::protocol(policy::kHttps, policy::kVerify, tls, "b.n.svc", pem), false).empty());
  CHECK_FALSE(policy::check_protocol(policy::protocol(static_cast<policy::UpstreamProtocol>(9), 0), false).empty());
  CHECK_FALSE(policy::check_protocol(policy::protocol(policy::kHttps, 64), false).empty());
  CHECK_FALSE(policy::check_protocol(policy::protocol(policy::kHttps, policy::kVerify), false).empty());
  CHECK_FALSE(policy::check_protocol(policy::protocol(policy::kHttps, 0, policy::tls_numbers(4, 3, 1, 0)), false).empty());
  CHECK_FALSE(policy::check_protocol(policy::protocol(policy::kHttps, 0, policy::tls_numbers(3, 4, 1, 999), "", pem), false).empty());
  CHECK_FALSE(policy::check_protocol(policy::protocol(policy::kHttps, policy::kServerName, 0, "a\nb"), false).empty());
  CHECK(policy::check_protocol(policy::protocol(policy::kHttps, 0, 0, "b.n.svc HIGH:!aNULL"), false).empty());
  CHECK_FALSE(policy::check_protocol(policy::protocol(policy::kHttps, 0, 0, std::string(254, 'a')), false).empty());
  CHECK_FALSE(policy::check_protocol(policy::protocol(policy::kHttps, 0, 0, "b " + std::string(1025, 'A')), false).empty());
  CHECK(std::string(policy::kind_name(PolicyKind::kProtocol)) == "protocol");
}

TEST_CASE("protocol records: stored per rule; snapshot validation refuses a CA length beyond the PEM") {
  const std::string pem = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n";
  ModelBuilder m;
  m.prefix("a.com", "/x", "s");
  m.model().rules.back().policies = {policy::protocol(
      policy::kHttps, policy::kVerify, policy::tls_numbers(3, 3, 1, static_cast<std::uint32_t>(pem.size())), "b", pem)};
  const BuiltTable t(m.model());
  REQUIRE(t.validation.ok);
  const auto records = t.view.policies(t.view.lookup("a.com", "/x").rule->policies);
  REQUIRE(records.size() == 1);
  CHECK(records[0].code == policy::kHttps);
  CHECK(t.view.str(records[0].b) == pem);

  const auto refused = [&](auto&& change, const char* expected) {
    std::vector<std::byte> bytes = t.result.bytes;
    auto* header = reinterpret_cast<format::Header*>(bytes.data());
    auto* record = reinterpret_cast<format::PolicyRecord*>(bytes.data() + header->sections[format::kPolicyRecords].offset);
    change(*record);
    SnapshotView view;
    const ValidationResult r = SnapshotView::open(bytes, view, false);
    CHECK_FALSE(r.ok);
    CHECK(r.error.find(expected) != std::string::npos);
  };
  refused([](format::PolicyRecord& p) { p.value |= std::uint64_t{1} << 40; }, "CA length");
  refused([](format::PolicyRecord& p) { p.code = 0; }, "unknown upstream protocol");
  refused([](format::PolicyRecord& p) { p.flags = 1u << 9; }, "unknown protocol flags");
}
