// Status page rendering: public content only, escaped, ETag by content.
#include "serve/status_page.h"
#include "incidents/incident_json.h"

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
  inc.severity = Severity::kCritical;
  inc.scope = {{"site", "ams1"}, {"group", "core"}};
  inc.declared_at = in.now - 10min;
  inc.started_at = in.now - 11min;
  inc.next_update_due = in.now + 20min;
  inc.impacted.push_back({"core-ams1", "icmp", "target_down", Severity::kCritical, "3 of 3 lost", "", inc.started_at, true, ""});
  inc.timeline.push_back({inc.declared_at, "declared", "declared", false, ""});
  inc.timeline.push_back({in.now - 5min, "note", "path breaks after 198.51.100.1", false, "nightshift"});
  in.incidents.push_back(inc);
  Incident old;
  old.id = "NS-20261123-0009";
  old.title = "fra2: 3 targets affected";
  old.severity = Severity::kWarning;
  old.scope = {{"site", "fra2"}};
  old.status = IncidentStatus::kResolved;
  old.declared_at = in.now - 5h;
  old.resolved_at = in.now - 4h;
  in.incidents.push_back(old);
  in.targets = {{"core-ams1", "core", "ams1", TargetHealth::State::kDown},
                {"core-ams2", "core", "ams1", TargetHealth::State::kUp},
                {"edge-fra", "edge", "fra2", TargetHealth::State::kUp}};
  return in;
}

TEST(StatusPageTest, ShowsOpenAndResolvedIncidentsAndComponentsEscaped) {
  StatusInput in = input();
  in.components = {{"Core <network>", "Routers & links", {{{"group", "core"}}}},
                   {"Edge", "", {{{"site", "fra2"}, {"group", "edge"}}}}};
  const StatusPage page = render_status(in);
  EXPECT_NE(page.html.find("Outage affecting Core &lt;network&gt;"), std::string::npos) << "title from the component";
  EXPECT_NE(page.html.find("Routers &amp; links"), std::string::npos);
  EXPECT_EQ(page.html.find("<network>"), std::string::npos);
  EXPECT_NE(page.html.find("1 open incident"), std::string::npos);
  EXPECT_NE(page.html.find("Next update by <time class=\"local\" datetime=\""), std::string::npos);
  EXPECT_NE(page.html.find("<h3>Core &lt;network&gt;</h3><span class=\"state partial\">Partial outage</span>"),
            std::string::npos) << "core: 1 up, 1 down, an open critical incident";
  EXPECT_NE(page.html.find("<h3>Edge</h3><span class=\"state ok\">Operational</span>"), std::string::npos);
  const auto j = nlohmann::json::parse(page.json);
  EXPECT_EQ(j["status"], "incident");
  EXPECT_EQ(j["open_incidents"][0]["id"], "NS-20261124-0001");
  EXPECT_EQ(j["open_incidents"][0]["title"], "Outage affecting Core <network>");
  EXPECT_EQ(j["open_incidents"][0]["components"][0], "Core <network>");
  EXPECT_EQ(j["open_incidents"][0]["impacted"], 1);
  EXPECT_EQ(j["resolved_incidents"][0]["id"], "NS-20261123-0009");
  EXPECT_EQ(j["resolved_incidents"][0]["title"], "Degraded performance affecting Edge") << "a warning, declared by scope";
  EXPECT_EQ(j["targets"]["down"], 1);
  ASSERT_EQ(j["components"].size(), 2u);
  EXPECT_EQ(j["components"][0]["state"], "partial");
  EXPECT_EQ(j["components"][0]["days"]["state"].size(), 90u);
}

TEST(StatusPageTest, InternalNamesNotesAndFailureDetailsNeverShow) {
  StatusInput in = input();
  in.components = {{"Core network", "", {{{"group", "core"}}}}};
  const StatusPage page = render_status(in);
  for (const char* secret : {"198.51.100.1", "3 of 3 lost", "core-ams1", "target_down", "alert(1)", "fra2: 3 targets"}) {
    EXPECT_EQ(page.html.find(secret), std::string::npos) << secret;
    EXPECT_EQ(page.json.find(secret), std::string::npos) << secret;
    EXPECT_EQ(page.atom.find(secret), std::string::npos) << secret;
  }
  in.incidents[0].timeline.push_back({in.now - 1min, "note", "Fibre cut near Haarlem; crew on site.", true, "noc"});
  in.incidents[0].timeline.push_back({in.now, "note", "Repaired; watching.", true, "noc"});
  const StatusPage updated = render_status(in);
  const std::size_t newer = updated.html.find("Repaired; watching.");
  const std::size_t older = updated.html.find("Fibre cut near Haarlem; crew on site.");
  ASSERT_NE(newer, std::string::npos);
  ASSERT_NE(older, std::string::npos);
  EXPECT_LT(newer, older) << "newest update first";
  const auto j = nlohmann::json::parse(updated.json);
  ASSERT_EQ(j["open_incidents"][0]["updates"].size(), 2u);
  EXPECT_EQ(j["open_incidents"][0]["updates"][0]["text"], "Fibre cut near Haarlem; crew on site.") << "in order";
  EXPECT_EQ(j["open_incidents"][0]["latest_update"]["text"], "Repaired; watching.");
  EXPECT_NE(updated.atom.find("Repaired; watching."), std::string::npos);
}

TEST(StatusPageTest, DefaultComponentsAreTheGroupsAndTitlesReadWell) {
  const StatusInput in = input();
  const auto components = effective_components(in);
  ASSERT_EQ(components.size(), 2u);
  EXPECT_EQ(components[0].name, "Core");
  EXPECT_EQ(components[1].name, "Edge");
  EXPECT_EQ(public_title(in.incidents[0], components, in.targets), "Outage affecting Core");
  Incident unknown;
  unknown.severity = Severity::kInfo;
  EXPECT_EQ(public_title(unknown, components, in.targets), "Issue affecting some services");
  StatusInput none;
  EXPECT_EQ(effective_components(none).size(), 1u);
  EXPECT_EQ(effective_components(none)[0].name, "All services");
}

TEST(StatusPageTest, UptimeBarsComeFromIncidentsOverNinetyDays) {
  StatusInput in = input();
  in.incidents.erase(in.incidents.begin());  // nothing open
  // A critical outage of core 10 days ago, 3 hours, resolved.
  Incident past;
  past.id = "NS-20261114-0001";
  past.severity = Severity::kCritical;
  past.status = IncidentStatus::kResolved;
  const auto day = std::chrono::duration_cast<std::chrono::seconds>(in.now.time_since_epoch()) / 86400;
  const SystemTime midnight{std::chrono::duration_cast<Duration>(std::chrono::seconds(day * 86400))};
  past.started_at = midnight - 10 * 24h + 1h;
  past.declared_at = past.started_at;
  past.resolved_at = past.started_at + 3h;
  past.impacted.push_back({"core-ams1", "icmp", "target_down", Severity::kCritical, "", "", past.started_at, false, ""});
  in.incidents.push_back(past);
  in.monitoring_since = midnight - 30 * 24h;
  const auto j = nlohmann::json::parse(render_status(in).json);
  const auto& days = j["components"][0]["days"];  // Core
  ASSERT_EQ(days["state"].size(), 90u);
  EXPECT_EQ(days["first"], format_time(midnight - 89 * 24h).substr(0, 10));
  EXPECT_EQ(days["state"][79], "major");
  EXPECT_EQ(days["down_minutes"][79], 180);
  EXPECT_EQ(days["state"][78], "ok");
  EXPECT_EQ(days["state"][58], "nodata") << "before monitoring began";
  EXPECT_EQ(days["state"][59], "ok");
  EXPECT_LT(j["components"][0]["uptime_percent"].get<double>(), 100.0);
  EXPECT_GT(j["components"][0]["uptime_percent"].get<double>(), 99.5);
  EXPECT_EQ(j["components"][1]["days"]["state"][79], "ok") << "edge was not affected";
  EXPECT_EQ(j["resolved_incidents"].size(), 2u) << "resolved incidents of the last 90 days";
}

TEST(StatusPageTest, EtagFollowsContentNotRenderTime) {
  StatusInput in = input();
  const StatusPage a = render_status(in);
  in.now += 1s;
  const StatusPage b = render_status(in);
  EXPECT_EQ(a.etag, b.etag);
  in.targets[0].state = TargetHealth::State::kUp;
  EXPECT_NE(render_status(in).etag, a.etag);
}

// The promise of the next update, once its time has passed with no update,
// is said to be overdue (since when), not shown as a past time to wait for.
TEST(StatusPageTest, PassedUpdatePromiseReadsOverdue) {
  ManualClock clock;  // the clock input() dates everything from
  StatusInput in = input();
  ASSERT_EQ(in.now, clock.wall_now());
  const SystemTime due = in.incidents[0].next_update_due;

  const StatusPage before = render_status(in);
  EXPECT_NE(before.html.find("Next update by <time"), std::string::npos);
  EXPECT_EQ(before.html.find("overdue"), std::string::npos);
  EXPECT_EQ(nlohmann::json::parse(before.json)["open_incidents"][0]["update_overdue"], false);

  clock.advance(20min);  // exactly due: still a promise
  in.now = clock.wall_now();
  ASSERT_EQ(in.now, due);
  EXPECT_NE(render_status(in).html.find("Next update by"), std::string::npos);

  clock.advance(1min);
  in.now = clock.wall_now();
  const StatusPage after = render_status(in);
  EXPECT_EQ(after.html.find("Next update by"), std::string::npos) << "a past time shown as a promise";
  const std::string due_iso = nlohmann::json::parse(before.json)["open_incidents"][0]["next_update_due"];
  EXPECT_NE(after.html.find("Update overdue since <time class=\"local\" datetime=\"" + due_iso + "\">"),
            std::string::npos)
      << after.html;
  const auto j = nlohmann::json::parse(after.json)["open_incidents"][0];
  EXPECT_EQ(j["update_overdue"], true);
  EXPECT_EQ(j["next_update_due"], due_iso);
  // The manual clock's wall time starts at 2025-12-18 00:00 UTC; the promise was 20 min later.
  EXPECT_NE(after.atom.find("Update overdue since 2025-12-18 00:20 UTC"), std::string::npos) << after.atom;
  EXPECT_EQ(after.atom.find("Next update by"), std::string::npos);
  EXPECT_NE(after.etag, before.etag) << "readers holding the old page must get the new one";
}

TEST(StatusPageTest, AllClearWhenNothingIsOpen) {
  StatusInput in = input();
  in.incidents.erase(in.incidents.begin());
  const StatusPage page = render_status(in);
  EXPECT_NE(page.html.find("All systems operational."), std::string::npos);
  EXPECT_EQ(nlohmann::json::parse(page.json)["status"], "operational");
}

TEST(StatusPageTest, ExportWritesBothFilesWhole) {
  test::TempDir dir;
  const StatusPage page = render_status(input());
  ASSERT_TRUE(export_status(page, dir.path()).ok());
  std::ifstream html(dir.file("status.html")), json(dir.file("status.json")), atom(dir.file("feed.atom"));
  std::stringstream h, j, a;
  h << html.rdbuf();
  j << json.rdbuf();
  a << atom.rdbuf();
  EXPECT_EQ(h.str(), page.html);
  EXPECT_EQ(j.str(), page.json);
  EXPECT_EQ(a.str(), page.atom);
  EXPECT_FALSE(export_status(page, dir.file("missing")).ok());
}

}  // namespace
}  // namespace nightshift
