// Process: runs a child program for a test (no shell: an argv vector) with its
// stdout and stderr captured to files, and reaps it no matter how the test ends.
//
// The destructor SIGKILLs a child that is still running and reaps it, so an
// ASSERT that returns early never leaks a process. Only the child this object
// started is ever signalled, by its pid, and only while it is unreaped (so the
// pid cannot have been reused). Every wait is bounded by a timeout.
//
// Thread safety: one thread per object.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace nightshift::test {

struct ExitStatus {
  bool exited = false;  // exited normally; `code` is valid
  int code = -1;
  int signal = 0;                 // killed by this signal when !exited
  std::string to_string() const;  // "exit 0", "signal 9"
};

class Process {
 public:
  struct Options {
    std::vector<std::string> argv;       // argv[0]: a path, or a name looked up in PATH
    std::vector<std::string> extra_env;  // "KEY=VALUE", added to the parent's environment
    std::string capture_dir;             // where stdout/stderr files go; empty: a fresh temp dir
  };

  // Starts the child. Throws std::runtime_error if it cannot be started.
  explicit Process(Options options);
  explicit Process(std::vector<std::string> argv) : Process(Options{std::move(argv), {}, {}}) {}
  ~Process();  // SIGKILL + reap if still running; removes its own temp dir
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  // True while the child has not been reaped (checks without blocking).
  bool running();
  // Sends `sig` to the child if it is still running; false otherwise.
  bool send_signal(int sig);
  // Waits for the child to exit, at most `timeout`. Empty if it is still running.
  std::optional<ExitStatus> wait_for(std::chrono::milliseconds timeout);
  // SIGKILL and reap (bounded); returns the status.
  std::optional<ExitStatus> kill_and_wait(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Status once reaped.
  const std::optional<ExitStatus>& status() const { return status_; }

  // Everything captured so far.
  std::string stdout_text() const;
  std::string stderr_text() const;
  const std::string& stdout_path() const { return stdout_path_; }
  const std::string& stderr_path() const { return stderr_path_; }

  // Polls stderr until it contains `needle` (searching from byte `from`), at
  // most `timeout`; returns the position of the match. Stops early when the
  // child exits (after one last look).
  std::optional<std::size_t> wait_for_stderr(const std::string& needle, std::chrono::milliseconds timeout,
                                             std::size_t from = 0);

 private:
  bool try_reap(int flags);
  pid_t pid_ = -1;
  std::optional<ExitStatus> status_;
  std::string own_dir_;  // removed in the destructor when we created it
  std::string stdout_path_;
  std::string stderr_path_;
};

// Runs a program to completion (bounded by `timeout`, then SIGKILL).
struct RunResult {
  std::optional<ExitStatus> status;  // empty if it had to be killed
  std::string out;
  std::string err;
};
RunResult run_process(std::vector<std::string> argv, std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace nightshift::test
