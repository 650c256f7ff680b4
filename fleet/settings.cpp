#include "fleet/settings.h"

#include "fleet/protocol.h"

namespace nightshift::fleet {

std::vector<std::string> validate(const FleetSettings& s) {
  std::vector<std::string> errors;
  if (!s.enabled) return errors;
  if (s.servers.empty()) errors.push_back("servers: give at least one nats:// or tls:// URL");
  for (std::size_t i = 0; i < s.servers.size(); ++i) {
    const std::string& u = s.servers[i];
    if (u.rfind("nats://", 0) != 0 && u.rfind("tls://", 0) != 0) {
      errors.push_back("servers[" + std::to_string(i) + "]: expected nats://host:port or tls://host:port, found \"" +
                       u + "\"");
    }
  }
  if (auto e = check_token("name", s.name); !e.empty()) errors.push_back(e);
  const int auth = !s.credentials_file.empty() + (!s.user.empty() || !s.password.empty()) + !s.token.empty();
  if (auth > 1) errors.push_back("credentials_file, user/password and token: give at most one of them");
  if (s.user.empty() != s.password.empty()) errors.push_back("user and password: give both or neither");
  if (s.tls_cert_file.empty() != s.tls_key_file.empty()) {
    errors.push_back("tls_cert_file and tls_key_file: give both or neither");
  }
  if (s.quorum < 0) errors.push_back("quorum: must be 0 (majority) or a positive count");
  if (s.replicas < 0 || s.replicas > 5) errors.push_back("replicas: expected 0 (automatic) to 5");
  if (s.heartbeat < std::chrono::milliseconds(100)) errors.push_back("heartbeat: at least 100ms");
  if (s.lease < std::chrono::seconds(1)) errors.push_back("lease: at least 1s");
  if (s.confirm_timeout <= Duration::zero()) errors.push_back("confirm_timeout: must be positive");
  return errors;
}

std::string describe(const FleetSettings& s) {
  std::string out = "fleet=" + s.name + " servers=";
  for (std::size_t i = 0; i < s.servers.size(); ++i) {
    // A URL may carry user:password@: show scheme, host and port only.
    std::string u = s.servers[i];
    const auto scheme = u.find("://");
    const auto at = u.rfind('@');
    if (scheme != std::string::npos && at != std::string::npos && at > scheme) u.erase(scheme + 3, at - scheme - 2);
    out += (i ? "," : "") + u;
  }
  out += " auth=";
  if (!s.credentials_file.empty()) out += "credentials_file";
  else if (!s.user.empty()) out += "user";
  else if (!s.token.empty()) out += "token";
  else out += "none";
  out += !s.tls_ca_file.empty() || !s.tls_cert_file.empty() ? " tls=yes" : " tls=no";
  return out;
}

}  // namespace nightshift::fleet
