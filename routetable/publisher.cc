#include "publisher.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <thread>
#include <vector>

#include "format.h"

namespace kroute {

namespace {

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

// Generations of the table.N files in `dir`; removes leftover temporary files (of snapshots and of
// control files) on the way.
std::vector<std::uint64_t> list_generations(const std::string& dir, bool remove_temporaries) {
  std::vector<std::uint64_t> generations;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return generations;
  while (const dirent* entry = readdir(d)) {
    std::string_view name = entry->d_name;
    if (name.ends_with(".tmp") && (name.starts_with(kSnapshotPrefix) || name.starts_with(kControlName))) {
      if (remove_temporaries) unlink((dir + "/" + entry->d_name).c_str());
      continue;
    }
    if (!name.starts_with(kSnapshotPrefix)) continue;
    name.remove_prefix(std::strlen(kSnapshotPrefix));
    if (name.empty() || name.size() > 19 || name.find_first_not_of("0123456789") != std::string_view::npos) continue;
    generations.push_back(std::stoull(std::string(name)));
  }
  closedir(d);
  std::sort(generations.begin(), generations.end());
  return generations;
}

bool write_all(int fd, const std::byte* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

struct MappedControl {
  ControlPage* page = nullptr;
  dev_t device = 0;
  ino_t inode = 0;
};

enum class Found { kMapped, kAbsent, kUnfinished, kError };

// Maps the control file at `path` when it is a whole kroute control file.
Found map_control(const std::string& path, MappedControl& out, std::string& error) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Found::kAbsent;
    error = errno_text("cannot open control file " + path);
    return Found::kError;
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    error = errno_text("cannot stat control file " + path);
    close(fd);
    return Found::kError;
  }
  // Shorter than a page: made by an older publisher that died before sizing it. No reader maps it.
  if (st.st_size < static_cast<off_t>(kControlSize)) {
    close(fd);
    return Found::kUnfinished;
  }
  void* mapped = mmap(nullptr, kControlSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (mapped == MAP_FAILED) {
    error = errno_text("cannot map control file " + path);
    return Found::kError;
  }
  auto* page = static_cast<ControlPage*>(mapped);
  const std::uint64_t magic = __atomic_load_n(&page->magic, __ATOMIC_ACQUIRE);
  if (magic == kControlMagic) {
    out = {page, st.st_dev, st.st_ino};
    return Found::kMapped;
  }
  munmap(mapped, kControlSize);
  if (magic == 0) return Found::kUnfinished;  // readers ignore a page without the magic
  error = "control file " + path + " is not a kroute control file";
  return Found::kError;
}

// Makes a control file: a whole page (magic, generation 0) written under a temporary name, then put in
// place. Readers never see part of a page, and the page is allocated by write(), which fails cleanly on
// a full tmpfs, not by a store through a mapping, which would raise SIGBUS there.
bool make_control(const std::string& dir, bool replace, std::string& error) {
  const std::string path = dir + "/" + kControlName;
  const std::string temp = path + "." + std::to_string(getpid()) + ".tmp";
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    error = errno_text("cannot create " + temp);
    return false;
  }
  std::vector<std::byte> page(kControlSize);
  const ControlPage header{kControlMagic, 0};
  std::memcpy(page.data(), &header, sizeof header);
  // Only a generation number: every reader may see it, whatever the umask.
  const bool written = fchmod(fd, 0644) == 0 && write_all(fd, page.data(), page.size());
  const int write_errno = errno;
  close(fd);
  if (!written) {
    unlink(temp.c_str());
    errno = write_errno;
    error = errno_text("cannot write " + temp);
    return false;
  }
  // link() leaves a control file someone else made meanwhile alone; rename() replaces an unfinished one.
  const int placed = replace ? rename(temp.c_str(), path.c_str()) : link(temp.c_str(), path.c_str());
  const int place_errno = errno;
  unlink(temp.c_str());
  if (placed != 0 && !(place_errno == EEXIST && !replace)) {
    errno = place_errno;
    error = errno_text("cannot put control file in place: " + path);
    return false;
  }
  return true;
}

// The directory's control file, made when there is none yet.
bool attach_control(const std::string& dir, MappedControl& out, std::string& error) {
  const std::string path = dir + "/" + kControlName;
  for (int attempt = 0; attempt < 3; ++attempt) {
    const Found found = map_control(path, out, error);
    if (found == Found::kMapped) return true;
    if (found == Found::kError) return false;
    if (!make_control(dir, found == Found::kUnfinished, error)) return false;
  }
  error = "control file " + path + " keeps changing while it is opened";
  return false;
}

bool same_file(const struct stat& st, dev_t device, ino_t inode) { return st.st_dev == device && st.st_ino == inode; }

// stat() failed because the path (or a directory on it) does not exist.
bool absent() { return errno == ENOENT || errno == ENOTDIR; }

// The directory's mode for snapshots of `file_mode`: whoever may read them may list and enter it.
mode_t directory_mode(mode_t file_mode) {
  return 0700 | ((file_mode & 0040) != 0 ? 0050 : 0) | ((file_mode & 0004) != 0 ? 0005 : 0);
}

// Snapshots hold private keys, so when they are not for others, neither is the directory they are in:
// a directory of ours gets the snapshots' group and loses the bits for others (past the umask, for one
// made by mkdir). Only when its group is the snapshots' group, so the readers can still enter it. A
// directory we may not change (a pod's emptyDir, made by the kubelet) keeps its mode; the files' own
// modes protect the keys there.
void close_to_others(const PublisherOptions& options, struct stat& dir) {
  if ((options.file_mode & 0007) != 0 || dir.st_uid != geteuid()) return;
  if (options.group != static_cast<gid_t>(-1) && dir.st_gid != options.group) {
    if (chown(options.dir.c_str(), static_cast<uid_t>(-1), options.group) != 0) return;
    dir.st_gid = options.group;
  }
  const mode_t wanted = (dir.st_mode & 07770) | directory_mode(options.file_mode);
  if (wanted != (dir.st_mode & 07777) && chmod(options.dir.c_str(), wanted) == 0) dir.st_mode = S_IFDIR | wanted;
}

// Opens `dir` and takes an exclusive flock on it, waiting up to `wait` for another publisher to let go.
// The lock belongs to the open file description: it goes with close() or the process, never outlives a
// crashed publisher, and conflicts with a second open in the same process too. Returns the fd, or -1.
int hold_directory(const std::string& dir, std::chrono::milliseconds wait, std::string& error) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    error = errno_text("cannot open table directory " + dir);
    return -1;
  }
  const auto deadline = std::chrono::steady_clock::now() + wait;
  while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EINTR) continue;
    if (errno != EWOULDBLOCK) {
      error = errno_text("cannot lock table directory " + dir);
    } else if (std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    } else {
      error = "table directory " + dir +
              " is held by another publisher (a kroute-agent or kroute-table build on the same directory); "
              "each publisher needs a directory of its own";
    }
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

std::unique_ptr<Publisher> Publisher::open(const PublisherOptions& options, std::string& error) {
  if (options.keep < 1) {
    error = "keep must be at least 1";
    return nullptr;
  }
  if (mkdir(options.dir.c_str(), directory_mode(options.file_mode)) != 0 && errno != EEXIST) {
    error = errno_text("cannot create table directory " + options.dir);
    return nullptr;
  }
  struct stat dir {};
  if (stat(options.dir.c_str(), &dir) != 0) {
    error = errno_text("cannot stat table directory " + options.dir);
    return nullptr;
  }
  if (!S_ISDIR(dir.st_mode)) {
    error = "table directory " + options.dir + " is not a directory";
    return nullptr;
  }
  const int dir_fd = hold_directory(options.dir, options.wait_for_directory, error);
  if (dir_fd < 0) return nullptr;
  close_to_others(options, dir);
  MappedControl control;
  if (!attach_control(options.dir, control, error)) {
    close(dir_fd);
    return nullptr;
  }
  const std::vector<std::uint64_t> existing = list_generations(options.dir, true);
  const std::uint64_t newest = existing.empty() ? 0 : existing.back();
  const std::uint64_t next = std::max(newest, load_generation(control.page)) + 1;
  std::unique_ptr<Publisher> publisher(new Publisher(options, dir_fd, control.page, control.device, control.inode,
                                                     dir.st_mode & 07777, dir.st_gid, next));
  // A publisher killed between a rename and its prune left one snapshot too many.
  publisher->prune(options.keep);
  return publisher;
}

Publisher::Publisher(PublisherOptions options, int dir_fd, ControlPage* control, dev_t device, ino_t inode,
                     mode_t dir_mode, gid_t dir_group, std::uint64_t next)
    : options_(std::move(options)),
      dir_fd_(dir_fd),
      control_(control),
      control_device_(device),
      control_inode_(inode),
      dir_mode_(dir_mode),
      dir_group_(dir_group),
      next_generation_(next) {}

Publisher::~Publisher() {
  munmap(control_, kControlSize);
  close(dir_fd_);
}

// A directory made again is a new inode that nobody holds yet: hold it before writing into it.
bool Publisher::hold_directory_again(std::string& error) {
  struct stat held {};
  struct stat now {};
  if (fstat(dir_fd_, &held) == 0 && stat(options_.dir.c_str(), &now) == 0 && same_file(now, held.st_dev, held.st_ino))
    return true;
  const int fd = hold_directory(options_.dir, std::chrono::milliseconds(0), error);
  if (fd < 0) return false;
  close(dir_fd_);
  dir_fd_ = fd;
  return true;
}

bool Publisher::control_in_place() const {
  struct stat st {};
  const std::string path = options_.dir + "/" + kControlName;
  // Any other failure (no permission, say) is not a removal: the write that follows reports it.
  if (stat(path.c_str(), &st) != 0) return !absent();
  return same_file(st, control_device_, control_inode_);
}

// The directory (with its old mode and group) and a control file again, after someone removed or
// replaced them. Generations go on from where they were: readers follow the new control file (they
// notice it by its inode) and never see a generation number go back.
bool Publisher::make_again(std::string& error) {
  if (mkdir(options_.dir.c_str(), dir_mode_) == 0) {
    // Past the umask, and the group readers may rely on; a publisher that may not set them still publishes.
    (void)chmod(options_.dir.c_str(), dir_mode_);
    (void)chown(options_.dir.c_str(), static_cast<uid_t>(-1), dir_group_);
  } else if (errno != EEXIST) {
    error = errno_text("cannot make the table directory " + options_.dir + " again");
    return false;
  }
  if (!hold_directory_again(error)) return false;
  MappedControl control;
  if (!attach_control(options_.dir, control, error)) return false;
  munmap(control_, kControlSize);
  control_ = control.page;
  control_device_ = control.device;
  control_inode_ = control.inode;
  const std::vector<std::uint64_t> existing = list_generations(options_.dir, false);
  const std::uint64_t newest = existing.empty() ? 0 : existing.back();
  next_generation_ = std::max({next_generation_, newest + 1, load_generation(control_) + 1});
  return true;
}

PublishResult Publisher::publish(std::span<std::byte> snapshot) {
  if (snapshot.size() < sizeof(format::Header)) return {0, "snapshot is smaller than its header"};
  if (!control_in_place()) {
    std::string error;
    if (!make_again(error)) return {0, error};
  }
  const std::uint64_t generation = next_generation_;
  std::memcpy(snapshot.data() + offsetof(format::Header, generation), &generation, sizeof generation);

  const std::string final_path = snapshot_path(options_.dir, generation);
  const std::string temp_path = final_path + ".tmp";
  std::string error;
  bool made_room = false;
  if (!write_file(temp_path, snapshot, error) && (errno == ENOSPC || errno == EDQUOT)) {
    // A full directory (a memory-backed volume at its size limit): the older snapshots are there only for
    // readers that have not moved on yet, and those keep what they have mapped. Readers open the current
    // one by the control file's generation: it stays.
    prune(1);
    made_room = true;
    if (write_file(temp_path, snapshot, error)) error.clear();
  }
  if (!error.empty()) return {0, error, made_room};
  if (rename(temp_path.c_str(), final_path.c_str()) != 0) {
    const PublishResult failed{0, errno_text("cannot rename " + temp_path)};
    unlink(temp_path.c_str());
    return failed;
  }
  // Readers open table.N only after seeing N here, so the file is complete by then.
  __atomic_store_n(&control_->generation, generation, __ATOMIC_RELEASE);
  ++next_generation_;
  prune(options_.keep);
  return {generation, {}, made_room};
}

// Writes `snapshot` to a new file at `path`; on failure removes it, sets `error` and leaves errno as the
// failing call set it.
bool Publisher::write_file(const std::string& path, std::span<const std::byte> snapshot, std::string& error) const {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, options_.file_mode);
  if (fd < 0) {
    const int saved_errno = errno;
    error = errno_text("cannot create " + path);
    errno = saved_errno;
    return false;
  }
  // Mode and group before any byte is written: a snapshot holding private keys is never readable by
  // more than its final readers, not even while it is written.
  const bool written = (options_.group == static_cast<gid_t>(-1) || fchown(fd, static_cast<uid_t>(-1), options_.group) == 0) &&
                       fchmod(fd, options_.file_mode) == 0 && write_all(fd, snapshot.data(), snapshot.size());
  const int saved_errno = errno;
  close(fd);
  if (written) return true;
  unlink(path.c_str());
  error = "cannot write " + path + ": " + std::strerror(saved_errno);
  errno = saved_errno;
  return false;
}

std::string Publisher::missing() const {
  struct stat st {};
  if (stat(options_.dir.c_str(), &st) != 0) {
    return absent() ? "table directory " + options_.dir + " is gone" : std::string();
  }
  const std::string control_path = options_.dir + "/" + kControlName;
  if (stat(control_path.c_str(), &st) != 0) return absent() ? "control file " + control_path + " is gone" : std::string();
  if (!same_file(st, control_device_, control_inode_)) return "control file " + control_path + " was replaced";
  const std::uint64_t current = generation();
  if (current == 0) return {};
  const std::string current_path = snapshot_path(options_.dir, current);
  if (stat(current_path.c_str(), &st) != 0 && absent()) return "snapshot " + current_path + " is gone";
  return {};
}

// Unlinked snapshots stay valid for workers that still map them; the kernel frees them after the last unmap.
void Publisher::prune(std::size_t keep) {
  const std::vector<std::uint64_t> generations = list_generations(options_.dir, false);
  if (generations.size() <= keep) return;
  for (std::size_t i = 0; i + keep < generations.size(); ++i)
    unlink(snapshot_path(options_.dir, generations[i]).c_str());
}

bool same_routes(std::span<const std::byte> a, std::span<const std::byte> b) noexcept {
  if (a.size() != b.size() || a.size() < sizeof(format::Header)) return false;
  format::Header ha;
  format::Header hb;
  std::memcpy(&ha, a.data(), sizeof ha);
  std::memcpy(&hb, b.data(), sizeof hb);
  ha.generation = hb.generation = 0;
  ha.built_unix_ms = hb.built_unix_ms = 0;
  return std::memcmp(&ha, &hb, sizeof ha) == 0 &&
         std::memcmp(a.data() + sizeof ha, b.data() + sizeof hb, a.size() - sizeof ha) == 0;
}

}  // namespace kroute
