// An in-memory Storage (core/store/storage.h) for tests of the store's pieces: what was
// committed is visible in its fields, and a test can make the next commits fail.
// Test-only; header-only so that core's library does not carry it.
//
//   MemoryStorage storage;
//   storage.fail_commits = 1;               // the next commit fails with STORAGE_ERROR
//   ... exercise the piece ...
//   EXPECT_EQ(storage.audit.size(), 3u);
#ifndef WSSTEP_CORE_STORE_STORAGE_TESTING_H_
#define WSSTEP_CORE_STORE_STORAGE_TESTING_H_

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/store/codec.h"
#include "core/store/storage.h"

namespace wsstep::core::testing {

class MemoryStorage : public Storage {
 public:
  // Committed state, in the shape the store writes it. Guarded by mu.
  struct Row {
    EntryMetadata entry;
    int64_t save_sequence = 0;
  };
  std::map<std::string, Row> entries;
  std::map<std::string, StoredMaterial> material;
  std::vector<AuditEvent> audit;
  std::optional<MasterKeyRecord> key_record;
  std::map<std::string, StoredSecret> secrets;  // by lower-cased name
  // Commits still to fail, how many transactions committed, and how many times
  // material was read.
  int fail_commits = 0;
  int commits = 0;
  int material_reads = 0;
  std::mutex mu;

  bool read_only() const override { return false; }
  const std::string& location() const override { return location_; }

  Result<std::optional<MasterKeyRecord>> ReadMasterKeyRecord() override {
    std::lock_guard lk(mu);
    return key_record;
  }
  Result<LoadedEntries> LoadEntries() override {
    std::lock_guard lk(mu);
    std::vector<const Row*> rows;
    for (const auto& [id, row] : entries) rows.push_back(&row);
    std::sort(rows.begin(), rows.end(),
              [](const Row* a, const Row* b) { return a->save_sequence < b->save_sequence; });
    LoadedEntries loaded;
    for (const Row* r : rows) {
      loaded.entries.push_back(r->entry);
      loaded.latest_save_sequence = std::max(loaded.latest_save_sequence, r->save_sequence);
    }
    return loaded;
  }
  Result<std::optional<StoredMaterial>> ReadMaterial(std::string_view entry_id) override {
    std::lock_guard lk(mu);
    ++material_reads;
    auto it = material.find(std::string(entry_id));
    if (it == material.end()) return std::optional<StoredMaterial>();
    return std::optional<StoredMaterial>(it->second);
  }
  Result<std::vector<StoredSecret>> ReadSecrets() override {
    std::lock_guard lk(mu);
    std::vector<StoredSecret> out;
    for (const auto& [key, secret] : secrets) out.push_back(secret);
    return out;
  }
  Result<std::vector<AuditEvent>> ReadAudit(const AuditFilter& filter, int64_t before,
                                            size_t limit) override {
    std::lock_guard lk(mu);
    std::vector<AuditEvent> out;
    for (auto it = audit.rbegin(); it != audit.rend() && out.size() < limit; ++it) {
      if (before != 0 && it->sequence >= before) continue;
      if (!filter.entry_id.empty() && it->entry_id != filter.entry_id) continue;
      if (filter.action && it->action != *filter.action) continue;
      out.push_back(*it);
    }
    return out;
  }

  Result<std::unique_ptr<Transaction>> Begin() override {
    return std::unique_ptr<Transaction>(std::make_unique<MemoryTransaction>(*this));
  }

 private:
  // Collects writes; applies them all at Commit.
  class MemoryTransaction : public Transaction {
   public:
    explicit MemoryTransaction(MemoryStorage& s) : s_(s) {}
    Status PutEntry(const EntryMetadata& e, int64_t save_sequence) override {
      return Then([e, save_sequence](MemoryStorage& s) {
        s.entries[e.id] = Row{e, save_sequence};
      });
    }
    Status PutBindings(const EntryMetadata& e) override {
      return Then([e](MemoryStorage& s) { s.entries[e.id].entry.bindings = e.bindings; });
    }
    Status PutMaterial(const EntryMetadata& e, const StoredMaterial& m) override {
      return Then([id = e.id, m](MemoryStorage& s) { s.material[id] = m; });
    }
    Status DeleteEntry(std::string_view entry_id) override {
      return Then([id = std::string(entry_id)](MemoryStorage& s) {
        s.entries.erase(id);
        s.material.erase(id);
      });
    }
    Status PutUsage(std::string_view entry_id, uint64_t added_uses,
                    UnixSeconds last_used_at) override {
      return Then([id = std::string(entry_id), added_uses, last_used_at](MemoryStorage& s) {
        auto it = s.entries.find(id);
        if (it == s.entries.end()) return;
        it->second.entry.use_count += added_uses;
        it->second.entry.last_used_at = std::max(it->second.entry.last_used_at, last_used_at);
      });
    }
    Status PutLastNotified(std::string_view entry_id, UnixSeconds at) override {
      return Then([id = std::string(entry_id), at](MemoryStorage& s) {
        auto it = s.entries.find(id);
        if (it != s.entries.end()) it->second.entry.last_notified_at = at;
      });
    }
    Status AppendAudit(const AuditEvent& event) override {
      return Then([event](MemoryStorage& s) {
        s.audit.push_back(event);
        s.audit.back().sequence = static_cast<int64_t>(s.audit.size());
      });
    }
    Status PutMasterKeyRecord(const MasterKeyRecord& record) override {
      return Then([record](MemoryStorage& s) { s.key_record = record; });
    }
    Result<size_t> ResealKeys(std::string_view new_key_id, const Resealer& reseal) override {
      std::map<std::string, StoredMaterial> copy;
      {
        std::lock_guard lk(s_.mu);
        copy = s_.material;
      }
      size_t n = 0;
      for (auto& [id, m] : copy) {
        if (!m.sealed_key) continue;
        WSSTEP_ASSIGN_OR_RETURN(std::string sealed, reseal(id, *m.sealed_key));
        WSSTEP_RETURN_IF_ERROR(
            Then([id = id, sealed, key = std::string(new_key_id)](MemoryStorage& s) {
              s.material[id].sealed_key = sealed;
              s.material[id].sealed_key_id = key;
            }));
        ++n;
      }
      return n;
    }
    Status PutSecret(const StoredSecret& secret) override {
      return Then([secret](MemoryStorage& s) {
        StoredSecret& stored = s.secrets[AsciiLower(secret.name)];
        const bool existed = !stored.name.empty();
        const StoredSecret before = stored;
        stored = secret;
        if (existed) {
          stored.name = before.name;
          stored.created_at = before.created_at;
        }
      });
    }
    Status DeleteSecret(std::string_view name) override {
      return Then([key = AsciiLower(name)](MemoryStorage& s) { s.secrets.erase(key); });
    }
    Result<size_t> ResealSecrets(std::string_view new_key_id, const Resealer& reseal) override {
      std::map<std::string, StoredSecret> copy;
      {
        std::lock_guard lk(s_.mu);
        copy = s_.secrets;
      }
      for (auto& [key, secret] : copy) {
        WSSTEP_ASSIGN_OR_RETURN(std::string sealed, reseal(secret.name, secret.sealed_value));
        WSSTEP_RETURN_IF_ERROR(
            Then([key = key, sealed, id = std::string(new_key_id)](MemoryStorage& s) {
              s.secrets[key].sealed_value = sealed;
              s.secrets[key].key_id = id;
            }));
      }
      return copy.size();
    }
    Status Commit() override {
      std::lock_guard lk(s_.mu);
      if (s_.fail_commits > 0) {
        --s_.fail_commits;
        return Error(Code::kStorageError, "memory: commit refused by the test", "", Side::kStore);
      }
      for (auto& w : writes_) w(s_);
      writes_.clear();
      ++s_.commits;
      return {};
    }

   private:
    Status Then(std::function<void(MemoryStorage&)> write) {
      writes_.push_back(std::move(write));
      return {};
    }
    MemoryStorage& s_;
    std::vector<std::function<void(MemoryStorage&)>> writes_;
  };

  std::string location_ = "memory";
};

}  // namespace wsstep::core::testing

#endif  // WSSTEP_CORE_STORE_STORAGE_TESTING_H_
