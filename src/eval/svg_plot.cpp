#include "eval/svg_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

#include "core/error.h"

namespace lc::eval {

namespace {

constexpr const char* kFont = "font-family=\"DejaVu Sans, Liberation Sans, Arial, sans-serif\"";
constexpr const char* kInk = "#222222";
constexpr const char* kMuted = "#555555";
constexpr const char* kGrid = "#e4e4e4";

// Average advance of a character of the sans-serif fonts above, as a fraction of the font size
// (a little generous, so estimated layouts never clip).
constexpr double kCharWidth = 0.6;

// Coordinates with one decimal ("12.5"); whole numbers without one.
std::string num(double v) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  std::string s = buf;
  if (s.size() > 2 && s.compare(s.size() - 2, 2, ".0") == 0) s.resize(s.size() - 2);
  if (s == "-0") s = "0";
  return s;
}

// Characters as people see them (UTF-8 continuation bytes do not count).
size_t display_chars(const std::string& s) {
  size_t n = 0;
  for (char c : s)
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  return n;
}

double text_width(const std::string& s, double font_size) {
  return static_cast<double>(display_chars(s)) * font_size * kCharWidth;
}

// Greedy word wrap at `max_chars` display characters; '\n' forces a break. A word longer than a
// line gets a line of its own.
std::vector<std::string> wrap(const std::string& s, size_t max_chars) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t nl = s.find('\n', start);
    const std::string para = s.substr(start, nl == std::string::npos ? nl : nl - start);
    std::string line;
    size_t i = 0;
    while (i < para.size()) {
      while (i < para.size() && para[i] == ' ') ++i;
      const size_t j = std::min(para.find(' ', i), para.size());
      if (j == i) break;
      std::string word = para.substr(i, j - i);
      // A separator dot stays at the end of the line before a break, never starts one.
      size_t k = j;
      while (k < para.size() && para[k] == ' ') ++k;
      if (para.compare(k, 3, "\xC2\xB7 ") == 0 ||
          (k + 2 == para.size() && para.compare(k, 2, "\xC2\xB7") == 0)) {
        word += " \xC2\xB7";
        k += 2;
      }
      if (!line.empty() && display_chars(line) + 1 + display_chars(word) > max_chars) {
        lines.push_back(line);
        line.clear();
      }
      line += (line.empty() ? "" : " ") + word;
      i = std::max(j, k);
    }
    if (!line.empty()) lines.push_back(line);
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  return lines;
}

struct Rgb {
  double r, g, b;
};

Rgb parse_hex(const char* hex) {
  unsigned r = 0, g = 0, b = 0;
  std::sscanf(hex + 1, "%2x%2x%2x", &r, &g, &b);
  return {static_cast<double>(r), static_cast<double>(g), static_cast<double>(b)};
}

std::string to_hex(const Rgb& c) {
  auto clamp8 = [](double v) { return static_cast<int>(std::lround(std::clamp(v, 0.0, 255.0))); };
  char buf[8];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", clamp8(c.r), clamp8(c.g), clamp8(c.b));
  return buf;
}

// The heatmap's three colour stops.
constexpr const char* kRed = "#d73027";
constexpr const char* kYellow = "#f6d32d";
constexpr const char* kGreen = "#1a9850";

Rgb accuracy_rgb(double a) {
  a = std::isfinite(a) ? std::clamp(a, 0.0, 1.0) : 0.0;
  const Rgb lo = parse_hex(a <= 0.5 ? kRed : kYellow);
  const Rgb hi = parse_hex(a <= 0.5 ? kYellow : kGreen);
  const double t = a <= 0.5 ? a / 0.5 : (a - 0.5) / 0.5;
  return {lo.r + (hi.r - lo.r) * t, lo.g + (hi.g - lo.g) * t, lo.b + (hi.b - lo.b) * t};
}

// WCAG relative luminance of an sRGB colour.
double luminance(const Rgb& c) {
  auto lin = [](double v) {
    v /= 255;
    return v <= 0.03928 ? v / 12.92 : std::pow((v + 0.055) / 1.055, 2.4);
  };
  return 0.2126 * lin(c.r) + 0.7152 * lin(c.g) + 0.0722 * lin(c.b);
}

// "25%", "12.5%", "100%".
std::string depth_label(double d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g%%", d * 100);
  return buf;
}

std::string percent_label(double a) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f%%", std::clamp(a, 0.0, 1.0) * 100);
  return buf;
}

// The opening of a document: XML declaration, <svg> with its size, a white background.
std::string svg_open(double w, double h, const std::string& label) {
  std::string s = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  s += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(w) + "\" height=\"" + num(h) +
       "\" viewBox=\"0 0 " + num(w) + " " + num(h) + "\" role=\"img\" aria-label=\"" +
       xml_escape(label) + "\">\n";
  s += "<title>" + xml_escape(label) + "</title>\n";
  s += "<rect x=\"0\" y=\"0\" width=\"" + num(w) + "\" height=\"" + num(h) +
       "\" fill=\"#ffffff\"/>\n";
  return s;
}

std::string text_el(double x, double y, const std::string& s, double size,
                    const std::string& extra = "") {
  return "<text x=\"" + num(x) + "\" y=\"" + num(y) + "\" font-size=\"" + num(size) + "\" " +
         kFont + (extra.empty() ? "" : " " + extra) + ">" + xml_escape(s) + "</text>\n";
}

std::string line_el(double x1, double y1, double x2, double y2, const std::string& stroke,
                    double width = 1) {
  return "<line x1=\"" + num(x1) + "\" y1=\"" + num(y1) + "\" x2=\"" + num(x2) + "\" y2=\"" +
         num(y2) + "\" stroke=\"" + stroke + "\" stroke-width=\"" + num(width) + "\"/>\n";
}

// Title (bold) and wrapped subtitle lines from y = 28 on; returns the y below them.
double draw_heading(std::string& out, const std::vector<std::string>& title,
                    const std::vector<std::string>& subtitle, double x) {
  double y = 28;
  for (const auto& l : title) {
    out += text_el(x, y, l, 16, "font-weight=\"bold\" fill=\"" + std::string(kInk) + "\"");
    y += 20;
  }
  for (const auto& l : subtitle) {
    out += text_el(x, y, l, 12, "fill=\"" + std::string(kMuted) + "\"");
    y += 16;
  }
  return y;
}

}  // namespace

std::string xml_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (ch) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7F)
          out += ' ';
        else
          out += ch;
    }
  }
  return out;
}

std::string length_label(int64_t n) {
  constexpr int64_t K = 1024, M = 1024 * 1024;
  char buf[48];
  if (n >= M && n % M == 0) {
    std::snprintf(buf, sizeof buf, "%lldM", static_cast<long long>(n / M));
  } else if (n >= M && n % (M / 2) == 0) {
    std::snprintf(buf, sizeof buf, "%.1fM", static_cast<double>(n) / M);
  } else if (n >= K && n % K == 0) {
    std::snprintf(buf, sizeof buf, "%lldK", static_cast<long long>(n / K));
  } else if (n >= K && n % (K / 2) == 0) {
    std::snprintf(buf, sizeof buf, "%.1fK", static_cast<double>(n) / K);
  } else {
    std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(n));
  }
  return buf;
}

std::string accuracy_color(double accuracy) { return to_hex(accuracy_rgb(accuracy)); }

std::string accuracy_text_color(double accuracy) {
  // Contrast ratios (L1 + 0.05) / (L2 + 0.05) against white and near-black (#111111).
  const double l = luminance(parse_hex(accuracy_color(accuracy).c_str()));
  const double dark = luminance(parse_hex("#111111"));
  const double vs_white = 1.05 / (l + 0.05), vs_dark = (l + 0.05) / (dark + 0.05);
  return vs_dark >= vs_white ? "#111111" : "#ffffff";
}

// ---------------------------------------------------------------------------------------------
// Heatmap.

std::string passkey_heatmap_svg(const PasskeyHeatmap& h) {
  const size_t rows = h.lengths.size(), cols = h.depths.size();
  LC_CHECK(h.cells.size() == rows * cols);

  const double cell_w = cols == 0 ? 60 : std::clamp(560.0 / static_cast<double>(cols), 46.0, 100.0);
  // At least 140 px of grid height: room for the legend and the rotated axis title.
  const double cell_h = rows == 0 ? 32 : std::max(32.0, 140.0 / static_cast<double>(rows));
  double label_w = 0;
  for (int64_t L : h.lengths) label_w = std::max(label_w, text_width(length_label(L), 12));
  const double grid_x = 16 + 18 + label_w + 10;  // axis title, row labels, gap
  const double grid_w = cell_w * static_cast<double>(cols);
  const double grid_h = cell_h * static_cast<double>(rows);
  const double legend_w = 16 + 18 + 46;  // gap, bar, tick labels
  double width = std::max(grid_x + grid_w + legend_w + 16, 420.0);
  // Room for the title: widen up to 960 px, wrap beyond.
  width = std::max(width, std::min(text_width(h.title, 16) + 32, 960.0));
  const auto title = wrap(h.title, static_cast<size_t>((width - 32) / (16 * kCharWidth)));
  const auto subtitle = wrap(h.subtitle, static_cast<size_t>((width - 32) / (12 * kCharWidth)));

  std::string body;
  const double grid_y = draw_heading(body, title, subtitle, 16) + 10;
  const double legend_h = std::max(grid_h, 120.0);
  const double height = std::max(grid_y + grid_h + 56, grid_y + legend_h + 24) + 8;

  // Cells.
  const double cell_font = cell_w < 56 ? 11 : 12;
  for (size_t r = 0; r < rows; ++r) {
    const double y = grid_y + cell_h * static_cast<double>(r);
    for (size_t c = 0; c < cols; ++c) {
      const double x = grid_x + cell_w * static_cast<double>(c);
      const auto& cell = h.cells[r * cols + c];
      const std::string where =
          "length " + std::to_string(h.lengths[r]) + ", depth " + depth_label(h.depths[c]);
      std::string fill = "#e0e0e0", ink = kMuted, label = "\xE2\x80\x93", tip = where + ": not run";
      std::string acc_attr;
      if (cell) {
        fill = accuracy_color(cell->accuracy);
        ink = accuracy_text_color(cell->accuracy);
        label = percent_label(cell->accuracy);
        tip = where + ": " + std::to_string(cell->correct) + "/" + std::to_string(cell->trials) +
              " correct (" + label + ")";
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.6g", cell->accuracy);
        acc_attr = std::string(" data-accuracy=\"") + buf + "\"";
      }
      body += "<rect class=\"cell\" data-length=\"" + std::to_string(h.lengths[r]) +
              "\" data-depth=\"" + xml_escape(depth_label(h.depths[c])) + "\"" + acc_attr +
              " x=\"" + num(x) + "\" y=\"" + num(y) + "\" width=\"" + num(cell_w) + "\" height=\"" +
              num(cell_h) + "\" fill=\"" + fill +
              "\" stroke=\"#ffffff\" stroke-width=\"1.5\"><title>" + xml_escape(tip) +
              "</title></rect>\n";
      body += text_el(x + cell_w / 2, y + cell_h / 2 + cell_font * 0.36, label, cell_font,
                      "text-anchor=\"middle\" fill=\"" + ink + "\"");
    }
  }
  // Row labels and the y axis title.
  for (size_t r = 0; r < rows; ++r)
    body += text_el(grid_x - 8, grid_y + cell_h * (static_cast<double>(r) + 0.5) + 4,
                    length_label(h.lengths[r]), 12,
                    "text-anchor=\"end\" fill=\"" + std::string(kInk) + "\"");
  const double mid_y = grid_y + grid_h / 2;
  body += text_el(28, mid_y, "length (tokens)", 12,
                  "text-anchor=\"middle\" fill=\"" + std::string(kInk) +
                      "\" transform=\"rotate(-90 " + num(28) + " " + num(mid_y) + ")\"");
  // Column labels and the x axis title.
  for (size_t c = 0; c < cols; ++c)
    body += text_el(grid_x + cell_w * (static_cast<double>(c) + 0.5), grid_y + grid_h + 18,
                    depth_label(h.depths[c]), 12,
                    "text-anchor=\"middle\" fill=\"" + std::string(kInk) + "\"");
  std::string x_title = "needle depth (position of the key in the prompt)";
  if (text_width(x_title, 12) > grid_w) x_title = "needle depth";
  body +=
      text_el(std::max(grid_x + grid_w / 2, 16 + text_width(x_title, 12) / 2), grid_y + grid_h + 40,
              x_title, 12, "text-anchor=\"middle\" fill=\"" + std::string(kInk) + "\"");
  if (rows == 0 || cols == 0)
    body +=
        text_el(grid_x + 8, grid_y + 24, "no cells", 12, "fill=\"" + std::string(kMuted) + "\"");

  // Legend: a vertical colour bar, 100% at the top.
  const double lx = grid_x + grid_w + 16, ly = grid_y;
  constexpr int kSteps = 50;
  body += "<g class=\"legend\">\n";
  for (int i = 0; i < kSteps; ++i) {
    const double a = 1.0 - (i + 0.5) / kSteps;
    const double y0 = ly + legend_h * i / kSteps;
    body += "<rect x=\"" + num(lx) + "\" y=\"" + num(y0) + "\" width=\"18\" height=\"" +
            num(legend_h / kSteps + 0.6) + "\" fill=\"" + accuracy_color(a) + "\"/>\n";
  }
  body += "<rect x=\"" + num(lx) + "\" y=\"" + num(ly) + "\" width=\"18\" height=\"" +
          num(legend_h) + "\" fill=\"none\" stroke=\"" + kMuted + "\" stroke-width=\"0.8\"/>\n";
  for (int p = 0; p <= 100; p += 25) {
    const double y = ly + legend_h * (1.0 - p / 100.0);
    body += line_el(lx + 18, y, lx + 22, y, kMuted);
    body +=
        text_el(lx + 25, y + 4, std::to_string(p) + "%", 11, "fill=\"" + std::string(kInk) + "\"");
  }
  body += text_el(lx, ly + legend_h + 16, "accuracy", 11, "fill=\"" + std::string(kInk) + "\"");
  body += "</g>\n";

  return svg_open(width, height, h.title) + body + "</svg>\n";
}

// ---------------------------------------------------------------------------------------------
// Curves.

namespace {

struct YRange {
  double lo = 0, hi = 1;
  bool log = false;
};

// The drawn extent of the ok points: value +- error (the lower end kept positive).
bool value_extent(const LinePlot& c, double* lo, double* hi) {
  bool any = false;
  for (const auto& s : c.series)
    for (const auto& p : s.points) {
      if (!p.ok || !std::isfinite(p.value)) continue;
      const double e = std::isfinite(p.error) ? std::max(0.0, p.error) : 0.0;
      const double a = p.value - e > 0 ? p.value - e : p.value, b = p.value + e;
      *lo = any ? std::min(*lo, a) : a;
      *hi = any ? std::max(*hi, b) : b;
      any = true;
    }
  return any;
}

// 1, 2, 5 x 10^k at or above x.
double nice_step(double x) {
  const double p = std::pow(10.0, std::floor(std::log10(x)));
  const double m = x / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

std::string tick_text(double v, double step, bool log) {
  char buf[48];
  if (log) {
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
  }
  const int dec = step >= 1 ? 0 : static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
  std::snprintf(buf, sizeof buf, "%.*f", std::clamp(dec, 0, 6), v);
  return buf;
}

// Marker i (by series): circle, square, triangle, diamond, then again.
std::string marker(size_t i, double x, double y, const std::string& color,
                   const std::string& attrs) {
  const std::string paint = " fill=\"" + color + "\" stroke=\"#ffffff\" stroke-width=\"1\"";
  switch (i % 4) {
    case 0:
      return "<circle " + attrs + " cx=\"" + num(x) + "\" cy=\"" + num(y) + "\" r=\"4.5\"" + paint +
             "/>\n";
    case 1:
      return "<rect " + attrs + " x=\"" + num(x - 4) + "\" y=\"" + num(y - 4) +
             "\" width=\"8\" height=\"8\"" + paint + "/>\n";
    case 2:
      return "<polygon " + attrs + " points=\"" + num(x) + "," + num(y - 5.5) + " " + num(x + 5) +
             "," + num(y + 3.5) + " " + num(x - 5) + "," + num(y + 3.5) + "\"" + paint + "/>\n";
    default:
      return "<polygon " + attrs + " points=\"" + num(x) + "," + num(y - 5.5) + " " + num(x + 5) +
             "," + num(y) + " " + num(x) + "," + num(y + 5.5) + " " + num(x - 5) + "," + num(y) +
             "\"" + paint + "/>\n";
  }
}

// Colour-blind-safe categorical colours (Okabe & Ito), then a few more.
const char* series_color(size_t i) {
  static const char* const kColors[] = {"#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00",
                                        "#56b4e9", "#000000", "#8c564b", "#7f7f7f", "#b8a000"};
  return kColors[i % (sizeof kColors / sizeof kColors[0])];
}

}  // namespace

bool line_plot_log_y(const LinePlot& c) {
  double lo = 0, hi = 0;
  if (!value_extent(c, &lo, &hi)) return false;
  return lo > 0 && hi / lo > 10;
}

double log_axis_position(double length, double lo, double hi, double x0, double x1) {
  if (!(hi > lo) || lo <= 0) return (x0 + x1) / 2;
  const double t = (std::log(length) - std::log(lo)) / (std::log(hi) - std::log(lo));
  return x0 + (x1 - x0) * t;
}

std::string line_plot_svg(const LinePlot& c) {
  // The x ticks: the given lengths plus any point's length, ascending.
  std::set<int64_t> xs;
  for (int64_t L : c.lengths)
    if (L > 0) xs.insert(L);
  for (const auto& s : c.series)
    for (const auto& p : s.points)
      if (p.length > 0) xs.insert(p.length);

  // Legend width from the longest name (truncated past 36 characters).
  auto legend_name = [](const std::string& n) {
    if (display_chars(n) <= 36) return n;
    std::string out;
    size_t chars = 0;
    for (char ch : n) {
      if ((static_cast<unsigned char>(ch) & 0xC0) != 0x80 && ++chars > 35) break;
      out += ch;
    }
    return out + "\xE2\x80\xA6";
  };
  double name_w = 0;
  for (const auto& s : c.series) name_w = std::max(name_w, text_width(legend_name(s.name), 12));
  const double legend_w = c.series.empty() ? 0 : 16 + 30 + name_w + 8;

  const double plot_x = 78, plot_w = 540;
  double width = plot_x + plot_w + legend_w + 16;
  width = std::max(width, std::min(text_width(c.title, 16) + 32, 1100.0));
  const auto title = wrap(c.title, static_cast<size_t>((width - 32) / (16 * kCharWidth)));
  const auto subtitle = wrap(c.subtitle, static_cast<size_t>((width - 32) / (12 * kCharWidth)));

  std::string body;
  const double plot_y = draw_heading(body, title, subtitle, 16) + 14;
  const double plot_h = 300;
  const double legend_h = 22.0 * static_cast<double>(c.series.size());
  const double height = std::max(plot_y + plot_h + 58, plot_y + legend_h + 16);

  // Frame.
  body += "<rect x=\"" + num(plot_x) + "\" y=\"" + num(plot_y) + "\" width=\"" + num(plot_w) +
          "\" height=\"" + num(plot_h) +
          "\" fill=\"none\" stroke=\"#999999\" stroke-width=\"1\"/>\n";

  // x axis: log scale, a tick at each length; labels that would overlap the previous one are left
  // out (the tick stays).
  const double x0 = plot_x + 24, x1 = plot_x + plot_w - 24;
  const double xlo = xs.empty() ? 1 : static_cast<double>(*xs.begin());
  const double xhi = xs.empty() ? 1 : static_cast<double>(*xs.rbegin());
  auto xpos = [&](int64_t L) {
    return log_axis_position(static_cast<double>(L), xlo, xhi, x0, x1);
  };
  double last_label_end = -1e9;
  for (int64_t L : xs) {
    const double x = xpos(L);
    body += line_el(x, plot_y, x, plot_y + plot_h, kGrid);
    body += line_el(x, plot_y + plot_h, x, plot_y + plot_h + 5, kMuted);
    const std::string lab = length_label(L);
    const double w = text_width(lab, 12);
    if (x - w / 2 > last_label_end + 4) {
      body += text_el(x, plot_y + plot_h + 19, lab, 12,
                      "text-anchor=\"middle\" fill=\"" + std::string(kInk) + "\"");
      last_label_end = x + w / 2;
    }
  }
  body += text_el(plot_x + plot_w / 2, plot_y + plot_h + 42, "context length (tokens, log scale)",
                  12, "text-anchor=\"middle\" fill=\"" + std::string(kInk) + "\"");

  // y axis.
  double vlo = 0, vhi = 0;
  const bool any = value_extent(c, &vlo, &vhi);
  YRange yr;
  std::vector<double> ticks;
  double tick_step = 1;
  if (any) {
    yr.log = line_plot_log_y(c);
    if (yr.log) {
      yr.lo = vlo / 1.15;
      yr.hi = vhi * 1.15;
      for (int k = static_cast<int>(std::floor(std::log10(yr.lo)));
           k <= static_cast<int>(std::ceil(std::log10(yr.hi))); ++k)
        for (double m : {1.0, 2.0, 5.0}) {
          const double v = m * std::pow(10.0, k);
          if (v >= yr.lo && v <= yr.hi) ticks.push_back(v);
        }
    } else {
      double lo = vlo, hi = vhi;
      if (hi - lo < 1e-9 * std::max(1.0, std::abs(hi))) {
        const double pad = std::max(0.05 * std::abs(hi), 0.5);
        lo -= pad;
        hi += pad;
      }
      tick_step = nice_step((hi - lo) / 5);
      yr.lo = std::floor(lo / tick_step) * tick_step;
      yr.hi = std::ceil(hi / tick_step) * tick_step;
      const auto n = std::llround((yr.hi - yr.lo) / tick_step);
      for (long long i = 0; i <= n; ++i) {
        const double v = yr.lo + tick_step * static_cast<double>(i);
        ticks.push_back(std::abs(v) < tick_step * 1e-9 ? 0 : v);
      }
    }
  }
  auto ypos = [&](double v) {
    const double t = yr.log ? (std::log(v) - std::log(yr.lo)) / (std::log(yr.hi) - std::log(yr.lo))
                            : (v - yr.lo) / (yr.hi - yr.lo);
    return plot_y + plot_h - 8 - (plot_h - 16) * t;
  };
  for (double v : ticks) {
    const double y = ypos(v);
    body += line_el(plot_x, y, plot_x + plot_w, y, kGrid);
    body += line_el(plot_x - 5, y, plot_x, y, kMuted);
    body += text_el(plot_x - 8, y + 4, tick_text(v, tick_step, yr.log), 12,
                    "text-anchor=\"end\" fill=\"" + std::string(kInk) + "\"");
  }
  const double mid_y = plot_y + plot_h / 2;
  body += text_el(22, mid_y, c.y_label + (yr.log ? " (log scale)" : " (linear scale)"), 12,
                  "text-anchor=\"middle\" fill=\"" + std::string(kInk) +
                      "\" transform=\"rotate(-90 " + num(22) + " " + num(mid_y) + ")\"");
  if (!any)
    body += text_el(plot_x + plot_w / 2, mid_y, "no data: every point is missing or failed", 13,
                    "text-anchor=\"middle\" fill=\"" + std::string(kMuted) + "\"");

  // Series: lines between neighbouring ok points, error bars, markers.
  for (size_t si = 0; si < c.series.size(); ++si) {
    const LineSeries& s = c.series[si];
    const std::string color = series_color(si);
    std::vector<LinePoint> pts = s.points;
    std::stable_sort(pts.begin(), pts.end(),
                     [](const LinePoint& a, const LinePoint& b) { return a.length < b.length; });
    auto drawable = [](const LinePoint& p) {
      return p.ok && p.length > 0 && std::isfinite(p.value) && p.value > 0;
    };
    body += "<g class=\"series\" data-series=\"" + xml_escape(s.name) + "\">\n";
    std::string run;  // polyline points of the current stretch of ok points
    size_t run_n = 0;
    auto flush = [&] {
      if (run_n >= 2)
        body += "<polyline points=\"" + run + "\" fill=\"none\" stroke=\"" + color +
                "\" stroke-width=\"2\" stroke-linejoin=\"round\"/>\n";
      run.clear();
      run_n = 0;
    };
    for (const LinePoint& p : pts) {
      if (!any || !drawable(p)) {
        flush();
        continue;
      }
      run += (run.empty() ? "" : " ") + num(xpos(p.length)) + "," + num(ypos(p.value));
      ++run_n;
    }
    flush();
    for (const LinePoint& p : pts) {
      if (!any || !drawable(p)) continue;
      const double x = xpos(p.length), y = ypos(p.value);
      const double e = std::isfinite(p.error) ? std::max(0.0, p.error) : 0.0;
      if (e > 0) {
        const double ya = ypos(p.value - e > 0 ? p.value - e : p.value), yb = ypos(p.value + e);
        if (std::abs(ya - yb) >= 1) {
          body += line_el(x, ya, x, yb, color, 1.2);
          body += line_el(x - 3, ya, x + 3, ya, color, 1.2);
          body += line_el(x - 3, yb, x + 3, yb, color, 1.2);
        }
      }
      char val[32];
      std::snprintf(val, sizeof val, "%.6g", p.value);
      char err[32];
      std::snprintf(err, sizeof err, "%.3g", e);
      body += "<g><title>" +
              xml_escape(s.name + " at " + length_label(p.length) + ": " + val +
                         (e > 0 ? std::string(" \xC2\xB1 ") + err : "")) +
              "</title>\n";
      body += marker(si, x, y, color,
                     "class=\"point\" data-series=\"" + xml_escape(s.name) + "\" data-length=\"" +
                         std::to_string(p.length) + "\" data-value=\"" + val + "\"");
      body += "</g>\n";
    }
    body += "</g>\n";
  }

  // Legend.
  if (!c.series.empty()) {
    const double lx = plot_x + plot_w + 16;
    body += "<g class=\"legend\">\n";
    for (size_t si = 0; si < c.series.size(); ++si) {
      const double y = plot_y + 10 + 22.0 * static_cast<double>(si);
      const std::string color = series_color(si);
      body += line_el(lx, y, lx + 24, y, color, 2);
      body += marker(si, lx + 12, y, color, "class=\"legend-marker\"");
      body += text_el(lx + 30, y + 4, legend_name(c.series[si].name), 12,
                      "fill=\"" + std::string(kInk) + "\"");
    }
    body += "</g>\n";
  }

  return svg_open(width, height, c.title) + body + "</svg>\n";
}

}  // namespace lc::eval
