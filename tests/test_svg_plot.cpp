// The evaluation figures (passkey heatmap, perplexity curves) as SVG text: well-formed XML,
// one element per cell / point, the colour scale, escaping, the log-scaled length axis; and
// the results-file side: kind detection, the heatmap of a passkey file, figure paths.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <vector>

#include "core/error.h"
#include "eval/context_plot.h"
#include "eval/results.h"
#include "eval/svg_plot.h"

namespace lc::eval {
namespace {

using nlohmann::json;

// A small XML well-formedness checker: balanced, properly nested tags, one root element,
// quoted attributes without '<', and only the five named entities or numeric references.
// Returns "" when well-formed, else what is wrong and where.
std::string xml_problem(const std::string& s) {
  std::vector<std::string> stack;
  int roots = 0;
  auto entity_ok = [&](size_t i) {
    static const std::regex ent("^&(amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);");
    return std::regex_search(s.substr(i, 12), ent);
  };
  size_t i = 0;
  while (i < s.size()) {
    const char c = s[i];
    if (c == '&') {
      if (!entity_ok(i)) return "bad entity at " + std::to_string(i);
      ++i;
      continue;
    }
    if (c == '>') return "stray '>' at " + std::to_string(i);
    if (c != '<') {
      if (stack.empty() && !std::isspace(static_cast<unsigned char>(c)))
        return "text outside the root at " + std::to_string(i);
      ++i;
      continue;
    }
    if (s.compare(i, 5, "<?xml") == 0) {
      if (i != 0) return "XML declaration not at the start";
      const size_t e = s.find("?>", i);
      if (e == std::string::npos) return "unterminated declaration";
      i = e + 2;
      continue;
    }
    if (s.compare(i, 4, "<!--") == 0) {
      const size_t e = s.find("-->", i);
      if (e == std::string::npos) return "unterminated comment";
      i = e + 3;
      continue;
    }
    // A tag: scan to its '>' outside quotes.
    size_t j = i + 1;
    char quote = 0;
    for (; j < s.size(); ++j) {
      if (quote) {
        if (s[j] == quote) quote = 0;
        if (s[j] == '<') return "'<' inside an attribute at " + std::to_string(j);
        if (s[j] == '&' && !entity_ok(j)) return "bad entity in attribute at " + std::to_string(j);
      } else if (s[j] == '"' || s[j] == '\'') {
        quote = s[j];
      } else if (s[j] == '<') {
        return "'<' inside a tag at " + std::to_string(j);
      } else if (s[j] == '>') {
        break;
      }
    }
    if (j >= s.size()) return "unterminated tag at " + std::to_string(i);
    std::string body = s.substr(i + 1, j - i - 1);
    i = j + 1;
    if (!body.empty() && body[0] == '/') {
      const std::string name = body.substr(1);
      if (stack.empty() || stack.back() != name)
        return "</" + name + "> closes " + (stack.empty() ? "nothing" : "<" + stack.back() + ">");
      stack.pop_back();
      continue;
    }
    const bool self_closing = !body.empty() && body.back() == '/';
    if (self_closing) body.pop_back();
    const std::string name = body.substr(0, body.find_first_of(" \t\n"));
    static const std::regex name_re("^[A-Za-z][A-Za-z0-9:_-]*$");
    if (!std::regex_match(name, name_re)) return "bad tag name '" + name + "'";
    // Attributes: name="value" pairs only.
    static const std::regex attrs_re(R"(^(\s+[A-Za-z_:][A-Za-z0-9_:.-]*="[^"]*")*\s*$)");
    if (!std::regex_match(body.substr(name.size()), attrs_re))
      return "bad attributes in <" + name + ">";
    if (stack.empty() && ++roots > 1) return "more than one root element";
    if (!self_closing) stack.push_back(name);
  }
  if (!stack.empty()) return "<" + stack.back() + "> is never closed";
  if (roots != 1) return "no root element";
  return "";
}

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + what.size())) ++n;
  return n;
}

// Checks the outer shape every figure has: well-formed, explicit size and viewBox, nothing
// loaded from outside, no scripts.
void expect_self_contained(const std::string& svg) {
  EXPECT_EQ(xml_problem(svg), "") << svg;
  static const std::regex open_re(
      R"re(<svg xmlns="http://www.w3.org/2000/svg" width="([0-9.]+)" height="([0-9.]+)" viewBox="0 0 ([0-9.]+) ([0-9.]+)")re");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(svg, m, open_re)) << svg.substr(0, 300);
  EXPECT_EQ(m[1], m[3]);
  EXPECT_EQ(m[2], m[4]);
  EXPECT_GT(std::stod(m[1]), 300);
  EXPECT_GT(std::stod(m[2]), 150);
  for (const char* bad : {"<script", "href", "url(", "@import", "@font-face", "<image", "<foreign"})
    EXPECT_EQ(svg.find(bad), std::string::npos) << bad;
}

TEST(XmlChecker, CatchesBrokenDocuments) {
  EXPECT_EQ(xml_problem("<a><b x=\"1\"/>t &amp; u</a>"), "");
  EXPECT_NE(xml_problem("<a><b></a></b>"), "");
  EXPECT_NE(xml_problem("<a><b></a>"), "");
  EXPECT_NE(xml_problem("<a>x & y</a>"), "");
  EXPECT_NE(xml_problem("<a x=\"<\"></a>"), "");
  EXPECT_NE(xml_problem("<a x=1></a>"), "");
  EXPECT_NE(xml_problem("<a></a><b></b>"), "");
  EXPECT_NE(xml_problem("<a>1 > 0</a>"), "");
}

TEST(SvgPlot, XmlEscape) {
  EXPECT_EQ(xml_escape("a<b>&\"c'd"), "a&lt;b&gt;&amp;&quot;c&apos;d");
  EXPECT_EQ(xml_escape(std::string("x\x01y\x7f") + "z\n"), "x y z\n");
  EXPECT_EQ(xml_escape("ünï ± ·"), "ünï ± ·");
}

TEST(SvgPlot, LengthLabels) {
  EXPECT_EQ(length_label(128), "128");
  EXPECT_EQ(length_label(512), "512");
  EXPECT_EQ(length_label(1000), "1000");
  EXPECT_EQ(length_label(1024), "1K");
  EXPECT_EQ(length_label(1536), "1.5K");
  EXPECT_EQ(length_label(1500), "1500");
  EXPECT_EQ(length_label(4096), "4K");
  EXPECT_EQ(length_label(16384), "16K");
  EXPECT_EQ(length_label(256 * 1024), "256K");
  EXPECT_EQ(length_label(1024 * 1024), "1M");
  EXPECT_EQ(length_label(3 * 512 * 1024), "1.5M");
  EXPECT_EQ(length_label(2 * 1024 * 1024), "2M");
}

TEST(SvgPlot, AccuracyColours) {
  EXPECT_EQ(accuracy_color(0), "#d73027");    // red
  EXPECT_EQ(accuracy_color(0.5), "#f6d32d");  // yellow
  EXPECT_EQ(accuracy_color(1), "#1a9850");    // green
  EXPECT_EQ(accuracy_color(-0.5), "#d73027");
  EXPECT_EQ(accuracy_color(7), "#1a9850");
  EXPECT_EQ(accuracy_color(std::nan("")), "#d73027");
  // Halfway between the stops: orange, then yellow-green.
  EXPECT_EQ(accuracy_color(0.25), "#e7822a");
  EXPECT_EQ(accuracy_color(0.75), "#88b63f");
  // Red channel falls monotonically from yellow to green, green channel rises from red to yellow.
  auto channel = [](const std::string& hex, int k) {
    return std::stoi(hex.substr(1 + 2 * k, 2), nullptr, 16);
  };
  for (int i = 0; i < 10; ++i) {
    const double a = i / 20.0, b = (i + 1) / 20.0;
    EXPECT_LE(channel(accuracy_color(a), 1), channel(accuracy_color(b), 1)) << a;
    EXPECT_GE(channel(accuracy_color(a + 0.5), 0), channel(accuracy_color(b + 0.5), 0)) << a;
  }
  EXPECT_EQ(accuracy_text_color(0), "#ffffff");
  EXPECT_EQ(accuracy_text_color(0.5), "#111111");
}

PasskeyHeatmap sample_heatmap() {
  PasskeyHeatmap h;
  h.title = "Passkey <tiny> & \"friends\"";
  h.subtitle = "memory infllm: n_init 32, n_local 256 \xC2\xB7 rope none \xC2\xB7 landmark format";
  h.lengths = {4096, 16384, 1024 * 1024};
  h.depths = {0, 0.25, 0.5, 0.75, 1};
  for (size_t r = 0; r < 3; ++r)
    for (size_t c = 0; c < 5; ++c) {
      if (r == 2 && c >= 3) {
        h.cells.push_back(std::nullopt);  // not run yet
        continue;
      }
      const int64_t correct = static_cast<int64_t>((r * 5 + c) % 5);
      h.cells.push_back(
          HeatmapCell{static_cast<double>(correct) / 4, correct > 4 ? 4 : correct, 4});
    }
  h.cells[0] = HeatmapCell{0, 0, 4};
  h.cells[1] = HeatmapCell{0.5, 2, 4};
  h.cells[2] = HeatmapCell{1, 4, 4};
  return h;
}

TEST(SvgPlot, HeatmapShape) {
  const PasskeyHeatmap h = sample_heatmap();
  const std::string svg = passkey_heatmap_svg(h);
  expect_self_contained(svg);
  EXPECT_EQ(count(svg, "<rect class=\"cell\""), 15u);
  EXPECT_EQ(count(svg, "data-accuracy="), 13u);  // two cells not run
  // Row and column labels.
  for (const char* label : {">4K<", ">16K<", ">1M<", ">0%<", ">25%<", ">50%<", ">75%<", ">100%<"})
    EXPECT_NE(svg.find(label), std::string::npos) << label;
  // The three colour stops on the cells at 0%, 50% and 100%, each annotated.
  EXPECT_NE(svg.find("data-length=\"4096\" data-depth=\"0%\" data-accuracy=\"0\""),
            std::string::npos);
  static const std::regex cell_re(
      R"re(<rect class="cell" data-length="4096" data-depth="([0-9.]+)%" data-accuracy="([0-9.]+)"[^>]* fill="(#[0-9a-f]{6})")re");
  std::vector<std::string> fills;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), cell_re);
       it != std::sregex_iterator(); ++it)
    fills.push_back((*it)[3]);
  ASSERT_GE(fills.size(), 3u);
  EXPECT_EQ(fills[0], "#d73027");
  EXPECT_EQ(fills[1], "#f6d32d");
  EXPECT_EQ(fills[2], "#1a9850");
  // Every cell's percentage is written inside it; missing cells get a dash.
  EXPECT_GE(count(svg, ">0%</text>"), 2u);  // a cell and the legend's 0% is "0%" too
  EXPECT_GE(count(svg, ">50%</text>"), 2u);
  EXPECT_EQ(count(svg, ">\xE2\x80\x93</text>"), 2u);
  // Title escaped, legend present.
  EXPECT_NE(svg.find("Passkey &lt;tiny&gt; &amp; &quot;friends&quot;"), std::string::npos);
  EXPECT_EQ(svg.find("<tiny>"), std::string::npos);
  EXPECT_NE(svg.find("class=\"legend\""), std::string::npos);
  EXPECT_NE(svg.find(">accuracy</text>"), std::string::npos);
  EXPECT_NE(svg.find("needle depth"), std::string::npos);
  EXPECT_NE(svg.find("length (tokens)"), std::string::npos);
}

TEST(SvgPlot, HeatmapEdgeCases) {
  PasskeyHeatmap h;
  h.title = "empty";
  expect_self_contained(passkey_heatmap_svg(h));
  h.lengths = {128};
  h.depths = {0.5};
  h.cells = {};  // does not match the grid
  EXPECT_THROW(passkey_heatmap_svg(h), InternalError);
  h.cells = {HeatmapCell{1, 1, 1}};
  h.title = std::string(300, 'x') + " " + std::string(50, 'y');  // wraps, stays well-formed
  const std::string svg = passkey_heatmap_svg(h);
  expect_self_contained(svg);
  EXPECT_EQ(count(svg, "<rect class=\"cell\""), 1u);
  // Many columns: the figure grows instead of squeezing the cells.
  h.depths.clear();
  h.cells.clear();
  for (int i = 0; i <= 20; ++i) {
    h.depths.push_back(i / 20.0);
    h.cells.push_back(HeatmapCell{i / 20.0, i, 20});
  }
  expect_self_contained(passkey_heatmap_svg(h));
}

LinePlot sample_curves() {
  LinePlot c;
  c.title = "Perplexity <vs> length";
  c.subtitle = "text t.txt";
  c.lengths = {512, 1024, 2048, 4096};
  LineSeries a{"none", {}}, b{"yarn & \"b<16\"", {}};
  const double none_v[] = {4.0, 4.6, 9.0, 14.0};
  const double yarn_v[] = {4.0, 4.1, 4.3, 4.5};
  for (size_t i = 0; i < 4; ++i) {
    a.points.push_back({c.lengths[i], true, none_v[i], 0.05});
    b.points.push_back({c.lengths[i], i != 2, yarn_v[i], 0.04});  // 2048 failed
  }
  std::swap(a.points[0], a.points[3]);  // any order
  c.series = {a, b};
  return c;
}

TEST(SvgPlot, CurvesShape) {
  const LinePlot c = sample_curves();
  const std::string svg = line_plot_svg(c);
  expect_self_contained(svg);
  EXPECT_EQ(count(svg, "class=\"point\""), 7u);  // 8 points, one failed
  EXPECT_EQ(count(svg, "data-series=\"none\" data-length="), 4u);
  EXPECT_EQ(count(svg, "data-series=\"yarn &amp; &quot;b&lt;16&quot;\" data-length="), 3u);
  EXPECT_EQ(svg.find("data-length=\"2048\" data-value=\"4.3\""), std::string::npos);
  // The failed point breaks yarn's line: one polyline for none, one for yarn (512-1K; 4K alone).
  EXPECT_EQ(count(svg, "<polyline"), 2u);
  for (const char* tick : {">512<", ">1K<", ">2K<", ">4K<"})
    EXPECT_NE(svg.find(tick), std::string::npos) << tick;
  EXPECT_NE(svg.find("class=\"legend\""), std::string::npos);
  EXPECT_NE(svg.find(">yarn &amp; &quot;b&lt;16&quot;</text>"), std::string::npos);
  EXPECT_NE(svg.find("Perplexity &lt;vs&gt; length"), std::string::npos);
  EXPECT_NE(svg.find("log scale"), std::string::npos);                  // x axis
  EXPECT_NE(svg.find("perplexity (linear scale)"), std::string::npos);  // 3.9 .. 14: under 10x
  EXPECT_FALSE(line_plot_log_y(c));
}

TEST(SvgPlot, CurvesLogXPlacement) {
  // Positions grow with the length, and equal ratios get equal distances.
  double prev = -1;
  for (double L : {512.0, 1024.0, 2048.0, 4096.0, 65536.0, 1048576.0}) {
    const double x = log_axis_position(L, 512, 1048576, 100, 600);
    EXPECT_GT(x, prev);
    prev = x;
  }
  EXPECT_DOUBLE_EQ(log_axis_position(512, 512, 1048576, 100, 600), 100);
  EXPECT_DOUBLE_EQ(log_axis_position(1048576, 512, 1048576, 100, 600), 600);
  EXPECT_NEAR(log_axis_position(1024, 512, 2048, 0, 100), 50, 1e-9);
  EXPECT_DOUBLE_EQ(log_axis_position(7, 7, 7, 10, 20), 15);

  // In the drawn figure: the circles of the first series, left to right, evenly spaced.
  const std::string svg = line_plot_svg(sample_curves());
  static const std::regex circle_re(
      R"re(<circle class="point" data-series="none" data-length="([0-9]+)" data-value="[^"]*" cx="([0-9.]+)")re");
  std::vector<std::pair<int64_t, double>> xs;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), circle_re);
       it != std::sregex_iterator(); ++it)
    xs.emplace_back(std::stoll((*it)[1]), std::stod((*it)[2]));
  ASSERT_EQ(xs.size(), 4u);
  std::sort(xs.begin(), xs.end());
  for (size_t i = 1; i < xs.size(); ++i) {
    EXPECT_GT(xs[i].second, xs[i - 1].second);
    EXPECT_NEAR(xs[i].second - xs[i - 1].second, xs[1].second - xs[0].second, 0.15);
  }
}

TEST(SvgPlot, CurvesLogY) {
  LinePlot c = sample_curves();
  c.series[0].points[1].value = 400;  // 4 .. 400: past 10x
  EXPECT_TRUE(line_plot_log_y(c));
  const std::string svg = line_plot_svg(c);
  expect_self_contained(svg);
  EXPECT_NE(svg.find("perplexity (log scale)"), std::string::npos);
  EXPECT_NE(svg.find(">100</text>"), std::string::npos);  // a decade tick
  // Higher values sit higher (smaller y) on the log axis too.
  static const std::regex circle_re(
      R"re(<circle class="point" data-series="none" data-length="[0-9]+" data-value="([0-9.]+)" cx="[0-9.]+" cy="([0-9.]+)")re");
  std::vector<std::pair<double, double>> vy;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), circle_re);
       it != std::sregex_iterator(); ++it)
    vy.emplace_back(std::stod((*it)[1]), std::stod((*it)[2]));
  ASSERT_EQ(vy.size(), 4u);
  std::sort(vy.begin(), vy.end());
  for (size_t i = 1; i < vy.size(); ++i) EXPECT_LT(vy[i].second, vy[i - 1].second);
}

TEST(SvgPlot, CurvesWithoutData) {
  LinePlot c;
  c.title = "nothing";
  c.lengths = {512, 2048};
  c.series = {{"a", {{512, false, 0, 0}, {2048, false, 0, 0}}}};
  const std::string svg = line_plot_svg(c);
  expect_self_contained(svg);
  EXPECT_EQ(count(svg, "class=\"point\""), 0u);
  EXPECT_NE(svg.find("no data"), std::string::npos);
  // One point only: centred, no line.
  c.series[0].points[0].ok = true;
  c.series[0].points[0].value = 5;
  c.lengths = {512};
  c.series[0].points.pop_back();
  const std::string one = line_plot_svg(c);
  expect_self_contained(one);
  EXPECT_EQ(count(one, "class=\"point\""), 1u);
  EXPECT_EQ(count(one, "<polyline"), 0u);
}

// A passkey results file as `eval passkey --json` writes it (the keys the figure reads).
json passkey_results() {
  return json::parse(R"({
    "model_path": "/m/passkey-llama-tiny.gguf",
    "settings": {"model": "passkey-llama-tiny.gguf", "memory": "full", "rope": "none",
                 "format": "landmark", "chat": null, "filler": "noise", "trials": 2, "seed": 0},
    "machine": {"cpu": "x", "nproc": 2, "threads": 2},
    "lengths": [1024, 128], "depths": [0, 1], "complete": false, "seconds": 1.5,
    "cells": [
      {"length": 128, "depth": 0, "trials": 2, "correct": 2, "accuracy": 1.0, "tokens": 120},
      {"length": 128, "depth": 1, "trials": 2, "correct": 1, "accuracy": 0.5, "tokens": 121},
      {"length": 1024, "depth": 0, "trials": 2, "correct": 0, "accuracy": 0.0, "tokens": 1000}
    ]})");
}

TEST(EvalResults, KindAndHeatmap) {
  const json pk = passkey_results();
  EXPECT_EQ(result_kind(pk), ResultKind::Passkey);
  const json curve = json::parse(
      R"({"model": "m.gguf", "lengths": [512], "configs": [{"name": "a", "flags": ""}],
          "cells": [{"config": "a", "ctx": 512, "status": "ok", "ppl": 4.5, "stderr": 0.1}]})");
  EXPECT_EQ(result_kind(curve), ResultKind::PplCurve);
  EXPECT_FALSE(result_kind(json::parse(R"({"cells": []})")));
  EXPECT_FALSE(result_kind(json::parse("[1, 2]")));
  EXPECT_FALSE(result_kind(json::parse(R"({"ppl": 3.4})")));

  const PasskeyHeatmap h = passkey_heatmap_from_json(pk);
  EXPECT_EQ(h.lengths, (std::vector<int64_t>{128, 1024}));  // ascending
  EXPECT_EQ(h.depths, (std::vector<double>{0, 1}));
  ASSERT_EQ(h.cells.size(), 4u);
  ASSERT_TRUE(h.cells[0] && h.cells[1] && h.cells[2]);
  EXPECT_DOUBLE_EQ(h.cells[1]->accuracy, 0.5);
  EXPECT_EQ(h.cells[1]->correct, 1);
  EXPECT_FALSE(h.cells[3]);  // 1024 at depth 1: not run
  EXPECT_NE(h.title.find("passkey-llama-tiny.gguf"), std::string::npos);
  EXPECT_NE(h.subtitle.find("memory full"), std::string::npos);
  EXPECT_NE(h.subtitle.find("partial: 3 of 4 cells"), std::string::npos);

  const LinePlot c = ppl_curve_plot_from_json(curve);
  ASSERT_EQ(c.series.size(), 1u);
  ASSERT_EQ(c.series[0].points.size(), 1u);
  EXPECT_TRUE(c.series[0].points[0].ok);
  EXPECT_DOUBLE_EQ(c.series[0].points[0].value, 4.5);
  expect_self_contained(results_figure_svg(pk));
  expect_self_contained(results_figure_svg(curve));
  EXPECT_THROW(results_figure_svg(json::parse("{}")), Error);
}

TEST(EvalResults, FigurePaths) {
  EXPECT_EQ(figure_path("", ""), "");
  EXPECT_EQ(figure_path("", "out/pk.json"), "out/pk.svg");
  EXPECT_EQ(figure_path("", "results"), "results.svg");
  EXPECT_EQ(figure_path("", "odd.svg"), "odd.svg.svg");  // never the JSON file itself
  EXPECT_EQ(figure_path("fig.svg", "pk.json"), "fig.svg");
  EXPECT_EQ(figure_path("fig.svg", ""), "fig.svg");
  EXPECT_NE(find_on_path("sh"), "");
  EXPECT_EQ(find_on_path("no-such-program-longctx"), "");
}

TEST(ContextPlot, CurvesFromBenchContextResults) {
  const auto rows = [](std::vector<std::pair<int64_t, double>> pts, const char* memory) {
    nlohmann::json j = nlohmann::json::array();
    for (auto [n, ms] : pts)
      j.push_back({{"context", n},
                   {"decode_ms_per_token", ms},
                   {"decode_cpu_ms_per_token", 2 * ms},
                   {"memory_mb", n / 1024.0},
                   {"session_rss_mb", 1.5},
                   {"rounds", 7},
                   {"n_gen", 256},
                   {"memory", memory}});
    return j;
  };
  const std::vector<ContextRun> runs = {
      {"infllm", rows({{8192, 0.16}, {1048576, 0.21}}, "infllm: n_local 256")},
      {"full", rows({{8192, 0.5}, {65536, 3.0}}, "full")}};
  LinePlot c = context_curves(runs, ContextMetric::Decode, "Decode <cost>");
  ASSERT_EQ(c.series.size(), 2u);
  EXPECT_EQ(c.series[0].name, "infllm");
  EXPECT_EQ(c.lengths, (std::vector<int64_t>{8192, 65536, 1048576}));
  ASSERT_EQ(c.series[1].points.size(), 2u);
  EXPECT_EQ(c.series[1].points[1].length, 65536);
  EXPECT_DOUBLE_EQ(c.series[1].points[1].value, 3.0);
  EXPECT_NE(c.subtitle.find("medians of 7 rounds of 256"), std::string::npos);
  EXPECT_NE(c.subtitle.find("infllm: infllm: n_local 256"), std::string::npos);
  const std::string svg = line_plot_svg(c);
  expect_self_contained(svg);
  EXPECT_NE(svg.find("data-series=\"full\" data-length=\"65536\" data-value=\"3\""),
            std::string::npos);
  EXPECT_NE(svg.find("decode ms per token"), std::string::npos);
  EXPECT_NE(svg.find("Decode &lt;cost&gt;"), std::string::npos);
  c = context_curves(runs, ContextMetric::DecodeCpu, "t");
  EXPECT_DOUBLE_EQ(c.series[0].points[1].value, 0.42);
  c = context_curves(runs, ContextMetric::Memory, "t");
  EXPECT_DOUBLE_EQ(c.series[0].points[1].value, 1024.0);
  EXPECT_EQ(parse_context_metric("rss"), ContextMetric::Rss);
  EXPECT_EQ(parse_context_metric("ppl"), std::nullopt);
}

TEST(ContextPlot, MalformedResultsAreErrorsNamingTheRunAndRow) {
  auto message = [](const nlohmann::json& rows) {
    try {
      context_curves({{"run-a", rows}}, ContextMetric::Decode, "t");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(nlohmann::json::object()).find("'run-a' is not a bench-context"),
            std::string::npos);
  EXPECT_NE(message(nlohmann::json::array()).find("'run-a' is not a bench-context"),
            std::string::npos);
  EXPECT_NE(message(nlohmann::json::parse(R"([{"context": -5, "decode_ms_per_token": 1}])"))
                .find("row 1: no positive integer \"context\""),
            std::string::npos);
  EXPECT_NE(message(nlohmann::json::parse(
                        R"([{"context": 8, "decode_ms_per_token": 1}, {"context": 16}])"))
                .find("row 2: no number \"decode_ms_per_token\""),
            std::string::npos);
}

}  // namespace
}  // namespace lc::eval
