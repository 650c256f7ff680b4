// The shipped Grafana dashboards (dashboards/*.json, written by
// scripts/make-dashboards.py) read the way an operator needs: every stat and
// state panel colours by thresholds and names its values, every heat map is
// fed histogram buckets (not a gauge Grafana would bucket again), and the
// overview, target and agent dashboards link to each other carrying the
// variables and time range. Grafana itself is not installable here (not in
// Debian), so this checks the JSON Grafana would load; tests/e2e runs every
// panel's query against a real Prometheus.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tests/support/temp_dir.h"

namespace nightshift {
namespace {

using nlohmann::json;

std::string source(const std::string& path) { return std::string(NIGHTSHIFT_TEST_SOURCE_DIR) + "/" + path; }

json load(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in, nullptr, /*allow_exceptions=*/false);
}

std::map<std::string, json> dashboards() {
  std::map<std::string, json> out;
  for (const auto& entry : std::filesystem::directory_iterator(source("dashboards"))) {
    if (entry.path().extension() == ".json") out[entry.path().filename().string()] = load(entry.path().string());
  }
  return out;
}

bool is_stat_or_state(const std::string& type) {
  return type == "stat" || type == "state-timeline" || type == "status-history" || type == "bargauge" ||
         type == "gauge";
}

std::set<std::string> variables(const json& d) {
  std::set<std::string> out;
  for (const auto& v : d["templating"]["list"]) out.insert(v["name"].get<std::string>());
  return out;
}

// Query parameters a link carries: var-NAME=... and ${NAME:queryparam}.
std::set<std::string> carried(const std::string& url) {
  std::set<std::string> out;
  static const std::regex kParam(R"(\$\{(\w+):queryparam\}|var-(\w+)=)");
  for (std::sregex_iterator it(url.begin(), url.end(), kParam), end; it != end; ++it) {
    out.insert((*it)[1].matched ? (*it)[1].str() : (*it)[2].str());
  }
  return out;
}

TEST(DashboardsTest, AllThreeParseAndMatchTheirGenerator) {
  auto all = dashboards();
  ASSERT_EQ(all.size(), 3u);
  for (const auto& [name, d] : all) EXPECT_TRUE(d.is_object()) << name << " is not valid JSON";
  test::TempDir dir;
  const std::string cmd = "python3 " + source("scripts/make-dashboards.py") + " --out " + dir.path() + " >/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  for (const auto& [name, d] : all) {
    EXPECT_EQ(load(dir.path() + "/" + name), d) << name << " differs from what scripts/make-dashboards.py writes: run it";
  }
}

TEST(DashboardsTest, EveryStatAndStatePanelHasThresholdsAndValueMappings) {
  int checked = 0;
  for (const auto& [name, d] : dashboards()) {
    for (const auto& p : d["panels"]) {
      const std::string type = p["type"];
      if (!is_stat_or_state(type)) continue;
      SCOPED_TRACE(name + " / " + p["title"].get<std::string>());
      ++checked;
      const json& defaults = p["fieldConfig"]["defaults"];
      ASSERT_TRUE(defaults.contains("thresholds"));
      const json& steps = defaults["thresholds"]["steps"];
      ASSERT_GE(steps.size(), 2u) << "one colour for every value says nothing";
      EXPECT_TRUE(steps[0]["value"].is_null()) << "the first step is the base colour";
      for (std::size_t i = 2; i < steps.size(); ++i) {
        EXPECT_LT(steps[i - 1]["value"].get<double>(), steps[i]["value"].get<double>()) << "steps ascend";
      }
      std::set<std::string> colours;
      for (const auto& s : steps) colours.insert(s["color"].get<std::string>());
      EXPECT_GE(colours.size(), 2u);
      EXPECT_EQ(defaults["color"]["mode"], "thresholds");
      ASSERT_TRUE(defaults.contains("mappings"));
      EXPECT_FALSE(defaults["mappings"].empty());
      bool no_data = false;
      for (const auto& m : defaults["mappings"]) {
        EXPECT_TRUE(m["type"] == "value" || m["type"] == "range" || m["type"] == "special") << m.dump();
        if (m["type"] == "special") no_data = true;
      }
      EXPECT_TRUE(no_data) << "a missing series must read \"no data\", not a colour";
    }
  }
  EXPECT_GE(checked, 10);
}

// The reproduction from issue 21: "targets down = 2" showed green.
TEST(DashboardsTest, TargetsDownIsRedFromOne) {
  const json d = load(source("dashboards/noc-overview.json"));
  bool found = false;
  for (const auto& p : d["panels"]) {
    if (p["title"] != "Targets down") continue;
    found = true;
    const json& steps = p["fieldConfig"]["defaults"]["thresholds"]["steps"];
    std::string colour_at_2;
    for (const auto& s : steps) {
      if (s["value"].is_null() || s["value"].get<double>() <= 2) colour_at_2 = s["color"];
    }
    EXPECT_EQ(colour_at_2, "red");
    EXPECT_EQ(steps[0]["color"], "green");
  }
  EXPECT_TRUE(found);
}

TEST(DashboardsTest, HeatMapsAreFedHistogramBuckets) {
  int heatmaps = 0;
  for (const auto& [name, d] : dashboards()) {
    for (const auto& p : d["panels"]) {
      if (p["type"] != "heatmap") continue;
      SCOPED_TRACE(name + " / " + p["title"].get<std::string>());
      ++heatmaps;
      EXPECT_EQ(p["options"]["calculate"], false) << "buckets are counted already: Grafana must not re-bucket";
      for (const auto& t : p["targets"]) {
        const std::string expr = t["expr"];
        EXPECT_NE(expr.find("_bucket{"), std::string::npos) << expr;
        EXPECT_NE(expr.find("by (le)"), std::string::npos) << expr;
        EXPECT_EQ(t["format"], "heatmap");
        EXPECT_EQ(t["legendFormat"], "{{le}}");
      }
    }
  }
  EXPECT_GE(heatmaps, 3);
}

TEST(DashboardsTest, OverviewTargetAndAgentLinkToEachOtherCarryingVariables) {
  auto all = dashboards();
  std::map<std::string, std::string> uid_file;
  for (const auto& [name, d] : all) uid_file[d["uid"]] = name;
  static const std::regex kDashUrl(R"(^/d/([\w-]+)/)");
  std::set<std::pair<std::string, std::string>> edges;  // (from uid, to uid)
  for (const auto& [name, d] : all) {
    const std::string from = d["uid"];
    SCOPED_TRACE(name);
    for (const auto& l : d["links"]) {
      std::smatch m;
      const std::string url = l["url"];
      ASSERT_TRUE(std::regex_search(url, m, kDashUrl)) << url;
      EXPECT_TRUE(uid_file.count(m[1])) << "link to an unknown dashboard: " << url;
      EXPECT_EQ(l["includeVars"], true) << url;
      EXPECT_EQ(l["keepTime"], true) << url;
      edges.insert({from, m[1]});
    }
    // Panel data links (a row or series to its target's detail) carry every
    // variable the destination shares with this dashboard, and the time.
    for (const auto& p : d["panels"]) {
      if (!p["fieldConfig"]["defaults"].contains("links")) continue;
      for (const auto& l : p["fieldConfig"]["defaults"]["links"]) {
        const std::string url = l["url"];
        SCOPED_TRACE(p["title"].get<std::string>() + ": " + url);
        std::smatch m;
        ASSERT_TRUE(std::regex_search(url, m, kDashUrl));
        ASSERT_TRUE(uid_file.count(m[1]));
        edges.insert({from, m[1]});
        const auto have = carried(url);
        for (const auto& v : variables(all[uid_file[m[1]]])) {
          if (v == "datasource" || !variables(d).count(v)) continue;
          EXPECT_TRUE(have.count(v)) << "does not carry $" << v;
        }
        if (m[1] == "nightshift-target") {
          EXPECT_TRUE(have.count("target")) << "names no target";
        }
        EXPECT_NE(url.find("${__url_time_range}"), std::string::npos);
      }
    }
  }
  for (auto [a, b] : {std::pair{"nightshift-noc", "nightshift-target"}, {"nightshift-target", "nightshift-agent"},
                      {"nightshift-target", "nightshift-noc"}, {"nightshift-agent", "nightshift-noc"},
                      {"nightshift-noc", "nightshift-agent"}}) {
    EXPECT_TRUE(edges.count({a, b})) << a << " -> " << b;
  }
}

TEST(DashboardsTest, EveryVariableAQueryUsesIsDefined) {
  static const std::regex kVar(R"(\$(\w+))");
  for (const auto& [name, d] : dashboards()) {
    const auto defined = variables(d);
    for (const auto& p : d["panels"]) {
      for (const auto& t : p["targets"]) {
        const std::string expr = t["expr"];
        for (std::sregex_iterator it(expr.begin(), expr.end(), kVar), end; it != end; ++it) {
          const std::string v = (*it)[1];
          if (v.rfind("__", 0) == 0) continue;  // Grafana's own ($__rate_interval)
          EXPECT_TRUE(defined.count(v)) << name << " / " << p["title"] << ": $" << v;
        }
      }
    }
  }
}

}  // namespace
}  // namespace nightshift
