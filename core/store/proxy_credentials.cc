#include "core/store/proxy_credentials.h"

#include <algorithm>
#include <utility>

#include "core/store/codec.h"
#include "core/store/validation.h"

namespace wsstep::core {

Status ValidateProxyCredential(std::string_view name, std::string_view username,
                               const SecretBytes& password) {
  WSSTEP_RETURN_IF_ERROR(ValidateName(name));
  if (username.empty()) return Invalid("username", "required");
  if (username.size() > kMaxProxyUsernameLength) {
    return Invalid("username", "longer than " + std::to_string(kMaxProxyUsernameLength) + " bytes");
  }
  for (unsigned char c : username) {
    if (c < 0x20 || c == 0x7f) return Invalid("username", "contains a control character");
    if (c == ':') {
      return Invalid("username", "contains ':', which Basic proxy authentication cannot carry");
    }
  }
  if (password.size() == 0) return Invalid("password", "required");
  if (password.size() > kMaxProxyPasswordLength) {
    return Invalid("password", "longer than " + std::to_string(kMaxProxyPasswordLength) + " bytes");
  }
  for (char c : password.view()) {
    if (c == '\0' || c == '\r' || c == '\n') {
      return Invalid("password", "contains a NUL, CR or LF byte");
    }
  }
  return {};
}

std::string ProxyCredentialAad(std::string_view name) {
  return "proxy-credential/" + AsciiLower(name) + "/password";
}

std::shared_ptr<const ProxyCredentialSet> ProxyCredentialSet::Open(
    const std::vector<StoredSecret>& stored, const Vault& vault) {
  auto set = std::make_shared<ProxyCredentialSet>();
  for (const auto& s : stored) {
    Item item;
    item.key = AsciiLower(s.name);
    item.info = {s.name, s.username, s.created_at, s.updated_at};
    Result<SecretBytes> password = vault.Open(s.sealed_value, ProxyCredentialAad(s.name));
    if (password.ok()) {
      item.login =
          ProxyLogin{s.name, s.username, std::make_shared<const SecretBytes>(std::move(*password))};
    } else {
      Error e = password.error();
      e.message = "proxy credential \"" + s.name + "\": " + e.message;
      item.error = std::move(e);
    }
    set->items_.push_back(std::move(item));
  }
  std::sort(set->items_.begin(), set->items_.end(),
            [](const Item& a, const Item& b) { return a.key < b.key; });
  return set;
}

std::shared_ptr<const ProxyCredentialSet> ProxyCredentialSet::Empty() {
  static const auto empty = std::make_shared<const ProxyCredentialSet>();
  return empty;
}

std::shared_ptr<const ProxyCredentialSet> ProxyCredentialSet::With(ProxyCredentialInfo info,
                                                                   ProxyLogin login) const {
  auto set = std::make_shared<ProxyCredentialSet>(*this);
  Item item;
  item.key = AsciiLower(info.name);
  item.info = std::move(info);
  item.login = std::move(login);
  auto at = std::lower_bound(set->items_.begin(), set->items_.end(), item.key,
                             [](const Item& a, const std::string& key) { return a.key < key; });
  if (at != set->items_.end() && at->key == item.key) {
    *at = std::move(item);
  } else {
    set->items_.insert(at, std::move(item));
  }
  return set;
}

std::shared_ptr<const ProxyCredentialSet> ProxyCredentialSet::Without(std::string_view name) const {
  auto set = std::make_shared<ProxyCredentialSet>(*this);
  const std::string key = AsciiLower(name);
  std::erase_if(set->items_, [&](const Item& i) { return i.key == key; });
  return set;
}

const ProxyCredentialSet::Item* ProxyCredentialSet::FindItem(std::string_view name) const {
  const std::string key = AsciiLower(name);
  auto at = std::lower_bound(items_.begin(), items_.end(), key,
                             [](const Item& a, const std::string& k) { return a.key < k; });
  return at != items_.end() && at->key == key ? &*at : nullptr;
}

Result<ProxyLogin> ProxyCredentialSet::Find(std::string_view name) const {
  const Item* item = FindItem(name);
  if (item == nullptr) {
    return Error(Code::kNotFound,
                 "no proxy credential named \"" + std::string(name) + "\" in the store",
                 "create it with `wsstep proxy-credential set " + std::string(name) +
                     " --user USER --password-env VAR`, or name one that `wsstep "
                     "proxy-credential list` shows",
                 Side::kStore)
        .With("proxy_credential", std::string(name));
  }
  if (item->error) return *item->error;
  return *item->login;
}

const ProxyCredentialInfo* ProxyCredentialSet::Info(std::string_view name) const {
  const Item* item = FindItem(name);
  return item != nullptr ? &item->info : nullptr;
}

std::vector<ProxyCredentialInfo> ProxyCredentialSet::List() const {
  std::vector<ProxyCredentialInfo> out;
  out.reserve(items_.size());
  for (const auto& i : items_) out.push_back(i.info);
  return out;
}

Result<size_t> ResealStoredSecrets(Storage::Transaction& tx, const Vault& from, const Vault& to) {
  return tx.ResealSecrets(
      to.key_id(), [&](const std::string& name, std::string_view sealed) -> Result<std::string> {
        const std::string aad = ProxyCredentialAad(name);
        WSSTEP_ASSIGN_OR_RETURN(SecretBytes plain, from.Open(sealed, aad));
        return to.Seal(plain, aad);
      });
}

}  // namespace wsstep::core
