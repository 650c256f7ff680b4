// The one-line path trace finding that goes into an incident's timeline.
#include <gtest/gtest.h>

#include "probes/icmp/icmp.h"

namespace nightshift::icmp {
namespace {

Address v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
  Address x;
  x.family = Family::kIPv4;
  x.bytes = {a, b, c, d};
  return x;
}

Hop hop(int ttl, std::optional<Address> from, double rtt = 0) {
  Hop h;
  h.ttl = ttl;
  h.from = from;
  h.answer = from ? Hop::Answer::kTimeExceeded : Hop::Answer::kNone;
  h.rtt_seconds = rtt;
  return h;
}

TEST(TraceTextTest, NamesTheLastAnsweringHop) {
  TraceReport r;
  r.address = "203.0.113.9";
  r.hops = {hop(1, v4(198, 51, 100, 1), 0.00012), hop(2, std::nullopt), hop(3, std::nullopt)};
  r.last_answering = 1;
  EXPECT_EQ(describe_trace(r),
            "path to 203.0.113.9: 1 198.51.100.1 0.12ms, 2 *, 3 *; last answering hop: TTL 1 (198.51.100.1); "
            "destination not reached");
}

TEST(TraceTextTest, ReachedAndNothingAnswered) {
  TraceReport reached;
  reached.address = "198.51.100.2";
  reached.hops = {hop(1, v4(198, 51, 100, 2), 0.001)};
  reached.reached = true;
  reached.last_answering = 1;
  EXPECT_EQ(describe_trace(reached), "path to 198.51.100.2: 1 198.51.100.2 1.00ms; destination reached");
  TraceReport silent;
  silent.address = "198.51.100.2";
  silent.hops = {hop(1, std::nullopt)};
  // Only what is known: no culprit is guessed from silence.
  EXPECT_EQ(describe_trace(silent), "path to 198.51.100.2: 1 *; no hop answered within 1 hop");
  silent.hops = {hop(1, std::nullopt), hop(2, std::nullopt), hop(3, std::nullopt)};
  EXPECT_EQ(describe_trace(silent), "path to 198.51.100.2: 1 *, 2 *, 3 *; no hop answered within 3 hops");
}

}  // namespace
}  // namespace nightshift::icmp
