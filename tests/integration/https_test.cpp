// The agent's listener over HTTPS, as a client that verifies it sees it: a
// throwaway CA and server certificates made with openssl for this test, libcurl
// checking the chain against that CA and the name 127.0.0.1; /metrics keeps
// gzip and OpenMetrics; SIGHUP puts a renewed pair (told apart by its serial)
// in front of new connections while the listener and open connections stay; a
// bad pair is refused at start (the file named, exit 1) and at a reload (the
// old pair stays, a metric says so); the operator API's token is refused over
// plain HTTP on an address other machines reach, while /metrics stays plain.
#include <arpa/inet.h>
#include <curl/curl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/support/agent_run.h"
#include "tests/support/http_get.h"
#include "tests/support/process.h"
#include "tests/support/prom_text.h"
#include "tests/support/temp_dir.h"
#include "tests/support/testnet.h"
#include "tests/support/wait.h"

namespace nightshift::test {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

// Ports the agent picks stay in this test's own network namespace.
const std::string kNetnsError = enter_private_netns();

const std::string kToken = "https-test-token-0123456789";

bool ran_ok(const RunResult& r) { return r.status && r.status->exited && r.status->code == 0; }

struct HttpsResult {
  long status = 0;
  std::string error;
  std::string body;
  std::string headers;  // raw, all lines
  std::string serial;   // the server certificate's serial, as libcurl reports it (hex, ':'-separated or not)
};

std::size_t append(char* data, std::size_t size, std::size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// One libcurl handle: requests on it reuse its connection (keep-alive) when
// they can. Only https://127.0.0.1 is ever requested.
class HttpsClient {
 public:
  explicit HttpsClient(std::string ca_file) : ca_file_(std::move(ca_file)), curl_(curl_easy_init()) {}
  ~HttpsClient() { curl_easy_cleanup(curl_); }
  HttpsClient(const HttpsClient&) = delete;
  HttpsClient& operator=(const HttpsClient&) = delete;

  HttpsResult get(int port, const std::string& path, std::vector<std::string> headers = {},
                  const std::string& accept_encoding = "") {
    HttpsResult r;
    const std::string url = "https://127.0.0.1:" + std::to_string(port) + path;
    curl_slist* list = nullptr;
    for (const auto& h : headers) list = curl_slist_append(list, h.c_str());
    curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl_, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(curl_, CURLOPT_CAINFO, ca_file_.c_str());
    curl_easy_setopt(curl_, CURLOPT_CAPATH, nullptr);  // this test's CA only, not the system's
    curl_easy_setopt(curl_, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl_, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(curl_, CURLOPT_CERTINFO, 1L);
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, list);
    // "": any coding libcurl decodes; else exactly this Accept-Encoding, body left as sent.
    if (accept_encoding.empty()) {
      curl_easy_setopt(curl_, CURLOPT_ACCEPT_ENCODING, nullptr);
      curl_easy_setopt(curl_, CURLOPT_HTTP_CONTENT_DECODING, 1L);
    } else {
      curl_easy_setopt(curl_, CURLOPT_ACCEPT_ENCODING, accept_encoding.c_str());
      curl_easy_setopt(curl_, CURLOPT_HTTP_CONTENT_DECODING, 0L);
    }
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, &append);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &r.body);
    curl_easy_setopt(curl_, CURLOPT_HEADERFUNCTION, &append);
    curl_easy_setopt(curl_, CURLOPT_HEADERDATA, &r.headers);
    const CURLcode rc = curl_easy_perform(curl_);
    curl_slist_free_all(list);
    if (rc != CURLE_OK) {
      r.error = curl_easy_strerror(rc);
      return r;
    }
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &r.status);
    curl_certinfo* info = nullptr;
    // The certificate of a reused connection is not reported again: empty then.
    if (curl_easy_getinfo(curl_, CURLINFO_CERTINFO, &info) == CURLE_OK && info != nullptr && info->num_of_certs > 0) {
      for (curl_slist* s = info->certinfo[0]; s != nullptr; s = s->next) {
        const std::string line = s->data;
        if (line.rfind("Serial Number:", 0) == 0) r.serial = line.substr(14);
      }
    }
    return r;
  }
  // Connections the last transfer had to open (0: it reused one).
  long connects() {
    long n = 0;
    curl_easy_getinfo(curl_, CURLINFO_NUM_CONNECTS, &n);
    return n;
  }

 private:
  std::string ca_file_;
  CURL* curl_;
};

// "10:02" or "1002" -> "1002".
std::string hex_only(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::isxdigit(static_cast<unsigned char>(c))) out += static_cast<char>(std::tolower(c));
  }
  out.erase(0, std::min(out.find_first_not_of('0'), out.size()));
  return out;
}

class HttpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    NIGHTSHIFT_REQUIRE_TESTNET(kNetnsError);
    ASSERT_FALSE(agent_binary().empty()) << "NIGHTSHIFT_BINARY is set by ctest";
    // A CA, and two server certificates it signs (serials 1001 and 1002, each its own key).
    ASSERT_TRUE(openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                         "-keyout", dir_.file("ca.key"), "-out", dir_.file("ca.pem"), "-days", "2", "-subj",
                         "/CN=nightshift test CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
                         "keyUsage=critical,keyCertSign,cRLSign"}));
    for (const char* serial : {"1001", "1002"}) issue(serial);
    write_text_file(dir_.file("token"), kToken + "\n");
    install("1001");
  }

  bool openssl(std::vector<std::string> args) {
    args.insert(args.begin(), "openssl");
    const RunResult r = run_process(args, 20s);
    if (!ran_ok(r)) ADD_FAILURE() << "openssl " << args[1] << ": " << r.err;
    return ran_ok(r);
  }

  // server-SERIAL.pem and .key: for 127.0.0.1 and localhost, signed by the CA.
  void issue(const std::string& serial) {
    const std::string base = dir_.file("server-" + serial);
    write_text_file(base + ".ext", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
    ASSERT_TRUE(openssl({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                         base + ".key", "-out", base + ".csr", "-subj", "/CN=localhost/O=serial " + serial}));
    ASSERT_TRUE(openssl({"x509", "-req", "-in", base + ".csr", "-CA", dir_.file("ca.pem"), "-CAkey",
                         dir_.file("ca.key"), "-set_serial", "0x" + serial, "-days", "2", "-extfile", base + ".ext",
                         "-out", base + ".pem"}));
  }

  // Puts a pair where the config points, as a renewal tool would (write aside, rename).
  void install(const std::string& serial) {
    for (const char* ext : {".pem", ".key"}) {
      const std::string to = dir_.file(std::string("tls") + ext);
      std::filesystem::copy_file(dir_.file("server-" + serial + ext), to + ".new",
                                 std::filesystem::copy_options::overwrite_existing);
      std::filesystem::rename(to + ".new", to);
    }
  }

  std::string config(const std::string& listen, bool tls, bool token, const std::string& api_extra = "") {
    std::string c = "[agent]\nname = \"https-test\"\nlisten = \"" + listen + "\"\nstate_dir = \"" + dir_.path() +
                    "/state\"\n";
    if (tls) c += "tls_cert_file = \"" + dir_.file("tls.pem") + "\"\ntls_key_file = \"" + dir_.file("tls.key") + "\"\n";
    if (token || !api_extra.empty()) c += "\n[api]\n";
    if (token) c += "token_file = \"" + dir_.file("token") + "\"\n";
    c += api_extra;
    return c;
  }

  std::string write_config(const std::string& text) {
    write_text_file(dir_.file("agent.toml"), text);
    return dir_.file("agent.toml");
  }

  // The metric from /metrics over HTTPS, or nullopt.
  std::optional<double> metric(HttpsClient& client, int port, const std::string& name) {
    const HttpsResult r = client.get(port, "/metrics");
    if (r.status != 200) return std::nullopt;
    return parse_prom_text(r.body).value(name, {{"agent", "https-test"}});
  }

  TempDir dir_;
};

TEST_F(HttpsTest, ServesEveryEndpointVerifiedAgainstTheCaWithGzipAndOpenMetrics) {
  RunningAgent agent = start_agent(write_config(config("127.0.0.1:0", true, true)));
  ASSERT_NE(agent.port, 0) << agent.process->stderr_text();
  const std::string log = agent.process->stderr_text();
  EXPECT_THAT(log, HasSubstr("metrics=https://127.0.0.1:" + std::to_string(agent.port) + "/metrics"));
  EXPECT_THAT(log, HasSubstr("msg=\"serving HTTPS\""));
  EXPECT_THAT(log, HasSubstr("serial=1001"));

  HttpsClient client(dir_.file("ca.pem"));
  const HttpsResult first = client.get(agent.port, "/healthz");
  ASSERT_EQ(first.error, "");
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(hex_only(first.serial), "1001");
  HttpsResult status;
  // The page is rendered a moment after the start (503 until then).
  EXPECT_TRUE(wait_until([&] { return (status = client.get(agent.port, "/status")).status == 200; }, 5s));
  EXPECT_THAT(status.body, HasSubstr("<h1>"));
  EXPECT_EQ(client.get(agent.port, "/status.json").status, 200);
  EXPECT_EQ(client.get(agent.port, "/healthz").status, 200);

  // Plain HTTP to the HTTPS port: a 400 that says what to use, as nginx answers.
  const HttpResult plain_http = http_get("http://127.0.0.1:" + std::to_string(agent.port) + "/status");
  EXPECT_EQ(plain_http.status, 400) << plain_http.error;
  EXPECT_THAT(plain_http.body, HasSubstr("use https://"));
  // A client that connects and says nothing yet holds up nobody.
  const int silent = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<std::uint16_t>(agent.port));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(silent, reinterpret_cast<sockaddr*>(&to), sizeof to), 0);
  HttpsClient fresh(dir_.file("ca.pem"));
  EXPECT_EQ(fresh.get(agent.port, "/healthz").status, 200);
  ::close(silent);

  // The operator API with its token, over the encrypted connection only.
  EXPECT_EQ(client.get(agent.port, "/api/v1/incidents").status, 401);
  EXPECT_EQ(client.get(agent.port, "/api/v1/incidents", {"Authorization: Bearer " + kToken}).status, 200);

  // The CLI over HTTPS: with the CA it works; without, it says what to give.
  const std::string https_url = "https://127.0.0.1:" + std::to_string(agent.port);
  const RunResult cli = run_process({agent_binary(), "incidents", "--url", https_url, "--cacert", dir_.file("ca.pem"),
                                     "--token-file", dir_.file("token")});
  EXPECT_TRUE(ran_ok(cli)) << cli.err;
  const RunResult cli_untrusting = run_process({agent_binary(), "incidents", "--url", https_url, "--token-file",
                                                dir_.file("token")},
                                               10s);
  EXPECT_FALSE(ran_ok(cli_untrusting));
  EXPECT_THAT(cli_untrusting.err, HasSubstr("give it with --cacert FILE"));

  // /metrics: gzip as sent (the bytes decompress), and OpenMetrics.
  const HttpsResult plain = client.get(agent.port, "/metrics");
  ASSERT_EQ(plain.status, 200);
  EXPECT_THAT(plain.body, HasSubstr("nightshift_http_tls_certificate_expiry_timestamp_seconds{agent=\"https-test\"}"));
  const HttpsResult gz = client.get(agent.port, "/metrics", {}, "gzip");
  ASSERT_EQ(gz.status, 200);
  EXPECT_THAT(gz.headers, HasSubstr("Content-Encoding: gzip"));
  ASSERT_GE(gz.body.size(), 2u);
  EXPECT_EQ(static_cast<unsigned char>(gz.body[0]), 0x1f);
  EXPECT_EQ(static_cast<unsigned char>(gz.body[1]), 0x8b);
  write_text_file(dir_.file("metrics.gz"), gz.body);
  const RunResult unzipped = run_process({"gzip", "-dc", dir_.file("metrics.gz")});
  ASSERT_TRUE(ran_ok(unzipped)) << unzipped.err;
  EXPECT_THAT(unzipped.out, HasSubstr("# TYPE nightshift_config_last_reload_successful gauge"));
  const HttpsResult om = client.get(agent.port, "/metrics", {"Accept: application/openmetrics-text; version=1.0.0"});
  ASSERT_EQ(om.status, 200);
  EXPECT_THAT(om.headers, HasSubstr("Content-Type: application/openmetrics-text"));
  EXPECT_TRUE(om.body.size() >= 6 && om.body.compare(om.body.size() - 6, 6, "# EOF\n") == 0) << om.body.substr(0, 200);

  // The expiry metric is the certificate's notAfter.
  const RunResult end = run_process({"openssl", "x509", "-in", dir_.file("tls.pem"), "-noout", "-enddate"});
  ASSERT_TRUE(ran_ok(end));
  const RunResult epoch = run_process({"date", "-u", "-d", end.out.substr(end.out.find('=') + 1), "+%s"});
  ASSERT_TRUE(ran_ok(epoch)) << epoch.err;
  EXPECT_EQ(metric(client, agent.port, "nightshift_http_tls_certificate_expiry_timestamp_seconds"),
            std::stod(epoch.out));

  // A client that does not trust the CA is refused the handshake, and plain
  // HTTP to the TLS port gets no HTTP answer.
  const RunResult untrusted = run_process({"curl", "-sS", "-m", "5", "--noproxy", "*", "--cacert",
                                           dir_.file("server-1002.pem"), agent.url("/status").replace(0, 4, "https")});
  EXPECT_FALSE(ran_ok(untrusted));
  EXPECT_THAT(untrusted.err, HasSubstr("certificate"));
  EXPECT_NE(http_get(agent.url("/metrics")).status, 200);

  // The key never shows: not in the log, not on /metrics.
  const std::string key = read_file(dir_.file("tls.key"));
  const std::string key_body = key.substr(key.find('\n') + 1, 40);
  EXPECT_THAT(agent.process->stderr_text(), Not(HasSubstr(key_body)));
  EXPECT_THAT(plain.body, Not(HasSubstr(key_body)));
}

TEST_F(HttpsTest, SighupServesARenewedPairToNewConnectionsAndKeepsABadOneOut) {
  RunningAgent agent = start_agent(write_config(config("127.0.0.1:0", true, true)));
  ASSERT_NE(agent.port, 0) << agent.process->stderr_text();
  HttpsClient kept(dir_.file("ca.pem"));  // one connection, open across the reloads
  ASSERT_EQ(hex_only(kept.get(agent.port, "/healthz").serial), "1001");
  ASSERT_EQ(kept.connects(), 1);  // connections this transfer opened

  // Renewed: new key, new serial; a SIGHUP, and new connections see it.
  install("1002");
  ASSERT_TRUE(agent.process->send_signal(SIGHUP));
  std::string seen;
  EXPECT_TRUE(wait_until(
      [&] {
        HttpsClient fresh(dir_.file("ca.pem"));
        seen = hex_only(fresh.get(agent.port, "/healthz").serial);
        return seen == "1002";
      },
      5s))
      << "serial seen " << seen << "\n" << agent.process->stderr_text();
  EXPECT_TRUE(agent.process->wait_for_stderr("msg=\"HTTPS certificate reloaded\"", 2s)) << agent.process->stderr_text();
  EXPECT_THAT(agent.process->stderr_text(), HasSubstr("serial=1002"));
  // The connection from before the reload still serves (same connection, no new handshake).
  const HttpsResult again = kept.get(agent.port, "/healthz");
  EXPECT_EQ(again.status, 200) << again.error;
  EXPECT_EQ(kept.connects(), 0) << "the open connection was dropped by the reload";
  HttpsClient client(dir_.file("ca.pem"));
  EXPECT_EQ(metric(client, agent.port, "nightshift_http_tls_last_reload_successful"), 1);

  // A broken renewal: the key of another certificate. The pair in use stays.
  std::filesystem::copy_file(dir_.file("server-1001.key"), dir_.file("tls.key"),
                             std::filesystem::copy_options::overwrite_existing);
  ASSERT_TRUE(agent.process->send_signal(SIGHUP));
  EXPECT_TRUE(agent.process->wait_for_stderr("HTTPS certificate reload failed", 5s)) << agent.process->stderr_text();
  EXPECT_THAT(agent.process->stderr_text(),
              HasSubstr("the TLS key file " + dir_.file("tls.key") + " is not the key of the certificate in " +
                        dir_.file("tls.pem")));
  EXPECT_TRUE(wait_until([&] { return metric(client, agent.port, "nightshift_http_tls_last_reload_successful") == 0; },
                         5s));
  HttpsClient after(dir_.file("ca.pem"));
  const HttpsResult r = after.get(agent.port, "/healthz");
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(hex_only(r.serial), "1002");
  EXPECT_EQ(metric(client, agent.port, "nightshift_config_last_reload_successful"), 1)
      << "the config itself reloaded fine";

  // Garbage in the certificate file: said, and still the old pair.
  write_text_file(dir_.file("tls.pem"), "not a certificate\n");
  ASSERT_TRUE(agent.process->send_signal(SIGHUP));
  EXPECT_TRUE(agent.process->wait_for_stderr("holds no PEM certificate", 5s)) << agent.process->stderr_text();
  HttpsClient last(dir_.file("ca.pem"));
  EXPECT_EQ(hex_only(last.get(agent.port, "/healthz").serial), "1002");

  // Fixed: back to 1 and the new pair.
  install("1001");
  ASSERT_TRUE(agent.process->send_signal(SIGHUP));
  EXPECT_TRUE(wait_until([&] { return metric(client, agent.port, "nightshift_http_tls_last_reload_successful") == 1; },
                         5s));
  HttpsClient fixed(dir_.file("ca.pem"));
  EXPECT_EQ(hex_only(fixed.get(agent.port, "/healthz").serial), "1001");
  const std::string key = read_file(dir_.file("server-1002.key"));
  EXPECT_THAT(agent.process->stderr_text(), Not(HasSubstr(key.substr(key.find('\n') + 1, 40))));
}

TEST_F(HttpsTest, BadPairAtStartNamesTheFileAndExits) {
  struct Case {
    std::function<void()> spoil;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {[&] { std::filesystem::remove(dir_.file("tls.pem")); },
       "cannot read the TLS certificate file " + dir_.file("tls.pem") + ": No such file or directory"},
      {[&] {
         std::filesystem::copy_file(dir_.file("server-1002.key"), dir_.file("tls.key"),
                                    std::filesystem::copy_options::overwrite_existing);
       },
       "the TLS key file " + dir_.file("tls.key") + " is not the key of the certificate in " + dir_.file("tls.pem")},
      {[&] {
         std::filesystem::copy_file(dir_.file("server-1001.pem"), dir_.file("tls.key"),
                                    std::filesystem::copy_options::overwrite_existing);
       },
       "the TLS key file " + dir_.file("tls.key") + " holds a certificate, not a private key (are tls_cert_file and "
       "tls_key_file swapped?)"},
      {[&] {
         std::string pem = read_file(dir_.file("server-1001.pem"));
         pem[pem.size() / 2] = pem[pem.size() / 2] == 'A' ? 'B' : 'A';  // one base64 character off
         pem.erase(pem.size() / 2 + 1, 30);
         write_text_file(dir_.file("tls.pem"), pem);
       },
       "the TLS certificate file " + dir_.file("tls.pem") + ": not a valid PEM certificate chain"},
  };
  const std::string path = write_config(config("127.0.0.1:0", true, false));
  for (const auto& c : cases) {
    install("1001");
    c.spoil();
    const RunResult check = run_process({agent_binary(), "check-config", path});
    ASSERT_TRUE(check.status && check.status->exited) << check.err;
    EXPECT_EQ(check.status->code, 1);
    EXPECT_THAT(check.err, HasSubstr(path + ": agent.tls_cert_file, agent.tls_key_file: " + c.expected));

    Process agent({{agent_binary(), "run", "-c", path}, {}, ""});
    const auto exited = agent.wait_for(5s);
    ASSERT_TRUE(exited && exited->exited) << agent.stderr_text();
    EXPECT_EQ(exited->code, 1);
    EXPECT_THAT(agent.stderr_text(), HasSubstr("msg=\"cannot start HTTP server\""));
    EXPECT_THAT(agent.stderr_text(), HasSubstr(c.expected));
    EXPECT_THAT(agent.stderr_text(), Not(HasSubstr("msg=listening")));
    const std::string key = read_file(dir_.file("server-1001.key"));
    EXPECT_THAT(agent.stderr_text(), Not(HasSubstr(key.substr(key.find('\n') + 1, 40))));
  }
}

TEST_F(HttpsTest, OperatorApiRefusedOverPlainHttpOffLoopbackWhileMetricsStayPlain) {
  // A token on every address over plain HTTP: refused by check-config and at start.
  for (const std::string listen : {"0.0.0.0:0", ":0", "[::]:0", "198.51.100.1:0"}) {
    const std::string path = write_config(config(listen, false, true));
    const RunResult check = run_process({agent_binary(), "check-config", path});
    ASSERT_TRUE(check.status && check.status->exited) << check.err;
    EXPECT_EQ(check.status->code, 1) << listen;
    EXPECT_THAT(check.err, HasSubstr(path + ":3:10: agent.listen: the operator API would take its bearer token (the "
                                     "[api] token) in clear: \"" + listen + "\" is plain HTTP on an address other "
                                     "machines reach. Serve HTTPS (set agent.tls_cert_file and agent.tls_key_file)"));
    EXPECT_THAT(check.err, HasSubstr("api.allow_plain_http = true"));
  }
  const std::string refused = write_config(config("0.0.0.0:0", false, true));
  Process run({{agent_binary(), "run", "-c", refused}, {}, ""});
  const auto exited = run.wait_for(5s);
  ASSERT_TRUE(exited && exited->exited);
  EXPECT_EQ(exited->code, 1);
  EXPECT_THAT(run.stderr_text(), HasSubstr("agent.listen: the operator API would take its bearer token"));
  EXPECT_THAT(run.stderr_text(), HasSubstr("config rejected; not starting"));

  // Loopback stays as it was; HTTPS or the explicit key lets it through.
  for (const auto& [text, what] : std::vector<std::pair<std::string, std::string>>{
           {config("127.0.0.1:0", false, true), "loopback"},
           {config("127.3.4.5:0", false, true), "127/8"},
           {config("[::1]:0", false, true), "::1"},
           {config("0.0.0.0:0", true, true), "HTTPS"},
           {config("0.0.0.0:0", false, true, "allow_plain_http = true\n"), "allowed"},
           {config("0.0.0.0:0", false, false), "no token: read-only API"}}) {
    const std::string path = write_config(text);
    const RunResult check = run_process({agent_binary(), "check-config", path});
    EXPECT_TRUE(ran_ok(check)) << what << ": " << check.err;
  }

  // Without a token, plain HTTP on every address starts, and /metrics and /status answer.
  RunningAgent agent = start_agent(write_config(config("0.0.0.0:0", false, false)));
  ASSERT_NE(agent.port, 0) << agent.process->stderr_text();
  EXPECT_THAT(agent.process->stderr_text(), HasSubstr("metrics=http://127.0.0.1:"));
  const HttpResult m = http_get(agent.url("/metrics"));
  EXPECT_EQ(m.status, 200);
  EXPECT_THAT(m.body, HasSubstr("nightshift_config_last_reload_successful"));
  EXPECT_THAT(m.body, Not(HasSubstr("nightshift_http_tls_")));
  EXPECT_TRUE(wait_until([&] { return http_get(agent.url("/status")).status == 200; }, 5s));

  // A reload that adds a token to that plain listener is rejected; the running config stays.
  write_config(config("0.0.0.0:0", false, true));
  ASSERT_TRUE(agent.process->send_signal(SIGHUP));
  EXPECT_TRUE(agent.process->wait_for_stderr("config reload rejected", 5s)) << agent.process->stderr_text();
  EXPECT_THAT(agent.process->stderr_text(), HasSubstr("the operator API would take its bearer token"));
  EXPECT_TRUE(wait_until(
      [&] { return agent.metric("nightshift_config_last_reload_successful", {{"agent", "https-test"}}) == 0; }, 5s));
  EXPECT_EQ(http_request("POST", agent.url("/api/v1/incidents/x/ack"), "{}").status, 403) << "still read-only";
}

}  // namespace
}  // namespace nightshift::test
