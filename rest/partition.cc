#include "rest/partition.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "core/x509_info.h"
#include "rest/proxy.h"

namespace wsstep::rest {

namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Partition::Partition(std::string key, TlsProfile profile)
    : key_(std::move(key)), profile_(std::move(profile)) {
  share_.reset(curl_share_init());
  // Constant arguments: a failure is a defect (or no memory), and must be loud: a share
  // that silently did not share connections would cost a handshake per request.
  const bool ok =
      share_ && curl_share_setopt(share_.get(), CURLSHOPT_LOCKFUNC, &Partition::Lock) == CURLSHE_OK &&
      curl_share_setopt(share_.get(), CURLSHOPT_UNLOCKFUNC, &Partition::Unlock) == CURLSHE_OK &&
      curl_share_setopt(share_.get(), CURLSHOPT_USERDATA, this) == CURLSHE_OK &&
      curl_share_setopt(share_.get(), CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) == CURLSHE_OK &&
      curl_share_setopt(share_.get(), CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) == CURLSHE_OK &&
      curl_share_setopt(share_.get(), CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT) == CURLSHE_OK;
  if (!ok) {
    std::fprintf(stderr, "wsstep: cannot set up a curl share for a partition\n");
    std::abort();
  }
  last_used_ns = NowNs();
}

Partition::~Partition() {
  // Easy handles first: the share refuses to go while handles still use it.
  idle_.clear();
  share_.reset();
}

void Partition::Lock(CURL*, curl_lock_data data, curl_lock_access, void* self) {
  static_cast<Partition*>(self)->locks_[data].lock();
}

void Partition::Unlock(CURL*, curl_lock_data data, void* self) {
  static_cast<Partition*>(self)->locks_[data].unlock();
}

CURL* Partition::Borrow() {
  last_used_ns = NowNs();
  {
    MutexLock lock(idle_mu_);
    if (!idle_.empty()) {
      CURL* easy = idle_.back().release();
      idle_.pop_back();
      return easy;
    }
  }
  curl::EasyPtr easy(curl_easy_init());
  if (!easy) return nullptr;
  curl::Setopt(easy.get(), CURLOPT_SHARE, share_.get());
  return easy.release();
}

void Partition::Return(CURL* easy, size_t max_idle) {
  last_used_ns = NowNs();
  {
    MutexLock lock(idle_mu_);
    if (idle_.size() < max_idle) {
      idle_.emplace_back(easy);
      return;
    }
  }
  curl::EasyPtr gone(easy);
}

std::shared_ptr<const Partition::PeerNames> Partition::PeerNamesOf(X509* peer) {
  // A handful of server certificates per partition at most (one, or a few behind a load
  // balancer); X509_cmp compares the digests OpenSSL cached when it decoded them.
  constexpr size_t kMaxPeers = 8;
  MutexLock lock(peers_mu_);
  for (const auto& [cert, names] : peers_) {
    if (cert.get() == peer || X509_cmp(cert.get(), peer) == 0) return names;
  }
  auto names = std::make_shared<PeerNames>();
  names->subject = core::NameOneLine(X509_get_subject_name(peer));
  names->issuer = core::NameOneLine(X509_get_issuer_name(peer));
  names->not_after = core::AsnTimeToUnix(X509_get0_notAfter(peer)).value_or(0);
  if (peers_.size() >= kMaxPeers) peers_.erase(peers_.begin());
  X509_up_ref(peer);
  peers_.emplace_back(ossl::X509Ptr(peer), names);
  return names;
}

PartitionStats Partition::Stats() const {
  PartitionStats s;
  s.key = key_;
  if (profile_.identity) {
    s.identity_fingerprint = profile_.identity->fingerprint;
    s.identity_entry_id = profile_.identity->entry_id;
  }
  s.requests = requests;
  s.new_connections = new_connections;
  s.reused_connections = reused_connections;
  s.resumed_sessions = resumed_sessions;
  s.full_handshakes = full_handshakes;
  return s;
}

void TrustStoreCache::AppendKey(const core::TrustAnchors* trust, bool private_only,
                                std::string& key) {
  // Every step builds its partition's key: the ids as the store keeps them (sorted)
  // are joined without a copy.
  std::vector<std::string> sorted;
  const std::vector<std::string>* parts = &sorted;
  if (trust != nullptr) {
    if (trust->entry_ids.empty()) {
      // Anchors built without store ids (tests, ad-hoc calls): key by content.
      for (const auto& cert : trust->certs) sorted.push_back(ossl::Sha256Fingerprint(cert.get()));
    } else if (std::is_sorted(trust->entry_ids.begin(), trust->entry_ids.end())) {
      parts = &trust->entry_ids;
    } else {
      sorted = trust->entry_ids;
    }
    if (parts == &sorted) std::sort(sorted.begin(), sorted.end());
  }
  if (private_only) {
    key += "private:";
  } else {
    key += parts->empty() ? "system" : "system+";
  }
  for (size_t i = 0; i < parts->size(); ++i) {
    if (i > 0) key += ',';
    key += (*parts)[i];
  }
}

std::string TrustStoreCache::Key(const core::TrustAnchors* trust, bool private_only) {
  std::string key;
  AppendKey(trust, private_only, key);
  return key;
}

Result<ossl::X509StorePtr> TrustStoreCache::Get(const core::TrustAnchors* trust,
                                                bool private_only) {
  std::string key = Key(trust, private_only);
  MutexLock lock(mu_);
  if (auto it = stores_.find(key); it != stores_.end()) {
    X509_STORE_up_ref(it->second.get());
    return ossl::X509StorePtr(it->second.get());
  }
  ossl::X509StorePtr store(X509_STORE_new());
  if (!store) return Error(Code::kInternal, "X509_STORE_new failed: " + ossl::DrainErrors());
  if (!private_only) {
    int ok = 1;
    if (system_.ca_file.empty() && system_.ca_path.empty()) {
      ok = X509_STORE_set_default_paths(store.get());
    } else {
      ok = X509_STORE_load_locations(store.get(),
                                     system_.ca_file.empty() ? nullptr : system_.ca_file.c_str(),
                                     system_.ca_path.empty() ? nullptr : system_.ca_path.c_str());
    }
    if (ok != 1) {
      return Error(Code::kInternal, "cannot load the system CA certificates: " +
                                        ossl::DrainErrors(),
                   "Check the system CA configuration of the plugin host.", Side::kConfiguration);
    }
  }
  if (trust != nullptr) {
    for (const auto& cert : trust->certs) {
      if (X509_STORE_add_cert(store.get(), cert.get()) != 1) ossl::ClearErrors();  // duplicate
    }
    // An uploaded intermediate or server certificate is an anchor in its own right.
    if (!trust->certs.empty()) X509_STORE_set_flags(store.get(), X509_V_FLAG_PARTIAL_CHAIN);
  }
  ossl::ClearErrors();
  X509_STORE_up_ref(store.get());
  ossl::X509StorePtr shared(store.get());
  stores_.emplace(key, std::move(store));
  return shared;
}

Result<std::shared_ptr<Partition>> PartitionTable::Get(const core::CallCredentials& credentials,
                                                       const TlsOptions& tls,
                                                       const std::string& pin,
                                                       const ProxyRoute& proxy, bool http2) {
  bool private_only = credentials.private_trust_only || tls.private_trust_only;
  const core::Identity* id = credentials.identity.get();
  // Built for every request: appended piece by piece, without temporaries.
  std::string key;
  key.reserve(256);
  key += "id=";
  if (id != nullptr) {
    key += id->fingerprint;
    key += '|';
    key += id->entry_id;
    key += '@';
    key += std::to_string(id->version);
  }
  key += ";trust=";
  TrustStoreCache::AppendKey(credentials.trust.get(), private_only, key);
  key += tls.verify_peer ? ";peer=1" : ";peer=0";
  key += tls.verify_host ? ";host=1" : ";host=0";
  key += ";sni=";
  key += tls.tls_server_name;
  key += ";min=";
  key += tls.min_tls_version;
  key += ";pin=";
  key += pin;
  key += ";proxy=";
  key += ProxyPartitionKey(proxy);
  key += http2 ? ";h2" : ";h1";

  MutexLock lock(mu_);
  if (auto it = partitions_.find(key); it != partitions_.end()) return it->second;
  TlsProfile profile;
  profile.identity = credentials.identity;
  WSSTEP_ASSIGN_OR_RETURN(profile.trust_store, trust_->Get(credentials.trust.get(), private_only));
  profile.verify_peer = tls.verify_peer;
  profile.verify_host = tls.verify_host;
  profile.tls_server_name = tls.tls_server_name;
  profile.min_tls_version = tls.min_tls_version;
  profile.pin = pin;
  profile.private_trust_only = private_only;
  profile.proxy = proxy;
  auto partition = std::make_shared<Partition>(key, std::move(profile));
  partitions_.emplace(key, partition);
  EvictLocked(max_partitions_);
  return partition;
}

size_t PartitionTable::DropIdle() {
  MutexLock lock(mu_);
  const size_t before = partitions_.size();
  EvictLocked(0);
  return before - partitions_.size();
}

void PartitionTable::EvictLocked(size_t keep) {
  while (partitions_.size() > keep) {
    auto oldest = partitions_.end();
    for (auto it = partitions_.begin(); it != partitions_.end(); ++it) {
      if (it->second->active > 0) continue;
      if (oldest == partitions_.end() || it->second->last_used_ns < oldest->second->last_used_ns) {
        oldest = it;
      }
    }
    if (oldest == partitions_.end()) return;  // all busy: let it grow for now
    // Dropped from the table; destroyed when the last transfer holding it finishes. It
    // is idle (active == 0), so its counters are final: keep their sum for the totals.
    const PartitionStats last = oldest->second->Stats();
    PartitionStats& retired = retired_[last.identity_entry_id];
    retired.identity_entry_id = last.identity_entry_id;
    retired.AddCounters(last);
    partitions_.erase(oldest);
  }
}

std::vector<PartitionStats> PartitionTable::Stats() const {
  MutexLock lock(mu_);
  std::vector<PartitionStats> out;
  for (const auto& [key, p] : partitions_) out.push_back(p->Stats());
  return out;
}

std::vector<PartitionStats> PartitionTable::TotalsByEntry() const {
  MutexLock lock(mu_);
  std::map<std::string, PartitionStats> totals = retired_;
  for (const auto& [key, p] : partitions_) {
    const PartitionStats s = p->Stats();
    PartitionStats& t = totals[s.identity_entry_id];
    t.identity_entry_id = s.identity_entry_id;
    t.identity_fingerprint = s.identity_fingerprint;
    t.AddCounters(s);
  }
  std::vector<PartitionStats> out;
  out.reserve(totals.size());
  for (auto& [id, t] : totals) out.push_back(std::move(t));
  return out;
}

}  // namespace wsstep::rest
