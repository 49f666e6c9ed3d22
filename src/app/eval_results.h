// The evaluations' results files (`eval passkey --json`, `eval ppl-curve --json`): which kind a
// file is, its figure, and writing that figure as SVG (plus PNG when rsvg-convert is on PATH).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "app/svg_plot.h"

namespace lc::app {

enum class ResultKind { Passkey, PplCurve };

// "passkey" / "ppl-curve".
const char* result_kind_name(ResultKind k);
// The kind of a parsed results file, from its layout: passkey files have settings, depths and
// cells; ppl-curve files have configs, lengths and cells. nullopt for anything else.
std::optional<ResultKind> result_kind(const nlohmann::json& j);

// The heatmap of a passkey results file: rows = every length of the grid and of its cells
// (ascending), columns = every depth (ascending); title and settings line from its settings.
PasskeyHeatmap passkey_heatmap_from_json(const nlohmann::json& j);
// The curves of a ppl-curve results file: one series per configuration, failed / too-short /
// pending cells as missing points.
PplCurves ppl_curves_from_json(const nlohmann::json& j);
// The figure of a results file of either kind; lc::Error for neither.
std::string results_figure_svg(const nlohmann::json& j);

// What a results file records about the machine: cpu model, processors available (nproc) and
// the threads the run used.
nlohmann::json machine_json();

// Where an evaluation writes its figure: `svg_flag` when given, else `json_path` with the
// extension .svg (".svg" appended when that would be the JSON file itself), else "" (none).
std::string figure_path(const std::string& svg_flag, const std::string& json_path);
// The full path of an executable found on $PATH, or "".
std::string find_on_path(const std::string& name);

// Writes one evaluation's figure, again after every finished cell: the SVG (replaced
// atomically) and, when rsvg-convert is on PATH, a PNG beside it (the SVG's path with .png).
// Without rsvg-convert the PNG is skipped silently; a conversion that fails is said once on
// stderr and the SVG is kept.
class FigureWriter {
 public:
  explicit FigureWriter(std::string svg_path);  // "" = write nothing
  bool enabled() const { return !svg_path_.empty(); }
  void write(const std::string& svg);
  // The files written so far ("a.svg", "a.png").
  std::vector<std::string> written() const;
  // "<prefix>: figure a.svg, a.png" on stderr when anything was written.
  void announce(const std::string& prefix) const;

 private:
  std::string svg_path_, png_path_, converter_;
  bool svg_written_ = false, png_written_ = false, png_failed_ = false;
};

}  // namespace lc::app
