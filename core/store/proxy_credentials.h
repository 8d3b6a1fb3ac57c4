// Named proxy credentials kept by the store (PRODUCT.md §2 "Networks"): a user and a
// password that a step or the plugin's configuration names instead of carrying the
// password itself. The password is sealed by the vault like a private key, bound to the
// credential's name, re-sealed by a master key rotation, and never returned by any call;
// only the step's transfer sees it, as the proxy's Basic credentials.
//
//   WSSTEP_RETURN_IF_ERROR(ValidateProxyCredential(name, username, password));
//   auto set = ProxyCredentialSet::Open(stored_secrets, vault);
//   WSSTEP_ASSIGN_OR_RETURN(ProxyLogin login, set->Find("corp-proxy"));  // case-insensitive
//
// Part of the store's API through core/store/store.h.
#ifndef WSSTEP_CORE_STORE_PROXY_CREDENTIALS_H_
#define WSSTEP_CORE_STORE_PROXY_CREDENTIALS_H_

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/model.h"
#include "core/secret.h"
#include "core/store/storage.h"
#include "core/vault.h"

namespace wsstep::core {

inline constexpr size_t kMaxProxyUsernameLength = 256;   // bytes
inline constexpr size_t kMaxProxyPasswordLength = 1024;  // bytes

// What anyone may see of a proxy credential: never its password.
struct ProxyCredentialInfo {
  std::string name;
  std::string username;
  UnixSeconds created_at = 0;
  UnixSeconds updated_at = 0;  // when the user or password last changed
};

// What a step's transfer is given: the user and the password, shared and immutable.
struct ProxyLogin {
  std::string name;
  std::string username;
  std::shared_ptr<const SecretBytes> password;
};

// INVALID_ARGUMENT naming the field: the name as an entry's (core/store/validation.h);
// the username required, at most kMaxProxyUsernameLength bytes, without ':' (Basic
// authentication cannot carry it) or a control character; the password required, at
// most kMaxProxyPasswordLength bytes, without NUL, CR or LF.
Status ValidateProxyCredential(std::string_view name, std::string_view username,
                               const SecretBytes& password);

// The associated data of the sealed password of the credential named `name`: a blob
// moved to another credential fails to open.
std::string ProxyCredentialAad(std::string_view name);

// The proxy credentials of one moment, opened. Immutable; shared by every step.
class ProxyCredentialSet {
 public:
  // Opens every stored password with `vault` (its retired keys too). A password that
  // does not open (a damaged row) is remembered as its error, for the steps that name it.
  static std::shared_ptr<const ProxyCredentialSet> Open(const std::vector<StoredSecret>& stored,
                                                        const Vault& vault);
  static std::shared_ptr<const ProxyCredentialSet> Empty();

  // A copy with `login` added, or in place of the one of the same name.
  std::shared_ptr<const ProxyCredentialSet> With(ProxyCredentialInfo info, ProxyLogin login) const;
  // A copy without the credential named `name`.
  std::shared_ptr<const ProxyCredentialSet> Without(std::string_view name) const;

  // By name, case-insensitively: NOT_FOUND naming it, or the error its password gave.
  Result<ProxyLogin> Find(std::string_view name) const;
  // By name, case-insensitively; null when there is none.
  const ProxyCredentialInfo* Info(std::string_view name) const;
  // Ordered by name, case-insensitively.
  std::vector<ProxyCredentialInfo> List() const;

 private:
  struct Item {
    std::string key;  // the name, lower-cased
    ProxyCredentialInfo info;
    std::optional<ProxyLogin> login;  // nullopt: `error` says why
    std::optional<Error> error;
  };
  const Item* FindItem(std::string_view name) const;
  std::vector<Item> items_;  // ordered by key
};

// Within `tx`: every stored proxy password opened with `from` and sealed again under
// `to`'s primary key. Returns how many; the first that does not open stops it.
Result<size_t> ResealStoredSecrets(Storage::Transaction& tx, const Vault& from, const Vault& to);

}  // namespace wsstep::core

#endif  // WSSTEP_CORE_STORE_PROXY_CREDENTIALS_H_
