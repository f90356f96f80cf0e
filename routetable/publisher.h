// Publisher: puts a built snapshot in place (temporary name, rename, then the new generation in the
// control file) and keeps only the newest few snapshots in the directory. A directory or control file
// that was removed or replaced is made again on the next publish, so readers find the table there.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "control.h"

namespace kroute {

struct PublisherOptions {
  std::string dir;
  std::size_t keep = 3;     // snapshots kept on disk, the current one included
  mode_t file_mode = 0644;  // readers are nginx workers, usually another user
  gid_t group = static_cast<gid_t>(-1);  // group of the snapshot files; -1: the publisher's own
  // How long open() waits for another publisher to let go of the directory; 0: fail at once.
  std::chrono::milliseconds wait_for_directory{0};
};

struct PublishResult {
  std::uint64_t generation = 0;  // 0 on failure
  std::string error;
  bool made_room = false;  // the directory was full: all snapshots but the current one were removed first
};

class Publisher {
 public:
  // Opens (creating if needed) the directory and its control file. On failure returns null and sets `error`.
  // The publisher holds the directory (an exclusive flock on it) for its lifetime: a second publisher on
  // the same directory would take the same generation numbers and overwrite this one's temporary files, so
  // it fails here. Readers take no lock.
  static std::unique_ptr<Publisher> open(const PublisherOptions& options, std::string& error);
  ~Publisher();
  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;

  // Stamps the next generation into `snapshot` (built by build_snapshot) and publishes it. When the
  // directory or the control file is no longer the one this publisher made, it is made again first
  // (the directory with the mode and group it had). When the directory is full (ENOSPC, EDQUOT), every
  // snapshot but the current one is removed and the write tried once more.
  PublishResult publish(std::span<std::byte> snapshot);

  std::uint64_t generation() const noexcept { return load_generation(control_); }

  // Why readers that start now would not find the current table: the directory or the control file
  // is gone or was replaced, or the current snapshot file is gone. Empty when everything is in place.
  // Two stat calls; for a timer, not for every publish.
  std::string missing() const;

 private:
  Publisher(PublisherOptions options, int dir_fd, ControlPage* control, dev_t device, ino_t inode, mode_t dir_mode,
            gid_t dir_group, std::uint64_t next);
  bool hold_directory_again(std::string& error);
  bool control_in_place() const;
  bool make_again(std::string& error);
  void prune(std::size_t keep);
  bool write_file(const std::string& path, std::span<const std::byte> snapshot, std::string& error) const;

  PublisherOptions options_;
  int dir_fd_;  // the directory, flocked while this publisher lives
  ControlPage* control_;
  dev_t control_device_;  // the control file this publisher maps, to notice one removed or replaced
  ino_t control_inode_;
  mode_t dir_mode_;   // what the directory had when opened, for making it again
  gid_t dir_group_;
  std::uint64_t next_generation_;
};

// Whether two snapshots describe the same routes (everything but generation and build time).
bool same_routes(std::span<const std::byte> a, std::span<const std::byte> b) noexcept;

}  // namespace kroute
