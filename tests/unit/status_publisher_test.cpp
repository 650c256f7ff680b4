// StatusPublisher: the 90 days of incidents the page keeps, the snapshot it
// serves (ETag, caching, 304, 503 before the first render) and its export.
#include "serve/status_publisher.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "tests/support/temp_dir.h"

namespace nightshift {
namespace {

using namespace std::chrono_literals;

Incident incident(const std::string& id, SystemTime declared, bool open, SystemTime resolved = {}) {
  Incident inc;
  inc.id = id;
  inc.title = id + ": target_down";
  inc.severity = Severity::kCritical;
  inc.scope = {{"site", "ams1"}};
  inc.started_at = declared;
  inc.declared_at = declared;
  inc.status = open ? IncidentStatus::kDeclared : IncidentStatus::kResolved;
  inc.resolved_at = resolved;
  inc.impacted.push_back({"core-ams1", "icmp", "target_down", Severity::kCritical, "down", "", declared, open, ""});
  return inc;
}

std::vector<std::string> ids_in(const StatusPage& page) {
  std::vector<std::string> ids;
  const auto j = nlohmann::json::parse(page.json);
  for (const char* list : {"open_incidents", "resolved_incidents"}) {
    for (const auto& inc : j.at(list)) ids.push_back(inc.at("id").get<std::string>());
  }
  return ids;
}

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class StatusPublisherTest : public ::testing::Test {
 protected:
  StatusPublisher::Now now(const std::vector<Incident>* current = nullptr) {
    StatusPublisher::Now n;
    n.now = clock_.wall_now();
    n.incidents = current;
    n.targets = {{"core-ams1", "core", "ams1", TargetHealth::State::kUp}};
    return n;
  }
  ManualClock clock_;
};

TEST_F(StatusPublisherTest, NothingIsServedBeforeTheFirstPublish) {
  StatusPublisher publisher({"edge-ams1", "", {}, ""});
  const HttpResponse r = publisher.serve({}, StatusPublisher::Format::kHtml);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(publisher.page(), nullptr);
}

TEST_F(StatusPublisherTest, KeepsNinetyDaysOfHistoryAndTheManagersWordIsNewest) {
  StatusPublisher publisher({"edge-ams1", "", {}, ""});
  const SystemTime t = clock_.wall_now();
  // From the store: one resolved 10 days ago, one 91 days ago, one still open.
  publisher.restore({incident("NS-A-0001", t - 10 * 24h, false, t - 10 * 24h + 1h),
                     incident("NS-A-0002", t - 91 * 24h, false, t - 91 * 24h + 1h),
                     incident("NS-A-0003", t - 1h, true)},
                    t - 200 * 24h);
  // The manager resolved NS-A-0003 since: its state wins over the stored one.
  std::vector<Incident> current = {incident("NS-A-0003", t - 1h, false, t - 5min)};
  ASSERT_TRUE(publisher.publish(now(&current)));
  EXPECT_EQ(publisher.history_size(), 2u) << "the 91-day-old incident left the page";
  const auto page = publisher.page();
  ASSERT_NE(page, nullptr);
  const auto j = nlohmann::json::parse(page->json);
  EXPECT_TRUE(j.at("open_incidents").empty());
  std::vector<std::string> ids = ids_in(*page);
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<std::string>{"NS-A-0001", "NS-A-0003"}));

  // 85 days on, the one resolved ten days before is past the window too.
  clock_.advance(85 * 24h);
  publisher.publish(now());
  EXPECT_EQ(ids_in(*publisher.page()), (std::vector<std::string>{"NS-A-0003"}));
}

TEST_F(StatusPublisherTest, ServesOneSnapshotWithItsETagAndAnswers304) {
  StatusPublisher publisher({"edge-ams1", "Example status", {}, ""});
  std::vector<Incident> current = {incident("NS-A-0001", clock_.wall_now() - 2min, true)};
  ASSERT_TRUE(publisher.publish(now(&current)));
  EXPECT_FALSE(publisher.publish(now(&current))) << "same content: same snapshot";

  const HttpResponse html = publisher.serve({}, StatusPublisher::Format::kHtml);
  ASSERT_EQ(html.status, 200);
  EXPECT_EQ(html.content_type, "text/html; charset=utf-8");
  ASSERT_NE(html.shared_body, nullptr);
  EXPECT_NE(html.shared_body->find("Example status"), std::string::npos);
  std::string etag, cache;
  for (const auto& [k, v] : html.headers) {
    if (k == "ETag") etag = v;
    if (k == "Cache-Control") cache = v;
  }
  EXPECT_EQ(etag, publisher.page()->etag);
  EXPECT_EQ(cache, "public, max-age=5");

  const HttpResponse atom = publisher.serve({}, StatusPublisher::Format::kAtom);
  EXPECT_EQ(atom.content_type, "application/atom+xml; charset=utf-8");
  EXPECT_EQ(atom.shared_body.get(), &publisher.page()->atom) << "no copy per request";

  HttpRequest again;
  again.headers["if-none-match"] = etag;
  const HttpResponse not_modified = publisher.serve(again, StatusPublisher::Format::kJson);
  EXPECT_EQ(not_modified.status, 304);
  EXPECT_EQ(not_modified.shared_body, nullptr);

  // A change of content is a new snapshot and a new ETag.
  current[0].status = IncidentStatus::kResolved;
  current[0].resolved_at = clock_.wall_now();
  ASSERT_TRUE(publisher.publish(now(&current)));
  EXPECT_NE(publisher.page()->etag, etag);
  EXPECT_EQ(publisher.serve(again, StatusPublisher::Format::kJson).status, 200);
}

TEST_F(StatusPublisherTest, SilencedOpenIncidentsShowAsMaintenanceAndChangesAreExported) {
  test::TempDir dir;
  StatusPublisher publisher({"edge-ams1", "", {}, dir.path()});
  std::vector<Incident> current = {incident("NS-A-0001", clock_.wall_now() - 2min, true)};
  StatusPublisher::Now n = now(&current);
  n.silenced = [](const Incident& inc) { return inc.id == "NS-A-0001"; };
  ASSERT_TRUE(publisher.publish(n));
  EXPECT_NE(publisher.page()->html.find("maintenance"), std::string::npos);
  EXPECT_EQ(read(dir.file("status.html")), publisher.page()->html);
  EXPECT_EQ(read(dir.file("status.json")), publisher.page()->json);
  EXPECT_EQ(read(dir.file("feed.atom")), publisher.page()->atom);

  // A reload changes the title; the next publish renders and exports it.
  publisher.configure({"edge-ams1", "After reload", {}, dir.path()});
  ASSERT_TRUE(publisher.publish(n));
  EXPECT_NE(read(dir.file("status.html")).find("After reload"), std::string::npos);
}

TEST_F(StatusPublisherTest, FleetIncidentsShowOnceUnderTheFleetId) {
  StatusPublisher pub({"edge-b", "", {}, ""});
  const SystemTime t0 = clock_.wall_now() - 10min;
  // This agent's copy of the fleet incident NS-a-1, and another agent's
  // incident it has no copy of (a target this page does not watch).
  std::vector<Incident> current = {incident("NS-b-7", t0, true)};
  Incident mine_in_fleet = incident("NS-a-1", t0, true);
  Incident theirs = incident("NS-c-3", t0, true);
  theirs.impacted[0].target = "core-fra1";
  theirs.timeline.push_back({t0, "note", "carrier ticket 4711", false, "alice"});
  theirs.timeline.push_back({t0 + 1min, "note", "A fibre cut; the carrier is on site", true, "alice"});
  StatusPublisher::Now n = now(&current);
  n.fleet_ids = {{"NS-b-7", "NS-a-1"}};
  n.fleet_incidents = {mine_in_fleet, theirs};
  ASSERT_TRUE(pub.publish(n));
  auto page = pub.page();
  std::vector<std::string> ids = ids_in(*page);
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<std::string>{"NS-a-1", "NS-c-3"})) << "the copy under the fleet id, not twice";
  EXPECT_NE(page->json.find("A fibre cut; the carrier is on site"), std::string::npos);
  EXPECT_EQ(page->json.find("carrier ticket 4711"), std::string::npos) << "internal notes stay internal";
  EXPECT_EQ(page->json.find("core-fra1"), std::string::npos) << "no target names";
  // Placed by its scope (site ams1): the component this page shows for it.
  const auto j = nlohmann::json::parse(page->json);
  for (const auto& inc : j.at("open_incidents")) {
    EXPECT_FALSE(inc.at("components").empty()) << inc.dump();
  }
}

TEST_F(StatusPublisherTest, AnIncidentOfThisVantagesPathIsNeverPublic) {
  StatusPublisher pub({"edge-c", "", {}, ""});
  const SystemTime t0 = clock_.wall_now() - 10min;
  std::vector<Incident> current = {incident("NS-c-1", t0, true), incident("NS-c-2", t0, true)};
  StatusPublisher::Now n = now(&current);
  n.not_public = {"NS-c-1"};
  ASSERT_TRUE(pub.publish(n));
  EXPECT_EQ(ids_in(*pub.page()), (std::vector<std::string>{"NS-c-2"}));
  // Resolved later, when the fleet's decision is no longer handed in: still
  // not among the past incidents.
  current = {incident("NS-c-1", t0, false, t0 + 5min), incident("NS-c-2", t0, true)};
  n = now(&current);
  pub.publish(n);
  EXPECT_EQ(ids_in(*pub.page()), (std::vector<std::string>{"NS-c-2"}));
}

}  // namespace
}  // namespace nightshift
