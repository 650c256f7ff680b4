// When a test may skip for a missing component: never under CI, otherwise
// only when the developer opted in with exactly "1".
#include "tests/support/require.h"

#include <gtest/gtest.h>
#include <stdlib.h>

namespace nightshift::test {
namespace {

TEST(RequireTest, SkipsOnlyOutsideCiWhenTheDeveloperOptedIn) {
  struct Case {
    const char* name;
    const char* ci;
    const char* opt_in;
    OnMissing expected;
  };
  const Case cases[] = {
      {"no CI, no opt-in: fail", nullptr, nullptr, OnMissing::kFail},
      {"no CI, opted in: skip", nullptr, "1", OnMissing::kSkip},
      {"empty CI counts as unset", "", "1", OnMissing::kSkip},
      {"CI, no opt-in: fail", "true", nullptr, OnMissing::kFail},
      {"CI wins over the opt-in", "true", "1", OnMissing::kFail},
      {"any CI value counts", "0", "1", OnMissing::kFail},
      {"opt-in must be 1", nullptr, "yes", OnMissing::kFail},
      {"opt-in 0 is no", nullptr, "0", OnMissing::kFail},
      {"empty opt-in is no", nullptr, "", OnMissing::kFail},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(missing_component(c.ci, c.opt_in), c.expected);
  }
}

TEST(RequireTest, ReadsCiAndTheOptInFromTheEnvironment) {
  const char* saved_ci = std::getenv("CI");
  const std::string ci = saved_ci ? saved_ci : "";
  ::setenv("NIGHTSHIFT_REQUIRE_TEST_OPT_IN", "1", 1);
  ::unsetenv("CI");
  EXPECT_EQ(missing_component("NIGHTSHIFT_REQUIRE_TEST_OPT_IN"), OnMissing::kSkip);
  EXPECT_NE(missing_component_note("NIGHTSHIFT_REQUIRE_TEST_OPT_IN").find("set NIGHTSHIFT_REQUIRE_TEST_OPT_IN=1"),
            std::string::npos);
  ::setenv("CI", "1", 1);
  EXPECT_EQ(missing_component("NIGHTSHIFT_REQUIRE_TEST_OPT_IN"), OnMissing::kFail);
  EXPECT_NE(missing_component_note("NIGHTSHIFT_REQUIRE_TEST_OPT_IN").find("never skipped"), std::string::npos);
  ::unsetenv("NIGHTSHIFT_REQUIRE_TEST_OPT_IN");
  if (saved_ci) {
    ::setenv("CI", ci.c_str(), 1);
  } else {
    ::unsetenv("CI");
  }
}

TEST(RequireTest, MissingProgramSaysWhich) {
  EXPECT_EQ(missing_program("/bin/sh"), "");
  EXPECT_EQ(missing_program("/nonexistent/nightshift-tool"), "/nonexistent/nightshift-tool is not installed");
}

}  // namespace
}  // namespace nightshift::test
