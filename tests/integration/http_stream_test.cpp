// Streamed bodies (HttpResponse::stream) through the real server on loopback:
// whole and in order however large, cut short when the reader goes or
// stalls, never holding up other connections, and never holding up stop().
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "serve/http.h"
#include "tests/support/http_get.h"
#include "tests/support/wait.h"

namespace nightshift {
namespace {

using namespace std::chrono_literals;

// Byte i of a streamed body: a pattern a lost, repeated or reordered piece breaks.
char body_byte(std::size_t i) { return static_cast<char>('a' + (i * 7 + i / 4093) % 26); }

// A client socket that sends one request and then reads only what it is told to.
class RawClient {
 public:
  RawClient(int port, const std::string& path, int receive_buffer) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    // Small, so a reader that stops reading stops the server's sends soon.
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    const std::string request = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    if (connected_) connected_ = ::send(fd_, request.data(), request.size(), MSG_NOSIGNAL) == ssize_t(request.size());
  }
  ~RawClient() { close(); }
  bool connected() const { return connected_; }
  // Reads up to `n` bytes, waiting at most 2 s for each.
  std::size_t read(std::size_t n) {
    timeval tv{2, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::size_t got = 0;
    char buf[4096];
    while (got < n) {
      const ssize_t r = ::recv(fd_, buf, std::min(sizeof buf, n - got), 0);
      if (r <= 0) break;
      got += static_cast<std::size_t>(r);
    }
    return got;
  }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

class HttpStreamTest : public ::testing::Test {
 protected:
  void start(int idle_timeout_ms = 10000) {
    server_.route("/big", [this](const HttpRequest&) {
      HttpResponse r;
      r.content_type = "application/octet-stream";
      r.stream = [this](const HttpResponse::Emit& emit) {
        produced_ = 0;
        cut_short_ = false;
        try {
          // Uneven pieces, some larger than the server's buffer.
          std::string piece;
          std::size_t sizes[] = {1, 4093, 65536, 300000, 17};
          for (std::size_t i = 0, k = 0; i < kBigSize; ++k) {
            const std::size_t n = std::min(sizes[k % 5], kBigSize - i);
            piece.resize(n);
            for (std::size_t j = 0; j < n; ++j) piece[j] = body_byte(i + j);
            emit(piece);
            i += n;
            produced_ = i;
          }
        } catch (const HttpStreamClosed&) {
          cut_short_ = true;
          throw;
        }
        finished_ = true;
      };
      return r;
    });
    server_.route("/small", [](const HttpRequest&) { return HttpResponse::text(200, "small\n"); });
    HttpSettings settings;
    settings.idle_timeout_ms = idle_timeout_ms;
    ASSERT_TRUE(server_.start("127.0.0.1:0", settings).ok());
    base_ = "http://127.0.0.1:" + std::to_string(server_.port());
  }
  void TearDown() override { server_.stop(); }

  static constexpr std::size_t kBigSize = 8 * 1024 * 1024 + 5;
  HttpServer server_;
  std::string base_;
  std::atomic<std::size_t> produced_{0};
  std::atomic<bool> cut_short_{false};
  std::atomic<bool> finished_{false};
};

TEST_F(HttpStreamTest, AStreamedBodyArrivesWholeAndInOrderAsChunks) {
  start();
  for (int round = 0; round < 2; ++round) {  // and again on a fresh stream
    const auto r = test::http_get(base_ + "/big", 20s);
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.header("transfer-encoding"), "chunked");
    EXPECT_EQ(r.header("content-type"), "application/octet-stream");
    ASSERT_EQ(r.body.size(), kBigSize);
    std::size_t first_wrong = kBigSize;
    for (std::size_t i = 0; i < kBigSize && first_wrong == kBigSize; ++i) {
      if (r.body[i] != body_byte(i)) first_wrong = i;
    }
    EXPECT_EQ(first_wrong, kBigSize) << "byte " << first_wrong << " differs";
    EXPECT_TRUE(test::wait_until([&] { return finished_.load(); }, 2s));
    finished_ = false;
  }
  const auto head = test::http_request("HEAD", base_ + "/big", "", 5s);
  EXPECT_EQ(head.status, 200);
  EXPECT_TRUE(head.body.empty());
}

TEST_F(HttpStreamTest, AReaderThatLeavesStopsTheProducer) {
  start();
  RawClient client(server_.port(), "/big", 16 * 1024);
  ASSERT_TRUE(client.connected());
  EXPECT_EQ(client.read(200 * 1024), 200 * 1024u);
  client.close();
  // The producer is told at its next piece, long before it could finish.
  ASSERT_TRUE(test::wait_until([&] { return cut_short_.load(); }, 5s)) << "produced " << produced_.load();
  EXPECT_LT(produced_.load(), kBigSize);
  EXPECT_FALSE(finished_.load());
  EXPECT_EQ(test::http_get(base_ + "/small").body, "small\n");
}

TEST_F(HttpStreamTest, AStalledReaderIsCutShortAndHoldsUpNoOne) {
  start(/*idle_timeout_ms=*/1000);
  RawClient stalled(server_.port(), "/big", 4096);
  ASSERT_TRUE(stalled.connected());
  EXPECT_GT(stalled.read(1), 0u);  // the headers and the first piece, then nothing more is read
  // Meanwhile the same server answers others, streamed or not.
  for (int i = 0; i < 20; ++i) EXPECT_EQ(test::http_get(base_ + "/small").body, "small\n");
  // libmicrohttpd closes a socket that took nothing for the idle timeout,
  // and the producer stops at its next piece.
  ASSERT_TRUE(test::wait_until([&] { return cut_short_.load(); }, 10s)) << "produced " << produced_.load();
  EXPECT_LT(produced_.load(), kBigSize);
  // Bounded: the buffer plus the socket's, not the body.
  EXPECT_LT(produced_.load(), 4u * 1024 * 1024);
}

TEST_F(HttpStreamTest, StopReturnsWhileAReaderStalls) {
  start();
  RawClient stalled(server_.port(), "/big", 4096);
  ASSERT_TRUE(stalled.connected());
  EXPECT_GT(stalled.read(1), 0u);
  ASSERT_TRUE(test::wait_until([&] { return produced_.load() > 0; }, 5s));
  const auto begin = std::chrono::steady_clock::now();
  server_.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 3s);
  EXPECT_TRUE(cut_short_.load());
}

}  // namespace
}  // namespace nightshift
