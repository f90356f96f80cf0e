// Basic authentication and CORS records (routetable/policy/basic_auth.h, cors.h): the htpasswd reading
// and hash checks the agent applies, the record checks the builder applies, and the C origin matcher the
// CORS module uses (kroute_cors_origin_match, module/kroute_table.h).
#include <doctest.h>

#include <string>

#include "../../module/kroute_table.h"
#include "policy/basic_auth.h"
#include "policy/cors.h"
#include "policy/kinds.h"

using namespace kroute;

namespace {

bool origin_matches(const std::string& list, const std::string& origin, bool any_depth = false) {
  return kroute_cors_origin_match(reinterpret_cast<const unsigned char*>(list.data()), list.size(),
                                  reinterpret_cast<const unsigned char*>(origin.data()), origin.size(),
                                  any_depth ? 1 : 0) == 1;
}

}  // namespace

TEST_CASE("password hashes: the formats nginx's ngx_crypt verifies, well-formed") {
  for (const char* good : {
           "$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/",
           "$2b$04$aaaaaaaaaaaaaaaaaaaaaOqgHHdKuqfi7AP.TwHblFR2ASFq1GtMe",
           "$2y$10$aaaaaaaaaaaaaaaaaaaaaOqgHHdKuqfi7AP.TwHblFR2ASFq1GtMe",
           "$2a$31$aaaaaaaaaaaaaaaaaaaaaOqgHHdKuqfi7AP.TwHblFR2ASFq1GtMe",
           "$1$abc$iCQ2D3nhptRYi27fDYv2s1",
           "$5$abc$qsg6EHbUzHQzF1POlD7zUwBINSELQxypPaeDcZe6vH0",
           "$5$rounds=5000$abc$qsg6EHbUzHQzF1POlD7zUwBINSELQxypPaeDcZe6vH0",
           "$6$abcdefgh$ltjgWl6579NluT/Vi1nwEvcil.G5Nbc4NiXZaNGStk8PSwGfQv72N2CKPPrVACtLtip/cZ/1GM/O6IND4WQhG.",
           "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=",
           "{SSHA}gVK8WC9YyFT1gMsQHTGCgT3sSv5zYWx0",
           "{PLAIN}secret",
       }) {
    CAPTURE(good);
    CHECK(policy::check_password_hash(good) == "");
  }
  for (const char* bad : {
           "", "secret", "abcdefghijklm",  // plain text, DES crypt
           "$apr1$abcdefgh$h9FWgUz3n9Yxyl",  // short
           "$apr1$abcdefghi$h9FWgUz3n9YxylKLlR5SQ/",  // salt too long
           "$2b$4$aaaaaaaaaaaaaaaaaaaaaOqgHHdKuqfi7AP.TwHblFR2ASFq1GtMe",
           "$2b$32$aaaaaaaaaaaaaaaaaaaaaOqgHHdKuqfi7AP.TwHblFR2ASFq1GtMe",
           "$2x$04$aaaaaaaaaaaaaaaaaaaaaOqgHHdKuqfi7AP.TwHblFR2ASFq1GtM",
           "$2b$04$aaaaaaaaaaaaaaaaaaaaaOqgHHdKuqfi7AP.TwHblFR2ASFq1Gt!",
           "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ",  // not padded base64
           "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQAAAA=",  // not 20 bytes
           "{SSHA}short===",
           "{PLAIN}a\tb",
           "$6$abc$short",
       }) {
    CAPTURE(bad);
    CHECK(policy::check_password_hash(bad) != "");
  }
}

TEST_CASE("htpasswd text: read as nginx's auth_basic reads its file, bad lines skipped by number") {
  const policy::HtpasswdReading r = policy::read_htpasswd(
      "# users\n"
      "alice:$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/\r\n"
      "\n"
      "bob:{PLAIN}pw:a comment\n"
      "carol:not-a-hash\n"
      "no colon here\n"
      ":{PLAIN}nobody\n"
      "alice:{PLAIN}second\n"
      "dave:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=");
  CHECK(r.users ==
        "alice:$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/\n"
        "bob:{PLAIN}pw\n"
        "alice:{PLAIN}second\n"
        "dave:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n");
  REQUIRE(r.problems.size() == 3);
  CHECK(r.problems[0].starts_with("line 5: "));
  CHECK(r.problems[1].starts_with("line 6: "));
  CHECK(r.problems[2].starts_with("line 7: "));
  for (const std::string& problem : r.problems) {
    CHECK(problem.find("not-a-hash") == std::string::npos);  // never the line's text
    CHECK(problem.find("no colon") == std::string::npos);
  }
  CHECK(policy::read_htpasswd("").users.empty());
  CHECK(policy::read_htpasswd("x:y\n").users.empty());
}

TEST_CASE("kBasicAuth records: users as the agent writes them, a quotable realm; the users are secret") {
  PolicyRecord record = policy::basic_auth("Authentication Required - foo");
  record.a = "alice:{PLAIN}pw\n";
  CHECK(policy::check_record(record, false) == "");
  CHECK(policy::secret_fields(PolicyKind::kBasicAuth) == policy::kSecretA);
  CHECK(std::string(policy::kind_name(PolicyKind::kBasicAuth)) == "basic-auth");

  PolicyRecord no_users = policy::basic_auth("r");
  CHECK(policy::check_record(no_users, false) != "");
  PolicyRecord quote = record;
  quote.b = "a\"b";
  CHECK(policy::check_record(quote, false) != "");
  CHECK(policy::check_realm("a\\b") != "");
  CHECK(policy::check_realm("") == "");
  PolicyRecord bad_line = record;
  bad_line.a = "alice:{PLAIN}pw\nbob:nohash\n";
  CHECK(policy::check_record(bad_line, false) != "");
  PolicyRecord no_newline = record;
  no_newline.a = "alice:{PLAIN}pw";
  CHECK(policy::check_record(no_newline, false) != "");
  PolicyRecord with_code = record;
  with_code.code = 401;
  CHECK(policy::check_record(with_code, false) != "");
}

TEST_CASE("cors-allow-origin entries: ingress-nginx's corsOriginRegex") {
  for (const char* good : {"https://example.com", "http://*.origin.com:8080", "test://localhost", "tauri://localhost:3000",
                           "null", "http://origin-123.cors.com:8080", "https://"}) {
    CAPTURE(good);
    CHECK(policy::cors_origin_valid(good));
  }
  for (const char* bad : {"*", "example.com", "HTTPS://example.com", "https://a.*.com", "https://*example.com",
                          "https://exa mple.com", "https://example.com/", "https://example.com:", "https://e.com:123456",
                          "https://e.com\"", "https://$host"}) {
    CAPTURE(bad);
    CHECK_FALSE(policy::cors_origin_valid(bad));
  }
  CHECK(policy::cors_methods_valid("GET, PUT, POST"));
  CHECK(policy::cors_methods_valid("GET,POST"));
  CHECK_FALSE(policy::cors_methods_valid("GET;POST"));
  CHECK_FALSE(policy::cors_methods_valid("GET, $request_method"));
  CHECK_FALSE(policy::cors_methods_valid(""));
  CHECK(policy::cors_headers_valid("X-Foo, X_Bar,Content-Type"));
  CHECK_FALSE(policy::cors_headers_valid("X-Foo: 1"));
  CHECK_FALSE(policy::cors_headers_valid("X-<Foo>"));
  CHECK(policy::cors_expose_headers_valid("*, X-Expose"));
  CHECK_FALSE(policy::cors_expose_headers_valid("X-A;X-B"));
}

TEST_CASE("kCors records and the module's origin match: whole, case-insensitive, one label for *") {
  const PolicyRecord record =
      policy::cors(policy::kCorsCredentials, "https://a.example.com http://*.origin.com:8080 null",
                   policy::kDefaultCorsMethods, policy::kDefaultCorsHeaders, "", policy::kDefaultCorsMaxAge);
  CHECK(policy::check_record(record, false) == "");
  CHECK(std::string(policy::kind_name(PolicyKind::kCors)) == "cors");
  const std::string& list = record.a;
  CHECK(origin_matches(list, "https://a.example.com"));
  CHECK(origin_matches(list, "HTTPS://A.Example.COM"));
  CHECK(origin_matches(list, "http://foo.origin.com:8080"));
  CHECK(origin_matches(list, "http://bar-foo.origin.com:8080"));
  CHECK(origin_matches(list, "null"));
  CHECK_FALSE(origin_matches(list, "http://bar.foo.origin.com:8080"));  // two labels
  CHECK_FALSE(origin_matches(list, "http://.origin.com:8080"));         // no label
  CHECK_FALSE(origin_matches(list, "http://abc.origin.com"));           // port missing
  CHECK_FALSE(origin_matches(list, "http://abc.origin.com:80801"));
  CHECK_FALSE(origin_matches(list, "https://a.example.com.evil.com"));
  CHECK_FALSE(origin_matches(list, "xhttps://a.example.com"));  // ingress-nginx's regex has no ^: kroute's match is whole
  CHECK_FALSE(origin_matches(list, "https://a.example.co"));
  CHECK_FALSE(origin_matches(list, ""));
  CHECK_FALSE(origin_matches("", "null"));
  // The Gateway API's wildcards (kCorsAnyDepth): the star stands for one label or more, never for an empty one.
  CHECK(origin_matches(list, "http://bar.foo.origin.com:8080", true));
  CHECK(origin_matches(list, "http://a.b-c.d.origin.com:8080", true));
  CHECK(origin_matches(list, "http://foo.origin.com:8080", true));
  CHECK_FALSE(origin_matches(list, "http://.foo.origin.com:8080", true));
  CHECK_FALSE(origin_matches(list, "http://a..foo.origin.com:8080", true));
  CHECK_FALSE(origin_matches(list, "http://.origin.com:8080", true));
  CHECK_FALSE(origin_matches(list, "http://a_b.origin.com:8080", true));
  CHECK_FALSE(origin_matches(list, "https://a.example.com.evil.com", true));

  PolicyRecord any = policy::cors(policy::kCorsAnyOrigin, "", "GET", "", "", 0);
  CHECK(policy::check_record(any, false) == "");
  any.a = "https://x.com";
  CHECK(policy::check_record(any, false) != "");
  PolicyRecord none = policy::cors(0, "", "GET", "", "", 0);
  CHECK(policy::check_record(none, false) != "");
  PolicyRecord injected = record;
  injected.b = "GET\r\nX-Evil: 1\nA\n";
  CHECK(policy::check_record(injected, false) != "");
  PolicyRecord bad_origin = record;
  bad_origin.a = "https://x.com\r\nSet-Cookie:";
  CHECK(policy::check_record(bad_origin, false) != "");
  PolicyRecord flags = record;
  flags.flags = 16;
  CHECK(policy::check_record(flags, false) != "");
  CHECK(KROUTE_CORS_CREDENTIALS == policy::kCorsCredentials);
  CHECK(KROUTE_CORS_ANY_ORIGIN == policy::kCorsAnyOrigin);

  // "*" methods and headers are the Gateway API's (kCorsEcho) only.
  PolicyRecord stars = policy::cors(policy::kCorsAnyOrigin, "", "*", "*", "*", 5);
  CHECK(policy::check_record(stars, false) != "");
  stars.flags |= policy::kCorsEcho;
  CHECK(policy::check_record(stars, false) == "");
  stars.b = "GET,*\n*\n";
  CHECK(policy::check_record(stars, false) != "");
}
