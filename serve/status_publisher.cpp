#include "serve/status_publisher.h"

#include <set>

#include "core/log.h"

namespace nightshift {

void StatusPublisher::restore(std::vector<Incident> history, SystemTime monitoring_since) {
  monitoring_since_ = monitoring_since;
  for (auto& inc : history) history_[inc.id] = std::move(inc);
}

bool StatusPublisher::publish(const Now& now) {
  StatusInput in;
  in.agent = settings_.agent;
  in.title = settings_.title;
  in.now = now.now;
  in.monitoring_since = monitoring_since_;
  in.history_days = kHistoryDays;
  in.components = settings_.components;
  // The manager's incidents are the newest word on each; older ones come from
  // the history, which forgets what left the 90 days.
  if (now.incidents) {
    for (const auto& inc : *now.incidents) history_[inc.id] = inc;
  }
  for (auto it = history_.begin(); it != history_.end();) {
    const bool gone = !it->second.open() && now.now - it->second.resolved_at > std::chrono::hours(24 * kHistoryDays);
    it = gone ? history_.erase(it) : std::next(it);
  }
  in.incidents.reserve(history_.size() + now.fleet_incidents.size());
  std::set<std::string> shown;
  for (const auto& id : now.not_public) hidden_.insert(id);  // for good: its past is not public either
  for (const auto& [id, inc] : history_) {
    if (hidden_.count(id)) continue;
    in.incidents.push_back(inc);
    if (auto fleet_id = now.fleet_ids.find(id); fleet_id != now.fleet_ids.end())
      in.incidents.back().id = fleet_id->second;
    shown.insert(in.incidents.back().id);
    if (inc.open() && now.silenced && now.silenced(inc)) in.silenced.push_back(in.incidents.back().id);
  }
  for (const auto& inc : now.fleet_incidents) {
    if (shown.insert(inc.id).second) in.incidents.push_back(inc);
  }
  in.targets = now.targets;
  in.dead_letters = now.dead_letters;
  auto page = std::make_shared<const StatusPage>(render_status(in));
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (page_ && page_->etag == page->etag) return false;  // same content
    page_ = page;
  }
  if (!settings_.export_dir.empty()) {
    if (Status s = export_status(*page, settings_.export_dir); !s.ok()) {
      log::error("cannot export the status page", {{"dir", settings_.export_dir}, {"error", s.error().message}});
    }
  }
  return true;
}

std::shared_ptr<const StatusPage> StatusPublisher::page() const {
  std::lock_guard<std::mutex> lock(mu_);
  return page_;
}

HttpResponse StatusPublisher::serve(const HttpRequest& req, Format format) const {
  const std::shared_ptr<const StatusPage> snapshot = page();
  if (!snapshot) return HttpResponse::text(503, "the status page is being prepared; try again in a second\n");
  HttpResponse r;
  r.headers.emplace_back("ETag", snapshot->etag);
  // Short public caching: a CDN or browser may hold the live page for 5 s
  // (a feed reader a minute), then revalidate with the ETag.
  r.headers.emplace_back("Cache-Control", format == Format::kAtom ? "public, max-age=60" : "public, max-age=5");
  if (req.header("if-none-match") == snapshot->etag) {
    r.status = 304;
    return r;
  }
  switch (format) {
    case Format::kHtml:
      r.content_type = "text/html; charset=utf-8";
      r.shared_body = std::shared_ptr<const std::string>(snapshot, &snapshot->html);
      break;
    case Format::kJson:
      r.content_type = "application/json";
      r.shared_body = std::shared_ptr<const std::string>(snapshot, &snapshot->json);
      break;
    case Format::kAtom:
      r.content_type = "application/atom+xml; charset=utf-8";
      r.shared_body = std::shared_ptr<const std::string>(snapshot, &snapshot->atom);
      break;
  }
  return r;
}

}  // namespace nightshift
