// What a test does when a real component it needs (network namespaces,
// snmpd, Chromium, Prometheus, Alertmanager, ...) is not available: it FAILS
// with the reason. Only outside CI, and only when the developer asked for it
// with the component's opt-in variable (NIGHTSHIFT_SKIP_NETNS=1 for the test
// networks, NIGHTSHIFT_SKIP_MISSING_TOOLS=1 for programs), does it skip. Under
// CI (the environment variable CI set to anything non-empty) it always fails:
// a run that skipped its integration tests must not report them passed.
//
// Every skip in tests/ goes through NIGHTSHIFT_REQUIRE.
//
// Thread safety: any thread (reads the environment only).
#pragma once

#include <string>

// In a test body or SetUp(): when `why` (an error string) is non-empty, fails
// the test with it (and `hint`), or skips it as decided by missing_component().
// Include <gtest/gtest.h>.
#define NIGHTSHIFT_REQUIRE(why, opt_in_variable, hint)                                                    \
  do {                                                                                                    \
    const std::string nightshift_require_why_ = (why);                                                    \
    if (!nightshift_require_why_.empty()) {                                                               \
      if (::nightshift::test::missing_component(opt_in_variable) ==                                       \
          ::nightshift::test::OnMissing::kSkip) {                                                         \
        GTEST_SKIP() << nightshift_require_why_ << " (skipped: " << (opt_in_variable) << "=1)";         \
      }                                                                                                   \
      FAIL() << nightshift_require_why_ << " (" << (hint) << ")"                                          \
             << ::nightshift::test::missing_component_note(opt_in_variable);                              \
    }                                                                                                     \
  } while (0)

// A program the test runs: fails (or skips, see above) when it is not installed.
#define NIGHTSHIFT_REQUIRE_PROGRAM(path)                                                                  \
  NIGHTSHIFT_REQUIRE(::nightshift::test::missing_program(path), "NIGHTSHIFT_SKIP_MISSING_TOOLS",          \
                     "scripts/install-deps.sh installs it")

namespace nightshift::test {

enum class OnMissing { kFail, kSkip };

// The decision, pure: `ci` and `opt_in` are the values of CI and of the opt-in
// variable (nullptr when unset). Skip only when CI is unset or empty and the
// opt-in is exactly "1".
OnMissing missing_component(const char* ci, const char* opt_in);
// The same from this process's environment.
OnMissing missing_component(const char* opt_in_variable);
// The sentence a failure adds about skipping: how to opt in outside CI, or
// that CI never skips.
std::string missing_component_note(const char* opt_in_variable);

// "" when `path` is an executable file, else "<path> is not installed".
std::string missing_program(const std::string& path);

}  // namespace nightshift::test
