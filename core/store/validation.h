// What the certificate store checks in an administrator's input before it parses any
// material or writes anything, and the errors that name the offending field. Internal to
// the store (core/store/store.h documents the codes each call returns).
//
//   WSSTEP_RETURN_IF_ERROR(ValidateName(request.name));
//   WSSTEP_RETURN_IF_ERROR(NormalizeBindings(request.bindings, request.type));
//   WSSTEP_ASSIGN_OR_RETURN(size_t page_size, PageSize(filter.page_size));
#ifndef WSSTEP_CORE_STORE_VALIDATION_H_
#define WSSTEP_CORE_STORE_VALIDATION_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/model.h"

namespace wsstep::core {

inline constexpr size_t kMaxNameLength = 200;          // bytes
inline constexpr size_t kMaxDescriptionLength = 2000;  // bytes
inline constexpr size_t kDefaultPageSize = 100;
inline constexpr size_t kMaxPageSize = 1000;

// NOT_FOUND for an id or name that no entry has.
Error NotFound(std::string_view id_or_name);
// DUPLICATE_NAME: `name` is taken by the entry now called `existing` (names compare
// case-insensitively, so the two may differ in case).
Error DuplicateName(std::string_view name, std::string_view existing);
// INVALID_ARGUMENT "<field>: <message>", with the field in the error's detail.
Error Invalid(std::string field, std::string message);

// Required, at most kMaxNameLength bytes, no leading or trailing space, no control
// character.
Status ValidateName(std::string_view name);
Status ValidateDescription(std::string_view description);
Status ValidateNotifications(const NotificationSettings& notifications);

// Normalizes hosts (lower case, no trailing dot, surrounding spaces dropped), fills
// defaults (port 0 -> 443, empty environment -> "default") and drops exact duplicates.
// INVALID_ARGUMENT naming bindings[i].host / .environment for what is not a host name (a
// wildcard only as the whole first label), a host with a port, a control character; and
// for any binding of a mobile provisioning profile, which is never used for TLS.
Status NormalizeBindings(std::vector<Binding>& bindings, EntryType type);

// A requested page size: 0 means kDefaultPageSize; above kMaxPageSize is INVALID_ARGUMENT.
Result<size_t> PageSize(size_t requested);

}  // namespace wsstep::core

#endif  // WSSTEP_CORE_STORE_VALIDATION_H_
