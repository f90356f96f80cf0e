// Publisher and reader through a real directory: pickup on the next poll, a refused snapshot keeps the
// last good one, pruning, pinning across a switch, and a reader that starts before the first publish.
#include <doctest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "model_builder.h"
#include "publisher.h"
#include "reader.h"

namespace fs = std::filesystem;
using kroute::Publisher;
using kroute::TableReader;
using Poll = kroute::TableReader::Poll;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "kroute-test-XXXXXX").string();
    path = mkdtemp(pattern.data());
  }
  ~TempDir() { fs::remove_all(path); }
};

std::vector<std::byte> table_routing_to(const std::string& service) {
  kroute::testing::ModelBuilder m;
  m.prefix("a.com", "/", service);
  return kroute::build_snapshot(m.model()).bytes;
}

std::unique_ptr<Publisher> open_publisher(const TempDir& dir, std::size_t keep = 3) {
  std::string error;
  auto publisher = Publisher::open({dir.path.string(), keep}, error);
  REQUIRE_MESSAGE(publisher != nullptr, error);
  return publisher;
}

std::string served_by(const TableReader& reader) {
  const auto* current = reader.current();
  if (current == nullptr) return "none";
  const auto m = current->view.lookup("a.com", "/");
  return m.backend == nullptr ? "404" : std::string(current->view.str(m.backend->service));
}

std::size_t snapshot_files(const TempDir& dir) {
  std::size_t n = 0;
  for (const auto& entry : fs::directory_iterator(dir.path)) n += entry.path().filename().string().starts_with("table.");
  return n;
}

}  // namespace

TEST_CASE("a publish is seen on the next poll; an unchanged generation is one load") {
  TempDir dir;
  auto publisher = open_publisher(dir);
  TableReader reader(dir.path.string());
  reader.poll(0);
  CHECK(reader.current() == nullptr);  // a control file, but nothing published yet

  auto bytes = table_routing_to("first");
  const auto published = publisher->publish(bytes);
  REQUIRE(published.generation == 1);
  CHECK(reader.poll(0) == Poll::kPickedUp);
  CHECK(served_by(reader) == "first");
  CHECK(reader.current()->view.generation() == 1);
  CHECK(reader.poll(0) == Poll::kUnchanged);
  CHECK(reader.pickups() == 1);

  bytes = table_routing_to("second");
  REQUIRE(publisher->publish(bytes).generation == 2);
  CHECK(reader.poll(0) == Poll::kPickedUp);
  CHECK(served_by(reader) == "second");
}

TEST_CASE("a corrupt snapshot is refused and the last good one keeps serving") {
  TempDir dir;
  auto publisher = open_publisher(dir);
  TableReader reader(dir.path.string());
  auto good = table_routing_to("good");
  publisher->publish(good);
  REQUIRE(reader.poll(0) == Poll::kPickedUp);

  auto corrupt = table_routing_to("bad");
  corrupt[corrupt.size() - 3] ^= std::byte{1};
  REQUIRE(publisher->publish(corrupt).generation == 2);
  CHECK(reader.poll(0) == Poll::kRejected);
  CHECK(served_by(reader) == "good");
  CHECK(reader.rejections() == 1);
  CHECK(reader.last_error().find("table.2: snapshot checksum mismatch") != std::string::npos);
  CHECK(reader.poll(0) == Poll::kUnchanged);  // not retried on every request
  CHECK(reader.rejections() == 1);

  std::vector<std::byte> garbage(4096, std::byte{0x42});
  publisher->publish(garbage);
  CHECK(reader.poll(0) == Poll::kRejected);
  CHECK(reader.last_error().find("bad magic") != std::string::npos);
  CHECK(served_by(reader) == "good");

  auto fixed = table_routing_to("fixed");
  publisher->publish(fixed);
  CHECK(reader.poll(0) == Poll::kPickedUp);
  CHECK(served_by(reader) == "fixed");
}

TEST_CASE("only the newest few snapshots stay on disk") {
  TempDir dir;
  auto publisher = open_publisher(dir, 3);
  for (int i = 0; i < 20; ++i) {
    auto bytes = table_routing_to("s" + std::to_string(i));
    publisher->publish(bytes);
  }
  CHECK(snapshot_files(dir) == 3);
  CHECK(fs::exists(dir.path / "table.20"));
  CHECK(fs::exists(dir.path / "table.18"));
  CHECK_FALSE(fs::exists(dir.path / "table.17"));
}

// A tmpfs of `bytes` on a fresh directory, as the chart's memory-backed emptyDir with a sizeLimit is.
// Mounting needs root (CAP_SYS_ADMIN); `mounted` says whether it worked.
struct SmallTmpfs {
  TempDir dir;
  bool mounted = false;
  explicit SmallTmpfs(std::size_t bytes) {
    const std::string options = "size=" + std::to_string(bytes) + ",mode=0755";
    mounted = mount("tmpfs", dir.path.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) == 0;
  }
  ~SmallTmpfs() {
    if (mounted) umount2(dir.path.c_str(), MNT_DETACH);
  }
};

TEST_CASE("a full table directory: older generations make room and the new table is published") {
  // About 40 KB of snapshot: the directory holds the control page and three of them, not a fourth.
  kroute::testing::ModelBuilder m;
  for (int i = 0; i < 200; ++i) m.prefix("host-" + std::to_string(i) + ".example.com", "/", "s");
  auto bytes = kroute::build_snapshot(m.model()).bytes;
  const std::size_t page = 4096;
  const std::size_t pages = (bytes.size() + page - 1) / page;
  SmallTmpfs fs_(page * (1 + 3 * pages + pages / 2));
  if (!fs_.mounted) {
    MESSAGE("skipped: mounting a tmpfs needs root");
    return;
  }
  std::string error;
  auto publisher = Publisher::open({fs_.dir.path.string(), 3}, error);
  REQUIRE_MESSAGE(publisher != nullptr, error);
  for (int i = 1; i <= 3; ++i) REQUIRE(publisher->publish(bytes).generation == static_cast<std::uint64_t>(i));
  REQUIRE(snapshot_files(fs_.dir) == 3);
  // The fourth does not fit beside the other three: the publisher removes the ones readers no longer
  // need (all but the current) and writes it.
  const kroute::PublishResult fourth = publisher->publish(bytes);
  CHECK_MESSAGE(fourth.error.empty(), fourth.error);
  CHECK(fourth.generation == 4);
  CHECK(fs::exists(fs_.dir.path / "table.4"));
  CHECK(fs::exists(fs_.dir.path / "table.3"));
  CHECK_FALSE(fs::exists(fs_.dir.path / "table.2"));
  CHECK_FALSE(fs::exists(fs_.dir.path / "table.4.tmp"));
  TableReader reader(fs_.dir.path.string());
  CHECK(reader.poll(1) == Poll::kPickedUp);
  CHECK(reader.current()->view.header().generation == 4);
  // A snapshot bigger than the whole directory still fails, cleanly, and the current one stays.
  kroute::testing::ModelBuilder huge;
  for (int i = 0; i < 2000; ++i) huge.prefix("host-" + std::to_string(i) + ".example.com", "/", "s");
  auto too_big = kroute::build_snapshot(huge.model()).bytes;
  const kroute::PublishResult failed = publisher->publish(too_big);
  CHECK(failed.generation == 0);
  CHECK(failed.error.find("No space left") != std::string::npos);
  CHECK(publisher->generation() == 4);
  CHECK(fs::exists(fs_.dir.path / "table.4"));
  CHECK_FALSE(fs::exists(fs_.dir.path / "table.5.tmp"));
}

TEST_CASE("a pinned snapshot outlives a switch and is unmapped when unpinned") {
  TempDir dir;
  auto publisher = open_publisher(dir, 1);
  TableReader reader(dir.path.string());
  auto first = table_routing_to("first");
  publisher->publish(first);
  reader.poll(0);
  kroute::MappedSnapshot* pinned = reader.pin();
  REQUIRE(pinned != nullptr);

  auto second = table_routing_to("second");
  publisher->publish(second);  // keep=1: table.1 is unlinked now
  CHECK_FALSE(fs::exists(dir.path / "table.1"));
  CHECK(reader.poll(0) == Poll::kPickedUp);
  CHECK(served_by(reader) == "second");
  CHECK(reader.retired() == 1);
  // The request that pinned generation 1 still reads it.
  const auto m = pinned->view.lookup("a.com", "/");
  CHECK(pinned->view.str(m.backend->service) == "first");
  reader.unpin(pinned);
  CHECK(reader.retired() == 0);
}

TEST_CASE("a reader started before the agent attaches later, at most once per retry interval") {
  TempDir dir;
  TableReader reader((dir.path / "sub").string());
  CHECK(reader.poll(1000) == Poll::kNoTable);
  std::string error;
  auto publisher = Publisher::open({(dir.path / "sub").string(), 3}, error);
  REQUIRE(publisher);
  auto bytes = table_routing_to("late");
  publisher->publish(bytes);
  CHECK(reader.poll(1500) == Poll::kNoTable);  // within the retry interval: no filesystem access
  CHECK(reader.poll(2001) == Poll::kPickedUp);
  CHECK(served_by(reader) == "late");
}

TEST_CASE("a new publisher continues the generation sequence and clears leftovers") {
  TempDir dir;
  {
    auto publisher = open_publisher(dir);
    auto bytes = table_routing_to("a");
    publisher->publish(bytes);
    publisher->publish(bytes);
  }
  std::ofstream(dir.path / "table.9.tmp") << "partial";
  auto publisher = open_publisher(dir);
  auto bytes = table_routing_to("b");
  CHECK(publisher->publish(bytes).generation == 3);
  CHECK_FALSE(fs::exists(dir.path / "table.9.tmp"));
}

TEST_CASE("a second publisher on the same directory fails clearly until the first one is gone") {
  TempDir dir;
  auto first = open_publisher(dir);
  std::string error;
  // flock locks belong to the open file description: a second open in this process conflicts too.
  CHECK(Publisher::open({dir.path.string(), 3}, error) == nullptr);
  CHECK(error.find(dir.path.string()) != std::string::npos);
  CHECK(error.find("held by another publisher") != std::string::npos);

  kroute::PublisherOptions waiting{dir.path.string(), 3};
  waiting.wait_for_directory = std::chrono::milliseconds(200);
  const auto started = std::chrono::steady_clock::now();
  CHECK(Publisher::open(waiting, error) == nullptr);
  CHECK(std::chrono::steady_clock::now() - started >= std::chrono::milliseconds(200));

  first.reset();
  auto second = open_publisher(dir);
  auto bytes = table_routing_to("a");
  CHECK(second->publish(bytes).generation == 1);
}

TEST_CASE("a table directory made again is held again by its publisher") {
  TempDir parent;
  const fs::path table = parent.path / "table";
  std::string error;
  auto publisher = Publisher::open({table.string(), 3}, error);
  REQUIRE_MESSAGE(publisher, error);
  fs::remove_all(table);
  auto bytes = table_routing_to("a");
  REQUIRE(publisher->publish(bytes).generation == 1);
  CHECK(Publisher::open({table.string(), 3}, error) == nullptr);
  CHECK(error.find("held by another publisher") != std::string::npos);
}

TEST_CASE("a publisher killed between rename and prune: the next one keeps only the newest") {
  TempDir dir;
  {
    auto publisher = open_publisher(dir, 5);
    auto bytes = table_routing_to("a");
    for (int i = 0; i < 5; ++i) publisher->publish(bytes);
  }
  auto publisher = open_publisher(dir, 3);
  CHECK(snapshot_files(dir) == 3);
  CHECK(fs::exists(dir.path / "table.5"));
  CHECK_FALSE(fs::exists(dir.path / "table.2"));
}

TEST_CASE("a replaced control file is noticed on refresh") {
  TempDir dir;
  TableReader reader(dir.path.string());
  {
    auto publisher = open_publisher(dir);
    auto bytes = table_routing_to("old");
    publisher->publish(bytes);
  }
  REQUIRE(reader.poll(0) == Poll::kPickedUp);
  fs::remove_all(dir.path);
  fs::create_directory(dir.path);
  auto publisher = open_publisher(dir);
  auto bytes = table_routing_to("new");
  publisher->publish(bytes);  // generation 1 again, in a new control file
  CHECK(reader.poll(0) == Poll::kUnchanged);
  CHECK(reader.refresh(0) == Poll::kPickedUp);
  CHECK(served_by(reader) == "new");
}

TEST_CASE("snapshot files get the configured mode and group") {
  TempDir dir;
  std::string error;
  // A group other than our own: only root may give files away to it, so root uses gid 33 (www-data).
  const gid_t group = geteuid() == 0 ? 33 : getegid();
  auto publisher = Publisher::open({dir.path.string(), 3, 0640, group}, error);
  REQUIRE(publisher);
  auto bytes = table_routing_to("a");
  const auto published = publisher->publish(bytes);
  REQUIRE(published.generation != 0);
  struct stat st {};
  REQUIRE(stat((dir.path / ("table." + std::to_string(published.generation))).c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0640);
  CHECK(st.st_gid == group);
}

TEST_CASE("the table directory is not for others when the snapshots are not") {
  const gid_t group = geteuid() == 0 ? 33 : getegid();
  std::string error;
  SUBCASE("a directory the publisher makes") {
    TempDir parent;
    const fs::path made = parent.path / "table";
    auto publisher = Publisher::open({made.string(), 3, 0640, group}, error);
    REQUIRE(publisher);
    struct stat st {};
    REQUIRE(stat(made.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0750);
    CHECK(st.st_gid == group);
  }
  SUBCASE("a directory of ours that others could read") {
    TempDir dir;
    REQUIRE(chmod(dir.path.c_str(), 0755) == 0);
    auto publisher = Publisher::open({dir.path.string(), 3, 0640, group}, error);
    REQUIRE(publisher);
    struct stat st {};
    REQUIRE(stat(dir.path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0750);
    CHECK(st.st_gid == group);
  }
  SUBCASE("snapshots for everyone leave the directory alone") {
    TempDir dir;
    REQUIRE(chmod(dir.path.c_str(), 0755) == 0);
    auto publisher = Publisher::open({dir.path.string(), 3, 0644}, error);
    REQUIRE(publisher);
    struct stat st {};
    REQUIRE(stat(dir.path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0755);
  }
}

TEST_CASE("a control file that is not ours is refused") {
  TempDir dir;
  std::ofstream(dir.path / "control") << std::string(4096, 'x');
  std::string error;
  CHECK(Publisher::open({dir.path.string(), 3}, error) == nullptr);
  CHECK(error.find("not a kroute control file") != std::string::npos);
}

TEST_CASE("a generation pruned before the reader opens it: the reader takes the newest at once") {
  TempDir dir;
  auto publisher = open_publisher(dir, 1);
  TableReader reader(dir.path.string());
  auto first = table_routing_to("first");
  publisher->publish(first);
  REQUIRE(reader.poll(0) == Poll::kPickedUp);
  // Two publishes with keep=1 before the reader looks: table.2 is gone, table.3 is current.
  auto second = table_routing_to("second");
  auto third = table_routing_to("third");
  publisher->publish(second);
  publisher->publish(third);
  CHECK(reader.poll(0) == Poll::kPickedUp);
  CHECK(served_by(reader) == "third");
  CHECK(reader.rejections() == 0);
}

TEST_CASE("a generation that cannot be opened is retried later, a newer one at once") {
  TempDir dir;
  auto publisher = open_publisher(dir, 3);
  TableReader reader(dir.path.string());
  auto first = table_routing_to("first");
  publisher->publish(first);
  REQUIRE(reader.poll(0) == Poll::kPickedUp);
  auto second = table_routing_to("second");
  publisher->publish(second);
  fs::remove(dir.path / "table.2");  // the control file says 2, but there is no table.2
  CHECK(reader.poll(100) == Poll::kUnchanged);
  CHECK(served_by(reader) == "first");
  CHECK(reader.rejections() == 0);  // not a verdict on the table
  CHECK(reader.last_error().find("table.2") != std::string::npos);
  auto third = table_routing_to("third");
  publisher->publish(third);
  CHECK(reader.poll(200) == Poll::kPickedUp);  // well within the retry interval of generation 2
  CHECK(served_by(reader) == "third");
}

// ---- faults of the table directory (docs/agent.md, "Faults") ----------------------------------------

TEST_CASE("a removed table directory is made again by the next publish, with its mode and group") {
  TempDir parent;
  const fs::path table = parent.path / "table";
  fs::create_directory(table);
  const gid_t group = geteuid() == 0 ? 33 : getegid();
  REQUIRE(chown(table.c_str(), static_cast<uid_t>(-1), group) == 0);
  fs::permissions(table, fs::perms(0750));
  std::string error;
  auto publisher = Publisher::open({table.string(), 3}, error);
  REQUIRE(publisher);
  TableReader reader(table.string());
  auto old_bytes = table_routing_to("old");
  REQUIRE(publisher->publish(old_bytes).generation == 1);
  REQUIRE(reader.poll(0) == Poll::kPickedUp);

  fs::remove_all(table);
  CHECK(publisher->missing().find("is gone") != std::string::npos);
  CHECK(reader.refresh(0) == Poll::kUnchanged);  // the path names nothing: the mapped table serves
  CHECK(served_by(reader) == "old");

  auto new_bytes = table_routing_to("new");
  const auto published = publisher->publish(new_bytes);
  REQUIRE_MESSAGE(published.generation == 2, published.error);  // generations go on
  CHECK(publisher->missing().empty());
  struct stat st {};
  REQUIRE(stat(table.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0750);
  CHECK(st.st_gid == group);
  CHECK(reader.poll(0) == Poll::kUnchanged);  // requests never look at the path...
  CHECK(reader.refresh(0) == Poll::kPickedUp);  // ...the refresh timer does
  CHECK(served_by(reader) == "new");
  auto newer = table_routing_to("newer");
  REQUIRE(publisher->publish(newer).generation == 3);
  CHECK(reader.poll(0) == Poll::kPickedUp);  // and then requests follow the new control file
  CHECK(served_by(reader) == "newer");
}

TEST_CASE("missing(): a removed control file or current snapshot, nothing when in place") {
  TempDir dir;
  auto publisher = open_publisher(dir);
  CHECK(publisher->missing().empty());  // nothing published yet is nothing missing
  auto bytes = table_routing_to("a");
  REQUIRE(publisher->publish(bytes).generation == 1);
  CHECK(publisher->missing().empty());
  fs::remove(dir.path / "table.1");
  CHECK(publisher->missing().find("table.1 is gone") != std::string::npos);
  REQUIRE(publisher->publish(bytes).generation == 2);
  CHECK(publisher->missing().empty());
  fs::remove(dir.path / "control");
  CHECK(publisher->missing().find("control is gone") != std::string::npos);
  TableReader reader(dir.path.string());
  REQUIRE(publisher->publish(bytes).generation == 3);  // a new control file, the generation going on
  CHECK(publisher->missing().empty());
  CHECK(reader.poll(0) == Poll::kPickedUp);
  CHECK(reader.current()->view.generation() == 3);
}

TEST_CASE("a control file replaced by one that is not ours: the reader keeps its own and its table") {
  TempDir dir;
  auto publisher = open_publisher(dir);
  TableReader reader(dir.path.string());
  auto bytes = table_routing_to("kept");
  publisher->publish(bytes);
  REQUIRE(reader.poll(0) == Poll::kPickedUp);
  fs::remove(dir.path / "control");
  std::ofstream(dir.path / "control") << std::string(4096, 'x');
  CHECK(reader.refresh(0) == Poll::kUnchanged);
  CHECK(served_by(reader) == "kept");
  CHECK(reader.poll(0) == Poll::kUnchanged);
  CHECK(publisher->missing().find("was replaced") != std::string::npos);
  auto next = table_routing_to("next");
  // The publisher refuses to write into someone else's control file...
  CHECK(publisher->publish(next).error.find("not a kroute control file") != std::string::npos);
  // ...and takes the path back once that file is gone.
  fs::remove(dir.path / "control");
  REQUIRE(publisher->publish(next).generation != 0);
  CHECK(reader.refresh(0) == Poll::kPickedUp);
  CHECK(served_by(reader) == "next");
}

TEST_CASE("an unfinished control file is replaced on open; leftover temporaries are removed") {
  TempDir dir;
  std::ofstream(dir.path / "control");  // empty: an older publisher died before sizing it
  std::ofstream(dir.path / "control.123.tmp") << "partial";
  auto publisher = open_publisher(dir);
  CHECK(fs::file_size(dir.path / "control") == kroute::kControlSize);
  CHECK_FALSE(fs::exists(dir.path / "control.123.tmp"));
  TableReader reader(dir.path.string());
  auto bytes = table_routing_to("a");
  REQUIRE(publisher->publish(bytes).generation == 1);
  CHECK(reader.poll(0) == Poll::kPickedUp);
  struct stat st {};
  REQUIRE(stat((dir.path / "control").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0644);
}
