#include "description.h"

#include "ingress/annotations.h"
#include "ingress/canary.h"
#include "ingress/policies.h"
#include "policy/kinds.h"
#include "validate.h"

#include <json/json.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <deque>
#include <iomanip>
#include <limits>
#include <initializer_list>
#include <map>
#include <memory>
#include <set>
#include <sstream>

namespace kroute {

namespace {

class Parser {
 public:
  explicit Parser(DescriptionResult& out) : out_(out), d_(out.description) {}

  void run(const Json::Value& root) {
    if (!object(root, "(top level)", {"backends", "ingresses", "defaultBackend", "defaultCertificate", "scopes"})) return;
    const Json::Value& scopes = root["scopes"];
    if (array(scopes, "scopes"))
      for (Json::ArrayIndex i = 0; i < scopes.size(); ++i) scope(scopes[i], index("scopes", i));
    const Json::Value& backends = root["backends"];
    if (array(backends, "backends"))
      for (Json::ArrayIndex i = 0; i < backends.size(); ++i) backend(backends[i], index("backends", i));
    const Json::Value& ingresses = root["ingresses"];
    if (array(ingresses, "ingresses"))
      for (Json::ArrayIndex i = 0; i < ingresses.size(); ++i) ingress(ingresses[i], index("ingresses", i));
    // As the agent does: canary Ingresses join their primaries' rules (a problem is an error here).
    agent::merge_canaries(
        d_.model.rules, canaries_,
        [&](std::size_t c, std::size_t r) {
          const std::uint32_t backend = canaries_[c].rules[r].backend;
          return backend == kNoBackend ? kNoRecordBackend : backend;
        },
        [&](const Source& source, std::string, std::string message) {
          error("ingresses (" + source.ns + "/" + source.name + ")", message);
        });
    if (root.isMember("defaultCertificate"))
      d_.model.default_certificate = certificate(root["defaultCertificate"], "defaultCertificate");
    if (root.isMember("defaultBackend")) {
      d_.default_backend_field = "defaultBackend";
      d_.model.default_backend = backend_ref(root["defaultBackend"], "defaultBackend");
    }
  }

 private:
  static std::string index(const std::string& field, Json::ArrayIndex i) {
    return field + "[" + std::to_string(i) + "]";
  }

  void error(const std::string& field, const std::string& problem) { out_.errors.push_back(field + ": " + problem); }

  bool object(const Json::Value& v, const std::string& field, std::initializer_list<const char*> allowed) {
    if (!v.isObject()) {
      error(field, "must be an object");
      return false;
    }
    const std::set<std::string> known(allowed.begin(), allowed.end());
    for (const std::string& key : v.getMemberNames()) {
      if (!known.contains(key)) error(field + "." + key, "unknown field");
    }
    return true;
  }

  bool array(const Json::Value& v, const std::string& field) {
    if (v.isNull()) return false;
    if (!v.isArray()) {
      error(field, "must be an array");
      return false;
    }
    return true;
  }

  std::string string(const Json::Value& parent, const char* key, const std::string& field, bool required) {
    const Json::Value& v = parent[key];
    if (v.isNull()) {
      if (required) error(field + "." + key, "is required");
      return {};
    }
    if (!v.isString()) {
      error(field + "." + key, "must be a string");
      return {};
    }
    return v.asString();
  }

  std::int64_t integer(const Json::Value& parent, const char* key, const std::string& field, std::int64_t min,
                       std::int64_t max, std::int64_t fallback) {
    const Json::Value& v = parent[key];
    if (v.isNull()) return fallback;
    if (!v.isIntegral() || v.asLargestInt() < min || v.asLargestInt() > max) {
      error(field + "." + key, "must be an integer from " + std::to_string(min) + " to " + std::to_string(max));
      return fallback;
    }
    return v.asLargestInt();
  }

  bool boolean(const Json::Value& parent, const char* key, const std::string& field, bool fallback) {
    const Json::Value& v = parent[key];
    if (v.isNull()) return fallback;
    if (!v.isBool()) {
      error(field + "." + key, "must be true or false");
      return fallback;
    }
    return v.asBool();
  }

  // {"certificate": PEM, "key": PEM}
  Certificate certificate(const Json::Value& c, const std::string& field) {
    if (!object(c, field, {"certificate", "key"})) return {};
    return {string(c, "certificate", field, true), string(c, "key", field, true)};
  }

  // A scope (its ScopeId is its position + 1): {"name", "locals": [{"address", "port"}], "defaultCertificate",
  // "listenerNames": ["", "example.org", "*.example.org"]}.
  void scope(const Json::Value& v, const std::string& field) {
    Scope s;
    if (object(v, field, {"name", "locals", "defaultCertificate", "listenerNames"})) {
      s.name = string(v, "name", field, false);
      const Json::Value& locals = v["locals"];
      if (array(locals, field + ".locals")) {
        for (Json::ArrayIndex i = 0; i < locals.size(); ++i) {
          const std::string lf = index(field + ".locals", i);
          if (!object(locals[i], lf, {"address", "port"})) continue;
          s.locals.push_back({string(locals[i], "address", lf, false),
                              static_cast<std::uint16_t>(integer(locals[i], "port", lf, 0, 65535, 0))});
        }
      } else if (locals.isNull()) {
        error(field + ".locals", "is required");
      }
      if (v.isMember("defaultCertificate"))
        s.default_certificate = certificate(v["defaultCertificate"], field + ".defaultCertificate");
      const Json::Value& names = v["listenerNames"];
      if (!names.isNull() && array(names, field + ".listenerNames")) {
        for (Json::ArrayIndex i = 0; i < names.size(); ++i) {
          if (names[i].isString()) s.listener_names.push_back(names[i].asString());
          else error(index(field + ".listenerNames", i), "must be a string");
        }
      }
    }
    d_.model.scopes.push_back(std::move(s));
    d_.scope_fields.push_back(field);
  }

  // `parent.scope`: a ScopeId, `fallback` when not given (the builder checks that the scope exists).
  ScopeId scope_id(const Json::Value& parent, const std::string& field, ScopeId fallback) {
    return static_cast<ScopeId>(integer(parent, "scope", field, 0, 65535, fallback));
  }

  void backend(const Json::Value& v, const std::string& field) {
    if (!object(v, field, {"name", "namespace", "service", "port", "endpoints"})) return;
    Backend b;
    const std::string name = string(v, "name", field, true);
    b.ns = string(v, "namespace", field, true);
    b.service = string(v, "service", field, true);
    const Json::Value& port = v["port"];
    if (port.isString() && !port.asString().empty()) {
      b.port_name = port.asString();
    } else if (port.isIntegral() && port.asLargestInt() >= 1 && port.asLargestInt() <= 65535) {
      b.port = static_cast<std::uint32_t>(port.asLargestInt());
    } else {
      error(field + ".port", "must be a port number (1-65535) or a port name");
    }
    const Json::Value& endpoints = v["endpoints"];
    if (array(endpoints, field + ".endpoints")) {
      for (Json::ArrayIndex i = 0; i < endpoints.size(); ++i) {
        const std::string ef = index(field + ".endpoints", i);
        const Json::Value& e = endpoints[i];
        if (!object(e, ef, {"address", "port", "weight", "ready", "serving", "terminating"})) continue;
        Endpoint ep;
        ep.address = string(e, "address", ef, true);
        ep.port = static_cast<std::uint16_t>(integer(e, "port", ef, 1, 65535, 0));
        if (e["port"].isNull()) error(ef + ".port", "is required");
        ep.weight = static_cast<std::uint16_t>(integer(e, "weight", ef, 0, 65535, 1));
        ep.ready = boolean(e, "ready", ef, true);
        ep.serving = boolean(e, "serving", ef, ep.ready);
        ep.terminating = boolean(e, "terminating", ef, false);
        b.endpoints.push_back(std::move(ep));
      }
    }
    if (name.empty()) return;
    if (!backend_names_.emplace(name, static_cast<std::uint32_t>(d_.model.backends.size())).second) {
      error(field + ".name", "backend \"" + name + "\" is defined twice");
      return;
    }
    d_.model.backends.push_back(std::move(b));
    d_.backend_fields.push_back(field);
  }

  std::uint32_t backend_ref(const Json::Value& v, const std::string& field) {
    if (!v.isString()) {
      error(field, "must name a backend");
      return kNoBackend;
    }
    const auto it = backend_names_.find(v.asString());
    if (it == backend_names_.end()) {
      error(field, "no backend named \"" + v.asString() + "\"");
      return kNoBackend;
    }
    return it->second;
  }

  std::int64_t timestamp(const Json::Value& parent, const std::string& field) {
    const Json::Value& v = parent["creationTimestamp"];
    if (v.isNull()) return 0;
    if (v.isIntegral()) return v.asLargestInt();
    if (v.isString()) {
      std::tm tm{};
      std::istringstream in(v.asString());
      in >> std::get_time(&tm, "%Y-%m-%dT%H:%M:%SZ");
      if (!in.fail() && in.peek() == std::char_traits<char>::eof()) return timegm(&tm);
    }
    error(field + ".creationTimestamp", "must be RFC 3339 UTC (\"2026-01-02T03:04:05Z\") or Unix seconds");
    return 0;
  }

  void ingress(const Json::Value& v, const std::string& field) {
    if (!object(v, field, {"namespace", "name", "creationTimestamp", "annotations", "rules", "tls", "sslRedirect",
                           "scope", "hostPolicies", "kind"}))
      return;
    // Everything of the Ingress is in its scope, unless a rule, TLS entry or host policy names another.
    const ScopeId ingress_scope = scope_id(v, field, kSharedScope);
    Source source;
    source.ns = string(v, "namespace", field, true);
    source.name = string(v, "name", field, true);
    source.created_unix = timestamp(v, field);
    // What the table says it came from: "" (an Ingress) unless given, as "HTTPRoute" for a Gateway route.
    source.kind = string(v, "kind", field, false);
    const agent::IngressAnnotations annotations = ingress_annotations(v, field);
    const auto source_index = static_cast<std::uint32_t>(d_.model.sources.size());
    d_.model.sources.push_back(source);
    d_.source_fields.push_back(field);

    std::vector<std::string> tls_names;
    const Json::Value& tls = v["tls"];
    if (array(tls, field + ".tls")) {
      for (Json::ArrayIndex t = 0; t < tls.size(); ++t) {
        const std::string tf = index(field + ".tls", t);
        if (!object(tls[t], tf, {"hosts", "secretName", "certificate", "key", "scope"})) continue;
        const ScopeId tls_scope = scope_id(tls[t], tf, ingress_scope);
        const std::string secret = string(tls[t], "secretName", tf, true);
        const Certificate certificate{string(tls[t], "certificate", tf, false), string(tls[t], "key", tf, false)};
        const Json::Value& hosts = tls[t]["hosts"];
        if (!array(hosts, tf + ".hosts")) continue;
        for (Json::ArrayIndex h = 0; h < hosts.size(); ++h) {
          if (!hosts[h].isString()) {
            error(index(tf + ".hosts", h), "must be a string");
            continue;
          }
          d_.model.tls.push_back({tls_scope, hosts[h].asString(), source.ns, secret, source_index, certificate});
          d_.tls_fields.push_back(index(tf + ".hosts", h));
          tls_names.push_back(lowercase(hosts[h].asString()));
        }
      }
    }
    // As the agent does (compiler.cc): a rule's records from the Ingress's annotations (the builder
    // settles ssl-redirect against every TLS entry); `has_tls` picks the www redirect's scheme. Host
    // names compare in any case, as the builder stores them.
    const auto has_tls = [&](const std::string& host) {
      const std::string name = lowercase(host);
      return std::any_of(tls_names.begin(), tls_names.end(),
                         [&](const std::string& tls_name) { return agent::tls_name_covers(tls_name, name); });
    };
    std::vector<std::string> hosts;
    const Json::Value& rules = v["rules"];
    if (array(rules, field + ".rules")) {
      for (Json::ArrayIndex r = 0; r < rules.size(); ++r) {
        const std::string rf = index(field + ".rules", r);
        const Json::Value& rule = rules[r];
        if (!object(rule, rf, {"host", "paths", "scope"})) continue;
        const std::string host = string(rule, "host", rf, false);
        const ScopeId rule_scope = scope_id(rule, rf, ingress_scope);
        const Json::Value& paths = rule["paths"];
        if (!array(paths, rf + ".paths")) {
          if (paths.isNull()) error(rf + ".paths", "is required");
          continue;
        }
        for (Json::ArrayIndex p = 0; p < paths.size(); ++p) {
          const std::string pf = index(rf + ".paths", p);
          if (Rule* added = path(paths[p], pf, host, source_index)) {
            added->scope = rule_scope;
            added->regex = agent::regex_paths(annotations);
            // A path's own records follow the ones its Ingress's annotations make.
            std::vector<PolicyRecord> given = std::move(added->policies);
            if (annotations.canary) {
              if (!given.empty() || !added->conditions.empty())
                error(pf, "a canary Ingress's paths take no policies or conditions of their own");
              if (canaries_.empty() || canaries_.back().source.name != source.name ||
                  canaries_.back().source.ns != source.ns) {
                canary_annotations_.push_back(annotations);
                canaries_.push_back({source, &canary_annotations_.back(), {}});
              }
              canaries_.back().rules.push_back(std::move(*added));
              d_.model.rules.pop_back();
              d_.rule_fields.pop_back();
              continue;
            }
            added->policies = agent::rule_policies(annotations, added->path);
            added->policies.insert(added->policies.end(), given.begin(), given.end());
          }
        }
        if (paths.size() > 0 && std::find(hosts.begin(), hosts.end(), host) == hosts.end()) hosts.push_back(host);
      }
    }
    const std::size_t first_policy = d_.model.host_policies.size();
    const std::size_t first_alias = d_.model.aliases.size();
    if (!annotations.canary) agent::host_policies(annotations, hosts, has_tls, d_.model.host_policies, d_.model.aliases);
    for (std::size_t i = first_policy; i < d_.model.host_policies.size(); ++i) {
      d_.model.host_policies[i].source = source_index;
      d_.model.host_policies[i].scope = ingress_scope;
      d_.host_policy_fields.push_back(field + ".annotations");
    }
    for (std::size_t i = first_alias; i < d_.model.aliases.size(); ++i) d_.model.aliases[i].source = source_index;
    if (ingress_scope != kSharedScope && d_.model.aliases.size() > first_alias)
      error(field + ".annotations", "host aliases (server-alias) are of the shared scope; this Ingress is in scope " +
                                        std::to_string(ingress_scope));
    const Json::Value& host_policies = v["hostPolicies"];
    if (array(host_policies, field + ".hostPolicies")) {
      for (Json::ArrayIndex i = 0; i < host_policies.size(); ++i)
        host_policy(host_policies[i], index(field + ".hostPolicies", i), source_index, ingress_scope);
    }
  }

  // Host-wide records as the table holds them: {"host", "scope", "policies": [records]}.
  void host_policy(const Json::Value& v, const std::string& field, std::uint32_t source, ScopeId fallback) {
    if (!object(v, field, {"host", "scope", "policies"})) return;
    HostPolicy policy;
    policy.host = string(v, "host", field, true);
    policy.source = source;
    policy.scope = scope_id(v, field, fallback);
    policy.records = records(v["policies"], field + ".policies");
    if (v["policies"].isNull()) error(field + ".policies", "is required");
    d_.model.host_policies.push_back(std::move(policy));
    d_.host_policy_fields.push_back(field);
  }

  // metadata.annotations, read by the agent's code; a value it cannot use is an error here (the agent
  // keeps the default and warns), as every other mistake in a description is. `sslRedirect: false` is
  // the annotation ssl-redirect "false".
  agent::IngressAnnotations ingress_annotations(const Json::Value& v, const std::string& field) {
    const std::string af = field + ".annotations";
    const Json::Value& given = v["annotations"];
    agent::AnnotationReading reading;
    if (!given.isNull()) {
      if (!given.isObject()) {
        error(af, "must be an object of strings");
      } else {
        for (const std::string& key : given.getMemberNames()) {
          if (!given[key].isString()) error(annotation_field(af, key), "must be a string");
        }
        reading = agent::read_annotations(given, agent::kDefaultAnnotationPrefix);
      }
    }
    for (const agent::AnnotationVerdict& verdict : reading.verdicts) {
      if (!given[verdict.key].isString()) continue;  // reported above
      if (verdict.verdict == agent::Verdict::kIgnored && verdict.why.starts_with(agent::kInvalidValue))
        error(annotation_field(af, verdict.key), verdict.why.substr(agent::kInvalidValue.size()));
      if (verdict.verdict == agent::Verdict::kRefused) error(annotation_field(af, verdict.key), "refused: " + verdict.why);
      // Client certificates need the CA of a Secret, which descriptions do not carry: never a host without it.
      if (verdict.verdict == agent::Verdict::kHonoured && verdict.key.ends_with("/auth-tls-secret"))
        error(annotation_field(af, verdict.key), "needs the Secret's ca.crt, which a description cannot give");
    }
    if (v.isMember("sslRedirect")) {
      for (const agent::AnnotationVerdict& verdict : reading.verdicts) {
        if (verdict.verdict == agent::Verdict::kHonoured && verdict.key.ends_with("/ssl-redirect"))
          error(field + ".sslRedirect", "give it or the annotation " + verdict.key + ", not both");
      }
      if (!boolean(v, "sslRedirect", field, true)) reading.values.ssl_redirect = false;
    }
    return reading.values;
  }

  static std::string annotation_field(const std::string& annotations_field, const std::string& key) {
    return annotations_field + "[\"" + agent::printable(key, 128) + "\"]";
  }

  static std::string lowercase(std::string text) {
    for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return text;
  }

  // A path's match conditions: {"method": M}, {"header": NAME, "value" or "regex": V}, {"query": ...}.
  std::vector<MatchCondition> conditions(const Json::Value& list, const std::string& field) {
    std::vector<MatchCondition> out;
    if (!array(list, field)) return out;
    for (Json::ArrayIndex i = 0; i < list.size(); ++i) {
      const std::string cf = index(field, i);
      const Json::Value& c = list[i];
      if (!object(c, cf, {"method", "header", "query", "value", "regex"})) continue;
      const int targets = c.isMember("method") + c.isMember("header") + c.isMember("query");
      if (targets != 1) {
        error(cf, "needs exactly one of method, header or query");
        continue;
      }
      if (c.isMember("method")) {
        if (c.isMember("value") || c.isMember("regex")) error(cf, "a method takes no value or regex");
        out.push_back({ConditionKind::kMethod, "", string(c, "method", cf, true)});
        continue;
      }
      const bool header = c.isMember("header");
      if (c.isMember("value") == c.isMember("regex")) {
        error(cf, "needs exactly one of value or regex");
        continue;
      }
      const bool regex = c.isMember("regex");
      const ConditionKind kind = header ? (regex ? ConditionKind::kHeaderRegex : ConditionKind::kHeaderExact)
                                        : (regex ? ConditionKind::kQueryRegex : ConditionKind::kQueryExact);
      out.push_back({kind, string(c, header ? "header" : "query", cf, true), string(c, regex ? "regex" : "value", cf, true)});
    }
    return out;
  }

  // A path's policy records as the table holds them: {"kind": NAME, "code", "flags", "value", "backend", "a", "b"}.
  std::vector<PolicyRecord> records(const Json::Value& list, const std::string& field) {
    std::vector<PolicyRecord> out;
    if (!array(list, field)) return out;
    for (Json::ArrayIndex i = 0; i < list.size(); ++i) {
      const std::string rf = index(field, i);
      const Json::Value& r = list[i];
      if (!object(r, rf, {"kind", "code", "flags", "value", "backend", "a", "b"})) continue;
      PolicyRecord record;
      const std::string kind = string(r, "kind", rf, true);
      if (kind.empty()) continue;
      if (!policy::kind_by_name(kind, record.kind)) {
        error(rf + ".kind", "no policy kind \"" + kind + "\"");
        continue;
      }
      if (r["code"].isString()) {
        if (!policy::code_by_name(record.kind, r["code"].asString(), record.code))
          error(rf + ".code", "\"" + r["code"].asString() + "\" is not a code of " + kind);
      } else {
        record.code = static_cast<std::uint16_t>(integer(r, "code", rf, 0, 65535, 0));
      }
      record.flags = static_cast<std::uint32_t>(integer(r, "flags", rf, 0, 0xffffffffLL, 0));
      record.value = static_cast<std::uint64_t>(integer(r, "value", rf, 0, std::numeric_limits<std::int64_t>::max(), 0));
      if (r.isMember("backend")) {
        const std::uint32_t backend = backend_ref(r["backend"], rf + ".backend");
        record.backend = backend == kNoBackend ? kNoRecordBackend : backend;
      }
      record.a = string(r, "a", rf, false);
      record.b = string(r, "b", rf, false);
      out.push_back(std::move(record));
    }
    return out;
  }

  // The rule of one path, for the caller to finish; null when the path is not an object.
  Rule* path(const Json::Value& v, const std::string& field, const std::string& host, std::uint32_t source) {
    if (!object(v, field, {"path", "pathType", "backend", "conditions", "policies"})) return nullptr;
    Rule rule;
    rule.host = host;
    rule.path = string(v, "path", field, false);
    rule.source = source;
    const std::string type = string(v, "pathType", field, true);
    if (type == "Exact") {
      rule.type = PathType::kExact;
    } else if (type == "Prefix") {
      rule.type = PathType::kPrefix;
    } else if (type == "ImplementationSpecific") {
      rule.type = PathType::kImplementationSpecific;
    } else if (!type.empty()) {
      error(field + ".pathType", "must be Exact, Prefix or ImplementationSpecific, not \"" + type + "\"");
    }
    rule.backend = backend_ref(v["backend"], field + ".backend");
    rule.conditions = conditions(v["conditions"], field + ".conditions");
    rule.policies = records(v["policies"], field + ".policies");
    d_.model.rules.push_back(std::move(rule));
    d_.rule_fields.push_back(field);
    return &d_.model.rules.back();
  }

  DescriptionResult& out_;
  Description& d_;
  std::map<std::string, std::uint32_t> backend_names_;
  std::vector<agent::CanaryIngress> canaries_;
  std::deque<agent::IngressAnnotations> canary_annotations_;  // what canaries_ point to
};

const std::string& field_of(const std::vector<std::string>& fields, std::uint32_t index) {
  static const std::string unknown = "(unknown)";
  return index < fields.size() ? fields[index] : unknown;
}

}  // namespace

DescriptionResult parse_description(const std::string& json_text) {
  DescriptionResult result;
  Json::CharReaderBuilder builder;
  builder["rejectDupKeys"] = true;
  builder["allowComments"] = false;
  Json::Value root;
  std::string parse_errors;
  const std::unique_ptr<Json::CharReader> reader(builder.newCharReader());
  if (!reader->parse(json_text.data(), json_text.data() + json_text.size(), &root, &parse_errors)) {
    std::string first_line = parse_errors.substr(0, parse_errors.find('\n', parse_errors.find('\n') + 1));
    for (char& c : first_line) c = c == '\n' ? ' ' : c;
    result.errors.push_back("(json): " + first_line);
    return result;
  }
  Parser(result).run(root);
  return result;
}

std::string describe(const Description& d, const Diagnostic& diagnostic) {
  switch (diagnostic.item) {
    case Item::kRule: return field_of(d.rule_fields, diagnostic.index) + ": " + diagnostic.message;
    case Item::kBackend: return field_of(d.backend_fields, diagnostic.index) + ": " + diagnostic.message;
    case Item::kEndpoint:
      return field_of(d.backend_fields, diagnostic.index) + ".endpoints[" + std::to_string(diagnostic.sub_index) +
             "]: " + diagnostic.message;
    case Item::kTls: return field_of(d.tls_fields, diagnostic.index) + ": " + diagnostic.message;
    case Item::kSource: return field_of(d.source_fields, diagnostic.index) + ": " + diagnostic.message;
    case Item::kDefaultBackend: return d.default_backend_field + ": " + diagnostic.message;
    case Item::kHostPolicy: return field_of(d.host_policy_fields, diagnostic.index) + ": " + diagnostic.message;
    case Item::kScope:
      return field_of(d.scope_fields, diagnostic.index) + ".locals[" + std::to_string(diagnostic.sub_index) + "]: " +
             diagnostic.message;
    case Item::kAlias:
      if (diagnostic.index < d.model.aliases.size())
        return field_of(d.source_fields, d.model.aliases[diagnostic.index].source) + ".annotations: " +
               diagnostic.message;
      break;
  }
  return diagnostic.message;
}

std::string describe(const Description& d, const Conflict& conflict) {
  const auto& fields = conflict.item == Item::kRule ? d.rule_fields : d.tls_fields;
  const auto source_of = [&](std::uint32_t i) {
    const std::uint32_t s = conflict.item == Item::kRule ? d.model.rules[i].source : d.model.tls[i].source;
    return d.model.sources[s].ns + "/" + d.model.sources[s].name;
  };
  const std::string what = conflict.item == Item::kRule
                               ? "host \"" + conflict.host + "\" path \"" + (conflict.path.empty() ? "/" : conflict.path) + "\""
                               : "TLS for host \"" + conflict.host + "\"";
  return field_of(fields, conflict.loser) + " (" + source_of(conflict.loser) + "): " + what + " is already taken by " +
         field_of(fields, conflict.winner) + " (" + source_of(conflict.winner) + ", older); this one is ignored";
}

}  // namespace kroute
