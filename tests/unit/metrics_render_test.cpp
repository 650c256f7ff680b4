// AgentMetrics' compact per-probe families: the text render agrees with
// prometheus-cpp's serializer over the Collectable view, values follow the
// samples, OpenMetrics and gzip are what scrapers negotiate.
#include <zlib.h>

#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include <sstream>

#include "serve/metrics.h"
#include "tests/support/prom_text.h"

namespace nightshift {
namespace {

using test::parse_prom_text;
using test::PromText;

std::shared_ptr<const Target> target(const std::string& name, const std::string& kind, const std::string& site = "lab") {
  auto t = std::make_shared<Target>();
  t->name = name;
  t->address = "127.0.0.1";
  t->group = "core";
  t->site = site;
  t->labels = {{"rack", "r\"1"}};
  ProbeSpec p;
  p.kind = kind;
  p.name = kind;
  t->probes.push_back(p);
  return t;
}

Sample icmp_sample(const std::string& target, bool ok, std::vector<double> rtts) {
  Sample s;
  s.target = target;
  s.probe = "icmp";
  s.kind = "icmp";
  s.ok = ok;
  s.reason = ok ? FailureReason::kNone : FailureReason::kTimeout;
  s.duration = std::chrono::microseconds(1500);
  s.values = {{"loss_ratio", ok ? 0.0 : 1.0}, {"reply_ttl", 64}};
  for (double r : rtts) s.observations.emplace_back("rtt_seconds", r);
  return s;
}

std::string via_prometheus_cpp(const AgentMetrics& m) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, m.probe_families().Collect());
  return out.str();
}

// Every sample of `a` in `b` with the same value, and the other way round.
void expect_same_samples(const PromText& a, const PromText& b) {
  ASSERT_TRUE(a.errors.empty()) << a.errors.front();
  ASSERT_TRUE(b.errors.empty()) << b.errors.front();
  std::map<std::string, double> left, right;
  for (const auto& s : a.samples) left[s.name + s.to_string()] = s.value;
  for (const auto& s : b.samples) right[s.name + s.to_string()] = s.value;
  EXPECT_EQ(left, right);
}

TEST(MetricsRenderTest, TextRenderMatchesPrometheusCppSerializer) {
  AgentMetrics m("edge1");
  m.sync_targets({target("a", "icmp"), target("b", "icmp"), target("c", "snmp")});
  m.record(icmp_sample("a", true, {0.0002, 0.0007, 3.0}));
  m.record(icmp_sample("a", false, {}));
  m.record(icmp_sample("b", true, {0.00025}));
  Sample snmp;
  snmp.target = "c";
  snmp.probe = "snmp";
  snmp.kind = "snmp";
  snmp.ok = true;
  snmp.series = {{"ifHCInOctets", {{"ifIndex", "2"}}, 1000, LabeledValue::Type::kCounter},
                 {"ifOperStatus", {{"ifIndex", "2"}, {"ifAlias", "up\\link\n"}}, 1, LabeledValue::Type::kGauge},
                 // Own labels out of order, before and after every probe label,
                 // and one replacing the probe's own `site`: merged as a map would.
                 {"ifOperStatus", {{"zone", "z"}, {"aaa", "x\"y"}, {"site", "over,ride"}}, 2, LabeledValue::Type::kGauge}};
  m.record(snmp);
  const std::string text = m.render();
  const PromText ours = parse_prom_text(text);
  const PromText theirs = parse_prom_text(via_prometheus_cpp(m));
  ASSERT_FALSE(theirs.samples.empty());
  // Ours also has the agent-wide families; compare the per-probe ones.
  PromText ours_probes;
  ours_probes.errors = ours.errors;
  for (const auto& s : ours.samples) {
    for (const auto& t : theirs.samples) {
      if (t.name == s.name) {
        ours_probes.samples.push_back(s);
        break;
      }
    }
  }
  expect_same_samples(ours_probes, theirs);
  EXPECT_NE(text.find("ifOperStatus{aaa=\"x\\\"y\",agent=\"edge1\",group=\"core\",kind=\"snmp\",probe=\"snmp\","
                      "site=\"over,ride\",target=\"c\",zone=\"z\"} 2\n"),
            std::string::npos)
      << text;
  for (const auto& [name, type] : theirs.types) EXPECT_EQ(ours.types.at(name), type) << name;
  for (const auto& [name, help] : theirs.help) EXPECT_EQ(ours.help.at(name), help) << name;
}

TEST(MetricsRenderTest, SeriesFollowTheSamples) {
  AgentMetrics m("edge1");
  m.sync_targets({target("a", "icmp")});
  EXPECT_FALSE(parse_prom_text(m.render()).has("probe_success"));  // nothing measured yet
  EXPECT_TRUE(parse_prom_text(m.render()).has("nightshift_target_info", {{"target", "a"}, {"rack", "r\"1"}}));
  m.record(icmp_sample("a", true, {0.0002, 0.0007}));
  m.record(icmp_sample("a", false, {}));
  PromText p = parse_prom_text(m.render());
  ASSERT_TRUE(p.errors.empty()) << p.errors.front();
  const test::PromLabels probe{{"target", "a"}, {"probe", "icmp"}, {"kind", "icmp"}, {"group", "core"},
                               {"site", "lab"}, {"agent", "edge1"}};
  EXPECT_EQ(p.value("probe_success", probe), 0);
  EXPECT_EQ(p.value("probe_duration_seconds", probe), 0.0015);
  EXPECT_EQ(p.value("nightshift_probe_failure_reason", {{"target", "a"}, {"reason", "timeout"}}), 1);
  EXPECT_EQ(p.value("nightshift_probe_results_total", {{"target", "a"}, {"result", "ok"}}), 1);
  EXPECT_EQ(p.value("nightshift_probe_results_total", {{"target", "a"}, {"result", "timeout"}}), 1);
  EXPECT_EQ(p.value("probe_icmp_loss_ratio", probe), 1);
  EXPECT_EQ(p.value("probe_icmp_reply_ttl", probe), 64);
  EXPECT_EQ(p.value("probe_icmp_rtt_seconds_count", probe), 2);
  EXPECT_DOUBLE_EQ(*p.value("probe_icmp_rtt_seconds_sum", probe), 0.0009);
  EXPECT_EQ(p.value("probe_icmp_rtt_seconds_bucket", {{"target", "a"}, {"le", "0.0001"}}), 0);
  EXPECT_EQ(p.value("probe_icmp_rtt_seconds_bucket", {{"target", "a"}, {"le", "0.00025"}}), 1);
  EXPECT_EQ(p.value("probe_icmp_rtt_seconds_bucket", {{"target", "a"}, {"le", "0.001"}}), 2);
  EXPECT_EQ(p.value("probe_icmp_rtt_seconds_bucket", {{"target", "a"}, {"le", "+Inf"}}), 2);
  EXPECT_EQ(p.select("probe_icmp_rtt_seconds_bucket").size(), 16u);
  m.record(icmp_sample("a", true, {}));
  p = parse_prom_text(m.render());
  EXPECT_FALSE(p.has("nightshift_probe_failure_reason"));
  EXPECT_EQ(p.value("probe_success", probe), 1);
}

TEST(MetricsRenderTest, AReloadKeepsSurvivorsAndDropsTheRest) {
  AgentMetrics m("edge1");
  m.sync_targets({target("a", "icmp"), target("b", "icmp")});
  m.record(icmp_sample("a", true, {0.001}));
  m.record(icmp_sample("b", true, {0.001}));
  m.sync_targets({target("a", "icmp"), target("b", "icmp", "elsewhere")});  // b's labels change
  PromText p = parse_prom_text(m.render());
  EXPECT_EQ(p.value("nightshift_probe_results_total", {{"target", "a"}, {"result", "ok"}}), 1);
  EXPECT_FALSE(p.has("probe_success", {{"target", "b"}}));
  EXPECT_TRUE(p.has("nightshift_target_info", {{"target", "b"}, {"site", "elsewhere"}}));
  m.sync_targets({target("b", "icmp", "elsewhere")});
  p = parse_prom_text(m.render());
  EXPECT_FALSE(p.has("probe_success", {{"target", "a"}}));
  EXPECT_FALSE(p.has("nightshift_target_info", {{"target", "a"}}));
  m.record(icmp_sample("a", true, {}));  // in flight across the reload: dropped
  EXPECT_FALSE(parse_prom_text(m.render()).has("probe_success", {{"target", "a"}}));
}

TEST(MetricsRenderTest, OpenMetricsHasEofTotalsAndUnits) {
  AgentMetrics m("edge1");
  m.sync_targets({target("a", "icmp"), target("c", "snmp")});
  m.record(icmp_sample("a", true, {0.001}));
  Sample snmp;
  snmp.target = "c";
  snmp.probe = "snmp";
  snmp.kind = "snmp";
  snmp.ok = true;
  snmp.series = {{"ifHCInOctets", {{"ifIndex", "2"}}, 1000, LabeledValue::Type::kCounter}};
  m.record(snmp);
  const std::string om = m.render(MetricsFormat::kOpenMetrics);
  ASSERT_GE(om.size(), 6u);
  EXPECT_EQ(om.substr(om.size() - 6), "# EOF\n");
  EXPECT_EQ(om.find("# EOF"), om.size() - 6);  // once, at the end
  EXPECT_NE(om.find("# TYPE nightshift_probe_results counter\n"), std::string::npos) << om;
  EXPECT_NE(om.find("\nnightshift_probe_results_total{"), std::string::npos);
  EXPECT_NE(om.find("# TYPE process_cpu_seconds counter\n"), std::string::npos);
  EXPECT_NE(om.find("# UNIT probe_duration_seconds seconds\n"), std::string::npos);
  EXPECT_NE(om.find("# UNIT probe_icmp_loss_ratio ratio\n"), std::string::npos);
  EXPECT_NE(om.find("# UNIT process_resident_memory_bytes bytes\n"), std::string::npos);
  // A counter named without _total keeps its name (snmp_exporter's), untyped.
  EXPECT_NE(om.find("# TYPE ifHCInOctets unknown\n"), std::string::npos);
  EXPECT_NE(om.find("\nifHCInOctets{"), std::string::npos);
  EXPECT_EQ(om.find("untyped"), std::string::npos);
  // Same samples as the text format.
  const std::string text = m.render(MetricsFormat::kText);
  EXPECT_EQ(text.find("# EOF"), std::string::npos);
  EXPECT_EQ(text.find("# UNIT"), std::string::npos);
  auto samples = [](const std::string& body) {
    std::vector<std::string> out;
    std::istringstream in(body);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty() && line[0] != '#' && line.rfind("process_", 0) != 0) out.push_back(line);
    }
    return out;
  };
  EXPECT_EQ(samples(om), samples(text));
}

TEST(MetricsRenderTest, NegotiatesLikePrometheusAsks) {
  const char* prometheus =
      "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
      "text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
  EXPECT_EQ(MetricsEndpoint::format_for(prometheus), MetricsFormat::kOpenMetrics);
  EXPECT_EQ(MetricsEndpoint::format_for(""), MetricsFormat::kText);
  EXPECT_EQ(MetricsEndpoint::format_for("*/*"), MetricsFormat::kText);
  EXPECT_EQ(MetricsEndpoint::format_for("text/plain;version=0.0.4"), MetricsFormat::kText);
  EXPECT_EQ(MetricsEndpoint::format_for("text/plain, application/openmetrics-text;q=0.5"), MetricsFormat::kText);
  EXPECT_EQ(MetricsEndpoint::format_for("application/openmetrics-text;q=0"), MetricsFormat::kText);
  EXPECT_EQ(MetricsEndpoint::format_for("Application/OpenMetrics-Text; version=1.0.0"), MetricsFormat::kOpenMetrics);
  EXPECT_EQ(MetricsEndpoint::format_for(";;,,q=,;q=x"), MetricsFormat::kText);
  EXPECT_TRUE(MetricsEndpoint::wants_gzip("gzip"));
  EXPECT_TRUE(MetricsEndpoint::wants_gzip("deflate, gzip;q=0.5"));
  EXPECT_TRUE(MetricsEndpoint::wants_gzip("*"));
  EXPECT_FALSE(MetricsEndpoint::wants_gzip(""));
  EXPECT_FALSE(MetricsEndpoint::wants_gzip("identity"));
  EXPECT_FALSE(MetricsEndpoint::wants_gzip("gzip;q=0"));
  EXPECT_FALSE(MetricsEndpoint::wants_gzip("gzip;q=0, *"));
}

std::string gunzip(const std::string& in) {
  z_stream z{};
  EXPECT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  std::string out;
  int rc = Z_OK;
  while (rc == Z_OK) {
    char buf[16384];
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof buf - z.avail_out);
  }
  inflateEnd(&z);
  EXPECT_EQ(rc, Z_STREAM_END);
  return out;
}

TEST(MetricsRenderTest, EndpointCompressesAndLabelsTheVariant) {
  AgentMetrics m("edge1");
  std::vector<std::shared_ptr<const Target>> targets;
  for (int i = 0; i < 600; ++i) targets.push_back(target("t" + std::to_string(i), "icmp"));  // several render chunks
  m.sync_targets(targets);
  for (int i = 0; i < 600; ++i) m.record(icmp_sample("t" + std::to_string(i), i % 7 != 0, {0.0001 * i}));
  MetricsEndpoint endpoint(m);
  HttpRequest req;
  req.method = "GET";
  req.path = "/metrics";
  req.headers["accept-encoding"] = "gzip";
  // The body as the server would stream it, piece by piece.
  auto body_of = [](const HttpResponse& r) {
    std::string body;
    std::size_t pieces = 0;
    r.stream([&](std::string_view piece) {
      body += piece;
      ++pieces;
    });
    EXPECT_GT(pieces, 0u);
    return body;
  };
  HttpResponse r = endpoint.serve(req);
  ASSERT_TRUE(r.stream);
  EXPECT_TRUE(r.body.empty());
  EXPECT_FALSE(r.shared_body);
  const std::string compressed = body_of(r);
  EXPECT_EQ(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
  auto header = [&](const std::string& name) {
    for (const auto& [k, v] : r.headers) {
      if (k == name) return v;
    }
    return std::string();
  };
  EXPECT_EQ(header("Content-Encoding"), "gzip");
  EXPECT_EQ(header("Vary"), "Accept, Accept-Encoding");
  const std::string plain = gunzip(compressed);
  EXPECT_LT(compressed.size() * 5, plain.size());
  const PromText p = parse_prom_text(plain);
  ASSERT_TRUE(p.errors.empty()) << p.errors.front();
  EXPECT_EQ(p.select("probe_success").size(), 600u);
  EXPECT_EQ(p.select("probe_success").size(), parse_prom_text(m.render()).select("probe_success").size());

  req.headers.clear();
  req.headers["accept"] = "application/openmetrics-text;version=1.0.0";
  r = endpoint.serve(req);
  EXPECT_EQ(r.content_type, "application/openmetrics-text; version=1.0.0; charset=utf-8");
  EXPECT_EQ(header("Content-Encoding"), "");
  const std::string openmetrics = body_of(r);
  EXPECT_EQ(openmetrics.substr(openmetrics.size() - 6), "# EOF\n");
  EXPECT_EQ(gunzip(gzip_compress("hello")), "hello");
}

}  // namespace
}  // namespace nightshift
