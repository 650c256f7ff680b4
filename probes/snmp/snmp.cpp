// Net-SNMP's headers define macros (READ, WRITE, FREE, TRUE, ...): only here.
#include <net-snmp/net-snmp-config.h>
#include <net-snmp/net-snmp-includes.h>
#include <net-snmp/library/large_fd_set.h>
#include <net-snmp/library/snmpusm.h>

#include "probes/snmp/snmp.h"

#include <fnmatch.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "core/duration.h"
#include "core/log.h"

namespace nightshift::snmp {

namespace {
const char* const kSysUpTime = "1.3.6.1.2.1.1.3.0";
const char* const kIfNumber = "1.3.6.1.2.1.2.1.0";
enum class ColumnType { kGauge, kCounter, kLabel, kPhysAddress, kEnumAsInfo };
struct Column {
  const char* name;
  const char* oid;
  ColumnType type;
  bool basic;  // walked with interface_metrics = "basic" too
};
// IF-MIB columns walked per poll, in this order (interpret() relies on it):
// snmp_exporter's if_mib module (ifTable and ifXTable; ifDescr, ifName and
// ifAlias as labels of every interface series). The "basic" ones first.
constexpr ColumnType kG = ColumnType::kGauge, kC = ColumnType::kCounter, kL = ColumnType::kLabel;
const Column kIfColumns[] = {
    {"ifAdminStatus", "1.3.6.1.2.1.2.2.1.7", kG, true},    {"ifOperStatus", "1.3.6.1.2.1.2.2.1.8", kG, true},
    {"ifInDiscards", "1.3.6.1.2.1.2.2.1.13", kC, true},    {"ifInErrors", "1.3.6.1.2.1.2.2.1.14", kC, true},
    {"ifOutDiscards", "1.3.6.1.2.1.2.2.1.19", kC, true},   {"ifOutErrors", "1.3.6.1.2.1.2.2.1.20", kC, true},
    {"ifName", "1.3.6.1.2.1.31.1.1.1.1", kL, true},        {"ifHCInOctets", "1.3.6.1.2.1.31.1.1.1.6", kC, true},
    {"ifHCOutOctets", "1.3.6.1.2.1.31.1.1.1.10", kC, true}, {"ifHighSpeed", "1.3.6.1.2.1.31.1.1.1.15", kG, true},
    {"ifAlias", "1.3.6.1.2.1.31.1.1.1.18", kL, true},      {"ifDescr", "1.3.6.1.2.1.2.2.1.2", kL, true},
    // The rest of if_mib.
    {"ifIndex", "1.3.6.1.2.1.2.2.1.1", kG, false},
    {"ifType", "1.3.6.1.2.1.2.2.1.3", ColumnType::kEnumAsInfo, false},
    {"ifMtu", "1.3.6.1.2.1.2.2.1.4", kG, false},
    {"ifSpeed", "1.3.6.1.2.1.2.2.1.5", kG, false},
    {"ifPhysAddress", "1.3.6.1.2.1.2.2.1.6", ColumnType::kPhysAddress, false},
    {"ifLastChange", "1.3.6.1.2.1.2.2.1.9", kG, false},
    {"ifInOctets", "1.3.6.1.2.1.2.2.1.10", kC, false},
    {"ifInUcastPkts", "1.3.6.1.2.1.2.2.1.11", kC, false},
    {"ifInNUcastPkts", "1.3.6.1.2.1.2.2.1.12", kC, false},
    {"ifInUnknownProtos", "1.3.6.1.2.1.2.2.1.15", kC, false},
    {"ifOutOctets", "1.3.6.1.2.1.2.2.1.16", kC, false},
    {"ifOutUcastPkts", "1.3.6.1.2.1.2.2.1.17", kC, false},
    {"ifOutNUcastPkts", "1.3.6.1.2.1.2.2.1.18", kC, false},
    {"ifOutQLen", "1.3.6.1.2.1.2.2.1.21", kG, false},
    {"ifInMulticastPkts", "1.3.6.1.2.1.31.1.1.1.2", kC, false},
    {"ifInBroadcastPkts", "1.3.6.1.2.1.31.1.1.1.3", kC, false},
    {"ifOutMulticastPkts", "1.3.6.1.2.1.31.1.1.1.4", kC, false},
    {"ifOutBroadcastPkts", "1.3.6.1.2.1.31.1.1.1.5", kC, false},
    {"ifHCInUcastPkts", "1.3.6.1.2.1.31.1.1.1.7", kC, false},
    {"ifHCInMulticastPkts", "1.3.6.1.2.1.31.1.1.1.8", kC, false},
    {"ifHCInBroadcastPkts", "1.3.6.1.2.1.31.1.1.1.9", kC, false},
    {"ifHCOutUcastPkts", "1.3.6.1.2.1.31.1.1.1.11", kC, false},
    {"ifHCOutMulticastPkts", "1.3.6.1.2.1.31.1.1.1.12", kC, false},
    {"ifHCOutBroadcastPkts", "1.3.6.1.2.1.31.1.1.1.13", kC, false},
    {"ifLinkUpDownTrapEnable", "1.3.6.1.2.1.31.1.1.1.14", kG, false},
    {"ifPromiscuousMode", "1.3.6.1.2.1.31.1.1.1.16", kG, false},
    {"ifConnectorPresent", "1.3.6.1.2.1.31.1.1.1.17", kG, false},
    {"ifCounterDiscontinuityTime", "1.3.6.1.2.1.31.1.1.1.19", kG, false},
};
constexpr std::size_t kIfColumnCount = sizeof kIfColumns / sizeof kIfColumns[0];
constexpr std::size_t kIfName = 6, kIfAlias = 10, kIfDescr = 11;

std::size_t walked_columns(const SnmpOptions& o) {
  if (!o.interfaces_enabled) return 0;
  if (!o.full_if_mib) return kIfDescr + 1;
  return kIfColumnCount;
}

// IANAifType names snmp_exporter's generated if_mib module labels ifType_info
// with, for the common types; others are labelled with their number, as
// snmp_exporter does for values its MIB does not name.
std::string if_type_name(double value) {
  static const std::map<int, const char*> kNames = {
      {1, "other"},          {6, "ethernetCsmacd"},   {23, "ppp"},         {24, "softwareLoopback"},
      {53, "propVirtual"},   {62, "fastEther"},       {71, "ieee80211"},   {117, "gigabitEthernet"},
      {131, "tunnel"},       {135, "l2vlan"},         {136, "l3ipvlan"},   {150, "mplsTunnel"},
      {161, "ieee8023adLag"}, {166, "mpls"},          {209, "bridge"},
  };
  const int n = static_cast<int>(value);
  auto it = kNames.find(n);
  return it != kNames.end() ? it->second : std::to_string(n);
}

// A MAC address as snmp_exporter's PhysAddress48 shows it: "02:FC:00:00:00:01",
// at least 6 bytes (an interface without one, like lo, shows 00:00:00:00:00:00).
std::string phys_address(std::string bytes) {
  static const char* hex = "0123456789ABCDEF";
  if (bytes.size() < 6) bytes.resize(6, '\0');
  std::string out;
  for (unsigned char c : bytes) {
    if (!out.empty()) out += ':';
    out += hex[c >> 4];
    out += hex[c & 15];
  }
  return out;
}

bool has_prefix(const std::vector<std::uint32_t>& oid, const std::vector<std::uint32_t>& prefix) {
  return oid.size() > prefix.size() && std::equal(prefix.begin(), prefix.end(), oid.begin());
}

std::string suffix_of(const std::vector<std::uint32_t>& oid, const std::vector<std::uint32_t>& prefix) {
  std::vector<std::uint32_t> rest(oid.begin() + static_cast<long>(prefix.size()), oid.end());
  return oid_string(rest);
}
}  // namespace

std::vector<std::uint32_t> parse_oid(const std::string& text) {
  std::vector<std::uint32_t> out;
  std::string s = text;
  if (!s.empty() && s[0] == '.') s.erase(0, 1);
  std::size_t pos = 0;
  while (pos < s.size()) {
    const std::size_t dot = s.find('.', pos);
    const std::string part = s.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    if (part.empty() || part.size() > 10 || part.find_first_not_of("0123456789") != std::string::npos) return {};
    const unsigned long long v = std::stoull(part);
    if (v > 0xffffffffULL) return {};
    out.push_back(static_cast<std::uint32_t>(v));
    if (dot == std::string::npos) break;
    pos = dot + 1;
    if (pos == s.size()) return {};
  }
  if (out.size() < 2 || out.size() > 128) return {};
  return out;
}

std::string oid_string(const std::vector<std::uint32_t>& oid) {
  std::string out;
  for (std::size_t i = 0; i < oid.size(); ++i) out += (i ? "." : "") + std::to_string(oid[i]);
  return out;
}

std::size_t interface_column_count(const SnmpOptions& options) { return walked_columns(options); }

PollResult interpret(const SnmpOptions& o, const std::vector<Varbind>& scalars,
                     const std::vector<std::vector<Varbind>>& columns, double previous_uptime) {
  PollResult r;
  std::size_t varbinds = scalars.size();
  for (const auto& c : columns) varbinds += c.size();
  if (!scalars.empty() && scalars[0].kind == Varbind::Kind::kNumber) {
    r.uptime_seconds = scalars[0].number / 100.0;  // TimeTicks: hundredths of a second
    r.values.emplace_back("uptime_seconds", r.uptime_seconds);
    r.values.emplace_back("rebooted", previous_uptime >= 0 && r.uptime_seconds < previous_uptime ? 1.0 : 0.0);
    // In ticks, as snmp_exporter exports it (dashboards divide by 100).
    r.series.push_back({"sysUpTime", {}, scalars[0].number, LabeledValue::Type::kGauge});
  }
  // Custom single OIDs follow sysUpTime, in configuration order; ifNumber comes last.
  std::size_t scalar_at = 1;
  const std::size_t if_columns = walked_columns(o);
  std::size_t column_at = if_columns;
  for (const auto& c : o.oids) {
    const auto type = c.counter ? LabeledValue::Type::kCounter : LabeledValue::Type::kGauge;
    if (!c.walk) {
      if (scalar_at < scalars.size() && scalars[scalar_at].kind == Varbind::Kind::kNumber) {
        r.series.push_back({c.name, {}, scalars[scalar_at].number * c.scale, type});
      }
      ++scalar_at;
      continue;
    }
    if (column_at < columns.size()) {
      const auto prefix = parse_oid(c.oid);
      for (const auto& v : columns[column_at]) {
        if (v.kind == Varbind::Kind::kNumber && has_prefix(v.oid, prefix)) {
          r.series.push_back({c.name, {{c.index_label, suffix_of(v.oid, prefix)}}, v.number * c.scale, type});
        }
      }
    }
    ++column_at;
  }
  if (if_columns > 0 && scalar_at < scalars.size() && scalars[scalar_at].kind == Varbind::Kind::kNumber) {
    r.series.push_back({"ifNumber", {}, scalars[scalar_at].number, LabeledValue::Type::kGauge});
  }
  if (if_columns > 0 && columns.size() >= if_columns) {
    struct Row {
      std::map<std::size_t, double> numbers;
      std::map<std::size_t, std::string> texts;  // labels, ifPhysAddress
    };
    std::map<std::uint32_t, Row> rows;  // by ifIndex
    for (std::size_t c = 0; c < if_columns; ++c) {
      const auto prefix = parse_oid(kIfColumns[c].oid);
      const ColumnType type = kIfColumns[c].type;
      for (const auto& v : columns[c]) {
        if (v.oid.size() != prefix.size() + 1 || !has_prefix(v.oid, prefix)) continue;
        Row& row = rows[v.oid.back()];
        if (type == ColumnType::kLabel) {
          row.texts[c] = v.text;
        } else if (type == ColumnType::kPhysAddress) {
          if (v.kind == Varbind::Kind::kText) row.texts[c] = phys_address(v.bytes);
        } else if (v.kind == Varbind::Kind::kNumber) {
          row.numbers[c] = v.number;
        }
      }
    }
    int selected = 0, down = 0;
    for (const auto& [index, row] : rows) {
      auto text = [&row](std::size_t c) {
        auto it = row.texts.find(c);
        return it == row.texts.end() ? std::string() : it->second;
      };
      const std::string name = text(kIfName);
      if (!o.interface_indexes.empty() &&
          std::find(o.interface_indexes.begin(), o.interface_indexes.end(), index) == o.interface_indexes.end()) {
        continue;
      }
      if (!o.interface_patterns.empty()) {
        bool match = false;
        for (const auto& p : o.interface_patterns) match = match || fnmatch(p.c_str(), name.c_str(), 0) == 0;
        if (!match) continue;
      }
      ++selected;
      auto admin = row.numbers.find(0);
      auto oper = row.numbers.find(1);
      // Admin up (1) and oper not up: an outage. Admin down is intent, not an outage.
      if (admin != row.numbers.end() && oper != row.numbers.end() && admin->second == 1 && oper->second != 1) ++down;
      // snmp_exporter's if_mib labels: the index and its three lookups.
      const std::vector<std::pair<std::string, std::string>> labels = {
          {"ifIndex", std::to_string(index)}, {"ifName", name}, {"ifAlias", text(kIfAlias)}, {"ifDescr", text(kIfDescr)}};
      for (const auto& [c, value] : row.numbers) {
        const Column& col = kIfColumns[c];
        if (col.type == ColumnType::kEnumAsInfo) {
          auto l = labels;
          l.emplace_back(col.name, if_type_name(value));
          r.series.push_back({std::string(col.name) + "_info", std::move(l), 1, LabeledValue::Type::kGauge});
          continue;
        }
        r.series.push_back({col.name, labels, value,
                            col.type == ColumnType::kCounter ? LabeledValue::Type::kCounter : LabeledValue::Type::kGauge});
      }
      for (const auto& [c, value] : row.texts) {
        if (kIfColumns[c].type != ColumnType::kPhysAddress) continue;
        auto l = labels;
        l.emplace_back(kIfColumns[c].name, value);
        r.series.push_back({kIfColumns[c].name, std::move(l), 1, LabeledValue::Type::kGauge});
      }
    }
    r.values.emplace_back("interfaces", selected);
    r.values.emplace_back("interfaces_down", down);
  }
  r.values.emplace_back("varbinds", static_cast<double>(varbinds));
  return r;
}

// ---------------------------------------------------------------------------
// Options

std::shared_ptr<const ProbeOptions> parse_options(OptionReader& reader, std::string& default_name) {
  auto o = std::make_shared<SnmpOptions>();
  bool ok = true;
  if (auto v = reader.string("version", false)) {
    if (*v == "1") {
      o->version = 1;
    } else if (*v == "2c" || *v == "2") {
      o->version = 2;
    } else if (*v == "3") {
      o->version = 3;
    } else {
      reader.error("version", "expected \"1\", \"2c\" or \"3\", found \"" + *v + "\"");
      ok = false;
    }
  }
  if (auto v = reader.integer("port", 1, 65535, false)) o->port = static_cast<int>(*v);
  if (auto v = reader.integer("retries", 0, 10, false)) o->retries = static_cast<int>(*v);
  if (auto v = reader.integer("max_repetitions", 1, 100, false)) o->max_repetitions = static_cast<int>(*v);
  if (auto v = reader.integer("max_varbinds", 10, 100000, false)) o->max_varbinds = static_cast<int>(*v);
  if (auto v = reader.boolean("interfaces_enabled", false)) o->interfaces_enabled = *v;
  if (auto v = reader.string("interface_metrics", false)) {
    if (*v == "if_mib" || *v == "basic") {
      o->full_if_mib = *v == "if_mib";
    } else {
      reader.error("interface_metrics", "expected \"if_mib\" (snmp_exporter's full if_mib set) or \"basic\" (status, "
                                        "64-bit octets, errors, discards, speed), found \"" + *v + "\"");
      ok = false;
    }
  }
  if (auto v = reader.strings("interfaces", false)) o->interface_patterns = *v;
  if (auto v = reader.integers("if_indexes", 1, 2147483647, false)) o->interface_indexes = *v;
  if (o->version == 3) {
    if (auto v = reader.string("username", true)) o->username = *v; else ok = false;
    if (auto v = reader.string("security_level", false)) {
      if (*v == "noAuthNoPriv") o->security_level = 1;
      else if (*v == "authNoPriv") o->security_level = 2;
      else if (*v == "authPriv") o->security_level = 3;
      else {
        reader.error("security_level", "expected \"noAuthNoPriv\", \"authNoPriv\" or \"authPriv\", found \"" + *v + "\"");
        ok = false;
      }
    } else {
      o->security_level = 3;
    }
    if (auto v = reader.string("auth_protocol", false)) {
      static const std::set<std::string> known = {"MD5", "SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512"};
      if (!known.count(*v)) {
        reader.error("auth_protocol", "expected one of MD5, SHA, SHA-224, SHA-256, SHA-384, SHA-512, found \"" + *v + "\"");
        ok = false;
      }
      o->auth_protocol = *v;
    }
    if (auto v = reader.string("priv_protocol", false)) {
      static const std::set<std::string> known = {"DES", "AES", "AES-192", "AES-256"};
      if (!known.count(*v)) {
        reader.error("priv_protocol", "expected one of DES, AES, AES-192, AES-256, found \"" + *v + "\"");
        ok = false;
      }
      o->priv_protocol = *v;
    }
    if (o->security_level >= 2) {
      if (auto v = reader.secret("auth_password", true, false)) {
        if (v->size() < 8) reader.error(reader.secret_key("auth_password"), "SNMPv3 passwords have at least 8 characters");
        o->auth_password = *v;
      } else {
        ok = false;
      }
    }
    if (o->security_level == 3) {
      if (auto v = reader.secret("priv_password", true, false)) {
        if (v->size() < 8) reader.error(reader.secret_key("priv_password"), "SNMPv3 passwords have at least 8 characters");
        o->priv_password = *v;
      } else {
        ok = false;
      }
    }
    if (auto v = reader.string("context", false)) o->context = *v;
  } else {
    if (auto v = reader.secret("community", false, true)) {
      o->community = *v;
    } else {
      o->community = "public";
    }
  }
  std::set<std::string> names;
  for (auto& t : reader.tables("oids")) {
    CustomOid c;
    auto name = t->string("name", true);
    auto oid = t->string("oid", true);
    if (name) {
      c.name = *name;
      if (c.name.empty() || !(std::isalpha(static_cast<unsigned char>(c.name[0])) || c.name[0] == '_') ||
          c.name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:") != std::string::npos) {
        t->error("name", "expected a metric name matching [a-zA-Z_:][a-zA-Z0-9_:]*, found \"" + c.name + "\"");
        ok = false;
      } else if (!names.insert(c.name).second) {
        t->error("name", "duplicate OID name \"" + c.name + "\"");
        ok = false;
      }
    } else {
      ok = false;
    }
    if (oid) {
      c.oid = *oid;
      if (parse_oid(*oid).empty()) {
        t->error("oid", "expected a numeric OID like \"1.3.6.1.4.1.2021.10.1.5.1\" (no MIB names are loaded), found \"" +
                            *oid + "\"");
        ok = false;
      }
    } else {
      ok = false;
    }
    if (auto v = t->string("type", false)) {
      if (*v != "gauge" && *v != "counter") {
        t->error("type", "expected \"gauge\" or \"counter\", found \"" + *v + "\"");
        ok = false;
      }
      c.counter = *v == "counter";
    }
    if (auto v = t->boolean("walk", false)) c.walk = *v;
    if (auto v = t->string("index_label", false)) c.index_label = *v;
    if (auto v = t->number("scale", false)) c.scale = *v;
    t->done();
    o->oids.push_back(std::move(c));
  }
  default_name = "snmp";
  if (!ok) return nullptr;
  return o;
}

// ---------------------------------------------------------------------------
// Engine

namespace {

std::once_flag g_init;
void init_library() {
  std::call_once(g_init, [] {
    // No MIB files (numeric OIDs only) and no config or persistent files.
    ::setenv("MIBS", "", 1);
    netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_DONT_READ_CONFIGS, 1);
    netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_DONT_PERSIST_STATE, 1);
    netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_DISABLE_PERSISTENT_LOAD, 1);
    netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_DISABLE_PERSISTENT_SAVE, 1);
    netsnmp_ds_set_int(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_OID_OUTPUT_FORMAT, NETSNMP_OID_OUTPUT_NUMERIC);
    netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_QUICK_PRINT, 1);
    snmp_disable_log();
    init_snmp("nightshift");
  });
}

Varbind decode(const netsnmp_variable_list* v) {
  Varbind out;
  out.oid.assign(v->name, v->name + v->name_length);
  switch (v->type) {
    case ASN_INTEGER:
      out.kind = Varbind::Kind::kNumber;
      out.number = static_cast<double>(*v->val.integer);
      break;
    case ASN_COUNTER:
    case ASN_GAUGE:
    case ASN_TIMETICKS:
    case ASN_UINTEGER:
      out.kind = Varbind::Kind::kNumber;
      out.number = static_cast<double>(static_cast<std::uint32_t>(*v->val.integer));
      break;
    case ASN_COUNTER64:
      out.kind = Varbind::Kind::kNumber;
      out.number = static_cast<double>((static_cast<std::uint64_t>(v->val.counter64->high) << 32) |
                                       v->val.counter64->low);
      break;
    case ASN_OCTET_STR: {
      out.kind = Varbind::Kind::kText;
      std::string s(reinterpret_cast<const char*>(v->val.string), std::min<std::size_t>(v->val_len, 255));
      out.bytes = s;
      for (char& c : s) {
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
      }
      out.text = s;
      break;
    }
    case SNMP_ENDOFMIBVIEW:
      out.kind = Varbind::Kind::kEndOfView;
      break;
    default:
      out.kind = Varbind::Kind::kMissing;  // noSuchObject, noSuchInstance, other types
  }
  return out;
}

}  // namespace

std::vector<Varbind> decode_message(const std::uint8_t* data, std::size_t size) {
  init_library();
  std::vector<Varbind> out;
  netsnmp_session session;
  snmp_sess_init(&session);
  session.version = SNMP_DEFAULT_VERSION;
  netsnmp_pdu* pdu = snmp_pdu_create(0);
  std::vector<u_char> copy(data, data + size);
  if (snmp_parse(nullptr, &session, pdu, copy.data(), copy.size()) == SNMP_ERR_NOERROR) {
    for (auto* v = pdu->variables; v != nullptr && out.size() < 10000; v = v->next_variable) out.push_back(decode(v));
  }
  snmp_free_pdu(pdu);
  return out;
}

class SnmpEngine final : public ProbeEngine {
 public:
  explicit SnmpEngine(EngineContext& context) : reactor_(context.reactor) {
    init_library();
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    thread_ = std::thread([this] { run(); });
  }
  ~SnmpEngine() override {
    stop_ = true;
    wake();
    thread_.join();
    ::close(wake_fd_);
    *alive_ = false;
  }

  void submit(ProbeRequest req) override {
    ++in_flight_;
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(req));
    }
    wake();
  }
  std::size_t in_flight() const override { return in_flight_.load(); }

 private:
  struct Poll;
  struct Session {
    void* handle = nullptr;  // snmp_sess_open
    std::string key;
    std::string fingerprint;  // options it was opened with
    double last_uptime = -1;
    Poll* active = nullptr;
    bool close_pending = false;
  };
  struct Poll {
    ProbeRequest req;
    const SnmpOptions* opts = nullptr;
    Session* session = nullptr;
    SteadyTime started{};
    std::vector<Varbind> scalars;
    std::vector<std::vector<std::uint32_t>> column_roots;
    std::vector<std::vector<std::uint32_t>> column_next;  // where each column's walk continues
    std::vector<bool> column_done;
    std::vector<std::vector<Varbind>> columns;
    std::vector<std::size_t> active_columns;  // the columns of the request in flight, in varbind order
    SnmpEngine* engine = nullptr;
    std::uint64_t token = 0;  // the request in flight
    bool scalars_done = false;
    int varbinds = 0;
    int packets_sent = 0;     // requests, retransmissions included (snmp_scrape_packets_sent)
    int packets_retried = 0;  // retransmissions
    bool failed = false;
    FailureReason reason = FailureReason::kNone;
    std::string detail;
  };

  void wake() {
    const std::uint64_t one = 1;
    (void)::write(wake_fd_, &one, sizeof one);
  }

  void run() {
    while (!stop_) {
      std::deque<ProbeRequest> incoming;
      {
        std::lock_guard<std::mutex> lock(mu_);
        incoming.swap(queue_);
      }
      for (auto& req : incoming) start(std::move(req));
      std::vector<pollfd> fds;
      std::vector<Session*> owners;
      fds.push_back({wake_fd_, POLLIN, 0});
      owners.push_back(nullptr);
      for (auto& [key, s] : sessions_) {
        if (s.active == nullptr) continue;
        netsnmp_transport* t = snmp_sess_transport(s.handle);
        if (t == nullptr) continue;
        fds.push_back({t->sock, POLLIN, 0});
        owners.push_back(&s);
      }
      ::poll(fds.data(), fds.size(), 50);
      if (fds[0].revents & POLLIN) {
        std::uint64_t n;
        (void)::read(wake_fd_, &n, sizeof n);
      }
      for (std::size_t i = 1; i < fds.size(); ++i) {
        if (!(fds[i].revents & (POLLIN | POLLERR))) continue;
        netsnmp_large_fd_set set;
        netsnmp_large_fd_set_init(&set, fds[i].fd + 1);
        NETSNMP_LARGE_FD_SET(fds[i].fd, &set);
        snmp_sess_read2(owners[i]->handle, &set);
        netsnmp_large_fd_set_cleanup(&set);
      }
      for (auto& [key, s] : sessions_) {
        if (s.active != nullptr) snmp_sess_timeout(s.handle);
      }
      for (auto it = sessions_.begin(); it != sessions_.end();) {
        if (it->second.close_pending && it->second.active == nullptr) {
          close_session(it->second);
          it = sessions_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& [key, s] : sessions_) {
      if (s.handle) snmp_sess_close(s.handle);
    }
  }

  static std::string fingerprint(const Target& t, const SnmpOptions& o, Duration timeout) {
    return t.address + "|" + std::to_string(o.port) + "|" + std::to_string(o.version) + "|" + o.community + "|" +
           o.username + "|" + std::to_string(o.security_level) + o.auth_protocol + o.auth_password + o.priv_protocol +
           o.priv_password + o.context + "|" + std::to_string(o.retries) + "|" +
           std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count());
  }

  // Opens (or reuses) the session; on failure fills reason/detail.
  Session* session_for(Poll& p) {
    const Target& t = *p.req.target;
    const SnmpOptions& o = *p.opts;
    const std::string key = t.name + "\n" + p.req.spec->name;
    const std::string fp = fingerprint(t, o, p.req.spec->timeout);
    Session& s = sessions_[key];
    s.key = key;
    if (s.handle != nullptr && s.fingerprint != fp) close_session(s);
    if (s.handle != nullptr) return &s;
    netsnmp_session cfg;
    snmp_sess_init(&cfg);
    // Net-SNMP's "udp:" transport is IPv4 only: an IPv6 literal needs "udp6:".
    const bool v6 = t.address.find(':') != std::string::npos;
    const std::string peer = (v6 ? "udp6:[" + t.address + "]" : "udp:" + t.address) + ":" + std::to_string(o.port);
    std::string peer_buf = peer;
    cfg.peername = peer_buf.data();
    cfg.retries = o.retries;
    // The whole poll must fit the probe timeout: each try gets its share.
    const auto per_try = std::chrono::duration_cast<std::chrono::microseconds>(p.req.spec->timeout).count() /
                         (o.retries + 1);
    cfg.timeout = static_cast<long>(std::max<long long>(per_try, 10000));
    std::string community = o.community, user = o.username, context = o.context;
    if (o.version == 3) {
      cfg.version = SNMP_VERSION_3;
      cfg.securityName = user.data();
      cfg.securityNameLen = user.size();
      cfg.securityLevel = o.security_level == 1 ? SNMP_SEC_LEVEL_NOAUTH
                          : o.security_level == 2 ? SNMP_SEC_LEVEL_AUTHNOPRIV
                                                  : SNMP_SEC_LEVEL_AUTHPRIV;
      if (!context.empty()) {
        cfg.contextName = context.data();
        cfg.contextNameLen = context.size();
      }
      if (o.security_level >= 2) {
        const oid* proto = usmHMACSHA1AuthProtocol;
        std::size_t len = USM_AUTH_PROTO_SHA_LEN;
        if (o.auth_protocol == "MD5") { proto = usmHMACMD5AuthProtocol; len = USM_AUTH_PROTO_MD5_LEN; }
        else if (o.auth_protocol == "SHA-224") { proto = usmHMAC128SHA224AuthProtocol; len = OID_LENGTH(usmHMAC128SHA224AuthProtocol); }
        else if (o.auth_protocol == "SHA-256") { proto = usmHMAC192SHA256AuthProtocol; len = OID_LENGTH(usmHMAC192SHA256AuthProtocol); }
        else if (o.auth_protocol == "SHA-384") { proto = usmHMAC256SHA384AuthProtocol; len = OID_LENGTH(usmHMAC256SHA384AuthProtocol); }
        else if (o.auth_protocol == "SHA-512") { proto = usmHMAC384SHA512AuthProtocol; len = OID_LENGTH(usmHMAC384SHA512AuthProtocol); }
        cfg.securityAuthProto = snmp_duplicate_objid(proto, len);
        cfg.securityAuthProtoLen = len;
        cfg.securityAuthKeyLen = USM_AUTH_KU_LEN;
        std::string pw = o.auth_password;
        if (generate_Ku(cfg.securityAuthProto, static_cast<u_int>(cfg.securityAuthProtoLen),
                        reinterpret_cast<u_char*>(pw.data()), pw.size(), cfg.securityAuthKey,
                        &cfg.securityAuthKeyLen) != SNMPERR_SUCCESS) {
          p.reason = FailureReason::kError;
          p.detail = "cannot derive the SNMPv3 auth key";
          return nullptr;
        }
      }
      if (o.security_level == 3) {
        const oid* proto = usmAESPrivProtocol;
        std::size_t len = USM_PRIV_PROTO_AES_LEN;
        if (o.priv_protocol == "DES") { proto = usmDESPrivProtocol; len = USM_PRIV_PROTO_DES_LEN; }
#ifdef NETSNMP_DRAFT_BLUMENTHAL_AES_04
        else if (o.priv_protocol == "AES-192") { proto = usmAES192PrivProtocol; len = OID_LENGTH(usmAES192PrivProtocol); }
        else if (o.priv_protocol == "AES-256") { proto = usmAES256PrivProtocol; len = OID_LENGTH(usmAES256PrivProtocol); }
#endif
        cfg.securityPrivProto = snmp_duplicate_objid(proto, len);
        cfg.securityPrivProtoLen = len;
        cfg.securityPrivKeyLen = USM_PRIV_KU_LEN;
        std::string pw = o.priv_password;
        if (generate_Ku(cfg.securityAuthProto, static_cast<u_int>(cfg.securityAuthProtoLen),
                        reinterpret_cast<u_char*>(pw.data()), pw.size(), cfg.securityPrivKey,
                        &cfg.securityPrivKeyLen) != SNMPERR_SUCCESS) {
          p.reason = FailureReason::kError;
          p.detail = "cannot derive the SNMPv3 privacy key";
          return nullptr;
        }
      }
    } else {
      cfg.version = o.version == 1 ? SNMP_VERSION_1 : SNMP_VERSION_2c;
      cfg.community = reinterpret_cast<u_char*>(community.data());
      cfg.community_len = community.size();
    }
    cfg.callback = &SnmpEngine::on_response;
    cfg.callback_magic = this;
    s.handle = snmp_sess_open(&cfg);
    if (cfg.securityAuthProto) SNMP_FREE(cfg.securityAuthProto);
    if (cfg.securityPrivProto) SNMP_FREE(cfg.securityPrivProto);
    if (s.handle == nullptr) {
      int liberr = 0, syserr = 0;
      char* msg = nullptr;
      snmp_error(&cfg, &liberr, &syserr, &msg);
      classify(liberr, p);
      p.detail = std::string(o.version == 3 ? "SNMPv3 session to " : "SNMP session to ") + peer + ": " +
                 (msg ? msg : "cannot open");
      if (msg) std::free(msg);
      sessions_.erase(key);
      return nullptr;
    }
    s.fingerprint = fp;
    return &s;
  }

  // Net-SNMP caches SNMPv3 users (with their keys) per engine id, process-wide:
  // a session closed after a credential change or an auth failure takes its
  // user along, so the next session derives keys from the configured passwords.
  static void close_session(Session& s) {
    netsnmp_session* ss = snmp_sess_session(s.handle);
    if (ss != nullptr && ss->version == SNMP_VERSION_3 && ss->securityEngineIDLen > 0) {
      if (struct usmUser* u = usm_get_user(ss->securityEngineID, ss->securityEngineIDLen, ss->securityName)) {
        usm_remove_user(u);
        usm_free_user(u);
      }
    }
    snmp_sess_close(s.handle);
    s.handle = nullptr;
  }

  static void classify(int liberr, Poll& p) {
    switch (liberr) {
      case SNMPERR_TIMEOUT: p.reason = FailureReason::kTimeout; break;
      case SNMPERR_AUTHENTICATION_FAILURE:
      case SNMPERR_UNKNOWN_USER_NAME:
      case SNMPERR_UNSUPPORTED_SEC_LEVEL:
      case SNMPERR_DECRYPTION_ERR:
      case SNMPERR_USM_AUTHENTICATIONFAILURE:
      case SNMPERR_USM_UNKNOWNSECURITYNAME:
      case SNMPERR_USM_UNSUPPORTEDSECURITYLEVEL:
      case SNMPERR_USM_DECRYPTIONERROR:
      case SNMPERR_USM_NOTINTIMEWINDOW:
      case SNMPERR_UNKNOWN_ENG_ID:
        p.reason = FailureReason::kAuthFailure;
        break;
      case SNMPERR_BAD_ADDRESS:
      case SNMPERR_UNKNOWN_PDU:
        p.reason = FailureReason::kUnreachable;
        break;
      default: p.reason = FailureReason::kError;
    }
  }

  void start(ProbeRequest req) {
    auto p = std::make_unique<Poll>();
    p->engine = this;
    p->opts = static_cast<const SnmpOptions*>(req.spec->options.get());
    p->req = std::move(req);
    p->started = reactor_.clock().now();
    Poll* raw = p.get();
    polls_.push_back(std::move(p));
    Session* s = session_for(*raw);
    if (s == nullptr) {
      finish(raw);
      return;
    }
    if (s->active != nullptr) {  // the previous poll is still running: this one is skipped
      raw->reason = FailureReason::kTimeout;
      raw->detail = "the previous poll of this device has not finished";
      finish(raw, /*keep_session_poll=*/true);
      return;
    }
    s->active = raw;
    raw->session = s;
    // Scalars: sysUpTime and configured single OIDs, in one GET.
    netsnmp_pdu* pdu = snmp_pdu_create(SNMP_MSG_GET);
    auto add = [&](const std::string& text) {
      auto o = parse_oid(text);
      std::vector<oid> buf(o.begin(), o.end());
      snmp_add_null_var(pdu, buf.data(), buf.size());
    };
    add(kSysUpTime);
    for (const auto& c : raw->opts->oids) {
      if (!c.walk) add(c.oid);
    }
    const std::size_t if_columns = walked_columns(*raw->opts);
    if (if_columns > 0) add(kIfNumber);
    for (std::size_t i = 0; i < if_columns; ++i) raw->column_roots.push_back(parse_oid(kIfColumns[i].oid));
    for (const auto& c : raw->opts->oids) {
      if (c.walk) raw->column_roots.push_back(parse_oid(c.oid));
    }
    raw->column_next = raw->column_roots;
    raw->column_done.assign(raw->column_roots.size(), false);
    raw->columns.resize(raw->column_roots.size());
    send(raw, pdu);
  }

  void send(Poll* p, netsnmp_pdu* pdu) {
    const std::uint64_t token = ++t_next_token;
    t_requests[token] = p;
    p->token = token;
    ++p->packets_sent;
    void* handle = p->session->handle;
    if (snmp_sess_async_send(handle, pdu, &SnmpEngine::on_response,
                             reinterpret_cast<void*>(static_cast<std::uintptr_t>(token))) != 0) {
      return;
    }
    // A v3 send may discover the engine id inside the call and report the
    // failure through the callback, which has then ended (and freed) the poll:
    // only the token map says whether `p` is still alive.
    auto it = t_requests.find(token);
    if (it == t_requests.end()) return;
    t_requests.erase(it);
    send_failed(p, handle, pdu);
  }

  // Out of line: nothing of `p` may be read in send() before the check above.
  [[gnu::noinline]] void send_failed(Poll* p, void* handle, netsnmp_pdu* pdu) {
    int liberr = 0, syserr = 0;
    char* msg = nullptr;
    snmp_sess_error(handle, &liberr, &syserr, &msg);
    classify(liberr, *p);
    p->detail = std::string("cannot send: ") + (msg ? msg : "error");
    if (msg) std::free(msg);
    snmp_free_pdu(pdu);
    finish(p);
  }

  // The next GETBULK (GETNEXT for v1) over every column still being walked.
  void walk_next(Poll* p) {
    std::vector<std::size_t> active;
    for (std::size_t i = 0; i < p->column_roots.size(); ++i) {
      if (!p->column_done[i]) active.push_back(i);
    }
    if (active.empty() || p->varbinds >= p->opts->max_varbinds) {
      if (!active.empty()) p->detail = "walk stopped at max_varbinds (" + std::to_string(p->opts->max_varbinds) + ")";
      finish(p);
      return;
    }
    netsnmp_pdu* pdu = snmp_pdu_create(p->opts->version == 1 ? SNMP_MSG_GETNEXT : SNMP_MSG_GETBULK);
    if (p->opts->version != 1) {
      pdu->non_repeaters = 0;
      const int budget = std::max(1, (p->opts->max_varbinds - p->varbinds) / static_cast<int>(active.size()));
      pdu->max_repetitions = std::min(p->opts->max_repetitions, budget);
    }
    for (std::size_t i : active) {
      std::vector<oid> buf(p->column_next[i].begin(), p->column_next[i].end());
      snmp_add_null_var(pdu, buf.data(), buf.size());
    }
    p->active_columns = active;
    send(p, pdu);
  }

  // Net-SNMP may call back for a request after its poll ended (a report it
  // also retransmits, a late timeout): requests are tokens, looked up here.
  static int on_response(int op, netsnmp_session*, int, netsnmp_pdu* pdu, void* magic) {
    // A retransmission is news, not an answer: the request stays in flight.
    const auto token = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(magic));
    auto it = t_requests.find(token);
    if (it == t_requests.end()) return 1;
    if (op == NETSNMP_CALLBACK_OP_RESEND) {
      ++it->second->packets_sent;
      ++it->second->packets_retried;
      return 1;
    }
    Poll* p = it->second;
    t_requests.erase(it);
    if (p->token != token) return 1;
    p->engine->handle(p, op, pdu);
    return 1;
  }

  std::string peer_text(const Poll* p) const {
    return p->req.target->address + ":" + std::to_string(p->opts->port);
  }

  void handle(Poll* p, int op, netsnmp_pdu* pdu) {
    if (op == NETSNMP_CALLBACK_OP_TIMED_OUT) {
      p->reason = FailureReason::kTimeout;
      p->detail = "no SNMP answer from " + peer_text(p) + " within " + format_duration(p->req.spec->timeout) + " (" +
                  std::to_string(p->opts->retries + 1) + (p->opts->retries == 0 ? " try" : " tries") + ")" +
                  (p->opts->version != 3 ? "; a wrong community looks the same: v1/v2c agents ignore it" : "");
      finish(p);
      return;
    }
    if (op == NETSNMP_CALLBACK_OP_SEC_ERROR) {
      // The answer failed USM checks (wrong auth key or privacy password).
      int liberr = 0, syserr = 0;
      char* msg = nullptr;
      snmp_sess_error(p->session->handle, &liberr, &syserr, &msg);
      p->reason = FailureReason::kAuthFailure;
      p->detail = "SNMPv3 " + peer_text(p) + ": authentication failed for user \"" + p->opts->username +
                  "\" (wrong auth or privacy password, or protocol): " + (msg && *msg ? msg : "security error");
      if (msg) std::free(msg);
      finish(p);
      return;
    }
    if (op != NETSNMP_CALLBACK_OP_RECEIVED_MESSAGE || pdu == nullptr) {
      p->reason = FailureReason::kError;
      p->detail = "SNMP request to " + peer_text(p) + " failed (" +
                  (op == NETSNMP_CALLBACK_OP_SEND_FAILED ? std::string("send failed") : "callback " + std::to_string(op)) + ")";
      finish(p);
      return;
    }
    if (pdu->command == SNMP_MSG_REPORT) {
      const int type = snmpv3_get_report_type(pdu);
      classify(type, *p);
      if (p->reason == FailureReason::kError) p->reason = FailureReason::kAuthFailure;
      p->detail = "SNMPv3 " + peer_text(p) + " refused user \"" + p->opts->username + "\": " + snmp_api_errstring(type);
      finish(p);
      return;
    }
    if (!p->scalars_done) {
      if (pdu->errstat != SNMP_ERR_NOERROR) {
        p->reason = FailureReason::kError;
        p->detail = "SNMP GET from " + peer_text(p) + ": " + snmp_errstring(static_cast<int>(pdu->errstat)) +
                    " at varbind " + std::to_string(pdu->errindex);
        finish(p);
        return;
      }
      for (auto* v = pdu->variables; v != nullptr; v = v->next_variable) p->scalars.push_back(decode(v));
      p->varbinds += static_cast<int>(p->scalars.size());
      p->scalars_done = true;
      walk_next(p);
      return;
    }
    const std::size_t n = p->active_columns.size();
    if (pdu->errstat == SNMP_ERR_NOSUCHNAME && p->opts->version == 1) {
      // v1's way of saying a column ended: that column is done, ask again for the rest.
      const std::size_t at = pdu->errindex >= 1 ? static_cast<std::size_t>(pdu->errindex - 1) : 0;
      if (at < n) p->column_done[p->active_columns[at]] = true;
      walk_next(p);
      return;
    }
    if (pdu->errstat != SNMP_ERR_NOERROR) {
      p->reason = FailureReason::kError;
      p->detail = "SNMP walk of " + peer_text(p) + ": " + snmp_errstring(static_cast<int>(pdu->errstat));
      finish(p);
      return;
    }
    std::size_t i = 0;
    bool progressed = false;
    for (auto* v = pdu->variables; v != nullptr && n > 0; v = v->next_variable, ++i) {
      const std::size_t c = p->active_columns[i % n];
      ++p->varbinds;
      if (p->column_done[c]) continue;
      Varbind vb = decode(v);
      // Past the column, or not moving forward (a broken agent): the walk of it ends.
      if (vb.kind == Varbind::Kind::kEndOfView || !has_prefix(vb.oid, p->column_roots[c]) ||
          !std::lexicographical_compare(p->column_next[c].begin(), p->column_next[c].end(), vb.oid.begin(),
                                        vb.oid.end())) {
        p->column_done[c] = true;
        continue;
      }
      p->column_next[c] = vb.oid;
      p->columns[c].push_back(std::move(vb));
      progressed = true;
    }
    if (!progressed) {
      for (std::size_t c : p->active_columns) p->column_done[c] = true;
    }
    walk_next(p);
  }

  void finish(Poll* p, bool keep_session_poll = false) {
    if (p->token != 0) t_requests.erase(p->token);
    // Closed by the loop, never from inside Net-SNMP's callback (it still holds the request).
    if (p->reason == FailureReason::kAuthFailure && p->session != nullptr) p->session->close_pending = true;
    Sample sample = make_sample(p->req, p->started);
    sample.duration = reactor_.clock().now() - p->started;
    if (p->session != nullptr && !keep_session_poll) p->session->active = nullptr;
    if (p->reason == FailureReason::kNone) {
      PollResult r = interpret(*p->opts, p->scalars, p->columns, p->session ? p->session->last_uptime : -1);
      if (p->session && r.uptime_seconds >= 0) p->session->last_uptime = r.uptime_seconds;
      sample.ok = true;
      sample.values = std::move(r.values);
      sample.series = std::move(r.series);
      sample.detail = p->detail;
      // snmp_exporter's own series about the scrape, for its dashboards.
      const double took = std::chrono::duration<double>(sample.duration).count();
      for (const auto& [name, value] :
           {std::pair<const char*, double>{"snmp_scrape_duration_seconds", took},
            {"snmp_scrape_walk_duration_seconds", took},
            {"snmp_scrape_pdus_returned", static_cast<double>(p->varbinds)},
            {"snmp_scrape_packets_sent", static_cast<double>(p->packets_sent)},
            {"snmp_scrape_packets_retried", static_cast<double>(p->packets_retried)}}) {
        sample.series.push_back({name, {}, value, LabeledValue::Type::kGauge});
      }
    } else {
      sample.ok = false;
      sample.reason = p->reason;
      sample.detail = p->detail;
    }
    auto done = std::move(p->req.done);
    reactor_.post([alive = alive_, done = std::move(done), sample = std::move(sample), this]() mutable {
      if (!*alive) return;
      --in_flight_;
      done(std::move(sample));
    });
    polls_.erase(std::remove_if(polls_.begin(), polls_.end(), [p](const auto& q) { return q.get() == p; }),
                 polls_.end());
  }

  // Requests in flight on this engine's SNMP thread (one thread per engine).
  static thread_local std::map<std::uint64_t, Poll*> t_requests;
  static thread_local std::uint64_t t_next_token;

  Reactor& reactor_;
  int wake_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<std::size_t> in_flight_{0};
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::mutex mu_;
  std::deque<ProbeRequest> queue_;
  std::thread thread_;
  // SNMP thread only:
  std::map<std::string, Session> sessions_;
  std::vector<std::unique_ptr<Poll>> polls_;
};

thread_local std::map<std::uint64_t, SnmpEngine::Poll*> SnmpEngine::t_requests;
thread_local std::uint64_t SnmpEngine::t_next_token = 0;

namespace {
const Measure kMeasures[] = {
    {"uptime_seconds", MeasureType::kNumber, "seconds", "device uptime from sysUpTime"},
    {"rebooted", MeasureType::kNumber, "", "1 when the last poll saw sysUpTime go back: the device rebooted"},
    {"interfaces", MeasureType::kNumber, "count", "selected interfaces"},
    {"interfaces_down", MeasureType::kNumber, "count", "selected interfaces admin up and oper down"},
    {"varbinds", MeasureType::kNumber, "count", "variable bindings the last poll returned"},
};
}  // namespace

std::span<const Measure> measures() { return kMeasures; }

std::unique_ptr<ProbeEngine> make_engine(EngineContext& context) { return std::make_unique<SnmpEngine>(context); }

int port_of(const ProbeOptions& options) { return static_cast<const SnmpOptions&>(options).port; }

}  // namespace nightshift::snmp
