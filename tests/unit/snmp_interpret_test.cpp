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

Varbind bytes(const std::string& oid, const std::string& v) {
  Varbind b = text(oid, v);
  b.bytes = v;
  return b;
}

// Columns in the engine's order: admin, oper, inDiscards, inErrors, outDiscards,
// outErrors, ifName, hcIn, hcOut, highSpeed, alias, descr, then the rest of
// snmp_exporter's if_mib (index 12 on: ifIndex, ifType, ifMtu, ifSpeed,
// ifPhysAddress, ...).
std::vector<std::vector<Varbind>> table(const SnmpOptions& o = SnmpOptions{}) {
  std::vector<std::vector<Varbind>> c(interface_column_count(o));
  c[0] = {num("1.3.6.1.2.1.2.2.1.7.1", 1), num("1.3.6.1.2.1.2.2.1.7.2", 1), num("1.3.6.1.2.1.2.2.1.7.3", 2)};
  c[1] = {num("1.3.6.1.2.1.2.2.1.8.1", 1), num("1.3.6.1.2.1.2.2.1.8.2", 2), num("1.3.6.1.2.1.2.2.1.8.3", 2)};
  c[6] = {text("1.3.6.1.2.1.31.1.1.1.1.1", "eth0"), text("1.3.6.1.2.1.31.1.1.1.1.2", "eth1"),
          text("1.3.6.1.2.1.31.1.1.1.1.3", "mgmt0")};
  c[7] = {num("1.3.6.1.2.1.31.1.1.1.6.1", 1e12)};
  c[10] = {text("1.3.6.1.2.1.31.1.1.1.18.2", "uplink to core")};
  c[11] = {text("1.3.6.1.2.1.2.2.1.2.1", "Intel 82599 port 0"), text("1.3.6.1.2.1.2.2.1.2.2", "eth1")};
  if (c.size() > 16) {
    c[13] = {num("1.3.6.1.2.1.2.2.1.3.1", 6), num("1.3.6.1.2.1.2.2.1.3.2", 9999)};
    c[16] = {bytes("1.3.6.1.2.1.2.2.1.6.1", std::string("\x02\xfc\x00\x00\x00\x01", 6)),
             bytes("1.3.6.1.2.1.2.2.1.6.2", "")};
  }
  return c;
}

const LabeledValue* find(const PollResult& r, const std::string& metric, const std::string& if_index) {
  for (const auto& s : r.series) {
    if (s.metric != metric) continue;
    for (const auto& [k, v] : s.labels) {
      if (k == "ifIndex" && v == if_index) return &s;
    }
  }
  return nullptr;
}

std::string label(const LabeledValue& s, const std::string& name) {
  for (const auto& [k, v] : s.labels) {
    if (k == name) return v;
  }
  return "<absent>";
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
    if (s.metric == "ifOperStatus" && label(s, "ifName") == "eth1") alias = label(s, "ifAlias") == "uplink to core";
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

// snmp_exporter's if_mib: sysUpTime in ticks, every interface series labelled
// ifIndex, ifName, ifAlias and ifDescr (issue 21: ifOperStatus{ifDescr="eth0"}
// found nothing), ifType as ifType_info, ifPhysAddress as a label.
TEST(SnmpInterpretTest, SeriesCarrySnmpExporterNamesLabelsAndUnits) {
  SnmpOptions o;
  const PollResult r = interpret(o, {num("1.3.6.1.2.1.1.3.0", 117400), num("1.3.6.1.2.1.2.1.0", 3)}, table(o), -1);
  const LabeledValue* uptime = nullptr;
  const LabeledValue* if_number = nullptr;
  for (const auto& s : r.series) {
    if (s.metric == "sysUpTime") uptime = &s;
    if (s.metric == "ifNumber") if_number = &s;
  }
  ASSERT_NE(uptime, nullptr);
  EXPECT_EQ(uptime->value, 117400) << "ticks, as snmp_exporter: sysUpTime/100 is 1174 s";
  EXPECT_DOUBLE_EQ(value(r, "uptime_seconds"), 1174);
  ASSERT_NE(if_number, nullptr);
  EXPECT_EQ(if_number->value, 3);
  const LabeledValue* oper = find(r, "ifOperStatus", "1");
  ASSERT_NE(oper, nullptr);
  EXPECT_EQ(label(*oper, "ifDescr"), "Intel 82599 port 0");
  EXPECT_EQ(label(*oper, "ifName"), "eth0");
  EXPECT_EQ(label(*oper, "ifAlias"), "");
  EXPECT_EQ(oper->labels.size(), 4u) << "ifIndex, ifName, ifAlias, ifDescr: snmp_exporter's set";
  const LabeledValue* type = find(r, "ifType_info", "1");
  ASSERT_NE(type, nullptr);
  EXPECT_EQ(label(*type, "ifType"), "ethernetCsmacd");
  EXPECT_EQ(type->value, 1);
  const LabeledValue* unknown_type = find(r, "ifType_info", "2");
  ASSERT_NE(unknown_type, nullptr);
  EXPECT_EQ(label(*unknown_type, "ifType"), "9999") << "an unnamed enum value is its number";
  const LabeledValue* mac = find(r, "ifPhysAddress", "1");
  ASSERT_NE(mac, nullptr);
  EXPECT_EQ(label(*mac, "ifPhysAddress"), "02:FC:00:00:00:01");
  ASSERT_NE(find(r, "ifPhysAddress", "2"), nullptr);
  EXPECT_EQ(label(*find(r, "ifPhysAddress", "2"), "ifPhysAddress"), "00:00:00:00:00:00") << "none, as snmp_exporter shows lo's";
  EXPECT_EQ(find(r, "ifName", "1"), nullptr) << "names are labels, not series";
  EXPECT_EQ(find(r, "ifDescr", "1"), nullptr);
}

TEST(SnmpInterpretTest, BasicInterfaceMetricsWalkAThirdOfTheColumns) {
  SnmpOptions full, basic;
  basic.full_if_mib = false;
  EXPECT_EQ(interface_column_count(full), 40u) << "if_mib: 37 ifTable and ifXTable value columns and 3 of names";
  EXPECT_EQ(interface_column_count(basic), 12u);
  SnmpOptions off;
  off.interfaces_enabled = false;
  EXPECT_EQ(interface_column_count(off), 0u);
  const PollResult r = interpret(basic, {}, table(basic), -1);
  EXPECT_NE(find(r, "ifOperStatus", "2"), nullptr);
  EXPECT_EQ(label(*find(r, "ifOperStatus", "2"), "ifDescr"), "eth1");
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
