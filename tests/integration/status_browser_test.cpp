// The status page as customers see it, in a real browser: headless Chromium
// (Debian's) renders /status of a running agent at desktop (1280×900) and
// phone (390×844) sizes, with an open incident carrying two public updates, a
// resolved incident from the store and 90 days of history. The DOM is checked
// for every element the page promises (components and their states, uptime
// bars, updates in order, the next-update promise, past incidents, local
// times) and for the absence of internal names; the screenshots are kept for
// people to look at. The Atom feed is parsed by a real XML parser (Python's
// xml.etree), and nginx serving the export directory with the shipped
// deploy/nginx snippet serves the same bytes with the documented caching.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include <nlohmann/json.hpp>

#include "store/store.h"
#include "tests/support/agent_run.h"
#include "tests/support/http_get.h"
#include "tests/support/process.h"
#include "tests/support/require.h"
#include "tests/support/temp_dir.h"
#include "tests/support/testnet.h"
#include "tests/support/wait.h"

namespace nightshift::test {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;
using nlohmann::json;

const std::string kNetnsError = enter_private_netns();
const std::string kToken = "status-browser-token-0123456789";

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A TCP port on 127.0.0.1: listening (kept open) or closed (nothing there).
struct Port {
  int fd = -1;
  int port = 0;
  explicit Port(bool listening) {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    if (listening) {
      ::listen(fd, 64);
    } else {
      ::close(fd);
      fd = -1;
    }
  }
  ~Port() {
    if (fd >= 0) ::close(fd);
  }
};

class StatusPageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    NIGHTSHIFT_REQUIRE_TESTNET(kNetnsError);
    ASSERT_FALSE(agent_binary().empty());
    const SystemTime now = std::chrono::system_clock::now();
    {
      // What an agent running for 100 days would hold: a resolved outage of
      // the shop 20 days ago (2 hours), with its public updates.
      std::filesystem::create_directories(dir_.file("state"));
      auto opened = Store::open(dir_.file("state"));
      ASSERT_TRUE(opened.ok()) << opened.error().message;
      Store& store = *opened->store;
      Incident old;
      old.id = "NS-20260101-0007";
      old.title = "group=shop site=ams1: 2 targets affected";
      old.severity = Severity::kCritical;
      old.scope = {{"group", "shop"}, {"site", "ams1"}};
      old.status = IncidentStatus::kResolved;
      // On a whole minute: when the 2 hours cross a midnight, each day's
      // share is counted in whole minutes, and 119.5 + 0.5 would read 119.
      old.started_at = std::chrono::floor<std::chrono::minutes>(now) - 20 * 24h;
      old.declared_at = old.started_at + 1min;
      old.resolved_at = old.started_at + 2h;
      old.impacted.push_back({"checkout-api", "tcp", "target_down", Severity::kCritical, "connection refused", "", old.started_at,
                              false, ""});
      old.timeline.push_back({old.declared_at, "declared", "declared", false, ""});
      old.timeline.push_back({old.declared_at + 10min, "note", "Payments fail for some customers; investigating.", true,
                              "noc"});
      old.timeline.push_back({old.resolved_at, "note", "A failed database switch-over was rolled back. All good.", true,
                              "noc"});
      old.timeline.push_back({old.resolved_at, "resolved", "resolved", false, ""});
      ASSERT_TRUE(store.save(old).ok());
      const auto since = std::chrono::duration_cast<std::chrono::seconds>((now - 100 * 24h).time_since_epoch());
      ASSERT_TRUE(store.set_meta("status_since", std::to_string(since.count())).ok());
    }
    write_text_file(dir_.file("api.token"), kToken + "\n");
    std::ostringstream config;
    config << "[agent]\nname = \"edge-ams1\"\nlisten = \"127.0.0.1:0\"\nstate_dir = \"" << dir_.file("state")
           << "\"\n[defaults]\ninterval = \"300ms\"\ntimeout = \"200ms\"\n"
           << "[api]\ntoken_file = \"" << dir_.file("api.token") << "\"\n"
           << "[status]\ntitle = \"Example Shop status\"\nexport_dir = \"" << dir_.file("www") << "\"\n"
           << "[[status.component]]\nname = \"Checkout\"\ndescription = \"Payments and orders\"\n"
              "match = [\"group=shop\"]\n"
           << "[[status.component]]\nname = \"Website\"\ndescription = \"The shop's pages\"\nmatch = [\"target=www\"]\n"
           << "[[target]]\nname = \"checkout-api\"\naddress = \"127.0.0.1\"\ngroup = \"shop\"\nsite = \"ams1\"\n"
              "  [[target.probe]]\n  kind = \"tcp\"\n  port = "
           << closed_.port << "\n"
           << "[[target]]\nname = \"www\"\naddress = \"127.0.0.1\"\ngroup = \"web\"\nsite = \"ams1\"\n"
              "  [[target.probe]]\n  kind = \"tcp\"\n  port = "
           << open_.port << "\n";
    std::filesystem::create_directories(dir_.file("www"));
    write_text_file(dir_.file("agent.toml"), config.str());
    agent_ = start_agent(dir_.file("agent.toml"));
    ASSERT_NE(agent_.port, 0) << agent_.process->stderr_text();
  }

  std::string url(const std::string& path) const { return agent_.url(path); }

  RunResult curl(std::vector<std::string> args) {
    std::vector<std::string> argv = {"curl", "-s", "-m", "5"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_process(argv, 10s);
  }

  // The open incident with two public updates (and an internal note that must stay internal).
  std::string open_incident_with_updates() {
    std::string id;
    EXPECT_TRUE(wait_until([&] {
      auto j = json::parse(http_get(url("/status.json")).body, nullptr, false);
      if (!j.is_object() || j["open_incidents"].empty()) return false;
      id = j["open_incidents"][0]["id"];
      return true;
    }, 8s)) << agent_.process->stderr_text();
    for (const auto& [text, is_public] : std::vector<std::pair<std::string, bool>>{
             {"We are looking into failed payments.", true},
             {"linecard 3 on core-ams1 reset; internal only", false},
             {"A fix is rolling out; payments recover.", true}}) {
      const json body = {{"text", text}, {"public", is_public}, {"by", "noc"}};
      RunResult r = curl({"-X", "POST", "-H", "Authorization: Bearer " + kToken, "-H", "Content-Type: application/json",
                          "-d", body.dump(), url("/api/v1/incidents/" + id + "/notes")});
      EXPECT_THAT(r.out, HasSubstr("\"id\"")) << r.out << r.err;
    }
    EXPECT_TRUE(wait_until([&] {
      auto j = json::parse(http_get(url("/status.json")).body, nullptr, false);
      return j.is_object() && !j["open_incidents"].empty() && j["open_incidents"][0]["updates"].size() == 2 &&
             std::filesystem::exists(dir_.file("www/feed.atom")) &&
             slurp(dir_.file("www/status.json")).find("payments recover") != std::string::npos;
    }, 5s));
    return id;
  }

  TempDir dir_;
  Port closed_{false};
  Port open_{true};
  RunningAgent agent_;
};

TEST_F(StatusPageTest, RendersEveryElementInChromiumAtDesktopAndPhoneSizes) {
  NIGHTSHIFT_REQUIRE_PROGRAM("/usr/bin/chromium");
  const std::string id = open_incident_with_updates();
  ASSERT_FALSE(id.empty());
  const auto j = json::parse(http_get(url("/status.json")).body);
  EXPECT_EQ(j["open_incidents"][0]["title"], "Outage affecting Checkout");
  EXPECT_EQ(j["resolved_incidents"][0]["title"], "Outage affecting Checkout");
  ASSERT_EQ(j["components"].size(), 2u);
  EXPECT_EQ(j["components"][0]["name"], "Checkout");
  EXPECT_EQ(j["components"][0]["state"], "major");
  EXPECT_EQ(j["components"][1]["name"], "Website");
  EXPECT_EQ(j["components"][1]["state"], "ok");
  const auto& days = j["components"][0]["days"];
  ASSERT_EQ(days["state"].size(), 90u);
  // 20 days ago (today is the last bar): the 2-hour outage from the store,
  // on one day or across a midnight.
  EXPECT_EQ(days["down_minutes"][69].get<int>() + days["down_minutes"][70].get<int>(), 120) << days.dump();
  EXPECT_EQ(days["state"][0], "ok") << "the store's history begins 100 days ago: every day has data";
  EXPECT_EQ(j["components"][1]["days"]["state"][69], "ok") << "the website was not affected";

  const std::vector<std::string> common = {"/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu",
                                           "--disable-dev-shm-usage", "--hide-scrollbars",
                                           "--user-data-dir=" + dir_.file("chromium")};
  const std::string keep = std::getenv("NIGHTSHIFT_KEEP_SCREENSHOTS") ? std::getenv("NIGHTSHIFT_KEEP_SCREENSHOTS") : "";
  for (const auto& [width, height] : std::vector<std::pair<int, int>>{{1280, 900}, {390, 844}}) {
    SCOPED_TRACE(std::to_string(width) + "x" + std::to_string(height));
    const std::string size = "--window-size=" + std::to_string(width) + "," + std::to_string(height);
    std::vector<std::string> dump = common;
    dump.insert(dump.end(), {size, "--dump-dom", url("/status")});
    RunResult dom = run_process(dump, 60s);
    ASSERT_TRUE(dom.status && dom.status->code == 0) << dom.err;
    const std::string& d = dom.out;
    EXPECT_THAT(d, HasSubstr("<h1>Example Shop status</h1>"));
    EXPECT_THAT(d, HasSubstr("<main id=\"main\">"));
    EXPECT_THAT(d, HasSubstr("<header>"));
    EXPECT_THAT(d, HasSubstr("<footer>"));
    EXPECT_THAT(d, HasSubstr("role=\"status\">1 open incident."));
    EXPECT_THAT(d, HasSubstr("<h2 id=\"open-h\">Open incidents</h2>"));
    EXPECT_THAT(d, HasSubstr("Outage affecting Checkout</h3>"));
    // Both public updates, newest first; the internal note nowhere.
    const std::size_t newer = d.find("A fix is rolling out; payments recover.");
    const std::size_t older = d.find("We are looking into failed payments.");
    ASSERT_NE(newer, std::string::npos);
    ASSERT_NE(older, std::string::npos);
    EXPECT_LT(newer, older);
    EXPECT_THAT(d, HasSubstr("Next update by <time"));
    EXPECT_THAT(d, HasSubstr("<h2 id=\"comp-h\">Components</h2>"));
    EXPECT_THAT(d, HasSubstr("<h3>Checkout</h3><span class=\"state major\">Major outage</span>"));
    EXPECT_THAT(d, HasSubstr("<h3>Website</h3><span class=\"state ok\">Operational</span>"));
    EXPECT_THAT(d, HasSubstr("Payments and orders"));
    std::size_t bars = 0;
    for (std::size_t p = d.find("<i"); p != std::string::npos; p = d.find("<i", p + 1)) bars += d.compare(p, 3, "<i>") == 0 || d.compare(p, 3, "<i ") == 0;
    EXPECT_EQ(bars, 180u) << "90 days for each of 2 components";
    EXPECT_THAT(d, HasSubstr("uptime over the last 90 days"));
    EXPECT_THAT(d, Not(HasSubstr("class=\"nodata\""))) << "the store's history covers the 90 days";
    EXPECT_TRUE(std::regex_search(d, std::regex("<i class=\"(major|partial)\" title=\"[0-9-]+: [0-9]+ min outage\">")));
    EXPECT_THAT(d, HasSubstr("<h2 id=\"past-h\">Past incidents</h2>"));
    EXPECT_THAT(d, HasSubstr("A failed database switch-over was rolled back. All good."));
    EXPECT_THAT(d, HasSubstr("href=\"/status/feed.atom\""));
    // The script ran: every <time> got the UTC text as its tooltip and the
    // reader's zone as its text.
    EXPECT_TRUE(std::regex_search(d, std::regex("<time class=\"local\" datetime=\"[0-9T:.\\-]+Z\" "
                                                "title=\"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2} UTC\">")))
        << d.substr(0, 4000);
    for (const char* internal : {"checkout-api", "target_down", "group=shop", "site=ams1", "linecard", "connection refused"}) {
      EXPECT_THAT(d, Not(HasSubstr(internal))) << internal;
    }

    const std::string png = dir_.file("status-" + std::to_string(width) + ".png");
    std::vector<std::string> shot = common;
    shot.insert(shot.end(), {size, "--screenshot=" + png, url("/status")});
    RunResult shot_run = run_process(shot, 60s);
    ASSERT_TRUE(shot_run.status && shot_run.status->code == 0) << shot_run.err;
    const std::string bytes = slurp(png);
    ASSERT_GT(bytes.size(), 8000u) << "a blank page compresses to almost nothing";
    EXPECT_EQ(bytes.substr(1, 3), "PNG");
    // The image is as wide as asked (PNG IHDR: big-endian width at byte 16).
    const auto be32 = [&](std::size_t at) {
      return (static_cast<unsigned char>(bytes[at]) << 24) | (static_cast<unsigned char>(bytes[at + 1]) << 16) |
             (static_cast<unsigned char>(bytes[at + 2]) << 8) | static_cast<unsigned char>(bytes[at + 3]);
    };
    EXPECT_EQ(be32(16), width);
    EXPECT_EQ(be32(20), height);
    if (!keep.empty()) {
      std::filesystem::create_directories(keep);
      std::filesystem::copy_file(png, keep + "/status-" + std::to_string(width) + "x" + std::to_string(height) + ".png",
                                 std::filesystem::copy_options::overwrite_existing);
    }
  }
}

TEST_F(StatusPageTest, AtomFeedParsesAsAtomWithEveryIncidentAndUpdate) {
  open_incident_with_updates();
  HttpResult feed = http_get(url("/status/feed.atom"));
  ASSERT_EQ(feed.status, 200);
  EXPECT_THAT(feed.header("content-type"), HasSubstr("application/atom+xml"));
  write_text_file(dir_.file("feed.atom"), feed.body);
  // A real XML parser, and the elements RFC 4287 requires of a feed and its entries.
  const std::string check = R"PY(
import sys, xml.etree.ElementTree as ET
from datetime import datetime
A = "{http://www.w3.org/2005/Atom}"
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == A + "feed", root.tag
def when(e, name):
    t = e.find(A + name).text
    return datetime.fromisoformat(t.replace("Z", "+00:00"))
for name in ("id", "title", "updated"):
    assert root.find(A + name) is not None and root.find(A + name).text, name
when(root, "updated")
assert root.find(A + "author/" + A + "name").text
entries = root.findall(A + "entry")
for e in entries:
    for name in ("id", "title", "updated", "content"):
        assert e.find(A + name) is not None and e.find(A + name).text, name
    when(e, "updated"); when(e, "published")
    assert e.find(A + "content").get("type") == "html"
ids = [e.find(A + "id").text for e in entries]
assert len(set(ids)) == len(ids), ids
print(len(entries))
for e in entries:
    print(e.find(A + "title").text + " | " + e.find(A + "content").text.replace("\n", " "))
)PY";
  write_text_file(dir_.file("check_atom.py"), check);
  RunResult r = run_process({"python3", dir_.file("check_atom.py"), dir_.file("feed.atom")}, 20s);
  ASSERT_TRUE(r.status && r.status->code == 0) << r.err << feed.body;
  EXPECT_EQ(r.out.substr(0, 2), "2\n") << r.out;
  EXPECT_THAT(r.out, HasSubstr("Outage affecting Checkout | "));
  EXPECT_THAT(r.out, HasSubstr("Resolved: Outage affecting Checkout | "));
  EXPECT_THAT(r.out, HasSubstr("A fix is rolling out; payments recover."));
  EXPECT_THAT(r.out, HasSubstr("We are looking into failed payments."));
  EXPECT_THAT(r.out, HasSubstr("Next update by"));
  EXPECT_THAT(r.out, Not(HasSubstr("linecard")));
  EXPECT_THAT(r.out, Not(HasSubstr("checkout-api")));
}

TEST_F(StatusPageTest, NginxServesTheExportWithTheDocumentedCaching) {
  ASSERT_TRUE(std::filesystem::exists("/usr/sbin/nginx")) << "nginx-light is installed by scripts/install-deps.sh";
  open_incident_with_updates();
  // nginx as deploy/nginx/nightshift-status.conf tells operators to run it.
  const std::string snippet = std::string(NIGHTSHIFT_TEST_SOURCE_DIR) + "/deploy/nginx/nightshift-status.conf";
  ASSERT_TRUE(std::filesystem::exists(snippet));
  std::filesystem::create_directories(dir_.file("nginx"));
  std::filesystem::permissions(dir_.path(), std::filesystem::perms::owner_all | std::filesystem::perms::group_exec |
                                                std::filesystem::perms::others_exec);
  std::filesystem::permissions(dir_.file("www"), std::filesystem::perms::owner_all | std::filesystem::perms::group_exec |
                                                     std::filesystem::perms::others_exec |
                                                     std::filesystem::perms::group_read |
                                                     std::filesystem::perms::others_read);
  const std::string n = dir_.file("nginx");
  write_text_file(n + "/nginx.conf", "worker_processes 1;\npid " + n + "/nginx.pid;\nerror_log " + n +
                                         "/error.log;\nevents { worker_connections 64; }\nhttp {\n  access_log off;\n"
                                         "  client_body_temp_path " + n + "/body;\n  proxy_temp_path " + n +
                                         "/proxy;\n  fastcgi_temp_path " + n + "/fastcgi;\n  uwsgi_temp_path " + n +
                                         "/uwsgi;\n  scgi_temp_path " + n + "/scgi;\n  server {\n"
                                         "    listen 127.0.0.1:18080;\n    root " + dir_.file("www") + ";\n"
                                         "    include " + snippet + ";\n  }\n}\n");
  Process nginx({"/usr/sbin/nginx", "-c", n + "/nginx.conf", "-g", "daemon off;"});
  ASSERT_TRUE(wait_until([&] { return http_get("http://127.0.0.1:18080/status").status == 200; }, 5s))
      << slurp(n + "/error.log") << nginx.stderr_text();
  for (const auto& [path, file, type, max_age] :
       std::vector<std::tuple<std::string, std::string, std::string, std::string>>{
           {"/status", "status.html", "text/html; charset=utf-8", "max-age=5"},
           {"/status.json", "status.json", "application/json; charset=utf-8", "max-age=5"},
           {"/status/feed.atom", "feed.atom", "application/atom+xml; charset=utf-8", "max-age=60"}}) {
    SCOPED_TRACE(path);
    HttpResult r = http_get("http://127.0.0.1:18080" + path);
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.body, slurp(dir_.file("www/" + file))) << "the exported bytes";
    EXPECT_EQ(r.header("content-type"), type);
    EXPECT_EQ(r.header("cache-control"), "public, " + max_age);
    const std::string etag = r.header("etag");
    ASSERT_FALSE(etag.empty());
    RunResult again = curl({"-o", "/dev/null", "-w", "%{http_code}", "-H", "If-None-Match: " + etag,
                            "http://127.0.0.1:18080" + path});
    EXPECT_EQ(again.out, "304");
    // The agent's own answer for the same path carries the same caching.
    HttpResult own = http_get(url(path));
    EXPECT_EQ(own.header("cache-control"), "public, " + max_age);
    EXPECT_FALSE(own.header("etag").empty());
  }
  // The exported page is the one the agent serves (same snapshot).
  EXPECT_EQ(http_get(url("/status.json")).body, slurp(dir_.file("www/status.json")));
  // SIGTERM, not the destructor's SIGKILL: the master takes its workers along.
  ASSERT_EQ(::kill(nginx.pid(), SIGTERM), 0);
  EXPECT_TRUE(nginx.wait_for(10s).has_value());
}

}  // namespace
}  // namespace nightshift::test
