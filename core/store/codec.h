// Small encodings the certificate store uses in its rows and tokens, and its entry ids.
// Internal to the store.
//
//   std::string column = EncodeList(e.chain_subjects);     // one BLOB for a list
//   std::vector<std::string> back = DecodeList(column);
//   std::string token = Hex(AsciiLower(last_name));        // an opaque page token
#ifndef WSSTEP_CORE_STORE_CODEC_H_
#define WSSTEP_CORE_STORE_CODEC_H_

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wsstep::core {

// A list of byte strings as one: each item is its length (LEB128 varint) then its bytes.
std::string EncodeList(const std::vector<std::string>& items);
// The items of an EncodeList encoding. Stops at the first malformed item (the columns
// holding these are written only by EncodeList).
std::vector<std::string> DecodeList(std::string_view encoded);

// A map as EncodeList of key, value, key, value, ... in key order.
std::string EncodeMap(const std::map<std::string, std::string>& map);
std::map<std::string, std::string> DecodeMap(std::string_view encoded);

// Lower-case hex of `bytes`, and back (nullopt for odd lengths and non-hex digits,
// upper case included).
std::string Hex(std::string_view bytes);
std::optional<std::string> Unhex(std::string_view hex);

// ASCII letters lowered, every other byte kept: the case-insensitive form of names.
std::string AsciiLower(std::string_view s);

// A new entry id: 15 hex digits (60 random bits). Short enough for std::string's inline
// buffer, which matters when 100,000s of entries are loaded at startup.
std::string NewEntryId();

}  // namespace wsstep::core

#endif  // WSSTEP_CORE_STORE_CODEC_H_
