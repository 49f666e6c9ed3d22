#include "eval/results.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/error.h"

extern char** environ;

namespace lc::eval {

using nlohmann::json;

namespace {

bool is_array(const json& j, const char* key) { return j.contains(key) && j[key].is_array(); }
bool is_object(const json& j, const char* key) { return j.contains(key) && j[key].is_object(); }

std::string str(const json& j, const char* key, const std::string& fallback = "") {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : fallback;
}

double number(const json& j, const char* key, double fallback = 0) {
  return j.contains(key) && j[key].is_number() ? j[key].get<double>() : fallback;
}

std::string file_name(const std::string& path) {
  return path.empty() ? path : std::filesystem::path(path).filename().string();
}

constexpr const char* kDot = " \xC2\xB7 ";  // " · "

}  // namespace

const char* result_kind_name(ResultKind k) {
  return k == ResultKind::Passkey ? "passkey" : "ppl-curve";
}

std::optional<ResultKind> result_kind(const json& j) {
  if (!j.is_object() || !is_array(j, "cells")) return std::nullopt;
  if (is_object(j, "settings") && is_array(j, "depths") && is_array(j, "lengths"))
    return ResultKind::Passkey;
  if (is_array(j, "configs") && is_array(j, "lengths")) return ResultKind::PplCurve;
  return std::nullopt;
}

PasskeyHeatmap passkey_heatmap_from_json(const json& j) {
  LC_CHECK(result_kind(j) == ResultKind::Passkey);
  std::set<int64_t> lengths;
  std::vector<double> depths;
  auto add_depth = [&](double d) {
    for (double have : depths)
      if (std::abs(have - d) < 1e-9) return;
    depths.push_back(d);
  };
  for (const json& L : j["lengths"])
    if (L.is_number_integer()) lengths.insert(L.get<int64_t>());
  for (const json& d : j["depths"])
    if (d.is_number()) add_depth(d.get<double>());
  for (const json& c : j["cells"]) {
    if (!c.is_object() || !c.contains("length") || !c.contains("depth")) continue;
    lengths.insert(c["length"].get<int64_t>());
    add_depth(c["depth"].get<double>());
  }
  std::sort(depths.begin(), depths.end());

  PasskeyHeatmap h;
  h.lengths.assign(lengths.begin(), lengths.end());
  h.depths = depths;
  h.cells.assign(h.lengths.size() * h.depths.size(), std::nullopt);
  size_t done = 0;
  for (const json& c : j["cells"]) {
    if (!c.is_object() || !c.contains("length") || !c.contains("depth")) continue;
    const auto li = static_cast<size_t>(
        std::lower_bound(h.lengths.begin(), h.lengths.end(), c["length"].get<int64_t>()) -
        h.lengths.begin());
    const double d = c["depth"].get<double>();
    size_t di = 0;
    while (di < h.depths.size() && std::abs(h.depths[di] - d) >= 1e-9) ++di;
    HeatmapCell cell;
    cell.trials = static_cast<int64_t>(number(c, "trials"));
    cell.correct = static_cast<int64_t>(number(c, "correct"));
    cell.accuracy = number(
        c, "accuracy",
        cell.trials > 0 ? static_cast<double>(cell.correct) / static_cast<double>(cell.trials)
                        : 0.0);
    h.cells[li * h.depths.size() + di] = cell;
    ++done;
  }

  const json& s = j["settings"];
  // The title names the memory policy and the RoPE method (their first words); the settings
  // line below it has their parameters.
  auto head = [](const std::string& v, const char* stops) {
    return v.substr(0, v.find_first_of(stops));
  };
  h.title = "Passkey retrieval: " + str(s, "model", file_name(str(j, "model_path", "model"))) +
            " (memory " + head(str(s, "memory", "?"), ":( ") + ", rope " +
            head(str(s, "rope", "?"), ",( ") + ")";
  std::string sub = "memory " + str(s, "memory", "?") + kDot + "rope " + str(s, "rope", "?");
  sub += kDot + str(s, "format", "?") + " format";
  if (s.contains("chat") && s["chat"].is_string()) sub += " (" + s["chat"].get<std::string>() + ")";
  sub += kDot + std::string("filler ") + str(s, "filler", "noise");
  if (s.contains("trials")) {
    const auto n = s["trials"].get<int64_t>();
    sub += kDot + std::to_string(n) + (n == 1 ? " trial" : " trials") + " per cell";
  }
  if (s.contains("seed")) sub += kDot + std::string("seed ") + s["seed"].dump();
  const size_t total = h.cells.size();
  if (done < total)
    sub += kDot + std::string("partial: ") + std::to_string(done) + " of " + std::to_string(total) +
           " cells";
  h.subtitle = sub;
  return h;
}

LinePlot ppl_curve_plot_from_json(const json& j) {
  LC_CHECK(result_kind(j) == ResultKind::PplCurve);
  LinePlot c;
  for (const json& L : j["lengths"])
    if (L.is_number_integer()) c.lengths.push_back(L.get<int64_t>());
  for (const json& cfg : j["configs"]) {
    LineSeries s;
    s.name = str(cfg, "name");
    c.series.push_back(std::move(s));
  }
  std::set<std::string> memories;
  size_t ok = 0, cells = 0;
  for (const json& e : j["cells"]) {
    if (!e.is_object()) continue;
    ++cells;
    const std::string name = str(e, "config");
    auto it = std::find_if(c.series.begin(), c.series.end(),
                           [&](const LineSeries& s) { return s.name == name; });
    if (it == c.series.end()) {
      c.series.push_back({name, {}});
      it = std::prev(c.series.end());
    }
    LinePoint p;
    p.length = static_cast<int64_t>(number(e, "ctx"));
    p.ok = str(e, "status") == "ok" && e.contains("ppl") && e["ppl"].is_number();
    if (p.ok) {
      p.value = e["ppl"].get<double>();
      p.error = number(e, "stderr");
      ++ok;
    }
    it->points.push_back(p);
    if (e.contains("memory")) memories.insert(str(e, "memory"));
  }
  const std::string model = file_name(str(j, "model", "model"));
  c.title = "Perplexity vs context length: " + model;
  std::string sub = "text " + file_name(str(j, "file", "?"));
  if (j.contains("n_tokens")) sub += " (" + j["n_tokens"].dump() + " tokens)";
  if (j.contains("orig_ctx")) sub += kDot + std::string("trained context ") + j["orig_ctx"].dump();
  if (memories.size() == 1) sub += kDot + std::string("memory ") + *memories.begin();
  if (number(j, "chunks") > 0)
    sub += kDot + std::string("at most ") + j["chunks"].dump() + " windows per point";
  sub += kDot + std::string("error bars: \xC2\xB1 standard error");
  if (ok < cells)
    sub += kDot + std::to_string(cells - ok) + " of " + std::to_string(cells) +
           " points missing or failed";
  c.subtitle = sub;
  return c;
}

std::string results_figure_svg(const json& j) {
  const auto kind = result_kind(j);
  if (!kind) fail("not a passkey or ppl-curve results file");
  return *kind == ResultKind::Passkey ? passkey_heatmap_svg(passkey_heatmap_from_json(j))
                                      : line_plot_svg(ppl_curve_plot_from_json(j));
}

std::string figure_path(const std::string& svg_path, const std::string& json_path) {
  if (!svg_path.empty()) return svg_path;
  if (json_path.empty()) return "";
  std::filesystem::path p(json_path);
  p.replace_extension(".svg");
  if (p == std::filesystem::path(json_path)) return json_path + ".svg";
  return p.string();
}

std::string find_on_path(const std::string& name) {
  if (name.empty()) return "";
  if (name.find('/') != std::string::npos) return access(name.c_str(), X_OK) == 0 ? name : "";
  const char* env = std::getenv("PATH");
  const std::string path = env ? env : "";
  size_t start = 0;
  for (;;) {
    const size_t colon = path.find(':', start);
    std::string dir = path.substr(start, colon == std::string::npos ? colon : colon - start);
    if (dir.empty()) dir = ".";
    const std::string full = dir + "/" + name;
    std::error_code ec;
    if (std::filesystem::is_regular_file(full, ec) && access(full.c_str(), X_OK) == 0) return full;
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  return "";
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read '", path, "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) fail("error reading '", path, "'");
  return ss.str();
}

void write_file_atomically(const std::string& path, const std::string& data) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    if (!out) fail("cannot write '", tmp, "'");
    out << data;
    if (!out.flush()) fail("error writing '", tmp, "' (disk full?)");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) fail("cannot replace '", path, "': ", ec.message());
}

namespace {

// Runs `argv` (argv[0] a full path) with stdout and stderr discarded; its exit status, or -1.
int run_quietly(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return -1;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

FigureWriter::FigureWriter(std::string svg_path) : svg_path_(std::move(svg_path)) {
  if (svg_path_.empty()) return;
  std::filesystem::path png(svg_path_);
  png.replace_extension(".png");
  png_path_ = png.string();
  if (png_path_ == svg_path_) png_path_.clear();  // a figure named x.png: no PNG over it
  converter_ = find_on_path("rsvg-convert");
}

std::string FigureWriter::write(const std::string& svg) {
  if (svg_path_.empty()) return "";
  write_file_atomically(svg_path_, svg);
  svg_written_ = true;
  if (converter_.empty() || png_path_.empty() || png_failed_) return "";
  const std::string tmp = png_path_ + ".tmp";
  const int rc = run_quietly({converter_, "-f", "png", "-o", tmp, svg_path_});
  std::error_code ec;
  if (rc == 0 && std::filesystem::file_size(tmp, ec) > 0 && !ec) {
    std::filesystem::rename(tmp, png_path_, ec);
    if (!ec) {
      png_written_ = true;
      return "";
    }
  }
  std::filesystem::remove(tmp, ec);
  png_failed_ = true;
  return cat(converter_, " could not convert ", svg_path_, " to PNG (exit code ", rc,
             "); the SVG is written, the PNG skipped");
}

std::vector<std::string> FigureWriter::written() const {
  std::vector<std::string> out;
  if (svg_written_) out.push_back(svg_path_);
  if (png_written_) out.push_back(png_path_);
  return out;
}

}  // namespace lc::eval
