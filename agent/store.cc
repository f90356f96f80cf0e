#include "store.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <ctime>
#include <memory>

#include "host.h"
#include "log.h"
#include "object_meta.h"
#include "text.h"
#include "json_read.h"
#include "policy/basic_auth.h"
#include "validate.h"

namespace kroute::agent {
namespace {

// The key of a bad object in Store::reported_: "kind key"; with key "", the prefix of the kind's entries.
std::string reported_id(Kind kind, const std::string& key) {
  std::string id = kind_info(kind).name;
  id += ' ';
  id += key;
  return id;
}

ServiceBackendRef parse_backend(const Json::Value& backend) {
  ServiceBackendRef ref;
  if (at(backend, "resource").isObject()) {
    ref.is_resource = true;
    // Named in the warning that the backend is unsupported, nowhere else.
    ref.service = printable(str(at(backend, "resource", "name")));
    return ref;
  }
  const Json::Value& service = at(backend, "service");
  ref.service = str(at(service, "name"));
  ref.port_number = port_number(at(service, "port", "number"));
  ref.port_name = str(at(service, "port", "name"));
  return ref;
}

// Why a service reference cannot be used ("" when it can, or when the compiler has its own message: a
// missing name or port). The service and port names reach the table and nginx's $kroute_service.
std::string check_backend(const ServiceBackendRef& ref) {
  if (ref.is_resource) return {};
  if (!ref.service.empty()) {
    if (std::string problem = check_dns_label(ref.service); !problem.empty()) return "backend service name " + problem;
  }
  if (!ref.port_name.empty()) {
    if (std::string problem = check_port_name(ref.port_name); !problem.empty()) return "backend " + problem;
  }
  return {};
}

std::vector<LoadBalancerAddress> parse_lb_ingress(const Json::Value& list) {
  std::vector<LoadBalancerAddress> out;
  for (const Json::Value& item : elements(list)) out.push_back({str(at(item, "ip")), str(at(item, "hostname"))});
  return out;
}

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

std::string check_tls_pair(const std::string& cert_pem, const std::string& key_pem, std::string& expired_on) {
  expired_on.clear();
  std::unique_ptr<BIO, BioDeleter> cert_bio(BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size())));
  std::unique_ptr<X509, X509Deleter> cert(PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return "tls.crt holds no PEM certificate";
  std::unique_ptr<BIO, BioDeleter> key_bio(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
  std::unique_ptr<EVP_PKEY, KeyDeleter> key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (!key) return "tls.key holds no PEM private key";
  if (X509_check_private_key(cert.get(), key.get()) != 1) return "tls.key does not match the certificate in tls.crt";
  const ASN1_TIME* not_after = X509_get0_notAfter(cert.get());
  if (X509_cmp_current_time(not_after) < 0) {
    expired_on = "an unreadable date";
    if (std::tm tm{}; ASN1_TIME_to_tm(not_after, &tm) == 1) {
      char text[32];
      std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
      expired_on = text;
    }
  }
  return {};
}

// PEM certificates only (a CA bundle): at least one, every block a certificate.
std::string check_ca_bundle(const std::string& pem) {
  std::unique_ptr<BIO, BioDeleter> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  int count = 0;
  while (std::unique_ptr<X509, X509Deleter> cert{PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)}) ++count;
  const unsigned long last = ERR_peek_last_error();
  const bool at_end = ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE;
  ERR_clear_error();
  if (count == 0) return "ca.crt holds no PEM certificate";
  if (!at_end) return "ca.crt holds something besides PEM certificates";
  return {};
}

// PEM CRLs only (auth-tls-secret's ca.crl): at least one, every block a CRL.
std::string check_crl_bundle(const std::string& pem) {
  std::unique_ptr<BIO, BioDeleter> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  int count = 0;
  while (X509_CRL* crl = PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr)) {
    X509_CRL_free(crl);
    ++count;
  }
  const unsigned long last = ERR_peek_last_error();
  const bool at_end = ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE;
  ERR_clear_error();
  if (count == 0) return "ca.crl holds no PEM CRL";
  if (!at_end) return "ca.crl holds something besides PEM CRLs";
  return {};
}

void parse_paths(const Json::Value& paths, const std::string& host_problem, IngressRule& rule) {
  for (const Json::Value& p : elements(paths)) {
    IngressPath path;
    path.path = str(at(p, "path"));
    const std::string type = str(at(p, "pathType"));
    if (type == "Exact") {
      path.type = PathType::kExact;
    } else if (type == "Prefix") {
      path.type = PathType::kPrefix;
    } else if (type == "ImplementationSpecific") {
      path.type = PathType::kImplementationSpecific;
    } else {
      path.type_error = type.empty() ? "no pathType" : "unknown pathType " + printable(type, 64);
    }
    path.backend = parse_backend(at(p, "backend"));
    if (path.type_error.empty()) path.type_error = host_problem;
    if (path.type_error.empty()) path.type_error = check_rule_path(path.path);
    if (path.type_error.empty()) path.type_error = check_backend(path.backend);
    if (!path.type_error.empty()) {
      path.path = printable(path.path);
      path.backend.service = printable(path.backend.service, 64);
    }
    rule.paths.push_back(std::move(path));
  }
}

void parse_tls(const Json::Value& list, Ingress& out) {
  for (const Json::Value& t : elements(list)) {
    IngressTls tls;
    tls.secret_name = str(at(t, "secretName"));
    if (!tls.secret_name.empty()) {
      if (std::string problem = check_dns_subdomain(tls.secret_name); !problem.empty()) {
        out.problems.push_back({"InvalidTLS", "a spec.tls entry is skipped: secretName " + problem});
        continue;
      }
    }
    for (const Json::Value& h : elements(at(t, "hosts"))) {
      const std::string host = str(h);
      std::string normalized;
      if (std::string problem = check_rule_host(host, normalized); !problem.empty()) {
        out.problems.push_back({"InvalidTLS", "spec.tls host \"" + printable(host) + "\" is skipped: " + problem});
        continue;
      }
      tls.hosts.push_back(host);
    }
    out.tls.push_back(std::move(tls));
  }
}

}  // namespace

std::string object_key(const Json::Value& object) {
  std::string ns;
  std::string name;
  if (!common_metadata(object, ns, name).empty()) return {};
  return ns.empty() ? name : ns + "/" + name;
}

bool Ingress::same_routes(const Ingress& o) const {
  // Every field but these two, from the defaulted ==, so a new field is never forgotten here.
  Ingress same = *this;
  same.resource_version = o.resource_version;
  same.status = o.status;
  return same == o;
}

bool TlsSecret::operator==(const TlsSecret& o) const {
  return ns == o.ns && name == o.name && error == o.error && expired_on == o.expired_on && certificate.chain_pem == o.certificate.chain_pem &&
         certificate.key_pem == o.certificate.key_pem && ca_pem == o.ca_pem && ca_error == o.ca_error &&
         crl_pem == o.crl_pem && crl_error == o.crl_error && auth == o.auth && auth_map == o.auth_map;
}

std::string parse_ingress(const Json::Value& object, Ingress& out, std::string_view annotation_prefix) {
  if (std::string error = common_metadata(object, out.ns, out.name); !error.empty()) return error;
  if (std::string error = check_object_names(out.ns, out.name, check_dns_subdomain); !error.empty()) return error;
  const Json::Value& metadata = object["metadata"];
  out.uid = str(metadata["uid"]);
  out.resource_version = str(metadata["resourceVersion"]);
  if (!parse_rfc3339(str(metadata["creationTimestamp"]), out.created_unix)) out.created_unix = 0;
  const Json::Value& annotations = metadata["annotations"];
  const Json::Value& annotation = at(annotations, "kubernetes.io/ingress.class");
  if (annotation.isString()) out.class_annotation = annotation.asString();
  AnnotationReading reading = read_annotations(annotations, annotation_prefix);
  out.annotations = std::move(reading.values);
  out.problems.insert(out.problems.end(), reading.problems.begin(), reading.problems.end());
  const Json::Value& spec = object["spec"];
  if (!spec.isObject()) return "no spec";
  if (spec["ingressClassName"].isString()) out.class_name = spec["ingressClassName"].asString();
  if (spec["defaultBackend"].isObject()) {
    ServiceBackendRef ref = parse_backend(spec["defaultBackend"]);
    if (std::string problem = check_backend(ref); !problem.empty()) {
      out.problems.push_back({"InvalidBackend", "spec.defaultBackend is skipped: " + problem});
    } else {
      out.default_backend = std::move(ref);
    }
  }
  for (const Json::Value& r : elements(spec["rules"])) {
    IngressRule rule;
    rule.host = str(at(r, "host"));
    std::string host_problem;
    if (!rule.host.empty()) {
      std::string normalized;
      host_problem = check_rule_host(rule.host, normalized);
      if (!host_problem.empty()) rule.host = printable(rule.host);
    }
    parse_paths(at(r, "http", "paths"), host_problem, rule);
    out.rules.push_back(std::move(rule));
  }
  parse_tls(spec["tls"], out);
  out.status = parse_lb_ingress(at(object, "status", "loadBalancer", "ingress"));
  return {};
}

std::string parse_ingress_class(const Json::Value& object, IngressClass& out) {
  std::string ns;
  if (std::string error = common_metadata(object, ns, out.name); !error.empty()) return error;
  if (std::string error = check_object_names(ns, out.name, check_dns_subdomain); !error.empty()) return error;
  out.controller = str(at(object, "spec", "controller"));
  out.is_default = str(at(object, "metadata", "annotations", "ingressclass.kubernetes.io/is-default-class")) == "true";
  return {};
}

std::string parse_service(const Json::Value& object, Service& out) {
  if (std::string error = common_metadata(object, out.ns, out.name); !error.empty()) return error;
  if (std::string error = check_object_names(out.ns, out.name, check_dns_label); !error.empty()) return error;
  const Json::Value& spec = at(object, "spec");
  if (at(spec, "type").isString()) out.type = at(spec, "type").asString();
  out.external_name = str(at(spec, "externalName"));
  out.cluster_ip = str(at(spec, "clusterIP"));
  for (const Json::Value& p : elements(at(spec, "ports"))) {
    ServicePort port;
    port.name = str(at(p, "name"));
    port.port = port_number(at(p, "port"));
    if (at(p, "protocol").isString()) port.protocol = at(p, "protocol").asString();
    out.ports.push_back(std::move(port));
  }
  for (const Json::Value& ip : elements(at(spec, "externalIPs"))) out.external_ips.push_back(str(ip));
  out.load_balancer = parse_lb_ingress(at(object, "status", "loadBalancer", "ingress"));
  return {};
}

std::string parse_endpoint_slice(const Json::Value& object, EndpointSlice& out) {
  if (std::string error = common_metadata(object, out.ns, out.name); !error.empty()) return error;
  if (std::string error = check_object_names(out.ns, out.name, check_dns_subdomain); !error.empty()) return error;
  out.service = str(at(object, "metadata", "labels", "kubernetes.io/service-name"));
  out.address_type = str(object["addressType"]);
  for (const Json::Value& p : elements(object["ports"])) {
    SlicePort port;
    port.name = str(at(p, "name"));
    port.port = port_number(at(p, "port"));
    if (at(p, "protocol").isString()) port.protocol = at(p, "protocol").asString();
    out.ports.push_back(std::move(port));
  }
  for (const Json::Value& e : elements(object["endpoints"])) {
    SliceEndpoint endpoint;
    for (const Json::Value& a : elements(at(e, "addresses"))) endpoint.addresses.push_back(str(a));
    const Json::Value& ready = at(e, "conditions", "ready");
    const Json::Value& serving = at(e, "conditions", "serving");
    const Json::Value& terminating = at(e, "conditions", "terminating");
    endpoint.ready = !ready.isBool() || ready.asBool();
    endpoint.serving = serving.isBool() ? serving.asBool() : endpoint.ready;
    endpoint.terminating = terminating.isBool() && terminating.asBool();
    out.endpoints.push_back(std::move(endpoint));
  }
  return {};
}

std::string parse_tls_secret(const Json::Value& object, TlsSecret& out) {
  if (std::string error = common_metadata(object, out.ns, out.name); !error.empty()) return error;
  if (std::string error = check_object_names(out.ns, out.name, check_dns_subdomain); !error.empty()) return error;
  const Json::Value& crt = at(object, "data", "tls.crt");
  const Json::Value& key_data = at(object, "data", "tls.key");
  std::string cert;
  std::string key;
  if (!crt.isString() || !base64_decode(crt.asString(), cert) || cert.empty()) {
    out.error = "no tls.crt";
  } else if (!key_data.isString() || !base64_decode(key_data.asString(), key) || key.empty()) {
    out.error = "no tls.key";
  } else {
    out.error = check_tls_pair(cert, key, out.expired_on);
    // A refused PEM leaves OpenSSL's per-thread error queue filled; curl shares this thread.
    ERR_clear_error();
  }
  if (out.error.empty()) out.certificate = {std::move(cert), std::move(key)};
  if (const Json::Value& ca = at(object, "data", "ca.crt"); !ca.isNull()) {
    std::string pem;
    if (!ca.isString() || !base64_decode(ca.asString(), pem)) {
      out.ca_error = "ca.crt is not base64";
    } else {
      out.ca_error = check_ca_bundle(pem);
    }
    if (out.ca_error.empty()) out.ca_pem = std::move(pem);
  }
  if (const Json::Value& crl = at(object, "data", "ca.crl"); !crl.isNull()) {
    std::string pem;
    if (!crl.isString() || !base64_decode(crl.asString(), pem)) {
      out.crl_error = "ca.crl is not base64";
    } else {
      out.crl_error = check_crl_bundle(pem);
    }
    if (out.crl_error.empty()) out.crl_pem = std::move(pem);
  }
  if (const Json::Value& auth = at(object, "data", "auth"); auth.isString()) {
    if (!base64_decode(auth.asString(), out.auth)) out.auth.clear();
  }
  // auth-map: each key a user, its value the hash (one trailing line break dropped, as a file's).
  bool has_hash = false;
  if (const Json::Value& data = at(object, "data"); data.isObject()) {
    for (auto it = data.begin(); it != data.end(); ++it) {
      const std::string user = it.name();
      std::string value;
      if (!it->isString() || !base64_decode(it->asString(), value)) continue;
      if (value.ends_with('\n')) value.pop_back();
      if (value.ends_with('\r')) value.pop_back();
      if (user.find(':') != std::string::npos || value.find_first_of("\r\n") != std::string::npos) continue;
      has_hash = has_hash || policy::check_password_hash(value.substr(0, value.find(':'))).empty();
      out.auth_map.append(user).append(":").append(value).append("\n");
    }
  }
  if (!has_hash) out.auth_map.clear();
  return {};
}

const TlsSecret* Store::secret(const std::string& key) const {
  if (auto it = secrets.find(key); it != secrets.end()) return &it->second;
  if (auto it = opaque_secrets.find(key); it != opaque_secrets.end()) return &it->second;
  return nullptr;
}

Store::Store(Metrics& metrics, OnChange on_change, std::string annotation_prefix)
    : metrics_(metrics), on_change_(std::move(on_change)), annotation_prefix_(std::move(annotation_prefix)) {}

void Store::begin_list(Kind kind) {
  auto staging = std::make_unique<Store>(metrics_, nullptr, annotation_prefix_);
  staging->staging_ = true;
  pending_[static_cast<int>(kind)] = std::move(staging);
}

void Store::listed(Kind kind, const Json::Value& item) {
  auto it = pending_.find(static_cast<int>(kind));
  if (it == pending_.end()) return;
  it->second->reported_before_ = &reported_;
  it->second->apply(kind, kube::EventType::kAdded, item);
}

void Store::abort_list(Kind kind) { pending_.erase(static_cast<int>(kind)); }

void Store::end_list(Kind kind) {
  auto it = pending_.find(static_cast<int>(kind));
  if (it == pending_.end()) return;
  std::unique_ptr<Store> listed = std::move(it->second);
  pending_.erase(it);
  // The listed state replaces the old one at once: routes never flap empty during a relist.
  switch (kind) {
    case Kind::kIngress: ingresses = std::move(listed->ingresses); break;
    case Kind::kIngressClass: classes = std::move(listed->classes); break;
    case Kind::kService: services = std::move(listed->services); break;
    case Kind::kEndpointSlice: slices = std::move(listed->slices); break;
    case Kind::kSecret: secrets = std::move(listed->secrets); break;
    case Kind::kOpaqueSecret: opaque_secrets = std::move(listed->opaque_secrets); break;
    case Kind::kGatewayClass: gateway_classes = std::move(listed->gateway_classes); break;
    case Kind::kGateway: gateways = std::move(listed->gateways); break;
    case Kind::kHTTPRoute: http_routes = std::move(listed->http_routes); break;
    case Kind::kReferenceGrant: reference_grants = std::move(listed->reference_grants); break;
    case Kind::kNamespace: namespaces = std::move(listed->namespaces); break;
  }
  // Bad objects of the kind: what this LIST found, nothing older (objects deleted meanwhile are forgotten).
  const std::string prefix = reported_id(kind, "");
  std::erase_if(reported_, [&](const auto& entry) { return entry.first.starts_with(prefix); });
  reported_.merge(listed->reported_);
  update_gauge(kind);
  ++revisions_[static_cast<std::size_t>(kind)];
  if (on_change_) on_change_(Change::kRoutes, kind, {});
}

void Store::event(Kind kind, kube::EventType type, const Json::Value& object) {
  const Change change = apply(kind, type, object);
  if (change != Change::kNone && on_change_) on_change_(change, kind, object_key(object));
}

void Store::report_bad(Kind kind, const std::string& key, const std::string& error) {
  metrics_.bad_objects[Metrics::at(kind)].fetch_add(1, std::memory_order_relaxed);
  const std::string id = reported_id(kind, key);
  std::string& last = reported_[id];
  if (last.empty() && reported_before_ != nullptr) {
    if (auto before = reported_before_->find(id); before != reported_before_->end()) last = before->second;
  }
  if (last != error) {
    last = error;
    log::warn("skipping an object that cannot be used", {{"resource", kind_info(kind).name}, {"object", key}, {"error", error}});
  }
}

void Store::update_gauge(Kind kind) {
  if (staging_) return;
  std::size_t n = 0;
  switch (kind) {
    case Kind::kIngress: n = ingresses.size(); break;
    case Kind::kIngressClass: n = classes.size(); break;
    case Kind::kService: n = services.size(); break;
    case Kind::kEndpointSlice: n = slices.size(); break;
    case Kind::kSecret: {
      n = secrets.size();
      const auto expired = std::count_if(secrets.begin(), secrets.end(),
                                         [](const auto& entry) { return !entry.second.expired_on.empty(); });
      metrics_.tls_certificates_expired.store(static_cast<std::uint64_t>(expired), std::memory_order_relaxed);
      break;
    }
    case Kind::kOpaqueSecret: n = opaque_secrets.size(); break;
    case Kind::kGatewayClass: n = gateway_classes.size(); break;
    case Kind::kGateway: n = gateways.size(); break;
    case Kind::kHTTPRoute: n = http_routes.size(); break;
    case Kind::kReferenceGrant: n = reference_grants.size(); break;
    case Kind::kNamespace: n = namespaces.size(); break;
  }
  metrics_.objects[Metrics::at(kind)].store(n, std::memory_order_relaxed);
}

namespace {

// Stores `value` under `key`, or erases the key when there is none; returns whether the stored value changed.
template <typename T>
bool put(std::unordered_map<std::string, T>& map, const std::string& key, std::optional<T> value) {
  if (!value) return map.erase(key) > 0;
  auto [it, inserted] = map.try_emplace(key, std::move(*value));  // no move when the key exists
  if (inserted) return true;
  if (it->second == *value) return false;
  it->second = std::move(*value);
  return true;
}

// Upserts or erases one projection; returns whether the stored value changed.
template <typename T, typename Parse>
bool upsert(std::unordered_map<std::string, T>& map, const std::string& key, kube::EventType type,
            const Json::Value& object, Parse parse, std::string& error) {
  if (type == kube::EventType::kDeleted) return put<T>(map, key, std::nullopt);
  T value;
  error = parse(object, value);
  // An object we cannot read is treated as absent, so a stale version of it never routes traffic.
  return put(map, key, error.empty() ? std::optional<T>(std::move(value)) : std::nullopt);
}

// Whether every string of a JSON value, keys too, is valid UTF-8. The API server's always are; the table's
// strings (header values, hosts, paths) must be, and a Gateway API object's reach it in many fields. The
// reader bounds the nesting, so the recursion is bounded.
bool utf8_throughout(const Json::Value& value) {
  if (value.isString()) {
    const char* begin = nullptr;
    const char* end = nullptr;
    return !value.getString(&begin, &end) || is_valid_utf8(std::string_view(begin, static_cast<std::size_t>(end - begin)));
  }
  if (!value.isArray() && !value.isObject()) return true;
  for (auto it = value.begin(); it != value.end(); ++it) {
    if (value.isObject() && !is_valid_utf8(it.name())) return false;
    if (!utf8_throughout(*it)) return false;
  }
  return true;
}

// Upserts or erases a Gateway API projection. Objects whose status the agent writes (`same_spec`) report a
// status-only change as kStatus, which costs no recompile. An object with bytes that are not UTF-8 is
// refused whole, like one that cannot be read.
template <typename T, typename Parse, typename SameSpec>
Change upsert_object(std::map<std::string, T>& map, const std::string& key, kube::EventType type,
                     const Json::Value& object, Parse parse, SameSpec same_spec, std::string& error) {
  if (type == kube::EventType::kDeleted) return map.erase(key) > 0 ? Change::kRoutes : Change::kNone;
  T value;
  error = utf8_throughout(object) ? parse(object, value) : "a string of it is not valid UTF-8";
  if (!error.empty()) return map.erase(key) > 0 ? Change::kRoutes : Change::kNone;
  auto [it, inserted] = map.try_emplace(key, std::move(value));
  if (inserted) return Change::kRoutes;
  if (it->second == value) return Change::kNone;
  const bool routes = !same_spec(it->second, value);
  it->second = std::move(value);
  return routes ? Change::kRoutes : Change::kStatus;
}

}  // namespace

Change Store::apply(Kind kind, kube::EventType type, const Json::Value& object) {
  const std::string key = object_key(object);
  if (key.empty()) {
    report_bad(kind, "(unnamed)", "no metadata.name");
    return Change::kNone;
  }
  std::string error;
  Change change = Change::kNone;
  switch (kind) {
    case Kind::kIngress: {
      // Status-only updates (our own, mostly) must not cost a recompile.
      if (type == kube::EventType::kDeleted) {
        change = ingresses.erase(key) > 0 ? Change::kRoutes : Change::kNone;
        break;
      }
      Ingress value;
      error = parse_ingress(object, value, annotation_prefix_);
      if (!error.empty()) {
        change = ingresses.erase(key) > 0 ? Change::kRoutes : Change::kNone;
        break;
      }
      auto [it, inserted] = ingresses.try_emplace(key, std::move(value));
      if (inserted) {
        change = Change::kRoutes;
      } else if (!it->second.same_routes(value)) {
        it->second = std::move(value);
        change = Change::kRoutes;
      } else if (it->second.status != value.status) {
        it->second.status = std::move(value.status);
        it->second.resource_version = std::move(value.resource_version);
        change = Change::kStatus;
      } else {
        it->second.resource_version = std::move(value.resource_version);
      }
      break;
    }
    case Kind::kIngressClass:
      change = upsert(classes, key, type, object, parse_ingress_class, error) ? Change::kRoutes : Change::kNone;
      break;
    case Kind::kService:
      change = upsert(services, key, type, object, parse_service, error) ? Change::kRoutes : Change::kNone;
      break;
    case Kind::kEndpointSlice:
      change = upsert(slices, key, type, object, parse_endpoint_slice, error) ? Change::kRoutes : Change::kNone;
      break;
    case Kind::kSecret:
      change = upsert(secrets, key, type, object, parse_tls_secret, error) ? Change::kRoutes : Change::kNone;
      break;
    case Kind::kOpaqueSecret: {
      // Only what an access annotation can name (an `auth` or `ca.crt` key, or an auth-map: a key whose value is
      // a password hash) is kept: the many other Opaque Secrets of a cluster come and go without a recompile.
      std::optional<TlsSecret> value;
      if (type != kube::EventType::kDeleted) {
        error = parse_tls_secret(object, value.emplace());
        const bool useful = error.empty() && (!value->auth.empty() || !value->auth_map.empty() ||
                                              !value->ca_pem.empty() || !value->ca_error.empty());
        if (!useful) value.reset();
      }
      change = put(opaque_secrets, key, std::move(value)) ? Change::kRoutes : Change::kNone;
      break;
    }
    case Kind::kGatewayClass:
      change = upsert_object(gateway_classes, key, type, object, gateway::parse_gateway_class,
                             [](const gateway::GatewayClass& a, const gateway::GatewayClass& b) {
                               return a.controller == b.controller && a.generation == b.generation &&
                                      a.created_unix == b.created_unix;
                             }, error);
      break;
    case Kind::kGateway:
      change = upsert_object(gateways, key, type, object, gateway::parse_gateway,
                             [](const gateway::Gateway& a, const gateway::Gateway& b) { return a.same_spec(b); }, error);
      break;
    case Kind::kHTTPRoute:
      change = upsert_object(http_routes, key, type, object, gateway::parse_http_route,
                             [](const gateway::HTTPRoute& a, const gateway::HTTPRoute& b) { return a.same_spec(b); },
                             error);
      break;
    case Kind::kReferenceGrant:
      change = upsert_object(reference_grants, key, type, object, gateway::parse_reference_grant,
                             [](const auto&, const auto&) { return false; }, error);
      break;
    case Kind::kNamespace:
      change = upsert_object(namespaces, key, type, object, gateway::parse_namespace,
                             [](const auto&, const auto&) { return false; }, error);
      break;
  }
  if (!error.empty()) {
    report_bad(kind, key, error);
  } else if (!reported_.empty()) {
    reported_.erase(reported_id(kind, key));  // fixed, or deleted
  }
  update_gauge(kind);
  if (change == Change::kRoutes) ++revisions_[static_cast<std::size_t>(kind)];
  return change;
}

}  // namespace kroute::agent
