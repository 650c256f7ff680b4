// /probe and /snmp: the latest result of a probe in blackbox_exporter's and
// snmp_exporter's formats, picked by target (name, address, address:port) and
// module (probe name or kind), with the exporters' status codes.
#include "serve/exporter_view.h"

#include "serve/metrics.h"

#include <gtest/gtest.h>

#include "probes/snmp/snmp.h"
#include "probes/tcp/tcp.h"

namespace nightshift {
namespace {

ProbeSpec tcp_probe(int port) {
  auto o = std::make_shared<tcp::TcpOptions>();
  o->port = static_cast<std::uint16_t>(port);
  return {"tcp", "tcp_" + std::to_string(port), std::chrono::seconds(10), std::chrono::seconds(1), o};
}
ProbeSpec snmp_probe(int port) {
  auto o = std::make_shared<snmp::SnmpOptions>();
  o->port = port;
  return {"snmp", "snmp", std::chrono::seconds(10), std::chrono::seconds(1), o};
}
ProbeSpec icmp_probe() { return {"icmp", "icmp", std::chrono::seconds(10), std::chrono::seconds(1), nullptr}; }

std::shared_ptr<const Target> target(const std::string& name, const std::string& address, std::vector<ProbeSpec> probes) {
  auto t = std::make_shared<Target>();
  t->name = name;
  t->address = address;
  t->probes = std::move(probes);
  return t;
}

Sample sample(const std::string& target, const std::string& probe, bool ok, double seconds = 0.00065) {
  Sample s;
  s.target = target;
  s.probe = probe;
  s.kind = probe.substr(0, probe.find('_'));  // tcp_22: tcp
  s.ok = ok;
  s.reason = ok ? FailureReason::kNone : FailureReason::kTimeout;
  s.detail = ok ? "" : "no SNMP answer";
  s.duration = std::chrono::duration_cast<Duration>(std::chrono::duration<double>(seconds));
  return s;
}

HttpResponse get(const ExporterView& v, const std::string& path, const std::string& query) {
  HttpRequest r;
  r.method = "GET";
  r.path = path;
  r.query = query;
  return path == "/snmp" ? v.snmp(r) : v.probe(r);
}

struct ExporterViewTest : ::testing::Test {
  // The view serves what the metric records hold, as in the agent.
  ProbeFamilies results{"edge1", {}};
  ExporterView view{results};
  void sync(const std::vector<std::shared_ptr<const Target>>& targets) {
    results.sync_targets(targets);
    view.sync_targets(targets);
  }
  void record(const Sample& s) {
    results.record(s);
    view.record(s);
  }
  void SetUp() override {
    sync({target("core-ams1", "192.0.2.1", {icmp_probe(), tcp_probe(22), tcp_probe(443), snmp_probe(161)}),
                       target("edge", "192.0.2.2", {icmp_probe()}),
                       target("also-core", "192.0.2.1", {tcp_probe(8080)})});
  }
};

TEST_F(ExporterViewTest, NotConfiguredIs404AndNotMeasuredYetIs503) {
  EXPECT_EQ(get(view, "/probe", "target=nowhere&module=icmp").status, 404);
  EXPECT_NE(get(view, "/probe", "target=nowhere").body.find("nowhere"), std::string::npos);
  EXPECT_EQ(get(view, "/probe", "").status, 400);
  EXPECT_EQ(get(view, "/probe", "target=core-ams1&module=icmp").status, 503);
  EXPECT_EQ(get(view, "/probe", "target=192.0.2.1:9999&module=tcp_connect").status, 404);
}

TEST_F(ExporterViewTest, BlackboxFormatWithTheSeriesOfTheSample) {
  Sample s = sample("core-ams1", "icmp", true);
  s.series.push_back({"probe_icmp_duration_seconds", {{"phase", "resolve"}}, 0.00001, LabeledValue::Type::kGauge});
  s.series.push_back({"probe_ip_protocol", {}, 4, LabeledValue::Type::kGauge});
  s.series.push_back({"probe_icmp_duration_seconds", {{"phase", "rtt"}}, 0.0005, LabeledValue::Type::kGauge});
  record(s);
  const HttpResponse r = get(view, "/probe", "target=core-ams1&module=icmp");
  ASSERT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("\nprobe_success 1\n"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("\nprobe_duration_seconds 0.00065\n"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("# TYPE probe_icmp_duration_seconds gauge\nprobe_icmp_duration_seconds{phase=\"resolve\"} 1e-05\n"
                        "probe_icmp_duration_seconds{phase=\"rtt\"} 0.0005\n"),
            std::string::npos)
      << "one family's samples together, as the exposition format wants\n" << r.body;
  EXPECT_EQ(r.body.find("target="), std::string::npos) << "no nightshift labels: instance comes from relabelling";
  // By address, as a blackbox target list names it.
  EXPECT_EQ(get(view, "/probe", "target=192.0.2.1&module=icmp").body, r.body);
}

TEST_F(ExporterViewTest, AddressAndPortPickTheTcpProbeAcrossTargets) {
  record(sample("core-ams1", "tcp_22", true));
  record(sample("core-ams1", "tcp_443", false));
  record(sample("also-core", "tcp_8080", true, 0.25));
  EXPECT_NE(get(view, "/probe", "target=192.0.2.1:443&module=tcp_connect").body.find("probe_success 0"), std::string::npos);
  EXPECT_NE(get(view, "/probe", "target=192.0.2.1:22&module=ssh_banner").body.find("probe_success 1"), std::string::npos)
      << "a module naming no kind narrows nothing";
  EXPECT_NE(get(view, "/probe", "target=192.0.2.1:8080&module=tcp_connect").body.find("probe_duration_seconds 0.25"),
            std::string::npos)
      << "the other target at that address has the port";
  EXPECT_NE(get(view, "/probe", "target=core-ams1&module=tcp_443").body.find("probe_success 0"), std::string::npos)
      << "module as a probe name";
  EXPECT_EQ(get(view, "/probe", "target=[192.0.2.1]:22&module=tcp").status, 200);
}

TEST_F(ExporterViewTest, SnmpFormatAndA500WhenThePollFailedAsSnmpExporter) {
  Sample s = sample("core-ams1", "snmp", true);
  s.series.push_back({"sysUpTime", {}, 117400, LabeledValue::Type::kGauge});
  s.series.push_back({"ifOperStatus", {{"ifIndex", "1"}, {"ifName", "eth0"}, {"ifAlias", "a \"quoted\" \\ alias"},
                                       {"ifDescr", "eth0"}}, 1, LabeledValue::Type::kGauge});
  s.series.push_back({"ifHCInOctets", {{"ifIndex", "1"}}, 1e12, LabeledValue::Type::kCounter});
  record(s);
  HttpResponse r = get(view, "/snmp", "target=192.0.2.1:161&module=if_mib");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find("sysUpTime 117400\n"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("ifOperStatus{ifIndex=\"1\",ifName=\"eth0\",ifAlias=\"a \\\"quoted\\\" \\\\ alias\",ifDescr=\"eth0\"} 1"),
            std::string::npos)
      << r.body;
  EXPECT_NE(r.body.find("# TYPE ifHCInOctets counter\nifHCInOctets{ifIndex=\"1\"} 1e+12\n"), std::string::npos)
      << r.body;
  EXPECT_EQ(r.body.find("probe_success"), std::string::npos) << "snmp_exporter has no probe_success";
  EXPECT_EQ(get(view, "/snmp", "target=192.0.2.1").status, 200) << "without a port: the device's SNMP probe";
  EXPECT_EQ(get(view, "/probe", "target=192.0.2.1:161").status, 404) << "SNMP is /snmp's, not /probe's";
  record(sample("core-ams1", "snmp", false));
  r = get(view, "/snmp", "target=core-ams1&module=if_mib");
  EXPECT_EQ(r.status, 500) << "Prometheus counts it as up 0: the community SNMP-down alert fires";
  EXPECT_NE(r.body.find("timeout"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("no SNMP answer"), std::string::npos) << "the poll's own detail\n" << r.body;
  record(s);
  EXPECT_EQ(get(view, "/snmp", "target=core-ams1&module=if_mib").status, 200) << "answered again";
}

TEST_F(ExporterViewTest, AReloadKeepsTheResultsOfProbesThatStay) {
  record(sample("edge", "icmp", true));
  sync({target("edge", "192.0.2.2", {icmp_probe()})});
  EXPECT_EQ(get(view, "/probe", "target=edge&module=icmp").status, 200);
  sync({target("edge", "192.0.2.3", {icmp_probe()})});
  EXPECT_EQ(get(view, "/probe", "target=edge&module=icmp").status, 503) << "a new address is a new measurement";
  record(sample("edge", "icmp", false));
  EXPECT_NE(get(view, "/probe", "target=edge&module=icmp").body.find("probe_success 0"), std::string::npos)
      << "the first run at the new address is served";
  sync({target("edge", "192.0.2.3", {icmp_probe()})});
  EXPECT_EQ(get(view, "/probe", "target=edge&module=icmp").status, 200) << "an unchanged reload keeps it";
  auto regrouped = std::make_shared<Target>(*target("edge", "192.0.2.3", {icmp_probe()}));
  regrouped->group = "west";
  sync({regrouped});
  EXPECT_EQ(get(view, "/probe", "target=edge&module=icmp").status, 503) << "new labels: the records start afresh";
  record(sample("edge", "icmp", true));
  EXPECT_EQ(get(view, "/probe", "target=edge&module=icmp").status, 200);
  sync({});
  EXPECT_EQ(get(view, "/probe", "target=edge&module=icmp").status, 404);
}

}  // namespace
}  // namespace nightshift
