// TableReader: one per process (an nginx worker). Maps the control file, notices a new generation with
// one atomic load, validates and maps the new snapshot, and keeps the last good one when validation fails.
// Not thread-safe: nginx workers are single-threaded.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "control.h"
#include "path_patterns.h"
#include "snapshot.h"

namespace kroute {

// A mapped, validated snapshot. Requests pin it so it outlives a switch to a newer generation.
struct MappedSnapshot {
  SnapshotView view;
  std::unique_ptr<PathPatterns> patterns;  // the compiled regex paths of `view`
  const void* base = nullptr;
  std::size_t size = 0;
  std::uint32_t pins = 0;
  ~MappedSnapshot();
};

class TableReader {
 public:
  enum class Poll { kUnchanged, kPickedUp, kRejected, kNoTable };

  explicit TableReader(std::string dir);
  ~TableReader();
  TableReader(const TableReader&) = delete;
  TableReader& operator=(const TableReader&) = delete;

  // Per request. When the generation has not changed this is one acquire load and a compare.
  // `now_ms` is a monotonic clock the caller already has (nginx's ngx_current_msec); it rate-limits
  // retries when there is no control file yet or a snapshot could not be opened.
  Poll poll(std::uint64_t now_ms) noexcept {
    if (control_ != nullptr) [[likely]] {
      const std::uint64_t generation = load_generation(control_);
      if (generation == seen_generation_) [[likely]] return Poll::kUnchanged;
      return pick_up(generation, now_ms);
    }
    return attach(now_ms);
  }

  // On a timer (about once a second), also when idle: notices a replaced control file, picks up a new
  // generation and frees snapshots no request pins any more.
  Poll refresh(std::uint64_t now_ms) noexcept;

  const MappedSnapshot* current() const noexcept { return current_.get(); }
  // Pin the current snapshot for the life of a request; null when there is none.
  MappedSnapshot* pin() noexcept;
  void unpin(MappedSnapshot* snapshot) noexcept;

  const std::string& last_error() const noexcept { return last_error_; }
  std::uint64_t pickups() const noexcept { return pickups_; }
  std::uint64_t rejections() const noexcept { return rejections_; }
  std::size_t retired() const noexcept { return retired_.size(); }
  // Regex path matches that hit their work bound (path_patterns.h), over all snapshots.
  std::uint64_t regex_limit_hits() const noexcept { return patterns_.limit_hits(); }

 private:
  static const ControlPage* map_control(const std::string& path, struct stat& st) noexcept;
  Poll attach(std::uint64_t now_ms) noexcept;
  Poll pick_up(std::uint64_t generation, std::uint64_t now_ms) noexcept;
  void detach() noexcept;
  void retire(std::unique_ptr<MappedSnapshot> snapshot) noexcept;

  std::string dir_;
  const ControlPage* control_ = nullptr;
  dev_t control_device_ = 0;  // the mapped control file, to notice one replaced (a recreated directory)
  ino_t control_inode_ = 0;
  std::uint64_t seen_generation_ = 0;
  std::uint64_t attach_after_ms_ = 0;       // no control file yet: look again after this
  std::uint64_t unopened_generation_ = 0;   // a generation whose file could not be opened...
  std::uint64_t unopened_retry_ms_ = 0;     // ...is tried again after this; newer ones at once
  std::unique_ptr<MappedSnapshot> current_;
  std::vector<std::unique_ptr<MappedSnapshot>> retired_;
  PatternCache patterns_;
  std::string last_error_;
  std::uint64_t pickups_ = 0;
  std::uint64_t rejections_ = 0;
};

}  // namespace kroute
