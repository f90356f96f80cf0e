// kErrorPages and kMirror records in the table: stored with their backend and strings, and refused by
// snapshot validation when the module could not trust them (routetable/policy/error_pages.h, mirror.h).
#include <doctest.h>

#include <string>
#include <vector>

#include "model_builder.h"
#include "policy/error_pages.h"
#include "policy/mirror.h"

using namespace kroute;
using kroute::testing::BuiltTable;
using kroute::testing::ModelBuilder;

namespace {

Rule& newest_rule(ModelBuilder& m) { return m.model().rules.back(); }

}  // namespace

TEST_CASE("error pages and mirror records: stored with the error backend's snapshot index") {
  ModelBuilder m;
  m.backend("errors", {{"10.0.0.7", 8080}});
  m.prefix("a.com", "/", "s");
  const std::vector<std::uint16_t> statuses{503, 404};
  newest_rule(m).policies = {policy::error_pages(statuses, policy::kWhenNoEndpoints, m.backend_index("errors"), "http"),
                             policy::mirror("http://10.0.0.8:80$request_uri", "copy.example", true)};
  const BuiltTable t(m.model());
  REQUIRE(t.validation.ok);
  REQUIRE(t.result.diagnostics.empty());
  const auto records = t.view.policies(t.view.lookup("a.com", "/").rule->policies);
  REQUIRE(records.size() == 2);
  CHECK(t.view.str(records[0].a) == "404,503");
  CHECK(t.view.str(records[0].b) == "http");
  CHECK(t.view.str(t.view.backends()[records[0].backend].service) == "errors");
  CHECK(t.view.str(records[1].a) == "http://10.0.0.8:80$request_uri");
  CHECK(records[1].flags == policy::kMirrorRequestBody);

  // Records the kinds' checks refuse drop their rule, not the table.
  ModelBuilder bad;
  bad.prefix("a.com", "/", "s");
  newest_rule(bad).policies = {policy::mirror("http://10.0.0.8/$nope", "h", true)};
  bad.prefix("b.com", "/", "s");
  newest_rule(bad).policies = {policy::error_pages(statuses, 0, kNoRecordBackend, "http")};
  bad.prefix("c.com", "/", "s");
  newest_rule(bad).policies = {policy::mirror("gopher://10.0.0.8/", "h", true)};
  bad.prefix("ok.com", "/", "s");
  const BuiltTable built(bad.model());
  REQUIRE(built.validation.ok);
  CHECK(built.result.diagnostics.size() == 3);
  CHECK(built.route("ok.com", "/") == "s");
}

TEST_CASE("snapshot validation refuses error pages and mirror records the module cannot trust") {
  ModelBuilder m;
  m.backend("errors");
  m.prefix("a.com", "/", "s");
  const std::vector<std::uint16_t> statuses{404, 503};
  newest_rule(m).policies = {policy::error_pages(statuses, 0, m.backend_index("errors"), "http"),
                             policy::mirror("http://10.0.0.8$request_uri", "h", false)};
  BuiltTable t(m.model());
  REQUIRE(t.validation.ok);
  const auto mutate = [&](auto&& change, const char* expected) {
    std::vector<std::byte> bytes = t.result.bytes;
    auto* header = reinterpret_cast<format::Header*>(bytes.data());
    auto* records = reinterpret_cast<format::PolicyRecord*>(bytes.data() + header->sections[format::kPolicyRecords].offset);
    char* strings = reinterpret_cast<char*>(bytes.data() + header->sections[format::kStrings].offset);
    change(records[0], records[1], strings);
    SnapshotView view;
    const ValidationResult r = SnapshotView::open(bytes, view, false);
    CHECK_FALSE(r.ok);
    CHECK(r.error.find(expected) != std::string::npos);
  };
  mutate([](format::PolicyRecord& p, format::PolicyRecord&, char*) { p.backend = format::kNone; }, "error pages");
  mutate([](format::PolicyRecord& p, format::PolicyRecord&, char*) { p.flags = 64; }, "error pages");
  mutate([](format::PolicyRecord& p, format::PolicyRecord&, char*) { p.a.length = 5; }, "error pages");
  mutate([](format::PolicyRecord& p, format::PolicyRecord&, char* s) { s[p.a.offset] = '9'; }, "error pages");
  mutate([](format::PolicyRecord&, format::PolicyRecord& p, char*) { p.flags = 2; }, "mirror");
  mutate([](format::PolicyRecord&, format::PolicyRecord& p, char*) { p.b.length = 0; }, "mirror");
}

TEST_CASE("mirror records to a backend: a path template, the request's Host, a share below a million") {
  ModelBuilder m;
  m.backend("copy", {{"10.0.0.9", 8080}});
  m.prefix("a.com", "/", "s");
  newest_rule(m).policies = {policy::mirror_to_backend(m.backend_index("copy"), policy::kMirrorWhole),
                             policy::mirror_to_backend(m.backend_index("copy"), 250000)};
  const BuiltTable t(m.model());
  REQUIRE(t.validation.ok);
  REQUIRE(t.result.diagnostics.empty());
  const auto records = t.view.policies(t.view.lookup("a.com", "/").rule->policies);
  REQUIRE(records.size() == 2);
  CHECK(t.view.str(t.view.backends()[records[0].backend].service) == "copy");
  CHECK(t.view.str(records[0].a) == "$request_uri");
  CHECK(records[0].value == 0);  // every request
  CHECK(records[1].value == 250000);

  PolicyRecord share = policy::mirror_to_backend(0, 1);
  share.value = policy::kMirrorWhole;
  CHECK_FALSE(policy::check_mirror(share, false).empty());
  PolicyRecord url = policy::mirror_to_backend(0, 1);
  url.a = "http://10.0.0.8$request_uri";  // with a backend, the endpoint makes the URL
  CHECK_FALSE(policy::check_mirror(url, false).empty());
  PolicyRecord hostless = policy::mirror("http://10.0.0.8$request_uri", "", true);
  CHECK_FALSE(policy::check_mirror(hostless, false).empty());  // a URL mirror names its Host
}

TEST_CASE("snapshot validation refuses a mirror share of a million or more") {
  ModelBuilder m;
  m.backend("copy");
  m.prefix("a.com", "/", "s");
  newest_rule(m).policies = {policy::mirror_to_backend(m.backend_index("copy"), 10)};
  BuiltTable t(m.model());
  REQUIRE(t.validation.ok);
  std::vector<std::byte> bytes = t.result.bytes;
  auto* header = reinterpret_cast<format::Header*>(bytes.data());
  auto* records = reinterpret_cast<format::PolicyRecord*>(bytes.data() + header->sections[format::kPolicyRecords].offset);
  records[0].value = policy::kMirrorWhole;
  SnapshotView view;
  const ValidationResult r = SnapshotView::open(bytes, view, false);
  CHECK_FALSE(r.ok);
  CHECK(r.error.find("mirror") != std::string::npos);
}
