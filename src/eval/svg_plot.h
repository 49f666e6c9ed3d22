// Self-contained SVG figures for the evaluations: the passkey heatmap (prompt length x needle
// depth, colour = accuracy) and line plots of a value against context length (log-scaled x:
// perplexity curves, decode cost, memory). Pure
// functions from data to an SVG document string: explicit width/height and viewBox, generic
// font families only, no scripts, no external references, every text XML-escaped.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace lc::eval {

// Escapes & < > " ' for XML text and attributes; control characters XML 1.0 forbids become
// spaces.
std::string xml_escape(const std::string& s);

// A token count as people write it: 512 -> "512", 1024 -> "1K", 1536 -> "1.5K", 16384 -> "16K",
// 1048576 -> "1M"; counts that are no multiple of 512 (from 1K on) are written out in full.
std::string length_label(int64_t n);

// The heatmap's colour of an accuracy in [0, 1] (clamped): red (0) -> yellow (0.5) -> green
// (1), interpolated linearly between those three stops; "#rrggbb".
std::string accuracy_color(double accuracy);
// The colour of text drawn on accuracy_color(accuracy): near-black or white, whichever contrasts
// more.
std::string accuracy_text_color(double accuracy);

struct HeatmapCell {
  double accuracy = 0;  // in [0, 1]
  int64_t correct = 0, trials = 0;
};

struct PasskeyHeatmap {
  std::string title, subtitle;   // subtitle: settings (memory, RoPE, format, ...), wrapped to fit
  std::vector<int64_t> lengths;  // rows, top to bottom
  std::vector<double> depths;    // columns, left to right, in [0, 1]
  // lengths.size() x depths.size(), row-major; nullopt = not run (drawn grey, marked "-").
  std::vector<std::optional<HeatmapCell>> cells;
};

// The heatmap: one rect per cell (class "cell", data-length / data-depth / data-accuracy) with
// its percentage written inside, row labels (length_label), column labels ("0%" ... "100%"),
// axis titles, a colour legend (0% .. 100%) and the title. lc::InternalError when cells does
// not match the grid.
std::string passkey_heatmap_svg(const PasskeyHeatmap& h);

// A line plot of values against context length: one series per configuration or run.
struct LinePoint {
  int64_t length = 0;
  bool ok = false;   // false: missing or failed (not drawn; the line breaks there)
  double value = 0;  // e.g. perplexity
  double error = 0;  // standard error (error bar value +- error); 0 = none
};

struct LineSeries {
  std::string name;
  std::vector<LinePoint> points;  // any order; sorted by length when drawn
};

struct LinePlot {
  std::string title, subtitle;
  std::string y_label = "perplexity";
  std::vector<int64_t> lengths;  // x ticks; the points' lengths are added when missing here
  std::vector<LineSeries> series;
};

// Whether the y axis is log-scaled: the largest drawn value (with its error bar) is more than
// 10x the smallest. Said on the figure's y axis title ("log scale" / "linear scale").
bool line_plot_log_y(const LinePlot& c);

// x position of `length` on a log axis from lo (at x0) to hi (at x1); the middle when lo == hi.
double log_axis_position(double length, double lo, double hi, double x0, double x1);

// The plot: x axis log-scaled with a tick at each length, y linear or log (line_plot_log_y),
// one coloured series per configuration with a distinct marker (class "point", data-series /
// data-length / data-value) at each ok point, error bars, lines between neighbouring ok points,
// a legend and the title. A figure without any ok point says so in the plot area.
std::string line_plot_svg(const LinePlot& c);

}  // namespace lc::eval
