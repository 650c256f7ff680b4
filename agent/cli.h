// The operator CLI over the API: `nightshift incidents|ack|note|resolve|silence`.
// It talks HTTP to a running agent (--url, default $NIGHTSHIFT_URL or
// http://127.0.0.1:9650) with the bearer token from --token-file,
// $NIGHTSHIFT_TOKEN_FILE or $NIGHTSHIFT_TOKEN. Exit 0 on success, 1 when the
// agent refused or failed, 2 on a usage error.
#pragma once

#include <string>
#include <vector>

namespace nightshift::cli {

bool is_command(const std::string& name);
int run(const std::string& command, const std::vector<std::string>& args);
extern const char kUsage[];

}  // namespace nightshift::cli
