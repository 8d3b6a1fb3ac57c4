#include "tests/bench/report.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "tests/bench/stats.h"

namespace wsstep::bench {
namespace {

// Display width of UTF-8 text: code points, not bytes ("≥", "×", "µ" are one column).
size_t Width(const std::string& s) {
  return static_cast<size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

std::string Pad(const std::string& s, size_t width) {
  size_t w = Width(s);
  return w >= width ? s : s + std::string(width - w, ' ');
}

// Aligned text table: a header, a rule, rows.
std::string TextTable(const std::vector<std::string>& header,
                      const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths(header.size(), 0);
  for (size_t i = 0; i < header.size(); ++i) widths[i] = Width(header[i]);
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size() && i < widths.size(); ++i) widths[i] = std::max(widths[i], Width(r[i]));
  }
  std::ostringstream out;
  auto line = [&](const std::vector<std::string>& cells) {
    std::string text;
    for (size_t i = 0; i < cells.size(); ++i) {
      text += (i + 1 < cells.size()) ? Pad(cells[i], widths[i]) + "  " : cells[i];
    }
    out << text << "\n";
  };
  line(header);
  size_t total = 0;
  for (size_t w : widths) total += w + 2;
  out << std::string(total, '-') << "\n";
  for (const auto& r : rows) line(r);
  return out.str();
}

std::string MarkdownCell(std::string s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += "\\|";
    else if (c == '\n') out += "<br>";
    else out += c;
  }
  return out;
}

std::string MarkdownTable(const std::vector<std::string>& header,
                          const std::vector<std::vector<std::string>>& rows) {
  std::ostringstream out;
  out << "|";
  for (const auto& h : header) out << " " << MarkdownCell(h) << " |";
  out << "\n|";
  for (size_t i = 0; i < header.size(); ++i) out << " --- |";
  out << "\n";
  for (const auto& r : rows) {
    out << "|";
    for (const auto& c : r) out << " " << MarkdownCell(c) << " |";
    out << "\n";
  }
  return out.str();
}

std::string Trim(double v) {
  // Two significant decimals for ratios, fewer for big numbers.
  if (std::fabs(v) >= 100) return FormatNumber(v, 0);
  if (std::fabs(v) >= 10) return FormatNumber(v, 1);
  return FormatNumber(v, 2);
}

}  // namespace

bool RatioTarget::Met(double measured) const {
  switch (kind) {
    case Kind::kAtLeast: return measured >= value;
    case Kind::kAtMost: return measured <= value;
    case Kind::kAbout: return std::fabs(measured - value) <= tolerance;
  }
  return false;
}

std::string RatioTarget::Text(const std::string& unit) const {
  const std::string u = unit == "×" ? "×" : " " + unit;
  switch (kind) {
    case Kind::kAtLeast: return "≥ " + Trim(value) + u;
    case Kind::kAtMost: return "≤ " + Trim(value) + u;
    case Kind::kAbout: return "≈ " + Trim(value) + u + " (±" + Trim(tolerance) + ")";
  }
  return "";
}

void Report::SetFact(std::string name, std::string value) {
  facts_.emplace_back(std::move(name), std::move(value));
}

void Report::AddFigure(std::string section, std::string what, double value, std::string unit,
                       int decimals, std::string note) {
  rows_.push_back({std::move(section), std::move(what), FormatNumber(value, decimals),
                   std::move(unit), std::move(note)});
}

void Report::AddMissing(std::string section, std::string what, std::string reason) {
  ++missing_;
  rows_.push_back({std::move(section), std::move(what), "n/a", "", "NOT MEASURED: " + reason});
}

void Report::AddRatio(std::string what, std::optional<double> measured, RatioTarget target,
                      std::string unit, std::string note) {
  RatioRow r;
  r.what = std::move(what);
  r.target = target.Text(unit);
  if (measured) {
    r.measured = Trim(*measured) + (unit == "×" ? "×" : " " + unit);
    r.status = target.Met(*measured) ? "met" : "MISSED";
  } else {
    r.measured = "n/a";
    r.status = "not measured";
    ++missing_;
  }
  r.note = std::move(note);
  ratios_.push_back(std::move(r));
}

void Report::AddSkippedRatio(std::string what, RatioTarget target, std::string unit) {
  ratios_.push_back({std::move(what), "skipped", target.Text(unit), "skipped", "not selected (--only / --keepalive-only / --single-flow-rounds 0)"});
}

std::string Report::Text() const {
  std::ostringstream out;
  out << "wsstep benchmark (tests/bench, PRODUCT.md §5)\n";
  for (const auto& [k, v] : facts_) out << "  " << k << ": " << v << "\n";
  out << "\n";
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : rows_) rows.push_back({r.section, r.what, r.value, r.unit, r.note});
  out << TextTable({"baseline / subject", "measurement", "value", "unit", "note"}, rows) << "\n";
  std::vector<std::vector<std::string>> ratios;
  for (const auto& r : ratios_) ratios.push_back({r.what, r.measured, r.target, r.status, r.note});
  out << TextTable({"§5 target", "measured", "target", "status", "how"}, ratios);
  return out.str();
}

std::string Report::Markdown() const {
  std::ostringstream out;
  out << "## Benchmark (tests/bench, PRODUCT.md §5)\n\n";
  for (const auto& [k, v] : facts_) out << "- " << MarkdownCell(k) << ": " << MarkdownCell(v) << "\n";
  out << "\n";
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : rows_) rows.push_back({r.section, r.what, r.value, r.unit, r.note});
  out << MarkdownTable({"baseline / subject", "measurement", "value", "unit", "note"}, rows)
      << "\n";
  std::vector<std::vector<std::string>> ratios;
  for (const auto& r : ratios_) ratios.push_back({r.what, r.measured, r.target, r.status, r.note});
  out << MarkdownTable({"§5 target", "measured", "target", "status", "how"}, ratios);
  return out.str();
}

}  // namespace wsstep::bench
