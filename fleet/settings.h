// FleetSettings: the [fleet] section, typed. Secrets (password, token) arrive
// already read from their *_file / *_env keys by the config loader and are
// never logged: describe() names only what is safe to show.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "nightshift/clock.h"

namespace nightshift::fleet {

struct FleetSettings {
  bool enabled = false;
  std::vector<std::string> servers;  // nats://host:port, tls://host:port
  std::string name = "nightshift";   // the fleet: subjects ns.<name>.*, buckets NS_<name>_*
  // Authentication: at most one of credentials_file (JWT + NKey .creds),
  // user + password, token.
  std::string credentials_file;
  std::string user;
  std::string password;  // secret
  std::string token;     // secret
  // TLS: a CA to trust, and a client certificate + key when the server asks.
  std::string tls_ca_file;
  std::string tls_cert_file;
  std::string tls_key_file;
  // Agents that must see a target down; 0: a majority of the reporting
  // agents that watch it.
  int quorum = 0;
  // JetStream replicas for the buckets; 0: 3 when the server is a cluster, else 1.
  int replicas = 0;
  Duration heartbeat = std::chrono::seconds(5);
  Duration lease = std::chrono::seconds(6);          // an owner silent this long loses its incidents
  Duration confirm_timeout = std::chrono::seconds(3);  // how long a confirmation waits for the others
  Duration connect_timeout = std::chrono::seconds(2);

  // A peer is reporting while heard from within this.
  Duration peer_timeout() const { return 3 * heartbeat; }

  bool operator==(const FleetSettings&) const = default;
};

// Empty when consistent, else one error per line (key: what is wrong).
std::vector<std::string> validate(const FleetSettings& s);
// For logs: servers, fleet name, which auth and TLS options are set (never their values).
std::string describe(const FleetSettings& s);

}  // namespace nightshift::fleet
