// kroute-table: build a snapshot from a JSON description, dump the current one, and show which rule,
// Ingress and backend would serve a request.
#include <CLI/CLI.hpp>
#include <arpa/inet.h>
#include <json/json.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <deque>
#include <ctime>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "builder.h"
#include "conditions.h"
#include "description.h"
#include "file_access.h"
#include "path_patterns.h"
#include "policy/cidr.h"
#include "policy/kinds.h"
#include "policy/redirect.h"
#include "policy/template.h"
#include "publisher.h"
#include "reader.h"
#include "snapshot.h"

namespace {

using namespace kroute;

constexpr int kExitError = 1;
constexpr int kExitNoRoute = 2;

std::string read_input(const std::string& file, std::string& error) {
  std::ostringstream text;
  if (file == "-") {
    text << std::cin.rdbuf();
    return text.str();
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    error = "cannot read " + file;
    return {};
  }
  text << in.rdbuf();
  return text.str();
}

std::uint64_t now_ms() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

std::string utc(std::uint64_t unix_ms) {
  const std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

std::string backend_name(const SnapshotView& view, const format::BackendEntry& b) {
  return std::string(view.str(b.ns)) + "/" + std::string(view.str(b.service)) + ":" +
         (b.port_name.length != 0 ? std::string(view.str(b.port_name)) : std::to_string(b.port));
}

std::string host_label(const SnapshotView& view, const format::HostEntry& h) {
  switch (h.kind) {
    case format::HostKind::kExact: return std::string(view.str(h.name));
    case format::HostKind::kWildcard: return "*." + std::string(view.str(h.name));
    case format::HostKind::kAny: return "(any host)";
  }
  return "?";
}

// A scope entry's local address as kroute-table shows it: "10.0.0.7:80", "[fd00::7]:*", "*:8443".
std::string local_text(const format::ScopeEntry& e) {
  std::string address = "*";
  if (e.family != 0) {
    char text[INET6_ADDRSTRLEN] = {};
    inet_ntop(e.family == 6 ? AF_INET6 : AF_INET, e.address, text, sizeof text);
    address = e.family == 6 ? "[" + std::string(text) + "]" : std::string(text);
  }
  return address + ":" + (e.port == 0 ? std::string("*") : std::to_string(e.port));
}

// The local address `kroute-table lookup --local` names: "10.0.0.7:80", "10.0.0.7", "[fd00::7]:443",
// "fd00::7", ":8443" (any address). Without a port only scopes for any port match, as a connection
// always has one.
struct LocalArgument {
  int family = 0;
  unsigned char address[16] = {};
  std::uint16_t port = 0;
};

LocalArgument parse_local(const std::string& text) {
  LocalArgument local;
  std::string address = text;
  std::string port;
  if (text.starts_with("[")) {
    const std::size_t close = text.find(']');
    if (close == std::string::npos || (close + 1 != text.size() && text[close + 1] != ':'))
      throw std::invalid_argument("--local: \"" + text + "\" is not ADDRESS[:PORT]");
    address = text.substr(1, close - 1);
    if (close + 1 != text.size()) port = text.substr(close + 2);
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    address = text.substr(0, text.find(':'));
    port = text.substr(text.find(':') + 1);
  }
  if (!port.empty()) {
    std::size_t used = 0;
    unsigned long number = 0;
    try {
      number = std::stoul(port, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != port.size() || number == 0 || number > 65535)
      throw std::invalid_argument("--local: port \"" + port + "\" is not 1-65535");
    local.port = static_cast<std::uint16_t>(number);
  }
  if (address.empty()) return local;
  if (inet_pton(AF_INET, address.c_str(), local.address) == 1) {
    local.family = 4;
  } else if (inet_pton(AF_INET6, address.c_str(), local.address) == 1) {
    local.family = 6;
  } else {
    throw std::invalid_argument("--local: \"" + address + "\" is not an IPv4 or IPv6 address");
  }
  return local;
}

// "1 (gateway infra/a)"; "0 (shared)" for the shared scope.
std::string scope_text(const SnapshotView& view, ScopeId scope) {
  const format::ScopeEntry* entry = view.scope_entry(scope);
  return std::to_string(scope) + " (" + (entry != nullptr ? std::string(view.str(entry->name)) : "shared") + ")";
}

std::string fingerprint_text(std::uint64_t fingerprint) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(fingerprint));
  return text;
}

// A TLS entry as people need to see it: the Secret and whether it holds a usable certificate. Never the key.
std::string tls_text(const SnapshotView& view, const format::TlsEntry& t) {
  std::string text = std::string(view.str(t.secret_ns)) + "/" + std::string(view.str(t.secret_name));
  if (t.chain_pem.length == 0) return text + " (no usable certificate: the default one is served)";
  return text + " (certificate " + fingerprint_text(t.fingerprint) + ")";
}

Json::Value tls_json(const SnapshotView& view, const format::TlsEntry& t) {
  Json::Value out;
  out["secret"] = std::string(view.str(t.secret_ns)) + "/" + std::string(view.str(t.secret_name));
  out["certificate"] = t.chain_pem.length != 0;
  out["fingerprint"] = fingerprint_text(t.fingerprint);
  return out;
}

// What a rule came from: its kind ("Ingress" when the entry names none), namespace and name.
std::string source_kind(const SnapshotView& view, const format::SourceEntry& s) {
  return s.kind.length == 0 ? std::string("Ingress") : std::string(view.str(s.kind));
}
// "ingress shop/web", "httproute infra/route".
std::string source_text(const SnapshotView& view, const format::SourceEntry& s) {
  std::string kind = source_kind(view, s);
  for (char& c : kind) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return kind + " " + std::string(view.str(s.ns)) + "/" + std::string(view.str(s.name));
}
Json::Value source_json(const SnapshotView& view, const format::SourceEntry& s) {
  Json::Value out;
  out["kind"] = source_kind(view, s);
  out["namespace"] = std::string(view.str(s.ns));
  out["name"] = std::string(view.str(s.name));
  return out;
}

std::string rule_path(const SnapshotView& view, const format::RuleEntry& r) {
  return std::string(view.str(r.declared_path));
}

Json::Value endpoints_json(const SnapshotView& view, const format::BackendEntry& b) {
  Json::Value list(Json::arrayValue);
  for (const format::EndpointEntry& e : view.endpoints_of(b)) {
    Json::Value item;
    item["address"] = endpoint_address(e);
    item["weight"] = e.weight;
    item["ready"] = (e.flags & format::kReady) != 0;
    item["serving"] = (e.flags & format::kServing) != 0;
    item["terminating"] = (e.flags & format::kTerminating) != 0;
    list.append(item);
  }
  return list;
}

Json::Value backend_json(const SnapshotView& view, const format::BackendEntry& b) {
  Json::Value out;
  out["namespace"] = std::string(view.str(b.ns));
  out["service"] = std::string(view.str(b.service));
  if (b.port_name.length != 0) {
    out["port"] = std::string(view.str(b.port_name));
  } else {
    out["port"] = b.port;
  }
  out["readyEndpoints"] = b.ready_count;
  out["endpoints"] = endpoints_json(view, b);
  return out;
}

std::string endpoints_text(const SnapshotView& view, const format::BackendEntry& b) {
  std::string text;
  for (const format::EndpointEntry& e : view.endpoints_of(b)) {
    if (!text.empty()) text += ", ";
    text += endpoint_address(e) + " w" + std::to_string(e.weight);
    if ((e.flags & format::kReady) == 0) text += (e.flags & format::kTerminating) ? " terminating" : " not-ready";
  }
  return text.empty() ? "(none)" : text;
}

void print_json(const Json::Value& value) {
  Json::StreamWriterBuilder writer;
  writer["indentation"] = "  ";
  std::cout << Json::writeString(writer, value) << "\n";
}

// The current snapshot of `dir`, or an error message on stderr and null.
const MappedSnapshot* open_current(TableReader& reader, const std::string& dir) {
  switch (reader.poll(now_ms())) {
    case TableReader::Poll::kPickedUp: return reader.current();
    case TableReader::Poll::kRejected:
      std::cerr << "error: the current snapshot is invalid: " << reader.last_error() << "\n";
      return nullptr;
    case TableReader::Poll::kNoTable:
    case TableReader::Poll::kUnchanged:
      std::cerr << "error: no route table in " << dir
                << (reader.last_error().empty() ? " (nothing published yet)" : ": " + reader.last_error()) << "\n";
      return nullptr;
  }
  return nullptr;
}

int build_command(const std::string& dir, const std::string& file, const PublisherOptions& options, bool quiet) {
  std::string error;
  const std::string text = read_input(file, error);
  if (!error.empty()) {
    std::cerr << "error: " << error << "\n";
    return kExitError;
  }
  DescriptionResult parsed = parse_description(text);
  const BuildResult built = build_snapshot(parsed.description.model);
  for (const Diagnostic& d : built.diagnostics) parsed.errors.push_back(describe(parsed.description, d));
  if (!parsed.errors.empty()) {
    for (const std::string& e : parsed.errors) std::cerr << "error: " << e << "\n";
    std::cerr << "error: " << parsed.errors.size() << " problem(s) in " << file << "; nothing published\n";
    return kExitError;
  }
  for (const Conflict& c : built.conflicts) std::cerr << "warning: " << describe(parsed.description, c) << "\n";

  auto publisher = Publisher::open(options, error);
  if (!publisher) {
    std::cerr << "error: " << error << "\n";
    return kExitError;
  }
  std::vector<std::byte> bytes = built.bytes;
  const PublishResult published = publisher->publish(bytes);
  if (published.generation == 0) {
    std::cerr << "error: " << published.error << "\n";
    return kExitError;
  }
  if (!quiet) {
    std::cout << "published generation " << published.generation << " to " << dir << ": " << built.stats.hosts
              << " hosts, " << built.stats.rules << " rules, " << built.stats.backends << " backends, "
              << built.stats.endpoints << " endpoints, " << built.stats.tls << " tls, " << bytes.size() << " bytes\n";
  }
  return 0;
}

// True when the records redirect plain HTTP to https:// (ssl-redirect).
bool redirects_to_https(const SnapshotView& view, std::uint32_t set) {
  for (const format::PolicyRecord& p : view.policies(set)) {
    if (p.kind == format::PolicyKind::kRedirect && (p.flags & policy::kOnlyPlainHttp) != 0) return true;
  }
  return false;
}

// A rule's match conditions as a description writes them: {"method": M}, {"header": N, "value" or "regex": V},
// {"query": ...}.
Json::Value conditions_json(const SnapshotView& view, const format::RuleEntry& rule) {
  Json::Value list(Json::arrayValue);
  for (const format::ConditionEntry& c : view.conditions_of(rule)) {
    Json::Value jc;
    const std::string name(view.str(c.name));
    const std::string value(view.str(c.value));
    switch (c.kind) {
      case format::ConditionKind::kMethod: jc["method"] = value; break;
      case format::ConditionKind::kHeaderExact: jc["header"] = name, jc["value"] = value; break;
      case format::ConditionKind::kHeaderRegex: jc["header"] = name, jc["regex"] = value; break;
      case format::ConditionKind::kQueryExact: jc["query"] = name, jc["value"] = value; break;
      case format::ConditionKind::kQueryRegex: jc["query"] = name, jc["regex"] = value; break;
    }
    list.append(jc);
  }
  return list;
}

// " when method GET, header x-version = v2, query id ~ [0-9]+"; "" for a rule without conditions.
std::string conditions_text(const SnapshotView& view, const format::RuleEntry& rule) {
  std::string text;
  for (const format::ConditionEntry& c : view.conditions_of(rule)) {
    text += text.empty() ? " when " : ", ";
    const std::string name(view.str(c.name));
    const std::string value(view.str(c.value));
    switch (c.kind) {
      case format::ConditionKind::kMethod: text += "method " + value; break;
      case format::ConditionKind::kHeaderExact: text += "header " + name + " = " + value; break;
      case format::ConditionKind::kHeaderRegex: text += "header " + name + " ~ " + value; break;
      case format::ConditionKind::kQueryExact: text += "query " + name + " = " + value; break;
      case format::ConditionKind::kQueryRegex: text += "query " + name + " ~ " + value; break;
    }
  }
  return text;
}

Json::Value policies_json(const SnapshotView& view, std::uint32_t set) {
  Json::Value list(Json::arrayValue);
  for (const format::PolicyRecord& p : view.policies(set)) {
    Json::Value jp;
    jp["kind"] = policy::kind_name(p.kind);
    if (const char* name = policy::code_name(p.kind, p.code)) {
      jp["code"] = name;
    } else if (p.code != 0) {
      jp["code"] = p.code;
    }
    if (p.flags != 0) jp["flags"] = p.flags;
    if (p.value != 0) jp["number"] = Json::UInt64(p.value);
    if (p.backend != format::kNone) {
      const format::BackendEntry& b = view.backends()[p.backend];
      jp["backend"] = std::string(view.str(b.ns)) + "/" + std::string(view.str(b.service));
    }
    // Secret strings (a client certificate's key, htpasswd hashes) are never printed, only their size.
    const unsigned secret = policy::secret_fields(p.kind);
    const unsigned cidr = policy::cidr_fields(p.kind);
    const auto shown = [&](format::StrRef ref, unsigned field) {
      if ((secret & field) != 0) return std::to_string(ref.length) + " bytes, secret";
      return (cidr & field) != 0 ? policy::cidr_list_text(view.str(ref)) : std::string(view.str(ref));
    };
    jp["value"] = shown(p.a, policy::kSecretA);
    if (p.b.length != 0) jp["value2"] = shown(p.b, policy::kSecretB);
    list.append(jp);
  }
  return list;
}

std::string policies_text(const SnapshotView& view, std::uint32_t set) {
  std::string text;
  for (const format::PolicyRecord& p : view.policies(set)) {
    // A multi-line string (a client-cert record's CA bundle) would break the one-line-per-entry dump.
    const auto shown = [&](format::StrRef ref, unsigned field) {
      const std::string_view s = view.str(ref);
      return (policy::secret_fields(p.kind) & field) != 0 ? std::string("(secret)")
             : (policy::cidr_fields(p.kind) & field) != 0 ? policy::cidr_list_text(s)
             : s.find('\n') != std::string_view::npos      ? "(" + std::to_string(s.size()) + " bytes)"
                                                            : std::string(s);
    };
    const char* code = policy::code_name(p.kind, p.code);
    text += std::string(" ") + policy::kind_name(p.kind) +
            (code != nullptr ? std::string(" ") + code : p.code != 0 ? " " + std::to_string(p.code) : "");
    if (p.a.length != 0 || (policy::secret_fields(p.kind) & policy::kSecretA) != 0) text += " " + shown(p.a, policy::kSecretA);
    if (p.b.length != 0) text += " " + shown(p.b, policy::kSecretB);
    if (p.value != 0) text += " (" + std::to_string(p.value) + ")";
    if (p.backend != format::kNone) {
      const format::BackendEntry& b = view.backends()[p.backend];
      text += " -> " + std::string(view.str(b.ns)) + "/" + std::string(view.str(b.service));
    }
  }
  return text;
}

int dump_command(const std::string& dir, bool json) {
  TableReader reader(dir);
  const MappedSnapshot* snapshot = open_current(reader, dir);
  if (snapshot == nullptr) return kExitError;
  const SnapshotView& view = snapshot->view;
  const format::Header& h = view.header();
  if (json) {
    Json::Value out;
    out["generation"] = Json::UInt64(h.generation);
    out["built"] = utc(h.built_unix_ms);
    out["bytes"] = Json::UInt64(h.total_size);
    Json::Value hosts(Json::arrayValue);
    for (const format::HostEntry& host : view.hosts()) {
      Json::Value jh;
      jh["host"] = host_label(view, host);
      if (host.scope != kSharedScope) jh["scope"] = host.scope;
      if (host.tls != format::kNone) jh["tls"] = tls_json(view, view.tls()[host.tls]);
      if ((host.flags & format::kRegexPaths) != 0) jh["regexPaths"] = true;
      if ((host.flags & format::kAnyDepth) != 0) jh["anyDepth"] = true;
      if ((host.flags & format::kIsolated) != 0) jh["isolated"] = true;
      if (host.policies != format::kNone) jh["policies"] = policies_json(view, host.policies);
      Json::Value rules(Json::arrayValue);
      for (const format::RuleEntry& r : view.rules().subspan(host.first_rule, host.rule_count)) {
        Json::Value jr;
        jr["path"] = rule_path(view, r);
        jr["pathType"] = path_type_name(r.declared);
        jr["sslRedirect"] = redirects_to_https(view, r.policies);
        if ((r.flags & format::kHasConditions) != 0) jr["conditions"] = conditions_json(view, r);
        if (r.policies != format::kNone) jr["policies"] = policies_json(view, r.policies);
        const format::SourceEntry& s = view.source_of(r);
        jr["source"] = source_json(view, s);
        if (s.kind.length == 0) jr["ingress"] = std::string(view.str(s.ns)) + "/" + std::string(view.str(s.name));
        jr["backend"] = backend_json(view, view.backends()[r.backend]);
        rules.append(jr);
      }
      jh["rules"] = rules;
      hosts.append(jh);
    }
    out["hosts"] = hosts;
    if (!view.scopes().empty()) {
      Json::Value scopes(Json::arrayValue);
      for (const format::ScopeEntry& e : view.scopes()) {
        if (scopes.empty() || scopes[scopes.size() - 1]["scope"].asUInt() != e.scope) {
          Json::Value js;
          js["scope"] = e.scope;
          js["name"] = std::string(view.str(e.name));
          js["locals"] = Json::Value(Json::arrayValue);
          if (e.default_tls != format::kNone) js["defaultCertificate"] = tls_json(view, view.tls()[e.default_tls]);
          if (e.listener_name_count != 0) {
            js["listenerNames"] = Json::Value(Json::arrayValue);
            for (const format::StrRef& n : view.listener_names(e.scope)) js["listenerNames"].append(std::string(view.str(n)));
          }
          scopes.append(js);
        }
        scopes[scopes.size() - 1]["locals"].append(local_text(e));
      }
      out["scopes"] = scopes;
    }
    if (const format::BackendEntry* d = view.default_backend()) out["defaultBackend"] = backend_json(view, *d);
    if (const format::TlsEntry* c = view.default_certificate()) out["defaultCertificate"] = tls_json(view, *c);
    print_json(out);
    return 0;
  }
  std::cout << "generation " << h.generation << ", built " << utc(h.built_unix_ms) << ", " << h.total_size
            << " bytes: " << view.hosts().size() << " hosts, " << view.rules().size() << " rules, "
            << view.backends().size() << " backends, " << view.endpoints().size() << " endpoints, "
            << view.tls().size() << " tls\n";
  if (const format::BackendEntry* d = view.default_backend())
    std::cout << "default backend " << backend_name(view, *d) << " [" << endpoints_text(view, *d) << "]\n";
  if (const format::TlsEntry* c = view.default_certificate())
    std::cout << "default certificate " << fingerprint_text(c->fingerprint) << "\n";
  for (std::size_t i = 0; i < view.scopes().size(); ++i) {
    const format::ScopeEntry& e = view.scopes()[i];
    if (i == 0 || view.scopes()[i - 1].scope != e.scope) {
      std::cout << (i == 0 ? "" : "\n") << "scope " << e.scope << " " << view.str(e.name) << ":";
      if (e.default_tls != format::kNone)
        std::cout << " (default certificate " << fingerprint_text(view.tls()[e.default_tls].fingerprint) << ")";
    }
    std::cout << " " << local_text(e);
    const bool last_of_scope = i + 1 == view.scopes().size() || view.scopes()[i + 1].scope != e.scope;
    if (last_of_scope && e.listener_name_count != 0) {
      // The HTTPS listeners a TLS request's SNI and Host must agree on (else 421); "*" for one without hostname.
      std::cout << " (listeners";
      for (const format::StrRef& n : view.listener_names(e.scope))
        std::cout << " " << (n.length == 0 ? std::string_view("*") : view.str(n));
      std::cout << ")";
    }
    if (i + 1 == view.scopes().size()) std::cout << "\n";
  }
  for (const format::HostEntry& host : view.hosts()) {
    std::cout << "\nhost " << host_label(view, host);
    if (host.scope != kSharedScope) std::cout << "  scope " << host.scope;
    if (host.tls != format::kNone) std::cout << "  tls " << tls_text(view, view.tls()[host.tls]);
    if ((host.flags & format::kRegexPaths) != 0) std::cout << "  regex paths";
    if ((host.flags & format::kAnyDepth) != 0) std::cout << "  any depth";
    if ((host.flags & format::kIsolated) != 0) std::cout << "  isolated";
    std::cout << policies_text(view, host.policies) << "\n";
    for (const format::RuleEntry& r : view.rules().subspan(host.first_rule, host.rule_count)) {
      const format::SourceEntry& s = view.source_of(r);
      const format::BackendEntry& b = view.backends()[r.backend];
      std::cout << "  " << path_type_name(r.declared) << " " << rule_path(view, r) << " -> " << backend_name(view, b)
                << " (" << source_text(view, s) << ") [" << endpoints_text(view, b)
                << "]" << conditions_text(view, r) << policies_text(view, r.policies) << "\n";
    }
  }
  return 0;
}

// The request `kroute-table lookup` asks about: its method, headers ("Name: value") and query, as the module
// would give them to the lookup.
class CommandRequest {
 public:
  CommandRequest(std::string method, const std::vector<std::string>& headers, std::string_view args)
      : method_(std::move(method)), args_(args) {
    for (const std::string& h : headers) {
      const std::size_t colon = h.find(':');
      if (colon == std::string::npos || colon == 0) throw std::invalid_argument("--header needs 'Name: value', not '" + h + "'");
      std::string_view value = std::string_view(h).substr(colon + 1);
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
      headers_.emplace_back(h.substr(0, colon), std::string(value));
    }
  }
  const std::vector<std::pair<std::string, std::string>>& headers() const { return headers_; }
  const std::string& method() const { return method_; }

  RequestData data() const {
    RequestData d;
    d.method = method_;
    d.args = args_;
    d.context = this;
    d.header = [](const void* context, std::string_view name, std::string_view& value) noexcept {
      const auto* self = static_cast<const CommandRequest*>(context);
      std::string joined;
      bool found = false;
      for (const auto& [key, v] : self->headers_) {
        if (key.size() != name.size() ||
            !std::equal(key.begin(), key.end(), name.begin(), [](char a, char b) {
              return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
            }))
          continue;
        joined += (found ? ", " : "") + v;
        found = true;
      }
      if (!found) return false;
      try {
        value = self->memory_.emplace_back(std::move(joined));
      } catch (...) {
        return false;
      }
      return true;
    };
    d.scratch = [](const void* context, std::size_t size) noexcept -> char* {
      try {
        return static_cast<const CommandRequest*>(context)->memory_.emplace_back(size, '\0').data();
      } catch (...) {
        return nullptr;
      }
    };
    return d;
  }

 private:
  std::string method_;
  std::string_view args_;
  std::vector<std::pair<std::string, std::string>> headers_;
  mutable std::deque<std::string> memory_;  // what `header` and `scratch` hand out, for the request's life
};

int lookup_command(const std::string& dir, const std::string& host, const std::string& path, const std::string& method,
                   const std::vector<std::string>& headers, const std::string& local_address, bool json) {
  const LocalArgument local = local_address.empty() ? LocalArgument{} : parse_local(local_address);
  TableReader reader(dir);
  const MappedSnapshot* snapshot = open_current(reader, dir);
  if (snapshot == nullptr) return kExitError;
  const SnapshotView& view = snapshot->view;
  const ScopeId scope = local_address.empty() ? kSharedScope : view.scope_for(local.family, local.address, local.port);
  const std::string_view request_path = std::string_view(path).substr(0, path.find('?'));
  const std::string_view args =
      path.find('?') == std::string::npos ? std::string_view() : std::string_view(path).substr(path.find('?') + 1);
  PatternCache cache;
  const PathPatterns patterns(view, cache);
  PathCaptures captures;
  const CommandRequest request(method, headers, args);
  const RequestData data = request.data();
  const RouteMatch m = view.lookup(host, request_path, &patterns, &captures, &data, scope);
  // What the rewrite (if any) sends upstream, expanded as the module does.
  std::string upstream_uri;
  if (m.rule != nullptr) {
    for (const format::PolicyRecord& p : view.policies(m.rule->policies)) {
      if (p.kind != format::PolicyKind::kRewrite) continue;
      TemplateContext context;
      context.scheme = "http";
      context.host = host;
      context.http_host = host;
      context.request_uri = path;
      context.uri = request_path;
      context.args = args;
      context.subject = request_path;
      context.captures = captures.spans;
      context.capture_count = captures.count;
      upstream_uri.resize(template_length(view.str(p.a), context));
      std::size_t query = 0;
      expand_template(view.str(p.a), context, upstream_uri.data(), &query);
      // As the module: the template's own '?' starts the arguments, the request's follow them.
      if (!args.empty()) upstream_uri += (query < upstream_uri.size() ? "&" : "?") + std::string(args);
    }
  }
  const int status = m.backend == nullptr ? 404 : (m.backend->ready_count == 0 ? 503 : 200);
  if (json) {
    Json::Value out;
    out["generation"] = Json::UInt64(view.generation());
    out["request"]["host"] = host;
    out["request"]["path"] = path;
    out["request"]["method"] = method;
    for (const auto& [name, value] : request.headers()) out["request"]["headers"][name].append(value);
    if (!local_address.empty()) out["request"]["local"] = local_address;
    out["scope"] = scope;
    if (const format::ScopeEntry* entry = view.scope_entry(scope)) out["scopeName"] = std::string(view.str(entry->name));
    out["match"] = m.rule != nullptr ? "rule" : (m.default_backend ? "default-backend" : "none");
    out["status"] = status;
    if (m.rule != nullptr) {
      out["host"] = host_label(view, *m.host);
      out["hostMatch"] = host_match_name(m.host_match);
      out["path"] = rule_path(view, *m.rule);
      out["pathType"] = path_type_name(m.rule->declared);
      out["sslRedirect"] = redirects_to_https(view, m.rule->policies);
      if ((m.rule->flags & format::kHasConditions) != 0) out["conditions"] = conditions_json(view, *m.rule);
      if (m.rule->policies != format::kNone) out["policies"] = policies_json(view, m.rule->policies);
      if (!upstream_uri.empty()) out["upstreamUri"] = upstream_uri;
      const format::SourceEntry& s = view.source_of(*m.rule);
      out["source"] = source_json(view, s);
      if (s.kind.length == 0) {
        out["ingress"]["namespace"] = std::string(view.str(s.ns));
        out["ingress"]["name"] = std::string(view.str(s.name));
      }
    }
    if (m.server != nullptr && m.server->policies != format::kNone)
      out["hostPolicies"] = policies_json(view, m.server->policies);
    if (m.backend != nullptr) out["backend"] = backend_json(view, *m.backend);
    print_json(out);
  } else {
    std::cout << method << " " << host << " " << path << " (generation " << view.generation() << ")\n";
    if (!local_address.empty()) std::cout << "  scope    " << scope_text(view, scope) << ", from " << local_address << "\n";
    if (m.rule != nullptr) {
      const format::SourceEntry& s = view.source_of(*m.rule);
      std::cout << "  host     " << host_label(view, *m.host) << " (" << host_match_name(m.host_match) << " match)\n"
                << "  rule     " << path_type_name(m.rule->declared) << " " << rule_path(view, *m.rule)
                << conditions_text(view, *m.rule) << "\n"
                << "  source   " << source_text(view, s) << "\n";
      if (m.rule->policies != format::kNone) std::cout << "  policies" << policies_text(view, m.rule->policies) << "\n";
      if (!upstream_uri.empty()) std::cout << "  upstream " << upstream_uri << "\n";
    } else if (m.default_backend) {
      std::cout << "  no rule matches: the default backend serves it\n";
    } else {
      std::cout << "  no rule matches and there is no default backend: 404\n";
    }
    if (m.backend != nullptr) {
      std::cout << "  backend  " << backend_name(view, *m.backend) << "\n"
                << "  endpoints " << endpoints_text(view, *m.backend) << "\n";
      if (status == 503) std::cout << "  no ready endpoint: 503\n";
    }
  }
  return m.backend == nullptr ? kExitNoRoute : 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kroute-table: build, inspect and query kroute route table snapshots"};
  app.require_subcommand(1);
  std::string dir = "/run/kroute";
  if (const char* env = std::getenv("KROUTE_TABLE_DIR")) dir = env;
  app.add_option("-d,--dir", dir, "table directory (env KROUTE_TABLE_DIR)")->capture_default_str();

  std::string file;
  std::size_t keep = 3;
  std::string mode = "0644";
  std::string group;
  bool quiet = false;
  CLI::App* build = app.add_subcommand(
      "build", "build a snapshot from a JSON description and publish it (waits up to 5 s for another build on DIR)");
  build->add_option("file", file, "description file, - for stdin (docs/table-description.md)")->required();
  build->add_option("--keep", keep, "snapshots kept in the directory")->capture_default_str()->check(CLI::Range(1, 1000));
  build->add_option("--mode", mode, "file mode of the snapshot (octal); 0640 once it holds private keys")
      ->capture_default_str();
  build->add_option("--group", group, "group of the snapshot files (name or number), e.g. nginx's workers' group");
  build->add_flag("-q,--quiet", quiet, "print nothing on success");

  bool json = false;
  CLI::App* dump = app.add_subcommand("dump", "print the current snapshot");
  dump->add_flag("--json", json, "print JSON");

  std::string host;
  std::string path;
  std::string method = "GET";
  std::vector<std::string> headers;
  CLI::App* lookup = app.add_subcommand("lookup", "show which rule, Ingress and backend serve HOST PATH (exit 2: no route)");
  lookup->add_option("host", host, "request host, as a client sends it")->required();
  lookup->add_option("path", path, "request path, with ?query for query parameter conditions")->required();
  lookup->add_option("--method", method, "request method, for method conditions")->capture_default_str();
  lookup->add_option("--header", headers, "a request header 'Name: value', for header conditions (repeatable)");
  std::string local;
  lookup->add_option("--local", local,
                     "the local ADDRESS[:PORT] the request arrived on ([v6]:port, :port for any address), which "
                     "picks the scope; without it, the shared scope");
  lookup->add_flag("--json", json, "print JSON");

  CLI11_PARSE(app, argc, argv);
  try {
    if (build->parsed()) {
      PublisherOptions options{dir, keep};
      // Another build on the same directory is usually seconds from done; an agent holds it for good.
      options.wait_for_directory = std::chrono::seconds(5);
      std::string error;
      // Unlike the agent, any mode: a table built from a description may hold no private keys at all.
      if (!parse_file_mode(mode, "--mode", true, options.file_mode, error) ||
          (!group.empty() && !parse_group(group, "--group", options.group, error))) {
        std::cerr << "error: " << error << "\n";
        return kExitError;
      }
      return build_command(dir, file, options, quiet);
    }
    if (dump->parsed()) return dump_command(dir, json);
    return lookup_command(dir, host, path, method, headers, local, json);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return kExitError;
  }
}
