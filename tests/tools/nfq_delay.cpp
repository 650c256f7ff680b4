// nfq_delay: holds every packet an nftables `queue num N bypass` rule hands it
// for a fixed delay, then lets it go — latency injection for fault tests on a
// kernel without sch_netem. Runs in the namespace whose rule queues packets,
// for a bounded time, and exits (with `bypass`, packets then flow again).
//
//   nfq_delay QUEUE DELAY_MS SECONDS
//
// Prints "ready" on stderr once bound, and a count of packets at exit.
// netinet before the linux headers, which would otherwise redefine in_addr.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>

#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>

namespace {
using Clock = std::chrono::steady_clock;

struct Held {
  std::uint32_t id;
  Clock::time_point release;
};

std::deque<Held> g_held;
std::chrono::milliseconds g_delay{0};
unsigned long g_packets = 0;

int on_packet(nfq_q_handle*, nfgenmsg*, nfq_data* data, void*) {
  const nfqnl_msg_packet_hdr* h = nfq_get_msg_packet_hdr(data);
  if (h != nullptr) {
    g_held.push_back({ntohl(h->packet_id), Clock::now() + g_delay});
    ++g_packets;
  }
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: nfq_delay QUEUE DELAY_MS SECONDS\n");
    return 2;
  }
  const int queue = std::atoi(argv[1]);
  g_delay = std::chrono::milliseconds(std::atoi(argv[2]));
  const auto end = Clock::now() + std::chrono::seconds(std::atoi(argv[3]));
  nfq_handle* h = nfq_open();
  if (h == nullptr) {
    std::perror("nfq_open");
    return 1;
  }
  nfq_q_handle* qh = nfq_create_queue(h, static_cast<std::uint16_t>(queue), &on_packet, nullptr);
  if (qh == nullptr) {
    std::perror("nfq_create_queue");
    return 1;
  }
  nfq_set_mode(qh, NFQNL_COPY_META, 0);  // the verdict needs only the id: no payload crosses
  nfq_set_queue_maxlen(qh, 4096);
  const int fd = nfq_fd(h);
  std::fprintf(stderr, "ready\n");
  alignas(8) char buf[65536];
  while (Clock::now() < end) {
    int wait_ms = 100;
    if (!g_held.empty()) {
      wait_ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(g_held.front().release - Clock::now()).count());
      wait_ms = std::max(0, std::min(wait_ms, 100));
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, wait_ms) > 0) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n > 0) nfq_handle_packet(h, buf, static_cast<int>(n));
    }
    const auto now = Clock::now();
    while (!g_held.empty() && g_held.front().release <= now) {
      nfq_set_verdict(qh, g_held.front().id, NF_ACCEPT, 0, nullptr);
      g_held.pop_front();
    }
  }
  for (const auto& held : g_held) nfq_set_verdict(qh, held.id, NF_ACCEPT, 0, nullptr);
  std::fprintf(stderr, "delayed %lu packets\n", g_packets);
  nfq_destroy_queue(qh);
  nfq_close(h);
  return 0;
}
