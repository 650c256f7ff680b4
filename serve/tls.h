// TlsIdentity: the certificate chain and private key the HTTP server presents,
// read from PEM files (GnuTLS, the library libmicrohttpd speaks TLS with) and
// checked before it is used: both files parse, the key is not encrypted, and it
// belongs to the first certificate. Errors name the file and what is wrong;
// they never quote the key file's contents.
//
// Thread safety: an identity is immutable once loaded; any thread.
#pragma once

#include <memory>
#include <string>

#include "nightshift/clock.h"
#include "nightshift/result.h"

namespace nightshift {

struct TlsIdentityInfo {
  std::string subject;      // the first certificate's subject DN, e.g. "CN=status.example.net"
  std::string serial;       // hex, lower case, e.g. "1a2b..."
  std::string sha256;       // fingerprint of the first certificate (DER), hex, lower case
  SystemTime not_before{};
  SystemTime not_after{};
  std::size_t chain_length = 0;
};

class TlsIdentity {
 public:
  ~TlsIdentity();
  TlsIdentity(const TlsIdentity&) = delete;
  TlsIdentity& operator=(const TlsIdentity&) = delete;

  // Reads and checks the pair; the error names the file at fault.
  static Result<std::shared_ptr<const TlsIdentity>> load(const std::string& cert_file, const std::string& key_file);

  const TlsIdentityInfo& info() const { return info_; }
  const std::string& cert_file() const { return cert_file_; }
  const std::string& key_file() const { return key_file_; }
  // Whether both files held exactly these bytes (a reload of unchanged files
  // keeps the identity in use).
  bool same_files(const TlsIdentity& other) const;

  // For the handshake callback: gnutls_pcert_st* chain, its length, gnutls_privkey_t.
  void* chain() const { return chain_; }
  unsigned chain_size() const { return chain_size_; }
  void* key() const { return key_; }

 private:
  TlsIdentity() = default;
  std::string cert_file_, key_file_;
  std::string cert_digest_, key_digest_;  // SHA-256 of the files' bytes, to tell a renewal from a re-read
  TlsIdentityInfo info_;
  void* chain_ = nullptr;  // gnutls_pcert_st[chain_size_]
  unsigned chain_size_ = 0;
  void* key_ = nullptr;    // gnutls_privkey_t
};

}  // namespace nightshift
