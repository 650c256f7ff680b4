#include "serve/exporter_view.h"

#include <algorithm>
#include <charconv>
#include <set>

#include "probes/registry/registry.h"

namespace nightshift {

namespace {

std::string format_value(double v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general);
  return ec == std::errc() ? std::string(buf, end) : std::string("NaN");
}

std::string escape_label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

// Families in first-seen order, each with its TYPE line once: the exposition
// format wants a family's samples together.
void render_series(const std::vector<LabeledValue>& series, const std::set<std::string>& skip, std::string& out) {
  std::vector<std::string> order;
  std::map<std::string, std::vector<const LabeledValue*>> by_name;
  for (const auto& v : series) {
    if (skip.count(v.metric)) continue;
    auto& list = by_name[v.metric];
    if (list.empty()) order.push_back(v.metric);
    list.push_back(&v);
  }
  for (const auto& name : order) {
    const auto& list = by_name[name];
    out += "# TYPE " + name + (list.front()->type == LabeledValue::Type::kCounter ? " counter\n" : " gauge\n");
    for (const LabeledValue* v : list) {
      out += name;
      if (!v->labels.empty()) {
        out += '{';
        for (std::size_t i = 0; i < v->labels.size(); ++i) {
          out += (i ? "," : "") + v->labels[i].first + "=\"" + escape_label(v->labels[i].second) + "\"";
        }
        out += '}';
      }
      out += ' ' + format_value(v->value) + '\n';
    }
  }
}

void gauge(std::string& out, const char* name, const char* help, double value) {
  out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " gauge\n" + name + " " +
         format_value(value) + "\n";
}

// "host:port" -> ("host", port); "[::1]:80" -> ("::1", 80); no port: (text, 0).
std::pair<std::string, int> split_port(const std::string& text) {
  std::string host = text;
  int port = 0;
  const auto colon = text.rfind(':');
  const bool bracketed = !text.empty() && text.front() == '[';
  if (colon != std::string::npos && (bracketed || text.find(':') == colon)) {
    const std::string p = text.substr(colon + 1);
    if (!p.empty() && p.size() <= 5 && p.find_first_not_of("0123456789") == std::string::npos) {
      port = std::stoi(p);
      host = text.substr(0, colon);
    }
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return {host, port};
}

bool module_names_kind(const std::string& module, const std::string& kind) {
  return module == kind || module.rfind(kind + "_", 0) == 0;
}

}  // namespace

std::string render_blackbox(const ProbeResult& result) {
  std::string out;
  gauge(out, "probe_success", "Displays whether or not the probe was a success", result.ok ? 1 : 0);
  gauge(out, "probe_duration_seconds", "Returns how long the probe took to complete in seconds",
        result.duration_seconds);
  render_series(result.series, {"probe_success", "probe_duration_seconds"}, out);
  return out;
}

std::string render_snmp(const ProbeResult& result) {
  std::string out;
  render_series(result.series, {}, out);
  return out;
}

void ExporterView::sync_targets(const std::vector<std::shared_ptr<const Target>>& targets) {
  std::map<std::string, Entry> fresh;
  std::lock_guard<std::mutex> lock(mu_);
  snmp_kinds_.clear();
  for (const auto& t : targets) {
    Entry e;
    e.address = t->address;
    const auto old = targets_.find(t->name);
    for (const auto& spec : t->probes) {
      Probe p;
      p.name = spec.name;
      p.kind = spec.kind;
      if (const ProbeKind* kind = find_probe_kind(spec.kind)) {
        p.snmp_format = kind->exporter == ExporterFormat::kSnmp;
        if (kind->exporter == ExporterFormat::kNone) continue;
        if (p.snmp_format && std::find(snmp_kinds_.begin(), snmp_kinds_.end(), p.kind) == snmp_kinds_.end()) {
          snmp_kinds_.push_back(p.kind);
        }
        if (kind->port != nullptr && spec.options) p.port = kind->port(*spec.options);
      }
      // A probe that survives a reload unchanged keeps its last result; one
      // whose target moved waits for a run at the new address.
      bool kept = false;
      if (old != targets_.end() && old->second.address == e.address) {
        for (const auto& o : old->second.probes) {
          if (o.name == p.name && o.kind == p.kind && o.port == p.port) {
            p.failure_detail = o.failure_detail;
            // The records start afresh when the labels changed: then so does this.
            p.stale_runs = std::min(o.stale_runs, results_.runs(t->name, p.name));
            kept = true;
          }
        }
      }
      if (!kept) p.stale_runs = results_.runs(t->name, p.name);
      e.probes.push_back(std::move(p));
    }
    fresh[t->name] = std::move(e);
  }
  targets_ = std::move(fresh);
  by_name_.clear();
  by_name_.reserve(targets_.size());
  for (auto& [name, e] : targets_) by_name_.emplace(name, &e);
}

void ExporterView::record(const Sample& sample) {
  // Written by sync_targets() on this same thread: read without the lock.
  if (std::find(snmp_kinds_.begin(), snmp_kinds_.end(), sample.kind) == snmp_kinds_.end()) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_name_.find(sample.target);
  if (it == by_name_.end()) return;
  for (auto& p : it->second->probes) {
    if (p.name == sample.probe) {
      if (sample.ok) {
        p.failure_detail.clear();
      } else {
        p.failure_detail = sample.detail;
      }
      return;
    }
  }
}

HttpResponse ExporterView::probe(const HttpRequest& request) const { return serve(request, false); }
HttpResponse ExporterView::snmp(const HttpRequest& request) const { return serve(request, true); }

HttpResponse ExporterView::serve(const HttpRequest& request, bool snmp_format) const {
  const std::string target = request.param("target");
  const std::string module = request.param("module");
  if (target.empty()) return HttpResponse::text(400, "target parameter is missing\n");
  const auto [host, port] = split_port(target);
  std::string found;  // target/probe that answers, for messages
  std::string target_name, probe_name, failure_detail;
  std::uint64_t stale_runs = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // The target named, else every target at that address, in name order.
    std::vector<std::pair<const std::string*, const Entry*>> entries;
    for (const std::string& key : {target, host}) {
      if (auto it = targets_.find(key); it != targets_.end() && entries.empty()) entries.emplace_back(&it->first, &it->second);
    }
    const bool by_name = !entries.empty() && *entries.front().first == target;
    if (entries.empty()) {
      for (const auto& [name, e] : targets_) {
        if (e.address == host || e.address == target) entries.emplace_back(&name, &e);
      }
    }
    if (entries.empty()) {
      return HttpResponse::text(404, "no target named or addressed \"" + target +
                                         "\" is configured in this nightshift agent\n");
    }
    // Over every entry: a probe of that name first, then of that kind, then
    // any; a module that names neither narrows nothing.
    const Probe* chosen = nullptr;
    for (int pass = 0; pass < 3 && chosen == nullptr; ++pass) {
      for (const auto& [name, entry] : entries) {
        for (const auto& p : entry->probes) {
          if (p.snmp_format != snmp_format) continue;
          if (port != 0 && !by_name && p.port != port) continue;
          const bool fits = pass == 0   ? p.name == module
                            : pass == 1 ? !module.empty() && module_names_kind(module, p.kind)
                                        : true;
          if (!fits) continue;
          chosen = &p;
          found = *name + "/" + p.name;
          target_name = *name;
          break;
        }
        if (chosen != nullptr) break;
      }
    }
    if (chosen == nullptr) {
      std::string have;
      for (const auto& [name, entry] : entries) {
        for (const auto& p : entry->probes) have += (have.empty() ? "" : ", ") + *name + "/" + p.name;
      }
      return HttpResponse::text(404, "no " + std::string(snmp_format ? "SNMP" : "ICMP or TCP") + " probe of \"" +
                                         target + "\"" + (port && !by_name ? " on port " + std::to_string(port) : "") +
                                         " is configured" + (have.empty() ? "" : " (probes there: " + have + ")") +
                                         "\n");
    }
    probe_name = chosen->name;
    failure_detail = chosen->failure_detail;
    stale_runs = chosen->stale_runs;
  }
  const std::optional<ProbeResult> last = results_.last_result(target_name, probe_name);
  if (!last || last->runs <= stale_runs) {
    return HttpResponse::text(503, "probe " + found + " has not completed a run yet\n");
  }
  HttpResponse r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.headers.emplace_back("Cache-Control", "no-store");
  if (!snmp_format) {
    r.body = render_blackbox(*last);
    return r;
  }
  if (!last->ok) {
    // snmp_exporter answers a failed walk with 500, which Prometheus counts as up 0.
    r.status = 500;
    r.content_type = "text/plain; charset=utf-8";
    r.body = "An error has occurred while serving metrics:\n\nprobe " + found + " failed (" +
             std::string(to_string(last->reason)) + "): " + failure_detail + "\n";
    return r;
  }
  r.body = render_snmp(*last);
  return r;
}

}  // namespace nightshift
