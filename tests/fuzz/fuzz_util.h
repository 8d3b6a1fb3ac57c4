// Helpers shared by the fuzz targets: carving one fuzz input into the several inputs an
// API takes (in layouts that generated and hand-written seeds can follow), and the
// checks every target applies to what comes back.
//
// Input layouts, so seeds can be written by hand or by tests/fuzz/make_corpus.sh:
// - Split inputs (key pair): [flags byte][password length byte][password][content]
//   then optionally kKeySeparator followed by the separate key file.
// - Field inputs (step configs): "name=value" lines; values take C escapes (\n \r \t \0
//   \\ \xHH), so CR/LF/NUL and any byte can be written in a readable text seed.
#ifndef WSSTEP_TESTS_FUZZ_FUZZ_UTIL_H_
#define WSSTEP_TESTS_FUZZ_FUZZ_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"

namespace wsstep::fuzz {

// Sits between the main content and the separate key file of a split input.
inline constexpr std::string_view kKeySeparator = "\n--wsstep-fuzz-key--\n";

inline std::string_view AsView(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Consumes an input from the front; running out yields zeros and empty views, never an
// error, so every byte string maps to some call.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : rest_(bytes) {}
  uint8_t Byte() {
    if (rest_.empty()) return 0;
    uint8_t b = static_cast<uint8_t>(rest_.front());
    rest_.remove_prefix(1);
    return b;
  }
  std::string_view Take(size_t n) {
    std::string_view out = rest_.substr(0, n);
    rest_.remove_prefix(out.size());
    return out;
  }
  std::string_view Rest() const { return rest_; }

 private:
  std::string_view rest_;
};

// {before, after} around the first `sep`; after is empty and found false without one.
struct Split {
  std::string_view before;
  std::string_view after;
  bool found = false;
};
inline Split SplitOnce(std::string_view text, std::string_view sep) {
  size_t at = text.find(sep);
  if (at == std::string_view::npos) return {text, {}, false};
  return {text.substr(0, at), text.substr(at + sep.size()), true};
}

// C escapes as described at the top; an unknown or cut-off escape stands for itself.
inline std::string Unescape(std::string_view text) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c != '\\' || i + 1 == text.size()) {
      out += c;
      continue;
    }
    char e = text[++i];
    // Pairs of (escape letter, byte); spelled with its length because of the NUL.
    static constexpr std::string_view kEscapes("n\nr\rt\t0\0\\\\", 10);
    size_t simple = kEscapes.find(e);
    if (simple != std::string_view::npos && simple % 2 == 0) {
      out += kEscapes[simple + 1];
    } else if (e == 'x' && i + 2 < text.size() && hex(text[i + 1]) >= 0 && hex(text[i + 2]) >= 0) {
      out += static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2]));
      i += 2;
    } else {
      out += '\\';
      out += e;
    }
  }
  return out;
}

struct Field {
  std::string name;
  std::string value;  // unescaped
};

// "name=value" lines (LF or CRLF). Lines without '=' and lines starting with '#' are
// skipped.
inline std::vector<Field> ParseFields(std::string_view text) {
  std::vector<Field> fields;
  while (!text.empty()) {
    Split line = SplitOnce(text, "\n");
    text = line.found ? line.after : std::string_view();
    std::string_view l = line.before;
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    if (l.empty() || l.front() == '#') continue;
    Split kv = SplitOnce(l, "=");
    if (!kv.found) continue;
    fields.push_back({std::string(kv.before), Unescape(kv.after)});
  }
  return fields;
}

// "name<sep>value" of a field value, e.g. a header "X-Id:42"; all of it is the name when
// there is no separator.
inline std::pair<std::string, std::string> NameValue(std::string_view text, std::string_view sep) {
  Split s = SplitOnce(text, sep);
  return {std::string(s.before), std::string(s.after)};
}

inline bool ParseBool(std::string_view v) { return v == "1" || v == "true" || v == "on"; }

inline int64_t ParseInt(std::string_view v) {
  // strtoll wants a terminated string and saturates instead of overflowing.
  std::string s(v);
  return std::strtoll(s.c_str(), nullptr, 10);
}

// With WSSTEP_FUZZ_VERBOSE set, targets print each call's outcome (to see how far seeds
// get); otherwise silent, as fuzzing needs.
inline bool Verbose() {
  static const bool verbose = std::getenv("WSSTEP_FUZZ_VERBOSE") != nullptr;
  return verbose;
}
inline void Note(std::string_view call, const Error* e) {
  if (!Verbose()) return;
  std::string what =
      e == nullptr ? std::string("OK") : std::string(CodeName(e->code)) + " " + e->message;
  std::fprintf(stderr, "  %.*s: %s\n", static_cast<int>(call.size()), call.data(), what.c_str());
}
template <typename R>
void Note(std::string_view call, const R& r) {
  Note(call, r.ok() ? nullptr : &r.error());
}

// A violated property: print what and abort, so libFuzzer saves the input as a crash and
// the replay test fails.
[[noreturn]] inline void Fail(std::string_view what) {
  std::fprintf(stderr, "wsstep fuzz property violated: %.*s\n", static_cast<int>(what.size()),
               what.data());
  std::abort();
}

// The product rule (PRODUCT.md §6) that secrets never appear in an error: `secret` must
// not occur in the message, hint or any detail. For fixed, distinctive secrets (the test
// PKI passwords): a secret chosen by the fuzzer could be spelled by the message's own
// words; use SecretVariant and SameError for those. Skipped when `public_text` (input the
// error may legitimately quote, such as certificate bytes) contains the secret.
inline void CheckNoSecret(const Error& e, std::string_view secret,
                          const std::vector<std::string_view>& public_text) {
  if (secret.size() < 8) return;
  for (std::string_view p : public_text) {
    if (p.find(secret) != std::string_view::npos) return;
  }
  auto leaks = [&](std::string_view s) { return s.find(secret) != std::string_view::npos; };
  bool leaked = leaks(e.message) || leaks(e.hint);
  for (const auto& [k, v] : e.detail) leaked = leaked || leaks(k) || leaks(v);
  if (leaked) Fail("a secret appears in the error " + std::string(CodeName(e.code)));
}

// The secret with every letter and digit replaced by the next one (a->b, z->a, 9->0),
// everything else kept: a value no check can tell from the original (checks look at
// control characters, separators and emptiness), so an error that changes with it quotes
// the secret.
inline std::string SecretVariant(std::string_view secret) {
  std::string out(secret);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z')
      c = c == 'z' ? 'a' : static_cast<char>(c + 1);
    else if (c >= 'A' && c <= 'Z')
      c = c == 'Z' ? 'A' : static_cast<char>(c + 1);
    else if (c >= '0' && c <= '9')
      c = c == '9' ? '0' : static_cast<char>(c + 1);
  }
  return out;
}

// Fails unless the outcome with the secrets replaced by their SecretVariant is the same.
inline void SameError(const Status& original, const Status& variant) {
  if (original.ok() != variant.ok()) Fail("the outcome depends on the secret's letters");
  if (original.ok()) return;
  const Error& a = original.error();
  const Error& b = variant.error();
  if (a.code != b.code || a.message != b.message || a.hint != b.hint || a.detail != b.detail) {
    Fail("a secret appears in the error " + std::string(CodeName(a.code)));
  }
}

}  // namespace wsstep::fuzz

#endif  // WSSTEP_TESTS_FUZZ_FUZZ_UTIL_H_
