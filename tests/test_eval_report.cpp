// Evaluation figures and `longctx eval report` end to end: eval passkey and eval ppl-curve write
// their figures beside their results files, the report gathers both into one HTML page, and
// headless Chromium renders that page with every figure present and sized.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "support/paths.h"

namespace lc {
namespace {

using nlohmann::json;
using test::longctx_binary;
using test::run_command;
using test::shared_path;

const std::string kPasskeyModel = shared_path("models/passkey-llama-tiny.gguf");
const std::string kStories = shared_path("models/stories260K.gguf");

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + what.size())) ++n;
  return n;
}

bool is_png(const std::string& path) {
  const std::string head = slurp(path).substr(0, 8);
  return head == std::string("\x89PNG\r\n\x1a\n", 8);
}

// An executable on $PATH, or "".
std::string on_path(const std::string& name) {
  const char* env = std::getenv("PATH");
  std::stringstream ss(env ? env : "");
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    const std::string p = (dir.empty() ? "." : dir) + "/" + name;
    if (access(p.c_str(), X_OK) == 0 && std::filesystem::is_regular_file(p)) return p;
  }
  return "";
}

// The results of one small passkey run and one small ppl-curve run, made once for the file.
struct Runs {
  std::string dir, passkey_json, curve_json, passkey_log, curve_log;
  int passkey_rc = -1, curve_rc = -1;
};

const Runs& runs() {
  static const Runs r = [] {
    Runs r;
    r.dir = test::temp_dir();
    r.passkey_json = r.dir + "/pk.json";
    r.passkey_rc =
        run_command(longctx_binary() + " eval passkey -m " + kPasskeyModel +
                        " --lengths 128,1k --depths 0,1 --trials 1 -t 2 --json " + r.passkey_json,
                    &r.passkey_log);
    const std::string text = r.dir + "/text.txt";
    std::string out;
    const int rc = run_command(longctx_binary() + " sample-text -m " + kStories + " -o " + text +
                                   " --tokens 1200 --seed 5 --max-doc 256",
                               &out);
    EXPECT_EQ(rc, 0) << out;
    r.curve_json = r.dir + "/curve.json";
    r.curve_rc = run_command(longctx_binary() + " eval ppl-curve -m " + kStories + " -f " + text +
                                 " -t 2 --lengths 128,512 --config none --config "
                                 "'lin=--rope-scaling linear --rope-scale 2' --json " +
                                 r.curve_json,
                             &r.curve_log);
    return r;
  }();
  return r;
}

std::string report(const std::string& args, int* rc) {
  std::string out;
  *rc = run_command(longctx_binary() + " eval report " + args, &out);
  return out;
}

TEST(EvalFigures, PasskeyWritesItsHeatmapBesideTheJson) {
  const Runs& r = runs();
  ASSERT_EQ(r.passkey_rc, 0) << r.passkey_log;
  const std::string svg_path = r.dir + "/pk.svg";
  ASSERT_TRUE(std::filesystem::exists(svg_path)) << r.passkey_log;
  EXPECT_NE(r.passkey_log.find("figure " + svg_path), std::string::npos) << r.passkey_log;
  const std::string svg = slurp(svg_path);
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  // One cell per (length, depth), each with the accuracy the JSON has.
  const json j = json::parse(slurp(r.passkey_json));
  ASSERT_EQ(j["cells"].size(), 4u);
  EXPECT_EQ(count(svg, "<rect class=\"cell\""), 4u);
  for (const json& c : j["cells"]) {
    char acc[32];
    std::snprintf(acc, sizeof acc, "%.6g", c["accuracy"].get<double>());
    const std::string depth = c["depth"].get<double>() == 0 ? "0%" : "100%";
    EXPECT_NE(svg.find("data-length=\"" + std::to_string(c["length"].get<int64_t>()) +
                       "\" data-depth=\"" + depth + "\" data-accuracy=\"" + acc + "\""),
              std::string::npos)
        << c.dump();
  }
  EXPECT_NE(svg.find(">128<"), std::string::npos);
  EXPECT_NE(svg.find(">1K<"), std::string::npos);
  EXPECT_NE(svg.find("passkey-llama-tiny.gguf"), std::string::npos);
  // PNG beside it when rsvg-convert is installed.
  if (!on_path("rsvg-convert").empty()) {
    EXPECT_TRUE(is_png(r.dir + "/pk.png"));
    EXPECT_NE(r.passkey_log.find(r.dir + "/pk.png"), std::string::npos) << r.passkey_log;
  }
}

TEST(EvalFigures, PplCurveWritesItsCurves) {
  const Runs& r = runs();
  ASSERT_EQ(r.curve_rc, 0) << r.curve_log;
  const std::string svg = slurp(r.dir + "/curve.svg");
  ASSERT_FALSE(svg.empty()) << r.curve_log;
  EXPECT_EQ(count(svg, "class=\"point\""), 4u);  // 2 configs x 2 lengths
  EXPECT_EQ(count(svg, "data-series=\"lin\" data-length="), 2u);
  EXPECT_NE(svg.find(">128<"), std::string::npos);
  EXPECT_NE(svg.find(">512<"), std::string::npos);
  EXPECT_NE(svg.find("stories260K.gguf"), std::string::npos);
  // Results files now say which machine ran them and the model's size.
  const json j = json::parse(slurp(r.curve_json));
  EXPECT_TRUE(j["machine"].contains("cpu"));
  EXPECT_GT(j["model_bytes"].get<int64_t>(), 1000000);
}

TEST(EvalFigures, SvgFlagAndNoConverter) {
  const Runs& r = runs();
  ASSERT_EQ(r.passkey_rc, 0);
  // --svg names the figure; without rsvg-convert on PATH the PNG is skipped quietly.
  const std::string dir = test::temp_dir();
  std::string out;
  const int rc =
      run_command("PATH=/nonexistent " + longctx_binary() + " eval passkey -m " + kPasskeyModel +
                      " --lengths 128 --depths 0.5 --trials 1 -t 1 " + "--svg " + dir + "/fig.svg",
                  &out);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_TRUE(std::filesystem::exists(dir + "/fig.svg"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/fig.png"));
  EXPECT_EQ(out.find("warning"), std::string::npos) << out;
  EXPECT_EQ(count(slurp(dir + "/fig.svg"), "<rect class=\"cell\""), 1u);
}

TEST(EvalReport, OnePageWithFiguresTablesAndFacts) {
  const Runs& r = runs();
  ASSERT_EQ(r.passkey_rc, 0) << r.passkey_log;
  ASSERT_EQ(r.curve_rc, 0) << r.curve_log;
  const std::string html_path = r.dir + "/report.html";
  int rc = 0;
  const std::string out = report(r.passkey_json + " " + r.curve_json + " -o " + html_path +
                                     " --title 'Tiny <models> & \"friends\"'",
                                 &rc);
  ASSERT_EQ(rc, 0) << out;
  const std::string html = slurp(html_path);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_EQ(count(html, "<svg "), 2u);
  EXPECT_EQ(count(html, "</svg>"), 2u);
  EXPECT_EQ(html.find("<?xml"), std::string::npos);  // declarations stripped when inlined
  EXPECT_NE(html.find("<style>"), std::string::npos);
  // Tables: passkey accuracy with trials, perplexity per length x configuration.
  EXPECT_NE(html.find("Passkey accuracy (correct / trials)"), std::string::npos);
  EXPECT_NE(html.find("Perplexity \xC2\xB1 standard error"), std::string::npos);
  EXPECT_NE(html.find("<th>none</th><th>lin</th>"), std::string::npos);
  EXPECT_NE(html.find("/1</small></td>"), std::string::npos);  // correct/trials of 1 trial
  const json curve = json::parse(slurp(r.curve_json));
  char ppl[32];
  std::snprintf(ppl, sizeof ppl, "%.3f \xC2\xB1", curve["cells"][0]["ppl"].get<double>());
  EXPECT_NE(html.find(ppl), std::string::npos) << ppl;
  // Model, settings, machine, time.
  EXPECT_NE(html.find("passkey-llama-tiny.gguf"), std::string::npos);
  EXPECT_NE(html.find("6.4 MiB (6,705,280 bytes)"), std::string::npos);
  EXPECT_NE(html.find("stories260K.gguf"), std::string::npos);
  EXPECT_NE(html.find("1.1 MiB (1,185,376 bytes)"), std::string::npos);
  EXPECT_NE(html.find("<th>format</th><td>landmark</td>"), std::string::npos);
  EXPECT_NE(html.find("<th>memory</th><td>full (f16 KV)</td>"), std::string::npos);
  EXPECT_NE(html.find("<th>seed</th><td>0</td>"), std::string::npos);
  EXPECT_NE(html.find("<th>threads used</th>"), std::string::npos);
  EXPECT_NE(html.find("<th>cpu</th>"), std::string::npos);
  EXPECT_NE(html.find("--rope-scaling linear --rope-scale 2"), std::string::npos);
  EXPECT_TRUE(std::regex_search(html, std::regex("Generated 20[0-9]{2}-[0-9]{2}-[0-9]{2} "
                                                 "[0-9]{2}:[0-9]{2}:[0-9]{2} UTC")));
  // Title escaped; nothing loaded from anywhere, no scripts.
  EXPECT_NE(html.find("<title>Tiny &lt;models&gt; &amp; &quot;friends&quot;</title>"),
            std::string::npos);
  for (const char* bad : {"<script", "<link", "src=", "url(", "@import", "https:"})
    EXPECT_EQ(html.find(bad), std::string::npos) << bad;
  EXPECT_EQ(count(html, "http://"), count(html, "http://www.w3.org/2000/svg"));
}

TEST(EvalReport, ClearErrors) {
  const Runs& r = runs();
  int rc = 0;
  std::string out = report("-o " + r.dir + "/x.html", &rc);
  EXPECT_EQ(rc, 1);
  EXPECT_NE(out.find("no results files given"), std::string::npos) << out;

  out = report(r.dir + "/missing.json -o " + r.dir + "/x.html", &rc);
  EXPECT_EQ(rc, 1);
  EXPECT_NE(out.find("missing.json' does not exist"), std::string::npos) << out;

  const std::string other = r.dir + "/other.json";
  std::ofstream(other) << R"({"ppl": 3.39, "ctx": 512})";
  out = report(other + " -o " + r.dir + "/x.html", &rc);
  EXPECT_EQ(rc, 1);
  EXPECT_NE(out.find("neither a passkey nor a ppl-curve results file"), std::string::npos) << out;

  const std::string broken = r.dir + "/broken.json";
  std::ofstream(broken) << "{\"settings\": ";
  out = report(broken + " -o " + r.dir + "/x.html", &rc);
  EXPECT_EQ(rc, 1);
  EXPECT_NE(out.find("broken.json' is not JSON"), std::string::npos) << out;

  const std::string malformed = r.dir + "/malformed.json";
  std::ofstream(malformed) << R"({"settings": {}, "lengths": [128], "depths": [0],
                                  "cells": [{"length": "long", "depth": 0}]})";
  out = report(malformed + " -o " + r.dir + "/x.html", &rc);
  EXPECT_EQ(rc, 1);
  EXPECT_NE(out.find("malformed.json' is a malformed passkey results file"), std::string::npos)
      << out;
  EXPECT_FALSE(std::filesystem::exists(r.dir + "/x.html"));
}

// Headless Chromium: each figure laid out with a real size, and a screenshot with content.
TEST(EvalReport, RendersInHeadlessChromium) {
  const std::string chromium = on_path("chromium");
  if (chromium.empty()) {
    const char* skip = std::getenv("LONGCTX_SKIP_BROWSER");
    if (skip && std::string(skip) == "1")
      GTEST_SKIP() << "chromium not on PATH and LONGCTX_SKIP_BROWSER=1";
    FAIL() << "chromium is not on PATH: run scripts/setup (it installs Debian's chromium "
              "package), or set LONGCTX_SKIP_BROWSER=1 to skip this test";
  }
  const Runs& r = runs();
  ASSERT_EQ(r.passkey_rc, 0) << r.passkey_log;
  ASSERT_EQ(r.curve_rc, 0) << r.curve_log;
  const std::string dir = test::temp_dir();
  const std::string html_path = dir + "/report.html";
  int rc = 0;
  const std::string out = report(r.passkey_json + " " + r.curve_json + " -o " + html_path, &rc);
  ASSERT_EQ(rc, 0) << out;

  // A copy whose appended script writes every <svg>'s laid-out size into the DOM.
  std::string html = slurp(html_path);
  const size_t body_end = html.rfind("</body>");
  ASSERT_NE(body_end, std::string::npos);
  html.insert(body_end,
              "<script>\n"
              "const sizes = [];\n"
              "for (const s of document.querySelectorAll('svg')) {\n"
              "  const b = s.getBoundingClientRect();\n"
              "  sizes.push(Math.round(b.width) + 'x' + Math.round(b.height));\n"
              "}\n"
              "const pre = document.createElement('pre');\n"
              "pre.textContent = 'SVG-SIZES[' + sizes.join(' ') + ']';\n"
              "document.body.appendChild(pre);\n"
              "</script>\n");
  const std::string probe = dir + "/probe.html";
  std::ofstream(probe) << html;

  // A private profile and HOME, no sandbox (containers), and a hard time limit.
  const std::string browser = "HOME=" + dir + " timeout -k 5 60 " + chromium +
                              " --headless --no-sandbox --disable-gpu --disable-dev-shm-usage "
                              "--no-first-run --no-default-browser-check --disable-extensions "
                              "--hide-scrollbars --user-data-dir=" +
                              dir + "/profile --window-size=1280,1800 ";
  std::string dom;
  rc = run_command(browser + "--dump-dom file://" + probe + " 2>/dev/null", &dom, false);
  ASSERT_EQ(rc, 0) << dom;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(dom, m, std::regex(R"(SVG-SIZES\[([0-9x ]*)\])")))
      << dom.substr(0, 2000);
  std::stringstream sizes(m[1].str());
  std::string item;
  int figures = 0;
  while (sizes >> item) {
    const size_t x = item.find('x');
    ASSERT_NE(x, std::string::npos) << item;
    EXPECT_GT(std::stoi(item.substr(0, x)), 100) << "figure " << figures << ": " << item;
    EXPECT_GT(std::stoi(item.substr(x + 1)), 100) << "figure " << figures << ": " << item;
    ++figures;
  }
  EXPECT_EQ(figures, 2) << m[0];

  // Screenshots of the report and of an empty page: the report's holds far more.
  const std::string shot = dir + "/report.png", blank_shot = dir + "/blank.png";
  const std::string blank = dir + "/blank.html";
  std::ofstream(blank) << "<!DOCTYPE html><html><body></body></html>\n";
  std::string log;
  rc = run_command(browser + "--screenshot=" + shot + " file://" + html_path, &log);
  ASSERT_EQ(rc, 0) << log;
  rc = run_command(browser + "--screenshot=" + blank_shot + " file://" + blank, &log);
  ASSERT_EQ(rc, 0) << log;
  ASSERT_TRUE(is_png(shot)) << log;
  ASSERT_TRUE(is_png(blank_shot)) << log;
  const auto shot_bytes = std::filesystem::file_size(shot);
  const auto blank_bytes = std::filesystem::file_size(blank_shot);
  EXPECT_GT(shot_bytes, 20000u);
  EXPECT_GT(shot_bytes, 5 * blank_bytes) << shot_bytes << " vs blank " << blank_bytes;
  // Its size is the window's (IHDR: big-endian width and height at bytes 16..23).
  const std::string png = slurp(shot);
  auto be32 = [&](size_t at) {
    return (static_cast<uint32_t>(static_cast<unsigned char>(png[at])) << 24) |
           (static_cast<uint32_t>(static_cast<unsigned char>(png[at + 1])) << 16) |
           (static_cast<uint32_t>(static_cast<unsigned char>(png[at + 2])) << 8) |
           static_cast<uint32_t>(static_cast<unsigned char>(png[at + 3]));
  };
  EXPECT_EQ(be32(16), 1280u);
  EXPECT_EQ(be32(20), 1800u);
}

}  // namespace
}  // namespace lc
