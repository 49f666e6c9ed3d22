#include "eval/grid.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "eval/text_format.h"

namespace lc::eval {

using nlohmann::json;

Grid::Grid(size_t rows, size_t columns)
    : rows_(rows), columns_(columns), state_(rows * columns, State::Pending) {}

size_t Grid::index(size_t row, size_t column) const {
  LC_CHECK(row < rows_ && column < columns_);
  return row * columns_ + column;
}

std::vector<size_t> Grid::pending() const {
  std::vector<size_t> out;
  for (size_t i = 0; i < state_.size(); ++i)
    if (state_[i] == State::Pending) out.push_back(i);
  return out;
}

size_t Grid::resumed_count() const {
  return static_cast<size_t>(std::count(state_.begin(), state_.end(), State::Resumed));
}

bool Grid::complete() const {
  return std::none_of(state_.begin(), state_.end(), [](State s) { return s == State::Pending; });
}

CheckpointFiles checkpoint_files(const std::string& json_path, const std::string& svg_path,
                                 const std::string& resume_path) {
  CheckpointFiles f;
  f.results = json_path.empty() ? resume_path : json_path;
  f.figure = figure_path(svg_path, f.results);
  f.resume = resume_path;
  return f;
}

Checkpoint::Checkpoint(const CheckpointFiles& files)
    : results_path_(files.results), figure_(files.figure) {}

std::string Checkpoint::write(const json& results) {
  if (!results_path_.empty()) write_file_atomically(results_path_, results.dump(2) + "\n");
  if (!figure_.enabled()) return "";
  return figure_.write(results_figure_svg(results));
}

std::optional<json> read_earlier_run(const std::string& path, ResultKind kind) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::nullopt;
  const char* name = result_kind_name(kind);
  json j;
  try {
    j = json::parse(read_text_file(path));
  } catch (const json::exception& e) {
    fail_setting({"resume"}, "resume file '", path, "' is not a ", name, " JSON file: ", e.what());
  }
  if (result_kind(j) != kind)
    fail_setting({"resume"}, "resume file '", path, "' is not a ", name, " JSON file (",
                 kind == ResultKind::Passkey ? "no settings, depths or cells"
                                             : "no configs, lengths or cells",
                 ")");
  return j;
}

void require_same_inputs(const std::string& path, const json& earlier, const json& now) {
  for (const auto& [key, value] : now.items()) {
    const json old = earlier.is_object() ? earlier.value(key, json()) : json();
    if (old != value)
      fail_setting({"resume"}, "resume file '", path, "' was written with other settings: ", key,
                   " is ", old.dump(), " there and ", value.dump(),
                   " now (repeat the earlier settings, or start another file)");
  }
}

void run_grid(Grid& grid, Checkpoint& checkpoint, const GridRun& run,
              const GridProgressFn& progress) {
  auto save = [&] {
    const std::string warning = checkpoint.write(run.results());
    if (!warning.empty() && progress)
      progress({GridProgress::Kind::Note, "warning: " + warning, 0, 0, ""});
  };
  for (size_t i = 0; i < grid.size(); ++i) {
    const bool ran = !grid.done(i);
    if (ran) {
      run.run_cell(i);
      grid.finish(i);
    }
    if (run.cell_done) run.cell_done(i, ran);
    if (ran) save();
  }
  save();
}

std::string format_table(const TextTable& t, bool markdown) {
  size_t n_cols = 0;
  for (const auto& r : t.rows) n_cols = std::max(n_cols, r.size());
  std::vector<size_t> width(n_cols, 0);
  for (const auto& r : t.rows)
    for (size_t k = 0; k < r.size(); ++k) width[k] = std::max(width[k], display_width(r[k]));
  if (markdown)  // room for the "--:" / "---" separators
    for (auto& w : width) w = std::max<size_t>(w, 3);
  auto right = [&](size_t k) { return k < t.right.size() && t.right[k]; };
  auto pad = [&](const std::string& s, size_t k) {
    const std::string fill(width[k] - display_width(s), ' ');
    return right(k) ? fill + s : s + fill;
  };
  std::string out;
  for (size_t ri = 0; ri < t.rows.size(); ++ri) {
    const auto& row = t.rows[ri];
    std::string line = markdown ? "|" : "";
    for (size_t k = 0; k < row.size(); ++k) {
      if (markdown)
        line += " " + pad(row[k], k) + " |";
      else
        line += (k ? t.gap : "") + pad(row[k], k);
    }
    while (!markdown && !line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
    if (markdown && ri == 0) {
      std::string sep = "|";
      for (size_t k = 0; k < width.size(); ++k)
        sep += right(k) ? " " + std::string(width[k] - 1, '-') + ": |"
                        : " " + std::string(width[k], '-') + " |";
      out += sep + "\n";
    }
  }
  return out;
}

}  // namespace lc::eval
