// `nightshift probe KIND [--KEY VALUE]... TARGET...`: one run of any probe kind
// against targets given on the command line, through the agent's own config
// parser and engines, so it sees what the agent would see. Every key of the
// kind's [[target.probe]] table is an option (`--expect-banner SSH-` is
// `expect_banner = "SSH-"`), and TARGET:PORT sets `port`. ICMP keeps its
// fping-style command (probes/icmp/icmp_cli.cpp).
//
// Exit 0 when every target answered, 1 when any did not, 2 on a usage error.
// Thread safety: runs its own reactor on the calling thread.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace nightshift {

int probe_cli(const std::string& kind, const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
// "Usage: nightshift probe ..." with the registered kinds.
std::string probe_usage();

}  // namespace nightshift
