// A CLI that behaves like its peers (issue 21): `--help` on every command
// prints its usage on stdout and exits 0; the man page and the shell
// completions know every command `nightshift --help` lists.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace nightshift {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string binary() {
  const char* b = std::getenv("NIGHTSHIFT_BINARY");
  return b ? b : "";
}

std::string source(const std::string& rel) { return test::read_file(std::string(NIGHTSHIFT_TEST_SOURCE_DIR) + "/" + rel); }

// Every command and subcommand, as a user would type it before --help.
const std::vector<std::vector<std::string>> kCommands = {
    {},           {"run"},       {"check-config"}, {"probe"},   {"probe", "icmp"}, {"probe", "tcp"},
    {"probe", "snmp"}, {"incidents"}, {"ack"},     {"note"},    {"resolve"},       {"silence"},
    {"silence", "add"}, {"replay"},
};

TEST(CliHelpTest, EveryCommandPrintsItsUsageAndExitsZero) {
  ASSERT_FALSE(binary().empty()) << "NIGHTSHIFT_BINARY is set by ctest";
  for (const auto& command : kCommands) {
    for (const char* flag : {"--help", "-h"}) {
      std::vector<std::string> argv = {binary()};
      argv.insert(argv.end(), command.begin(), command.end());
      argv.push_back(flag);
      std::string shown;
      for (const auto& a : argv) shown += (shown.empty() ? "nightshift" : " " + a);
      SCOPED_TRACE(shown);
      auto r = test::run_process(argv);
      ASSERT_TRUE(r.status.has_value());
      EXPECT_TRUE(r.status->exited && r.status->code == 0) << r.status->to_string() << "\n" << r.err;
      EXPECT_THAT(r.out, HasSubstr("nightshift")) << "usage goes to stdout";
      EXPECT_EQ(r.err, "");
    }
  }
}

// check-config --help used to open a file named "--help".
TEST(CliHelpTest, HelpIsNeverTakenForAFileName) {
  auto r = test::run_process({binary(), "check-config", "--help"});
  EXPECT_THAT(r.out, HasSubstr("Usage: nightshift check-config FILE"));
  EXPECT_THAT(r.err, Not(HasSubstr("cannot read")));
}

// The commands `nightshift --help` lists: "  nightshift NAME" lines.
std::set<std::string> listed_commands() {
  auto r = test::run_process({binary(), "--help"});
  std::set<std::string> out;
  const std::regex line(R"(^  nightshift ([a-z][a-z|-]*))");
  std::istringstream in(r.out);
  for (std::string l; std::getline(in, l);) {
    std::smatch m;
    if (!std::regex_search(l, m, line)) continue;
    std::string names = m[1];
    for (std::size_t start = 0; start <= names.size();) {
      const auto bar = names.find('|', start);
      const std::string name = names.substr(start, bar == std::string::npos ? std::string::npos : bar - start);
      out.insert(name);
      if (bar == std::string::npos) break;
      start = bar + 1;
    }
  }
  return out;
}

TEST(CliHelpTest, ManPageAndCompletionsKnowEveryCommand) {
  const auto commands = listed_commands();
  ASSERT_GE(commands.size(), 9u) << "run, check-config, probe, incidents, ack, note, resolve, silence, replay";
  const std::string man = source("docs/man/nightshift.1.md");
  const std::string bash = source("deploy/completion/nightshift.bash");
  const std::string zsh = source("deploy/completion/_nightshift");
  for (const auto& c : commands) {
    SCOPED_TRACE(c);
    EXPECT_THAT(man, HasSubstr("nightshift " + c)) << "docs/man/nightshift.1.md does not describe it";
    EXPECT_THAT(bash, HasSubstr(c)) << "deploy/completion/nightshift.bash does not complete it";
    EXPECT_THAT(zsh, HasSubstr("'" + c + ":")) << "deploy/completion/_nightshift does not complete it";
  }
}

TEST(CliHelpTest, CompletionScriptsParse) {
  const std::string dir = NIGHTSHIFT_TEST_SOURCE_DIR;
  auto b = test::run_process({"bash", "-n", dir + "/deploy/completion/nightshift.bash"});
  ASSERT_TRUE(b.status.has_value());
  EXPECT_EQ(b.status->code, 0) << b.err;
  // zsh is installed by scripts/install-deps.sh for exactly this check.
  auto z = test::run_process({"zsh", "-n", dir + "/deploy/completion/_nightshift"});
  ASSERT_TRUE(z.status.has_value());
  EXPECT_TRUE(z.status->exited && z.status->code == 0) << z.status->to_string() << " " << z.err;
}

}  // namespace
}  // namespace nightshift
