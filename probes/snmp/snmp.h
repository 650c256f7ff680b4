// SNMP probe kind: device health and interface state over SNMP v1, v2c and v3
// (noAuthNoPriv, authNoPriv, authPriv; SHA/SHA-2 and MD5 auth, AES and DES
// privacy), on Net-SNMP's library.
//
// One poll = GET sysUpTime.0 (and configured single OIDs), then GETBULK walks
// (GETNEXT for v1) of the IF-MIB columns and configured subtrees, all columns
// of a table in one request, with caps on max-repetitions and on varbinds per
// poll. Numeric OIDs only: no MIB is loaded.
//
// Threading: Net-SNMP keeps global state (USM users, engine ids) that is not
// thread-safe, so ALL Net-SNMP calls happen on one SNMP thread owned by the
// engine. Requests are asynchronous there (snmp_sess_async_send, poll() over
// every session's socket, snmp_sess_timeout for retries): hundreds of devices
// are polled concurrently, and the reactor thread never makes an SNMP call;
// results come back through Reactor::post. One session per (target, probe)
// stays open between polls. Opening a v3 session discovers the device's
// engine id synchronously on the SNMP thread (once per session); a device
// whose discovery fails is retried at the next poll.
//
// Sample values (gauges probe_snmp_<name> and rule variables): uptime_seconds,
// rebooted (1 on the poll that saw sysUpTime go back), interfaces_down
// (selected, admin up and oper down), interfaces (selected), varbinds.
// Labeled series, as snmp_exporter's if_mib module names them: sysUpTime (in
// ticks), ifNumber, and per interface every ifTable and ifXTable column
// (ifType as ifType_info, ifPhysAddress as a label) with labels ifIndex,
// ifName, ifAlias and ifDescr; snmp_scrape_duration_seconds,
// snmp_scrape_walk_duration_seconds, snmp_scrape_pdus_returned,
// snmp_scrape_packets_sent, snmp_scrape_packets_retried; and each custom OID
// under its configured name. interface_metrics = "basic" walks only status,
// 64-bit octets, errors, discards, speed and the names.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "probes/probe.h"

namespace nightshift::snmp {

struct CustomOid {
  std::string name;      // metric name
  std::string oid;       // numeric, e.g. "1.3.6.1.4.1.2021.10.1.5.1"
  bool walk = false;     // a subtree (one series per index) rather than one value
  bool counter = false;  // counter rather than gauge
  std::string index_label = "index";
  double scale = 1.0;
};

struct SnmpOptions final : ProbeOptions {
  int version = 2;  // 1, 2 (2c) or 3
  int port = 161;
  std::string community;  // v1/v2c; a secret
  // v3
  std::string username;
  int security_level = 1;  // 1 noAuthNoPriv, 2 authNoPriv, 3 authPriv
  std::string auth_protocol = "SHA";
  std::string auth_password;  // a secret
  std::string priv_protocol = "AES";
  std::string priv_password;  // a secret
  std::string context;
  int retries = 1;
  int max_repetitions = 25;
  int max_varbinds = 5000;
  bool interfaces_enabled = true;
  // interface_metrics = "if_mib": every column of snmp_exporter's if_mib
  // module; "basic": status, 64-bit octets, errors, discards, speed and the
  // name labels (a third of the varbinds per poll).
  bool full_if_mib = true;
  std::vector<std::string> interface_patterns;  // glob on ifName; empty: all
  std::vector<std::int64_t> interface_indexes;  // empty: all
  std::vector<CustomOid> oids;
};

std::shared_ptr<const ProbeOptions> parse_options(OptionReader& reader, std::string& default_name);
std::unique_ptr<ProbeEngine> make_engine(EngineContext& context);
// What its samples carry (the registry entry's `measures`).
std::span<const Measure> measures();
int port_of(const ProbeOptions& options);

// One decoded variable binding: what the parsing layer hands the probe logic.
struct Varbind {
  std::vector<std::uint32_t> oid;
  enum class Kind { kNumber, kText, kMissing, kEndOfView } kind = Kind::kMissing;
  double number = 0;
  std::string text;   // printable (others as '?'), at most 255 bytes
  std::string bytes;  // the octet string as received (MAC addresses), at most 255 bytes
};

// Pure: interface rows from walked IF-MIB columns, selection, values and
// series for one poll. `previous_uptime` < 0 when unknown.
struct PollResult {
  std::vector<std::pair<std::string, double>> values;
  std::vector<LabeledValue> series;
  double uptime_seconds = -1;
};
// How many IF-MIB columns a poll walks with these options (they come first in
// `columns`, custom walks after them).
std::size_t interface_column_count(const SnmpOptions& options);
PollResult interpret(const SnmpOptions& options, const std::vector<Varbind>& scalars,
                     const std::vector<std::vector<Varbind>>& columns, double previous_uptime);

// Decodes a raw SNMP v1/v2c message (as received from the network) into its
// varbinds with Net-SNMP's parser and this kind's decoding; empty when it does
// not parse. For the fuzzer: malformed and truncated input must never crash.
std::vector<Varbind> decode_message(const std::uint8_t* data, std::size_t size);

// "1.3.6.1.2.1" -> {1,3,6,1,2,1}; empty on error. Pure.
std::vector<std::uint32_t> parse_oid(const std::string& text);
std::string oid_string(const std::vector<std::uint32_t>& oid);

}  // namespace nightshift::snmp
