#include "tests/support/process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "tests/support/temp_dir.h"

extern char** environ;

namespace nightshift::test {

namespace {
std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

ExitStatus decode(int wstatus) {
  ExitStatus s;
  if (WIFEXITED(wstatus)) {
    s.exited = true;
    s.code = WEXITSTATUS(wstatus);
  } else if (WIFSIGNALED(wstatus)) {
    s.signal = WTERMSIG(wstatus);
  }
  return s;
}

constexpr auto kPollStep = std::chrono::milliseconds(5);
}  // namespace

std::string ExitStatus::to_string() const {
  return exited ? "exit " + std::to_string(code) : "signal " + std::to_string(signal);
}

Process::Process(Options options) {
  if (options.argv.empty()) throw std::runtime_error("Process: empty argv");
  std::string dir = options.capture_dir;
  if (dir.empty()) {
    own_dir_ = make_temp_dir("nightshift-proc-");
    dir = own_dir_;
  }
  stdout_path_ = dir + "/stdout";
  stderr_path_ = dir + "/stderr";
  // Pick fresh names when several processes share a capture dir.
  for (int i = 1; std::filesystem::exists(stdout_path_) || std::filesystem::exists(stderr_path_); ++i) {
    if (i > 1000) throw std::runtime_error("Process: no free capture file name in " + dir);
    stdout_path_ = dir + "/stdout." + std::to_string(i);
    stderr_path_ = dir + "/stderr." + std::to_string(i);
  }

  std::vector<std::string> env_strings;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) env_strings.emplace_back(*e);
  for (const auto& kv : options.extra_env) env_strings.push_back(kv);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<char*> argv;
  for (auto& a : options.argv) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, stdout_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, stderr_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  // The child starts with an empty signal mask and default dispositions,
  // whatever the test runner has blocked or ignored.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int sig : {SIGHUP, SIGINT, SIGTERM, SIGPIPE, SIGCHLD, SIGUSR1, SIGUSR2}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  const int rc = ::posix_spawnp(&pid_, argv[0], &actions, &attr, argv.data(), envp.data());
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    pid_ = -1;
    if (!own_dir_.empty()) remove_tree(own_dir_);
    throw std::runtime_error("Process: cannot start " + options.argv[0] + ": " + std::strerror(rc));
  }
}

Process::~Process() {
  if (pid_ > 0 && !status_) kill_and_wait();
  if (!status_ && pid_ > 0) {
    // Still not reaped after SIGKILL (uninterruptible sleep): block for it
    // rather than leave a zombie or a stray process behind.
    int ws = 0;
    if (::waitpid(pid_, &ws, 0) == pid_) status_ = decode(ws);
  }
  if (!own_dir_.empty()) remove_tree(own_dir_);
}

bool Process::try_reap(int flags) {
  if (status_) return true;
  if (pid_ <= 0) return false;
  int ws = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &ws, flags);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) {
    status_ = decode(ws);
    return true;
  }
  if (r < 0 && errno == ECHILD) {  // someone else reaped it: never signal that pid again
    status_ = ExitStatus{};
    return true;
  }
  return false;
}

bool Process::running() { return pid_ > 0 && !try_reap(WNOHANG); }

bool Process::send_signal(int sig) {
  if (!running()) return false;
  return ::kill(pid_, sig) == 0;
}

std::optional<ExitStatus> Process::wait_for(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const long max_polls = timeout / kPollStep + 2;
  for (long i = 0; i < max_polls; ++i) {
    if (try_reap(WNOHANG)) return status_;
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(kPollStep);
  }
  if (try_reap(WNOHANG)) return status_;
  return std::nullopt;
}

std::optional<ExitStatus> Process::kill_and_wait(std::chrono::milliseconds timeout) {
  if (send_signal(SIGKILL) || status_) return wait_for(timeout);
  return status_;
}

std::string Process::stdout_text() const { return slurp(stdout_path_); }
std::string Process::stderr_text() const { return slurp(stderr_path_); }

std::optional<std::size_t> Process::wait_for_stderr(const std::string& needle, std::chrono::milliseconds timeout,
                                                    std::size_t from) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const long max_polls = timeout / kPollStep + 2;
  for (long i = 0; i < max_polls; ++i) {
    const bool alive = running();
    const std::string err = stderr_text();
    if (from <= err.size()) {
      if (auto pos = err.find(needle, from); pos != std::string::npos) return pos;
    }
    if (!alive || std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(kPollStep);
  }
  return std::nullopt;
}

RunResult run_process(std::vector<std::string> argv, std::chrono::milliseconds timeout) {
  Process p(std::move(argv));
  RunResult r;
  r.status = p.wait_for(timeout);
  if (!r.status) p.kill_and_wait();
  r.out = p.stdout_text();
  r.err = p.stderr_text();
  return r;
}

}  // namespace nightshift::test
