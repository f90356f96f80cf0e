// kProxySetting records (routetable/policy/proxy_setting.h): the readers of nginx's value syntax, the
// ranges the builder's check and the snapshot's validation enforce, and records stored per rule.
#include <doctest.h>

#include <vector>

#include "model_builder.h"
#include "policy/kinds.h"
#include "policy/proxy_setting.h"

using namespace kroute;
using namespace kroute::policy;
using kroute::testing::BuiltTable;
using kroute::testing::ModelBuilder;

TEST_CASE("proxy settings: nginx sizes, seconds and next-upstream conditions") {
  CHECK(parse_size("0", false) == 0u);
  CHECK(parse_size("512", false) == 512u);
  CHECK(parse_size("8k", false) == 8192u);
  CHECK(parse_size("8K", false) == 8192u);
  CHECK(parse_size("1m", false) == 1u << 20);
  CHECK(parse_size("2g", true) == 2ull << 30);
  // client_max_body_size is an offset (k, m, g); the others are sizes (k, m)
  CHECK_FALSE(parse_size("2g", false));
  for (const char* bad : {"", "k", "-1", "1b", "1.5m", " 1m", "1m ", "1mb", "0x10", "99999999999999999999"}) {
    CHECK_MESSAGE(!parse_size(bad, true), bad);
  }

  CHECK(parse_seconds("5") == 5000u);
  CHECK(parse_seconds("0") == 0u);
  for (const char* bad : {"", "-5", "5s", "1.5", "+5", "abc", "604801"}) CHECK_MESSAGE(!parse_seconds(bad), bad);
  CHECK(parse_count("3") == 3u);
  CHECK_FALSE(parse_count("-1"));

  CHECK(parse_next_upstream("error timeout") == (kNextError | kNextTimeout));
  CHECK(parse_next_upstream("error timeout http_502 non_idempotent") ==
        (kNextError | kNextTimeout | kNextHttp502 | kNextNonIdempotent));
  CHECK(parse_next_upstream(" http_503  http_429 ") == (kNextHttp503 | kNextHttp429));
  CHECK(parse_next_upstream("off") == kNextOff);
  for (const char* bad : {"", " ", "error off", "bogus", "error,timeout", "http_501", "ERROR"}) {
    CHECK_MESSAGE(!parse_next_upstream(bad), bad);
  }
}

TEST_CASE("proxy settings: each setting's range") {
  CHECK(proxy_setting_problem(static_cast<std::uint16_t>(ProxySetting::kReadTimeout), 1000).empty());
  CHECK_FALSE(proxy_setting_problem(static_cast<std::uint16_t>(ProxySetting::kReadTimeout), 0).empty());
  CHECK_FALSE(proxy_setting_problem(static_cast<std::uint16_t>(ProxySetting::kReadTimeout), kMaxProxyTimeoutMs + 1)
                  .empty());
  CHECK(proxy_setting_problem(static_cast<std::uint16_t>(ProxySetting::kNextUpstreamTimeout), 0).empty());
  CHECK(proxy_setting_problem(static_cast<std::uint16_t>(ProxySetting::kBodySize), 0).empty());
  CHECK_FALSE(proxy_setting_problem(static_cast<std::uint16_t>(ProxySetting::kBuffersNumber), 1).empty());
  CHECK_FALSE(proxy_setting_problem(static_cast<std::uint16_t>(ProxySetting::kBuffering), 2).empty());
  CHECK_FALSE(proxy_setting_problem(static_cast<std::uint16_t>(ProxySetting::kNextUpstream), 0).empty());
  CHECK_FALSE(
      proxy_setting_problem(static_cast<std::uint16_t>(ProxySetting::kNextUpstream), kNextOff | kNextError).empty());
  CHECK_FALSE(proxy_setting_problem(0, 1).empty());
  CHECK_FALSE(proxy_setting_problem(kProxySettingCount + 1, 1).empty());
  CHECK(std::string(proxy_setting_name(static_cast<std::uint16_t>(ProxySetting::kBodySize))) == "proxy-body-size");

  PolicyRecord record = proxy_setting(ProxySetting::kConnectTimeout, 3000);
  CHECK(check_record(record, false).empty());
  CHECK(std::string(kind_name(PolicyKind::kProxySetting)) == "proxy-setting");
  record.a = "text";
  CHECK_FALSE(check_record(record, false).empty());
}

TEST_CASE("proxy settings: stored per rule; a record out of range drops its rule; snapshots refuse bad ones") {
  ModelBuilder m;
  m.prefix("a.com", "/", "s");
  m.model().rules.back().policies = {proxy_setting(ProxySetting::kReadTimeout, 1000),
                                     proxy_setting(ProxySetting::kBodySize, 0)};
  m.prefix("bad.com", "/", "s");
  m.model().rules.back().policies = {proxy_setting(ProxySetting::kBuffersNumber, 1)};
  const BuiltTable t(m.model());
  REQUIRE(t.validation.ok);
  const auto records = t.view.policies(t.view.lookup("a.com", "/").rule->policies);
  REQUIRE(records.size() == 2);
  CHECK(records[0].code == static_cast<std::uint16_t>(ProxySetting::kReadTimeout));
  CHECK(records[0].value == 1000);
  CHECK(records[1].value == 0);
  CHECK(t.route("bad.com", "/") == "404");

  std::vector<std::byte> bytes = t.result.bytes;
  auto* header = reinterpret_cast<format::Header*>(bytes.data());
  auto* stored = reinterpret_cast<format::PolicyRecord*>(bytes.data() + header->sections[format::kPolicyRecords].offset);
  stored[0].value = 0;  // a read timeout of 0 ms
  SnapshotView view;
  const ValidationResult r = SnapshotView::open(bytes, view, false);
  CHECK_FALSE(r.ok);
  CHECK(r.error.find("proxy setting out of range") != std::string::npos);
}
