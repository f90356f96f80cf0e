// The pure logic behind canary, session affinity and balancing (routetable/balance.h, policy/canary.h,
// affinity.h, balance.h): rendezvous hashing moves only ~1/N of keys when an endpoint comes or goes,
// session cookies round-trip and depend on the endpoint only, the canary weight draw is fair, power of
// two choices prefers the faster endpoint, and the kinds' checks refuse what the module cannot apply.
#include <doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "balance.h"
#include "policy/affinity.h"
#include "policy/balance.h"
#include "policy/canary.h"
#include "policy/kinds.h"
#include "value_patterns.h"

namespace format = kroute::format;

namespace {

std::vector<format::EndpointEntry> pods(std::uint8_t first, std::size_t n) {
  std::vector<format::EndpointEntry> out;
  for (std::size_t i = 0; i < n; ++i) {
    format::EndpointEntry e{};
    e.family = 4;
    e.flags = format::kReady;
    e.address[0] = 10;
    e.address[3] = static_cast<std::uint8_t>(first + i);
    e.port = 8080;
    e.weight = 1;
    out.push_back(e);
  }
  return out;
}

const auto no_skip = [](std::size_t) { return false; };

}  // namespace

TEST_CASE("rendezvous hashing: an added endpoint takes about 1/N of the keys, the others stay") {
  const auto before = pods(1, 9);
  auto after = before;
  after.push_back(pods(50, 1)[0]);
  constexpr int kKeys = 20000;
  int moved = 0;
  std::vector<int> share(after.size(), 0);
  for (int k = 0; k < kKeys; ++k) {
    const std::uint64_t key = kroute::key_hash(std::string("user-").append(std::to_string(k)));
    const std::size_t a = kroute::pick_hashed(before, key, no_skip);
    const std::size_t b = kroute::pick_hashed(after, key, no_skip);
    ++share[b];
    if (b != a) {
      ++moved;
      CHECK(b == after.size() - 1);  // only to the new endpoint
    }
  }
  CHECK(moved > kKeys / 10 * 0.8);
  CHECK(moved < kKeys / 10 * 1.2);
  for (const int s : share) CHECK(s > kKeys / 10 * 0.8);
  // Removing one: only its keys move, and the order of endpoints does not matter.
  auto removed = before;
  removed.erase(removed.begin() + 3);
  std::vector<format::EndpointEntry> reversed(removed.rbegin(), removed.rend());
  for (int k = 0; k < 2000; ++k) {
    const std::uint64_t key = kroute::key_hash(std::string("k").append(std::to_string(k)));
    const std::size_t a = kroute::pick_hashed(before, key, no_skip);
    const std::size_t b = kroute::pick_hashed(removed, key, no_skip);
    const std::size_t c = kroute::pick_hashed(reversed, key, no_skip);
    CHECK(kroute::endpoint_id(removed[b]) == kroute::endpoint_id(reversed[c]));
    if (a != 3) CHECK(kroute::endpoint_id(before[a]) == kroute::endpoint_id(removed[b]));
  }
  // A skipped endpoint (tried) gives the next best, and nothing left is no pick.
  const std::uint64_t key = kroute::key_hash("x");
  const std::size_t first = kroute::pick_hashed(before, key, no_skip);
  CHECK(kroute::pick_hashed(before, key, [&](std::size_t i) { return i == first; }) != first);
  CHECK(kroute::pick_hashed(before, key, [](std::size_t) { return true; }) == kroute::kNoPick);
}

TEST_CASE("session cookies: the endpoint's id round-trips and depends on address and port only") {
  const auto a = pods(1, 3);
  auto b = pods(1, 3);
  b[1].weight = 7;
  b[1].flags = format::kReady | format::kServing;
  CHECK(kroute::endpoint_id(a[1]) == kroute::endpoint_id(b[1]));
  CHECK(kroute::endpoint_id(a[1]) != kroute::endpoint_id(a[2]));
  auto other_port = a[1];
  other_port.port = 9090;
  CHECK(kroute::endpoint_id(other_port) != kroute::endpoint_id(a[1]));
  char text[kroute::kCookieValueLength];
  const std::uint64_t id = kroute::endpoint_id(a[2]);
  kroute::format_cookie_value(id, text);
  std::uint64_t back = 0;
  REQUIRE(kroute::parse_cookie_value({text, sizeof text}, back));
  CHECK(back == id);
  CHECK(kroute::find_endpoint(a, id, no_skip) == 2);
  CHECK(kroute::find_endpoint(pods(100, 3), id, no_skip) == kroute::kNoPick);
  for (const char* bad : {"", "abc", "0123456789abcdeg", "0123456789ABCDEF", "0123456789abcdef0"}) {
    CHECK_FALSE(kroute::parse_cookie_value(bad, back));
  }
}

TEST_CASE("canary: always/never keywords and a fair weight draw") {
  using kroute::policy::CanaryVerdict;
  CHECK(kroute::policy::canary_by_keyword("always") == CanaryVerdict::kCanary);
  CHECK(kroute::policy::canary_by_keyword("never") == CanaryVerdict::kPrimary);
  CHECK(kroute::policy::canary_by_keyword("Always") == CanaryVerdict::kUndecided);
  const std::uint64_t w30 = kroute::policy::canary_by_weight(30, 100).value;
  int taken = 0;
  std::uint64_t x = 88172645463325252ULL;
  for (int i = 0; i < 100000; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    taken += kroute::policy::canary_by_weight_draw(w30, x);
  }
  CHECK(taken > 29000);
  CHECK(taken < 31000);
  CHECK_FALSE(kroute::policy::canary_by_weight_draw(kroute::policy::canary_by_weight(0, 100).value, 5));
  CHECK(kroute::policy::canary_by_weight_draw(kroute::policy::canary_by_weight(150, 100).value, 99));
  CHECK(kroute::policy::canary_by_weight_draw(kroute::policy::canary_by_weight(1, 1000).value, 0));
  CHECK_FALSE(kroute::policy::canary_by_weight_draw(kroute::policy::canary_by_weight(1, 1000).value, 1));
}

TEST_CASE("ewma: two choices prefer the endpoint with the lower average; averages decay") {
  const auto ready = pods(1, 2);
  const double scores[] = {500.0, 5.0};
  int slow = 0;
  for (std::uint64_t r = 0; r < 1000; ++r) {
    slow += kroute::pick_two_choices(ready, r * 0x9e3779b97f4a7c15ULL, [&](std::size_t i) { return scores[i]; },
                                     no_skip) == 0;
  }
  CHECK(slow == 0);  // with two endpoints both are always drawn
  const auto one = pods(1, 1);
  CHECK(kroute::pick_two_choices(one, 7, [](std::size_t) { return 1.0; }, no_skip) == 0);
  CHECK(kroute::pick_two_choices(one, 7, [](std::size_t) { return 1.0; }, [](std::size_t) { return true; }) ==
        kroute::kNoPick);
  CHECK(kroute::ewma_update(100, 0, 0) == doctest::Approx(100));
  CHECK(kroute::ewma_update(100, 0, 10000) == doctest::Approx(100 / 2.718281828).epsilon(0.01));
  CHECK(kroute::ewma_update(100, 0, 1000000) < 1);
}

TEST_CASE("traffic kinds: records the module can apply pass, others are refused") {
  using namespace kroute::policy;
  auto header = canary_by_header("X-Canary", "", false);
  CHECK(check_record(header, false).find("no backend") != std::string::npos);
  header.backend = 1;
  CHECK(check_record(header, false).empty());
  auto bad_header = canary_by_header("X Canary", "", false);
  bad_header.backend = 1;
  CHECK_FALSE(check_record(bad_header, false).empty());
  auto weight = canary_by_weight(10, 0);
  weight.backend = 1;
  CHECK_FALSE(check_record(weight, false).empty());
  CHECK(check_record(affinity(kPersistent, kChangeOnFailure, "INGRESSCOOKIE", "; Path=/; HttpOnly", 0), false).empty());
  CHECK_FALSE(check_record(affinity(7, 0, "C", "", 0), false).empty());
  CHECK_FALSE(check_record(affinity(kBalanced, 0, "C", "; Path=/\r\nX: y", 0), false).empty());
  CHECK(check_record(balance(kHash, "$request_uri"), false).empty());
  CHECK_FALSE(check_record(balance(kHash, ""), false).empty());
  CHECK_FALSE(check_record(balance(kEwma, "$x"), false).empty());
  CHECK(std::string(kind_name(kroute::PolicyKind::kCanary)) == "canary");
}

TEST_CASE("value patterns: PCRE anywhere in the value, case-sensitive, bounded; bad patterns never match") {
  kroute::ValuePatterns patterns;
  CHECK(patterns.matches("^v[0-9]+$", "v12"));
  CHECK(patterns.matches("beta", "x-beta-y"));  // unanchored, as ngx.re.match
  CHECK_FALSE(patterns.matches("beta", "BETA"));
  CHECK_FALSE(patterns.matches("^v[0-9]+$", "v1x"));
  CHECK_FALSE(patterns.matches("(", "("));
  CHECK_FALSE(kroute::check_value_pattern("(").empty());
  CHECK(kroute::check_value_pattern("^(a|b)+$").empty());
  // Catastrophic backtracking hits the work bound: no match, no stall.
  CHECK_FALSE(patterns.matches("^(a+)+$", std::string(40, 'a').append("b")));
  // More patterns than are kept still match.
  for (std::size_t i = 0; i < kroute::ValuePatterns::kMaxPatterns + 10; ++i) {
    const std::string n = std::to_string(i);
    CHECK(patterns.matches(std::string("^x").append(n).append("$"), std::string("x").append(n)));
  }
  using namespace kroute::policy;
  auto pattern = canary_by_header("X-C", "(", true);
  pattern.backend = 0;
  CHECK(check_record(pattern, false).find("pattern") != std::string::npos);
}

TEST_CASE("conditional SameSite=None: clients known to reject or misread it do not get it") {
  using kroute::policy::same_site_none_compatible;
  CHECK(same_site_none_compatible(""));
  CHECK(same_site_none_compatible(
      "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"));
  CHECK_FALSE(same_site_none_compatible(
      "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/66.0.3359.181 Safari/537.36"));
  CHECK(same_site_none_compatible("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko) Chrome/50.0.2661 Safari/537.36"));
  CHECK_FALSE(same_site_none_compatible(
      "Mozilla/5.0 (iPhone; CPU iPhone OS 12_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"));
  CHECK_FALSE(same_site_none_compatible("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_6) AppleWebKit/605.1.15 "
                                        "(KHTML, like Gecko) Version/12.1.2 Safari/605.1.15"));
  CHECK(same_site_none_compatible("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_6) AppleWebKit/537.36 "
                                  "(KHTML, like Gecko) Chrome/120.0 Safari/537.36"));
  CHECK_FALSE(same_site_none_compatible("Mozilla/5.0 (Linux; U; Android 9) UCBrowser/12.13.0.1207 Mobile"));
  CHECK(same_site_none_compatible("Mozilla/5.0 (Linux; U; Android 9) UCBrowser/12.13.2.1208 Mobile"));
}
