// Route table microbenchmarks: lookup at several table shapes and sizes, build + publish of a large
// cluster, and the reader's per-request cost when nothing changed. Baselines measured in the same run:
// one std::unordered_map<std::string> find (for lookups) and one acquire load (for the reader).
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <cstdlib>
#include <memory>
#include <span>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "builder.h"
#include "publisher.h"
#include "reader.h"
#include "snapshot.h"

namespace fs = std::filesystem;
using kroute::PathType;

namespace {

constexpr std::size_t kRequests = 4096;

struct Request {
  std::string host;
  std::string path;
};

// Snapshot bytes on a page boundary, as a mapped file is, so entries sit on cache lines as in nginx.
struct PageAligned {
  void operator()(std::byte* p) const noexcept { std::free(p); }
};
struct AlignedBytes {
  std::unique_ptr<std::byte[], PageAligned> data;
  std::size_t length = 0;
  std::size_t size() const noexcept { return length; }
  operator std::span<const std::byte>() const noexcept { return {data.get(), length}; }
};

AlignedBytes aligned_copy(const std::vector<std::byte>& bytes) {
  const std::size_t rounded = (bytes.size() + 4095) / 4096 * 4096;
  AlignedBytes out{std::unique_ptr<std::byte[], PageAligned>(static_cast<std::byte*>(std::aligned_alloc(4096, rounded))),
                   bytes.size()};
  if (!out.data) std::abort();
  std::copy(bytes.begin(), bytes.end(), out.data.get());
  return out;
}

struct Table {
  AlignedBytes bytes;
  kroute::SnapshotView view;
  std::vector<Request> requests;
};

kroute::RouteModel model_of(std::size_t hosts, std::size_t paths_per_host, bool wildcard, std::size_t endpoints = 2) {
  kroute::RouteModel model;
  model.sources.push_back({"bench", "ingress", 1});
  for (std::size_t h = 0; h < hosts; ++h) {
    kroute::Backend backend{"bench", "svc-" + std::to_string(h), 80, {}, {}};
    for (std::size_t e = 0; e < endpoints; ++e)
      backend.endpoints.push_back({"10." + std::to_string(h / 65536 % 256) + "." + std::to_string(h / 256 % 256) + "." +
                                       std::to_string(h % 256),
                                   static_cast<std::uint16_t>(8000 + e)});
    model.backends.push_back(std::move(backend));
    const std::string host = (wildcard ? "*.tenant" : "host") + std::to_string(h) + ".example.com";
    for (std::size_t p = 0; p < paths_per_host; ++p)
      model.rules.push_back({host, "/api/v1/res" + std::to_string(p), PathType::kPrefix,
                             static_cast<std::uint32_t>(h), 0});
  }
  return model;
}

Table make_table(std::size_t hosts, std::size_t paths_per_host, bool wildcard) {
  Table t;
  t.bytes = aligned_copy(kroute::build_snapshot(model_of(hosts, paths_per_host, wildcard)).bytes);
  if (!kroute::SnapshotView::open(t.bytes, t.view).ok) std::abort();
  std::mt19937 random(42);
  for (std::size_t i = 0; i < kRequests; ++i) {
    const std::size_t h = random() % hosts;
    const std::size_t p = random() % paths_per_host;
    t.requests.push_back({(wildcard ? "app.tenant" : "host") + std::to_string(h) + ".example.com",
                          "/api/v1/res" + std::to_string(p) + "/items/" + std::to_string(random() % 1000)});
  }
  return t;
}

void run_lookups(benchmark::State& state, const Table& t) {
  std::size_t i = 0;
  std::size_t misses = 0;
  for (auto _ : state) {
    const Request& r = t.requests[i++ & (kRequests - 1)];
    const kroute::RouteMatch m = t.view.lookup(r.host, r.path);
    misses += m.rule == nullptr;
    benchmark::DoNotOptimize(m);
  }
  if (misses != 0) state.SkipWithError("a lookup missed");
  state.counters["routes"] = static_cast<double>(t.view.rules().size());
  state.counters["bytes"] = static_cast<double>(t.bytes.size());
}

void BM_Lookup_10kHosts_5Paths(benchmark::State& state) {
  static const Table t = make_table(10000, 5, false);
  run_lookups(state, t);
}

void BM_Lookup_1Host_10kPaths(benchmark::State& state) {
  static const Table t = make_table(1, 10000, false);
  run_lookups(state, t);
}

void BM_Lookup_2kWildcardHosts(benchmark::State& state) {
  static const Table t = make_table(2000, 1, true);
  run_lookups(state, t);
}

// Growth with table size: 5 paths per host, 100 .. 100,000 routes.
void BM_Lookup_Routes(benchmark::State& state) {
  const Table t = make_table(static_cast<std::size_t>(state.range(0)) / 5, 5, false);
  run_lookups(state, t);
}

// Baseline: one hash-map find of a host string, the least any host router does.
void BM_Baseline_UnorderedMapFind(benchmark::State& state) {
  std::unordered_map<std::string, int> map;
  for (int h = 0; h < 10000; ++h) map.emplace("host" + std::to_string(h) + ".example.com", h);
  const Table t = make_table(10000, 5, false);
  std::size_t i = 0;
  for (auto _ : state) {
    auto it = map.find(t.requests[i++ & (kRequests - 1)].host);
    benchmark::DoNotOptimize(it);
  }
}

std::string bench_dir() {
  const fs::path base = fs::exists("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
  return (base / ("kroute-bench-" + std::to_string(getpid()))).string();
}

// 10,000 Ingresses with 5 paths each, 50,000 endpoints: build the snapshot and publish it.
void build_publish_10k(benchmark::State& state) {
  kroute::RouteModel model = model_of(10000, 5, false, 5);
  model.sources.clear();
  for (std::uint32_t i = 0; i < 10000; ++i) model.sources.push_back({"bench", "ingress-" + std::to_string(i), i});
  for (std::size_t r = 0; r < model.rules.size(); ++r) model.rules[r].source = static_cast<std::uint32_t>(r / 5);
  const std::string dir = bench_dir();
  std::string error;
  auto publisher = kroute::Publisher::open({dir, 3}, error);
  if (!publisher) {
    state.SkipWithError(error.c_str());
    return;
  }
  std::size_t bytes = 0;
  std::size_t endpoints = 0;
  for (auto _ : state) {
    kroute::BuildResult built = kroute::build_snapshot(model);
    if (publisher->publish(built.bytes).generation == 0) state.SkipWithError("publish failed");
    bytes = built.bytes.size();
    endpoints = built.stats.endpoints;
  }
  state.counters["snapshot_MB"] = static_cast<double>(bytes) / 1e6;
  state.counters["endpoints"] = static_cast<double>(endpoints);
  fs::remove_all(dir);
}

// With glibc's defaults every build's multi-megabyte vectors are fresh mmap()ed pages, and page faults
// are a fifth of the time.
void BM_BuildPublish_10kIngresses(benchmark::State& state) { build_publish_10k(state); }

// A long-running publisher keeps those pages: the same work with glibc told to serve large blocks from
// its heap and not to trim it (mallopt, process-wide, so this runs after the default-allocator case).
void BM_BuildPublish_10kIngresses_HeapKept(benchmark::State& state) {
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  build_publish_10k(state);
}

// The reader's per-request cost when the generation has not changed, next to a bare acquire load
// of the same mapped control page.
void BM_ReaderPollUnchanged(benchmark::State& state) {
  const std::string dir = bench_dir();
  std::string error;
  auto publisher = kroute::Publisher::open({dir, 3}, error);
  auto bytes = kroute::build_snapshot(model_of(10, 1, false)).bytes;
  publisher->publish(bytes);
  kroute::TableReader reader(dir);
  reader.poll(0);
  for (auto _ : state) benchmark::DoNotOptimize(reader.poll(0));
  fs::remove_all(dir);
}

void BM_Baseline_AtomicLoad(benchmark::State& state) {
  const std::string dir = bench_dir();
  std::string error;
  auto publisher = kroute::Publisher::open({dir, 3}, error);
  kroute::TableReader reader(dir);
  auto bytes = kroute::build_snapshot(model_of(10, 1, false)).bytes;
  publisher->publish(bytes);
  static std::uint64_t word = 1;
  for (auto _ : state) benchmark::DoNotOptimize(__atomic_load_n(&word, __ATOMIC_ACQUIRE));
  fs::remove_all(dir);
}

}  // namespace

BENCHMARK(BM_Baseline_UnorderedMapFind);
BENCHMARK(BM_Lookup_10kHosts_5Paths);
BENCHMARK(BM_Lookup_1Host_10kPaths);
BENCHMARK(BM_Lookup_2kWildcardHosts);
BENCHMARK(BM_Lookup_Routes)->Arg(100)->Arg(1000)->Arg(10000)->Arg(100000);
BENCHMARK(BM_BuildPublish_10kIngresses)->Unit(benchmark::kMillisecond)->Iterations(10);
BENCHMARK(BM_BuildPublish_10kIngresses_HeapKept)->Unit(benchmark::kMillisecond)->Iterations(10);
BENCHMARK(BM_Baseline_AtomicLoad);
BENCHMARK(BM_ReaderPollUnchanged);

BENCHMARK_MAIN();
