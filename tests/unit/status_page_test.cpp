// Status page rendering: public content only, escaped, ETag by content.
#include "serve/status_page.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

#include "tests/support/temp_dir.h"

namespace nightshift {
namespace {

using namespace std::chrono_literals;

StatusInput input() {
  ManualClock clock;
  StatusInput in;
  in.agent = "edge-ams1";
  in.now = clock.wall_now();
  Incident inc;
  inc.id = "NS-20261124-0001";
  inc.title = "core-ams1: target_down <script>alert(1)</script>";
  inc.severity = "critical";
  inc.scope = {{"site", "ams1"}, {"group", "core"}};
  inc.declared_at = in.now - 10min;
  inc.started_at = in.now - 11min;
  inc.next_update_due = in.now + 20min;
  inc.impacted.push_back({"core-ams1", "icmp", "target_down", "critical", "3 of 3 lost", "", inc.started_at, true});
  inc.timeline.push_back({inc.declared_at, "declared", "declared", false, ""});
  inc.timeline.push_back({in.now - 5min, "note", "path breaks after 198.51.100.1", false, "nightshift"});
  in.incidents.push_back(inc);
  Incident old;
  old.id = "NS-20261123-0009";
  old.title = "fra2: 3 targets affected";
  old.severity = "warning";
  old.status = IncidentStatus::kResolved;
  old.declared_at = in.now - 5h;
  old.resolved_at = in.now - 4h;
  in.incidents.push_back(old);
  in.targets = {{"core-ams1", "core", "ams1", TargetHealth::State::kDown},
                {"core-ams2", "core", "ams1", TargetHealth::State::kUp},
                {"edge-fra", "edge", "fra2", TargetHealth::State::kUp}};
  return in;
}

TEST(StatusPageTest, ShowsOpenAndResolvedIncidentsAndHealthEscaped) {
  const StatusPage page = render_status(input());
  EXPECT_NE(page.html.find("core-ams1: target_down &lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
  EXPECT_EQ(page.html.find("<script>"), std::string::npos);
  EXPECT_NE(page.html.find("1 open incident"), std::string::npos);
  EXPECT_NE(page.html.find("Next update by"), std::string::npos);
  EXPECT_NE(page.html.find("fra2: 3 targets affected"), std::string::npos) << "recently resolved";
  EXPECT_NE(page.html.find("<td class=\"degraded\">degraded</td>"), std::string::npos) << "ams1/core: 1 up, 1 down";
  const auto j = nlohmann::json::parse(page.json);
  EXPECT_EQ(j["status"], "incident");
  EXPECT_EQ(j["open_incidents"][0]["id"], "NS-20261124-0001");
  EXPECT_EQ(j["open_incidents"][0]["impacted"], 1);
  EXPECT_EQ(j["resolved_incidents"][0]["id"], "NS-20261123-0009");
  EXPECT_EQ(j["targets"]["down"], 1);
  EXPECT_EQ(j["health"].size(), 2u);
}

TEST(StatusPageTest, InternalNotesAndFailureDetailsNeverShow) {
  StatusInput in = input();
  const StatusPage page = render_status(in);
  for (const char* secret : {"198.51.100.1", "3 of 3 lost"}) {
    EXPECT_EQ(page.html.find(secret), std::string::npos) << secret;
    EXPECT_EQ(page.json.find(secret), std::string::npos) << secret;
  }
  in.incidents[0].timeline.push_back({in.now, "note", "Fibre cut near Haarlem; crew on site.", true, "noc"});
  const StatusPage updated = render_status(in);
  EXPECT_NE(updated.html.find("Fibre cut near Haarlem; crew on site."), std::string::npos);
  EXPECT_EQ(nlohmann::json::parse(updated.json)["open_incidents"][0]["latest_update"]["text"],
            "Fibre cut near Haarlem; crew on site.");
}

TEST(StatusPageTest, EtagFollowsContentNotRenderTime) {
  StatusInput in = input();
  const StatusPage a = render_status(in);
  in.now += 1min;
  const StatusPage b = render_status(in);
  EXPECT_EQ(a.etag, b.etag);
  in.targets[0].state = TargetHealth::State::kUp;
  EXPECT_NE(render_status(in).etag, a.etag);
}

TEST(StatusPageTest, AllClearWhenNothingIsOpen) {
  StatusInput in = input();
  in.incidents.erase(in.incidents.begin());
  const StatusPage page = render_status(in);
  EXPECT_NE(page.html.find("All monitored services are operating normally."), std::string::npos);
  EXPECT_EQ(nlohmann::json::parse(page.json)["status"], "operational");
}

TEST(StatusPageTest, ExportWritesBothFilesWhole) {
  test::TempDir dir;
  const StatusPage page = render_status(input());
  ASSERT_TRUE(export_status(page, dir.path()).ok());
  std::ifstream html(dir.file("status.html")), json(dir.file("status.json"));
  std::stringstream h, j;
  h << html.rdbuf();
  j << json.rdbuf();
  EXPECT_EQ(h.str(), page.html);
  EXPECT_EQ(j.str(), page.json);
  EXPECT_FALSE(export_status(page, dir.file("missing")).ok());
}

}  // namespace
}  // namespace nightshift
