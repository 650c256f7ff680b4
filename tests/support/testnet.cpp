#include "tests/support/testnet.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace nightshift::test {

namespace {
std::atomic<bool> g_private{false};
std::atomic<int> g_peer_count{0};
}  // namespace

int run_command(const std::vector<std::string>& argv, std::string* output) {
  if (argv.empty()) return -1;
  int pipefd[2] = {-1, -1};
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return -1;
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(pipefd[0]);
    ::close(pipefd[1]);
    return -1;
  }
  if (pid == 0) {
    ::dup2(pipefd[1], STDOUT_FILENO);
    ::dup2(pipefd[1], STDERR_FILENO);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  ::close(pipefd[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(pipefd[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  ::close(pipefd[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (output) *output = out;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string enter_private_netns() {
  if (g_private) return "";
  if (::unshare(CLONE_NEWNET) != 0) return std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno) + " (run as root)";
  std::string out;
  if (run_command({"ip", "link", "set", "lo", "up"}, &out) != 0) return "ip link set lo up: " + out;
  g_private = true;
  return "";
}

bool in_private_netns() { return g_private; }

bool netns_skip_allowed() {
  const char* v = std::getenv("NIGHTSHIFT_SKIP_NETNS");
  return v != nullptr && std::string(v) == "1";
}

bool PeerHost::step(const std::vector<std::string>& argv) {
  std::string out;
  if (run_command(argv, &out) == 0) return true;
  std::string cmd;
  for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
  error_ = cmd + ": " + out;
  return false;
}

PeerHost::PeerHost() {
  if (!g_private) {
    error_ = "not in a private network namespace: call enter_private_netns() first";
    return;
  }
  const int n = g_peer_count++;
  name_ = "nst-" + std::to_string(::getpid()) + "-" + std::to_string(n);
  local_if_ = "nsv" + std::to_string(n);
  const std::string peer_if = "nsp" + std::to_string(n);
  const std::string local_cidr = std::string(kLocal) + "/24";
  const std::string peer_cidr = std::string(kPeer) + "/24";
  const std::string silent = std::string(kSilent) + "/32";
  const std::vector<std::vector<std::string>> steps = {
      {"ip", "netns", "add", name_},
      {"ip", "link", "add", local_if_, "type", "veth", "peer", "name", peer_if, "netns", name_},
      {"ip", "addr", "add", local_cidr, "dev", local_if_},
      {"ip", "link", "set", local_if_, "up"},
      {"ip", "-n", name_, "link", "set", "lo", "up"},
      {"ip", "-n", name_, "addr", "add", peer_cidr, "dev", peer_if},
      {"ip", "-n", name_, "addr", "add", silent, "dev", peer_if},
      {"ip", "-n", name_, "link", "set", peer_if, "up"},
      {"ip", "netns", "exec", name_, "nft", "add", "table", "inet", "nightshift_test"},
      {"ip", "netns", "exec", name_, "nft", "add", "chain", "inet", "nightshift_test", "input",
       "{ type filter hook input priority 0 ; policy accept ; }"},
      {"ip", "netns", "exec", name_, "nft", "add", "rule", "inet", "nightshift_test", "input", "ip", "daddr",
       kSilent, "drop"},
      {"ip", "route", "replace", "unreachable", "203.0.113.0/24"},
  };
  for (const auto& s : steps) {
    if (!step(s)) return;
  }
}

PeerHost::~PeerHost() {
  if (!name_.empty()) run_command({"ip", "netns", "del", name_});
}

bool PeerHost::set_link(bool up) { return step({"ip", "link", "set", local_if_, up ? "up" : "down"}); }

int PeerHost::exec_in_peer(const std::vector<std::string>& argv, std::string* output) {
  std::vector<std::string> full = {"ip", "netns", "exec", name_};
  full.insert(full.end(), argv.begin(), argv.end());
  return run_command(full, output);
}

}  // namespace nightshift::test
