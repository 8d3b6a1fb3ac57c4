#include "core/store/validation.h"

#include <algorithm>

namespace wsstep::core {

Error NotFound(std::string_view what) {
  return Error(Code::kNotFound, "no certificate named or with id '" + std::string(what) + "'",
               "list the certificates to see their names and ids", Side::kConfiguration)
      .With("certificate", std::string(what));
}

Error DuplicateName(std::string_view name, std::string_view existing) {
  return Error(Code::kDuplicateName,
               "name: a certificate named '" + std::string(existing) + "' already exists",
               "choose another name, or update the existing certificate", Side::kConfiguration)
      .With("name", std::string(name));
}

Error Invalid(std::string field, std::string message) {
  return Error(Code::kInvalidArgument, field + ": " + message, "", Side::kConfiguration)
      .With("field", field);
}

Status ValidateName(std::string_view name) {
  if (name.empty()) return Invalid("name", "required");
  if (name.size() > kMaxNameLength) {
    return Invalid("name", "longer than " + std::to_string(kMaxNameLength) + " bytes");
  }
  if (name.front() == ' ' || name.back() == ' ') {
    return Invalid("name", "starts or ends with a space");
  }
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f) return Invalid("name", "contains a control character");
  }
  return {};
}

Status ValidateDescription(std::string_view d) {
  if (d.size() > kMaxDescriptionLength) {
    return Invalid("description",
                   "longer than " + std::to_string(kMaxDescriptionLength) + " bytes");
  }
  return {};
}

Status ValidateNotifications(const NotificationSettings& n) {
  if (n.warning_days < 0 || n.warning_days > 3650) {
    return Invalid("notifications.warning_days", "must be between 0 and 3650");
  }
  if (n.urgent_days < 0 || n.urgent_days > n.warning_days) {
    return Invalid("notifications.urgent_days",
                   "must be between 0 and warning_days (" + std::to_string(n.warning_days) + ")");
  }
  return {};
}

namespace {

bool ValidHostChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
         c == ':' || c == '[' || c == ']';
}

}  // namespace

Status NormalizeBindings(std::vector<Binding>& bindings, EntryType type) {
  if (!bindings.empty() && type == EntryType::kMobileProvisioning) {
    return Invalid("bindings",
                   "a mobile provisioning profile is never used for TLS and "
                   "cannot be bound to a host");
  }
  std::vector<Binding> out;
  for (size_t i = 0; i < bindings.size(); ++i) {
    std::string field = "bindings[" + std::to_string(i) + "]";
    Binding b = bindings[i];
    std::string_view raw = b.host;
    while (!raw.empty() && raw.front() == ' ') raw.remove_prefix(1);
    while (!raw.empty() && raw.back() == ' ') raw.remove_suffix(1);
    b.host = NormalizeHost(raw);
    if (b.host.empty()) return Invalid(field + ".host", "required");
    std::string_view rest = b.host;
    if (rest.starts_with("*.")) rest.remove_prefix(2);
    if (rest.empty() || rest.front() == '.') {
      return Invalid(field + ".host", "'" + b.host + "' is not a host name");
    }
    for (char c : rest) {
      if (!ValidHostChar(c)) {
        return Invalid(field + ".host", "'" + b.host +
                                            "' is not a host name (a wildcard is allowed only as "
                                            "the whole first label: *.example.com)");
      }
    }
    if (std::count(rest.begin(), rest.end(), ':') == 1) {
      return Invalid(field + ".host",
                     "'" + b.host + "' includes a port; give the port in " + field + ".port");
    }
    if (b.port == 0) b.port = kDefaultPort;
    if (b.environment.empty()) b.environment = std::string(kDefaultEnvironment);
    for (unsigned char c : b.environment) {
      if (c < 0x20 || c == 0x7f)
        return Invalid(field + ".environment", "contains a control character");
    }
    if (std::find(out.begin(), out.end(), b) == out.end()) out.push_back(std::move(b));
  }
  bindings = std::move(out);
  return {};
}

Result<size_t> PageSize(size_t requested) {
  size_t page_size = requested == 0 ? kDefaultPageSize : requested;
  if (page_size > kMaxPageSize) {
    return Invalid("page_size", "at most " + std::to_string(kMaxPageSize));
  }
  return page_size;
}

}  // namespace wsstep::core
