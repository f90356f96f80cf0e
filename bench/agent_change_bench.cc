// What one route change costs inside kroute-agent at a given cluster size: compile (store -> route
// model) after a new Ingress and after an endpoint change, build (model -> snapshot bytes) and publish
// (write, rename, control file), and nginx's pick-up of the result, with N Ingresses (one host, one path
// each), N Services and N EndpointSlices present; the "/shared" variants have every Ingress name one
// Service, as bench/propagation's do. This is the agent's share of route propagation (bench/propagation
// measures the whole path).
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "compiler.h"
#include "metrics.h"
#include "publisher.h"
#include "reader.h"
#include "store.h"

namespace fs = std::filesystem;
using namespace kroute;
using namespace kroute::agent;

namespace {

// Ingress i's Service: its own, or with `shared` all Ingresses name Service 0 (as the propagation
// benchmark's do).
std::size_t service_of(std::size_t i, bool shared) { return shared ? 0 : i; }

Json::Value ingress(std::size_t i, bool shared) {
  Json::Value o;
  o["metadata"]["name"] = "ing-" + std::to_string(i);
  o["metadata"]["namespace"] = "bench";
  o["metadata"]["uid"] = "uid-" + std::to_string(i);
  o["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z";
  o["spec"]["ingressClassName"] = "kroute";
  Json::Value path;
  path["path"] = "/";
  path["pathType"] = "Prefix";
  path["backend"]["service"]["name"] = "svc-" + std::to_string(service_of(i, shared));
  path["backend"]["service"]["port"]["number"] = 80;
  Json::Value rule;
  rule["host"] = "host" + std::to_string(i) + ".bench.example";
  rule["http"]["paths"].append(path);
  o["spec"]["rules"].append(rule);
  return o;
}

Json::Value service(std::size_t i) {
  Json::Value o;
  o["metadata"]["name"] = "svc-" + std::to_string(i);
  o["metadata"]["namespace"] = "bench";
  o["spec"]["type"] = "ClusterIP";
  Json::Value port;
  port["port"] = 80;
  port["targetPort"] = 8080;
  o["spec"]["ports"].append(port);
  return o;
}

Json::Value slice(std::size_t i, int first_endpoint = 0) {
  Json::Value o;
  o["metadata"]["name"] = "svc-" + std::to_string(i) + "-abc";
  o["metadata"]["namespace"] = "bench";
  o["metadata"]["labels"]["kubernetes.io/service-name"] = "svc-" + std::to_string(i);
  o["addressType"] = "IPv4";
  Json::Value port;
  port["port"] = 8080;
  o["ports"].append(port);
  for (int e = first_endpoint; e < first_endpoint + 2; ++e) {
    Json::Value endpoint;
    endpoint["addresses"].append("10.1." + std::to_string(i / 250 % 250) + "." + std::to_string(i % 250 + e));
    endpoint["conditions"]["ready"] = true;
    o["endpoints"].append(endpoint);
  }
  return o;
}

struct Cluster {
  Metrics metrics;
  Store store{metrics, nullptr};
  CompileCache cache;
  CompileOptions options;
  bool shared;
  Cluster(std::size_t n, bool shared_service) : shared(shared_service) {
    Json::Value cls;
    cls["metadata"]["name"] = "kroute";
    cls["spec"]["controller"] = kDefaultController;
    store.apply(Kind::kIngressClass, kube::EventType::kAdded, cls);
    for (std::size_t i = 0; i <= n; ++i) {
      store.apply(Kind::kService, kube::EventType::kAdded, service(i));
      store.apply(Kind::kEndpointSlice, kube::EventType::kAdded, slice(i));
      if (i < n) store.apply(Kind::kIngress, kube::EventType::kAdded, ingress(i, shared));
    }
    compile(store, options, cache);  // warm the cache as a running agent's is
  }
  // One change: Ingress n appears (or disappears again, alternately, so the store stays the same size).
  void toggle(std::size_t n, bool add) {
    store.apply(Kind::kIngress, add ? kube::EventType::kAdded : kube::EventType::kDeleted, ingress(n, shared));
    cache.ingress_changed("bench/ing-" + std::to_string(n));  // as the agent reports each change
  }
  // Another change: the EndpointSlice of the Service that Ingress 0 routes to swaps one pod for another.
  void move_endpoints(bool moved) {
    store.apply(Kind::kEndpointSlice, kube::EventType::kModified, slice(0, moved ? 1 : 0));
    cache.slice_changed(store, "bench/svc-0-abc");
  }
};

// Compiles after each change that `change(cluster, flip)` makes (flip alternates, so the change is
// undone every other time and the store stays the same size).
template <typename Change>
void compile_after(benchmark::State& state, Change&& change) {
  Cluster c(static_cast<std::size_t>(state.range(0)), state.range(1) != 0);
  bool flip = true;
  for (auto _ : state) {
    state.PauseTiming();
    change(c, flip);
    flip = !flip;
    state.ResumeTiming();
    const CompiledTable& table = compile(c.store, c.options, c.cache);
    benchmark::DoNotOptimize(table.model.backends.data());
  }
}

// A new Ingress appears (and goes again).
void BM_Compile(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  compile_after(state, [n](Cluster& c, bool add) { c.toggle(n, add); });
}

// An endpoint change (a pod replaced behind a Service an Ingress routes to).
void BM_CompileEndpoints(benchmark::State& state) {
  compile_after(state, [](Cluster& c, bool moved) { c.move_endpoints(moved); });
}

void BM_Build(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  Cluster c(n, state.range(1) != 0);
  const CompiledTable& table = compile(c.store, c.options, c.cache);
  for (auto _ : state) {
    BuildResult build = build_snapshot(table.model);
    benchmark::DoNotOptimize(build);
  }
}

// A table directory in tmpfs with a publisher, removed afterwards; the snapshot of a cluster of the
// benchmark's size to publish into it.
struct TableDir {
  std::string dir;
  std::unique_ptr<Publisher> publisher;
  std::vector<std::byte> bytes;
  TableDir(benchmark::State& state, const char* name) {
    Cluster c(static_cast<std::size_t>(state.range(0)), state.range(1) != 0);
    bytes = build_snapshot(compile(c.store, c.options, c.cache).model).bytes;
    const fs::path base = fs::exists("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    dir = (base / (std::string(name) + "-" + std::to_string(getpid()))).string();
    std::string error;
    publisher = Publisher::open({dir, 3}, error);
    if (!publisher) state.SkipWithError(error.c_str());
  }
  ~TableDir() {
    publisher.reset();
    fs::remove_all(dir);
  }
};

void BM_Publish(benchmark::State& state) {
  TableDir t(state, "kroute-change-bench");
  if (!t.publisher) return;
  for (auto _ : state) benchmark::DoNotOptimize(t.publisher->publish(t.bytes));
}

// The nginx side of the same change: a worker's first request after the publish opens, maps and
// validates the new snapshot (each worker does this once per generation).
void BM_PickUp(benchmark::State& state) {
  TableDir t(state, "kroute-pickup-bench");
  if (!t.publisher) return;
  TableReader reader(t.dir);
  std::uint64_t now_ms = 1;
  for (auto _ : state) {
    state.PauseTiming();
    t.publisher->publish(t.bytes);
    state.ResumeTiming();
    if (reader.poll(++now_ms) != TableReader::Poll::kPickedUp) state.SkipWithError("the new table was not picked up");
  }
}

}  // namespace

// Arguments: Ingresses, and whether they share one Service.
void sizes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"ingresses", "shared"})->Unit(benchmark::kMillisecond);
  for (const int n : {1000, 5000, 10000}) b->Args({n, 0});
  b->Args({5000, 1});
}

BENCHMARK(BM_Compile)->Apply(sizes);
BENCHMARK(BM_CompileEndpoints)->Apply(sizes);
BENCHMARK(BM_Build)->Apply(sizes);
BENCHMARK(BM_Publish)->Apply(sizes);
BENCHMARK(BM_PickUp)->Apply(sizes);

// The agent tells glibc to keep its heap (agent/main.cc); so does this bench, or page faults dominate.
int main(int argc, char** argv) {
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
