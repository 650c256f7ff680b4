#include "serve/tls.h"

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

namespace nightshift {

namespace {
// A chain longer than this is not one a server sends.
constexpr unsigned kMaxChain = 16;

std::string hex(const unsigned char* data, std::size_t size) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (std::size_t i = 0; i < size; ++i) {
    out += kDigits[data[i] >> 4];
    out += kDigits[data[i] & 0xf];
  }
  return out;
}

Result<std::string> read_whole(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error::io("cannot read the TLS " + std::string(what) + " file " + path + ": " + std::strerror(errno));
  std::ostringstream s;
  s << in.rdbuf();
  if (s.str().empty()) return Error::invalid("the TLS " + std::string(what) + " file " + path + " is empty");
  return s.str();
}

std::string digest(const std::string& bytes) {
  unsigned char out[32];
  gnutls_hash_fast(GNUTLS_DIG_SHA256, bytes.data(), bytes.size(), out);
  return std::string(reinterpret_cast<const char*>(out), sizeof out);
}

SystemTime from_time_t(time_t t) { return SystemTime{} + std::chrono::seconds(t); }

gnutls_datum_t datum(const std::string& s) {
  return {reinterpret_cast<unsigned char*>(const_cast<char*>(s.data())), static_cast<unsigned>(s.size())};
}

// The public key's SHA-256 id, or "" when it cannot be computed.
std::string key_id(gnutls_pubkey_t pub) {
  unsigned char id[64];
  size_t size = sizeof id;
  if (gnutls_pubkey_get_key_id(pub, GNUTLS_KEYID_USE_SHA256, id, &size) != 0) return "";
  return std::string(reinterpret_cast<const char*>(id), size);
}
}  // namespace

TlsIdentity::~TlsIdentity() {
  auto* chain = static_cast<gnutls_pcert_st*>(chain_);
  for (unsigned i = 0; i < chain_size_; ++i) gnutls_pcert_deinit(&chain[i]);
  delete[] chain;
  if (key_ != nullptr) gnutls_privkey_deinit(static_cast<gnutls_privkey_t>(key_));
}

bool TlsIdentity::same_files(const TlsIdentity& other) const {
  return cert_digest_ == other.cert_digest_ && key_digest_ == other.key_digest_;
}

Result<std::shared_ptr<const TlsIdentity>> TlsIdentity::load(const std::string& cert_file,
                                                             const std::string& key_file) {
  auto cert_pem = read_whole(cert_file, "certificate");
  if (!cert_pem.ok()) return cert_pem.error();
  auto key_pem = read_whole(key_file, "key");
  if (!key_pem.ok()) return key_pem.error();
  const std::string cert_where = "the TLS certificate file " + cert_file;
  const std::string key_where = "the TLS key file " + key_file;
  if (cert_pem->find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
    if (cert_pem->find("PRIVATE KEY-----") != std::string::npos) {
      return Error::invalid(cert_where + " holds a private key, not a certificate (are tls_cert_file and "
                                         "tls_key_file swapped?)");
    }
    return Error::invalid(cert_where + " holds no PEM certificate (expected \"-----BEGIN CERTIFICATE-----\")");
  }
  if (key_pem->find("PRIVATE KEY-----") == std::string::npos) {
    if (key_pem->find("-----BEGIN CERTIFICATE-----") != std::string::npos) {
      return Error::invalid(key_where + " holds a certificate, not a private key (are tls_cert_file and "
                                        "tls_key_file swapped?)");
    }
    return Error::invalid(key_where + " holds no PEM private key (expected \"-----BEGIN PRIVATE KEY-----\")");
  }
  if (key_pem->find("ENCRYPTED") != std::string::npos) {
    return Error::invalid(key_where + " is encrypted with a passphrase; give the key unencrypted, readable only by "
                                      "the agent's user");
  }

  std::shared_ptr<TlsIdentity> id(new TlsIdentity);
  id->cert_file_ = cert_file;
  id->key_file_ = key_file;
  id->cert_digest_ = digest(*cert_pem);
  id->key_digest_ = digest(*key_pem);

  auto* chain = new gnutls_pcert_st[kMaxChain];
  unsigned count = kMaxChain;
  const gnutls_datum_t cert_data = datum(*cert_pem);
  int rc = gnutls_pcert_list_import_x509_raw(chain, &count, &cert_data, GNUTLS_X509_FMT_PEM, 0);
  if (rc < 0) {
    delete[] chain;
    if (rc == GNUTLS_E_SHORT_MEMORY_BUFFER) {
      return Error::invalid(cert_where + " holds more than " + std::to_string(kMaxChain) + " certificates");
    }
    return Error::invalid(cert_where + ": not a valid PEM certificate chain (" + gnutls_strerror(rc) + ")");
  }
  id->chain_ = chain;
  id->chain_size_ = count;
  id->info_.chain_length = count;

  gnutls_privkey_t key = nullptr;
  gnutls_privkey_init(&key);
  id->key_ = key;
  const gnutls_datum_t key_data = datum(*key_pem);
  rc = gnutls_privkey_import_x509_raw(key, &key_data, GNUTLS_X509_FMT_PEM, nullptr, 0);
  if (rc < 0) return Error::invalid(key_where + ": not a valid PEM private key (" + gnutls_strerror(rc) + ")");

  gnutls_pubkey_t from_key = nullptr;
  gnutls_pubkey_init(&from_key);
  rc = gnutls_pubkey_import_privkey(from_key, key, 0, 0);
  const std::string key_side = rc == 0 ? key_id(from_key) : "";
  gnutls_pubkey_deinit(from_key);
  const std::string cert_side = key_id(chain[0].pubkey);
  if (key_side.empty() || cert_side.empty() || key_side != cert_side) {
    return Error::invalid(key_where + " is not the key of the certificate in " + cert_file +
                          " (the first certificate there must be the server's own)");
  }

  gnutls_x509_crt_t crt = nullptr;
  gnutls_x509_crt_init(&crt);
  if (gnutls_x509_crt_import(crt, &chain[0].cert, GNUTLS_X509_FMT_DER) == 0) {
    unsigned char buf[64];
    size_t size = sizeof buf;
    if (gnutls_x509_crt_get_serial(crt, buf, &size) == 0) id->info_.serial = hex(buf, size);
    size = sizeof buf;
    if (gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, buf, &size) == 0) id->info_.sha256 = hex(buf, size);
    gnutls_datum_t dn{};
    if (gnutls_x509_crt_get_dn3(crt, &dn, 0) == 0) {
      id->info_.subject.assign(reinterpret_cast<const char*>(dn.data), dn.size);
      gnutls_free(dn.data);
    }
    id->info_.not_before = from_time_t(gnutls_x509_crt_get_activation_time(crt));
    id->info_.not_after = from_time_t(gnutls_x509_crt_get_expiration_time(crt));
  }
  gnutls_x509_crt_deinit(crt);
  return std::shared_ptr<const TlsIdentity>(std::move(id));
}

}  // namespace nightshift
