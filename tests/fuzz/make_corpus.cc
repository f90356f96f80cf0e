// Writes a seed corpus for fuzz-snapshot: valid snapshots of several shapes, each prefixed with the
// mode byte (odd: the fuzzer repairs the checksum).
#include <fstream>
#include <iostream>
#include <string>

#include "model_builder.h"
#include "policy/header_modifier.h"
#include "policy/headers.h"
#include "policy/redirect.h"
#include "policy/rewrite.h"
#include "policy/server_name.h"
#include "policy/split.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: fuzz-corpus DIR\n";
    return 1;
  }
  using kroute::PathType;
  std::vector<kroute::RouteModel> models;
  {
    kroute::testing::ModelBuilder m;
    m.prefix("a.com", "/", "a").exact("a.com", "/a", "b").prefix("a.com", "/a/b", "c");
    models.push_back(m.model());
  }
  {
    kroute::testing::ModelBuilder m;
    m.prefix("*.a.com", "/", "w").prefix("", "/", "any").tls("a.com", "cert").tls("*.a.com", "wild");
    m.backend("d", {{"fd00::1", 80, 3}, {"10.0.0.2", 81, 1, false}}).default_backend("d");
    models.push_back(m.model());
  }
  {
    kroute::testing::ModelBuilder m;
    for (int i = 0; i < 20; ++i)
      m.rule("h" + std::to_string(i) + ".a.com", "/p/" + std::to_string(i), PathType::kImplementationSpecific, "s");
    models.push_back(m.model());
  }
  {
    // Only zero weights: nothing takes a share (503), and a flipped flag makes a table validation refuses.
    kroute::testing::ModelBuilder m;
    m.backend("zero", {{"10.0.0.3", 80, 0}, {"10.0.0.4", 80, 0}});
    m.prefix("z.com", "/", "zero");
    models.push_back(m.model());
  }
  {
    // Policy records on rules and hosts, a regex host (its patterns compiled by the reader), an alias.
    kroute::testing::ModelBuilder m;
    m.prefix("r.com", "/something(/|$)(.*)", "r").prefix("r.com", "/(a+)+$", "r").prefix("p.com", "/", "p");
    for (auto& rule : m.model().rules) rule.regex = rule.host == "r.com";
    m.model().rules[0].policies = {kroute::policy::rewrite("/$2"), kroute::policy::upstream_host("in"),
                                   kroute::policy::forwarded_prefix("/s")};
    m.model().rules[2].policies = {kroute::policy::redirect(301, "https://n.com$request_uri", 0),
                                   kroute::policy::https_redirect(false)};
    m.model().host_policies.push_back({"r.com", 0, {kroute::policy::redirect(302, "$scheme://$http_host/app", 1)}});
    m.model().aliases.push_back({"alias.com", "r.com", 0});
    models.push_back(m.model());
  }
  {
    // HTTPRoute-shaped: chains of rules with match conditions (regex ones compiled by the reader), on a
    // plain and on a regex host, weighted backends with an invalid share, header modifiers.
    using namespace kroute::testing;
    ModelBuilder m;
    m.prefix("g.com", "/", "v1").when({header_is("version", "one"), query_is("q", "a%20b")});
    m.prefix("g.com", "/", "v2").when({method_is("POST"), header_matches("x", "v[0-9]+")});
    m.prefix("g.com", "/", "v3").when({query_matches("id", "[0-9]+")});
    m.prefix("g.com", "/", "v4");
    m.exact("g.com", "/e", "v1").when({method_is("GET")});
    m.prefix("r.com", "/a/(.*)", "v1").when({header_is("h", "1")});
    m.prefix("r.com", "/a/(.*)", "v2");
    for (auto& rule : m.model().rules) rule.regex = rule.host == "r.com";
    m.model().rules[3].policies = {kroute::policy::split(0, 3), kroute::policy::split(1, 1),
                                   kroute::policy::split(kroute::kNoRecordBackend, 1),
                                   kroute::policy::request_header(kroute::policy::kSetHeader, "X-A", "1"),
                                   kroute::policy::response_header(kroute::policy::kRemoveHeader, "Server")};
    models.push_back(m.model());
  }
  {
    // Scopes: the same host in the shared scope and two others, wildcards and host-less rules per scope,
    // certificates per scope, a server-name host record.
    kroute::testing::ModelBuilder m;
    m.scope("a", {{"10.0.0.7", 80}, {"fd00::7", 0}}, {"CHAIN-A", "KEY-A"});
    m.scope("b", {{"", 8443}, {"10.0.0.8", 0}});
    m.prefix("a.com", "/", "s").tls("a.com", "shared");
    m.in_scope(1).prefix("a.com", "/", "one").prefix("*.a.com", "/x", "one").prefix("", "/", "one").tls("a.com", "one");
    m.in_scope(2).prefix("a.com", "/y", "two").prefix("*.b.com", "/", "two");
    m.model().rules.back().any_depth = true;
    m.model().tls[1].certificate = {"CHAIN-1", "KEY-1"};
    m.model().host_policies.push_back({"a.com", 0, {kroute::policy::server_name("*.a.com")}});
    m.model().host_policies.back().scope = 1;
    m.model().scopes[1].listener_names = {"", "a.com", "*.b.com"};
    models.push_back(m.model());
  }
  int n = 0;
  for (const auto& model : models) {
    const auto bytes = kroute::build_snapshot(model, {1}).bytes;
    for (char mode : {'\0', '\1'}) {
      std::ofstream out(std::string(argv[1]) + "/seed-" + std::to_string(n++), std::ios::binary);
      out.put(mode);
      out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    }
  }
  return 0;
}
