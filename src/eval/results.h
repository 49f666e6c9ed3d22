// The evaluations' results files (passkey, ppl-curve): which kind a file is, its figure, and
// writing that figure as SVG (plus PNG when rsvg-convert is on PATH).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "eval/svg_plot.h"

namespace lc::eval {

enum class ResultKind { Passkey, PplCurve };

// "passkey" / "ppl-curve".
const char* result_kind_name(ResultKind k);
// The kind of a parsed results file, from its layout: passkey files have settings, depths and
// cells; ppl-curve files have configs, lengths and cells. nullopt for anything else.
std::optional<ResultKind> result_kind(const nlohmann::json& j);

// The heatmap of a passkey results file: rows = every length of the grid and of its cells
// (ascending), columns = every depth (ascending); title and settings line from its settings.
PasskeyHeatmap passkey_heatmap_from_json(const nlohmann::json& j);
// The perplexity curves of a ppl-curve results file: one series per configuration, failed /
// too-short / pending cells as missing points.
LinePlot ppl_curve_plot_from_json(const nlohmann::json& j);
// The figure of a results file of either kind; lc::Error for neither.
std::string results_figure_svg(const nlohmann::json& j);

// Where an evaluation writes its figure: `svg_path` when given, else `json_path` with the
// extension .svg (".svg" appended when that would be the JSON file itself), else "" (none).
std::string figure_path(const std::string& svg_path, const std::string& json_path);
// The full path of an executable found on $PATH, or "".
std::string find_on_path(const std::string& name);

// Reads a whole file; lc::Error naming it when it cannot be read.
std::string read_text_file(const std::string& path);
// Writes `data` to path.tmp, then renames it over `path`; lc::Error naming the file on failure.
void write_file_atomically(const std::string& path, const std::string& data);

// Writes one figure, again after every finished cell: the SVG (replaced atomically) and, when
// rsvg-convert is on PATH, a PNG beside it (the SVG's path with .png). Without rsvg-convert the
// PNG is skipped silently; a conversion that fails is reported once by write() and the SVG kept.
class FigureWriter {
 public:
  explicit FigureWriter(std::string svg_path);  // "" = write nothing
  bool enabled() const { return !svg_path_.empty(); }
  // "" normally; the warning when the PNG conversion failed this time (it is not tried again).
  std::string write(const std::string& svg);
  // The files written so far ("a.svg", "a.png").
  std::vector<std::string> written() const;

 private:
  std::string svg_path_, png_path_, converter_;
  bool svg_written_ = false, png_written_ = false, png_failed_ = false;
};

}  // namespace lc::eval
