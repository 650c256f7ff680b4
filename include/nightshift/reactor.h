// Reactor: the one event-loop thread that owns every probe socket and timer.
//
// epoll for descriptors, a binary heap for timers, an eventfd so other threads
// can post work. Like fping and chrony: no thread per target, no lock per sample.
//
// Thread safety: post() and stop() may be called from any thread. Everything else
// (watch, call_at, cancel, ...) is reactor-thread only, i.e. from callbacks or
// before run() starts. Callbacks run on the reactor thread and must not block.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <queue>
#include <unordered_map>
#include <vector>

#include "nightshift/clock.h"
#include "nightshift/result.h"

namespace nightshift {

class Reactor {
 public:
  using FdCallback = std::function<void(std::uint32_t events)>;  // EPOLLIN, EPOLLOUT, ...
  using Task = std::function<void()>;
  using TimerId = std::uint64_t;

  explicit Reactor(Clock& clock);
  ~Reactor();
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  Clock& clock() const { return clock_; }

  // Watches `fd` for `events`; the callback replaces any earlier one for `fd`.
  Status watch(int fd, std::uint32_t events, FdCallback cb);
  Status modify(int fd, std::uint32_t events);
  // Stops watching; safe to call from inside that fd's own callback. Does not close.
  void unwatch(int fd);

  TimerId call_at(SteadyTime when, Task task);
  TimerId call_after(Duration delay, Task task) { return call_at(clock_.now() + delay, std::move(task)); }
  // Cancelling a timer that already ran or was cancelled is a no-op.
  void cancel(TimerId id);

  // Any thread: runs `task` on the reactor thread soon, in post order.
  void post(Task task);
  // Reactor thread only: runs `task` at the end of this turn, in defer order,
  // before the next wait. No lock and no wake-up write, unlike post(): for a
  // callback that must not run inside its caller (a resolved literal address
  // on every probe run).
  void defer(Task task) { deferred_.push_back(std::move(task)); }

  // Runs until stop(). Returns on the reactor thread.
  void run();
  // Runs ready callbacks and due timers, waiting at most `max_wait`. For tests.
  void run_once(Duration max_wait);
  // Any thread.
  void stop();

  std::size_t watched_fds() const { return fds_.size(); }
  std::size_t pending_timers() const { return timer_tasks_.size(); }

 private:
  void drain_posted();
  void run_deferred();
  void run_due_timers();
  int wait_timeout_ms(Duration max_wait) const;

  Clock& clock_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  bool stopping_ = false;

  struct FdEntry {
    FdCallback cb;
    std::uint64_t generation;  // guards against a stale event after unwatch + rewatch
  };
  std::unordered_map<int, FdEntry> fds_;
  std::uint64_t fd_generation_ = 0;

  struct TimerSlot {
    SteadyTime when;
    TimerId id;
    bool operator>(const TimerSlot& o) const { return when != o.when ? when > o.when : id > o.id; }
  };
  std::priority_queue<TimerSlot, std::vector<TimerSlot>, std::greater<>> timers_;
  std::unordered_map<TimerId, Task> timer_tasks_;
  TimerId next_timer_id_ = 1;

  std::mutex posted_mu_;
  std::vector<Task> posted_;
  std::vector<Task> deferred_;
  std::vector<Task> deferred_batch_;  // reused: the per-turn path does not allocate once warm
};

// A wake-up that keeps only the earliest time asked for: arming it later than
// it is armed is a no-op, earlier moves it. For "wake me at my next deadline"
// loops (scheduler, rules, incidents). Reactor thread only.
class EarliestTimer {
 public:
  EarliestTimer(Reactor& reactor, Reactor::Task on_fire) : reactor_(reactor), on_fire_(std::move(on_fire)) {}
  ~EarliestTimer() {
    if (id_ != 0) reactor_.cancel(id_);
  }
  EarliestTimer(const EarliestTimer&) = delete;
  EarliestTimer& operator=(const EarliestTimer&) = delete;

  void arm(SteadyTime when) {
    if (id_ != 0) {
      if (at_ <= when) return;
      reactor_.cancel(id_);
    }
    at_ = when;
    id_ = reactor_.call_at(when, [this] {
      id_ = 0;
      on_fire_();
    });
  }

 private:
  Reactor& reactor_;
  Reactor::Task on_fire_;
  Reactor::TimerId id_ = 0;
  SteadyTime at_{};
};

}  // namespace nightshift
