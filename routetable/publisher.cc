#include "publisher.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <vector>

#include "format.h"

namespace kroute {

namespace {

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

// Generations of the table.N files in `dir`; removes leftover temporary files on the way.
std::vector<std::uint64_t> list_generations(const std::string& dir, bool remove_temporaries) {
  std::vector<std::uint64_t> generations;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return generations;
  while (const dirent* entry = readdir(d)) {
    std::string_view name = entry->d_name;
    if (!name.starts_with(kSnapshotPrefix)) continue;
    name.remove_prefix(std::strlen(kSnapshotPrefix));
    if (name.ends_with(".tmp")) {
      if (remove_temporaries) unlink((dir + "/" + entry->d_name).c_str());
      continue;
    }
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

}  // namespace

std::unique_ptr<Publisher> Publisher::open(const PublisherOptions& options, std::string& error) {
  if (options.keep < 1) {
    error = "keep must be at least 1";
    return nullptr;
  }
  if (mkdir(options.dir.c_str(), 0755) != 0 && errno != EEXIST) {
    error = errno_text("cannot create table directory " + options.dir);
    return nullptr;
  }
  const std::string control_path = options.dir + "/" + kControlName;
  // The control file is created once and never replaced: readers keep it mapped for their lifetime.
  const int fd = ::open(control_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    error = errno_text("cannot open control file " + control_path);
    return nullptr;
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || (st.st_size < static_cast<off_t>(kControlSize) && ftruncate(fd, kControlSize) != 0)) {
    error = errno_text("cannot size control file " + control_path);
    close(fd);
    return nullptr;
  }
  void* mapped = mmap(nullptr, kControlSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (mapped == MAP_FAILED) {
    error = errno_text("cannot map control file " + control_path);
    return nullptr;
  }
  auto* control = static_cast<ControlPage*>(mapped);
  const std::uint64_t magic = __atomic_load_n(&control->magic, __ATOMIC_ACQUIRE);
  if (magic == 0) {
    __atomic_store_n(&control->magic, kControlMagic, __ATOMIC_RELEASE);
  } else if (magic != kControlMagic) {
    munmap(mapped, kControlSize);
    error = "control file " + control_path + " is not a kroute control file";
    return nullptr;
  }
  const std::vector<std::uint64_t> existing = list_generations(options.dir, true);
  const std::uint64_t newest = existing.empty() ? 0 : existing.back();
  const std::uint64_t next = std::max(newest, load_generation(control)) + 1;
  return std::unique_ptr<Publisher>(new Publisher(options, control, next));
}

Publisher::Publisher(PublisherOptions options, ControlPage* control, std::uint64_t next)
    : options_(std::move(options)), control_(control), next_generation_(next) {}

Publisher::~Publisher() { munmap(control_, kControlSize); }

PublishResult Publisher::publish(std::span<std::byte> snapshot) {
  if (snapshot.size() < sizeof(format::Header)) return {0, "snapshot is smaller than its header"};
  const std::uint64_t generation = next_generation_;
  std::memcpy(snapshot.data() + offsetof(format::Header, generation), &generation, sizeof generation);

  const std::string final_path = snapshot_path(options_.dir, generation);
  const std::string temp_path = final_path + ".tmp";
  const int fd = ::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, options_.file_mode);
  if (fd < 0) return {0, errno_text("cannot create " + temp_path)};
  // Mode and group before any byte is written: a snapshot holding private keys is never readable by
  // more than its final readers, not even while it is written.
  const bool written = (options_.group == static_cast<gid_t>(-1) || fchown(fd, static_cast<uid_t>(-1), options_.group) == 0) &&
                       fchmod(fd, options_.file_mode) == 0 && write_all(fd, snapshot.data(), snapshot.size());
  const int saved_errno = errno;
  close(fd);
  if (!written) {
    unlink(temp_path.c_str());
    errno = saved_errno;
    return {0, errno_text("cannot write " + temp_path)};
  }
  if (rename(temp_path.c_str(), final_path.c_str()) != 0) {
    const PublishResult failed{0, errno_text("cannot rename " + temp_path)};
    unlink(temp_path.c_str());
    return failed;
  }
  // Readers open table.N only after seeing N here, so the file is complete by then.
  __atomic_store_n(&control_->generation, generation, __ATOMIC_RELEASE);
  ++next_generation_;
  prune();
  return {generation, {}};
}

// Unlinked snapshots stay valid for workers that still map them; the kernel frees them after the last unmap.
void Publisher::prune() {
  const std::vector<std::uint64_t> generations = list_generations(options_.dir, false);
  if (generations.size() <= options_.keep) return;
  for (std::size_t i = 0; i + options_.keep < generations.size(); ++i)
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
