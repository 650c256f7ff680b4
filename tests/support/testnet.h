// Test networks: the test process moves into a private network namespace of its
// own (loopback only), and builds test hosts in peer namespaces joined to it by
// veth pairs, addressed from 198.51.100.0/24 and 2001:db8::/32 with no route
// out. Nothing touches the host's network; everything in the private namespace
// vanishes with the process, and peers are deleted in the destructor (a peer
// left behind by a killed test process is deleted by the next PeerHost).
//
// enter_private_netns() must run before any thread starts (a namespace is per
// thread; threads started later inherit it, threads already running do not):
// call it from a static initializer of the test binary, e.g.
//   const std::string kNetnsError = nightshift::test::enter_private_netns();
// and begin each namespaced test with NIGHTSHIFT_REQUIRE_TESTNET(kNetnsError).
// Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN) and iproute2; nftables, with
// iptables as the fallback, for "never answers".
//
// Thread safety: enter_private_netns() on the main thread before any other
// thread; the rest from one test thread at a time.
#pragma once

#include <string>
#include <vector>

#include "tests/support/require.h"

// In a test body or SetUp(): when `why` (an error string) is non-empty, fails
// the test with it; outside CI it skips instead if NIGHTSHIFT_SKIP_NETNS=1
// (tests/support/require.h). Include <gtest/gtest.h>.
#define NIGHTSHIFT_REQUIRE_TESTNET(why)                                                                \
  NIGHTSHIFT_REQUIRE(::nightshift::test::testnet_missing(why), "NIGHTSHIFT_SKIP_NETNS",               \
                     "run as root with iproute2 and nftables or iptables installed, see "              \
                     "scripts/install-deps.sh")

namespace nightshift::test {

// "" when `why` is empty, else "test network unavailable: <why>".
inline std::string testnet_missing(const std::string& why) {
  return why.empty() ? why : "test network unavailable: " + why;
}

// Moves this process into a new network namespace with `lo` up. Returns "" on
// success, else why not (not root; other threads already running; ...).
// Idempotent.
std::string enter_private_netns();
// Whether the process is in a private namespace (enter_private_netns succeeded).
bool in_private_netns();
// The calling thread's network namespace, e.g. "net:[4026532281]"; "" on error.
std::string netns_id();
// The namespace the process started in (before enter_private_netns), or "".
std::string original_netns_id();

// Runs argv (no shell); returns the exit status, or -1 if it could not run
// (127: not found). Output (stdout and stderr) goes to `output` if given.
int run_command(const std::vector<std::string>& argv, std::string* output = nullptr);

// In the private namespace only (refuses otherwise, so the host's routes are
// never touched): `ip route replace unreachable <cidr>`, so connecting there
// fails at once with ENETUNREACH/EHOSTUNREACH. "" on success, else why not.
std::string add_unreachable_route(const std::string& cidr);

// One test host in its own namespace "nst-<pid>-<n>", joined to this
// process's namespace by a veth pair:
//   here (veth) 198.51.100.1/24      <->  peer 198.51.100.2/24 (answers: RST for closed ports)
//               2001:db8:5e::1/64    <->  peer 2001:db8:5e::2/64
//                                         peer 198.51.100.3/32 (silently drops everything: "never answers")
// plus, in this namespace, unreachable routes for 203.0.113.0/24 and
// 2001:db8:dead::/48 (no route: fails at once).
class PeerHost {
 public:
  static constexpr const char* kLocal = "198.51.100.1";
  static constexpr const char* kPeer = "198.51.100.2";
  static constexpr const char* kSilent = "198.51.100.3";
  static constexpr const char* kUnreachable = "203.0.113.1";
  static constexpr const char* kLocal6 = "2001:db8:5e::1";
  static constexpr const char* kPeer6 = "2001:db8:5e::2";
  static constexpr const char* kUnreachable6 = "2001:db8:dead::1";

  enum class Firewall { kAuto, kNft, kIptables };

  PeerHost();
  ~PeerHost();
  PeerHost(const PeerHost&) = delete;
  PeerHost& operator=(const PeerHost&) = delete;

  bool ok() const { return error_.empty(); }
  // Why the last step failed: the command line and its output.
  const std::string& error() const { return error_; }
  const std::string& name() const { return name_; }
  // The firewall that made kSilent silent: "nft", "iptables" or "iptables-legacy".
  const std::string& firewall() const { return firewall_; }

  // Takes the veth link down or up: from this side (the route goes away: fails
  // at once) or from the peer's (carrier lost, route kept: packets vanish).
  bool set_link(bool up);
  bool set_peer_link(bool up);
  // Adds an address (CIDR, e.g. "198.51.100.4/32") to the peer's veth.
  bool add_peer_address(const std::string& cidr);
  // Makes the peer silently drop every packet to `address` (one of its own).
  // kAuto: nftables, else iptables, else iptables-legacy.
  bool drop_inbound(const std::string& address, Firewall firewall = Firewall::kAuto);
  // A listening TCP socket on address:port (port 0: any) inside the peer
  // namespace, owned by the caller; -1 on failure (see error()). Made by
  // switching the calling thread into the peer namespace for the socket call.
  int listen_tcp(const std::string& address, int port = 0, int backlog = 128);
  // Runs a command inside the peer namespace.
  int exec_in_peer(const std::vector<std::string>& argv, std::string* output = nullptr);

 private:
  bool step(const std::vector<std::string>& argv);
  std::string name_;
  std::string local_if_;
  std::string peer_if_;
  std::string error_;
  std::string firewall_;
};

// The port a listening socket is bound to, or -1.
int bound_port(int fd);

}  // namespace nightshift::test
