// LoopbackService: a listening TCP socket on 127.0.0.1 that tests use as the
// service an agent probes. It never accepts: the kernel completes handshakes
// from the backlog, which is all a TCP probe needs. stop() closes it, so
// connects are refused; start() listens again on the same port.
//
// Thread safety: one thread per object.
#pragma once

namespace nightshift::test {

class LoopbackService {
 public:
  // Listens at once on 127.0.0.1:`port` (0: an ephemeral port); see ok().
  explicit LoopbackService(int port = 0);
  ~LoopbackService();
  LoopbackService(const LoopbackService&) = delete;
  LoopbackService& operator=(const LoopbackService&) = delete;

  // Listens (again) on the same port; false if it cannot.
  bool start();
  // Closes the socket: connects are refused from now on.
  void stop();
  bool ok() const { return fd_ >= 0; }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// A port on 127.0.0.1 nothing listens on right now (bound, then closed).
int free_loopback_port();

}  // namespace nightshift::test
