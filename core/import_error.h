// How importers build their errors: the message starts with the input's name, the side
// is the administrator's configuration, and detail["input"] carries the name again for
// callers that point at a form field.
#ifndef WSSTEP_CORE_IMPORT_ERROR_H_
#define WSSTEP_CORE_IMPORT_ERROR_H_

#include <string>
#include <string_view>

#include "core/error.h"

namespace wsstep::core {

inline Error ImportError(Code code, std::string_view input, std::string_view what,
                         std::string hint = {}) {
  Error e(code, std::string(input) + ": " + std::string(what), std::move(hint),
          Side::kConfiguration);
  e.With("input", std::string(input));
  return e;
}

inline constexpr std::string_view kHintPasswordRequired =
    "Enter the password the file is protected with.";
inline constexpr std::string_view kHintWrongPassword =
    "Check the password: it is case-sensitive, and spaces and accents count.";

}  // namespace wsstep::core

#endif  // WSSTEP_CORE_IMPORT_ERROR_H_
