// The TCP probe's TLS handshake against a real TLS server on loopback
// (openssl s_server from Debian) with certificates this test makes: what
// blackbox_exporter users alert on (probe_ssl_earliest_cert_expiry, the TLS
// version) and why a handshake fails (tls_verify: unknown issuer, wrong name;
// tls_handshake: the peer does not speak TLS).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ctime>
#include <thread>

#include "probes/tcp/tcp.h"
#include "tests/support/ports.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/testnet.h"
#include "tests/support/wait.h"

namespace nightshift {
namespace {

using namespace std::chrono_literals;

const std::string kNetnsError = test::enter_private_netns();

using test::free_port;

bool ok(const test::RunResult& r) { return r.status && r.status->exited && r.status->code == 0; }

const LabeledValue* series(const Sample& s, const std::string& metric) {
  for (const auto& v : s.series) {
    if (v.metric == metric) return &v;
  }
  return nullptr;
}

class TlsProbeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    NIGHTSHIFT_REQUIRE_TESTNET(kNetnsError);
    // A certificate valid for 10 days, for localhost and 127.0.0.1.
    ASSERT_TRUE(ok(test::run_process({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                                      "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", dir_.file("key.pem"), "-out",
                                      dir_.file("cert.pem"), "-days", "10", "-subj", "/CN=localhost/O=nightshift test",
                                      "-addext", "subjectAltName=DNS:localhost,DNS:alt.localhost,IP:127.0.0.1"},
                                     20s)));
    const test::RunResult end = test::run_process({"openssl", "x509", "-in", dir_.file("cert.pem"), "-noout", "-enddate"}, 10s);
    ASSERT_TRUE(ok(end)) << end.err;
    std::tm tm{};  // notAfter=Dec 11 09:45:00 2026 GMT
    ASSERT_NE(::strptime(end.out.c_str(), "notAfter=%b %d %H:%M:%S %Y GMT", &tm), nullptr) << end.out;
    not_after_ = static_cast<double>(::timegm(&tm));
    port_ = free_port();
    server_ = std::make_unique<test::Process>(std::vector<std::string>{
        "openssl", "s_server", "-accept", "127.0.0.1:" + std::to_string(port_), "-cert", dir_.file("cert.pem"), "-key",
        dir_.file("key.pem"), "-quiet", "-naccept", "1000", "-tls1_3"});
    // Ready once it accepts a connection.
    ASSERT_TRUE(test::wait_until([&] {
      const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(static_cast<std::uint16_t>(port_));
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      const bool up = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
      ::close(fd);
      return up;
    }, 10s)) << server_->stderr_text();
  }

  // One probe run with these TLS settings, on the real reactor.
  Sample probe(const std::string& server_name, bool with_ca, bool insecure = false, int port = 0) {
    auto o = std::make_shared<tcp::TcpOptions>();
    o->port = static_cast<std::uint16_t>(port ? port : port_);
    o->tls = true;
    o->server_name = server_name;
    if (with_ca) o->ca_file = dir_.file("cert.pem");
    o->insecure_skip_verify = insecure;
    std::string error;
    o->tls_context = tcp::make_tls_context(*o, error);
    EXPECT_TRUE(o->tls_context) << error;
    auto t = std::make_shared<Target>();
    t->name = "tls";
    t->address = "127.0.0.1";
    t->probes.push_back({"tcp", "tls", 10s, 3s, o});
    SystemClock clock;
    Reactor reactor{clock};
    Resolver resolver{reactor};
    EngineContext context{reactor, resolver};
    tcp::TcpEngine engine(context);
    std::optional<Sample> out;
    ProbeRequest req;
    req.target = t;
    req.spec = &t->probes.front();
    req.done = [&out](Sample s) { out = std::move(s); };
    engine.submit(std::move(req));
    const SteadyTime deadline = clock.now() + 10s;
    for (int turns = 0; turns < 10'000 && !out && clock.now() < deadline; ++turns) reactor.run_once(20ms);
    EXPECT_TRUE(out) << "no result within 10 s";
    return out.value_or(Sample{});
  }

  test::TempDir dir_;
  double not_after_ = 0;
  int port_ = 0;
  std::unique_ptr<test::Process> server_;
};

TEST_F(TlsProbeTest, VerifiedHandshakeReportsExpiryVersionAndChain) {
  const Sample s = probe("localhost", /*with_ca=*/true);
  ASSERT_TRUE(s.ok) << to_string(s.reason) << ": " << s.detail;
  const LabeledValue* expiry = series(s, "probe_ssl_earliest_cert_expiry");
  ASSERT_NE(expiry, nullptr);
  EXPECT_EQ(expiry->value, not_after_) << "the certificate's notAfter, as a Unix time";
  const double days = (expiry->value - static_cast<double>(std::time(nullptr))) / 86400;
  EXPECT_GT(days, 9.9);
  EXPECT_LE(days, 10.0);
  const LabeledValue* chain = series(s, "probe_ssl_last_chain_expiry_timestamp_seconds");
  ASSERT_NE(chain, nullptr);
  EXPECT_EQ(chain->value, not_after_);
  const LabeledValue* version = series(s, "probe_tls_version_info");
  ASSERT_NE(version, nullptr);
  EXPECT_EQ(version->labels, (std::vector<std::pair<std::string, std::string>>{{"version", "TLS 1.3"}}));
  const LabeledValue* info = series(s, "probe_ssl_last_chain_info");
  ASSERT_NE(info, nullptr);
  std::map<std::string, std::string> labels(info->labels.begin(), info->labels.end());
  EXPECT_EQ(labels["subject"], "O=nightshift test,CN=localhost");
  EXPECT_EQ(labels["issuer"], "O=nightshift test,CN=localhost");
  EXPECT_EQ(labels["subjectalternative"], "localhost,alt.localhost");
  EXPECT_EQ(labels["fingerprint_sha256"].size(), 64u);
  EXPECT_NE(series(s, "probe_ip_protocol"), nullptr);
  EXPECT_NE(series(s, "probe_dns_lookup_time_seconds"), nullptr);
}

TEST_F(TlsProbeTest, TheAddressVerifiesAgainstTheCertificatesIpName) {
  const Sample s = probe("", /*with_ca=*/true);  // server_name defaults to the address, 127.0.0.1
  EXPECT_TRUE(s.ok) << to_string(s.reason) << ": " << s.detail;
}

TEST_F(TlsProbeTest, UnknownIssuerIsAVerifyFailureThatSaysWhy) {
  const Sample s = probe("localhost", /*with_ca=*/false);  // the system's store does not know this test's certificate
  EXPECT_FALSE(s.ok);
  EXPECT_EQ(s.reason, FailureReason::kTlsVerify);
  EXPECT_NE(s.detail.find("self-signed"), std::string::npos) << s.detail;
  EXPECT_EQ(series(s, "probe_ssl_earliest_cert_expiry"), nullptr) << "as blackbox: no expiry from a failed handshake";
}

TEST_F(TlsProbeTest, WrongNameIsAVerifyFailure) {
  const Sample s = probe("other.example", /*with_ca=*/true);
  EXPECT_FALSE(s.ok);
  EXPECT_EQ(s.reason, FailureReason::kTlsVerify);
  EXPECT_NE(s.detail.find("other.example"), std::string::npos) << s.detail;
  EXPECT_NE(s.detail.find("hostname mismatch"), std::string::npos) << s.detail;
}

TEST_F(TlsProbeTest, InsecureSkipVerifyStillReportsTheCertificate) {
  const Sample s = probe("other.example", /*with_ca=*/false, /*insecure=*/true);
  ASSERT_TRUE(s.ok) << s.detail;
  ASSERT_NE(series(s, "probe_ssl_earliest_cert_expiry"), nullptr);
  EXPECT_EQ(series(s, "probe_ssl_earliest_cert_expiry")->value, not_after_);
  EXPECT_EQ(series(s, "probe_ssl_last_chain_expiry_timestamp_seconds"), nullptr) << "nothing verified, no chain";
}

TEST_F(TlsProbeTest, APeerThatDoesNotSpeakTlsIsAHandshakeFailure) {
  // A plain TCP server that answers with a banner, as SSH would.
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  const int port = test::bound_port(fd);
  std::thread server([fd] {
    const int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) return;
    const char banner[] = "SSH-2.0-OpenSSH_9.2\r\n";
    [[maybe_unused]] ssize_t n = ::write(c, banner, sizeof banner - 1);
    char buf[512];
    for (int i = 0; i < 100 && ::recv(c, buf, sizeof buf, MSG_DONTWAIT) != 0; ++i) {
      std::this_thread::sleep_for(10ms);  // bounded: 1 s, until the probe closes
    }
    ::close(c);
  });
  const Sample s = probe("localhost", true, false, port);
  server.join();
  ::close(fd);
  EXPECT_FALSE(s.ok);
  EXPECT_EQ(s.reason, FailureReason::kTlsHandshake) << s.detail;
  EXPECT_NE(s.detail.find("TLS handshake with 127.0.0.1:" + std::to_string(port)), std::string::npos) << s.detail;
}

TEST(TlsOptionsTest, CaFileThatDoesNotLoadIsAnErrorNamingIt) {
  tcp::TcpOptions o;
  o.tls = true;
  o.ca_file = "/nonexistent/ca.pem";
  std::string error;
  EXPECT_FALSE(tcp::make_tls_context(o, error));
  EXPECT_NE(error.find("/nonexistent/ca.pem"), std::string::npos) << error;
}

}  // namespace
}  // namespace nightshift
