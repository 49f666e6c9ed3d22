// Shows an evaluation's progress (what src/eval reports through its callback) on stderr.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "app/common.h"
#include "eval/grid.h"

namespace lc::app {

// Notes and finished cells one line each; the advancing count as Progress shows it (labelled
// `label`); status lines replacing each other on a terminal only.
class EvalProgressPrinter {
 public:
  explicit EvalProgressPrinter(std::string label);
  void operator()(const eval::GridProgress& p);
  // Ends a status line left open on a terminal.
  void finish();

 private:
  std::string label_;
  bool tty_;
  bool open_ = false;
  std::unique_ptr<Progress> progress_;
};

// "<prefix>: figure a.svg, a.png" on stderr when any figure files were written.
void announce_figures(const std::string& prefix, const std::vector<std::string>& files);

}  // namespace lc::app
