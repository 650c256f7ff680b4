// SNMP poll interpretation without a network: rows from walked columns,
// selection, admin-down versus outage, reboots, custom OIDs.
#include "probes/snmp/snmp.h"

#include <gtest/gtest.h>

#include <map>

namespace nightshift::snmp {
namespace {

Varbind num(const std::string& oid, double v) {
  Varbind b;
  b.oid = parse_oid(oid);
  b.kind = Varbind::Kind::kNumber;
  b.number = v;
  return b;
}
Varbind text(const std::string& oid, const std::string& v) {
  Varbind b;
  b.oid = parse_oid(oid);
  b.kind = Varbind::Kind::kText;
  b.text = v;
  return b;
}

double value(const PollResult& r, const std::string& name) {
  for (const auto& [k, v] : r.values) {
    if (k == name) return v;
  }
  return -1;
}

// Columns in the engine's order: admin, oper, inDiscards, inErrors, outDiscards,
// outErrors, ifName, hcIn, hcOut, highSpeed, alias.
std::vector<std::vector<Varbind>> table() {
  std::vector<std::vector<Varbind>> c(11);
  c[0] = {num("1.3.6.1.2.1.2.2.1.7.1", 1), num("1.3.6.1.2.1.2.2.1.7.2", 1), num("1.3.6.1.2.1.2.2.1.7.3", 2)};
  c[1] = {num("1.3.6.1.2.1.2.2.1.8.1", 1), num("1.3.6.1.2.1.2.2.1.8.2", 2), num("1.3.6.1.2.1.2.2.1.8.3", 2)};
  c[6] = {text("1.3.6.1.2.1.31.1.1.1.1.1", "eth0"), text("1.3.6.1.2.1.31.1.1.1.1.2", "eth1"),
          text("1.3.6.1.2.1.31.1.1.1.1.3", "mgmt0")};
  c[7] = {num("1.3.6.1.2.1.31.1.1.1.6.1", 1e12)};
  c[10] = {text("1.3.6.1.2.1.31.1.1.1.18.2", "uplink to core")};
  return c;
}

TEST(SnmpInterpretTest, AdminUpOperDownIsAnOutageAdminDownIsNot) {
  SnmpOptions o;
  const PollResult r = interpret(o, {num("1.3.6.1.2.1.1.3.0", 12345)}, table(), -1);
  EXPECT_EQ(value(r, "interfaces"), 3);
  EXPECT_EQ(value(r, "interfaces_down"), 1) << "eth1 only; mgmt0 is admin down";
  EXPECT_DOUBLE_EQ(value(r, "uptime_seconds"), 123.45);
  EXPECT_EQ(value(r, "rebooted"), 0);
  bool alias = false, counter = false;
  for (const auto& s : r.series) {
    if (s.metric == "ifOperStatus" && s.labels[1].second == "eth1") alias = s.labels[2].second == "uplink to core";
    if (s.metric == "ifHCInOctets") counter = s.type == LabeledValue::Type::kCounter && s.value == 1e12;
  }
  EXPECT_TRUE(alias);
  EXPECT_TRUE(counter);
}

TEST(SnmpInterpretTest, SelectionByNamePatternOrIndex) {
  SnmpOptions o;
  o.interface_patterns = {"eth*"};
  EXPECT_EQ(value(interpret(o, {}, table(), -1), "interfaces"), 2);
  o.interface_patterns.clear();
  o.interface_indexes = {3};
  const PollResult r = interpret(o, {}, table(), -1);
  EXPECT_EQ(value(r, "interfaces"), 1);
  EXPECT_EQ(value(r, "interfaces_down"), 0);
}

TEST(SnmpInterpretTest, UptimeGoingBackIsAReboot) {
  SnmpOptions o;
  EXPECT_EQ(value(interpret(o, {num("1.3.6.1.2.1.1.3.0", 500)}, table(), 86400.0), "rebooted"), 1);
  EXPECT_EQ(value(interpret(o, {num("1.3.6.1.2.1.1.3.0", 9000000)}, table(), 86400.0), "rebooted"), 0);
}

TEST(SnmpInterpretTest, CustomOidsGetAndWalkWithScaleAndIndexLabel) {
  SnmpOptions o;
  o.interfaces_enabled = false;
  o.oids = {{"cpu_load", "1.3.6.1.4.1.2021.10.1.5.1", false, false, "index", 1.0},
            {"rx_power_dbm", "1.3.6.1.4.1.9.9.91.1.1.1.1.4", true, false, "sensor", 0.1}};
  std::vector<std::vector<Varbind>> cols = {
      {num("1.3.6.1.4.1.9.9.91.1.1.1.1.4.1001", -42), num("1.3.6.1.4.1.9.9.91.1.1.1.1.4.1002", -37)}};
  const PollResult r = interpret(o, {num("1.3.6.1.2.1.1.3.0", 1), num("1.3.6.1.4.1.2021.10.1.5.1", 17)}, cols, -1);
  std::map<std::string, double> got;
  for (const auto& s : r.series) got[s.metric + (s.labels.empty() ? "" : "/" + s.labels[0].second)] = s.value;
  EXPECT_EQ(got["cpu_load"], 17);
  EXPECT_DOUBLE_EQ(got["rx_power_dbm/1001"], -4.2);
  EXPECT_DOUBLE_EQ(got["rx_power_dbm/1002"], -3.7);
  EXPECT_EQ(value(r, "interfaces"), -1) << "interfaces off: not reported";
}

TEST(SnmpInterpretTest, OidTextIsStrict) {
  EXPECT_EQ(parse_oid("1.3.6.1.2.1"), (std::vector<std::uint32_t>{1, 3, 6, 1, 2, 1}));
  EXPECT_EQ(parse_oid(".1.3.6"), (std::vector<std::uint32_t>{1, 3, 6}));
  EXPECT_TRUE(parse_oid("1.3.").empty());
  EXPECT_TRUE(parse_oid("ifOperStatus").empty());
  EXPECT_TRUE(parse_oid("1..3").empty());
  EXPECT_TRUE(parse_oid("1.99999999999").empty());
  EXPECT_EQ(oid_string({1, 3, 6, 1}), "1.3.6.1");
}

}  // namespace
}  // namespace nightshift::snmp
