// The access policies' shared parts: CIDR lists as the agent packs them and the module matches them
// (kroute_cidr_match, module/kroute_table.h), and the kDeny record access annotations fail closed to.
#include <arpa/inet.h>
#include <doctest.h>

#include <cstring>
#include <string>

#include "../../module/kroute_table.h"
#include "policy/cidr.h"
#include "policy/deny.h"
#include "policy/kinds.h"

using namespace kroute;

namespace {

bool matches(const std::string& packed, const char* address) {
  sockaddr_storage ss{};
  if (std::strchr(address, ':') != nullptr) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
    in6->sin6_family = AF_INET6;
    REQUIRE(inet_pton(AF_INET6, address, &in6->sin6_addr) == 1);
  } else {
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);
    in->sin_family = AF_INET;
    REQUIRE(inet_pton(AF_INET, address, &in->sin_addr) == 1);
  }
  return kroute_cidr_match(reinterpret_cast<const unsigned char*>(packed.data()), packed.size(),
                           reinterpret_cast<const sockaddr*>(&ss)) == 1;
}

}  // namespace

TEST_CASE("CIDR lists: IPv4 and IPv6 ranges, bare addresses, host bits cleared") {
  std::string packed;
  REQUIRE(policy::parse_cidr_list(" 10.1.0.0/16, 192.168.1.7 ,, 2001:db8::/32, 172.16.5.9/12", packed) == "");
  CHECK(packed.size() == 4 * policy::kCidrSize);
  CHECK(policy::check_cidr_list(packed) == "");
  CHECK(policy::cidr_list_text(packed) == "10.1.0.0/16,192.168.1.7/32,2001:db8::/32,172.16.0.0/12");
  CHECK(matches(packed, "10.1.255.3"));
  CHECK_FALSE(matches(packed, "10.2.0.1"));
  CHECK(matches(packed, "192.168.1.7"));
  CHECK_FALSE(matches(packed, "192.168.1.8"));
  CHECK(matches(packed, "172.31.255.255"));
  CHECK_FALSE(matches(packed, "172.32.0.0"));
  CHECK(matches(packed, "2001:db8:ffff::1"));
  CHECK_FALSE(matches(packed, "2001:db9::1"));
  CHECK(matches(packed, "::ffff:10.1.2.3"));  // an IPv4 client on a dual-stack socket
  std::string any;
  REQUIRE(policy::parse_cidr_list("0.0.0.0/0", any) == "");
  CHECK(matches(any, "203.0.113.9"));
  CHECK_FALSE(matches(any, "2001:db8::1"));
  std::string odd;
  REQUIRE(policy::parse_cidr_list("10.0.0.0/9", odd) == "");  // a prefix inside a byte
  CHECK(matches(odd, "10.127.0.1"));
  CHECK_FALSE(matches(odd, "10.128.0.1"));
}

TEST_CASE("CIDR lists: what is refused, naming the entry") {
  std::string packed = "kept";
  CHECK(policy::parse_cidr_list("10.0.0.0/8,10.0.0.0/33", packed).find("10.0.0.0/33") != std::string::npos);
  CHECK(policy::parse_cidr_list("10.0.0.256", packed).find("not an IP address") != std::string::npos);
  CHECK(policy::parse_cidr_list("10.0.0.0/", packed) != "");
  CHECK(policy::parse_cidr_list("10.0.0.0/8x", packed) != "");
  CHECK(policy::parse_cidr_list("example.com", packed) != "");
  CHECK(policy::parse_cidr_list("::/129", packed) != "");
  CHECK(packed == "kept");  // nothing appended on failure
  CHECK(policy::check_cidr_list(std::string(17, '\4')) != "");
  CHECK(policy::check_cidr_list(std::string("\x05\x08") + std::string(16, '\0')) != "");
  CHECK(policy::check_cidr_list(std::string("\x04\x21") + std::string(16, '\0')) != "");
}

TEST_CASE("deny records: a status and a printable reason") {
  CHECK(policy::check_record(policy::deny("annotation x: bad"), false) == "");
  PolicyRecord bad = policy::deny("line\nbreak");
  CHECK(policy::check_record(bad, false) != "");
  PolicyRecord code = policy::deny("why");
  code.code = 200;
  CHECK(policy::check_record(code, false) != "");
}
