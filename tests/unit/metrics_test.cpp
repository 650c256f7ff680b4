// AgentMetrics: labeled series from Sample::series, as SNMP interfaces use them.
#include "serve/metrics.h"

#include <gtest/gtest.h>

namespace nightshift {
namespace {

std::shared_ptr<const Target> one_target() {
  auto t = std::make_shared<Target>();
  t->name = "core1";
  t->address = "127.0.0.1";
  t->group = "core";
  t->site = "lab";
  ProbeSpec p;
  p.kind = "snmp";
  p.name = "snmp";
  t->probes.push_back(p);
  return t;
}

Sample sample_with(std::vector<LabeledValue> series) {
  Sample s;
  s.target = "core1";
  s.probe = "snmp";
  s.kind = "snmp";
  s.ok = true;
  s.series = std::move(series);
  return s;
}

TEST(MetricsTest, LabeledGaugesCarryTheProbeLabelsAndTheirOwn) {
  AgentMetrics m("edge1");
  m.sync_targets({one_target()});
  m.record(sample_with({{"ifOperStatus", {{"ifIndex", "2"}, {"ifName", "eth0"}}, 1, LabeledValue::Type::kGauge}}));
  const std::string text = m.render();
  EXPECT_NE(text.find("ifOperStatus{agent=\"edge1\",group=\"core\",ifIndex=\"2\",ifName=\"eth0\",kind=\"snmp\","
                      "probe=\"snmp\",site=\"lab\",target=\"core1\"} 1"),
            std::string::npos)
      << text;
}

TEST(MetricsTest, SeriesMissingFromTheNextSampleAreRemoved) {
  AgentMetrics m("edge1");
  m.sync_targets({one_target()});
  m.record(sample_with({{"ifOperStatus", {{"ifIndex", "2"}}, 1, LabeledValue::Type::kGauge},
                        {"ifOperStatus", {{"ifIndex", "3"}}, 2, LabeledValue::Type::kGauge}}));
  m.record(sample_with({{"ifOperStatus", {{"ifIndex", "3"}}, 1, LabeledValue::Type::kGauge}}));
  const std::string text = m.render();
  EXPECT_EQ(text.find("ifIndex=\"2\""), std::string::npos) << text;
  EXPECT_NE(text.find("ifIndex=\"3\""), std::string::npos) << text;
  Sample failed = sample_with({});
  failed.ok = false;
  failed.reason = FailureReason::kTimeout;
  m.record(failed);
  EXPECT_EQ(m.render().find("ifOperStatus{"), std::string::npos);
}

TEST(MetricsTest, CountersFollowTheDeviceAndRestartOnReset) {
  AgentMetrics m("edge1");
  m.sync_targets({one_target()});
  auto counter = [](double v) {
    return std::vector<LabeledValue>{{"ifHCInOctets", {{"ifIndex", "2"}}, v, LabeledValue::Type::kCounter}};
  };
  m.record(sample_with(counter(1000)));
  m.record(sample_with(counter(1500)));
  std::string text = m.render();
  EXPECT_NE(text.find("# TYPE ifHCInOctets counter"), std::string::npos) << text;
  EXPECT_NE(text.find("} 1500"), std::string::npos) << text;
  m.record(sample_with(counter(40)));  // the device rebooted
  text = m.render();
  EXPECT_NE(text.find("} 40"), std::string::npos) << text;
  EXPECT_EQ(text.find("} 1500"), std::string::npos) << text;
}

}  // namespace
}  // namespace nightshift
