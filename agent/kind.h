// The kinds of object the agent watches, and where each lives in the API.
#pragma once

#include <array>
#include <cstddef>

namespace kroute::agent {

enum class Kind { kIngress, kIngressClass, kService, kEndpointSlice, kSecret };
inline constexpr std::size_t kKindCount = 5;
inline constexpr std::array<Kind, kKindCount> kAllKinds = {Kind::kIngress, Kind::kIngressClass, Kind::kService,
                                                          Kind::kEndpointSlice, Kind::kSecret};

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
      // Only TLS Secrets: the agent never sees (or needs RBAC for reading beyond list/watch) other data.
      {"secret", "/api/v1", "secrets", true, "type=kubernetes.io/tls"},
  }};
  return kInfo[static_cast<std::size_t>(kind)];
}

}  // namespace kroute::agent
