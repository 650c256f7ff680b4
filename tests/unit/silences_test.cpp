// Silences on a simulated clock: matchers, time range, expiry, validation.
#include "incidents/silences.h"

#include <gtest/gtest.h>

#include "incidents/incident_json.h"

namespace nightshift {
namespace {

using namespace std::chrono_literals;

Incident incident() {
  Incident inc;
  inc.id = "NS-1";
  inc.severity = Severity::kCritical;
  inc.scope = {{"site", "ams1"}, {"group", "core"}};
  inc.impacted.push_back({"core-ams1", "icmp", "target_down", Severity::kCritical, "", "", {}, true, ""});
  inc.impacted.push_back({"edge-ams1", "tcp_22", "target_down", Severity::kCritical, "", "", {}, true, ""});
  return inc;
}

Silence silence(std::vector<std::string> matchers, SystemTime start, Duration length) {
  Silence s;
  for (const auto& m : matchers) s.matchers.push_back(parse_matcher(m).value());
  s.starts_at = start;
  s.ends_at = start + std::chrono::duration_cast<SystemTime::duration>(length);
  return s;
}

TEST(SilencesTest, MatchersParseAndSayWhatIsWrong) {
  EXPECT_EQ(parse_matcher("site=ams1")->op, Matcher::Op::kEqual);
  EXPECT_EQ(parse_matcher("site!=ams1")->op, Matcher::Op::kNotEqual);
  EXPECT_EQ(parse_matcher("target=~core-.*")->op, Matcher::Op::kRegex);
  EXPECT_EQ(parse_matcher("target!~core-.*")->op, Matcher::Op::kNotRegex);
  EXPECT_EQ(parse_matcher("site=").value().value, "");
  EXPECT_EQ(parse_matcher("ams1").error().message,
            "matcher \"ams1\": expected label=value, label!=value, label=~regex or label!~regex");
  EXPECT_EQ(parse_matcher("9x=1").error().message,
            "matcher \"9x=1\": \"9x\" is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)");
  EXPECT_NE(parse_matcher("target=~(").error().message.find("bad regular expression"), std::string::npos);
}

TEST(SilencesTest, AnIncidentMatchesThroughItsScopeOrAnyImpactedTarget) {
  const Incident inc = incident();
  EXPECT_TRUE(silence({"site=ams1"}, {}, 1h).covers(inc));
  EXPECT_TRUE(silence({"site=ams1", "target=edge-ams1"}, {}, 1h).covers(inc));
  EXPECT_TRUE(silence({"target=~core-.*", "rule=target_down"}, {}, 1h).covers(inc));
  EXPECT_TRUE(silence({"severity=critical", "probe=tcp_22"}, {}, 1h).covers(inc));
  EXPECT_FALSE(silence({"site=fra2"}, {}, 1h).covers(inc));
  // Every matcher must hold for the same impacted target.
  EXPECT_FALSE(silence({"target=core-ams1", "probe=tcp_22"}, {}, 1h).covers(inc));
  // Regexes are anchored: "core" does not match "core-ams1".
  EXPECT_FALSE(silence({"target=~core"}, {}, 1h).covers(inc));
  EXPECT_TRUE(silence({"target!~core-.*"}, {}, 1h).covers(inc)) << "edge-ams1 does not match core-.*";
}

TEST(SilencesTest, ActiveOnlyWithinItsWindowAndExpiresOnTheClock) {
  ManualClock clock;
  SilenceSet set;
  const SystemTime now = clock.wall_now();
  auto added = set.add(silence({"site=ams1"}, now + 10min, 2h), now);
  ASSERT_TRUE(added.ok()) << added.error().message;
  EXPECT_FALSE(added->id.empty());
  EXPECT_FALSE(set.silences(incident(), clock.wall_now())) << "not started yet";
  clock.advance(10min);
  EXPECT_TRUE(set.silences(incident(), clock.wall_now())) << "starts_at is inclusive";
  clock.advance(2h - 1s);
  EXPECT_TRUE(set.silences(incident(), clock.wall_now()));
  EXPECT_TRUE(set.expire(clock.wall_now()).empty());
  clock.advance(1s);
  EXPECT_FALSE(set.silences(incident(), clock.wall_now())) << "ends_at is exclusive";
  EXPECT_EQ(set.expire(clock.wall_now()), std::vector<std::string>{added->id});
  EXPECT_TRUE(set.list().empty());
}

TEST(SilencesTest, AddRefusesWhatWouldNeverSilenceAnything) {
  ManualClock clock;
  SilenceSet set;
  const SystemTime now = clock.wall_now();
  EXPECT_EQ(set.add(silence({}, now, 1h), now).error().message, "a silence needs at least one matcher");
  EXPECT_EQ(set.add(silence({"site=a"}, now - 2h, 1h), now).error().message, "ends_at is in the past");
  EXPECT_TRUE(set.remove(set.add(silence({"site=a"}, now, 1h), now)->id));
  EXPECT_FALSE(set.remove("sil-nope"));
}

// A full set is a limit (the API answers 409), not "try again later" nor bad input.
TEST(SilencesTest, TheTenThousandAndFirstSilenceIsRefusedAsALimit) {
  ManualClock clock;
  SilenceSet set;
  const SystemTime now = clock.wall_now();
  for (int i = 0; i < 10000; ++i) ASSERT_TRUE(set.add(silence({"site=a"}, now, 1h), now).ok()) << i;
  auto refused = set.add(silence({"site=a"}, now, 1h), now);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kLimitReached);
  EXPECT_EQ(refused.error().message, "too many silences (10000)");
}

TEST(SilencesTest, JsonIsValidatedFieldByField) {
  const SystemTime now = ManualClock().wall_now();
  using nlohmann::json;
  auto ok = silence_from_json(json{{"matchers", {"site=ams1"}}, {"duration_seconds", 3600}, {"author", "bob"}}, now);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->ends_at - ok->starts_at, std::chrono::hours(1));
  EXPECT_EQ(ok->author, "bob");
  auto roundtrip = silence_from_json(to_json(ok.value()), now);
  ASSERT_TRUE(roundtrip.ok()) << roundtrip.error().message;
  EXPECT_EQ(roundtrip->matchers.at(0).to_string(), "site=ams1");

  EXPECT_EQ(silence_from_json(json::array(), now).error().message, "expected a JSON object");
  EXPECT_EQ(silence_from_json(json{{"duration_seconds", 60}}, now).error().message,
            "matchers: expected a non-empty array of strings like \"site=ams1\"");
  EXPECT_EQ(silence_from_json(json{{"matchers", {"site=a"}}}, now).error().message, "give ends_at or duration_seconds");
  EXPECT_EQ(silence_from_json(json{{"matchers", {"site=a"}}, {"duration_seconds", -5}}, now).error().message,
            "duration_seconds: expected a number of seconds from 1 to one year");
  EXPECT_EQ(silence_from_json(json{{"matchers", {"site=a"}}, {"ends_at", "tomorrow"}}, now).error().message,
            "ends_at: expected a time like 2026-11-24T03:12:45.120Z, found \"tomorrow\"");
  EXPECT_EQ(silence_from_json(json{{"matchers", {"site=a"}}, {"duration_seconds", 60}, {"who", "x"}}, now)
                .error()
                .message,
            "unknown field \"who\"");
}

}  // namespace
}  // namespace nightshift
