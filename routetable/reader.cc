#include "reader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

namespace kroute {

namespace {

constexpr std::uint64_t kRetryMs = 1000;

}  // namespace

MappedSnapshot::~MappedSnapshot() {
  if (base != nullptr) munmap(const_cast<void*>(base), size);
}

TableReader::TableReader(std::string dir) : dir_(std::move(dir)) {}

TableReader::~TableReader() { detach(); }

void TableReader::detach() noexcept {
  if (control_ != nullptr) munmap(const_cast<ControlPage*>(control_), kControlSize);
  control_ = nullptr;
}

// The control file at `path`, mapped, when it is a whole kroute control page; null otherwise.
const ControlPage* TableReader::map_control(const std::string& path, struct stat& st) noexcept {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return nullptr;
  void* mapped = MAP_FAILED;
  if (fstat(fd, &st) == 0 && st.st_size >= static_cast<off_t>(kControlSize))
    mapped = mmap(nullptr, kControlSize, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (mapped == MAP_FAILED) return nullptr;
  const auto* control = static_cast<const ControlPage*>(mapped);
  if (__atomic_load_n(&control->magic, __ATOMIC_ACQUIRE) != kControlMagic) {
    munmap(mapped, kControlSize);  // not made yet, or not ours
    return nullptr;
  }
  return control;
}

TableReader::Poll TableReader::attach(std::uint64_t now_ms) noexcept {
  if (now_ms < attach_after_ms_) return current_ ? Poll::kUnchanged : Poll::kNoTable;
  attach_after_ms_ = now_ms + kRetryMs;
  struct stat st {};
  const ControlPage* control = map_control(dir_ + "/" + kControlName, st);
  if (control == nullptr) return current_ ? Poll::kUnchanged : Poll::kNoTable;  // look again later
  control_ = control;
  control_device_ = st.st_dev;
  control_inode_ = st.st_ino;
  attach_after_ms_ = 0;
  return poll(now_ms);
}

TableReader::Poll TableReader::pick_up(std::uint64_t generation, std::uint64_t now_ms) noexcept {
  if (generation == 0) return Poll::kNoTable;
  if (generation == unopened_generation_ && now_ms < unopened_retry_ms_) return Poll::kUnchanged;
  std::string path = snapshot_path(dir_, generation);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  // A snapshot already pruned means newer ones were published since the load: take the newest.
  for (int attempt = 0; fd < 0 && errno == ENOENT && attempt < 3; ++attempt) {
    const std::uint64_t newer = load_generation(control_);
    if (newer == generation) break;
    generation = newer;
    path = snapshot_path(dir_, generation);
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  }
  struct stat st {};
  if (fd < 0 || fstat(fd, &st) != 0) {
    // Not a verdict on the table (out of file descriptors, say): try this generation again in a
    // while, and any newer one at once.
    last_error_ = path + ": " + std::strerror(errno);
    if (fd >= 0) close(fd);
    unopened_generation_ = generation;
    unopened_retry_ms_ = now_ms + kRetryMs;
    return Poll::kUnchanged;
  }
  seen_generation_ = generation;
  auto reject = [&](std::string why) {
    last_error_ = path + ": " + std::move(why);
    ++rejections_;
    return Poll::kRejected;
  };
  if (st.st_size < static_cast<off_t>(sizeof(format::Header)) ||
      static_cast<std::uint64_t>(st.st_size) > format::kMaxSnapshotBytes) {
    close(fd);
    return reject("snapshot size " + std::to_string(st.st_size) + " is out of bounds");
  }
  const auto size = static_cast<std::size_t>(st.st_size);
  // The checksum reads every page at once anyway: one populate costs less than a fault per page.
  void* mapped = mmap(nullptr, size, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
  close(fd);
  if (mapped == MAP_FAILED) return reject(std::string("cannot map: ") + std::strerror(errno));
  std::unique_ptr<MappedSnapshot> snapshot(new (std::nothrow) MappedSnapshot);
  if (!snapshot) {
    munmap(mapped, size);
    return reject("out of memory");
  }
  snapshot->base = mapped;
  snapshot->size = size;
  const ValidationResult valid =
      SnapshotView::open({static_cast<const std::byte*>(mapped), size}, snapshot->view);
  if (!valid.ok) return reject(valid.error);
  if (snapshot->view.generation() != generation)
    return reject("snapshot says generation " + std::to_string(snapshot->view.generation()));
  // Regex paths are compiled once per pattern in this process: a new generation compiles only new ones.
  try {
    snapshot->patterns = std::make_unique<PathPatterns>(snapshot->view, patterns_);
  } catch (...) {
    return reject("out of memory compiling regex paths");
  }
  if (current_) retire(std::move(current_));
  current_ = std::move(snapshot);
  ++pickups_;
  return Poll::kPickedUp;
}

TableReader::Poll TableReader::refresh(std::uint64_t now_ms) noexcept {
  if (control_ != nullptr) {
    // A control file replaced under us (the directory was made again, a new volume mounted there)
    // would never change again. The new one is mapped before the old one is let go, so requests keep
    // their single load whatever the path names; while it names nothing, the old table still serves.
    struct stat st {};
    const std::string path = dir_ + "/" + kControlName;
    if (stat(path.c_str(), &st) == 0 && (st.st_ino != control_inode_ || st.st_dev != control_device_)) {
      if (const ControlPage* replacement = map_control(path, st)) {
        detach();
        control_ = replacement;
        control_device_ = st.st_dev;
        control_inode_ = st.st_ino;
        seen_generation_ = 0;  // the new file's generations need not continue the old ones
      }
    }
  }
  std::erase_if(retired_, [](const std::unique_ptr<MappedSnapshot>& s) { return s->pins == 0; });
  patterns_.trim();
  return poll(now_ms);
}

MappedSnapshot* TableReader::pin() noexcept {
  if (!current_) return nullptr;
  ++current_->pins;
  return current_.get();
}

void TableReader::unpin(MappedSnapshot* snapshot) noexcept {
  if (snapshot == nullptr) return;
  if (--snapshot->pins == 0 && snapshot != current_.get()) {
    std::erase_if(retired_, [snapshot](const std::unique_ptr<MappedSnapshot>& s) { return s.get() == snapshot; });
  }
}

void TableReader::retire(std::unique_ptr<MappedSnapshot> snapshot) noexcept {
  if (snapshot->pins == 0) return;  // unmapped here, as it goes out of scope
  retired_.push_back(std::move(snapshot));
}

}  // namespace kroute
