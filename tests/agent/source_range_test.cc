// allowlist-source-range (whitelist-source-range) and denylist-source-range: how they are read
// (agent/ingress/annotations.cc), the kSourceRange records they become (agent/ingress/policies.cc,
// routetable/policy/source_range.h), and failing closed on a value kroute cannot apply.
#include <doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "ingress/annotations.h"
#include "ingress/policies.h"
#include "json_helpers.h"
#include "policy/cidr.h"
#include "policy/kinds.h"
#include "policy/source_range.h"

using namespace kroute;
using namespace kroute::agent;

namespace {

AnnotationReading read(const std::string& annotations) {
  return read_annotations(json(annotations), kDefaultAnnotationPrefix);
}

std::vector<PolicyRecord> records_of(const AnnotationReading& r, PolicyKind kind) {
  std::vector<PolicyRecord> out;
  for (PolicyRecord& p : rule_policies(r.values, "/")) {
    if (p.kind == kind) out.push_back(std::move(p));
  }
  return out;
}

bool denied(const AnnotationReading& r) {
  const std::vector<PolicyRecord> all = rule_policies(r.values, "/");
  return !all.empty() && all.front().kind == PolicyKind::kDeny &&
         std::any_of(r.problems.begin(), r.problems.end(),
                     [](const IngressProblem& p) { return p.reason == "AccessAnnotationInvalid"; });
}

std::string text(const PolicyRecord& p) { return policy::cidr_list_text(p.a); }

}  // namespace

TEST_CASE("source ranges: allow and deny lists become kSourceRange records, deny first") {
  const AnnotationReading r = read(R"({"nginx.ingress.kubernetes.io/allowlist-source-range": "10.0.0.0/8, 192.168.1.7 ,2001:db8::/32",
                                       "nginx.ingress.kubernetes.io/denylist-source-range": "10.1.2.3/24"})");
  CHECK(r.problems.empty());
  const std::vector<PolicyRecord> ranges = records_of(r, PolicyKind::kSourceRange);
  REQUIRE(ranges.size() == 2);
  CHECK(ranges[0].flags == policy::kSourceDeny);
  CHECK(text(ranges[0]) == "10.1.2.0/24");  // host bits cleared, as Go's ParseCIDR
  CHECK(ranges[1].flags == policy::kSourceAllow);
  CHECK(text(ranges[1]) == "10.0.0.0/8,192.168.1.7/32,2001:db8::/32");
  for (const PolicyRecord& p : ranges) {
    CHECK(p.code == 403);
    CHECK(policy::check_record(p, false) == "");
  }
  CHECK(records_of(read("{}"), PolicyKind::kSourceRange).empty());
}

TEST_CASE("source ranges: whitelist-source-range is the older name, used only without allowlist-source-range") {
  const AnnotationReading old_name = read(R"({"nginx.ingress.kubernetes.io/whitelist-source-range": "172.16.0.0/12"})");
  REQUIRE(records_of(old_name, PolicyKind::kSourceRange).size() == 1);
  CHECK(text(records_of(old_name, PolicyKind::kSourceRange)[0]) == "172.16.0.0/12");

  const AnnotationReading both = read(R"({"nginx.ingress.kubernetes.io/whitelist-source-range": "172.16.0.0/12",
                                          "nginx.ingress.kubernetes.io/allowlist-source-range": "10.0.0.0/8"})");
  REQUIRE(records_of(both, PolicyKind::kSourceRange).size() == 1);
  CHECK(text(records_of(both, PolicyKind::kSourceRange)[0]) == "10.0.0.0/8");

  // kroute.dev/ wins over the ingress-nginx prefix, as for every annotation.
  const AnnotationReading own = read(R"({"kroute.dev/allowlist-source-range": "10.9.0.0/16",
                                         "nginx.ingress.kubernetes.io/allowlist-source-range": "10.0.0.0/8"})");
  CHECK(text(records_of(own, PolicyKind::kSourceRange)[0]) == "10.9.0.0/16");
}

TEST_CASE("source ranges: blanks around entries, newlines and tabs are ignored as Go's TrimSpace does") {
  const AnnotationReading r = read(R"({"nginx.ingress.kubernetes.io/denylist-source-range": " 10.0.0.1 ,\n\t::1/128\n"})");
  CHECK(r.problems.empty());
  REQUIRE(records_of(r, PolicyKind::kSourceRange).size() == 1);
  CHECK(text(records_of(r, PolicyKind::kSourceRange)[0]) == "10.0.0.1/32,::1/128");
}

TEST_CASE("source ranges fail closed: a value kroute cannot apply denies every rule (503) with a Warning") {
  for (const char* name : {"allowlist-source-range", "whitelist-source-range", "denylist-source-range"}) {
    for (const char* bad : {"10.0.0.0/33", "10.0.0", "not-an-ip", "10.0.0.0/8,", "", "   ", "10.0.0.0/8,,10.1.0.0/16",
                            "2001:db8::/129", "fe80::1%eth0", "10.0.0.0/8 10.1.0.0/16", "010.0.0.1", "1.2.3.4/-1"}) {
      CAPTURE(name);
      CAPTURE(bad);
      Json::Value annotations(Json::objectValue);
      annotations[std::string("nginx.ingress.kubernetes.io/") + name] = bad;
      const AnnotationReading r = read_annotations(annotations, kDefaultAnnotationPrefix);
      CHECK(denied(r));
      CHECK(records_of(r, PolicyKind::kSourceRange).empty());
    }
  }
  // The Warning names the annotation and the entry, and says what happens.
  const AnnotationReading r = read(R"({"nginx.ingress.kubernetes.io/allowlist-source-range": "10.0.0.0/8, 300.1.1.1"})");
  REQUIRE(r.problems.size() == 1);
  CHECK(r.problems[0].message.find("allowlist-source-range") != std::string::npos);
  CHECK(r.problems[0].message.find("300.1.1.1") != std::string::npos);
  CHECK(r.problems[0].message.find("503") != std::string::npos);
  // A valid kroute.dev/ value wins over an invalid ingress-nginx one: nothing is denied.
  const AnnotationReading fixed = read(R"({"kroute.dev/allowlist-source-range": "10.0.0.0/8",
                                           "nginx.ingress.kubernetes.io/allowlist-source-range": "bad"})");
  CHECK_FALSE(denied(fixed));
  CHECK(records_of(fixed, PolicyKind::kSourceRange).size() == 1);
}

TEST_CASE("source ranges: an entry with control characters is refused without echoing them") {
  Json::Value annotations(Json::objectValue);
  annotations["nginx.ingress.kubernetes.io/denylist-source-range"] = "10.0.0.1\x01\x1b[31m";
  const AnnotationReading r = read_annotations(annotations, kDefaultAnnotationPrefix);
  REQUIRE(denied(r));
  for (const IngressProblem& p : r.problems) {
    CHECK(std::none_of(p.message.begin(), p.message.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; }));
  }
}

TEST_CASE("kSourceRange records: the builder's check") {
  std::string packed;
  REQUIRE(policy::parse_cidr_list("10.0.0.0/8", packed) == "");
  CHECK(policy::check_record(policy::source_range(policy::kSourceAllow, packed), false) == "");
  PolicyRecord r = policy::source_range(policy::kSourceDeny, packed);
  r.flags = policy::kSourceAllow | policy::kSourceDeny;
  CHECK(policy::check_record(r, false) != "");
  r = policy::source_range(policy::kSourceAllow, "");
  CHECK(policy::check_record(r, false) != "");
  r = policy::source_range(policy::kSourceAllow, packed.substr(1));
  CHECK(policy::check_record(r, false) != "");
  r = policy::source_range(policy::kSourceAllow, packed);
  r.code = 200;
  CHECK(policy::check_record(r, false) != "");
  r = policy::source_range(policy::kSourceAllow, packed);
  r.b = "x";
  CHECK(policy::check_record(r, false) != "");
  CHECK(std::string(policy::kind_name(PolicyKind::kSourceRange)) == "source-range");
}
