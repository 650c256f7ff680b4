// Test networks: the test process moves into a private network namespace of its
// own (loopback only), and builds test hosts in peer namespaces joined to it by
// veth pairs, addressed from 198.51.100.0/24 with no route out. Everything
// vanishes with the process; peers are deleted in the destructor as well.
//
// enter_private_netns() must run before any thread starts (network namespaces
// are per thread; threads started later inherit it): call it from a static
// initializer of the test binary. Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN).
#pragma once

#include <string>
#include <vector>

namespace nightshift::test {

// Moves this process into a new network namespace with `lo` up. Returns "" on
// success, else why not. Idempotent.
std::string enter_private_netns();
// Whether the process is in a private namespace (enter_private_netns succeeded).
bool in_private_netns();
// When namespaces cannot be made: tests skip if NIGHTSHIFT_SKIP_NETNS=1, else fail.
bool netns_skip_allowed();

// Runs argv (no shell); returns the exit status, or -1 if it could not run.
// Output goes to `output` if given.
int run_command(const std::vector<std::string>& argv, std::string* output = nullptr);

// One test host in its own namespace, joined to this process's namespace:
//   here (veth) 198.51.100.1/24  <->  peer 198.51.100.2/24 (answers: RST for closed ports)
//                                     peer 198.51.100.3/32 (silently drops everything: "never answers")
// plus, in this namespace, `unreachable 203.0.113.0/24` (no route: fails at once).
class PeerHost {
 public:
  static constexpr const char* kLocal = "198.51.100.1";
  static constexpr const char* kPeer = "198.51.100.2";
  static constexpr const char* kSilent = "198.51.100.3";
  static constexpr const char* kUnreachable = "203.0.113.1";

  PeerHost();
  ~PeerHost();
  PeerHost(const PeerHost&) = delete;
  PeerHost& operator=(const PeerHost&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  const std::string& name() const { return name_; }

  // Takes the veth link down or up (from this side).
  bool set_link(bool up);
  // Runs a command inside the peer namespace.
  int exec_in_peer(const std::vector<std::string>& argv, std::string* output = nullptr);

 private:
  bool step(const std::vector<std::string>& argv);
  std::string name_;
  std::string local_if_;
  std::string error_;
};

}  // namespace nightshift::test
