#include <doctest.h>

#include <string>

#include "validate.h"

using namespace kroute::agent;

TEST_CASE("names: RFC 1123 labels and subdomains as the API server checks them") {
  CHECK(check_dns_label("web") == "");
  CHECK(check_dns_label("1st-web") == "");
  CHECK(check_dns_label(std::string(63, 'a')) == "");
  CHECK(check_dns_label(std::string(64, 'a')) != "");
  CHECK(check_dns_label("") != "");
  CHECK(check_dns_label("Web") != "");
  CHECK(check_dns_label("web-") != "");
  CHECK(check_dns_label("-web") != "");
  CHECK(check_dns_label("a.b") != "");
  CHECK(check_dns_label("a_b") != "");
  CHECK(check_dns_subdomain("web.example-1.com") == "");
  CHECK(check_dns_subdomain("a..b") != "");
  CHECK(check_dns_subdomain(".a") != "");
  CHECK(check_dns_subdomain("a.") != "");
  CHECK(check_dns_subdomain(std::string(254, 'a')) != "");
  // What reaches a message is printable: the line break of the name is shown escaped.
  const std::string problem = check_dns_subdomain("bad\r\nname");
  CHECK(problem.find("bad\\x0d\\x0aname") != std::string::npos);
  CHECK(problem.find('\n') == std::string::npos);
}

TEST_CASE("port names: IANA service names") {
  CHECK(check_port_name("http") == "");
  CHECK(check_port_name("h2c-9") == "");
  CHECK(check_port_name("a-very-long-name") != "");  // 16 characters
  CHECK(check_port_name("8080") != "");              // needs a letter
  CHECK(check_port_name("-http") != "");
  CHECK(check_port_name("ht--tp") != "");
  CHECK(check_port_name("HTTP") != "");
  CHECK(check_port_name("") != "");
}

TEST_CASE("rule paths: what nginx can ever compare with a request path") {
  for (const char* good : {"", "/", "/a", "/a/", "/a/b.c", "/%00", "/%2e%2e", "/a?b", "/caf\xc3\xa9", "/..a", "/a.."}) {
    CAPTURE(good);
    CHECK(check_rule_path(good) == "");
  }
  CHECK(check_rule_path("a") == "path must start with '/'");
  CHECK(check_rule_path("/" + std::string(4096, 'a')) == "path is longer than 4096 characters");
  for (const char* control : {"/a b", "/a\tb", "/a\r\nb", "/a\x7f", "/\x1b[31m"}) {
    CAPTURE(control);
    CHECK(check_rule_path(control) == "path must not contain spaces or control characters");
  }
  CHECK(check_rule_path(std::string("/nul\0x", 6)) == "path must not contain spaces or control characters");
  for (const char* bytes : {"/\xff", "/\xc3\x28", "/\xed\xb0\x80", "/\xc0\xaf", "/\xf4\x90\x80\x80", "/\xe2\x82"}) {
    CAPTURE(bytes);
    CHECK(check_rule_path(bytes) == "path is not valid UTF-8");
  }
  for (const char* never : {"//", "/a//b", "/a/../b", "/a/./b", "/..", "/.", "/a/.."}) {
    CAPTURE(never);
    CHECK(check_rule_path(never).find("could never match") != std::string::npos);
  }
}

TEST_CASE("header values: no control characters, valid UTF-8") {
  CHECK(check_header_value("shop/web") == "");
  CHECK(check_header_value("caf\xc3\xa9") == "");
  CHECK(check_header_value("") == "");
  for (const char* bad : {"a\rb", "a\nb", "a\r\nSet-Cookie: x=1", "tab\there", "del\x7f"}) {
    CAPTURE(bad);
    CHECK(check_header_value(bad).find("control character") != std::string::npos);
  }
  CHECK(check_header_value(std::string("a\0b", 3)).find("control character") != std::string::npos);
  CHECK(check_header_value("\xff").find("not valid UTF-8") != std::string::npos);
}

TEST_CASE("printable: escapes what is not printable UTF-8 and bounds the length") {
  CHECK(printable("plain /path") == "plain /path");
  CHECK(printable("caf\xc3\xa9") == "caf\xc3\xa9");
  CHECK(printable("a\r\nb") == "a\\x0d\\x0ab");
  CHECK(printable(std::string("\0", 1)) == "\\x00");
  CHECK(printable("\xff\xc3") == "\\xff\\xc3");
  CHECK(printable("back\\slash") == "back\\\\slash");
  CHECK(printable(std::string(1 << 20, 'x'), 10) == "xxxxxxxxxx...");
  // A multi-byte character cut by the limit is dropped whole.
  CHECK(printable("ab\xc3\xa9", 3) == "ab...");
  CHECK(is_valid_utf8(printable("\xff\xfe\x80 \xe2\x82")));
}

TEST_CASE("names and hosts: one label rule, a label never starts or ends with '-'") {
  for (const char* bad : {"-a.com", "a-.com", "a.-b.com"}) {
    CAPTURE(bad);
    CHECK(check_dns_subdomain(bad).find("must start and end each label with a letter or digit") != std::string::npos);
  }
  CHECK(check_dns_label("a-").find("must start and end each label") != std::string::npos);
}
