// blackbox_exporter's address series, as blackbox computes them (values from a
// run of Debian's blackbox_exporter 0.23 against the same address).
#include <gtest/gtest.h>

#include "probes/probe.h"

namespace nightshift {
namespace {

double value(const Sample& s, const std::string& metric) {
  for (const auto& v : s.series) {
    if (v.metric == metric) return v.value;
  }
  return -1;
}

TEST(ProbeSeriesTest, AddressHashProtocolAndLookupAsBlackboxHasThem) {
  Sample s;
  const auto v4 = Resolver::parse_literal("127.0.0.1");
  ASSERT_TRUE(v4);
  add_address_series(s, std::chrono::microseconds(30), &*v4);
  EXPECT_EQ(value(s, "probe_ip_addr_hash"), 3668918509.0) << "blackbox_exporter's value for 127.0.0.1";
  EXPECT_EQ(value(s, "probe_ip_protocol"), 4);
  EXPECT_DOUBLE_EQ(value(s, "probe_dns_lookup_time_seconds"), 0.00003);
  Sample s6;
  const auto v6 = Resolver::parse_literal("::1");
  ASSERT_TRUE(v6);
  add_address_series(s6, {}, &*v6);
  EXPECT_EQ(value(s6, "probe_ip_protocol"), 6);
  EXPECT_NE(value(s6, "probe_ip_addr_hash"), value(s, "probe_ip_addr_hash"));
  Sample unresolved;
  add_address_series(unresolved, std::chrono::seconds(1), nullptr);
  EXPECT_EQ(unresolved.series.size(), 1u) << "a failed lookup has a lookup time and no address";
}


// An accelerated run's share of a round's packets (ProbeRequest::span).
TEST(RunPacketsTest, AnAcceleratedRunSendsItsShareOfTheIntervalsPacketsAtLeastOne) {
  using namespace std::chrono_literals;
  EXPECT_EQ(run_packets(3, 10s, Duration::zero()), 3) << "a scheduled run: all of them";
  EXPECT_EQ(run_packets(3, 10s, 2s), 1);
  EXPECT_EQ(run_packets(3, 10s, 2999ms), 1);
  EXPECT_EQ(run_packets(3, 10s, 3400ms), 2);
  EXPECT_EQ(run_packets(10, 10s, 2s), 2);
  EXPECT_EQ(run_packets(1, 60s, 12s), 1);
  EXPECT_EQ(run_packets(3, 10s, 20s), 3) << "never more than the round's own";
  EXPECT_EQ(run_packets(0, 10s, 2s), 1);
}

}  // namespace
}  // namespace nightshift
