// Readers in separate processes look up continuously while one writer publishes 10,000 generations:
// no crash, no torn read (every answer agrees with exactly one generation), and the directory keeps
// only the newest few snapshots.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "model_builder.h"
#include "publisher.h"
#include "reader.h"

namespace fs = std::filesystem;

namespace {

constexpr int kReaders = 4;
constexpr std::uint64_t kGenerations = 10000;
constexpr std::size_t kKeep = 3;
constexpr auto kTimeLimit = std::chrono::seconds(120);

struct ReaderReport {
  std::uint64_t lookups = 0;
  std::uint64_t inconsistent = 0;
  std::uint64_t went_back = 0;
  std::uint64_t pickups = 0;
  std::uint64_t rejections = 0;
  std::uint64_t last_generation = 0;
};

std::uint16_t port_for(std::uint64_t generation) { return static_cast<std::uint16_t>(generation % 60000 + 1); }

// Generation g routes to service "svc-g", endpoint port g%60000+1, from Ingress "ing-g", and has a
// g-dependent number of extra hosts so the layout moves between generations.
std::vector<std::byte> table_for(std::uint64_t g) {
  kroute::testing::ModelBuilder m;
  const std::string tag = std::to_string(g);
  m.ingress("stress", "ing-" + tag);
  m.backend("svc-" + tag, {{"10.0.0.1", port_for(g)}, {"fd00::1", port_for(g)}});
  m.prefix("h.example", "/", "svc-" + tag).exact("h.example", "/exact/" + tag, "svc-" + tag);
  for (std::uint64_t i = 0; i < g % 13; ++i) m.prefix("extra" + std::to_string(i) + ".example", "/", "svc-" + tag);
  return kroute::build_snapshot(m.model()).bytes;
}

bool consistent(const kroute::SnapshotView& view) {
  const std::uint64_t g = view.generation();
  const std::string tag = std::to_string(g);
  const kroute::RouteMatch m = view.lookup("h.example", "/some/path");
  if (m.backend == nullptr || m.rule == nullptr) return false;
  if (view.str(m.backend->service) != "svc-" + tag) return false;
  if (view.str(view.source_of(*m.rule).name) != "ing-" + tag) return false;
  const auto ready = view.ready_endpoints_of(*m.backend);
  if (ready.size() != 2 || ready[0].port != port_for(g) || ready[1].port != port_for(g)) return false;
  const kroute::RouteMatch exact = view.lookup("h.example", "/exact/" + tag);
  return exact.rule != nullptr && exact.rule->match == kroute::format::Match::kExact;
}

[[noreturn]] void run_reader(const std::string& dir, int report_fd) {
  kroute::TableReader reader(dir);
  ReaderReport report;
  const auto deadline = std::chrono::steady_clock::now() + kTimeLimit;
  std::uint64_t previous = 0;
  while (report.last_generation < kGenerations + 1 && std::chrono::steady_clock::now() < deadline) {
    const auto now = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
    reader.poll(now);
    kroute::MappedSnapshot* pinned = reader.pin();
    if (pinned == nullptr) continue;
    ++report.lookups;
    const std::uint64_t g = pinned->view.generation();
    if (!consistent(pinned->view)) ++report.inconsistent;
    if (g < previous) ++report.went_back;
    previous = g;
    report.last_generation = g;
    reader.unpin(pinned);
  }
  report.pickups = reader.pickups();
  report.rejections = reader.rejections();
  const bool sent = write(report_fd, &report, sizeof report) == static_cast<ssize_t>(sizeof report);
  _exit(sent ? 0 : 3);
}

}  // namespace

TEST_CASE("4 reader processes and a writer publishing 10,000 generations") {
  const fs::path base = fs::exists("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
  std::string pattern = (base / "kroute-stress-XXXXXX").string();
  REQUIRE(mkdtemp(pattern.data()) != nullptr);
  const std::string dir = pattern;
  struct Cleanup {
    std::string dir;
    std::vector<pid_t> children;
    ~Cleanup() {
      for (pid_t pid : children) kill(pid, SIGKILL);
      for (pid_t pid : children) waitpid(pid, nullptr, 0);
      fs::remove_all(dir);
    }
  } cleanup{dir, {}};

  std::string error;
  auto publisher = kroute::Publisher::open({dir, kKeep}, error);
  REQUIRE_MESSAGE(publisher, error);
  auto first = table_for(1);
  REQUIRE(publisher->publish(first).generation == 1);

  int pipes[kReaders][2];
  for (int i = 0; i < kReaders; ++i) {
    REQUIRE(pipe(pipes[i]) == 0);
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a test runner that died
      run_reader(dir, pipes[i][1]);
    }
    close(pipes[i][1]);
    cleanup.children.push_back(pid);
  }

  const auto start = std::chrono::steady_clock::now();
  for (std::uint64_t g = 2; g <= kGenerations + 1; ++g) {
    auto bytes = table_for(g);
    const auto published = publisher->publish(bytes);
    REQUIRE_MESSAGE(published.generation == g, published.error);
  }
  const auto publish_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
  MESSAGE("published ", kGenerations, " generations in ", publish_ms, " ms");

  for (int i = 0; i < kReaders; ++i) {
    int status = 0;
    REQUIRE(waitpid(cleanup.children[i], &status, 0) == cleanup.children[i]);
    CAPTURE(i);
    CHECK_MESSAGE(WIFEXITED(status), "reader crashed with signal ", WTERMSIG(status));
    CHECK(WEXITSTATUS(status) == 0);
    ReaderReport report;
    REQUIRE(read(pipes[i][0], &report, sizeof report) == static_cast<ssize_t>(sizeof report));
    close(pipes[i][0]);
    MESSAGE("reader ", i, ": ", report.lookups, " lookups, ", report.pickups, " pickups, last generation ",
            report.last_generation);
    CHECK(report.lookups > 0);
    CHECK(report.inconsistent == 0);
    CHECK(report.went_back == 0);
    CHECK(report.rejections == 0);
    CHECK(report.pickups > 1);
    CHECK(report.last_generation == kGenerations + 1);
  }
  cleanup.children.clear();

  std::size_t snapshots = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    CHECK_MESSAGE((name == "control" || name.starts_with("table.")), "unexpected file ", name);
    snapshots += name.starts_with("table.");
  }
  CHECK(snapshots == kKeep);
  CHECK(fs::exists(fs::path(dir) / ("table." + std::to_string(kGenerations + 1))));
}
