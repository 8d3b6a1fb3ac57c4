#include "core/store/codec.h"

#include <openssl/rand.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>

namespace wsstep::core {
namespace {

void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}

bool GetVarint(std::string_view& in, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64 && !in.empty(); shift += 7) {
    auto b = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return true;
  }
  return false;
}

}  // namespace

std::string EncodeList(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) {
    PutVarint(out, s.size());
    out += s;
  }
  return out;
}

std::vector<std::string> DecodeList(std::string_view in) {
  std::vector<std::string> out;
  uint64_t n = 0;
  while (!in.empty() && GetVarint(in, n) && n <= in.size()) {
    out.emplace_back(in.substr(0, n));
    in.remove_prefix(n);
  }
  return out;
}

std::string EncodeMap(const std::map<std::string, std::string>& m) {
  std::vector<std::string> flat;
  for (const auto& [k, v] : m) {
    flat.push_back(k);
    flat.push_back(v);
  }
  return EncodeList(flat);
}

std::map<std::string, std::string> DecodeMap(std::string_view in) {
  std::vector<std::string> flat = DecodeList(in);
  std::map<std::string, std::string> m;
  for (size_t i = 0; i + 1 < flat.size(); i += 2) m[flat[i]] = flat[i + 1];
  return m;
}

std::string Hex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += kHex[c >> 4];
    out += kHex[c & 0xf];
  }
  return out;
}

std::optional<std::string> Unhex(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  auto val = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::string out;
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = val(hex[i]);
    int lo = val(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
  }
  return out;
}

std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string NewEntryId() {
  unsigned char raw[8];
  if (RAND_bytes(raw, sizeof(raw)) != 1) {
    // The generator never fails on a working system; fall back to something unique.
    static std::atomic<uint64_t> counter{0};
    uint64_t v = static_cast<uint64_t>(::getpid()) << 32 | counter.fetch_add(1);
    std::memcpy(raw, &v, sizeof(raw));
  }
  return Hex(std::string_view(reinterpret_cast<const char*>(raw), sizeof(raw))).substr(1);
}

}  // namespace wsstep::core
