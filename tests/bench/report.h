// The benchmark's one table: every absolute figure, and the PRODUCT.md §5 ratios beside
// their targets. Printed as aligned text on stdout and written as Markdown for the
// README. A figure that could not be measured is kept as a row with the reason, so the
// table always shows what is missing (and the harness exits non-zero).
//
//   Report report;
//   report.SetFact("cores (nproc)", "2");
//   report.AddFigure("nginx gateway (wrk)", "16 connections: requests/s", 12345.6, "req/s", 0);
//   report.AddMissing("wsstep plugin (gRPC)", "warm, 16 in flight", "ExecuteRestStep: UNIMPLEMENTED");
//   report.AddRatio("warm steps/s at 16 in flight: plugin / nginx gateway", ratio,
//                   RatioTarget::AtLeast(1.0));
//   std::cout << report.Text();
#ifndef WSSTEP_TESTS_BENCH_REPORT_H_
#define WSSTEP_TESTS_BENCH_REPORT_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace wsstep::bench {

struct RatioTarget {
  enum class Kind { kAtLeast, kAtMost, kAbout };
  Kind kind = Kind::kAtLeast;
  double value = 1.0;
  double tolerance = 0.0;  // kAbout: met when |ratio - value| <= tolerance

  static RatioTarget AtLeast(double v) { return {Kind::kAtLeast, v, 0}; }
  static RatioTarget AtMost(double v) { return {Kind::kAtMost, v, 0}; }
  static RatioTarget About(double v, double tol) { return {Kind::kAbout, v, tol}; }
  bool Met(double measured) const;
  std::string Text(const std::string& unit) const;  // "≥ 1.0×", "≤ 5 µs", "≈ 1.0× (±0.15)"
};

class Report {
 public:
  // Header facts ("cores (nproc)", "load average (1 min) at start", ...), in order.
  void SetFact(std::string name, std::string value);
  void AddFigure(std::string section, std::string what, double value, std::string unit,
                 int decimals, std::string note = {});
  void AddMissing(std::string section, std::string what, std::string reason);
  // A §5 comparison. `measured` empty: not measurable (reason in note). `unit` is "×"
  // for ratios, or the unit of an absolute target ("s", "µs").
  void AddRatio(std::string what, std::optional<double> measured, RatioTarget target,
                std::string unit = "×", std::string note = {});

  // A comparison whose inputs were deliberately not measured (--only): shown, not
  // counted as missing.
  void AddSkippedRatio(std::string what, RatioTarget target, std::string unit = "×");

  bool complete() const { return missing_ == 0; }
  int missing() const { return missing_; }
  std::string Text() const;
  std::string Markdown() const;

 private:
  struct Row {
    std::string section, what, value, unit, note;
  };
  struct RatioRow {
    std::string what, measured, target, status, note;
  };
  std::vector<std::pair<std::string, std::string>> facts_;
  std::vector<Row> rows_;
  std::vector<RatioRow> ratios_;
  int missing_ = 0;
};

}  // namespace wsstep::bench

#endif  // WSSTEP_TESTS_BENCH_REPORT_H_
