// StatusPublisher: what the status page shows and how it is served. It keeps
// the incidents of the page's 90 days (the incident manager keeps only a day),
// renders a snapshot from the newest state when told to (the agent coalesces
// changes and calls publish() on its reactor), serves that snapshot to any
// HTTP thread with its ETag and caching headers, and writes it to the export
// directory when its content changed.
//
// Thread safety: publish(), restore() and configure() on one thread (the
// reactor); serve() and page() from any thread.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "nightshift/clock.h"
#include "nightshift/incident.h"
#include "serve/http.h"
#include "serve/status_page.h"

namespace nightshift {

class StatusPublisher {
 public:
  static constexpr int kHistoryDays = 90;

  struct Settings {
    std::string agent;
    std::string title;                       // empty: "Service status"
    std::vector<StatusComponent> components;  // empty: one per group of targets
    std::string export_dir;                  // empty: not exported
  };
  // What the page is rendered from, gathered by the caller at publish time.
  struct Now {
    SystemTime now{};
    const std::vector<Incident>* incidents = nullptr;  // the manager's: the newest word on each
    std::vector<TargetHealth> targets;
    std::function<bool(const Incident&)> silenced;  // under a silence: shown as maintenance
    long long dead_letters = 0;
    // [fleet]: a local incident that is this agent's copy of a fleet incident
    // shows under the fleet id (local id -> fleet id), so every agent's page
    // names an outage alike; the fleet's incidents this agent has no copy of
    // are shown too (ids: the fleet's; one with the id of a shown one is not).
    std::map<std::string, std::string> fleet_ids;
    std::vector<Incident> fleet_incidents;
    // [fleet]: local incidents the fleet judged this vantage's own path (the
    // others see the target up): like the agent's isolation, about monitoring,
    // not the service, so customers never see them (open or past).
    std::set<std::string> not_public;
  };
  enum class Format { kHtml, kJson, kAtom };

  explicit StatusPublisher(Settings settings) : settings_(std::move(settings)) {}

  // A reload: the next publish() renders with these.
  void configure(Settings settings) { settings_ = std::move(settings); }
  // At start: the stored incidents of the last kHistoryDays, and since when
  // this store has been watching (days before it show "no data").
  void restore(std::vector<Incident> history, SystemTime monitoring_since);
  // Renders the page; returns true when its content changed (then it is
  // served from now on and exported).
  bool publish(const Now& now);

  // The snapshot as a response: 503 before the first publish(), 304 for a
  // matching If-None-Match, else the shared bytes (no copy per request).
  HttpResponse serve(const HttpRequest& req, Format format) const;
  std::shared_ptr<const StatusPage> page() const;

  // How many incidents the page keeps (open, and resolved within kHistoryDays).
  std::size_t history_size() const { return history_.size(); }

 private:
  Settings settings_;
  std::map<std::string, Incident> history_;  // by id; reactor thread
  std::set<std::string> hidden_;             // Now::not_public ever given; reactor thread
  SystemTime monitoring_since_{};
  mutable std::mutex mu_;  // guards page_
  std::shared_ptr<const StatusPage> page_;
};

}  // namespace nightshift
