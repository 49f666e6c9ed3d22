#include "eval/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "eval/results.h"
#include "eval/svg_plot.h"
#include "eval/text_format.h"

namespace lc::eval {

using nlohmann::json;

namespace {

std::string esc(const std::string& s) { return xml_escape(s); }

std::string str(const json& j, const char* key, const std::string& fallback = "") {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : fallback;
}

// A JSON value as a person reads it: strings bare, null as "none", arrays comma-separated.
std::string plain(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "none";
  if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
  if (v.is_array()) {
    std::string out;
    for (const json& e : v) out += (out.empty() ? "" : ", ") + plain(e);
    return out;
  }
  if (v.is_number_float()) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "%.6g", v.get<double>());
    return buf;
  }
  return v.dump();
}

std::string with_commas(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return (n < 0 ? "-" : "") + out;
}

std::string size_text(int64_t bytes) {
  char buf[64];
  if (bytes >= (int64_t{1} << 30))
    std::snprintf(buf, sizeof buf, "%.2f GiB", static_cast<double>(bytes) / (1 << 30));
  else if (bytes >= (1 << 20))
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  else
    std::snprintf(buf, sizeof buf, "%.1f KiB", static_cast<double>(bytes) / 1024);
  return std::string(buf) + " (" + with_commas(bytes) + " bytes)";
}

std::string depth_text(double d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g%%", d * 100);
  return buf;
}

// The inline form of an SVG document: without its XML declaration.
std::string inline_svg(const std::string& svg) {
  if (svg.rfind("<?xml", 0) == 0) {
    const size_t end = svg.find("?>");
    if (end != std::string::npos) {
      size_t start = end + 2;
      while (start < svg.size() && (svg[start] == '\n' || svg[start] == '\r')) ++start;
      return svg.substr(start);
    }
  }
  return svg;
}

// A two-column table of facts.
std::string facts_table(const std::string& caption,
                        const std::vector<std::pair<std::string, std::string>>& rows) {
  std::string h = "<table class=\"facts\"><caption>" + esc(caption) + "</caption>\n";
  for (const auto& [k, v] : rows) h += "<tr><th>" + esc(k) + "</th><td>" + esc(v) + "</td></tr>\n";
  return h + "</table>\n";
}

// Model name and size: from the file's own keys, else from the model file when it is there.
std::pair<std::string, std::string> model_facts(const std::string& path, const json& bytes_key) {
  std::string size = "not recorded";
  int64_t bytes = bytes_key.is_number_integer() ? bytes_key.get<int64_t>() : 0;
  if (bytes <= 0 && !path.empty()) {
    std::error_code ec;
    const auto n = std::filesystem::file_size(path, ec);
    if (!ec) bytes = static_cast<int64_t>(n);
  }
  if (bytes > 0) size = size_text(bytes);
  return {path.empty() ? "unknown" : std::filesystem::path(path).filename().string(), size};
}

std::vector<std::pair<std::string, std::string>> machine_rows(const json& j) {
  if (!j.contains("machine") || !j["machine"].is_object()) return {{"machine", "not recorded"}};
  const json& m = j["machine"];
  std::vector<std::pair<std::string, std::string>> rows;
  static const std::pair<const char*, const char*> kKnown[] = {{"cpu", "cpu"},
                                                               {"cores", "cores"},
                                                               {"nproc", "processors available"},
                                                               {"threads", "threads used"},
                                                               {"ram_bytes", "memory"},
                                                               {"isa", "kernels"},
                                                               {"compiler", "compiler"},
                                                               {"build", "build"},
                                                               {"date", "date"}};
  for (const auto& [key, label] : kKnown) {
    if (!m.contains(key)) continue;
    const json& v = m[key];
    rows.emplace_back(label, std::string(key) == "ram_bytes" && v.is_number_integer()
                                 ? size_text(v.get<int64_t>())
                                 : plain(v));
  }
  for (const auto& [k, v] : m.items())
    if (std::none_of(std::begin(kKnown), std::end(kKnown),
                     [&](const auto& known) { return k == known.first; }))
      rows.emplace_back(k, plain(v));
  return rows;
}

// The model, settings and machine tables that close a result's section.
std::string facts_footer(const std::string& model, const std::string& size,
                         const std::vector<std::pair<std::string, std::string>>& settings,
                         const json& j) {
  return "<div class=\"facts-row\">\n" + facts_table("Model", {{"file", model}, {"size", size}}) +
         facts_table("Settings", settings) + facts_table("Machine", machine_rows(j)) +
         "</div>\n</section>\n";
}

// ---------------------------------------------------------------------------------------------
// Passkey.

std::string passkey_section(const ReportInput& in, size_t index) {
  const json& j = in.results;
  const json& s = j["settings"];
  const PasskeyHeatmap hm = passkey_heatmap_from_json(j);
  const auto [model, size] =
      model_facts(str(j, "model_path", str(s, "model")), s.value("model_bytes", json()));

  // Mean prompt tokens per row, from the cells' "tokens" weighted by their trials.
  struct TokenMean {
    double sum = 0, n = 0;
  };
  std::vector<TokenMean> tokens(hm.lengths.size());
  for (const json& c : j["cells"]) {
    if (!c.is_object() || !c.contains("length") || !c.contains("tokens")) continue;
    const auto it = std::find(hm.lengths.begin(), hm.lengths.end(), c["length"].get<int64_t>());
    if (it == hm.lengths.end()) continue;
    const double n = c.value("trials", 1.0);
    TokenMean& t = tokens[static_cast<size_t>(it - hm.lengths.begin())];
    t.sum += c["tokens"].get<double>() * n;
    t.n += n;
  }

  std::string h = "<section class=\"result\" id=\"result-" + std::to_string(index + 1) + "\">\n";
  h += "<h2>" + std::to_string(index + 1) + ". Passkey retrieval: " + esc(model) +
       " <span class=\"kind\">passkey</span></h2>\n";
  h += "<p class=\"source\">From <code>" + esc(in.path) + "</code>";
  if (!j.value("complete", true)) h += " (partial run)";
  if (j.contains("seconds")) h += ", run time " + format_duration(j["seconds"].get<double>());
  h += ".</p>\n";
  h += "<figure>" + inline_svg(passkey_heatmap_svg(hm)) +
       "<figcaption>Accuracy per prompt length (rows) and needle depth (columns).</figcaption>"
       "</figure>\n";

  // The numbers: accuracy and correct/trials per cell, row and column means.
  const size_t cols = hm.depths.size();
  h += "<div class=\"table-wrap\"><table class=\"numbers\"><caption>Passkey accuracy (correct / "
       "trials)</caption>\n<tr>"
       "<th>length</th><th>tokens</th>";
  for (double d : hm.depths) h += "<th>" + esc(depth_text(d)) + "</th>";
  h += "<th>mean</th></tr>\n";
  std::vector<int64_t> col_c(cols, 0), col_n(cols, 0);
  int64_t all_c = 0, all_n = 0;
  auto cell_td = [](int64_t c, int64_t n) {
    if (n == 0) return std::string("<td class=\"missing\">\xE2\x80\x93</td>");
    const double a = static_cast<double>(c) / static_cast<double>(n);
    return "<td style=\"background:" + accuracy_color(a) + ";color:" + accuracy_text_color(a) +
           "\">" + format_percent(a) + " <small>" + std::to_string(c) + "/" + std::to_string(n) +
           "</small></td>";
  };
  for (size_t r = 0; r < hm.lengths.size(); ++r) {
    char tok[32] = "\xE2\x80\x93";
    if (tokens[r].n > 0) std::snprintf(tok, sizeof tok, "%.0f", tokens[r].sum / tokens[r].n);
    h += "<tr><th>" + esc(length_label(hm.lengths[r])) + "</th><td>" + tok + "</td>";
    int64_t row_c = 0, row_n = 0;
    for (size_t c = 0; c < cols; ++c) {
      const auto& cell = hm.cells[r * cols + c];
      const int64_t cc = cell ? cell->correct : 0, cn = cell ? cell->trials : 0;
      h += cell_td(cc, cn);
      row_c += cc;
      row_n += cn;
      col_c[c] += cc;
      col_n[c] += cn;
    }
    all_c += row_c;
    all_n += row_n;
    h += cell_td(row_c, row_n) + "</tr>\n";
  }
  if (hm.lengths.size() > 1) {
    h += "<tr><th>mean</th><td></td>";
    for (size_t c = 0; c < cols; ++c) h += cell_td(col_c[c], col_n[c]);
    h += cell_td(all_c, all_n) + "</tr>\n";
  }
  h += "</table></div>\n";

  std::vector<std::pair<std::string, std::string>> settings;
  for (const auto& [k, v] : s.items())
    if (k != "model" && k != "model_bytes") settings.emplace_back(k, plain(v));
  settings.emplace_back("lengths (tokens)", plain(j["lengths"]));
  settings.emplace_back("depths", plain(j["depths"]));
  return h + facts_footer(model, size, settings, j);
}

// ---------------------------------------------------------------------------------------------
// Perplexity curves.

std::string curve_section(const ReportInput& in, size_t index) {
  const json& j = in.results;
  const LinePlot pc = ppl_curve_plot_from_json(j);
  const auto [model, size] = model_facts(str(j, "model"), j.value("model_bytes", json()));

  std::string h = "<section class=\"result\" id=\"result-" + std::to_string(index + 1) + "\">\n";
  h += "<h2>" + std::to_string(index + 1) + ". Perplexity vs context length: " + esc(model) +
       " <span class=\"kind\">ppl-curve</span></h2>\n";
  h += "<p class=\"source\">From <code>" + esc(in.path) + "</code>" +
       (j.value("complete", true) ? std::string("") : std::string(" (partial run)")) + ".</p>\n";
  h += "<figure>" + inline_svg(line_plot_svg(pc)) + "<figcaption>Perplexity " +
       (line_plot_log_y(pc) ? "(log scale)" : "(linear scale)") +
       " against context length (log scale); bars: \xC2\xB1 one standard error.</figcaption>"
       "</figure>\n";

  // Lengths: the file's, then any other length of a cell.
  std::vector<int64_t> lengths;
  for (const json& L : j["lengths"]) lengths.push_back(L.get<int64_t>());
  for (const json& c : j["cells"])
    if (c.is_object() && c.contains("ctx") &&
        std::find(lengths.begin(), lengths.end(), c["ctx"].get<int64_t>()) == lengths.end())
      lengths.push_back(c["ctx"].get<int64_t>());
  std::vector<std::string> names;
  for (const LineSeries& s : pc.series) names.push_back(s.name);
  auto find_cell = [&](const std::string& name, int64_t L) -> const json* {
    for (const json& c : j["cells"])
      if (c.is_object() && str(c, "config") == name && c.value("ctx", int64_t{0}) == L) return &c;
    return nullptr;
  };

  h += "<div class=\"table-wrap\"><table class=\"numbers\"><caption>Perplexity \xC2\xB1 standard "
       "error</caption>\n<tr>"
       "<th>length</th>";
  for (const auto& n : names) h += "<th>" + esc(n) + "</th>";
  h += "</tr>\n";
  std::vector<std::string> notes;
  for (int64_t L : lengths) {
    const std::string label = length_label(L);
    h += "<tr><th>" + esc(label) +
         (label == std::to_string(L) ? "" : " <small>(" + std::to_string(L) + ")</small>") +
         "</th>";
    for (const auto& n : names) {
      const json* c = find_cell(n, L);
      const std::string status = c ? str(*c, "status") : "";
      if (c && status == "ok") {
        h += "<td>" + esc(format_ppl((*c)["ppl"].get<double>(), c->value("stderr", 0.0))) + "</td>";
      } else if (c && (status == "too_short" || status == "error")) {
        const std::string reason = str(*c, "reason", status);
        h += std::string("<td class=\"missing\" title=\"") + esc(reason) + "\">" +
             (status == "too_short" ? "n/a" : "error") + "</td>";
        notes.push_back(n + " at " + std::to_string(L) + ": " + reason);
      } else {
        h += "<td class=\"missing\">\xE2\x80\x93</td>";
      }
    }
    h += "</tr>\n";
  }
  h += "</table></div>\n";
  if (!notes.empty()) {
    h += "<ul class=\"notes\">";
    for (const auto& n : notes) h += "<li>" + esc(n) + "</li>";
    h += "</ul>\n";
  }

  // Configurations: flags, memory and RoPE (per length where they differ).
  h += "<div class=\"table-wrap\"><table class=\"numbers "
       "configs\"><caption>Configurations</caption>\n<tr><th>name</th>"
       "<th>flags</th><th>memory</th><th>rope</th></tr>\n";
  for (const json& cfg : j["configs"]) {
    const std::string name = str(cfg, "name");
    std::vector<std::string> mems, ropes;
    for (const json& c : j["cells"]) {
      if (!c.is_object() || str(c, "config") != name) continue;
      const std::string m = str(c, "memory"), r = str(c, "rope");
      const std::string at = " (from " + length_label(c.value("ctx", int64_t{0})) + ")";
      if (!m.empty() && std::find(mems.begin(), mems.end(), m) == mems.end()) mems.push_back(m);
      if (!r.empty() && std::find_if(ropes.begin(), ropes.end(), [&](const std::string& x) {
                          return x.rfind(r, 0) == 0;
                        }) == ropes.end())
        ropes.push_back(r + at);
    }
    auto lines = [](const std::vector<std::string>& v) {
      std::string out;
      for (const auto& s : v) out += (out.empty() ? "" : "<br>") + esc(s);
      return out.empty() ? std::string("\xE2\x80\x93") : out;
    };
    if (ropes.size() == 1) ropes[0] = ropes[0].substr(0, ropes[0].rfind(" (from "));
    const std::string flags = str(cfg, "flags");
    h += "<tr><th>" + esc(name) + "</th><td><code>" +
         (flags.empty() ? std::string("(the model's own settings)") : esc(flags)) +
         "</code></td><td>" + lines(mems) + "</td><td>" + lines(ropes) + "</td></tr>\n";
  }
  h += "</table></div>\n";

  std::vector<std::pair<std::string, std::string>> settings;
  if (j.contains("file")) settings.emplace_back("text", plain(j["file"]));
  if (j.contains("n_tokens")) settings.emplace_back("text tokens", plain(j["n_tokens"]));
  if (j.contains("orig_ctx")) settings.emplace_back("trained context", plain(j["orig_ctx"]));
  settings.emplace_back("lengths (tokens)", plain(j["lengths"]));
  if (j.contains("chunks"))
    settings.emplace_back("windows per point",
                          j["chunks"].is_number() && j["chunks"].get<double>() > 0
                              ? "at most " + plain(j["chunks"])
                              : std::string("all"));
  for (const auto& [k, v] : j.items())
    if (k != "model" && k != "model_bytes" && k != "file" && k != "n_tokens" && k != "orig_ctx" &&
        k != "lengths" && k != "chunks" && k != "configs" && k != "cells" && k != "machine" &&
        !v.is_structured())
      settings.emplace_back(k, plain(v));
  return h + facts_footer(model, size, settings, j);
}

constexpr const char* kCss = R"(
body { font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; color: #222;
  margin: 0 auto; padding: 16px 24px 40px; max-width: 1200px; background: #fafafa; }
h1 { font-size: 1.6em; margin: 0.4em 0 0.1em; }
h2 { font-size: 1.25em; margin: 0 0 0.3em; }
.meta, .source { color: #555; margin: 0.2em 0 0.8em; }
nav ol { margin: 0.2em 0 1em; }
.kind { font-size: 0.7em; font-weight: normal; color: #fff; background: #5a6f8a;
  border-radius: 4px; padding: 1px 6px; vertical-align: middle; }
section.result { background: #fff; border: 1px solid #ddd; border-radius: 6px;
  padding: 16px 20px; margin: 18px 0; }
figure { margin: 8px 0 16px; overflow-x: auto; }
figure svg { display: block; max-width: 100%; height: auto; }
figcaption { color: #555; font-size: 0.9em; margin-top: 4px; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 0.92em; }
caption { text-align: left; font-weight: bold; padding: 4px 0; }
.table-wrap { overflow-x: auto; }
table.numbers th, table.numbers td { border: 1px solid #ddd; padding: 4px 8px; text-align: right;
  white-space: nowrap; }
table.configs td { white-space: normal; }
table.numbers th { background: #f2f2f2; }
table.numbers td small { opacity: 0.8; }
table.configs td, table.configs th { text-align: left; }
td.missing { color: #777; background: #eee; text-align: center; }
.facts-row { display: flex; flex-wrap: wrap; gap: 12px 28px; align-items: flex-start; }
table.facts th { text-align: left; color: #555; font-weight: normal; padding: 2px 12px 2px 0;
  vertical-align: top; }
table.facts td { padding: 2px 0; max-width: 520px; overflow-wrap: anywhere; }
code { font-family: "DejaVu Sans Mono", monospace; font-size: 0.92em; }
ul.notes { color: #555; font-size: 0.9em; }
footer { color: #777; font-size: 0.85em; margin-top: 24px; }
)";

}  // namespace

ReportInput load_report_input(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    fail("eval report: '", path, "' does not exist (give the results files of eval passkey or ",
         "eval ppl-curve)");
  if (std::filesystem::is_directory(path, ec))
    fail("eval report: '", path, "' is a directory, not a results file");
  ReportInput in;
  in.path = path;
  const std::string text = read_text_file(path);
  try {
    in.results = json::parse(text);
  } catch (const json::exception& e) {
    fail("eval report: '", path, "' is not JSON (", e.what(),
         "); expected the results file of eval passkey or eval ppl-curve");
  }
  if (!result_kind(in.results))
    fail("eval report: '", path, "' is neither a passkey nor a ppl-curve results file (expected ",
         "the results file of eval passkey, with settings/lengths/depths/cells, or of eval ",
         "ppl-curve, with configs/lengths/cells)");
  return in;
}

std::string report_html(const std::vector<ReportInput>& inputs, const std::string& title,
                        const std::string& generated_at) {
  if (inputs.empty())
    fail("eval report: no results files given (give one or more results files of eval ",
         "passkey or eval ppl-curve)");
  std::string sections, toc;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const ReportInput& in = inputs[i];
    const auto kind = result_kind(in.results);
    if (!kind)
      fail("eval report: '", in.path, "' is neither a passkey nor a ppl-curve results file");
    try {
      sections += *kind == ResultKind::Passkey ? passkey_section(in, i) : curve_section(in, i);
    } catch (const json::exception& e) {
      fail("eval report: '", in.path, "' is a malformed ", result_kind_name(*kind),
           " results file: ", e.what());
    }
    const std::string model =
        *kind == ResultKind::Passkey
            ? in.results["settings"].value("model", std::string("model"))
            : std::filesystem::path(in.results.value("model", std::string("model")))
                  .filename()
                  .string();
    toc += "<li><a href=\"#result-" + std::to_string(i + 1) + "\">" +
           (*kind == ResultKind::Passkey ? "Passkey retrieval" : "Perplexity vs context length") +
           ": " + esc(model) + "</a> <small>(" + esc(in.path) + ")</small></li>\n";
  }
  std::string h = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  h += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  h += "<title>" + esc(title) + "</title>\n<style>" + kCss + "</style>\n</head>\n<body>\n";
  h += "<header><h1>" + esc(title) + "</h1>\n<p class=\"meta\">Generated " + esc(generated_at) +
       " by <code>longctx eval report</code> from " + std::to_string(inputs.size()) +
       " results file" + (inputs.size() == 1 ? "" : "s") + ".</p></header>\n";
  h += "<nav><ol>\n" + toc + "</ol></nav>\n";
  h += sections;
  h += "<footer>Generated " + esc(generated_at) +
       ". Self-contained: no scripts, fonts or images are loaded from anywhere.</footer>\n";
  h += "</body>\n</html>\n";
  return h;
}

}  // namespace lc::eval
