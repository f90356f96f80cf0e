#include "file_access.h"

#include <grp.h>

#include <cerrno>
#include <cstdint>
#include <vector>

namespace kroute {

namespace {

std::string quoted(std::string_view text) { return "\"" + std::string(text) + "\""; }

}  // namespace

bool parse_file_mode(std::string_view text, std::string_view flag, bool others_may_read, mode_t& mode,
                     std::string& error) {
  unsigned value = 0;
  bool octal = !text.empty();
  for (char c : text) {
    if (c < '0' || c > '7' || value > 0777) {
      octal = false;
      break;
    }
    value = value * 8 + static_cast<unsigned>(c - '0');
  }
  if (!octal || value > 0777) {
    error = std::string(flag) + " must be octal permission bits such as 0640, not " + quoted(text);
    return false;
  }
  if (!others_may_read && (value & 0007) != 0) {
    error = std::string(flag) + " " + std::string(text) +
            " lets every user read the private keys in the table; use 0640 and a group for the readers";
    return false;
  }
  mode = static_cast<mode_t>(value);
  return true;
}

bool parse_group(std::string_view text, std::string_view flag, gid_t& gid, std::string& error) {
  if (text.empty()) {
    error = std::string(flag) + " must name a group or give its number";
    return false;
  }
  if (text.find_first_not_of("0123456789") == std::string_view::npos) {
    std::uint64_t number = 0;
    for (char c : text) {
      number = number * 10 + static_cast<unsigned>(c - '0');
      if (number >= static_cast<gid_t>(-1)) {
        error = std::string(flag) + " " + quoted(text) + " is not a group number (at most 4294967294)";
        return false;
      }
    }
    gid = static_cast<gid_t>(number);
    return true;
  }
  const std::string name(text);
  struct group entry {};
  struct group* found = nullptr;
  std::vector<char> buffer(16384);
  int status = 0;
  while ((status = getgrnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found)) == ERANGE &&
         buffer.size() < (1u << 24))
    buffer.resize(buffer.size() * 4);
  if (status != 0 || found == nullptr) {
    error = std::string(flag) + " " + quoted(text) + ": no such group";
    return false;
  }
  gid = found->gr_gid;
  return true;
}

}  // namespace kroute
