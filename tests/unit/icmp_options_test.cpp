// ICMP probe options as read from the config file: defaults, values, errors at
// the value's position.
#include <gtest/gtest.h>

#include "config/config.h"
#include "probes/icmp/icmp.h"

namespace nightshift::icmp {
namespace {

using namespace std::chrono_literals;

std::string config(const std::string& probe) {
  return "[agent]\nname = \"t\"\n\n[[target]]\nname = \"lo\"\naddress = \"127.0.0.1\"\n  [[target.probe]]\n"
         "  kind = \"icmp\"\n" +
         probe;
}

TEST(IcmpOptionsTest, DefaultsAndName) {
  auto r = parse_config(config(""), "agent.toml");
  ASSERT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors.front().to_string());
  const ProbeSpec& p = r.config->targets.front()->probes.front();
  EXPECT_EQ(p.kind, "icmp");
  EXPECT_EQ(p.name, "icmp");
  const auto* o = dynamic_cast<const IcmpOptions*>(p.options.get());
  ASSERT_NE(o, nullptr);
  EXPECT_EQ(o->count, 3);
  EXPECT_EQ(o->spacing, Duration::zero()) << "no spacing: the round is spread over the interval";
  EXPECT_EQ(o->payload_size, 56u);
  EXPECT_EQ(o->family, AddressFamily::kAny);
}

TEST(IcmpOptionsTest, Values) {
  auto r = parse_config(config("  count = 5\n  spacing = \"250ms\"\n  payload_size = 100\n  ip_family = \"ipv6\"\n"),
                        "agent.toml");
  ASSERT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors.front().to_string());
  const auto* o = dynamic_cast<const IcmpOptions*>(r.config->targets.front()->probes.front().options.get());
  ASSERT_NE(o, nullptr);
  EXPECT_EQ(o->count, 5);
  EXPECT_EQ(o->spacing, 250ms);
  EXPECT_EQ(o->payload_size, 100u);
  EXPECT_EQ(o->family, AddressFamily::kIPv6);
}

TEST(IcmpOptionsTest, ErrorsNameTheKeyAndPosition) {
  struct Case {
    const char* name;
    std::string probe;
    std::string expect;  // substring of the one error
  };
  const std::vector<Case> cases = {
      {"count zero", "  count = 0\n", "agent.toml:9:"},
      {"count too big", "  count = 1000\n", "count"},
      {"spacing too short", "  spacing = \"100us\"\n", "spacing: expected a duration from 1ms to 10s"},
      {"payload below the stamp", "  payload_size = 8\n", "payload_size"},
      {"payload above one frame", "  payload_size = 9000\n", "payload_size"},
      {"unknown family", "  ip_family = \"ipx\"\n", "expected one of \"any\", \"ipv4\", \"ipv6\", found \"ipx\""},
      {"unknown key", "  port = 22\n", "port"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto r = parse_config(config(c.probe), "agent.toml");
    ASSERT_FALSE(r.ok());
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_NE(r.errors.front().to_string().find(c.expect), std::string::npos) << r.errors.front().to_string();
  }
}

// A probe's timeout bounds its whole round (config keeps timeout < interval so a
// probe never overlaps itself): the requests all leave in the first half.
TEST(IcmpOptionsTest, SpacingFitsTheRoundInTheTimeout) {
  EXPECT_EQ(fitted_spacing(3, 100ms, 1s), 100ms) << "defaults fit: sends at 0, 100, 200 ms";
  EXPECT_EQ(fitted_spacing(3, 100ms, 400ms), 100ms);
  EXPECT_EQ(fitted_spacing(3, 300ms, 400ms), 100ms) << "last send at 200 ms = timeout / 2";
  EXPECT_EQ(fitted_spacing(11, 1s, 1s), 50ms);
  EXPECT_EQ(fitted_spacing(1, 5s, 1s), 5s) << "one request: nothing to fit";
  EXPECT_EQ(fitted_spacing(100, 10s, 100ms), 505050ns);
}

// The default round: 3 echoes over the interval, one every third of it, each
// waiting at most that long, so the round never runs into the next.
TEST(IcmpOptionsTest, SpreadPlanFitsTheRoundInItsInterval) {
  struct Case {
    const char* name;
    int count;
    Duration interval, timeout, spacing, wait;
  };
  const std::vector<Case> cases = {
      {"defaults: 3 per 10 s", 3, 10s, 3s, 3333333333ns, 3s},
      {"1 s interval, fitted timeout", 3, 1s, 500ms, 333333333ns, 333333333ns},
      {"one echo", 1, 5s, 1s, 5s, 1s},
      {"count 0 is one", 0, 2s, 1s, 2s, 1s},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const SpreadPlan p = spread_plan(c.count, c.interval, c.timeout);
    EXPECT_EQ(p.spacing, c.spacing);
    EXPECT_EQ(p.wait, c.wait);
    EXPECT_LE(p.spacing * (std::max(c.count, 1) - 1) + p.wait, c.interval) << "ends within its interval";
  }
}

// RFC 6298's retransmission timeout (srtt + 4 rttvar) within the bounds; the
// cap while nothing is known.
TEST(IcmpOptionsTest, SuspectWaitFollowsTheTargetsOwnRtt) {
  EXPECT_EQ(suspect_wait(std::nullopt, 0, 200ms, 1s), 1s) << "no reply seen yet: the cap";
  EXPECT_EQ(suspect_wait(0.0001, 0.00005, 200ms, 1s), 200ms) << "a LAN host: the floor";
  EXPECT_EQ(suspect_wait(0.150, 0.025, 200ms, 1s), 250ms) << "150 ms +- 25 ms: srtt + 4 rttvar";
  EXPECT_EQ(suspect_wait(0.8, 0.2, 200ms, 1s), 1s) << "never past the cap";
  EXPECT_EQ(suspect_wait(0.1, 0.0, 200ms, 150ms), 150ms) << "a cap below the floor wins";
}

}  // namespace
}  // namespace nightshift::icmp
