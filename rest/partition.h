// Identity partitions: the unit of connection and TLS-session reuse.
//
// libcurl 7.88.1 does not compare the private key, key password or SSL_CTX callback
// when it reuses a connection or resumes a TLS session (CVE-2026-8932), so the engine
// never lets it choose between identities: every (client certificate, trust set,
// verification options, server name, minimum version, pin, proxy route) gets its own Partition with
// its own curl share (connection cache, TLS session cache, DNS cache) and its own easy
// handles. Within a partition, keep-alive and resumption work as usual.
#ifndef WSSTEP_REST_PARTITION_H_
#define WSSTEP_REST_PARTITION_H_

#include <curl/curl.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/identity.h"
#include "core/mutex.h"
#include "core/ossl.h"
#include "rest/curl_handles.h"
#include "rest/engine.h"
#include "rest/step.h"

namespace wsstep::rest {

// Everything that decides how a TLS connection is made, fixed for a partition.
struct TlsProfile {
  std::shared_ptr<const core::Identity> identity;  // null: no client certificate
  ossl::X509StorePtr trust_store;                  // shared, built once per trust set
  bool verify_peer = true;
  bool verify_host = true;
  std::string tls_server_name;
  std::string min_tls_version;  // "", "1.2", "1.3"
  std::string pin;              // normalized "sha256//..." or ""
  bool private_trust_only = false;
  ProxyRoute proxy;  // url "": direct
};

class Partition {
 public:
  Partition(std::string key, TlsProfile profile);
  ~Partition();
  Partition(const Partition&) = delete;
  Partition& operator=(const Partition&) = delete;

  const std::string& key() const { return key_; }
  const TlsProfile& profile() const { return profile_; }

  // An easy handle attached to this partition's share: an idle one, or a new one.
  // Null only when libcurl cannot allocate.
  CURL* Borrow();
  // Gives a handle back (kept for reuse up to `max_idle`, cleaned up beyond).
  void Return(CURL* easy, size_t max_idle);

  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> new_connections{0};
  std::atomic<uint64_t> reused_connections{0};
  std::atomic<uint64_t> resumed_sessions{0};
  std::atomic<uint64_t> full_handshakes{0};
  std::atomic<int> active{0};  // transfers running on it now
  std::atomic<int64_t> last_used_ns{0};

  PartitionStats Stats() const;

  // The printable facts of a server certificate (subject, issuer, notAfter), formatted
  // once per certificate: X509_NAME_print_ex per request cost more than the rest of a
  // kept-alive transfer's own work.
  struct PeerNames {
    std::string subject;
    std::string issuer;
    int64_t not_after = 0;
  };
  std::shared_ptr<const PeerNames> PeerNamesOf(X509* peer);

 private:
  static void Lock(CURL*, curl_lock_data data, curl_lock_access, void* self);
  static void Unlock(CURL*, curl_lock_data data, void* self);

  const std::string key_;
  const TlsProfile profile_;
  curl::SharePtr share_;
  // libcurl takes and releases these in separate callbacks (Lock, Unlock), which the
  // thread-safety analysis cannot pair: plain std::mutex, guarding libcurl's own state.
  std::mutex locks_[CURL_LOCK_DATA_LAST];
  Mutex idle_mu_;
  std::vector<curl::EasyPtr> idle_ ABSL_GUARDED_BY(idle_mu_);
  Mutex peers_mu_;
  // Held references, so a cached pointer never names another certificate.
  std::vector<std::pair<ossl::X509Ptr, std::shared_ptr<const PeerNames>>> peers_
      ABSL_GUARDED_BY(peers_mu_);
};

// X509_STOREs, one per distinct trust set, built once and shared by every SSL_CTX that
// uses that set. "System" CAs come from SystemTrust (default: OpenSSL's default paths),
// and are left out when trust is private.
class TrustStoreCache {
 public:
  explicit TrustStoreCache(SystemTrust system) : system_(std::move(system)) {}
  // The cache key of a trust set ("system", "private:<ids>", "system+<ids>").
  static std::string Key(const core::TrustAnchors* trust, bool private_only);
  // The same key, appended to `key` (a partition's key holds it).
  static void AppendKey(const core::TrustAnchors* trust, bool private_only, std::string& key);
  Result<ossl::X509StorePtr> Get(const core::TrustAnchors* trust, bool private_only);

 private:
  SystemTrust system_;
  Mutex mu_;
  std::map<std::string, ossl::X509StorePtr> stores_ ABSL_GUARDED_BY(mu_);
};

// Partitions by key. Thread-safe.
class PartitionTable {
 public:
  PartitionTable(TrustStoreCache* trust, size_t max_partitions)
      : trust_(trust), max_partitions_(max_partitions) {}

  // The partition for these credentials and options (created on first use). pin must be
  // already normalized; `proxy` is the route the request takes (url "": direct): a
  // tunnelled connection is never offered to a direct request, nor to another proxy or
  // proxy user. `http2`: h2 offered (an h2 connection is never used for a step that
  // asked for HTTP/1.1 only). Errors: the trust store could not be built.
  Result<std::shared_ptr<Partition>> Get(const core::CallCredentials& credentials,
                                         const TlsOptions& tls, const std::string& pin,
                                         const ProxyRoute& proxy = {}, bool http2 = false);

  // Drops every partition no transfer uses now, closing its idle connections (when
  // descriptors run short). Returns how many were dropped.
  size_t DropIdle();

  std::vector<PartitionStats> Stats() const;
  // RestEngine::TotalsByEntry: live partitions plus those evicted, summed per entry id.
  std::vector<PartitionStats> TotalsByEntry() const;

 private:
  // Drops idle partitions, oldest first, until at most `keep` remain (or none is idle).
  void EvictLocked(size_t keep) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  TrustStoreCache* trust_;
  size_t max_partitions_;
  mutable Mutex mu_;
  std::map<std::string, std::shared_ptr<Partition>> partitions_ ABSL_GUARDED_BY(mu_);
  // The counters of evicted partitions, by identity entry id.
  std::map<std::string, PartitionStats> retired_ ABSL_GUARDED_BY(mu_);
};

}  // namespace wsstep::rest

#endif  // WSSTEP_REST_PARTITION_H_
