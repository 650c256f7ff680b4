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
#include <optional>
#include <grp.h>
#include <sys/stat.h>

#include "tests/support/require.h"
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
  EXPECT_EQ(got[0], "2:10: agent.listen: expected \"ADDRESS:PORT\" with an IPv4 address or a bracketed IPv6 one, e.g. "
                    "\"127.0.0.1:9650\", \"[::1]:9650\", \"[::]:9650\" or \":9650\", found \"::1:9650\"");
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

// A timeout set nowhere fits the interval: 3 s, or half the interval when
// that is shorter, so `interval = "1s"` alone is a valid config.
TEST(ConfigTest, UnsetTimeoutFitsTheInterval) {
  ConfigResult r = parse_config(R"([defaults]
interval = "1s"

[[target]]
name = "a"
address = "127.0.0.1"
  [[target.probe]]
  kind = "icmp"
  [[target.probe]]
  kind = "tcp"
  port = 22
  interval = "10s"
)",
                                "t.toml");
  ASSERT_TRUE(r.ok()) << r.errors.front().to_string();
  const Target& a = *r.config->targets[0];
  EXPECT_EQ(a.probes[0].timeout, 500ms);
  EXPECT_EQ(a.probes[1].timeout, 3s) << "the 3 s default fits a 10 s interval";
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
  EXPECT_THAT(r.errors[0].to_string(), StartsWith("t.toml:3:34: rule[0].condition: expected a known variable (did you mean"));
  EXPECT_THAT(r.errors[0].to_string(), HasSubstr("found \"los\""));
}

TEST(ConfigTest, RuleConditionErrorColumnsCountEscapesAsTheyAreWritten) {
  // In the file: condition = "reason == \"a\\b\" and los > 1" -- the escapes
  // take two source columns for each character of the condition.
  const char* text = "[[rule]]\nname = \"r\"\ncondition = \"reason == \\\"a\\\\b\\\" and los > 1\"\n";
  ConfigResult r = parse_config(text, "t.toml");
  ASSERT_EQ(r.errors.size(), 1u);
  // "condition = " is 12 columns, the quote is 13; `los` is at source column 37.
  EXPECT_THAT(r.errors[0].to_string(), StartsWith("t.toml:3:37: rule[0].condition: expected a known variable"));
  EXPECT_THAT(r.errors[0].to_string(), HasSubstr("did you mean \"loss\"?"));
}

TEST(ConfigTest, SnmpScaleIsANumber) {
  const char* text =
      "[[target]]\nname = \"sw\"\naddress = \"127.0.0.1\"\n  [[target.probe]]\n  kind = \"snmp\"\n"
      "  community_env = \"NIGHTSHIFT_TEST_COMMUNITY\"\n"
      "  oids = [ { name = \"rx\", oid = \"1.3.6.1.4.1.9.9.91.1.1.1.1.4\", walk = true, scale = 0.1 },\n"
      "           { name = \"cpu\", oid = \"1.3.6.1.4.1.2021.10.1.5.1\", scale = 2 } ]\n";
  ::setenv("NIGHTSHIFT_TEST_COMMUNITY", "public-test", 1);
  ConfigResult r = parse_config(text, "t.toml");
  EXPECT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors.front().to_string());
  ConfigResult bad = parse_config(std::string(text).replace(std::string(text).find("scale = 2"), 9, "scale = \"x\""),
                                  "t.toml");
  ASSERT_EQ(bad.errors.size(), 1u);
  EXPECT_THAT(bad.errors[0].to_string(), HasSubstr("scale: expected a finite number like 0.1"));
}

TEST(ConfigTest, AnUnknownRuleVariableSuggestsTheClosest) {
  const char* text = "[[rule]]\nname = \"r\"\ncondition = \"consecutive_failure >= 3\"\n";
  ConfigResult r = parse_config(text, "t.toml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_THAT(r.errors[0].to_string(), HasSubstr("did you mean \"consecutive_failures\"?"));
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
      EXPECT_EQ(rule.severity, Severity::kWarning);
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
  EXPECT_THAT(all, HasSubstr("sink[1].routing_key_file: required: give routing_key_file, routing_key_env or routing_key_credential"));
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

// Secrets through systemd credentials, listen addresses, and the loopback
// status link (issue 21).
namespace nightshift {
namespace {

const char kPagerSink[] = R"(
[[sink]]
name = "pager"
type = "pagerduty"
url = "https://events.pagerduty.com/v2/enqueue"
)";

struct EnvVar {  // sets a variable for one test, restores it after
  EnvVar(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~EnvVar() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  const char* name_;
  std::optional<std::string> old_;
};

std::string all_errors(const ConfigResult& r) {
  std::string all;
  for (const auto& e : r.errors) all += e.to_string() + "\n";
  return all;
}

TEST(CredentialConfigTest, ReadsASecretFromCredentialsDirectory) {
  const std::string dir = ::testing::TempDir() + "/creds-ok";
  ::mkdir(dir.c_str(), 0700);
  std::ofstream(dir + "/pagerduty.key") << "PDKEY-FROM-SYSTEMD\n";
  EnvVar env("CREDENTIALS_DIRECTORY", dir);
  ConfigResult r = parse_config(std::string("[notify]\nstatus_url = \"https://status.example.net/status\"\n") +
                                    kPagerSink + "routing_key_credential = \"pagerduty.key\"\n",
                                "t.toml");
  ASSERT_TRUE(r.ok()) << all_errors(r);
  EXPECT_EQ(r.config->sinks.at(0).routing_key, "PDKEY-FROM-SYSTEMD");
}

TEST(CredentialConfigTest, ErrorsSayWhatIsMissingAndHowToPassIt) {
  const std::string dir = ::testing::TempDir() + "/creds-empty";
  ::mkdir(dir.c_str(), 0700);
  {
    EnvVar env("CREDENTIALS_DIRECTORY", dir);
    ConfigResult r = parse_config(std::string(kPagerSink) + "routing_key_credential = \"pagerduty.key\"\n", "t.toml");
    ASSERT_FALSE(r.ok());
    EXPECT_THAT(all_errors(r), HasSubstr("t.toml:6:26: sink[0].routing_key_credential: cannot read \"" + dir +
                                         "/pagerduty.key\": No such file or directory (no "
                                         "LoadCredential=pagerduty.key:... in the unit?)"));
    r = parse_config(std::string(kPagerSink) + "routing_key_credential = \"../etc/shadow\"\n", "t.toml");
    EXPECT_THAT(all_errors(r), HasSubstr("expected a credential name (a file name, no \"/\"), found \"../etc/shadow\""));
    r = parse_config(std::string(kPagerSink) + "routing_key_credential = \"a\"\nrouting_key_file = \"/x\"\n", "t.toml");
    EXPECT_THAT(all_errors(r), HasSubstr("give only one of routing_key_file, routing_key_env and routing_key_credential"));
  }
  EnvVar unset("CREDENTIALS_DIRECTORY", "");
  ConfigResult r = parse_config(std::string(kPagerSink) + "routing_key_credential = \"pagerduty.key\"\n", "t.toml");
  EXPECT_THAT(all_errors(r), HasSubstr("sink[0].routing_key_credential: $CREDENTIALS_DIRECTORY is not set: run under "
                                       "systemd with LoadCredential=pagerduty.key:/PATH/TO/FILE in the unit, or use "
                                       "routing_key_file"));
}

// The packaged unit's situation: a root-owned 0600 key and check-config (as in
// ExecStartPre) running as another user. Root reads anything, so check-config
// runs as nobody (65534), as under DynamicUser=.
TEST(CredentialConfigTest, AnUnreadableSecretFileNamesTheFileAndTheUser) {
  const char* bin = std::getenv("NIGHTSHIFT_BINARY");
  ASSERT_NE(bin, nullptr) << "NIGHTSHIFT_BINARY is set by ctest";
  NIGHTSHIFT_REQUIRE(::geteuid() == 0 ? "" : "needs root to create a file another user cannot read",
                     "NIGHTSHIFT_SKIP_ROOT", "CI runs as root");
  const std::string dir = ::testing::TempDir() + "/unreadable";
  ::mkdir(dir.c_str(), 0755);
  ASSERT_EQ(::chmod(dir.c_str(), 0755), 0);
  const std::string key = dir + "/root-only.key";
  std::ofstream(key) << "PDKEY\n";
  ASSERT_EQ(::chmod(key.c_str(), 0600), 0);
  const std::string config = dir + "/nightshift.toml";
  std::ofstream(config) << kPagerSink << "routing_key_file = \"" << key << "\"\n";
  ASSERT_EQ(::chmod(config.c_str(), 0644), 0);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  // Built before fork: the child only calls async-signal-safe functions.
  std::vector<char*> argv = {const_cast<char*>(bin), const_cast<char*>("check-config"),
                             const_cast<char*>(config.c_str()), nullptr};
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::dup2(fds[1], STDOUT_FILENO);
    ::dup2(fds[1], STDERR_FILENO);
    if (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(126);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 1) << text;
  EXPECT_THAT(text, HasSubstr(config + ":6:20: sink[0].routing_key_file: cannot read \"" + key +
                              "\": Permission denied (running as "));
  EXPECT_THAT(text, HasSubstr("uid 65534"));
  EXPECT_THAT(text, HasSubstr("pass the file with LoadCredential= and name it with a _credential key"));
  EXPECT_THAT(text, Not(HasSubstr("PDKEY")));
}

TEST(ListenConfigTest, AcceptsIpv4AndBracketedIpv6) {
  for (const char* ok : {"127.0.0.1:9650", ":9650", "0.0.0.0:0", "[::]:9650", "[::1]:19700", "[2001:db8::1]:80"}) {
    SCOPED_TRACE(ok);
    ConfigResult r = parse_config(std::string("[agent]\nlisten = \"") + ok + "\"\n", "t.toml");
    ASSERT_TRUE(r.ok()) << all_errors(r);
    EXPECT_EQ(r.config->agent.listen, ok);
  }
  for (const char* bad : {"::1:9650", "[127.0.0.1]:80", "[::1]", "[::1]:99999", "localhost:9650", "[]:80"}) {
    SCOPED_TRACE(bad);
    EXPECT_FALSE(parse_config(std::string("[agent]\nlisten = \"") + bad + "\"\n", "t.toml").ok());
  }
}

std::string warnings_of(const std::string& toml) {
  ConfigResult r = parse_config(toml, "t.toml");
  EXPECT_TRUE(r.ok()) << all_errors(r);
  std::string all;
  for (const auto& w : r.warnings) all += w.to_string() + "\n";
  return all;
}

TEST(StatusLinkConfigTest, WarnsWhenPagesWouldLinkToLoopback) {
  const std::string sink = std::string(kPagerSink) + "routing_key_env = \"PATH\"\n";
  // The default: the agent's own listen address, 127.0.0.1.
  EXPECT_EQ(warnings_of(sink), "t.toml:2:1: warning: notify.status_url: pages will link to "
                               "http://127.0.0.1:9650/status, a loopback address the person paged cannot open; set "
                               "notify.status_url to a URL they can reach (docs/configuration.md)\n");
  // ":9650" and "[::]" listen everywhere, but the link the agent builds is 127.0.0.1.
  EXPECT_THAT(warnings_of("[agent]\nlisten = \":9650\"\n" + sink), HasSubstr("http://127.0.0.1:9650/status"));
  EXPECT_THAT(warnings_of("[agent]\nlisten = \"[::]:9650\"\n" + sink), HasSubstr("http://127.0.0.1:9650/status"));
  EXPECT_THAT(warnings_of("[notify]\nstatus_url = \"http://localhost:9650/status\"\n" + sink),
              HasSubstr("t.toml:2:14: warning: notify.status_url: pages will link to http://localhost:9650/status"));
  EXPECT_THAT(warnings_of("[notify]\nstatus_url = \"http://[::1]:9650/status\"\n" + sink), HasSubstr("warning"));
  // Reachable links, or nobody paged: no warning.
  EXPECT_EQ(warnings_of("[notify]\nstatus_url = \"https://status.example.net/status\"\n" + sink), "");
  EXPECT_EQ(warnings_of("[agent]\nlisten = \"192.0.2.10:9650\"\n" + sink), "");
  EXPECT_EQ(warnings_of("[agent]\nlisten = \"127.0.0.1:9650\"\n"), "");
}

TEST(CheckConfigTest, PrintsWarningsAndStillPasses) {
  const char* bin = std::getenv("NIGHTSHIFT_BINARY");
  ASSERT_NE(bin, nullptr) << "NIGHTSHIFT_BINARY is set by ctest";
  const std::string path = ::testing::TempDir() + "/warn.toml";
  std::ofstream(path) << kPagerSink << "routing_key_env = \"PATH\"\n";
  std::string out;
  EXPECT_EQ(test::run_command({bin, "check-config", path}, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr(path + ":2:1: warning: notify.status_url: pages will link to http://127.0.0.1:9650/status"));
  EXPECT_THAT(out, HasSubstr(": ok ("));
}

}  // namespace
}  // namespace nightshift
