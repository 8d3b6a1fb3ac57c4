// Enum <-> name tables: one constant table of {value, "NAME"} pairs per enum, read both
// ways, so that a name is written once.
//
//   constexpr std::pair<Color, std::string_view> kColors[] = {
//       {Color::kRed, "RED"}, {Color::kGreen, "GREEN"}};
//   std::string_view ColorName(Color c) { return NameIn(kColors, c); }  // "UNKNOWN": absent
//   std::optional<Color> ColorFromName(std::string_view n) { return ValueIn(kColors, n); }
#ifndef WSSTEP_CORE_ENUM_NAMES_H_
#define WSSTEP_CORE_ENUM_NAMES_H_

#include <iterator>
#include <optional>
#include <string_view>
#include <type_traits>

namespace wsstep::core {

// The name of `value` in `table` (any range of {value, name} pairs), "UNKNOWN" if absent.
template <typename Table, typename E>
std::string_view NameIn(const Table& table, E value) {
  for (const auto& [v, name] : table) {
    if (v == value) return name;
  }
  return "UNKNOWN";
}

// The value named `name` (exactly, case included) in `table`, nullopt if absent.
template <typename Table>
auto ValueIn(const Table& table, std::string_view name)
    -> std::optional<std::remove_cvref_t<decltype(std::begin(table)->first)>> {
  for (const auto& [v, n] : table) {
    if (n == name) return v;
  }
  return std::nullopt;
}

}  // namespace wsstep::core

#endif  // WSSTEP_CORE_ENUM_NAMES_H_
