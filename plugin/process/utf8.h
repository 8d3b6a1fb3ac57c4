// Text that leaves the process — a log line, a proto string field — is valid UTF-8.
//
//   out->set_message(ValidUtf8(error.message));
//   outcome.set_body_text(TakeValidUtf8(std::move(body)));  // no copy when already valid
#ifndef WSSTEP_PLUGIN_PROCESS_UTF8_H_
#define WSSTEP_PLUGIN_PROCESS_UTF8_H_

#include <string>
#include <string_view>

namespace wsstep::plugin {

// `text` as a proto3 string field may carry it: valid UTF-8, with each byte that does not
// start a well-formed sequence (RFC 3629) replaced by U+FFFD. Text from the wire (a header
// value, XML) may be in any encoding, and one string field with invalid UTF-8 makes the
// whole message unparseable for the host.
std::string ValidUtf8(std::string_view text);
// The same for a string the caller gives up: returned as it is (no copy) when valid.
std::string TakeValidUtf8(std::string&& text);

}  // namespace wsstep::plugin

#endif  // WSSTEP_PLUGIN_PROCESS_UTF8_H_
