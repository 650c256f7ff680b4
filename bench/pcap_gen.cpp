// Writes a synthetic capture for bench/pcap_bench.sh: PACKETS Ethernet frames
// (snaplen 128, as the live watch captures) over SECONDS of capture time,
// between hosts in 198.51.100.0/24 and 203.0.113.0/24: TCP connections (SYN,
// SYN-ACK for most, data segments with ~1 % retransmitted, some RSTs), UDP,
// and ICMP destination unreachable from a few routers. Deterministic.
//
//   pcap_gen OUT.pcap [PACKETS] [SECONDS]
#include <pcap/pcap.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include "probes/pcap/pcap_frames.h"

using namespace nightshift::pcap;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: pcap_gen OUT.pcap [PACKETS] [SECONDS]\n");
    return 2;
  }
  const long packets = argc > 2 ? std::atol(argv[2]) : 1000000;
  const double seconds = argc > 3 ? std::atof(argv[3]) : 100.0;
  pcap_t* dead = pcap_open_dead(DLT_EN10MB, 128);
  pcap_dumper_t* out = pcap_dump_open(dead, argv[1]);
  if (!out) {
    std::fprintf(stderr, "pcap_gen: %s\n", pcap_geterr(dead));
    return 1;
  }
  std::mt19937 rng(42);
  auto host = [&](const char* net, int n) {
    return frames::ip((std::string(net) + std::to_string(1 + static_cast<int>(rng() % static_cast<unsigned>(n)))).c_str());
  };
  const long long start_us = 1795000000LL * 1000000;
  const double step_us = seconds * 1e6 / static_cast<double>(packets);
  std::uint32_t seq = 1;
  std::vector<std::uint8_t> last_data;
  struct Syn {
    IpAddress a, b;
    std::uint16_t port;
  };
  std::vector<Syn> unanswered;  // most SYNs get their SYN-ACK a few packets later
  for (long i = 0; i < packets; ++i) {
    const unsigned kind = rng() % 100;
    const auto a = host("198.51.100.", 250), b = host("203.0.113.", 250);
    const auto port = static_cast<std::uint16_t>(1024 + rng() % 60000);
    std::vector<std::uint8_t> f;
    if (kind < 60) {  // data
      if (rng() % 100 == 0 && !last_data.empty()) {
        f = last_data;  // a retransmission
      } else {
        f = frames::tcp(a, b, port, 443, tcp_flag::kAck, seq, 100 + rng() % 1300);
        seq += 1500;
        last_data = f;
      }
    } else if (kind < 75) {
      f = frames::tcp(b, a, 443, port, tcp_flag::kAck, seq, 0);
    } else if (kind < 82) {
      f = frames::tcp(a, b, port, 443, tcp_flag::kSyn, seq);
      unanswered.push_back({a, b, port});
    } else if (kind < 88 && !unanswered.empty()) {
      const Syn s = unanswered.back();
      unanswered.pop_back();
      f = frames::tcp(s.b, s.a, 443, s.port, tcp_flag::kSyn | tcp_flag::kAck, seq);
    } else if (kind < 88) {
      f = frames::tcp(b, a, 443, port, tcp_flag::kSyn | tcp_flag::kAck, seq);
    } else if (kind < 90) {
      f = frames::tcp(b, a, 443, port, tcp_flag::kRst, seq);
    } else if (kind < 99) {
      f = frames::udp(a, b, port, 53, 40 + rng() % 400);
    } else {
      f = frames::unreachable(host("198.51.100.", 4), a, a, b);
    }
    pcap_pkthdr h{};
    const long long us = start_us + static_cast<long long>(static_cast<double>(i) * step_us);
    h.ts.tv_sec = us / 1000000;
    h.ts.tv_usec = us % 1000000;
    h.len = static_cast<bpf_u_int32>(f.size());
    h.caplen = h.len < 128 ? h.len : 128;
    pcap_dump(reinterpret_cast<u_char*>(out), &h, f.data());
  }
  pcap_dump_close(out);
  pcap_close(dead);
  return 0;
}
