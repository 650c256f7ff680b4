// `nightshift probe icmp ADDRESS...`: a one-shot probe printing results the way
// fping users expect, for debugging from an edge host and for benchmarks.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>

#include "probes/icmp/icmp.h"

namespace nightshift::icmp {

namespace {

const char kCliUsage[] = R"(Usage: nightshift probe icmp [options] ADDRESS...

Sends COUNT echo requests to every address (one socket per address family,
all targets at once) and prints one line per address:
  127.0.0.1 : xmt/rcv/%loss = 3/3/0%, min/avg/max = 0.021/0.030/0.041 ms

Options:
  -c COUNT      echo requests per address (default 3)
  -p MS         milliseconds between an address's requests (default 100)
  -t MS         per-request timeout in milliseconds (default 1000)
  -s BYTES      payload size (default 56, at least 20)
  -f FILE       read addresses from FILE, one per line ('-' for stdin)
  -n ROUNDS     repeat: ROUNDS rounds per address, one every -i ms, with the
                addresses' starts spread evenly over the interval (as the agent's
                scheduler does); results are summed per address (default 1)
  -i MS         interval between an address's rounds with -n (default 1000)
  -q            print only the summary line
  --raw         use a raw socket (needs CAP_NET_RAW)
  --datagram    use an unprivileged datagram socket (needs net.ipv4.ping_group_range)
Exit status: 0 if every address answered, 1 if any did not, 2 on usage errors.
)";

struct Line {
  std::string address;
  int sent = 0;
  int received = 0;
  double min = 0, sum = 0, max = 0;
  FailureReason reason = FailureReason::kNone;
  std::string detail;
  bool done = false;
};

bool parse_int(const std::string& s, long long min, long long max, long long& out) {
  try {
    std::size_t used = 0;
    out = std::stoll(s, &used);
    return used == s.size() && out >= min && out <= max;
  } catch (...) {
    return false;
  }
}

}  // namespace

int cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  RoundSpec spec;
  EngineSettings settings;
  bool quiet = false;
  long long rounds = 1;
  Duration round_interval = std::chrono::seconds(1);
  std::vector<std::string> addresses;
  auto usage = [&](const std::string& msg) {
    err << "nightshift probe icmp: " << msg << "\n\n" << kCliUsage;
    return 2;
  };
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](long long min, long long max, long long& v) {
      if (i + 1 >= args.size()) return false;
      return parse_int(args[++i], min, max, v);
    };
    long long v = 0;
    if (a == "-h" || a == "--help") {
      out << kCliUsage;
      return 0;
    } else if (a == "-c") {
      if (!value(1, 10000, v)) return usage("-c needs a count from 1 to 10000");
      spec.count = static_cast<int>(v);
    } else if (a == "-p") {
      if (!value(0, 60000, v)) return usage("-p needs milliseconds from 0 to 60000");
      spec.spacing = std::chrono::milliseconds(v);
    } else if (a == "-t") {
      if (!value(1, 60000, v)) return usage("-t needs milliseconds from 1 to 60000");
      spec.timeout = std::chrono::milliseconds(v);
    } else if (a == "-s") {
      if (!value(static_cast<long long>(kStampSize), 1472, v)) return usage("-s needs a size from 20 to 1472");
      spec.payload_size = static_cast<std::size_t>(v);
    } else if (a == "-n") {
      if (!value(1, 1000000, v)) return usage("-n needs a round count from 1 to 1000000");
      rounds = v;
    } else if (a == "-i") {
      if (!value(1, 3600000, v)) return usage("-i needs milliseconds from 1 to 3600000");
      round_interval = std::chrono::milliseconds(v);
    } else if (a == "-q") {
      quiet = true;
    } else if (a == "--raw") {
      settings.socket_kind = SocketKind::kRaw;
    } else if (a == "--datagram") {
      settings.socket_kind = SocketKind::kDatagram;
    } else if (a == "-f") {
      if (i + 1 >= args.size()) return usage("-f needs a file");
      const std::string path = args[++i];
      std::ifstream file;
      std::istream* in = &std::cin;
      if (path != "-") {
        file.open(path);
        if (!file) return usage("cannot read " + path);
        in = &file;
      }
      std::string line;
      while (std::getline(*in, line)) {
        const auto b = line.find_first_not_of(" \t\r");
        if (b == std::string::npos || line[b] == '#') continue;
        const auto e = line.find_last_not_of(" \t\r");
        addresses.push_back(line.substr(b, e - b + 1));
      }
    } else if (!a.empty() && a[0] == '-') {
      return usage("unknown option " + a);
    } else {
      addresses.push_back(a);
    }
  }
  if (addresses.empty()) return usage("no addresses given");

  SystemClock clock;
  Reactor reactor(clock);
  Resolver resolver(reactor);
  EngineContext context{reactor, resolver};
  IcmpEngine engine(context, settings);
  std::vector<Line> lines(addresses.size());
  std::size_t pending = addresses.size() * static_cast<std::size_t>(rounds);
  const SteadyTime start = clock.now();
  for (auto& l : lines) l.min = std::numeric_limits<double>::max();

  auto record = [&lines, &pending](std::size_t i, RoundResult r) {
    Line& l = lines[i];
    l.sent += r.sent;
    l.received += r.received;
    if (!r.ok()) {
      l.reason = r.reason;
      l.detail = std::move(r.detail);
    }
    for (const auto& p : r.packets) {
      if (p.outcome != PacketResult::Outcome::kReply) continue;
      l.min = std::min(l.min, p.rtt_seconds);
      l.max = std::max(l.max, p.rtt_seconds);
      l.sum += p.rtt_seconds;
    }
    l.done = true;
    --pending;
  };
  std::vector<SocketAddress> literals;  // only with -n: resolved once, reused each round
  for (std::size_t i = 0; i < addresses.size(); ++i) {
    lines[i].address = std::move(addresses[i]);
    auto literal = Resolver::parse_literal(lines[i].address);
    if (rounds > 1) {
      if (!literal) return usage("-n needs IP addresses, not names: " + lines[i].address);
      literals.push_back(*literal);
      continue;
    }
    if (literal) {
      engine.ping(*literal, spec, [&record, i](RoundResult r) { record(i, std::move(r)); });
      continue;
    }
    resolver.resolve(lines[i].address, AddressFamily::kAny,
                     [&engine, &record, &spec, i](Result<std::vector<SocketAddress>> resolved) {
                       if (!resolved.ok()) {
                         RoundResult r;
                         r.reason = FailureReason::kDnsFailure;
                         r.detail = resolved.error().message;
                         record(i, std::move(r));
                         return;
                       }
                       engine.ping(resolved.value().front(), spec,
                                   [&record, i](RoundResult r) { record(i, std::move(r)); });
                     });
  }
  // With -n, a 1 ms ticker starts the rounds that are due: address k's round r
  // at start + r * interval + k * interval / addresses.
  std::size_t launched = 0;
  const std::size_t total_launches = literals.size() * static_cast<std::size_t>(rounds);
  std::function<void()> tick = [&] {
    const double elapsed = std::chrono::duration<double>(clock.now() - start).count();
    const double per_second =
        static_cast<double>(literals.size()) / std::chrono::duration<double>(round_interval).count();
    const auto due = std::min(total_launches, static_cast<std::size_t>(elapsed * per_second) + 1);
    for (; launched < due; ++launched) {
      const std::size_t i = launched % literals.size();
      engine.ping(literals[i], spec, [&record, i](RoundResult r) { record(i, std::move(r)); });
    }
    if (launched < total_launches) reactor.call_after(std::chrono::milliseconds(1), tick);
  };
  if (total_launches > 0) tick();
  // Bounded: every round ends by its packets' timeouts; the margin covers
  // sending (about a microsecond per packet) and name resolution.
  const Duration limit = spec.spacing * (spec.count - 1) + spec.timeout + std::chrono::seconds(30) +
                         round_interval * (rounds - 1) +
                         std::chrono::microseconds(20) * static_cast<std::int64_t>(lines.size() * spec.count);
  while (pending > 0 && clock.now() - start < limit) reactor.run_once(std::chrono::milliseconds(100));

  std::size_t reachable = 0;
  std::uint64_t sent = 0, received = 0;
  std::string text;
  char buf[256];
  for (const auto& l : lines) {
    sent += static_cast<std::uint64_t>(l.sent);
    received += static_cast<std::uint64_t>(l.received);
    if (l.received > 0) ++reachable;
    if (quiet) continue;
    const int loss = l.sent == 0 ? 100 : (l.sent - l.received) * 100 / l.sent;
    std::snprintf(buf, sizeof buf, "%s : xmt/rcv/%%loss = %d/%d/%d%%", l.address.c_str(), l.sent, l.received, loss);
    text += buf;
    if (l.received > 0) {
      std::snprintf(buf, sizeof buf, ", min/avg/max = %.3f/%.3f/%.3f ms", l.min * 1e3, l.sum / l.received * 1e3,
                    l.max * 1e3);
      text += buf;
    } else if (!l.done) {
      text += " (not finished)";
    } else {
      text += " (";
      text += to_string(l.reason);
      if (!l.detail.empty()) text += ": " + l.detail;
      text += ")";
    }
    text += '\n';
    if (text.size() > (1 << 16)) {
      out << text;
      text.clear();
    }
  }
  out << text;
  const double elapsed = std::chrono::duration<double>(clock.now() - start).count();
  std::snprintf(
      buf, sizeof buf, "%zu/%zu addresses reachable, %llu sent, %llu received, %.3f s (%s socket)\n", reachable,
      lines.size(), static_cast<unsigned long long>(sent), static_cast<unsigned long long>(received), elapsed,
      std::string(to_string(engine.socket_kind(Family::kIPv4) != SocketKind::kAuto ? engine.socket_kind(Family::kIPv4)
                                                                                   : engine.socket_kind(Family::kIPv6)))
          .c_str());
  err << buf;
  out.flush();
  return reachable == lines.size() ? 0 : 1;
}

}  // namespace nightshift::icmp
