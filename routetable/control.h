// The control file: one page holding the current generation, shared by the publisher (writes) and every
// reader (maps it read-only and loads the generation with acquire semantics on each check).
#pragma once

#include <cstdint>
#include <string>

namespace kroute {

inline constexpr std::uint64_t kControlMagic = 0x4c52544e4f434b52ULL;  // "RKCONTRL"
inline constexpr std::size_t kControlSize = 4096;
inline constexpr const char* kControlName = "control";
inline constexpr const char* kSnapshotPrefix = "table.";

struct ControlPage {
  std::uint64_t magic;       // stored last (release) when the page is first made, so readers see a whole page
  std::uint64_t generation;  // 0: nothing published yet; accessed only with __atomic builtins
};

inline std::uint64_t load_generation(const ControlPage* page) noexcept {
  return __atomic_load_n(&page->generation, __ATOMIC_ACQUIRE);
}

inline std::string snapshot_path(const std::string& dir, std::uint64_t generation) {
  return dir + "/" + kSnapshotPrefix + std::to_string(generation);
}

}  // namespace kroute
