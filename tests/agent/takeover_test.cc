// Takeover of another controller's class (--ingress-class-name): which Ingresses become ours, and that they
// stay ours when that controller's IngressClass goes away (helm uninstall ingress-nginx deletes it).
#include <doctest.h>

#include "compiler.h"
#include "json_helpers.h"
#include "store.h"

using namespace kroute::agent;
using kube::EventType;

namespace {

const char* const kNginxClass = R"({"metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx"}})";
const char* const kAnnotatedNginx = R"({"kubernetes.io/ingress.class": "nginx"})";

struct Cluster {
  Metrics metrics;
  Store store{metrics, nullptr};
  CompileOptions options;

  void add(Kind kind, const std::string& text) { store.apply(kind, EventType::kAdded, json(text)); }
  void remove(Kind kind, const std::string& text) { store.apply(kind, EventType::kDeleted, json(text)); }

  // An Ingress in namespace n; class_name and annotations are JSON ("" leaves them out).
  void ingress(const std::string& name, const std::string& class_name, const std::string& annotations = "") {
    const std::string annotation_field = annotations.empty() ? "" : R"(, "annotations": )" + annotations;
    const std::string class_field = class_name.empty() ? "" : R"("ingressClassName": )" + class_name + ", ";
    add(Kind::kIngress, R"({"metadata": {"name": ")" + name + R"(", "namespace": "n", "uid": "uid-)" + name +
                            R"(", "creationTimestamp": "2024-01-01T00:00:00Z")" + annotation_field + R"(}, "spec": {)" +
                            class_field + R"("rules": [{"host": ")" + name + R"(.example.com", "http": {"paths": [)" +
                            R"({"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "s", "port": )" +
                            R"({"number": 80}}}}]}}]}})");
  }
  // What an ingress-nginx user has: its IngressClass, an Ingress naming it, an Ingress with the annotation.
  void ingress_nginx_user() {
    add(Kind::kIngressClass, kNginxClass);
    ingress("by-name", R"("nginx")");
    ingress("by-annotation", "", kAnnotatedNginx);
  }
  std::vector<std::string> owned() { return compile(store, options).owned; }
};

}  // namespace

TEST_CASE("takeover: ingress-nginx's Ingresses are not ours without --ingress-class-name") {
  Cluster c;
  c.ingress_nginx_user();
  CHECK(c.owned().empty());
}

TEST_CASE("takeover: the class name is ours as spec.ingressClassName and as the legacy annotation") {
  Cluster c;
  c.options.class_names = {"nginx"};
  c.ingress_nginx_user();
  c.ingress("both", R"("nginx")", kAnnotatedNginx);
  c.ingress("other-class", R"("traefik")");
  c.ingress("other-annotation", "", R"({"kubernetes.io/ingress.class": "traefik"})");
  c.ingress("no-class", "");
  CHECK(c.owned() == std::vector<std::string>{"n/both", "n/by-annotation", "n/by-name"});
}

TEST_CASE("takeover: a named class stays ours when its IngressClass is deleted, and when there never was one") {
  Cluster c;
  c.options.class_names = {"nginx"};
  c.ingress_nginx_user();
  const std::vector<std::string> both{"n/by-annotation", "n/by-name"};
  CompileCache cache;
  CHECK(compile(c.store, c.options, cache).owned == both);
  c.remove(Kind::kIngressClass, R"({"metadata": {"name": "nginx"}})");
  CHECK(compile(c.store, c.options, cache).owned == both);
  CHECK(c.owned() == both);
  // Recreated by someone else's chart for another controller: still ours by name.
  c.add(Kind::kIngressClass, R"({"metadata": {"name": "nginx"}, "spec": {"controller": "example.com/other"}})");
  CHECK(compile(c.store, c.options, cache).owned == both);
}

TEST_CASE("takeover: kroute's own class keeps working next to the taken-over ones") {
  Cluster c;
  c.options.class_names = {"nginx", "nginx-internal"};
  c.add(Kind::kIngressClass, R"({"metadata": {"name": "kroute"}, "spec": {"controller": "kroute.dev/ingress-controller"}})");
  c.ingress("kroute-by-name", R"("kroute")");
  c.ingress("kroute-by-annotation", "", R"({"kubernetes.io/ingress.class": "kroute"})");
  c.ingress("internal", R"("nginx-internal")");
  c.ingress("public", "", kAnnotatedNginx);
  CHECK(c.owned() ==
        std::vector<std::string>{"n/internal", "n/kroute-by-annotation", "n/kroute-by-name", "n/public"});
}

TEST_CASE("takeover: the legacy annotation still decides when both are set, as for kroute's own class") {
  Cluster c;
  c.options.class_names = {"nginx"};
  c.add(Kind::kIngressClass, kNginxClass);
  // The annotation names another controller: not ours, whatever ingressClassName says.
  c.ingress("annotation-elsewhere", R"("nginx")", R"({"kubernetes.io/ingress.class": "traefik"})");
  // The annotation names the taken-over class: ours, whatever ingressClassName says.
  c.ingress("annotation-nginx", R"("traefik")", kAnnotatedNginx);
  CHECK(c.owned() == std::vector<std::string>{"n/annotation-nginx"});
}

TEST_CASE("takeover: names match exactly; an empty annotation or class name is not a taken-over class") {
  Cluster c;
  c.options.class_names = {"nginx"};
  c.ingress("upper", R"("Nginx")");
  c.ingress("prefix", R"("nginx-internal")");
  c.ingress("empty-annotation", "", R"({"kubernetes.io/ingress.class": ""})");
  CHECK(c.owned().empty());
}

TEST_CASE("takeover: Ingresses without a class follow --watch-without-class, not the taken-over class's default flag") {
  // ingress-nginx served class-less Ingresses only with --watch-ingress-without-class, also when its
  // IngressClass was the default (the default only fills in ingressClassName of new Ingresses).
  Cluster c;
  c.options.class_names = {"nginx"};
  c.add(Kind::kIngressClass, R"({"metadata": {"name": "nginx", "annotations": )"
                             R"({"ingressclass.kubernetes.io/is-default-class": "true"}}, )"
                             R"("spec": {"controller": "k8s.io/ingress-nginx"}})");
  c.ingress("defaulted", R"("nginx")");
  c.ingress("older-than-the-default", "");
  CHECK(c.owned() == std::vector<std::string>{"n/defaulted"});
  c.options.watch_without_class = true;
  CHECK(c.owned() == std::vector<std::string>{"n/defaulted", "n/older-than-the-default"});
}
