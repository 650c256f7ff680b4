// The [fleet] section: typed settings, secrets from files and the
// environment (never in errors), and errors that point at the key.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include "config/config.h"
#include "tests/support/temp_dir.h"

namespace nightshift {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

std::string all_errors(const ConfigResult& r) {
  std::string out;
  for (const auto& e : r.errors) out += e.to_string() + "\n";
  return out;
}

TEST(FleetConfig, AbsentMeansNoFleet) {
  ConfigResult r = parse_config("[agent]\nname = \"edge-a\"\n", "t.toml");
  ASSERT_TRUE(r.ok()) << all_errors(r);
  EXPECT_FALSE(r.config->fleet.enabled);
}

TEST(FleetConfig, FullSectionWithSecretsFromFileAndEnvironment) {
  test::TempDir dir;
  test::write_file(dir.file("nats.pw"), "hunter2-nats\n");
  const std::string text = "[agent]\nname = \"edge-a\"\n[fleet]\n"
                           "servers = [\"nats://127.0.0.1:19400\", \"tls://nats2.example.net:4222\"]\n"
                           "name = \"prod\"\nuser = \"nightshift\"\npassword_file = \"" +
                           dir.file("nats.pw") +
                           "\"\ntls_ca_file = \"/etc/nightshift/ca.pem\"\nquorum = 2\nreplicas = 3\n"
                           "heartbeat = \"2s\"\nlease = \"10s\"\nconfirm_timeout = \"1500ms\"\n";
  ConfigResult r = parse_config(text, "t.toml");
  ASSERT_TRUE(r.ok()) << all_errors(r);
  const fleet::FleetSettings& f = r.config->fleet;
  EXPECT_TRUE(f.enabled);
  EXPECT_EQ(f.servers.size(), 2u);
  EXPECT_EQ(f.name, "prod");
  EXPECT_EQ(f.user, "nightshift");
  EXPECT_EQ(f.password, "hunter2-nats");
  EXPECT_EQ(f.quorum, 2);
  EXPECT_EQ(f.replicas, 3);
  EXPECT_EQ(f.heartbeat, 2s);
  EXPECT_EQ(f.lease, 10s);
  EXPECT_EQ(f.confirm_timeout, 1500ms);
  EXPECT_THAT(fleet::describe(f), Not(HasSubstr("hunter2")));

  ::setenv("NIGHTSHIFT_TEST_NATS_TOKEN", "tok-from-env", 1);
  ConfigResult t = parse_config("[fleet]\nservers = [\"nats://127.0.0.1:19400\"]\ntoken_env = \"NIGHTSHIFT_TEST_NATS_TOKEN\"\n",
                                "t.toml");
  ASSERT_TRUE(t.ok()) << all_errors(t);
  EXPECT_EQ(t.config->fleet.token, "tok-from-env");
  EXPECT_EQ(t.config->fleet.name, "nightshift") << "the default fleet name";
}

TEST(FleetConfig, ErrorsNameFileLineAndKey) {
  struct Case {
    const char* name;
    std::string body;
    std::string error;
  };
  const std::vector<Case> cases = {
      {"no servers", "name = \"prod\"\n", "t.toml:1:1: fleet.servers: required key is missing"},
      {"bad scheme", "servers = [\"http://127.0.0.1:4222\"]\n",
       "t.toml:2:11: fleet.servers: servers[0]: expected nats://host:port or tls://host:port, found \"http://127.0.0.1:4222\""},
      {"bad name", "servers = [\"nats://127.0.0.1:4222\"]\nname = \"prod.noc\"\n",
       "t.toml:3:8: fleet.name: \"prod.noc\" may hold only letters, digits, '_' and '-'"},
      {"plain password", "servers = [\"nats://127.0.0.1:4222\"]\nuser = \"u\"\npassword = \"hunter2\"\n",
       "fleet.password: unknown key"},
      {"user without password", "servers = [\"nats://127.0.0.1:4222\"]\nuser = \"u\"\n",
       "fleet.user: user and password: give both or neither"},
      {"lease too short", "servers = [\"nats://127.0.0.1:4222\"]\nlease = \"200ms\"\n",
       "fleet.lease: at least 1s"},
      {"typo", "servers = [\"nats://127.0.0.1:4222\"]\nqourum = 2\n", "fleet.qourum: unknown key"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    ConfigResult r = parse_config("[fleet]\n" + c.body, "t.toml");
    ASSERT_FALSE(r.ok());
    const std::string errors = all_errors(r);
    EXPECT_THAT(errors, HasSubstr(c.error));
    EXPECT_THAT(errors, Not(HasSubstr("hunter2")));
  }
}

}  // namespace
}  // namespace nightshift
