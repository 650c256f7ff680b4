#include "tests/support/require.h"

#include <unistd.h>

#include <cstdlib>
#include <string_view>

namespace nightshift::test {

OnMissing missing_component(const char* ci, const char* opt_in) {
  if (ci != nullptr && *ci != '\0') return OnMissing::kFail;
  return opt_in != nullptr && std::string_view(opt_in) == "1" ? OnMissing::kSkip : OnMissing::kFail;
}

OnMissing missing_component(const char* opt_in_variable) {
  return missing_component(std::getenv("CI"), std::getenv(opt_in_variable));
}

std::string missing_component_note(const char* opt_in_variable) {
  const char* ci = std::getenv("CI");
  if (ci != nullptr && *ci != '\0') return "; under CI a missing component fails, it is never skipped";
  return std::string("; outside CI, set ") + opt_in_variable + "=1 to skip instead";
}

std::string missing_program(const std::string& path) {
  return ::access(path.c_str(), X_OK) == 0 ? "" : path + " is not installed";
}

}  // namespace nightshift::test
