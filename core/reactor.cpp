#include "nightshift/reactor.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace nightshift {

Reactor::Reactor(Clock& clock) : clock_(clock) {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_fd_ < 0 || wake_fd_ < 0) {
    throw std::runtime_error(std::string("reactor: cannot create epoll/eventfd: ") + std::strerror(errno));
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 0;  // generation 0 and fd field unused: the wake fd
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
}

Reactor::~Reactor() {
  if (wake_fd_ >= 0) ::close(wake_fd_);
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
}

// The epoll payload packs the fd (low 32 bits) and a generation (high 32 bits),
// so an event already returned by epoll_wait for an fd that was unwatched and
// re-used within the same batch is recognised as stale and dropped.
static std::uint64_t pack(int fd, std::uint64_t generation) {
  return (generation << 32) | static_cast<std::uint32_t>(fd);
}

Status Reactor::watch(int fd, std::uint32_t events, FdCallback cb) {
  const std::uint64_t generation = (++fd_generation_ & 0xffffffffu) | 1u;  // never 0 (wake fd)
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = pack(fd, generation);
  auto it = fds_.find(fd);
  const int op = it == fds_.end() ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
  if (::epoll_ctl(epoll_fd_, op, fd, &ev) != 0) {
    return Error::io(std::string("epoll_ctl: ") + std::strerror(errno));
  }
  fds_[fd] = FdEntry{std::move(cb), generation};
  return {};
}

Status Reactor::modify(int fd, std::uint32_t events) {
  auto it = fds_.find(fd);
  if (it == fds_.end()) return Error::not_found("fd not watched");
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = pack(fd, it->second.generation);
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev) != 0) {
    return Error::io(std::string("epoll_ctl: ") + std::strerror(errno));
  }
  return {};
}

void Reactor::unwatch(int fd) {
  auto it = fds_.find(fd);
  if (it == fds_.end()) return;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  fds_.erase(it);
}

Reactor::TimerId Reactor::call_at(SteadyTime when, Task task) {
  const TimerId id = next_timer_id_++;
  timers_.push(TimerSlot{when, id});
  timer_tasks_.emplace(id, std::move(task));
  return id;
}

void Reactor::cancel(TimerId id) { timer_tasks_.erase(id); }

void Reactor::post(Task task) {
  {
    std::lock_guard<std::mutex> lock(posted_mu_);
    posted_.push_back(std::move(task));
  }
  const std::uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
}

void Reactor::stop() {
  post([this] { stopping_ = true; });
}

void Reactor::drain_posted() {
  std::uint64_t count = 0;
  [[maybe_unused]] ssize_t n = ::read(wake_fd_, &count, sizeof count);
  std::vector<Task> batch;
  {
    std::lock_guard<std::mutex> lock(posted_mu_);
    batch.swap(posted_);
  }
  for (auto& task : batch) task();
}

void Reactor::run_deferred() {
  // Tasks deferred by these run on the next turn: a task that defers itself cannot spin here.
  deferred_batch_.swap(deferred_);
  for (auto& task : deferred_batch_) task();
  deferred_batch_.clear();
}

void Reactor::run_due_timers() {
  const SteadyTime now = clock_.now();
  // Bounded: timers added by these callbacks for "now" run on the next turn,
  // so a callback that re-arms itself at once cannot starve descriptors.
  std::size_t budget = timers_.size();
  while (!timers_.empty() && budget-- > 0) {
    const TimerSlot top = timers_.top();
    if (top.when > now) break;
    timers_.pop();
    auto it = timer_tasks_.find(top.id);
    if (it == timer_tasks_.end()) continue;  // cancelled
    Task task = std::move(it->second);
    timer_tasks_.erase(it);
    task();
  }
  // Drop cancelled slots at the top so the wait below is not cut short by them.
  while (!timers_.empty() && !timer_tasks_.count(timers_.top().id)) timers_.pop();
}

int Reactor::wait_timeout_ms(Duration max_wait) const {
  if (!deferred_.empty()) return 0;
  Duration wait = max_wait;
  if (!timers_.empty()) {
    const Duration until = timers_.top().when - clock_.now();
    if (until < wait) wait = until;
  }
  if (wait <= Duration::zero()) return 0;
  // Round up so that we never wake just before a timer and spin.
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(wait).count();
  return static_cast<int>(ms > 60'000 ? 60'000 : ms);
}

void Reactor::run_once(Duration max_wait) {
  constexpr int kMaxEvents = 256;
  epoll_event events[kMaxEvents];
  const int n = ::epoll_wait(epoll_fd_, events, kMaxEvents, wait_timeout_ms(max_wait));
  for (int i = 0; i < n; ++i) {
    const std::uint64_t data = events[i].data.u64;
    if (data == 0) {
      drain_posted();
      continue;
    }
    const int fd = static_cast<int>(data & 0xffffffffu);
    const std::uint64_t generation = data >> 32;
    auto it = fds_.find(fd);
    if (it == fds_.end() || it->second.generation != generation) continue;  // stale
    // Copy: the callback may unwatch (and so destroy) its own entry.
    FdCallback cb = it->second.cb;
    cb(events[i].events);
  }
  run_deferred();
  run_due_timers();
  run_deferred();
}

void Reactor::run() {
  stopping_ = false;
  while (!stopping_) run_once(std::chrono::seconds(60));
}

}  // namespace nightshift
