// Config: every error names file:line:col, the key, what was expected and what
// was found; validation reports all errors, not the first.
#include "config/config.h"
#include "probes/tcp/tcp.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "tests/support/testnet.h"

namespace nightshift {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using ::testing::Not;

std::string source_dir() { return NIGHTSHIFT_TEST_SOURCE_DIR; }

std::string fixture(const std::string& name) { return source_dir() + "/tests/unit/testdata/config/" + name; }

std::vector<std::string> messages(const ConfigResult& r, const std::string& strip) {
  std::vector<std::string> out;
  for (const auto& e : r.errors) {
    std::string m = e.to_string();
    if (m.rfind(strip, 0) == 0) m = m.substr(strip.size());
    out.push_back(m);
  }
  return out;
}

// One fixture file per bad input, with every message it must produce, in order.
struct InvalidCase {
  std::string file;
  std::vector<std::string> want;  // after "<path>:"
};

TEST(ConfigTest, InvalidFixturesReportEveryErrorAtItsPosition) {
  const std::vector<InvalidCase> cases = {
      {"invalid-typo-keys.toml",
       {"2:1: agent.nmae: unknown key; did you mean \"name\"?",
        "5:1: defaults.intervall: unknown key; did you mean \"interval\"?",
        "9:1: target[0].adress: unknown key; did you mean \"address\"?",
        "13:3: target[0].probe[0].prot: unknown key; did you mean \"port\"?"}},
      {"invalid-types.toml",
       {"2:10: agent.listen: expected a string, found integer 9650",
        "5:12: defaults.interval: expected a duration like \"30s\", found integer 30",
        "12:10: target[0].probe[0].port: expected an integer from 1 to 65535, found string \"ssh\""}},
      {"invalid-durations.toml",
       {"4:12: target[0].interval: expected a duration like \"500ms\", \"30s\" or \"2m\", found string \"5\" "
        "(missing unit (ms, s, m, h))",
        "8:13: target[0].probe[0].timeout: expected a duration like \"500ms\", \"30s\" or \"2m\", found string "
        "\"5x\" (unknown unit \"x\")",
        "12:12: target[1].interval: expected a duration like \"500ms\", \"30s\" or \"2m\", found string \"\" "
        "(empty duration)",
        "13:11: target[1].timeout: expected a duration like \"500ms\", \"30s\" or \"2m\", found string \"-1s\" "
        "(durations cannot be negative)",
        "17:14: target[1].probe[0].interval: expected a duration greater than zero, found \"0s\""}},
      {"invalid-duplicates.toml",
       {"8:10: target[0].probe[1].kind: duplicate probe name \"tcp_22\" in this target (first at line 4); give "
        "one of them a distinct `name`",
        "12:8: target[1].name: duplicate target name \"r1\" (first defined at line 2)"}},
      {"invalid-missing.toml",
       {"1:1: target[0].name: required key is missing (expected a string)",
        "3:3: target[0].probe[0].port: required key is missing (expected an integer)",
        "6:1: target[1].address: required key is missing (expected a string)",
        "8:3: target[1].probe[0].kind: required key is missing (expected a string)",
        "11:1: target[2].probe: a target needs at least one [[target.probe]] (e.g. kind = \"tcp\", port = 22)"}},
      {"invalid-syntax.toml", {"3:10: syntax error: Error while parsing table header: expected ']', saw '\\n'"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.file);
    const std::string path = fixture(c.file);
    ConfigResult r = load_config(path);
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(messages(r, path + ":"), c.want);
  }
}

TEST(ConfigTest, SemanticErrorsPointAtTheValue) {
  const std::string path = fixture("invalid-semantics.toml");
  auto got = messages(load_config(path), path + ":");
  ASSERT_EQ(got.size(), 11u);
  EXPECT_EQ(got[0], "2:10: agent.listen: expected \"ADDRESS:PORT\" with an IPv4 address, e.g. \"127.0.0.1:9650\" or "
                    "\":9650\", found \"[::1]:9650\"");
  EXPECT_EQ(got[1], "3:13: agent.log_level: expected one of \"debug\", \"info\", \"warn\", \"error\", found \"loud\"");
  EXPECT_EQ(got[2], "7:11: defaults.timeout: must be shorter than defaults.interval (5s), found 5s");
  EXPECT_EQ(got[3], "11:11: target[0].address: expected an IP address or a hostname, found \"not a host!\"");
  EXPECT_EQ(got[4], "12:12: target[0].labels.9bad: expected a label name matching [a-zA-Z_][a-zA-Z0-9_]*");
  EXPECT_EQ(got[5], "12:26: target[0].labels.site: \"site\" is reserved; set it as the target's own `site` key");
  EXPECT_EQ(got[6], "12:45: target[0].labels.role: expected a string, found integer 3");
  EXPECT_THAT(got[7], StartsWith("14:10: target[0].probe[0].kind: expected one of \"tcp\""));
  EXPECT_THAT(got[7], HasSubstr("found \"udp\""));
  EXPECT_EQ(got[8], "20:3: target[1].probe[0].interval: timeout (5s) must be shorter than interval (1s) so that a "
                    "probe never overlaps itself");
  EXPECT_EQ(got[9], "22:10: target[1].probe[0].port: expected an integer from 1 to 65535, found integer 70000");
  EXPECT_EQ(got[10], "23:15: target[1].probe[0].ip_family: expected one of \"any\", \"ipv4\", \"ipv6\", found \"ipx\"");
}

TEST(ConfigTest, AFileWithTenErrorsReportsAllTenInLineOrder) {
  const std::string path = fixture("ten-errors.toml");
  ConfigResult r = load_config(path);
  ASSERT_EQ(r.errors.size(), 10u);
  for (std::size_t i = 1; i < r.errors.size(); ++i) EXPECT_LE(r.errors[i - 1].line, r.errors[i].line);
  const std::vector<std::string> keys = {"agent.name", "agent.listen", "agent.log_level", "agent.max_probes_per_second",
                                         "agent.colour", "target[0].group", "target[0].probe[0].port",
                                         "target[0].probe[0].expect_banner", "target[0].probe[0].timeout",
                                         "target[0].probe[0].name"};
  for (std::size_t i = 0; i < keys.size(); ++i) EXPECT_EQ(r.errors[i].key, keys[i]);
  EXPECT_EQ(r.errors[4].message,
            "unknown key (known keys: http_threads, listen, log_level, max_probes_per_second, name, site, state_dir)");
}

TEST(ConfigTest, UnreadableFileSaysWhy) {
  ConfigResult r = load_config("/nonexistent/agent.toml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].to_string(), "/nonexistent/agent.toml: cannot read config file: No such file or directory");
}

TEST(ConfigTest, ValuesAndDefaultsInherit) {
  const char* text = R"(
[agent]
name = "edge-1"
site = "fra"
listen = ":9700"
state_dir = "/var/lib/ns"
max_probes_per_second = 500.5

[defaults]
interval = "20s"
timeout = "4s"

[[target]]
name = "core"
address = "core-router.example"
group = "backbone"
labels = { role = "router", rack = "r12" }
interval = "1m"
  [[target.probe]]
  kind = "tcp"
  port = 22
  expect_banner = "SSH-"
  banner_bytes = 64
  [[target.probe]]
  kind = "tcp"
  name = "bgp"
  port = 179
  timeout = "1.5s"
  ip_family = "ipv6"

[[target]]
name = "edge"
address = "::1"
site = "ams"
  [[target.probe]]
  kind = "tcp"
  port = 443
)";
  ConfigResult r = parse_config(text, "t.toml");
  ASSERT_TRUE(r.ok()) << r.errors.front().to_string();
  const Config& c = *r.config;
  EXPECT_EQ(c.agent.name, "edge-1");
  EXPECT_EQ(c.agent.listen, ":9700");
  EXPECT_EQ(c.agent.state_dir, "/var/lib/ns");
  EXPECT_DOUBLE_EQ(c.agent.max_probes_per_second, 500.5);
  ASSERT_EQ(c.targets.size(), 2u);
  const Target& core = *c.targets[0];
  EXPECT_EQ(core.site, "fra") << "site defaults to agent.site";
  EXPECT_EQ(core.group, "backbone");
  EXPECT_EQ(core.labels, (std::map<std::string, std::string>{{"rack", "r12"}, {"role", "router"}}));
  ASSERT_EQ(core.probes.size(), 2u);
  EXPECT_EQ(core.probes[0].name, "tcp_22");
  EXPECT_EQ(core.probes[0].interval, 1min) << "from the target";
  EXPECT_EQ(core.probes[0].timeout, 4s) << "from [defaults]";
  const auto* ssh = dynamic_cast<const tcp::TcpOptions*>(core.probes[0].options.get());
  ASSERT_NE(ssh, nullptr);
  EXPECT_EQ(ssh->port, 22);
  EXPECT_EQ(ssh->expect_banner, "SSH-");
  EXPECT_EQ(ssh->banner_bytes, 64u);
  EXPECT_EQ(core.probes[1].name, "bgp");
  EXPECT_EQ(core.probes[1].timeout, 1500ms);
  EXPECT_EQ(dynamic_cast<const tcp::TcpOptions*>(core.probes[1].options.get())->family, AddressFamily::kIPv6);
  const Target& edge = *c.targets[1];
  EXPECT_EQ(edge.site, "ams");
  EXPECT_EQ(edge.probes[0].interval, 20s);
  EXPECT_EQ(edge.probes[0].timeout, 4s);
  // Built-in rules apply when the config has none.
  EXPECT_FALSE(c.rules.empty());
}

TEST(ConfigTest, NoTargetsIsFine) {
  ConfigResult r = parse_config("[agent]\nname = \"x\"\n", "t.toml");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r.config->targets.empty());
}

TEST(ConfigTest, ShippedExampleIsValid) {
  ConfigResult r = load_config(source_dir() + "/deploy/examples/local.toml");
  EXPECT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors.front().to_string());
}

TEST(ConfigTest, RuleConditionErrorsPointIntoTheString) {
  const char* text = "[[rule]]\nname = \"slow\"\ncondition = \"rtt_p95 > 150ms and los > 1%\"\n";
  ConfigResult r = parse_config(text, "t.toml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_THAT(r.errors[0].to_string(), StartsWith("t.toml:3:34: rule[0].condition: expected a known variable ("));
  EXPECT_THAT(r.errors[0].to_string(), HasSubstr("found \"los\""));
}

TEST(ConfigTest, RulesReplaceBuiltinsByNameOrDropThem) {
  ConfigResult r = parse_config(
      "[[rule]]\nname = \"target_down\"\ncondition = \"consecutive_failures >= 5\"\nseverity = \"warning\"\n",
      "t.toml");
  ASSERT_TRUE(r.ok());
  int named = 0;
  for (const auto& rule : r.config->rules) {
    if (rule.name == "target_down") {
      ++named;
      EXPECT_EQ(rule.severity, "warning");
    }
  }
  EXPECT_EQ(named, 1);
  ConfigResult none = parse_config("[rules]\nbuiltin = false\n", "t.toml");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none.config->rules.empty());
}

TEST(ConfigTest, TopologyMustNameTargetsAndNeverLoop) {
  const char* text = R"(
[[target]]
name = "a"
address = "127.0.0.1"
depends_on = "b"
  [[target.probe]]
  kind = "tcp"
  port = 1
[[target]]
name = "b"
address = "127.0.0.1"
depends_on = "a"
  [[target.probe]]
  kind = "tcp"
  port = 1
[[target]]
name = "c"
address = "127.0.0.1"
depends_on = "zz"
canary = true
  [[target.probe]]
  kind = "tcp"
  port = 1
)";
  ConfigResult r = parse_config(text, "t.toml");
  auto got = messages(r, "t.toml:");
  EXPECT_EQ(got, (std::vector<std::string>{"5:14: target[0].depends_on: depends_on forms a loop through \"b\"",
                                            "12:14: target[1].depends_on: depends_on forms a loop through \"a\"",
                                            "19:14: target[2].depends_on: no target is named \"zz\""}));
}

TEST(DurationTest, ParsesUnitsAndCompounds) {
  struct Case {
    std::string text;
    Duration want;
  };
  const std::vector<Case> cases = {{"500ms", 500ms}, {"5s", 5s},         {"2m", 2min},     {"1h", 1h},
                                   {"1m30s", 90s},   {"1.5s", 1500ms},   {"250us", 250us}, {"10ns", 10ns},
                                   {"1h2m3s", 3723s}, {"0.5ms", 500us}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    auto d = parse_duration(c.text);
    ASSERT_TRUE(d.ok()) << d.error().message;
    EXPECT_EQ(*d, c.want);
  }
  for (const char* bad : {"", "5", "5x", "-1s", "s", "1..5s", "ms5"}) {
    SCOPED_TRACE(bad);
    EXPECT_FALSE(parse_duration(bad).ok());
  }
}

TEST(DurationTest, FormatsForPeople) {
  EXPECT_EQ(format_duration(90s), "1m30s");
  EXPECT_EQ(format_duration(1h), "1h");
  EXPECT_EQ(format_duration(250ms), "250ms");
  EXPECT_EQ(format_duration(1500ms), "1.5s");
  EXPECT_EQ(format_duration(0s), "0s");
}

// check-config, as an operator runs it.
TEST(CheckConfigTest, ExitsOneWithErrorsAndZeroWhenValid) {
  const char* bin = std::getenv("NIGHTSHIFT_BINARY");
  ASSERT_NE(bin, nullptr) << "NIGHTSHIFT_BINARY is set by ctest";
  std::string out;
  const std::string bad = fixture("invalid-types.toml");
  EXPECT_EQ(test::run_command({bin, "check-config", bad}, &out), 1);
  EXPECT_THAT(out, HasSubstr(bad + ":12:10: target[0].probe[0].port: expected an integer from 1 to 65535"));
  EXPECT_THAT(out, HasSubstr("3 errors"));
  const std::string good = source_dir() + "/deploy/examples/local.toml";
  EXPECT_EQ(test::run_command({bin, "check-config", good}, &out), 0);
  EXPECT_THAT(out, HasSubstr(": ok ("));
  EXPECT_EQ(test::run_command({bin, "check-config"}, &out), 2) << "usage error";
}

}  // namespace
}  // namespace nightshift

namespace nightshift {
namespace {

TEST(SinkConfigTest, SinksReadSecretsFromFilesAndEnvironment) {
  const std::string dir = ::testing::TempDir();
  {
    std::ofstream(dir + "/pd.key") << "PDKEY-123\n";
  }
  ::setenv("NIGHTSHIFT_TEST_HOOK_SECRET", "envsecret", 1);
  ConfigResult r = parse_config(R"([notify]
status_url = "https://status.example.net/"
renotify_every = "10m"
escalate_after = "20m"

[[sink]]
name = "pager"
type = "pagerduty"
url = "https://events.pagerduty.com/v2/enqueue"
routing_key_file = ")" + dir + R"(/pd.key"
min_severity = "critical"
match = { site = "ams1" }

[[sink]]
name = "hook"
type = "webhook"
url = "http://127.0.0.1:8080/hook"
secret_env = "NIGHTSHIFT_TEST_HOOK_SECRET"
escalation_only = true

[[sink]]
name = "am"
type = "alertmanager"
url = "http://127.0.0.1:9093/"
)",
                                "t.toml");
  ASSERT_TRUE(r.ok()) << r.errors.at(0).to_string();
  ASSERT_EQ(r.config->sinks.size(), 3u);
  EXPECT_EQ(r.config->sinks[0].routing_key, "PDKEY-123");
  EXPECT_EQ(r.config->sinks[0].match.at("site"), "ams1");
  EXPECT_EQ(r.config->sinks[1].secret, "envsecret");
  EXPECT_TRUE(r.config->sinks[1].escalation_only);
  EXPECT_EQ(r.config->sinks[2].url, "http://127.0.0.1:9093/api/v2/alerts");
  EXPECT_EQ(r.config->notify.renotify_every, std::chrono::minutes(10));
  EXPECT_EQ(r.config->notify.status_url, "https://status.example.net/");
}

TEST(SinkConfigTest, SinkErrorsSayWhatAndWhereButNeverTheSecret) {
  ::setenv("NIGHTSHIFT_TEST_URL_SECRET", "ftp://hunter2-secret-host/x", 1);
  ConfigResult r = parse_config(R"([notify]
escalate_after = "5m"

[[sink]]
name = "a"
type = "sms"
url = "http://x/"

[[sink]]
name = "b"
type = "pagerduty"
url = "https://events.pagerduty.com/v2/enqueue"

[[sink]]
name = "c"
type = "slack"
url_env = "NIGHTSHIFT_TEST_URL_SECRET"

[[sink]]
name = "d"
type = "webhook"
url = "http://127.0.0.1/"
secret_file = "/nonexistent/secret"
min_severity = "loud"

[[sink]]
name = "d"
type = "notice"
url = "http://127.0.0.1/"
)",
                                "t.toml");
  ASSERT_FALSE(r.ok());
  std::string all;
  for (const auto& e : r.errors) all += e.to_string() + "\n";
  EXPECT_THAT(all, HasSubstr("t.toml:1:1: notify.escalate_after: escalate_after is set but no [[sink]] has escalation_only = true"));
  EXPECT_THAT(all, HasSubstr("t.toml:6:8: sink[0].type: expected one of \"webhook\", \"alertmanager\", \"pagerduty\", \"slack\", \"notice\", found \"sms\""));
  EXPECT_THAT(all, HasSubstr("sink[1].routing_key_file: required: give routing_key_file or routing_key_env"));
  EXPECT_THAT(all, HasSubstr("sink[2].url: expected an http:// or https:// URL"));
  EXPECT_THAT(all, HasSubstr("t.toml:23:15: sink[3].secret_file: cannot read \"/nonexistent/secret\": No such file or directory"));
  EXPECT_THAT(all, HasSubstr("sink[3].min_severity: expected one of \"info\", \"warning\", \"critical\", found \"loud\""));
  EXPECT_THAT(all, HasSubstr("sink[4].name: duplicate sink name \"d\""));
  EXPECT_THAT(all, HasSubstr("sink[4].audience: required for a notice sink"));
  EXPECT_THAT(all, Not(HasSubstr("hunter2")));
}

// A short password is reported at the key the file uses (_env here, _file
// there), at that key's position, and never shows the password.
TEST(SnmpConfigTest, ShortPasswordsAreReportedAtTheKeyActuallyUsed) {
  ::setenv("NIGHTSHIFT_TEST_SNMP_AUTH", "short1", 1);
  const std::string priv_file = ::testing::TempDir() + "nightshift-snmp-priv";
  std::ofstream(priv_file) << "tiny2\n";
  ConfigResult r = parse_config(R"([[target]]
name = "sw1"
address = "127.0.0.1"
  [[target.probe]]
  kind = "snmp"
  version = "3"
  username = "nsuser"
  security_level = "authPriv"
  auth_password_env = "NIGHTSHIFT_TEST_SNMP_AUTH"
  priv_password_file = ")" + priv_file + R"("
)",
                                "t.toml");
  ASSERT_FALSE(r.ok());
  std::string all;
  for (const auto& e : r.errors) all += e.to_string() + "\n";
  EXPECT_THAT(all, HasSubstr("t.toml:9:23: target[0].probe[0].auth_password_env: SNMPv3 passwords have at least 8 characters"));
  EXPECT_THAT(all, HasSubstr("t.toml:10:24: target[0].probe[0].priv_password_file: SNMPv3 passwords have at least 8 characters"));
  EXPECT_THAT(all, Not(HasSubstr("auth_password_file")));
  EXPECT_THAT(all, Not(HasSubstr("short1")));
  EXPECT_THAT(all, Not(HasSubstr("tiny2")));
  ::unsetenv("NIGHTSHIFT_TEST_SNMP_AUTH");
}

}  // namespace
}  // namespace nightshift
