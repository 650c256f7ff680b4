#include "tests/support/testnet.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

namespace nightshift::test {

namespace {

std::atomic<bool> g_private{false};
std::atomic<int> g_peer_count{0};
// Written once, before any thread starts. Constant-initialized, not a
// std::string: enter_private_netns() runs from other files' static
// initializers, possibly before this file's dynamic ones.
char g_original_netns[64] = {};

constexpr const char* kNetnsDir = "/run/netns";

std::string join(const std::vector<std::string>& argv) {
  std::string cmd;
  for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
  return cmd;
}

// Threads in this process, from /proc/self/status; 0 if unknown.
int thread_count() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Threads:", 0) == 0) return std::atoi(line.c_str() + 8);
  }
  return 0;
}

// "nst-<pid>-<n>" -> pid, or 0 when the name is not one of ours.
pid_t owner_pid(const std::string& name) {
  if (name.rfind("nst-", 0) != 0) return 0;
  const std::size_t dash = name.find('-', 4);
  if (dash == std::string::npos || dash == 4 || dash + 1 == name.size()) return 0;
  for (std::size_t i = 4; i < name.size(); ++i) {
    if (i != dash && (name[i] < '0' || name[i] > '9')) return 0;
  }
  return static_cast<pid_t>(std::atol(name.substr(4, dash - 4).c_str()));
}

// Peers left behind by test processes that were killed before their
// destructors ran (a ctest timeout, a crash): deleted when their owner is gone.
void delete_stale_peers() {
  DIR* dir = ::opendir(kNetnsDir);
  if (dir == nullptr) return;
  std::vector<std::string> stale;
  for (int i = 0; i < 10'000; ++i) {  // bounded
    const dirent* e = ::readdir(dir);
    if (e == nullptr) break;
    const pid_t pid = owner_pid(e->d_name);
    if (pid <= 0 || pid == ::getpid()) continue;
    if (::kill(pid, 0) != 0 && errno == ESRCH) stale.emplace_back(e->d_name);
  }
  ::closedir(dir);
  for (const auto& name : stale) run_command({"ip", "netns", "del", name});
}

}  // namespace

int run_command(const std::vector<std::string>& argv, std::string* output) {
  if (argv.empty()) return -1;
  int pipefd[2] = {-1, -1};
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return -1;
  // Built before fork: the child of a threaded process may only call
  // async-signal-safe functions.
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(pipefd[0]);
    ::close(pipefd[1]);
    return -1;
  }
  if (pid == 0) {
    ::dup2(pipefd[1], STDOUT_FILENO);
    ::dup2(pipefd[1], STDERR_FILENO);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  ::close(pipefd[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(pipefd[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0) out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(pipefd[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (output) *output = out;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string netns_id() {
  char buf[64] = {};
  const ssize_t n = ::readlink("/proc/thread-self/ns/net", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

std::string original_netns_id() { return std::string(g_original_netns); }

std::string enter_private_netns() {
  if (g_private) return "";
  // unshare() moves only the calling thread: with other threads running, part
  // of the process would stay in the host's namespace.
  if (const int threads = thread_count(); threads != 1) {
    return "enter_private_netns() needs a single-threaded process, found " + std::to_string(threads) +
           " threads: call it from a static initializer, before any thread starts";
  }
  const std::string original = netns_id();
  std::snprintf(g_original_netns, sizeof g_original_netns, "%s", original.c_str());
  if (::unshare(CLONE_NEWNET) != 0) {
    return std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno) + " (needs root: CAP_SYS_ADMIN)";
  }
  std::string out;
  const int rc = run_command({"ip", "link", "set", "lo", "up"}, &out);
  if (rc != 0) {
    return rc == 127 ? std::string("ip not found (install iproute2)") : "ip link set lo up: " + out;
  }
  g_private = true;
  return "";
}

bool in_private_netns() { return g_private; }

std::string add_unreachable_route(const std::string& cidr) {
  if (!g_private) return "refusing to change routes outside a private network namespace";
  std::vector<std::string> argv = {"ip"};
  if (cidr.find(':') != std::string::npos) argv.push_back("-6");
  for (const char* a : {"route", "replace", "unreachable"}) argv.emplace_back(a);
  argv.push_back(cidr);
  std::string out;
  if (run_command(argv, &out) != 0) return join(argv) + ": " + out;
  return "";
}

int bound_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return -1;
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return -1;
}

bool PeerHost::step(const std::vector<std::string>& argv) {
  std::string out;
  const int rc = run_command(argv, &out);
  if (rc == 0) return true;
  error_ = join(argv) + ": " + (rc == 127 ? std::string("command not found") : out);
  return false;
}

PeerHost::PeerHost() {
  if (!g_private) {
    error_ = "not in a private network namespace: call enter_private_netns() first";
    return;
  }
  delete_stale_peers();
  const int n = g_peer_count++;
  name_ = "nst-" + std::to_string(::getpid()) + "-" + std::to_string(n);
  local_if_ = "nsv" + std::to_string(n);
  peer_if_ = "nsp" + std::to_string(n);
  const std::vector<std::vector<std::string>> steps = {
      {"ip", "netns", "add", name_},
      {"ip", "link", "add", local_if_, "type", "veth", "peer", "name", peer_if_, "netns", name_},
      {"ip", "addr", "add", std::string(kLocal) + "/24", "dev", local_if_},
      {"ip", "-6", "addr", "add", std::string(kLocal6) + "/64", "dev", local_if_, "nodad"},
      {"ip", "link", "set", local_if_, "up"},
      {"ip", "-n", name_, "link", "set", "lo", "up"},
      {"ip", "-n", name_, "addr", "add", std::string(kPeer) + "/24", "dev", peer_if_},
      {"ip", "-n", name_, "-6", "addr", "add", std::string(kPeer6) + "/64", "dev", peer_if_, "nodad"},
      {"ip", "-n", name_, "addr", "add", std::string(kSilent) + "/32", "dev", peer_if_},
      {"ip", "-n", name_, "link", "set", peer_if_, "up"},
  };
  for (const auto& s : steps) {
    if (!step(s)) return;
  }
  if (!drop_inbound(kSilent)) return;
  for (const char* cidr : {"203.0.113.0/24", "2001:db8:dead::/48"}) {
    if (std::string why = add_unreachable_route(cidr); !why.empty()) {
      error_ = why;
      return;
    }
  }
}

PeerHost::~PeerHost() {
  if (name_.empty()) return;
  // The veth pair first, and explicitly: deleting a namespace is finished by
  // the kernel later, and until then our end (and its route to 198.51.100.0/24)
  // would stay and steal the next PeerHost's traffic.
  run_command({"ip", "link", "del", local_if_});
  run_command({"ip", "netns", "del", name_});
}

bool PeerHost::set_link(bool up) { return step({"ip", "link", "set", local_if_, up ? "up" : "down"}); }

bool PeerHost::set_peer_link(bool up) {
  return step({"ip", "-n", name_, "link", "set", peer_if_, up ? "up" : "down"});
}

bool PeerHost::add_peer_address(const std::string& cidr) {
  const bool v6 = cidr.find(':') != std::string::npos;
  std::vector<std::string> argv = {"ip", "-n", name_};
  if (v6) argv.emplace_back("-6");
  for (const std::string& a : {std::string("addr"), std::string("add"), cidr, std::string("dev"), peer_if_}) {
    argv.push_back(a);
  }
  if (v6) argv.emplace_back("nodad");
  return step(argv);
}

bool PeerHost::drop_inbound(const std::string& address, Firewall firewall) {
  const bool v6 = address.find(':') != std::string::npos;
  const std::vector<std::string> exec = {"ip", "netns", "exec", name_};
  auto in_peer = [&exec](std::vector<std::string> argv) {
    argv.insert(argv.begin(), exec.begin(), exec.end());
    return argv;
  };
  std::string why;
  if (firewall == Firewall::kAuto || firewall == Firewall::kNft) {
    const std::vector<std::vector<std::string>> nft = {
        in_peer({"nft", "add", "table", "inet", "nightshift_test"}),
        in_peer({"nft", "add", "chain", "inet", "nightshift_test", "input",
                 "{ type filter hook input priority 0 ; policy accept ; }"}),
        in_peer({"nft", "add", "rule", "inet", "nightshift_test", "input", v6 ? "ip6" : "ip", "daddr", address,
                 "drop"}),
    };
    bool done = true;
    for (const auto& s : nft) {
      if (!step(s)) {
        done = false;
        break;
      }
    }
    if (done) {
      firewall_ = "nft";
      return true;
    }
    why = error_;
  }
  if (firewall == Firewall::kAuto || firewall == Firewall::kIptables) {
    // iptables (the nf_tables backend on Debian 12), then the legacy backend
    // for kernels without nf_tables.
    for (std::string tool : {"iptables", "iptables-legacy"}) {
      if (v6) tool.insert(0, "ip6");
      if (step(in_peer({tool, "-w", "-A", "INPUT", "-d", address, "-j", "DROP"}))) {
        firewall_ = tool;
        error_.clear();
        return true;
      }
      why += (why.empty() ? "" : "; ") + error_;
    }
  }
  error_ = "cannot make " + address + " drop inbound traffic: " + why;
  return false;
}

int PeerHost::listen_tcp(const std::string& address, int port, int backlog) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (auto* v4 = reinterpret_cast<sockaddr_in*>(&ss); ::inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<std::uint16_t>(port));
    len = sizeof(sockaddr_in);
  } else if (auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
             ::inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<std::uint16_t>(port));
    len = sizeof(sockaddr_in6);
  } else {
    error_ = "listen_tcp: not an IP address: " + address;
    return -1;
  }
  const std::string peer_path = std::string(kNetnsDir) + "/" + name_;
  const int peer_ns = ::open(peer_path.c_str(), O_RDONLY | O_CLOEXEC);
  const int home_ns = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (peer_ns < 0 || home_ns < 0) {
    error_ = "listen_tcp: open namespace: " + std::string(std::strerror(errno));
    if (peer_ns >= 0) ::close(peer_ns);
    if (home_ns >= 0) ::close(home_ns);
    return -1;
  }
  if (::setns(peer_ns, CLONE_NEWNET) != 0) {
    error_ = "listen_tcp: setns into " + name_ + ": " + std::strerror(errno);
    ::close(peer_ns);
    ::close(home_ns);
    return -1;
  }
  // A socket belongs to the namespace it was made in, wherever it is used later.
  const int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int socket_errno = errno;
  if (::setns(home_ns, CLONE_NEWNET) != 0) {
    // This thread would go on in the wrong namespace: nothing after that is safe.
    std::fprintf(stderr, "testnet: cannot return to the test's namespace: %s\n", std::strerror(errno));
    std::abort();
  }
  ::close(peer_ns);
  ::close(home_ns);
  if (fd < 0) {
    error_ = std::string("listen_tcp: socket: ") + std::strerror(socket_errno);
    return -1;
  }
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&ss), len) != 0 || ::listen(fd, backlog) != 0) {
    error_ = "listen_tcp: " + address + ":" + std::to_string(port) + ": " + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

int PeerHost::exec_in_peer(const std::vector<std::string>& argv, std::string* output) {
  std::vector<std::string> full = {"ip", "netns", "exec", name_};
  full.insert(full.end(), argv.begin(), argv.end());
  return run_command(full, output);
}

}  // namespace nightshift::test
