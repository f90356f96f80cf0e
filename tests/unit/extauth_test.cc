// kExternalAuth records (routetable/policy/external_auth.h): auth-cache-duration and auth-cache-key as
// the agent reads them, the record check the builder runs, and $escaped_request_uri of auth-signin.
#include <doctest.h>

#include <string>

#include "policy/external_auth.h"
#include "policy/kinds.h"
#include "policy/template.h"

using namespace kroute;
using namespace kroute::policy;

TEST_CASE("auth-cache-duration: statuses then durations, nginx's units, 200 301 302 without statuses") {
  CHECK(parse_auth_cache_durations("200 202 401 5m") == "200=300 202=300 401=300");
  CHECK(parse_auth_cache_durations("200 1h 30m, 401 10s") == "200=5400 401=10");
  CHECK(parse_auth_cache_durations("1m") == "200=60 301=60 302=60");
  CHECK(parse_auth_cache_durations("200 1500ms,, ") == "200=2");
  CHECK(parse_auth_cache_durations("1d 1w") == "200=691200 301=691200 302=691200");
  CHECK_FALSE(parse_auth_cache_durations(""));
  CHECK_FALSE(parse_auth_cache_durations("200 202"));         // no duration
  CHECK_FALSE(parse_auth_cache_durations("5m 200"));          // a status after a duration
  CHECK_FALSE(parse_auth_cache_durations("200 5 minutes"));   // not a unit
  CHECK_FALSE(parse_auth_cache_durations("600 5m"));          // not a status
  CHECK_FALSE(parse_auth_cache_durations("200 5m; proxy_pass x"));
  CHECK(parse_auth_cache_durations(kDefaultAuthCacheDuration) == "200=300 202=300 401=300");
}

TEST_CASE("auth-cache-key: literal text and a fixed set of nginx variables") {
  CHECK(check_auth_cache_key("$remote_user$http_authorization") == "");
  CHECK(check_auth_cache_key("user:$cookie__oauth2_proxy:$host$request_uri") == "");
  CHECK(check_auth_cache_key("$arg_token") == "");
  CHECK(check_auth_cache_key("$request_body").find("is not one of") != std::string::npos);
  CHECK(check_auth_cache_key("$http_").find("is not one of") != std::string::npos);
  CHECK(check_auth_cache_key("$ssl_client_cert").find("is not one of") != std::string::npos);
  CHECK(check_auth_cache_key("$HTTP_X").find("is not one of") != std::string::npos);
  CHECK(check_auth_cache_key("a\nb") != "");
  CHECK(check_auth_cache_key("") != "");
}

TEST_CASE("auth-method: ingress-nginx's list, 0 for none") {
  CHECK(auth_method("GET") == 1);
  CHECK(auth_method("TRACE") == 9);
  CHECK_FALSE(auth_method("get"));
  CHECK_FALSE(auth_method("PROPFIND"));
  CHECK_FALSE(auth_method(""));
}

TEST_CASE("kExternalAuth records: each part checked, unknown parts and stray fields refused") {
  CHECK(check_record(external_auth("http://10.0.0.1:8080/auth$request_uri", "auth.example", 3, kAuthAlwaysSetCookie),
                     false) == "");
  CHECK(check_record(external_auth("ftp://10.0.0.1/", "h", 0, 0), false) != "");
  CHECK(check_record(external_auth("http://10.0.0.1/", "", 0, 0), false) != "");
  CHECK(check_record(external_auth("http://10.0.0.1/", "h", 10, 0), false) != "");
  CHECK(check_record(external_auth("http://10.0.0.1/", "h", 0, 2), false) != "");
  CHECK(check_record(external_auth("http://10.0.0.1/$1", "h", 0, 0), false) != "");
  CHECK(check_record(external_auth("http://10.0.0.1/$1", "h", 0, 0), true) == "");
  CHECK(check_record(external_auth("http://10.0.0.1/\r\nX: y", "h", 0, 0), false) != "");
  CHECK(check_record(external_auth_part(kAuthSignin, "https://login/?rd=$scheme://$http_host$escaped_request_uri"),
                     false) == "");
  CHECK(check_record(external_auth_part(kAuthSignin, "https://login/$foo"), false) != "");
  CHECK(check_record(external_auth_part(kAuthResponseHeaders, "X-User,X-Email"), false) == "");
  CHECK(check_record(external_auth_part(kAuthResponseHeaders, "X-User,"), false) != "");
  CHECK(check_record(external_auth_part(kAuthResponseHeaders, "X User"), false) != "");
  CHECK(check_record(external_auth_part(kAuthRequestRedirect, "$scheme://$host$request_uri"), false) == "");
  CHECK(check_record(external_auth_part(kAuthCache, "$http_authorization", "200=300 401=60", 77), false) == "");
  CHECK(check_record(external_auth_part(kAuthSignin, "https://x/", "", 77), false) != "");
  CHECK(check_record(external_auth_part(kAuthCache, "$http_authorization", "200=x"), false) != "");
  CHECK(check_record(external_auth_part(kAuthCache, "$http_authorization", ""), false) != "");
  CHECK(check_record(external_auth_part(kAuthCache, "$secret", "200=1"), false) != "");
  PolicyRecord unknown = external_auth_part(kAuthSignin, "https://x/");
  unknown.code = kLastAuthPart + 1;
  CHECK(check_record(unknown, false) != "");
  PolicyRecord flagged = external_auth_part(kAuthSignin, "https://x/");
  flagged.flags = kAuthAlwaysSetCookie;
  CHECK(check_record(flagged, false) != "");
  CHECK(std::string(kind_name(PolicyKind::kExternalAuth)) == "external-auth");
}

TEST_CASE("$escaped_request_uri: the request URI as one query value") {
  TemplateContext c;
  c.scheme = "https";
  c.http_host = "app.example:8443";
  c.request_uri = "/a b/c?x=1&y=%2F";
  const std::string text = "https://login/start?rd=$scheme://$http_host$escaped_request_uri";
  CHECK(check_template(text, false) == "");
  std::string out(template_length(text, c), '\0');
  CHECK(expand_template(text, c, out.data()) == out.data() + out.size());
  CHECK(out == "https://login/start?rd=https://app.example:8443%2Fa%20b%2Fc%3Fx%3D1%26y%3D%252F");
}
