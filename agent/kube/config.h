// Where the API server is and how to authenticate to it: from a kubeconfig (development) or from the
// in-cluster service account (token file, CA bundle, KUBERNETES_SERVICE_HOST/PORT, namespace file).
#pragma once

#include <chrono>
#include <functional>
#include <string>

namespace kroute::agent::kube {

struct ClusterAccess {
  std::string server;                   // https://host:port, no trailing slash
  std::string ca_pem;                   // CA bundle; empty: the system trust store
  bool insecure_skip_tls_verify = false;
  std::string client_cert_pem;
  std::string client_key_pem;
  std::string token;                    // a static bearer token
  std::string token_file;               // a bearer token re-read from this file (wins over `token`)
  std::string default_namespace;        // the context's namespace, or the in-cluster namespace file
  std::string description;              // for logs: where this came from
};

struct ConfigResult {
  ClusterAccess access;
  std::string error;  // empty on success
};

inline constexpr const char* kServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";

// Parses kubeconfig YAML. Relative file paths resolve against `base_dir`, as kubectl does. `context`
// overrides current-context when not empty.
ConfigResult parse_kubeconfig(const std::string& text, const std::string& base_dir, const std::string& context = "");
ConfigResult load_kubeconfig(const std::string& path, const std::string& context = "");

// In-cluster: `getenv` is injected so tests need not touch the process environment.
using EnvLookup = std::function<const char*(const char*)>;
ConfigResult load_in_cluster(const std::string& service_account_dir, const EnvLookup& getenv);

// The usual search: an explicit kubeconfig, then $KUBECONFIG (its first file), then in-cluster when
// KUBERNETES_SERVICE_HOST is set, then ~/.kube/config. $KROUTE_SERVICEACCOUNT_DIR replaces the
// in-cluster directory (tests run "in-cluster" outside a pod with it).
ConfigResult discover(const std::string& kubeconfig_flag, const std::string& context);

// A bearer token that follows its file: kubelet rotates projected tokens, so the file is re-read at
// least every `max_age` (and at once after a 401).
class TokenSource {
 public:
  TokenSource(std::string token, std::string file, std::chrono::seconds max_age = std::chrono::seconds(60));
  // The current token; "" when there is none. `error` is set when the file could not be read (the
  // previous token is kept).
  const std::string& get(std::chrono::steady_clock::time_point now, std::string& error);
  void invalidate() { read_at_ = {}; }

 private:
  std::string token_;
  std::string file_;
  std::chrono::seconds max_age_;
  std::chrono::steady_clock::time_point read_at_{};
};

bool read_file(const std::string& path, std::string& out, std::string& error);

}  // namespace kroute::agent::kube
