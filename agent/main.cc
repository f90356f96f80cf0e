// kroute-agent: watches the API server and publishes the route table for nginx (docs/agent.md).
#include <CLI/CLI.hpp>
#include <malloc.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <random>

#include "agent.h"
#include "audit.h"
#include "file_access.h"
#include "health.h"
#include "kube/config.h"
#include "log.h"
#include "validate.h"

namespace {

using namespace kroute::agent;

std::atomic<bool> g_stop{false};
static_assert(std::atomic<bool>::is_always_lock_free);

void on_signal(int) { g_stop.store(true); }

// --table-group: empty: the table directory's group (kept by every snapshot, so a Pod's fsGroup works
// without the flag), or the agent's own when the directory does not exist yet.
bool resolve_table_group(const std::string& text, const std::string& dir, gid_t& gid, std::string& error) {
  if (!text.empty()) return kroute::parse_group(text, "--table-group", gid, error);
  struct stat st {};
  gid = ::stat(dir.c_str(), &st) == 0 ? st.st_gid : static_cast<gid_t>(-1);
  return true;
}

std::string default_identity() {
  if (const char* pod = std::getenv("POD_NAME"); pod != nullptr && *pod != '\0') return pod;
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  std::random_device random;
  char suffix[16];
  std::snprintf(suffix, sizeof suffix, "%08x", random());
  return std::string(host) + "_" + suffix;
}

int run(int argc, char** argv) {
  CLI::App app{"kroute-agent: watches Ingresses, Services, EndpointSlices and TLS Secrets and publishes the route table"};
  std::string kubeconfig;
  std::string context;
  std::string table_dir = "/run/kroute";
  std::string table_mode = "0640";
  std::string table_group;
  std::string log_level = "info";
  std::string listen = "0.0.0.0:10254";
  AgentOptions options;
  int coalesce_ms = 5;
  int lease_duration = 15;
  int renew_deadline = 10;
  int retry_period = 2;
  int watch_timeout = 300;
  int silence_margin = 30;
  int probe_interval = 5;
  bool no_election = false;
  std::string election_namespace;
  options.election.identity = default_identity();

  app.add_option("--kubeconfig", kubeconfig, "kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config)");
  app.add_option("--context", context, "kubeconfig context instead of current-context");
  app.add_option("--table-dir", table_dir, "directory the route table is published into")->capture_default_str();
  app.add_option("--table-mode", table_mode, "permission bits of the snapshot files (octal; never for others)")
      ->capture_default_str();
  app.add_option("--table-group", table_group,
                 "group (name or number) that may read the snapshots, i.e. nginx's workers (default: the table directory's)");
  app.add_option("--default-ssl-certificate", options.compile.default_certificate,
                 "namespace/name of the kubernetes.io/tls Secret served to TLS clients no host matches "
                 "(default: nginx's own self-signed certificate)");
  app.add_option("--controller-class", options.compile.controller,
                 "IngressClass spec.controller value that selects kroute")->capture_default_str();
  app.add_option("--ingress-class", options.compile.annotation_class,
                 "kubernetes.io/ingress.class annotation value that selects kroute")->capture_default_str();
  app.add_flag("--use-forwarded-headers", options.compile.use_forwarded_headers,
               "trust X-Forwarded-Proto: a request that says https is not redirected to https "
               "(TLS ended in a proxy in front of nginx), as ingress-nginx's use-forwarded-headers");
  app.add_option("--limit-req-status-code", options.compile.limit_req_status,
                 "status of a request refused by limit-rps or limit-rpm, as ingress-nginx's limit-req-status-code")
      ->capture_default_str()->check(CLI::Range(400, 599));
  app.add_option("--limit-conn-status-code", options.compile.limit_conn_status,
                 "status of a request refused by limit-connections, as ingress-nginx's limit-conn-status-code")
      ->capture_default_str()->check(CLI::Range(400, 599));
  app.add_option("--annotation-prefix", options.annotation_prefix,
                 "prefix of the ingress-nginx annotations kroute reads (kroute.dev/ ones win)")
      ->capture_default_str();
  app.add_option("--ingress-class-name", options.compile.class_names,
                 "class name(s) that select kroute by name alone, as spec.ingressClassName or as the "
                 "kubernetes.io/ingress.class annotation, whatever IngressClass of that name exists (or none): "
                 "takes over another controller's class, e.g. ingress-nginx's nginx (repeatable, comma list)")
      ->delimiter(',');
  app.add_option("--gateway-controller", options.compile.gateway.controller,
                 "serve the Gateway API: GatewayClasses whose spec.controllerName is this value (e.g. "
                 "kroute.dev/gateway-controller); needs the Gateway API CRDs (default: off)");
  app.add_option("--gateway-address", options.compile.gateway.addresses,
                 "address(es) written to Gateway status.addresses (default: --publish-address's)")->delimiter(',');
  std::vector<std::string> gateway_slots;
  app.add_option("--gateway-slot", gateway_slots,
                 "an address of a Gateway's own, ADDRESS[=LOCAL[+LOCAL...]]: clients reach it at ADDRESS (the "
                 "Gateway's status.addresses), nginx sees its connections arrive on LOCAL (IP, IP:PORT, :PORT; "
                 "default ADDRESS). Each Gateway takes one while they last and is routed apart from the others; "
                 "without slots all Gateways share --gateway-address (repeatable; docs/gateway-api.md)");
  std::vector<std::uint32_t> gateway_http_ports{80};
  std::vector<std::uint32_t> gateway_https_ports{443};
  app.add_option("--gateway-http-port", gateway_http_ports,
                 "port(s) on which clients reach nginx's plain HTTP listener: Gateway listeners of protocol HTTP")
      ->delimiter(',')->capture_default_str()->check(CLI::Range(1, 65535));
  app.add_option("--gateway-https-port", gateway_https_ports,
                 "port(s) on which clients reach nginx's HTTPS listener: Gateway listeners of protocol HTTPS")
      ->delimiter(',')->capture_default_str()->check(CLI::Range(1, 65535));
  app.add_option("--watch-namespace", options.watch.ns, "watch only this namespace (default: all)");
  app.add_flag("--watch-without-class", options.compile.watch_without_class,
               "also own Ingresses that name no class at all");
  app.add_option("--coalesce-ms", coalesce_ms, "milliseconds from the first change of a burst to the publish")
      ->capture_default_str()->check(CLI::Range(0, 60000));
  app.add_option("--publish-address", options.status.publish_addresses,
                 "address(es) written to status.loadBalancer.ingress (IP or hostname)")->delimiter(',');
  app.add_option("--publish-service", options.status.publish_service,
                 "namespace/name of the Service whose addresses are written to Ingress status");
  app.add_flag("--no-election", no_election, "never take part in leader election (never writes status or Events)");
  app.add_option("--election-namespace", election_namespace, "namespace of the leader Lease (default: the agent's)");
  app.add_option("--lease-name", options.election.lease_name, "name of the leader Lease")->capture_default_str();
  app.add_option("--lease-duration", lease_duration, "seconds a follower waits before taking an unrenewed lease")
      ->capture_default_str()->check(CLI::Range(1, 3600));
  app.add_option("--renew-deadline", renew_deadline, "seconds the leader keeps trying to renew before stepping down")
      ->capture_default_str()->check(CLI::Range(1, 3600));
  app.add_option("--retry-period", retry_period, "seconds between election attempts")
      ->capture_default_str()->check(CLI::Range(1, 3600));
  app.add_option("--identity", options.election.identity, "this replica's name in the Lease (default: $POD_NAME or host_random)");
  app.add_option("--watch-timeout", watch_timeout, "seconds a watch asks the server to last (spread over [t, 2t))")
      ->capture_default_str()->check(CLI::Range(5, 3600));
  app.add_option("--watch-silence-margin", silence_margin,
                 "seconds past a watch's timeout without a byte after which it is restarted")
      ->capture_default_str()->check(CLI::Range(1, 3600));
  app.add_option("--apiserver-probe-interval", probe_interval,
                 "seconds between probes of the API server (also each probe's timeout); unanswered: not ready")
      ->capture_default_str()->check(CLI::Range(1, 300));
  app.add_option("--listen", listen, "host:port of /healthz, /readyz and /metrics (port 0: any free port)")
      ->capture_default_str();
  app.add_option("--log-level", log_level, "debug, info, warn or error")->capture_default_str();

  // Read-only subcommands for people deciding whether to switch from ingress-nginx. They share the
  // agent's connection and prefix options (either side of the subcommand's name); without one,
  // kroute-agent runs the agent.
  AuditCommand audit;
  CLI::App* audit_app = app.add_subcommand(
      "audit", "print what kroute would do with the annotations of every Ingress in the cluster (reads only)");
  audit_app->add_option("--kubeconfig", kubeconfig, "kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config)");
  audit_app->add_option("--context", context, "kubeconfig context instead of current-context");
  audit_app->add_option("--namespace,-n", audit.ns, "only this namespace's Ingresses (default: all)");
  audit_app->add_option("--annotation-prefix", options.annotation_prefix,
                        "prefix of the ingress-nginx annotations kroute reads (kroute.dev/ ones win)")
      ->capture_default_str();
  audit_app->add_flag("--json", audit.json, "one JSON document instead of text");
  bool markdown = false;
  CLI::App* annotations_app = app.add_subcommand(
      "annotations", "list every ingress-nginx annotation and what kroute does with it");
  annotations_app->add_option("--annotation-prefix", options.annotation_prefix, "prefix the names are shown with")
      ->capture_default_str();
  annotations_app->add_flag("--markdown", markdown, "as the Markdown table of docs/migrating-from-ingress-nginx.md");
  app.require_subcommand(0, 1);
  CLI11_PARSE(app, argc, argv);

  if (*annotations_app) {
    const std::string table = markdown ? annotations_markdown(options.annotation_prefix)
                                       : annotations_text(options.annotation_prefix);
    std::fwrite(table.data(), 1, table.size(), stdout);
    return std::fflush(stdout) == 0 ? 0 : 1;
  }
  if (*audit_app) {
    log::set_level(log::Level::kWarn);
    audit.kubeconfig = kubeconfig;
    audit.context = context;
    audit.prefix = options.annotation_prefix;
    return run_audit(audit);
  }

  log::Level level;
  if (!log::parse_level(log_level, level)) {
    std::fprintf(stderr, "--log-level must be debug, info, warn or error, not %s\n", log_level.c_str());
    return 2;
  }
  log::set_level(level);
  if (renew_deadline >= lease_duration) {
    std::fprintf(stderr, "--renew-deadline (%d) must be shorter than --lease-duration (%d)\n", renew_deadline, lease_duration);
    return 2;
  }
  if (!options.status.publish_service.empty() && options.status.publish_service.find('/') == std::string::npos) {
    std::fprintf(stderr, "--publish-service must be namespace/name\n");
    return 2;
  }
  if (!options.compile.default_certificate.empty() &&
      options.compile.default_certificate.find('/') == std::string::npos) {
    std::fprintf(stderr, "--default-ssl-certificate must be namespace/name\n");
    return 2;
  }
  for (const std::string& name : options.compile.class_names) {
    if (std::string why = check_dns_subdomain(name); !why.empty()) {
      std::fprintf(stderr, "--ingress-class-name %s: %s\n", printable(name).c_str(), why.c_str());
      return 2;
    }
  }
  options.compile.gateway.http_ports = {gateway_http_ports.begin(), gateway_http_ports.end()};
  options.compile.gateway.https_ports = {gateway_https_ports.begin(), gateway_https_ports.end()};
  if (options.compile.gateway.addresses.empty()) options.compile.gateway.addresses = options.status.publish_addresses;
  for (const std::string& text : gateway_slots) {
    kroute::agent::gateway::Slot slot;
    std::string why;
    if (!kroute::agent::gateway::parse_slot(text, slot, why)) {
      std::fprintf(stderr, "%s\n", why.c_str());
      return 2;
    }
    options.compile.gateway.slots.push_back(std::move(slot));
  }
  kroute::PublisherOptions table;
  table.dir = table_dir;
  ListenAddress listen_address;
  std::string flag_error;
  if (!parse_listen(listen, listen_address, flag_error) ||
      !kroute::parse_file_mode(table_mode, "--table-mode", false, table.file_mode, flag_error) ||
      !resolve_table_group(table_group, table_dir, table.group, flag_error)) {
    std::fprintf(stderr, "%s\n", flag_error.c_str());
    return 2;
  }

  // A long-running publisher rebuilds multi-megabyte snapshots: keep freed memory in the heap instead
  // of returning it to the kernel and faulting fresh pages in on every build.
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);

  const kube::ConfigResult config = kube::discover(kubeconfig, context);
  if (!config.error.empty()) {
    log::error("bad cluster configuration", {{"error", config.error}});
    return 1;
  }
  log::info("using cluster", {{"server", config.access.server}, {"from", config.access.description}});
  options.coalesce = std::chrono::milliseconds(coalesce_ms);
  options.elect = !no_election;
  options.election.ns = election_namespace.empty() ? config.access.default_namespace : election_namespace;
  options.election.lease_duration = std::chrono::seconds(lease_duration);
  options.election.renew_deadline = std::chrono::seconds(renew_deadline);
  options.election.retry_period = std::chrono::seconds(retry_period);
  options.status.identity = options.election.identity;
  options.watch.timeout = std::chrono::seconds(watch_timeout);
  options.watch.silence_margin = std::chrono::seconds(silence_margin);

  std::string error;
  std::unique_ptr<kube::Client> client = kube::Client::create(config.access, error);
  if (!client) {
    log::error("cannot create the API client", {{"error", error}});
    return 1;
  }
  Metrics metrics;
  std::unique_ptr<TablePublisher> publisher = TablePublisher::open(table, metrics, error);
  if (!publisher) {
    log::error("cannot open the table directory", {{"dir", table_dir}, {"error", error}});
    return 1;
  }
  std::atomic<long long> heartbeat{steady_ms()};
  HealthServer health(metrics, heartbeat);
  if (!health.start(listen_address, error)) {
    log::error("cannot start the health listener", {{"error", error}});
    return 1;
  }
  log::info("health and metrics listener", {{"port", health.port()}});

  struct sigaction action {};
  action.sa_handler = on_signal;
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  signal(SIGPIPE, SIG_IGN);

  track_apiserver(*client, metrics);
  client->probe_every(std::chrono::seconds(probe_interval));
  Agent agent(*client, *publisher, metrics, options);
  std::function<void()> tick = [&] {
    heartbeat.store(steady_ms(), std::memory_order_relaxed);
    publisher->keep_in_place();
    client->after(std::chrono::seconds(1), tick);
  };
  tick();
  agent.start();
  client->run(g_stop);

  log::info("stopping");
  std::atomic<bool> finished{false};
  agent.shutdown([&] { finished.store(true); });
  client->after(std::chrono::seconds(3), [&] { finished.store(true); });
  client->run(finished);
  log::info("stopped", {{"generation", publisher->generation()}});
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    log::error("fatal", {{"error", e.what()}});
    return 1;
  }
}
