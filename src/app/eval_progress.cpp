#include "app/eval_progress.h"

#include <unistd.h>

#include <iostream>

namespace lc::app {

EvalProgressPrinter::EvalProgressPrinter(std::string label)
    : label_(std::move(label)), tty_(isatty(STDERR_FILENO) != 0) {}

void EvalProgressPrinter::operator()(const eval::GridProgress& p) {
  using Kind = eval::GridProgress::Kind;
  switch (p.kind) {
    case Kind::Note:
      if (open_ && tty_) std::cerr << "\n";
      open_ = false;
      std::cerr << p.text << "\n" << std::flush;
      break;
    case Kind::Advance:
      if (!progress_) progress_ = std::make_unique<Progress>(label_, p.total, p.unit);
      progress_->update(p.done, p.text);
      open_ = true;
      break;
    case Kind::Status:
      if (!tty_) break;
      std::cerr << "\r" << p.text << "\033[K" << std::flush;
      open_ = true;
      break;
    case Kind::CellDone:
      std::cerr << (tty_ ? "\r" : "") << p.text << (tty_ ? "\033[K\n" : "\n") << std::flush;
      open_ = false;
      break;
  }
}

void EvalProgressPrinter::finish() {
  if (open_ && tty_) std::cerr << "\n";
  open_ = false;
}

void announce_figures(const std::string& prefix, const std::vector<std::string>& files) {
  if (files.empty()) return;
  std::cerr << prefix << ": figure ";
  for (size_t i = 0; i < files.size(); ++i) std::cerr << (i ? ", " : "") << files[i];
  std::cerr << "\n";
}

}  // namespace lc::app
