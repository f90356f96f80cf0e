// The endpoint choice behind the module's balancer: weights are honoured in both modes, skipped and
// zero-weight endpoints never take a request, and nothing left to pick is "no pick", never a crash.
#include <doctest.h>

#include <array>
#include <cstdint>
#include <vector>

#include "balance.h"

namespace format = kroute::format;

namespace {

std::vector<format::EndpointEntry> endpoints(std::initializer_list<std::uint16_t> weights) {
  std::vector<format::EndpointEntry> out;
  std::uint16_t port = 1;
  for (std::uint16_t w : weights) {
    format::EndpointEntry e{};
    e.family = 4;
    e.flags = format::kReady;
    e.port = port++;
    e.weight = w;
    out.push_back(e);
  }
  return out;
}

const auto no_skip = [](std::size_t) { return false; };

// How often each endpoint is picked in n requests, in the smooth (stateful) or random mode.
std::vector<int> spread(const std::vector<format::EndpointEntry>& ready, bool smooth, int n) {
  std::vector<int> count(ready.size(), 0);
  std::vector<std::int64_t> current(ready.size(), 0);
  std::uint64_t random = 0x9e3779b97f4a7c15ULL;
  for (int k = 0; k < n; ++k) {
    random = random * 6364136223846793005ULL + 1442695040888963407ULL;
    const std::size_t i = kroute::pick_endpoint(ready, smooth ? current.data() : nullptr, random >> 11, no_skip);
    REQUIRE(i < ready.size());
    ++count[i];
  }
  return count;
}

}  // namespace

TEST_CASE("weighted round-robin gives each endpoint its share, exactly in the smooth mode") {
  const auto ready = endpoints({3, 1, 1});
  CHECK(spread(ready, true, 500) == std::vector<int>{300, 100, 100});
  const auto random = spread(ready, false, 10000);
  CHECK(random[0] > 5600);
  CHECK(random[0] < 6400);
}

TEST_CASE("an endpoint of weight 0 takes no share") {
  const auto ready = endpoints({0, 2, 0, 1});
  for (bool smooth : {true, false}) {
    const auto count = spread(ready, smooth, 300);
    CHECK(count[0] == 0);
    CHECK(count[2] == 0);
    CHECK(count[1] + count[3] == 300);
  }
}

TEST_CASE("only zero weights, or everything skipped: no pick, in both modes") {
  const auto zero = endpoints({0, 0, 0});
  std::vector<std::int64_t> current(zero.size(), 0);
  for (std::uint64_t random : {0ULL, 1ULL, 12345ULL}) {
    CHECK(kroute::pick_endpoint(zero, nullptr, random, no_skip) == kroute::kNoPick);
    CHECK(kroute::pick_endpoint(zero, current.data(), random, no_skip) == kroute::kNoPick);
  }
  const auto some = endpoints({1, 5});
  CHECK(kroute::pick_endpoint(some, nullptr, 7, [](std::size_t) { return true; }) == kroute::kNoPick);
  CHECK(kroute::pick_endpoint(std::span<const format::EndpointEntry>{}, nullptr, 7, no_skip) == kroute::kNoPick);
}

TEST_CASE("a skipped endpoint is never picked and the rest keep their order of shares") {
  const auto ready = endpoints({1, 1, 1});
  std::vector<std::int64_t> current(ready.size(), 0);
  for (int k = 0; k < 30; ++k) {
    const auto i = kroute::pick_endpoint(ready, current.data(), 0, [](std::size_t j) { return j == 1; });
    CHECK(i != 1);
    CHECK(i < ready.size());
  }
}
