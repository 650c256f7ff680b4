// The status page in a real browser: headless Chromium (Debian's) renders
// /status of an agent with an open incident on a phone-sized window; the
// incident's title must be in the rendered page, and the screenshot a real
// image. The page carries no script at all (checked), so it works without one.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tests/support/agent_run.h"
#include "tests/support/http_get.h"
#include "tests/support/process.h"
#include "tests/support/require.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

namespace nightshift::test {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

TEST(StatusBrowserTest, OpenIncidentTitleRendersInHeadlessChromium) {
  ASSERT_FALSE(agent_binary().empty());
  NIGHTSHIFT_REQUIRE_PROGRAM("/usr/bin/chromium");
  TempDir dir;
  // A port nothing listens on: the service is down from the start.
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  const int closed_port = ntohs(a.sin_port);
  ::close(fd);
  std::ofstream(dir.file("agent.toml")) << R"([agent]
name = "edge-ams1"
listen = "127.0.0.1:0"
state_dir = ")" << dir.path() << R"(/state"
[defaults]
interval = "300ms"
timeout = "200ms"
[[target]]
name = "checkout-api"
address = "127.0.0.1"
group = "shop"
site = "ams1"
  [[target.probe]]
  kind = "tcp"
  port = )" << closed_port << "\n";
  RunningAgent running = start_agent(dir.file("agent.toml"));
  ASSERT_NE(running.port, 0) << running.process->stderr_text();
  Process& agent = *running.process;
  const std::string base = running.url("");
  std::string title;
  ASSERT_TRUE(wait_until([&] {
    auto j = nlohmann::json::parse(http_get(base + "/status.json").body, nullptr, false);
    if (!j.is_object() || j["open_incidents"].empty()) return false;
    title = j["open_incidents"][0]["title"];
    return true;
  }, 8s)) << agent.stderr_text();
  EXPECT_EQ(title, "checkout-api: target_down");
  const std::string html = http_get(base + "/status").body;
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("src="), std::string::npos) << "no external assets";

  const std::vector<std::string> common = {"/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu",
                                           "--disable-dev-shm-usage",
                                           "--user-data-dir=" + dir.file("chromium"), "--window-size=412,915"};
  std::vector<std::string> dump = common;
  dump.insert(dump.end(), {"--dump-dom", base + "/status"});
  RunResult dom = run_process(dump, 60s);
  ASSERT_TRUE(dom.status && dom.status->code == 0) << dom.err;
  EXPECT_THAT(dom.out, HasSubstr(title)) << dom.err.substr(dom.err.size() > 3000 ? dom.err.size() - 3000 : 0);
  EXPECT_THAT(dom.out, HasSubstr("1 open incident"));

  const std::string png = dir.file("status.png");
  std::vector<std::string> shot = common;
  shot.insert(shot.end(), {"--screenshot=" + png, base + "/status"});
  RunResult shot_run = run_process(shot, 60s);
  ASSERT_TRUE(shot_run.status && shot_run.status->code == 0) << shot_run.err;
  std::ifstream in(png, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(bytes.size(), 4000u) << "a blank page compresses to almost nothing";
  EXPECT_EQ(bytes.substr(1, 3), "PNG");
  // Kept for people to look at when NIGHTSHIFT_KEEP_SCREENSHOT names a path.
  if (const char* keep = std::getenv("NIGHTSHIFT_KEEP_SCREENSHOT")) std::filesystem::copy_file(png, keep, std::filesystem::copy_options::overwrite_existing);
}

}  // namespace
}  // namespace nightshift::test
