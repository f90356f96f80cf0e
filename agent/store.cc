#include "store.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <ctime>
#include <memory>

#include "log.h"
#include "text.h"

namespace kroute::agent {
namespace {

std::string str(const Json::Value& v) { return v.isString() ? v.asString() : std::string(); }

std::uint32_t port_number(const Json::Value& v) {
  if (!v.isIntegral()) return 0;
  const Json::Int64 n = v.asInt64();
  return n > 0 && n <= 65535 ? static_cast<std::uint32_t>(n) : 0;
}

std::string common_metadata(const Json::Value& object, std::string& ns, std::string& name) {
  if (!object.isObject()) return "not a JSON object";
  const Json::Value& metadata = object["metadata"];
  if (!metadata.isObject()) return "no metadata";
  name = str(metadata["name"]);
  ns = str(metadata["namespace"]);
  if (name.empty()) return "no metadata.name";
  return {};
}

ServiceBackendRef parse_backend(const Json::Value& backend) {
  ServiceBackendRef ref;
  if (backend["resource"].isObject()) {
    ref.is_resource = true;
    ref.service = str(backend["resource"]["name"]);
    return ref;
  }
  const Json::Value& service = backend["service"];
  ref.service = str(service["name"]);
  ref.port_number = port_number(service["port"]["number"]);
  ref.port_name = str(service["port"]["name"]);
  return ref;
}

std::vector<LoadBalancerAddress> parse_lb_ingress(const Json::Value& list) {
  std::vector<LoadBalancerAddress> out;
  if (!list.isArray()) return out;
  for (const Json::Value& item : list) out.push_back({str(item["ip"]), str(item["hostname"])});
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

std::string check_tls_pair(const std::string& cert_pem, const std::string& key_pem) {
  std::unique_ptr<BIO, BioDeleter> cert_bio(BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size())));
  std::unique_ptr<X509, X509Deleter> cert(PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return "tls.crt holds no PEM certificate";
  std::unique_ptr<BIO, BioDeleter> key_bio(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
  std::unique_ptr<EVP_PKEY, KeyDeleter> key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (!key) return "tls.key holds no PEM private key";
  if (X509_check_private_key(cert.get(), key.get()) != 1) return "tls.key does not match the certificate in tls.crt";
  const ASN1_TIME* not_after = X509_get0_notAfter(cert.get());
  if (X509_cmp_current_time(not_after) < 0) {
    std::string when = "an unreadable date";
    if (std::tm tm{}; ASN1_TIME_to_tm(not_after, &tm) == 1) {
      char text[32];
      std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
      when = text;
    }
    return "the certificate in tls.crt expired on " + when;
  }
  return {};
}

// ingress-nginx's boolean annotations follow Go's strconv.ParseBool; anything else means the default.
std::optional<bool> annotation_bool(const Json::Value& value) {
  if (!value.isString()) return std::nullopt;
  const std::string text = value.asString();
  if (text == "1" || text == "t" || text == "T" || text == "true" || text == "TRUE" || text == "True") return true;
  if (text == "0" || text == "f" || text == "F" || text == "false" || text == "FALSE" || text == "False") return false;
  return std::nullopt;
}

}  // namespace

std::string object_key(const Json::Value& object) {
  std::string ns;
  std::string name;
  if (!common_metadata(object, ns, name).empty()) return {};
  return ns.empty() ? name : ns + "/" + name;
}

bool Ingress::same_routes(const Ingress& o) const {
  return ns == o.ns && name == o.name && uid == o.uid && created_unix == o.created_unix && class_name == o.class_name &&
         class_annotation == o.class_annotation && default_backend == o.default_backend && rules == o.rules &&
         tls == o.tls && ssl_redirect == o.ssl_redirect;
}

bool TlsSecret::operator==(const TlsSecret& o) const {
  return ns == o.ns && name == o.name && error == o.error && certificate.chain_pem == o.certificate.chain_pem &&
         certificate.key_pem == o.certificate.key_pem;
}

std::string parse_ingress(const Json::Value& object, Ingress& out) {
  if (std::string error = common_metadata(object, out.ns, out.name); !error.empty()) return error;
  const Json::Value& metadata = object["metadata"];
  out.uid = str(metadata["uid"]);
  out.resource_version = str(metadata["resourceVersion"]);
  if (!parse_rfc3339(str(metadata["creationTimestamp"]), out.created_unix)) out.created_unix = 0;
  const Json::Value& annotation = metadata["annotations"]["kubernetes.io/ingress.class"];
  if (annotation.isString()) out.class_annotation = annotation.asString();
  // kroute's own annotation wins over ingress-nginx's, which is honoured so migrated Ingresses keep working.
  const Json::Value& annotations = metadata["annotations"];
  if (std::optional<bool> own = annotation_bool(annotations["kroute.dev/ssl-redirect"])) {
    out.ssl_redirect = *own;
  } else if (std::optional<bool> nginx = annotation_bool(annotations["nginx.ingress.kubernetes.io/ssl-redirect"])) {
    out.ssl_redirect = *nginx;
  }
  const Json::Value& spec = object["spec"];
  if (!spec.isObject()) return "no spec";
  if (spec["ingressClassName"].isString()) out.class_name = spec["ingressClassName"].asString();
  if (spec["defaultBackend"].isObject()) out.default_backend = parse_backend(spec["defaultBackend"]);
  if (spec["rules"].isArray()) {
    for (const Json::Value& r : spec["rules"]) {
      IngressRule rule;
      rule.host = str(r["host"]);
      const Json::Value& paths = r["http"]["paths"];
      if (paths.isArray()) {
        for (const Json::Value& p : paths) {
          IngressPath path;
          path.path = str(p["path"]);
          const std::string type = str(p["pathType"]);
          if (type == "Exact") {
            path.type = PathType::kExact;
          } else if (type == "Prefix") {
            path.type = PathType::kPrefix;
          } else if (type == "ImplementationSpecific") {
            path.type = PathType::kImplementationSpecific;
          } else {
            path.type_error = type.empty() ? "no pathType" : "unknown pathType " + type;
          }
          path.backend = parse_backend(p["backend"]);
          rule.paths.push_back(std::move(path));
        }
      }
      out.rules.push_back(std::move(rule));
    }
  }
  if (spec["tls"].isArray()) {
    for (const Json::Value& t : spec["tls"]) {
      IngressTls tls;
      tls.secret_name = str(t["secretName"]);
      if (t["hosts"].isArray()) {
        for (const Json::Value& h : t["hosts"]) tls.hosts.push_back(str(h));
      }
      out.tls.push_back(std::move(tls));
    }
  }
  out.status = parse_lb_ingress(object["status"]["loadBalancer"]["ingress"]);
  return {};
}

std::string parse_ingress_class(const Json::Value& object, IngressClass& out) {
  std::string ns;
  if (std::string error = common_metadata(object, ns, out.name); !error.empty()) return error;
  out.controller = str(object["spec"]["controller"]);
  out.is_default = str(object["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"]) == "true";
  return {};
}

std::string parse_service(const Json::Value& object, Service& out) {
  if (std::string error = common_metadata(object, out.ns, out.name); !error.empty()) return error;
  const Json::Value& spec = object["spec"];
  if (spec["type"].isString()) out.type = spec["type"].asString();
  out.external_name = str(spec["externalName"]);
  out.cluster_ip = str(spec["clusterIP"]);
  if (spec["ports"].isArray()) {
    for (const Json::Value& p : spec["ports"]) {
      ServicePort port;
      port.name = str(p["name"]);
      port.port = port_number(p["port"]);
      if (p["protocol"].isString()) port.protocol = p["protocol"].asString();
      out.ports.push_back(std::move(port));
    }
  }
  if (spec["externalIPs"].isArray()) {
    for (const Json::Value& ip : spec["externalIPs"]) out.external_ips.push_back(str(ip));
  }
  out.load_balancer = parse_lb_ingress(object["status"]["loadBalancer"]["ingress"]);
  return {};
}

std::string parse_endpoint_slice(const Json::Value& object, EndpointSlice& out) {
  if (std::string error = common_metadata(object, out.ns, out.name); !error.empty()) return error;
  out.service = str(object["metadata"]["labels"]["kubernetes.io/service-name"]);
  out.address_type = str(object["addressType"]);
  if (object["ports"].isArray()) {
    for (const Json::Value& p : object["ports"]) {
      SlicePort port;
      port.name = str(p["name"]);
      port.port = port_number(p["port"]);
      if (p["protocol"].isString()) port.protocol = p["protocol"].asString();
      out.ports.push_back(std::move(port));
    }
  }
  if (object["endpoints"].isArray()) {
    for (const Json::Value& e : object["endpoints"]) {
      SliceEndpoint endpoint;
      if (e["addresses"].isArray()) {
        for (const Json::Value& a : e["addresses"]) endpoint.addresses.push_back(str(a));
      }
      const Json::Value& conditions = e["conditions"];
      endpoint.ready = !conditions["ready"].isBool() || conditions["ready"].asBool();
      endpoint.serving = conditions["serving"].isBool() ? conditions["serving"].asBool() : endpoint.ready;
      endpoint.terminating = conditions["terminating"].isBool() && conditions["terminating"].asBool();
      out.endpoints.push_back(std::move(endpoint));
    }
  }
  return {};
}

std::string parse_tls_secret(const Json::Value& object, TlsSecret& out) {
  if (std::string error = common_metadata(object, out.ns, out.name); !error.empty()) return error;
  const Json::Value& data = object["data"];
  std::string cert;
  std::string key;
  if (!data["tls.crt"].isString() || !base64_decode(data["tls.crt"].asString(), cert) || cert.empty()) {
    out.error = "no tls.crt";
  } else if (!data["tls.key"].isString() || !base64_decode(data["tls.key"].asString(), key) || key.empty()) {
    out.error = "no tls.key";
  } else {
    out.error = check_tls_pair(cert, key);
  }
  if (out.error.empty()) out.certificate = {std::move(cert), std::move(key)};
  return {};
}

Store::Store(Metrics& metrics, OnChange on_change)
    : metrics_(metrics), on_change_(std::move(on_change)) {}

void Store::begin_list(Kind kind) {
  auto staging = std::make_unique<Store>(metrics_, nullptr);
  staging->staging_ = true;
  pending_[static_cast<int>(kind)] = std::move(staging);
}

void Store::listed(Kind kind, const Json::Value& item) {
  auto it = pending_.find(static_cast<int>(kind));
  if (it == pending_.end()) return;
  it->second->reported_ = std::move(reported_);
  it->second->apply(kind, kube::EventType::kAdded, item);
  reported_ = std::move(it->second->reported_);
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
  }
  update_gauge(kind);
  if (on_change_) on_change_(Change::kRoutes, kind, {});
}

void Store::event(Kind kind, kube::EventType type, const Json::Value& object) {
  const Change change = apply(kind, type, object);
  if (change != Change::kNone && on_change_) on_change_(change, kind, object_key(object));
}

void Store::report_bad(Kind kind, const std::string& key, const std::string& error) {
  metrics_.bad_objects[Metrics::at(kind)].fetch_add(1, std::memory_order_relaxed);
  const std::string id = std::string(kind_info(kind).name) + " " + key + ": " + error;
  if (reported_.insert(id).second) {
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
    case Kind::kSecret: n = secrets.size(); break;
  }
  metrics_.objects[Metrics::at(kind)].store(n, std::memory_order_relaxed);
}

namespace {

// Upserts or erases one projection; returns whether the stored value changed.
template <typename T, typename Parse>
bool upsert(std::unordered_map<std::string, T>& map, const std::string& key, kube::EventType type,
            const Json::Value& object, Parse parse, std::string& error) {
  if (type == kube::EventType::kDeleted) return map.erase(key) > 0;
  T value;
  error = parse(object, value);
  if (!error.empty()) {
    // An object we cannot read is treated as absent, so a stale version of it never routes traffic.
    return map.erase(key) > 0;
  }
  auto [it, inserted] = map.try_emplace(key, std::move(value));
  if (inserted) return true;
  if (it->second == value) return false;
  it->second = std::move(value);
  return true;
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
      error = parse_ingress(object, value);
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
  }
  if (!error.empty()) {
    report_bad(kind, key, error);
  } else if (type == kube::EventType::kDeleted) {
    std::erase_if(reported_, [&](const std::string& id) {
      return id.rfind(std::string(kind_info(kind).name) + " " + key + ":", 0) == 0;
    });
  }
  update_gauge(kind);
  return change;
}

}  // namespace kroute::agent
