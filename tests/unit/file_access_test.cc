// The mode and group flags of kroute-agent and kroute-table build: one parser, each program's policy.
#include <doctest.h>
#include <grp.h>
#include <unistd.h>

#include <string>

#include "file_access.h"

using kroute::parse_file_mode;
using kroute::parse_group;

TEST_CASE("file modes: octal permission bits only") {
  mode_t mode = 0;
  std::string error;
  CHECK(parse_file_mode("0640", "--mode", true, mode, error));
  CHECK(mode == 0640);
  CHECK(parse_file_mode("600", "--mode", true, mode, error));
  CHECK(mode == 0600);
  CHECK(parse_file_mode("0644", "--mode", true, mode, error));
  CHECK(mode == 0644);
  for (const char* bad : {"", "0x", "0x644", "0648", "-1", " 640", "+640", "04755", "1000", "77777777777777777777",
                          "0640 "}) {
    CAPTURE(bad);
    error.clear();
    CHECK_FALSE(parse_file_mode(bad, "--mode", true, mode, error));
    CHECK(error.find("--mode must be octal permission bits") != std::string::npos);
  }
}

TEST_CASE("file modes: the agent's policy refuses bits for others, kroute-table's does not") {
  mode_t mode = 0;
  std::string error;
  CHECK_FALSE(parse_file_mode("0644", "--table-mode", false, mode, error));
  CHECK(error.find("--table-mode 0644 lets every user read") != std::string::npos);
  CHECK_FALSE(parse_file_mode("0601", "--table-mode", false, mode, error));
  CHECK(parse_file_mode("0640", "--table-mode", false, mode, error));
  CHECK(mode == 0640);
  CHECK(parse_file_mode("0604", "--mode", true, mode, error));
  CHECK(mode == 0604);
}

TEST_CASE("groups: numbers, names, and garbage refused") {
  gid_t gid = 0;
  std::string error;
  CHECK(parse_group("0", "--group", gid, error));
  CHECK(gid == 0);
  CHECK(parse_group("4294967294", "--group", gid, error));
  CHECK(gid == 4294967294u);
  if (const group* root = getgrgid(0)) {
    gid = 7;
    CHECK(parse_group(root->gr_name, "--group", gid, error));
    CHECK(gid == 0);
  }
  for (const char* bad : {"", "0x", "9999999999", "4294967295", "99999999999999999999999", "no-such-group-here"}) {
    CAPTURE(bad);
    error.clear();
    CHECK_FALSE(parse_group(bad, "--table-group", gid, error));
    CHECK(error.starts_with("--table-group"));
  }
}
