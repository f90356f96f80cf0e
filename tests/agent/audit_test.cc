#include <doctest.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "audit.h"
#include "json_helpers.h"

using namespace kroute::agent;

namespace {

constexpr std::string_view kPrefix = "nginx.ingress.kubernetes.io";

// Ingresses as a LIST returns them: name, namespace, optional class and annotations.
Json::Value ingresses(const std::string& items) { return json("[" + items + "]"); }

std::string ingress(const std::string& ns, const std::string& name, const std::string& annotations,
                    const std::string& class_name = "") {
  return R"({"metadata": {"namespace": ")" + ns + R"(", "name": ")" + name + R"(", "annotations": )" + annotations +
         R"(}, "spec": {)" + (class_name.empty() ? "" : R"("ingressClassName": ")" + class_name + "\"") + "}}";
}

const IngressAudit& find(const Audit& audit, const std::string& name) {
  for (const IngressAudit& i : audit.ingresses) {
    if (i.name == name) return i;
  }
  FAIL("no Ingress " << name);
  throw std::logic_error("unreachable");
}

}  // namespace

TEST_CASE("audit: each annotation's verdict per Ingress, with why, and the totals") {
  const Audit audit = audit_ingresses(ingresses(
      ingress("shop", "web", R"({
        "nginx.ingress.kubernetes.io/rewrite-target": "/$1",
        "nginx.ingress.kubernetes.io/use-regex": "true",
        "nginx.ingress.kubernetes.io/custom-headers": "shop/headers",
        "nginx.ingress.kubernetes.io/global-rate-limit": "10",
        "nginx.ingress.kubernetes.io/enable-modsecurity": "true",
        "nginx.ingress.kubernetes.io/ssl-redirect": "maybe",
        "nginx.ingress.kubernetes.io/no-such-thing": "1",
        "nginx.ingress.kubernetes.io/configuration-snippet": "return 200;",
        "kubernetes.io/ingress.class": "nginx",
        "example.com/other": "x"})") + "," +
      ingress("shop", "both", R"({"kroute.dev/force-ssl-redirect": "true",
                                  "nginx.ingress.kubernetes.io/force-ssl-redirect": "false"})", "kroute") + "," +
      ingress("apps", "plain", "{}")), kPrefix);

  REQUIRE(audit.ingresses.size() == 3);
  CHECK(audit.ingresses[0].name == "plain");  // by namespace, then name
  CHECK(audit.ingresses[1].name == "both");

  const IngressAudit& web = find(audit, "web");
  CHECK(web.ingress_class == "nginx");  // from the legacy annotation when spec names none
  REQUIRE(web.verdicts.size() == 8);    // only annotations under the two prefixes
  const auto verdict = [&](const std::string& key) -> const AnnotationVerdict& {
    for (const AnnotationVerdict& v : web.verdicts) {
      if (v.key == "nginx.ingress.kubernetes.io/" + key) return v;
    }
    FAIL("no verdict for " << key);
    throw std::logic_error("unreachable");
  };
  CHECK(verdict("rewrite-target").verdict == Verdict::kHonoured);
  CHECK(verdict("use-regex").verdict == Verdict::kHonoured);
  CHECK(verdict("custom-headers").why.starts_with("not yet: needs the agent to watch ConfigMaps"));
  CHECK(verdict("global-rate-limit").why.starts_with("not yet: "));
  CHECK(verdict("enable-modsecurity").why.starts_with("never: "));
  CHECK(verdict("ssl-redirect").verdict == Verdict::kIgnored);
  CHECK(verdict("ssl-redirect").why == "invalid value: \"maybe\" is not true or false");
  CHECK(verdict("no-such-thing").why.starts_with("unknown: "));
  CHECK(verdict("configuration-snippet").verdict == Verdict::kRefused);
  // Honoured first, then ignored, then refused.
  CHECK(web.verdicts.front().verdict == Verdict::kHonoured);
  CHECK(web.verdicts.back().verdict == Verdict::kRefused);

  const IngressAudit& both = find(audit, "both");
  CHECK(both.ingress_class == "kroute");
  REQUIRE(both.verdicts.size() == 2);
  CHECK(both.verdicts[0].key == "kroute.dev/force-ssl-redirect");
  CHECK(both.verdicts[1].why == "overridden by kroute.dev/force-ssl-redirect");

  const AuditTotals totals = audit.totals();
  CHECK(totals.ingresses == 3);
  CHECK(totals.honoured == 3);
  CHECK(totals.ignored == 6);
  CHECK(totals.refused == 1);
}

TEST_CASE("audit text: one block per Ingress, one line per annotation, then the totals") {
  const Audit audit = audit_ingresses(ingresses(
      ingress("shop", "web", R"({"nginx.ingress.kubernetes.io/app-root": "/app",
                                 "nginx.ingress.kubernetes.io/global-rate-limit": "10",
                                 "nginx.ingress.kubernetes.io/server-snippet": "x"})", "nginx") + "," +
      ingress("apps", "plain", "{}")), kPrefix);
  CHECK(audit_text(audit) ==
        "Ingress apps/plain: no annotations under kroute.dev/ or nginx.ingress.kubernetes.io/\n"
        "Ingress shop/web (class nginx)\n"
        "  honoured  nginx.ingress.kubernetes.io/app-root\n"
        "  ignored   nginx.ingress.kubernetes.io/global-rate-limit: not yet: needs a memcached deployment; not "
        "scheduled\n"
        "  refused   nginx.ingress.kubernetes.io/server-snippet: nginx configuration text from the cluster: kroute "
        "never writes configuration from cluster data (the CVE-2025-1974 family)\n"
        "\n"
        "2 Ingresses: 1 annotation honoured, 1 ignored, 1 refused\n");
  CHECK(audit_text(audit_ingresses(ingresses(""), kPrefix)) == "0 Ingresses: 0 annotations honoured, 0 ignored, 0 refused\n");
}

TEST_CASE("audit text: cluster strings are printed escaped, never as control characters") {
  const Audit audit = audit_ingresses(ingresses(ingress("a", "b\\u001b[31m", R"({"nginx.ingress.kubernetes.io/x\nY": "1"})")),
                                      kPrefix);
  const std::string text = audit_text(audit);
  CHECK(text.find('\x1b') == std::string::npos);
  CHECK(text.find("Ingress a/b\\x1b[31m\n") != std::string::npos);
  CHECK(text.find("x\\x0aY: unknown") != std::string::npos);
}

TEST_CASE("audit JSON: the same verdicts grouped per Ingress, and the totals") {
  const Audit audit = audit_ingresses(ingresses(
      ingress("shop", "web", R"({"nginx.ingress.kubernetes.io/use-regex": "true",
                                 "nginx.ingress.kubernetes.io/permanent-redirect": "https://x/$foo",
                                 "nginx.ingress.kubernetes.io/stream-snippet": "x"})")), "custom.prefix");
  // Under another --annotation-prefix, ingress-nginx's names are just other people's annotations.
  CHECK(audit.totals().honoured == 0);
  const Json::Value doc = audit_json(audit_ingresses(ingresses(
      ingress("shop", "web", R"({"nginx.ingress.kubernetes.io/use-regex": "true",
                                 "nginx.ingress.kubernetes.io/permanent-redirect": "https://x/$foo",
                                 "nginx.ingress.kubernetes.io/stream-snippet": "x"})")), kPrefix));
  CHECK(doc["annotationPrefix"] == "nginx.ingress.kubernetes.io");
  REQUIRE(doc["ingresses"].size() == 1);
  const Json::Value& web = doc["ingresses"][0];
  CHECK(web["namespace"] == "shop");
  CHECK(web["name"] == "web");
  CHECK_FALSE(web.isMember("class"));
  CHECK(web["honoured"] == json(R"(["nginx.ingress.kubernetes.io/use-regex"])"));
  REQUIRE(web["ignored"].size() == 1);
  CHECK(web["ignored"][0]["annotation"] == "nginx.ingress.kubernetes.io/permanent-redirect");
  CHECK(web["ignored"][0]["why"].asString().starts_with("invalid value: \"$foo\" is not one of $scheme"));
  REQUIRE(web["refused"].size() == 1);
  CHECK(web["refused"][0]["annotation"] == "nginx.ingress.kubernetes.io/stream-snippet");
  CHECK(doc["totals"] == json(R"({"ingresses": 1, "honoured": 1, "ignored": 1, "refused": 1})"));
}

TEST_CASE("audit: objects of the wrong shape read as far as they go") {
  const Audit audit = audit_ingresses(json(R"([5, {"metadata": 3}, {"metadata": {"name": "n", "annotations": []}}])"),
                                      kPrefix);
  CHECK(audit.ingresses.size() == 3);
  CHECK(audit.totals().honoured + audit.totals().ignored + audit.totals().refused == 0);
  CHECK(audit_ingresses(json(R"({"items": []})"), kPrefix).ingresses.empty());
}

TEST_CASE("annotations: the text listing and the Markdown table name every declared annotation") {
  const std::string text = annotations_text(kPrefix);
  const std::string markdown = annotations_markdown(kPrefix);
  for (const AnnotationSpec& spec : annotation_specs()) {
    const std::string key = std::string(kPrefix) + "/" + std::string(spec.name);
    CHECK(text.find(key + " ") != std::string::npos);
    CHECK(markdown.find("| `" + key + "` |") != std::string::npos);
  }
  CHECK(text.find("nginx.ingress.kubernetes.io/configuration-snippet") != std::string::npos);
  CHECK(std::count(text.begin(), text.end(), '\n') == static_cast<long>(annotation_specs().size()));
}

TEST_CASE("docs/migrating-from-ingress-nginx.md holds exactly `kroute-agent annotations --markdown`") {
  std::ifstream file(KROUTE_MIGRATION_DOC);
  REQUIRE_MESSAGE(file.good(), "cannot read " KROUTE_MIGRATION_DOC);
  std::stringstream buffer;
  buffer << file.rdbuf();
  const std::string doc = buffer.str();
  const std::string begin = "<!-- begin: kroute-agent annotations --markdown -->\n";
  const std::string end = "<!-- end: kroute-agent annotations --markdown -->";
  const std::size_t from = doc.find(begin);
  const std::size_t to = doc.find(end);
  REQUIRE(from != std::string::npos);
  REQUIRE(to != std::string::npos);
  // On a difference: paste the command's output between the two markers.
  CHECK(doc.substr(from + begin.size(), to - from - begin.size()) == annotations_markdown(kPrefix));
}
