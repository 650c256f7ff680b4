#include "notify/notifier.h"

#include <curl/curl.h>

#include <algorithm>
#include <random>

#include "core/duration.h"
#include "core/log.h"

namespace nightshift {

namespace {
constexpr std::size_t kMaxReplyExcerpt = 200;
constexpr std::int64_t kCountsEveryMs = 2000;
constexpr std::int64_t kPruneEveryMs = 3600 * 1000;
constexpr std::int64_t kKeepDoneMs = 7LL * 24 * 3600 * 1000;  // delivered and dead rows stay a week

std::int64_t ms_of(Duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); }

void replace_all(std::string& text, const std::string& what, const std::string& with) {
  if (what.empty()) return;
  for (auto pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + with.size())) {
    text.replace(pos, what.size(), with);
  }
}

// Error texts reach logs and the outbox: keep every secret of the sink out of
// them, even when an endpoint quotes the request back in its answer. A URL can
// carry one too (a Slack webhook's path is its token), so its path goes as well.
std::string redact(std::string text, const SinkSpec& sink) {
  replace_all(text, sink.url, "<sink url>");
  if (const auto scheme = sink.url.find("://"); scheme != std::string::npos) {
    const auto path = sink.url.find('/', scheme + 3);
    if (path != std::string::npos && sink.url.size() - path > 1) replace_all(text, sink.url.substr(path), "<sink url path>");
  }
  replace_all(text, sink.secret, "<secret>");
  replace_all(text, sink.routing_key, "<routing key>");
  replace_all(text, sink.bearer_token, "<bearer token>");
  return text;
}

size_t keep_excerpt(char* data, size_t size, size_t n, void* user) {
  auto* out = static_cast<std::string*>(user);
  const size_t bytes = size * n;
  if (out->size() < kMaxReplyExcerpt) out->append(data, std::min(bytes, kMaxReplyExcerpt - out->size()));
  return bytes;
}

bool retryable_status(long status) { return status == 408 || status == 425 || status == 429 || status >= 500; }
}  // namespace

struct Notifier::Transfer {
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  OutgoingRequest request;
  OutboxEntry entry;
  SinkSpec sink;
  bool from_memory = false;
  std::string reply;
  char error[CURL_ERROR_SIZE] = {};
  ~Transfer() {
    if (headers) curl_slist_free_all(headers);
    if (easy) curl_easy_cleanup(easy);
  }
};

Notifier::Notifier(std::string db_path, prometheus::Registry& registry, std::string agent_name, const Clock& clock)
    : db_path_(std::move(db_path)),
      agent_(std::move(agent_name)),
      clock_(clock),
      results_(prometheus::BuildCounter()
                   .Name("nightshift_notifications_total")
                   .Help("Notification delivery attempts by sink and result: delivered, retry, dead_letter.")
                   .Register(registry)),
      depth_(prometheus::BuildGauge()
                 .Name("nightshift_outbox_depth")
                 .Help("Notifications waiting in the outbox, by sink.")
                 .Register(registry)),
      dead_(prometheus::BuildGauge()
                .Name("nightshift_outbox_dead_letters")
                .Help("Notifications given up on (kept for a week), by sink.")
                .Register(registry)),
      oldest_(prometheus::BuildGauge()
                  .Name("nightshift_outbox_oldest_pending_seconds")
                  .Help("Age of the oldest notification waiting in the outbox, by sink; 0 when empty.")
                  .Register(registry)),
      latency_(prometheus::BuildHistogram()
                   .Name("nightshift_notification_delivery_seconds")
                   .Help("Time from a notification's creation to its delivery, by sink.")
                   .Register(registry)) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  multi_ = curl_multi_init();
}

Notifier::~Notifier() {
  stop();
  in_flight_.clear();
  curl_multi_cleanup(static_cast<CURLM*>(multi_));
}

std::int64_t Notifier::now_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock_.wall_now().time_since_epoch()).count();
}

Status Notifier::start(std::vector<SinkSpec> sinks, NotifyPolicy policy) {
  auto opened = Outbox::open(db_path_);
  if (!opened.ok()) return opened.error();
  return start(std::move(opened.value()), std::move(sinks), std::move(policy));
}

Status Notifier::start(std::unique_ptr<OutboxQueue> outbox, std::vector<SinkSpec> sinks, NotifyPolicy policy) {
  outbox_ = std::move(outbox);
  configure(std::move(sinks), std::move(policy));
  thread_ = std::thread([this] { run(); });
  return {};
}

void Notifier::configure(std::vector<SinkSpec> sinks, NotifyPolicy policy) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    sinks_ = std::move(sinks);
    policy_ = std::move(policy);
    for (const auto& s : sinks_) (void)series(s.name);
  }
  wake();
}

void Notifier::wake() {
  dirty_ = true;
  if (multi_) curl_multi_wakeup(static_cast<CURLM*>(multi_));
}

void Notifier::deliver_from_memory(std::vector<OutboxEntry> rows) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& r : rows) memory_.push_back(std::move(r));
  }
  wake();
}

void Notifier::stop() {
  if (!thread_.joinable()) return;
  stop_ = true;
  wake();
  thread_.join();
}

Notifier::SinkSeries& Notifier::series(const std::string& sink) {
  auto it = series_.find(sink);
  if (it != series_.end()) return it->second;
  SinkSeries s;
  const prometheus::Labels labels{{"sink", sink}, {"agent", agent_}};
  s.depth = &depth_.Add(labels);
  s.dead = &dead_.Add(labels);
  s.oldest = &oldest_.Add(labels);
  s.latency = &latency_.Add(labels, prometheus::Histogram::BucketBoundaries{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
                                                                          60, 300, 900, 3600, 14400});
  return series_.emplace(sink, std::move(s)).first->second;
}

void Notifier::count(const std::string& sink, const std::string& result) {
  std::lock_guard<std::mutex> lock(mu_);
  SinkSeries& s = series(sink);
  auto& c = s.results[result];
  if (c == nullptr) c = &results_.Add({{"sink", sink}, {"agent", agent_}, {"result", result}});
  c->Increment();
}

void Notifier::run() {
  auto* multi = static_cast<CURLM*>(multi_);
  while (!stop_) {
    const std::int64_t now = now_ms();
    if (dirty_.exchange(false) || now >= next_due_ms_) start_due();
    if (now >= next_counts_ms_) {
      refresh_counts();
      next_counts_ms_ = now + kCountsEveryMs;
    }
    if (now >= next_prune_ms_) {
      if (Status s = outbox_->prune(now - kKeepDoneMs); !s.ok()) {
        log::warn("cannot prune the outbox", {{"error", s.error().message}});
      }
      next_prune_ms_ = now + kPruneEveryMs;
    }
    const std::int64_t wait =
        std::clamp<std::int64_t>(std::min(next_due_ms_, next_counts_ms_) - now_ms(), 0, 1000);
    curl_multi_poll(multi, nullptr, 0, static_cast<int>(wait), nullptr);
    int running = 0;
    curl_multi_perform(multi, &running);
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL* easy = msg->easy_handle;
      const CURLcode code = msg->data.result;
      auto it = std::find_if(in_flight_.begin(), in_flight_.end(),
                             [easy](const auto& kv) { return kv.second->easy == easy; });
      if (it == in_flight_.end()) continue;
      long status = 0;
      curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
      curl_multi_remove_handle(multi, easy);
      std::unique_ptr<Transfer> t = std::move(it->second);
      in_flight_.erase(it);
      finish(*t, code, status);
      dirty_ = true;  // the sink's next row may go now
    }
  }
  for (auto& [sink, t] : in_flight_) curl_multi_remove_handle(multi, t->easy);
  in_flight_.clear();
}

void Notifier::start_due() {
  const std::int64_t now = now_ms();
  std::int64_t next = now + 60'000;  // re-read the outbox at least once a minute
  std::vector<SinkSpec> sinks;
  Duration dead_after;
  {
    std::lock_guard<std::mutex> lock(mu_);
    sinks = sinks_;
    dead_after = policy_.dead_after;
  }
  auto find_sink = [&](const std::string& name) -> const SinkSpec* {
    for (const auto& s : sinks) {
      if (s.name == name) return &s;
    }
    return nullptr;
  };
  auto heads = outbox_->heads();
  if (!heads.ok()) {
    log::error("cannot read the outbox; retrying", {{"error", heads.error().message}});
    next = now + 1000;
  } else {
    for (auto& e : *heads) {
      if (in_flight_.count(e.sink)) continue;
      const SinkSpec* sink = find_sink(e.sink);
      if (now - e.created_ms > ms_of(dead_after)) {
        const std::string why = "undelivered for " + format_duration(dead_after) +
                                (e.last_error.empty() ? "" : "; last error: " + e.last_error);
        log::error("notification dead-lettered", {{"sink", e.sink}, {"key", e.key}, {"error", why}});
        (void)outbox_->dead_letter(e.seq, now, why);
        count(e.sink, "dead_letter");
        next = now;  // the sink's next row
        continue;
      }
      if (sink == nullptr) continue;  // no longer configured: kept until dead_after
      if (e.next_attempt_ms > now) {
        next = std::min(next, e.next_attempt_ms);
        continue;
      }
      start_transfer(*sink, std::move(e), false);
    }
  }
  // Rows the outbox could not take: after the sink's stored rows.
  std::vector<std::string> dropped;
  std::unique_lock<std::mutex> lock(mu_);
  for (auto it = memory_.begin(); it != memory_.end();) {
    const SinkSpec* sink = find_sink(it->sink);
    if (sink == nullptr || now - it->created_ms > ms_of(dead_after)) {
      log::error("notification dead-lettered", {{"sink", it->sink}, {"key", it->key}, {"error", it->last_error}});
      dropped.push_back(it->sink);
      it = memory_.erase(it);
      continue;
    }
    if (in_flight_.count(it->sink) || it->next_attempt_ms > now) {
      if (!in_flight_.count(it->sink)) next = std::min(next, it->next_attempt_ms);
      ++it;
      continue;
    }
    OutboxEntry e = std::move(*it);
    it = memory_.erase(it);
    start_transfer(*sink, std::move(e), true);
  }
  lock.unlock();
  for (const auto& sink : dropped) count(sink, "dead_letter");
  next_due_ms_ = next;
}

void Notifier::start_transfer(const SinkSpec& sink, OutboxEntry entry, bool from_memory) {
  auto t = std::make_unique<Transfer>();
  t->sink = sink;
  t->entry = std::move(entry);
  t->from_memory = from_memory;
  t->request = prepare_request(sink, t->entry.body, t->entry.key, clock_.wall_now());
  t->easy = curl_easy_init();
  CURL* e = t->easy;
  for (const auto& [k, v] : t->request.headers) t->headers = curl_slist_append(t->headers, (k + ": " + v).c_str());
  t->headers = curl_slist_append(t->headers, "Expect:");  // no 100-continue round trip
  curl_easy_setopt(e, CURLOPT_URL, t->request.url.c_str());
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
  curl_easy_setopt(e, CURLOPT_POST, 1L);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->request.body.c_str());
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, static_cast<long>(t->request.body.size()));
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(ms_of(sink.timeout)));
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(std::min<std::int64_t>(ms_of(sink.timeout), 5000)));
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, sink.tls_verify ? 1L : 0L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, sink.tls_verify ? 2L : 0L);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &keep_excerpt);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &t->reply);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error);
  curl_multi_add_handle(static_cast<CURLM*>(multi_), e);
  in_flight_[sink.name] = std::move(t);
}

void Notifier::finish(Transfer& t, int curl_code, long http_status) {
  const std::int64_t now = now_ms();
  OutboxEntry& e = t.entry;
  const bool transport_ok = curl_code == CURLE_OK;
  if (transport_ok && http_status >= 200 && http_status < 300) {
    if (!t.from_memory) {
      if (Status s = outbox_->delivered(e.seq, now); !s.ok()) {
        // Sent, but not recorded: it will be sent again (at least once).
        log::error("notification sent but not marked delivered", {{"sink", e.sink}, {"error", s.error().message}});
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      series(e.sink).latency->Observe(static_cast<double>(now - e.created_ms) / 1000.0);
    }
    count(e.sink, "delivered");
    log::info("notification delivered",
              {{"sink", e.sink}, {"event", e.event}, {"incident", e.incident}, {"attempt", e.attempts + 1}});
    return;
  }
  std::string why;
  if (!transport_ok) {
    why = t.error[0] ? std::string(t.error) : curl_easy_strerror(static_cast<CURLcode>(curl_code));
  } else {
    std::string excerpt;
    for (char c : t.reply) excerpt += (c >= 0x20 && c < 0x7f) ? c : ' ';
    why = "HTTP " + std::to_string(http_status) + (excerpt.empty() ? "" : ": " + excerpt);
  }
  why = redact(why, t.sink);
  const int attempts = e.attempts + 1;
  if (transport_ok && !retryable_status(http_status)) {
    log::error("notification rejected; dead-lettered (the endpoint will not accept it)",
               {{"sink", e.sink}, {"key", e.key}, {"error", why}});
    if (!t.from_memory) (void)outbox_->dead_letter(e.seq, now, why);
    count(e.sink, "dead_letter");
    return;
  }
  NotifyPolicy policy;
  {
    std::lock_guard<std::mutex> lock(mu_);
    policy = policy_;
  }
  // Exponential backoff with "equal jitter": half the delay fixed, half random.
  const std::int64_t first = std::max<std::int64_t>(1, ms_of(policy.first_backoff));
  const std::int64_t cap = std::max<std::int64_t>(first, ms_of(policy.max_backoff));
  std::int64_t delay = first;
  for (int i = 1; i < attempts && delay < cap; ++i) delay *= 2;
  delay = std::min(delay, cap);
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  delay = delay / 2 + static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(delay / 2 + 1));
  e.attempts = attempts;
  e.next_attempt_ms = now + delay;
  e.last_error = why;
  log::warn("notification failed; will retry", {{"sink", e.sink},
                                               {"event", e.event},
                                               {"incident", e.incident},
                                               {"attempt", attempts},
                                               {"retry_in_ms", delay},
                                               {"error", why}});
  count(e.sink, "retry");
  if (t.from_memory) {
    std::lock_guard<std::mutex> lock(mu_);
    memory_.push_front(std::move(e));
  } else if (Status s = outbox_->retry_later(e.seq, attempts, e.next_attempt_ms, why); !s.ok()) {
    log::error("cannot record a retry in the outbox", {{"sink", e.sink}, {"error", s.error().message}});
  }
  next_due_ms_ = std::min(next_due_ms_, e.next_attempt_ms);
}

void Notifier::refresh_counts() {
  auto counts = outbox_->counts();
  if (!counts.ok()) return;
  const std::int64_t now = now_ms();
  std::lock_guard<std::mutex> lock(mu_);
  std::map<std::string, std::int64_t> in_memory;
  for (const auto& m : memory_) in_memory[m.sink]++;
  long long dead = 0;
  for (const auto& [sink, c] : *counts) dead += c.dead;
  dead_letters_ = dead;
  for (auto& [sink, s] : series_) {
    auto it = counts->find(sink);
    const OutboxQueue::Counts c = it == counts->end() ? OutboxQueue::Counts{} : it->second;
    s.depth->Set(static_cast<double>(c.pending + in_memory[sink]));
    s.dead->Set(static_cast<double>(c.dead));
    s.oldest->Set(c.oldest_pending_ms > 0 ? static_cast<double>(now - c.oldest_pending_ms) / 1000.0 : 0.0);
  }
  for (const auto& [sink, c] : *counts) {
    if (series_.count(sink)) continue;
    SinkSeries& s = series(sink);  // rows of a sink no longer configured
    s.depth->Set(static_cast<double>(c.pending));
    s.dead->Set(static_cast<double>(c.dead));
  }
}

}  // namespace nightshift
