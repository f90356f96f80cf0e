// The kinds of object the agent watches, and where each lives in the API.
#pragma once

#include <array>
#include <cstddef>

namespace kroute::agent {

// kSecret: kubernetes.io/tls Secrets (certificates); kOpaqueSecret: Opaque ones, which the access
// annotations name (auth-secret's htpasswd, auth-tls-secret's ca.crt). Both land in TlsSecret projections.
// The Gateway API kinds (and Namespaces, whose labels its listeners select routes by) are watched only when
// the agent serves a GatewayClass (--gateway-controller): without their CRDs their LISTs would never succeed.
enum class Kind {
  kIngress, kIngressClass, kService, kEndpointSlice, kSecret, kOpaqueSecret,
  kGatewayClass, kGateway, kHTTPRoute, kReferenceGrant, kNamespace,
};
inline constexpr std::size_t kKindCount = 11;
inline constexpr std::array<Kind, kKindCount> kAllKinds = {
    Kind::kIngress,      Kind::kIngressClass, Kind::kService,   Kind::kEndpointSlice,   Kind::kSecret,   Kind::kOpaqueSecret,
    Kind::kGatewayClass, Kind::kGateway,      Kind::kHTTPRoute, Kind::kReferenceGrant, Kind::kNamespace};
inline constexpr bool is_gateway_kind(Kind kind) { return kind >= Kind::kGatewayClass; }

struct KindInfo {
  const char* name;           // for logs and metric labels
  const char* api_prefix;     // "/api/v1" or "/apis/<group>/<version>"
  const char* plural;
  bool namespaced;
  const char* field_selector; // "" for none
};

inline const KindInfo& kind_info(Kind kind) {
  static const std::array<KindInfo, kKindCount> kInfo = {{
      {"ingress", "/apis/networking.k8s.io/v1", "ingresses", true, ""},
      {"ingressclass", "/apis/networking.k8s.io/v1", "ingressclasses", false, ""},
      {"service", "/api/v1", "services", true, ""},
      {"endpointslice", "/apis/discovery.k8s.io/v1", "endpointslices", true, ""},
      // Only TLS and Opaque Secrets: never service-account tokens, Helm releases or other types.
      {"secret", "/api/v1", "secrets", true, "type=kubernetes.io/tls"},
      {"secret-opaque", "/api/v1", "secrets", true, "type=Opaque"},
      {"gatewayclass", "/apis/gateway.networking.k8s.io/v1", "gatewayclasses", false, ""},
      {"gateway", "/apis/gateway.networking.k8s.io/v1", "gateways", true, ""},
      {"httproute", "/apis/gateway.networking.k8s.io/v1", "httproutes", true, ""},
      {"referencegrant", "/apis/gateway.networking.k8s.io/v1", "referencegrants", true, ""},
      {"namespace", "/api/v1", "namespaces", false, ""},
  }};
  return kInfo[static_cast<std::size_t>(kind)];
}

}  // namespace kroute::agent
