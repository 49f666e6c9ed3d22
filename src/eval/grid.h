// The grid runner the evaluations share: cells over lengths x columns (configurations or needle
// depths), a results file rewritten after every cell (with its figure beside it), resuming from
// an earlier run's file, progress through a callback, and the text table.
//
// Nothing here prints: progress goes to a GridProgressFn that the front end shows as it likes.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "eval/results.h"

namespace lc::eval {

// What a running grid reports.
struct GridProgress {
  enum class Kind {
    Note,      // a line of its own
    Advance,   // `done` of `total` units of work (`unit`), with `text` saying where the run is
    Status,    // a line that the next one replaces (worth showing on a terminal only)
    CellDone,  // a finished cell, one line
  };
  Kind kind = Kind::Note;
  std::string text;
  int64_t done = 0, total = 0;
  std::string unit;
};
using GridProgressFn = std::function<void(const GridProgress&)>;

// The cells: rows = lengths, columns = configurations or depths, length-major (cell i is at row
// i / columns, column i % columns). A cell is pending until it is finished: run in this run,
// needing no run (e.g. a text too short for its length), or kept from an earlier run.
class Grid {
 public:
  Grid() = default;
  Grid(size_t rows, size_t columns);

  size_t rows() const { return rows_; }
  size_t columns() const { return columns_; }
  size_t size() const { return state_.size(); }
  size_t index(size_t row, size_t column) const;
  size_t row(size_t i) const { return i / columns_; }
  size_t column(size_t i) const { return i % columns_; }

  bool done(size_t i) const { return state_.at(i) != State::Pending; }
  bool resumed(size_t i) const { return state_.at(i) == State::Resumed; }
  void finish(size_t i) { state_.at(i) = State::Finished; }
  void resume(size_t i) { state_.at(i) = State::Resumed; }

  std::vector<size_t> pending() const;
  size_t resumed_count() const;
  bool complete() const;

 private:
  enum class State { Pending, Finished, Resumed };
  size_t rows_ = 0, columns_ = 0;
  std::vector<State> state_;
};

// Where a run keeps its results: the results file (rewritten after every cell; "" = none), the
// figure (an SVG, a PNG beside it when rsvg-convert is on PATH; "" = none) and the file of an
// earlier run whose finished cells are kept ("" = none).
struct CheckpointFiles {
  std::string results, figure, resume;
};
// The files of a run from what a front end was given: the results file is `json_path`, else
// `resume_path` (a resumed run keeps writing the file it resumed); the figure is figure_path().
CheckpointFiles checkpoint_files(const std::string& json_path, const std::string& svg_path,
                                 const std::string& resume_path);

// Writes the results file (atomically) and its figure.
class Checkpoint {
 public:
  explicit Checkpoint(const CheckpointFiles& files);
  // Returns the figure's warning when it could not be converted to PNG (said once), else "".
  std::string write(const nlohmann::json& results);
  // The figure files written so far.
  std::vector<std::string> figure_files() const { return figure_.written(); }

 private:
  std::string results_path_;
  FigureWriter figure_;
};

// The results file of an earlier run to resume from: nullopt when `path` does not exist yet.
// lc::Error (setting "resume") when it cannot be read or is not a results file of `kind`.
std::optional<nlohmann::json> read_earlier_run(const std::string& path, ResultKind kind);

// lc::Error (setting "resume") when an earlier run had other inputs: for every key of `now`, the
// earlier run's value (null when missing) must be the same.
void require_same_inputs(const std::string& path, const nlohmann::json& earlier,
                         const nlohmann::json& now);

// One evaluation's part of a grid run.
struct GridRun {
  std::function<void(size_t cell)> run_cell;             // runs a pending cell
  std::function<void(size_t cell, bool ran)> cell_done;  // after each cell, run or not
  std::function<nlohmann::json()> results;               // the results file as it stands
};
// Goes through every cell in order: a pending one is run (run_cell(), then marked finished) and
// the checkpoint rewritten; cell_done() is called for each. The checkpoint is rewritten once more
// at the end. A figure that could not be converted is reported as a note.
void run_grid(Grid& grid, Checkpoint& checkpoint, const GridRun& run,
              const GridProgressFn& progress);

// A table of text: the first row is the header.
struct TextTable {
  std::vector<std::vector<std::string>> rows;
  std::vector<bool> right;  // per column: aligned right (else left)
  std::string gap = "  ";   // between columns in the plain form
};
// Plain: every column as wide as its widest entry (in characters), trailing spaces dropped; one
// line per row. Markdown: a pipe table, its separator row marking right-aligned columns "--:".
std::string format_table(const TextTable& t, bool markdown = false);

}  // namespace lc::eval
