#include "serve/http.h"

#include <arpa/inet.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cerrno>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>

#include "core/log.h"

namespace nightshift {

namespace {
// Handlers that may block run at a lower priority than the probe loop, and so
// do the event threads: a crowd on the status page must not delay probing
// (nice 10: about a tenth of the CPU weight of the reactor when both want it).
constexpr int kHttpNice = 10;
// Jobs waiting for a worker past this are refused with 503 (bounded memory).
constexpr std::size_t kMaxQueuedJobs = 4096;

void lower_priority() { ::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), kHttpNice); }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void free_shared(void* cls) { delete static_cast<std::shared_ptr<const std::string>*>(cls); }
void free_owned(void* cls) { delete static_cast<std::string*>(cls); }

// A streamed body (HttpResponse::stream) between its producer, a worker, and
// libmicrohttpd's content reader on an event thread. At most kMaxBuffered
// bytes wait: the producer blocks for room, and the reader, finding nothing,
// suspends its connection until the producer has more (returning 0 without
// suspending would make the event thread spin).
class StreamBody {
 public:
  static constexpr std::size_t kMaxBuffered = 256 * 1024;
  static constexpr std::size_t kPiece = 64 * 1024;

  StreamBody(std::chrono::milliseconds stall_limit, const std::atomic<bool>& stopping)
      : stall_limit_(stall_limit), stopping_(stopping) {}

  // Producer side (a worker).
  void emit(std::string_view piece) {
    if (piece.empty()) return;
    std::unique_lock<std::mutex> lock(mu_);
    auto deadline = std::chrono::steady_clock::now() + stall_limit_;
    std::uint64_t taken = taken_;
    while (!closed_ && buffered_ >= kMaxBuffered) {
      // In slices, so a stopping server is noticed while a reader stalls.
      room_.wait_for(lock, std::chrono::milliseconds(100));
      if (stopping_) throw HttpStreamClosed("the server is stopping");
      if (taken_ != taken) {  // slow but reading: not stalled
        taken = taken_;
        deadline = std::chrono::steady_clock::now() + stall_limit_;
      }
      if (buffered_ >= kMaxBuffered && std::chrono::steady_clock::now() >= deadline) {
        throw HttpStreamClosed("the reader took nothing for " + std::to_string(stall_limit_.count()) + " ms");
      }
    }
    if (closed_) throw HttpStreamClosed("the reader has gone");
    if (!pieces_.empty() && pieces_.back().size() + piece.size() <= kPiece) {
      pieces_.back().append(piece);
    } else {
      pieces_.emplace_back(piece);
    }
    buffered_ += piece.size();
    MHD_Connection* waiting = std::exchange(suspended_, nullptr);
    lock.unlock();
    if (waiting != nullptr) MHD_resume_connection(waiting);
  }
  // The body is complete (ok) or cut short: the reader ends it either way.
  void finish(bool ok) {
    std::unique_lock<std::mutex> lock(mu_);
    finished_ = true;
    failed_ = !ok;
    MHD_Connection* waiting = std::exchange(suspended_, nullptr);
    lock.unlock();
    if (waiting != nullptr) MHD_resume_connection(waiting);
  }

  // Reader side (the connection's event thread).
  ssize_t read(MHD_Connection* conn, char* buf, std::size_t max) {
    std::lock_guard<std::mutex> lock(mu_);
    std::size_t n = 0;
    while (n < max && !pieces_.empty()) {
      const std::string& front = pieces_.front();
      const std::size_t take = std::min(max - n, front.size() - offset_);
      std::memcpy(buf + n, front.data() + offset_, take);
      n += take;
      offset_ += take;
      if (offset_ == front.size()) {
        pieces_.pop_front();
        offset_ = 0;
      }
    }
    if (n > 0) {
      buffered_ -= n;
      taken_ += n;
      room_.notify_one();
      return static_cast<ssize_t>(n);
    }
    if (finished_) return failed_ ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
    // Under the lock: the producer's resume can only follow this suspend.
    suspended_ = conn;
    MHD_suspend_connection(conn);
    return 0;
  }
  // The response or its exchange is gone: the producer stops at its next piece.
  void close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    room_.notify_one();
  }

 private:
  const std::chrono::milliseconds stall_limit_;
  const std::atomic<bool>& stopping_;
  std::mutex mu_;
  std::condition_variable room_;
  std::deque<std::string> pieces_;
  std::size_t offset_ = 0;  // into pieces_.front()
  std::size_t buffered_ = 0;
  std::uint64_t taken_ = 0;  // bytes the reader has taken
  bool finished_ = false, failed_ = false, closed_ = false;
  MHD_Connection* suspended_ = nullptr;
};

// What libmicrohttpd's content reader holds of a streamed response.
struct StreamReader {
  std::shared_ptr<StreamBody> body;
  MHD_Connection* conn;
};

ssize_t read_stream(void* cls, std::uint64_t, char* buf, size_t max) {
  auto* r = static_cast<StreamReader*>(cls);
  return r->body->read(r->conn, buf, max);
}
void free_stream(void* cls) {
  auto* r = static_cast<StreamReader*>(cls);
  r->body->close();
  delete r;
}

// A streamed body produced whole, where no worker can stream it (an inline
// route).
void produce_whole(HttpResponse& r) {
  if (!r.stream) return;
  std::string body;
  r.stream([&body](std::string_view piece) { body += piece; });
  r.stream = nullptr;
  r.body = std::move(body);
  r.shared_body.reset();
}

// Hands `r` to libmicrohttpd for `conn`; the body is never copied (a shared
// snapshot stays alive until the last byte is sent). A streamed body is read
// from `stream`, which its producer fills.
MHD_Result queue(MHD_Connection* conn, HttpResponse r, std::shared_ptr<StreamBody> stream = nullptr) {
  const bool no_body = r.status == 304 || r.status == 204;
  MHD_Response* m = nullptr;
  if (no_body) {
    m = MHD_create_response_from_buffer(0, const_cast<char*>(""), MHD_RESPMEM_PERSISTENT);
  } else if (stream) {
    auto* reader = new StreamReader{std::move(stream), conn};
    m = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32 * 1024, &read_stream, reader, &free_stream);
    if (m == nullptr) free_stream(reader);
  } else if (r.shared_body) {
    auto* hold = new std::shared_ptr<const std::string>(std::move(r.shared_body));
    m = MHD_create_response_from_buffer_with_free_callback_cls((*hold)->size(), const_cast<char*>((*hold)->data()),
                                                               &free_shared, hold);
    if (m == nullptr) delete hold;
  } else {
    auto* owned = new std::string(std::move(r.body));
    m = MHD_create_response_from_buffer_with_free_callback_cls(owned->size(), owned->data(), &free_owned, owned);
    if (m == nullptr) delete owned;
  }
  if (m == nullptr) return MHD_NO;
  if (!no_body) MHD_add_response_header(m, "Content-Type", r.content_type.c_str());
  MHD_add_response_header(m, "X-Content-Type-Options", "nosniff");
  for (const auto& [name, value] : r.headers) {
    // The library computes the length itself; a header it refuses (CR or LF
    // in it) is dropped, never sent half-made.
    if (strcasecmp(name.c_str(), "Content-Length") == 0) continue;
    (void)MHD_add_response_header(m, name.c_str(), value.c_str());
  }
  const MHD_Result result = MHD_queue_response(conn, static_cast<unsigned>(r.status), m);
  MHD_destroy_response(m);
  return result;
}

HttpResponse too_large(std::size_t max_body) {
  HttpResponse r = HttpResponse::text(413, "413 request body larger than " + std::to_string(max_body) + " bytes\n");
  r.headers.emplace_back("Connection", "close");
  return r;
}

// A small pool of threads for handlers that may block.
class WorkerPool {
 public:
  // The job gets false when the server is stopping: it must answer at once.
  using Job = std::function<void(bool serve)>;

  void start(int threads) {
    for (int i = 0; i < threads; ++i) {
      threads_.emplace_back([this] {
        lower_priority();
        run();
      });
    }
  }
  // False when the queue is full or the pool stopped: the caller answers.
  bool submit(Job job) {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || jobs_.size() >= kMaxQueuedJobs) return false;
    jobs_.push_back(std::move(job));
    cv_.notify_one();
    return true;
  }
  // Jobs still queued are told to answer at once; running ones finish.
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

 private:
  void run() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;
      Job job = std::move(jobs_.front());
      jobs_.pop_front();
      const bool serve = !stopping_;
      lock.unlock();
      job(serve);
      lock.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

// One request in flight: created when its request line arrives, deleted when
// libmicrohttpd is done with it.
struct Exchange {
  HttpRequest req;
  const HttpServer::Route* route = nullptr;
  bool started = false;
  bool refused = false;  // a response went out early (413): ignore the rest
  std::optional<HttpResponse> response;  // set by a worker before it resumes the connection
  std::shared_ptr<StreamBody> stream;    // with a response whose body the worker goes on producing
  Exchange() = default;
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;
  ~Exchange() {
    if (stream) stream->close();  // the connection ended before (or while) the body went out
  }
};

MHD_Result collect_header(void* cls, MHD_ValueKind, const char* key, const char* value) {
  std::string name = key ? key : "";
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  (*static_cast<std::map<std::string, std::string>*>(cls))[name] = value ? value : "";
  return MHD_YES;
}

std::string peer_address(MHD_Connection* conn) {
  const MHD_ConnectionInfo* info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  if (info == nullptr || info->client_addr == nullptr) return "";
  char buf[INET6_ADDRSTRLEN] = {};
  if (info->client_addr->sa_family == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(info->client_addr)->sin_addr, buf, sizeof buf);
  } else if (info->client_addr->sa_family == AF_INET6) {
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(info->client_addr)->sin6_addr, buf, sizeof buf);
  }
  return buf;
}

void log_library_message(void*, const char* fmt, va_list ap) {
  char buf[512];
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  std::string text = buf;
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  // Peers that vanish mid-request are routine under a crowd: debug, not warn.
  log::debug("http", {{"message", text}});
}
// The handshake callback gets only the GnuTLS session; libmicrohttpd sets the
// session's pointer to the connection, whose daemon leads back to the server.
std::mutex tls_servers_mu;
std::map<const MHD_Daemon*, void*> tls_servers;  // HttpServer::Impl*
}  // namespace

std::string url_decode(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size()) {
      const int hi = hex_value(text[i + 1]);
      const int lo = hex_value(text[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += text[i];
  }
  return out;
}

std::string HttpRequest::header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? "" : it->second;
}

std::string HttpRequest::param(const std::string& name) const {
  std::size_t pos = 0;
  while (pos <= query.size()) {
    const std::size_t end = std::min(query.find('&', pos), query.size());
    const std::string pair = query.substr(pos, end - pos);
    const std::size_t eq = pair.find('=');
    if (url_decode(pair.substr(0, eq)) == name) return eq == std::string::npos ? "" : url_decode(pair.substr(eq + 1));
    pos = end + 1;
  }
  return "";
}

HttpResponse HttpResponse::text(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

HttpResponse HttpResponse::json(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.content_type = "application/json";
  r.body = std::move(body);
  return r;
}

std::size_t raise_open_files_limit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return 1024;
  if (lim.rlim_cur < lim.rlim_max) {
    rlimit raised = lim;
    raised.rlim_cur = lim.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
  }
  return lim.rlim_cur == RLIM_INFINITY ? std::size_t{1} << 20 : static_cast<std::size_t>(lim.rlim_cur);
}

struct HttpServer::Impl {
  HttpServer& server;
  std::size_t max_body;
  int listen_fd = -1;
  int port = 0;
  std::size_t max_connections = 0;
  std::vector<MHD_Daemon*> daemons;
  std::thread acceptor;
  std::atomic<bool> stopping{false};
  // A streamed body whose reader takes nothing for this long is cut short. A
  // safety net: a socket that accepts nothing for the idle timeout is closed
  // by libmicrohttpd itself (which stops the producer), and a slow link that
  // drains its kernel buffer only now and then must not count as stalled.
  std::chrono::milliseconds stall_limit;
  WorkerPool workers;
  // The pair presented to new handshakes, and every pair presented before:
  // GnuTLS may use what the callback returned for as long as a session lasts,
  // so none is freed before the server stops (one per renewal, not per reload:
  // unchanged files keep the pair in use).
  mutable std::mutex tls_mu;
  std::shared_ptr<const TlsIdentity> tls_current;
  std::vector<std::shared_ptr<const TlsIdentity>> tls_retired;
  // Handing connections to the daemons, from the acceptor and the sniffer.
  std::mutex add_mu;
  std::size_t next_daemon = 0;
  // HTTPS only (-1 otherwise): connections waiting for their first byte.
  int sniff_epoll = -1;
  std::thread sniffer;
  struct Waiting {
    sockaddr_storage addr{};
    socklen_t len = 0;
    std::chrono::steady_clock::time_point since{};
  };
  std::mutex sniff_mu;
  std::unordered_map<int, Waiting> waiting;

  explicit Impl(HttpServer& s)
      : server(s), max_body(s.settings_.max_body), stall_limit(std::max(60000, 6 * s.settings_.idle_timeout_ms)) {}

  // The request line has arrived: the query is only in the raw URI.
  static void* on_uri(void*, const char* uri, MHD_Connection*) {
    auto* ex = new Exchange;
    if (const char* q = uri ? std::strchr(uri, '?') : nullptr) ex->req.query = q + 1;
    return ex;
  }

  static void on_completed(void*, MHD_Connection*, void** cls, MHD_RequestTerminationCode) {
    delete static_cast<Exchange*>(*cls);
    *cls = nullptr;
  }

  static MHD_Result on_request(void* cls, MHD_Connection* conn, const char* url, const char* method, const char*,
                               const char* upload, size_t* upload_size, void** con_cls) {
    return static_cast<Impl*>(cls)->handle(conn, url, method, upload, upload_size, con_cls);
  }

  MHD_Result handle(MHD_Connection* conn, const char* url, const char* method, const char* upload,
                    size_t* upload_size, void** con_cls) {
    auto* ex = static_cast<Exchange*>(*con_cls);
    if (ex == nullptr) return MHD_NO;  // not from on_uri: cannot happen
    if (!ex->started) {
      // Headers are in; the body (if any) follows in later calls. Answering
      // now would close the connection, so only refusals go out early.
      ex->started = true;
      ex->req.method = std::strcmp(method, "HEAD") == 0 ? "GET" : method;
      ex->req.path = url ? url : "/";
      MHD_get_connection_values(conn, MHD_HEADER_KIND, &collect_header, &ex->req.headers);
      ex->route = server.find(ex->req.path);
      const std::string length = ex->req.header("content-length");
      if (!length.empty() && (length.size() > 18 || std::strtoull(length.c_str(), nullptr, 10) > max_body)) {
        ex->refused = true;
        return queue(conn, too_large(max_body));
      }
      return MHD_YES;
    }
    if (*upload_size > 0) {
      if (ex->refused) {
        *upload_size = 0;
        return MHD_YES;
      }
      if (ex->req.body.size() + *upload_size > max_body) {
        ex->refused = true;
        *upload_size = 0;
        return queue(conn, too_large(max_body));
      }
      ex->req.body.append(upload, *upload_size);
      *upload_size = 0;
      return MHD_YES;
    }
    if (ex->refused) return MHD_YES;
    if (ex->response) return queue(conn, std::move(*ex->response), ex->stream);  // back from a worker
    if (ex->route == nullptr) {
      std::string body = "404 not found: " + ex->req.path + "\nendpoints:";
      for (const auto& entry : server.routes_) body += " " + entry.first;
      return queue(conn, HttpResponse::text(404, body + "\n"));
    }
    const auto& methods = ex->route->methods;
    if (std::find(methods.begin(), methods.end(), ex->req.method) == methods.end()) {
      std::string allow;
      for (const auto& m : methods) allow += (allow.empty() ? "" : ", ") + m + (m == "GET" ? ", HEAD" : "");
      HttpResponse r = HttpResponse::text(405, "405 method not allowed: use " + allow + "\n");
      r.headers.emplace_back("Allow", allow);
      return queue(conn, std::move(r));
    }
    ex->req.remote = peer_address(conn);
    if (ex->route->dispatch == Dispatch::kInline) {
      HttpResponse r = run(*ex->route, ex->req);
      produce_whole(r);
      return queue(conn, std::move(r));
    }
    // May block: off the event thread. Suspended first, so the resume can
    // never come before it.
    MHD_suspend_connection(conn);
    const bool queued = workers.submit([this, ex, conn](bool serve) {
      HttpResponse r = serve ? run(*ex->route, ex->req)
                             : HttpResponse::text(503, "the server is stopping; try again shortly\n");
      if (!r.stream || r.status == 304 || r.status == 204) {
        r.stream = nullptr;
        ex->response = std::move(r);
        MHD_resume_connection(conn);
        return;
      }
      // Headers go out now; this worker then produces the body into the
      // stream the connection reads from. `ex` is the event thread's again
      // once resumed: only the stream is shared.
      auto stream = std::make_shared<StreamBody>(stall_limit, stopping);
      auto produce = std::move(r.stream);
      r.stream = nullptr;
      ex->stream = stream;
      ex->response = std::move(r);
      const std::string path = ex->req.path;
      MHD_resume_connection(conn);
      try {
        produce([&stream](std::string_view piece) { stream->emit(piece); });
        stream->finish(true);
      } catch (const HttpStreamClosed& e) {
        log::debug("http", {{"path", path}, {"message", std::string("streamed body cut short: ") + e.what()}});
        stream->finish(false);
      } catch (const std::exception& e) {
        log::error("HTTP handler failed while streaming", {{"path", path}, {"error", e.what()}});
        stream->finish(false);
      }
    });
    if (!queued) {
      ex->response = HttpResponse::text(503, "the server is busy; try again shortly\n");
      MHD_resume_connection(conn);
    }
    return MHD_YES;
  }

  // gnutls_certificate_retrieve_function2: the pair in use now.
  static int present_certificate(gnutls_session_t session, const gnutls_datum_t*, int, const gnutls_pk_algorithm_t*,
                                 int, gnutls_pcert_st** chain, unsigned int* chain_length, gnutls_privkey_t* key) {
    auto* conn = static_cast<MHD_Connection*>(gnutls_session_get_ptr(session));
    const MHD_ConnectionInfo* info =
        conn != nullptr ? MHD_get_connection_info(conn, MHD_CONNECTION_INFO_DAEMON) : nullptr;
    if (info == nullptr) return -1;
    std::shared_ptr<const TlsIdentity> id;
    {
      std::lock_guard<std::mutex> lock(tls_servers_mu);
      auto it = tls_servers.find(info->daemon);
      if (it == tls_servers.end()) return -1;
      auto* impl = static_cast<Impl*>(it->second);
      std::lock_guard<std::mutex> tls_lock(impl->tls_mu);
      id = impl->tls_current;
    }
    if (!id) return -1;
    *chain = static_cast<gnutls_pcert_st*>(id->chain());
    *chain_length = id->chain_size();
    *key = static_cast<gnutls_privkey_t>(id->key());
    return 0;
  }

  static HttpResponse run(const Route& route, const HttpRequest& req) {
    try {
      return route.handler(req);
    } catch (const std::exception& e) {
      log::error("HTTP handler failed", {{"path", req.path}, {"error", e.what()}});
      return HttpResponse::text(500, "500 internal error\n");
    }
  }

  // ---- HTTPS: plain HTTP on the TLS port gets a 400, as nginx answers ----
  // A connection's first byte tells a TLS handshake (a ClientHello record,
  // 0x16) from a plain request ("GET …"). Without this, `curl http://` to the
  // HTTPS port reports an empty reply and a browser a failed connection.
  enum class FirstByte { kTls, kPlain, kNotYet, kGone };
  static FirstByte first_byte(int fd) {
    unsigned char b = 0;
    const ssize_t n = ::recv(fd, &b, 1, MSG_PEEK);
    if (n == 1) return b == 0x16 ? FirstByte::kTls : FirstByte::kPlain;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return FirstByte::kNotYet;
    return FirstByte::kGone;
  }
  static void refuse_plain(int fd) {
    // Read what the client sent (bounded) so closing does not reset the connection under the answer.
    char buf[4096];
    for (int i = 0; i < 16 && ::recv(fd, buf, sizeof buf, 0) > 0; ++i) {
    }
    static const std::string body = "400 this port speaks HTTPS: use https:// in the URL\n";
    const std::string answer = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
                               "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
    (void)::send(fd, answer.data(), answer.size(), MSG_NOSIGNAL);
    ::shutdown(fd, SHUT_WR);
    ::close(fd);
  }
  void hand_over(int fd, const sockaddr_storage& addr, socklen_t len) {
    std::lock_guard<std::mutex> lock(add_mu);
    // The daemon closes the socket itself when it cannot take it (at its limit).
    (void)MHD_add_connection(daemons[next_daemon++ % daemons.size()], fd, reinterpret_cast<const sockaddr*>(&addr), len);
  }
  void route(int fd, const sockaddr_storage& addr, socklen_t len) {
    if (sniff_epoll < 0) return hand_over(fd, addr, len);
    switch (first_byte(fd)) {
      case FirstByte::kTls: return hand_over(fd, addr, len);
      case FirstByte::kPlain: return refuse_plain(fd);
      case FirstByte::kGone: ::close(fd); return;
      case FirstByte::kNotYet: break;
    }
    {
      std::lock_guard<std::mutex> lock(sniff_mu);
      waiting[fd] = Waiting{addr, len, std::chrono::steady_clock::now()};
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
    ev.data.fd = fd;
    if (::epoll_ctl(sniff_epoll, EPOLL_CTL_ADD, fd, &ev) != 0) {
      std::lock_guard<std::mutex> lock(sniff_mu);
      waiting.erase(fd);
      hand_over(fd, addr, len);
    }
  }
  // Connections whose first byte had not arrived at accept: decided when it
  // does; one silent for 2 s goes to the daemon, whose idle timeout applies.
  void sniff_loop() {
    lower_priority();
    epoll_event events[64];
    while (!stopping.load()) {
      const int n = ::epoll_wait(sniff_epoll, events, 64, 200);
      for (int i = 0; i < n; ++i) {
        const int fd = events[i].data.fd;
        Waiting w;
        {
          std::lock_guard<std::mutex> lock(sniff_mu);
          auto it = waiting.find(fd);
          if (it == waiting.end()) continue;
          w = it->second;
          waiting.erase(it);
        }
        ::epoll_ctl(sniff_epoll, EPOLL_CTL_DEL, fd, nullptr);
        switch (first_byte(fd)) {
          case FirstByte::kTls:
          case FirstByte::kNotYet: hand_over(fd, w.addr, w.len); break;
          case FirstByte::kPlain: refuse_plain(fd); break;
          case FirstByte::kGone: ::close(fd); break;
        }
      }
      const auto now = std::chrono::steady_clock::now();
      std::vector<std::pair<int, Waiting>> silent;
      {
        std::lock_guard<std::mutex> lock(sniff_mu);
        for (auto it = waiting.begin(); it != waiting.end();) {
          if (now - it->second.since < std::chrono::seconds(2)) {
            ++it;
            continue;
          }
          silent.emplace_back(it->first, it->second);
          it = waiting.erase(it);
        }
      }
      for (const auto& [fd, w] : silent) {
        ::epoll_ctl(sniff_epoll, EPOLL_CTL_DEL, fd, nullptr);
        hand_over(fd, w.addr, w.len);
      }
    }
  }

  // Accepts as fast as connections come and deals them out to the event
  // threads in turn (the library's own accept takes a few per loop turn,
  // which under a crowd leaves new connections waiting in the backlog).
  void accept_loop() {
    lower_priority();
    while (!stopping.load()) {
      sockaddr_storage addr{};
      socklen_t len = sizeof addr;
      const int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&addr), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (stopping.load()) return;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          // Out of descriptors: let some close instead of spinning.
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        continue;
      }
      route(fd, addr, len);
    }
  }
};

HttpServer::HttpServer() = default;
HttpServer::~HttpServer() { stop(); }

void HttpServer::route(const std::string& path, Handler handler, std::vector<std::string> methods, Dispatch dispatch) {
  routes_[path] = Route{std::move(handler), std::move(methods), dispatch};
}

void HttpServer::route_prefix(const std::string& prefix, Handler handler, std::vector<std::string> methods,
                              Dispatch dispatch) {
  prefixes_[prefix] = Route{std::move(handler), std::move(methods), dispatch};
}

const HttpServer::Route* HttpServer::find(const std::string& path) const {
  if (auto it = routes_.find(path); it != routes_.end()) return &it->second;
  const Route* best = nullptr;
  std::size_t best_len = 0;
  for (const auto& [prefix, route] : prefixes_) {
    if (path.size() > prefix.size() && path.compare(0, prefix.size(), prefix) == 0 && prefix.size() > best_len) {
      best = &route;
      best_len = prefix.size();
    }
  }
  return best;
}

Status HttpServer::start(const std::string& listen, HttpSettings settings) {
  stop();
  settings_ = settings;
  // "ADDRESS:PORT", "[IPv6]:PORT"; a bare ":PORT" means every IPv4 address.
  const std::size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return Error::invalid("cannot listen on " + listen + ": expected ADDRESS:PORT");
  std::string host = listen.substr(0, colon);
  const std::string port_text = listen.substr(colon + 1);
  char* end = nullptr;
  const long port_number = std::strtol(port_text.c_str(), &end, 10);
  if (port_text.empty() || *end != '\0' || port_number < 0 || port_number > 65535) {
    return Error::invalid("cannot listen on " + listen + ": the port must be 0-65535");
  }
  const auto port = htons(static_cast<std::uint16_t>(port_number));
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    auto* a6 = reinterpret_cast<sockaddr_in6*>(&addr);
    a6->sin6_family = AF_INET6;
    a6->sin6_port = port;
    if (::inet_pton(AF_INET6, host.c_str(), &a6->sin6_addr) != 1) {
      return Error::invalid("cannot listen on " + listen + ": expected an IPv6 address in brackets, found \"" + host +
                            "\"");
    }
    addr_len = sizeof(sockaddr_in6);
  } else {
    auto* a4 = reinterpret_cast<sockaddr_in*>(&addr);
    a4->sin_family = AF_INET;
    a4->sin_port = port;
    if (host.empty()) {
      a4->sin_addr.s_addr = htonl(INADDR_ANY);
    } else if (::inet_pton(AF_INET, host.c_str(), &a4->sin_addr) != 1) {
      return Error::invalid("cannot listen on " + listen + ": expected an IPv4 address or [IPv6], found \"" + host +
                            "\"");
    }
    addr_len = sizeof(sockaddr_in);
  }

  const bool tls = !settings.tls_cert_file.empty() || !settings.tls_key_file.empty();
  std::shared_ptr<const TlsIdentity> identity;
  if (tls) {
    if (settings.tls_cert_file.empty() || settings.tls_key_file.empty()) {
      return Error::invalid("HTTPS needs both a certificate file and a key file");
    }
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES ||
        MHD_is_feature_supported(MHD_FEATURE_HTTPS_CERT_CALLBACK) != MHD_YES) {
      return Error::unavailable("this libmicrohttpd is built without TLS (GnuTLS); HTTPS is not available");
    }
    auto loaded = TlsIdentity::load(settings.tls_cert_file, settings.tls_key_file);
    if (!loaded.ok()) return loaded.error();
    identity = std::move(*loaded);
  }

  auto impl = std::make_unique<Impl>(*this);
  impl->tls_current = identity;
  impl->listen_fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (impl->listen_fd < 0) return Error::io(std::string("cannot create a socket: ") + std::strerror(errno));
  const int one = 1;
  ::setsockopt(impl->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // "[::]" is every IPv6 address and, as people expect of it, every IPv4 one.
  if (addr.ss_family == AF_INET6) {
    const int zero = 0;
    ::setsockopt(impl->listen_fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  }
  if (::bind(impl->listen_fd, reinterpret_cast<sockaddr*>(&addr), addr_len) != 0 ||
      ::listen(impl->listen_fd, 4096) != 0) {
    const std::string why = std::strerror(errno);
    ::close(impl->listen_fd);
    return Error::io("cannot listen on " + listen + ": " + why + " (is the port in use?)");
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  ::getsockname(impl->listen_fd, reinterpret_cast<sockaddr*>(&bound), &len);
  impl->port = bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                           : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);

  // Half the descriptors at most: probes, the store and the notifier need theirs.
  rlimit lim{};
  ::getrlimit(RLIMIT_NOFILE, &lim);
  const std::size_t files = lim.rlim_cur == RLIM_INFINITY ? std::size_t{1} << 20 : static_cast<std::size_t>(lim.rlim_cur);
  impl->max_connections = std::max<std::size_t>(16, std::min(settings.max_connections, files / 2));
  int event_threads = settings.event_threads;
  if (event_threads <= 0) event_threads = static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 4u));
  const unsigned per_daemon = static_cast<unsigned>(std::max<std::size_t>(1, impl->max_connections / event_threads));
  const unsigned idle_s = static_cast<unsigned>(std::max(1, settings.idle_timeout_ms / 1000));

  // The event threads inherit the priority of the thread that starts them.
  std::string failure;
  std::thread starter([&] {
    lower_priority();
    for (int i = 0; i < event_threads; ++i) {
      const unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_NO_LISTEN_SOCKET | MHD_ALLOW_SUSPEND_RESUME |
                             MHD_USE_ERROR_LOG | (tls ? MHD_USE_TLS : 0);
      // TLS: the certificate is picked per handshake (reload_tls); plain: the options end before it.
      gnutls_certificate_retrieve_function2* presenter = &Impl::present_certificate;
      MHD_Daemon* d = MHD_start_daemon(
          flags, 0, nullptr, nullptr, &Impl::on_request, impl.get(),
          MHD_OPTION_CONNECTION_LIMIT, per_daemon,
          MHD_OPTION_CONNECTION_TIMEOUT, idle_s,
          MHD_OPTION_CONNECTION_MEMORY_LIMIT, static_cast<size_t>(16 * 1024),
          MHD_OPTION_URI_LOG_CALLBACK, &Impl::on_uri, impl.get(),
          MHD_OPTION_NOTIFY_COMPLETED, &Impl::on_completed, impl.get(),
          MHD_OPTION_EXTERNAL_LOGGER, &log_library_message, nullptr,
          tls ? MHD_OPTION_HTTPS_CERT_CALLBACK : MHD_OPTION_END, presenter,
          MHD_OPTION_END);
      if (d == nullptr) {
        failure = "cannot start the HTTP event loop";
        return;
      }
      impl->daemons.push_back(d);
    }
  });
  starter.join();
  if (!failure.empty()) {
    for (MHD_Daemon* d : impl->daemons) MHD_stop_daemon(d);
    ::close(impl->listen_fd);
    return Error::io(failure + " on " + listen);
  }
  if (tls) {
    std::lock_guard<std::mutex> lock(tls_servers_mu);
    for (MHD_Daemon* d : impl->daemons) tls_servers[d] = impl.get();
  }
  impl->workers.start(std::max(1, settings.threads));
  Impl* raw = impl.get();
  if (tls) {
    impl->sniff_epoll = ::epoll_create1(EPOLL_CLOEXEC);
    if (impl->sniff_epoll >= 0) impl->sniffer = std::thread([raw] { raw->sniff_loop(); });
  }
  impl->acceptor = std::thread([raw] { raw->accept_loop(); });
  impl_ = std::move(impl);
  return {};
}

void HttpServer::stop() {
  if (!impl_) return;
  impl_->stopping = true;
  ::shutdown(impl_->listen_fd, SHUT_RDWR);  // wakes the blocked accept
  impl_->acceptor.join();
  ::close(impl_->listen_fd);
  if (impl_->sniffer.joinable()) impl_->sniffer.join();
  for (const auto& [fd, w] : impl_->waiting) ::close(fd);
  impl_->waiting.clear();
  if (impl_->sniff_epoll >= 0) ::close(impl_->sniff_epoll);
  // Every suspended connection is resumed by its job before the daemons stop.
  impl_->workers.stop();
  {
    // Before the daemons go: a freed daemon's address may be the next one's.
    std::lock_guard<std::mutex> lock(tls_servers_mu);
    for (MHD_Daemon* d : impl_->daemons) tls_servers.erase(d);
  }
  for (MHD_Daemon* d : impl_->daemons) MHD_stop_daemon(d);
  impl_.reset();
}

bool HttpServer::tls() const {
  if (!impl_) return false;
  std::lock_guard<std::mutex> lock(impl_->tls_mu);
  return impl_->tls_current != nullptr;
}

Result<bool> HttpServer::reload_tls(const std::string& cert_file, const std::string& key_file) {
  if (!tls()) return Error::invalid("the HTTP server was started without TLS; HTTPS takes effect at restart");
  auto loaded = TlsIdentity::load(cert_file, key_file);
  if (!loaded.ok()) return loaded.error();
  std::lock_guard<std::mutex> lock(impl_->tls_mu);
  if (impl_->tls_current->same_files(**loaded) && impl_->tls_current->cert_file() == cert_file &&
      impl_->tls_current->key_file() == key_file) {
    return false;
  }
  impl_->tls_retired.push_back(std::move(impl_->tls_current));
  impl_->tls_current = std::move(*loaded);
  return true;
}

std::optional<TlsIdentityInfo> HttpServer::tls_identity() const {
  if (!impl_) return std::nullopt;
  std::lock_guard<std::mutex> lock(impl_->tls_mu);
  if (!impl_->tls_current) return std::nullopt;
  return impl_->tls_current->info();
}

int HttpServer::port() const { return impl_ ? impl_->port : 0; }

std::size_t HttpServer::connections() const {
  if (!impl_) return 0;
  std::size_t n = 0;
  for (MHD_Daemon* d : impl_->daemons) {
    if (const MHD_DaemonInfo* info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS)) {
      n += info->num_connections;
    }
  }
  return n;
}

std::size_t HttpServer::max_connections() const { return impl_ ? impl_->max_connections : 0; }

}  // namespace nightshift
