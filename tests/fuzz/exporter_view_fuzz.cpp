// libFuzzer target over /probe and /snmp queries (outside input: any scraper
// may send them): any query string against a view holding targets with ICMP,
// TCP and SNMP probes and results. Never crashes; answers one of the
// documented statuses.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "probes/snmp/snmp.h"
#include "probes/tcp/tcp.h"
#include "serve/exporter_view.h"

namespace {
using namespace nightshift;

ExporterView& view() {
  static ProbeFamilies* results = new ProbeFamilies("edge1", {});
  static ExporterView* v = [] {
    auto* out = new ExporterView(*results);
    auto t = std::make_shared<Target>();
    t->name = "core:1";
    t->address = "192.0.2.1";
    auto tcp = std::make_shared<tcp::TcpOptions>();
    tcp->port = 22;
    auto snmp = std::make_shared<snmp::SnmpOptions>();
    t->probes = {{"icmp", "icmp", std::chrono::seconds(10), std::chrono::seconds(1), nullptr},
                 {"tcp", "tcp_22", std::chrono::seconds(10), std::chrono::seconds(1), tcp},
                 {"snmp", "snmp", std::chrono::seconds(10), std::chrono::seconds(1), snmp}};
    results->sync_targets({t});
    out->sync_targets({t});
    for (const char* probe : {"icmp", "tcp_22", "snmp"}) {
      Sample s;
      s.target = t->name;
      s.probe = probe;
      s.kind = std::string(probe).substr(0, std::string(probe).find('_'));
      s.ok = probe[0] != 's';
      s.detail = "no answer";
      s.series.push_back({"ifOperStatus", {{"ifIndex", "1"}, {"ifAlias", "\"\\\n"}}, 1, LabeledValue::Type::kGauge});
      results->record(s);
      out->record(s);
    }
    return out;
  }();
  return *v;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  HttpRequest r;
  r.method = "GET";
  r.query.assign(reinterpret_cast<const char*>(data), size);
  for (const HttpResponse& answer : {view().probe(r), view().snmp(r)}) {
    switch (answer.status) {
      case 200: case 400: case 404: case 500: case 503: break;
      default: std::abort();
    }
  }
  return 0;
}
