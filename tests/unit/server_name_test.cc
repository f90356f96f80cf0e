// kServerName: which TLS server names may carry a host's requests. The record's check, the builder's
// refusal of one on a rule, and how an SNI is matched against a pattern.
#include <doctest.h>

#include <string>

#include "model_builder.h"
#include "policy/kinds.h"
#include "policy/server_name.h"

using namespace kroute;
using kroute::testing::BuiltTable;
using kroute::testing::ModelBuilder;

TEST_CASE("server-name records: a host name or a wildcard of one, nothing else") {
  CHECK(policy::check_record(policy::server_name("second.example.org"), false) == "");
  CHECK(policy::check_record(policy::server_name("*.example.org"), false) == "");
  CHECK(policy::check_record(policy::server_name("Second.Example.ORG"), false) == "");
  CHECK(policy::check_record(policy::server_name(""), false) == "needs a host name pattern");
  CHECK(policy::check_record(policy::server_name("*"), false) != "");
  CHECK(policy::check_record(policy::server_name("a.*.org"), false).find("wildcard") != std::string::npos);
  CHECK(policy::check_record(policy::server_name("-a.org"), false).find("letter or digit") != std::string::npos);
  CHECK(policy::check_record(policy::server_name("a..org"), false).find("empty label") != std::string::npos);
  CHECK(policy::check_record(policy::server_name("a b.org"), false).find("only letters") != std::string::npos);
  PolicyRecord with_code = policy::server_name("a.org");
  with_code.code = 404;
  CHECK(policy::check_record(with_code, false) == "has fields a server-name record does not use");
  PolicyRecord with_b = policy::server_name("a.org");
  with_b.b = "x";
  CHECK(policy::check_record(with_b, false) == "has fields a server-name record does not use");
  PolicyKind kind{};
  REQUIRE(policy::kind_by_name("server-name", kind));
  CHECK(kind == PolicyKind::kServerName);
  CHECK(policy::kind_info(PolicyKind::kServerName)->host_only);
}

TEST_CASE("server-name matching: exact in any case, trailing dot ignored, '*.' covers one or more labels") {
  using policy::server_name_matches;
  CHECK(server_name_matches("second.example.org", "second.example.org"));
  CHECK(server_name_matches("second.example.org", "SECOND.Example.org"));
  CHECK(server_name_matches("Second.Example.org", "second.example.org."));
  CHECK_FALSE(server_name_matches("second.example.org", "third.example.org"));
  CHECK_FALSE(server_name_matches("second.example.org", "a.second.example.org"));
  CHECK_FALSE(server_name_matches("second.example.org", "second.example.org.."));
  CHECK_FALSE(server_name_matches("second.example.org", ""));
  CHECK(server_name_matches("*.example.org", "a.example.org"));
  CHECK(server_name_matches("*.example.org", "a.b.EXAMPLE.org."));
  CHECK_FALSE(server_name_matches("*.example.org", "example.org"));
  CHECK_FALSE(server_name_matches("*.example.org", ".example.org"));
  CHECK_FALSE(server_name_matches("*.example.org", "a..example.org"));
  CHECK_FALSE(server_name_matches("*.example.org", "aexample.org"));
  CHECK_FALSE(server_name_matches("*.example.org", "a.example.com"));
}

TEST_CASE("server-name records are host-wide: a host policy carries them, a rule that does is skipped") {
  ModelBuilder m;
  m.prefix("second.example.org", "/", "web").prefix("other.example.org", "/", "web");
  m.model().rules.back().policies = {policy::server_name("other.example.org")};
  m.model().host_policies.push_back({"second.example.org", 0, {policy::server_name("second.example.org")}});
  m.model().host_policies.push_back({"bad.example.org", 0, {policy::server_name("bad..org")}});
  const BuiltTable t(m.model());
  REQUIRE(t.validation.ok);
  REQUIRE(t.result.diagnostics.size() == 2);
  CHECK(t.result.diagnostics[0].item == Item::kRule);
  CHECK(t.result.diagnostics[0].message == "server-name policy: applies to a whole host, not to a rule (a host policy)");
  CHECK(t.result.diagnostics[1].item == Item::kHostPolicy);
  CHECK(t.result.diagnostics[1].message.find("server-name policy: host has an empty label") != std::string::npos);
  const RouteMatch m2 = t.view.lookup("second.example.org", "/");
  REQUIRE(m2.server != nullptr);
  const auto records = t.view.policies(m2.server->policies);
  REQUIRE(records.size() == 1);
  CHECK(records[0].kind == PolicyKind::kServerName);
  CHECK(t.view.str(records[0].a) == "second.example.org");
  CHECK(t.route("other.example.org", "/") == "404");
}
