#include "eval/ppl_curve.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iterator>
#include <map>

#include "core/error.h"
#include "engine/perplexity.h"
#include "engine/session.h"
#include "eval/machine.h"
#include "eval/text_format.h"
#include "model/rope/rope_config.h"

namespace lc::eval {

using nlohmann::json;

double curve_scale(int64_t length, int64_t orig_ctx) {
  LC_CHECK(orig_ctx > 0);
  return std::max(1.0, static_cast<double>(length) / static_cast<double>(orig_ctx));
}

namespace {

struct Cell {
  size_t config = 0;
  int64_t length = 0;
  double scale = 1;
  std::string flags;  // substituted
  SessionOptions session;
  int64_t windows = 0;             // planned; 0 = the text is shorter than one window
  std::string status = "pending";  // pending, ok, too_short, error
  std::string error;
  PplResult r;
  double seconds = 0;
};

std::string cell_text(const Cell& c) {
  if (c.status == "ok") return format_ppl(c.r.ppl, c.r.stderr_ppl);
  if (c.status == "too_short") return "n/a (text too short)";
  if (c.status == "error") return "error";
  return "-";
}

std::string file_name_json(const json& v) {
  return v.is_string() ? std::filesystem::path(v.get<std::string>()).filename().string() : "";
}

}  // namespace

struct PplCurveEval::Impl {
  std::shared_ptr<const Model> model;
  PplCurveSettings s;
  std::vector<PplCurveConfig> configs;
  std::string model_path, text_path;
  std::vector<int32_t> tokens;
  int64_t n_tokens = 0, orig_ctx = 0, model_bytes = 0;
  json machine;
  Grid grid;
  std::vector<Cell> cells;  // length-major: all configs at lengths[0], then lengths[1], ...
  std::unique_ptr<Checkpoint> checkpoint;

  json to_json() const {
    json j;
    j["model"] = model_path;
    j["model_bytes"] = model_bytes;
    j["machine"] = machine;
    j["file"] = text_path;
    j["n_tokens"] = n_tokens;
    j["orig_ctx"] = orig_ctx;
    j["chunks"] = s.chunks;
    j["lengths"] = s.lengths;
    j["complete"] = grid.complete();
    j["configs"] = json::array();
    for (const auto& c : configs) j["configs"].push_back({{"name", c.name}, {"flags", c.flags}});
    j["cells"] = json::array();
    for (const Cell& c : cells) {
      json e;
      e["config"] = configs[c.config].name;
      e["ctx"] = c.length;
      e["scale"] = c.scale;
      e["flags"] = c.flags;
      e["rope"] = rope_summary(c.session.rope);
      e["memory"] = describe_memory(c.session.memory);
      e["status"] = c.status;
      if (c.status == "ok") {
        e["ppl"] = c.r.ppl;
        e["stderr"] = c.r.stderr_ppl;
        e["mean_nll"] = c.r.mean_nll;
        e["windows"] = c.r.windows;
        e["tokens_scored"] = c.r.tokens_scored;
        e["tokens_per_s"] = c.r.tokens_per_s;
        e["seconds"] = c.seconds;
      } else if (c.status == "too_short") {
        e["reason"] =
            cat("the text has ", n_tokens, " tokens, fewer than one window of ", c.length);
      } else if (c.status == "error") {
        e["reason"] = c.error;
      }
      j["cells"].push_back(e);
    }
    return j;
  }

  // Copies the finished cells of an earlier run into this one after checking that it measured
  // the same thing. Returns the number of cells kept.
  size_t resume_from(const std::string& path, const json& old) {
    const json now = to_json();
    auto inputs = [](const json& j) {
      json in;
      in["model"] = file_name_json(j.value("model", json()));
      in["file"] = file_name_json(j.value("file", json()));
      for (const char* key : {"n_tokens", "orig_ctx", "chunks"}) in[key] = j.value(key, json());
      return in;
    };
    require_same_inputs(path, inputs(old), inputs(now));
    size_t kept = 0;
    try {
      for (const auto& e : old["cells"]) {
        if (e.at("status").get<std::string>() != "ok") continue;
        for (size_t i = 0; i < cells.size(); ++i) {
          Cell& c = cells[i];
          if (c.status != "pending" || configs[c.config].name != e.at("config") ||
              c.length != e.at("ctx").get<int64_t>() || c.flags != e.at("flags"))
            continue;
          c.r.ppl = e.at("ppl").get<double>();
          c.r.stderr_ppl = e.at("stderr").get<double>();
          c.r.mean_nll = e.at("mean_nll").get<double>();
          c.r.windows = e.at("windows").get<int64_t>();
          c.r.tokens_scored = e.at("tokens_scored").get<int64_t>();
          c.r.tokens_per_s = e.at("tokens_per_s").get<double>();
          c.seconds = e.at("seconds").get<double>();
          c.status = "ok";
          grid.resume(i);
          ++kept;
        }
      }
    } catch (const json::exception& e) {
      fail_setting({"resume"}, "resume file '", path, "': a cell is malformed: ", e.what());
    }
    return kept;
  }
};

namespace {

// Progress: "cell i of n", windows, tok/s, elapsed and ETA. The ETA uses the measured seconds
// per token at each length (attention makes long windows slower per token), else the latest
// rate measured.
class CurveProgress {
 public:
  CurveProgress(const std::vector<Cell>& cells, const std::vector<PplCurveConfig>& configs,
                int64_t n_tokens)
      : cells_(cells),
        configs_(configs),
        n_tokens_(n_tokens),
        t0_(std::chrono::steady_clock::now()) {}

  double elapsed() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  }

  std::string head(size_t i) const {
    const Cell& c = cells_[i];
    return cat("ppl-curve: cell ", i + 1, "/", cells_.size(), " ", configs_[c.config].name, " @ ",
               c.length, " (s=", format_number(c.scale), ")");
  }

  // Seconds left: the rest of cell i (windows_done of its windows finished) and every later cell.
  double eta(size_t i, int64_t windows_done) const {
    const Cell& cur = cells_[i];
    double cur_rate = 0;  // seconds per token in cell i so far
    if (windows_done > 0) {
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - cell_t0_).count();
      cur_rate = secs / static_cast<double>(windows_done * cur.length);
    }
    // Seconds per token grow about linearly with the window (attention reads L/2 keys on
    // average): a length not measured yet is extrapolated from the two longest measured ones.
    std::map<int64_t, double> known = rate_;
    if (cur_rate > 0 && !known.count(cur.length)) known[cur.length] = cur_rate;
    auto rate_for = [&](int64_t L) {
      if (auto it = known.find(L); it != known.end()) return it->second;
      if (known.empty()) return 0.0;
      auto hi = std::prev(known.end());
      if (known.size() == 1) return hi->second;
      auto lo = std::prev(hi);
      const double slope =
          std::max(0.0, (hi->second - lo->second) / static_cast<double>(hi->first - lo->first));
      return std::max(lo->second, hi->second + slope * static_cast<double>(L - hi->first));
    };
    double left = static_cast<double>((cur.windows - windows_done) * cur.length) *
                  (cur_rate > 0 ? cur_rate : rate_for(cur.length));
    for (size_t k = i + 1; k < cells_.size(); ++k) {
      const Cell& c = cells_[k];
      if (c.status == "pending")
        left += static_cast<double>(c.windows * c.length) * rate_for(c.length);
    }
    return left;
  }

  void start() { cell_t0_ = std::chrono::steady_clock::now(); }

  std::string window(size_t i, int64_t done, int64_t total, double tps) const {
    char buf[160];
    std::snprintf(buf, sizeof buf, ": %lld/%lld windows, %.0f tok/s, %s elapsed, ETA %s",
                  static_cast<long long>(done), static_cast<long long>(total), tps,
                  format_duration(elapsed()).c_str(), format_duration(eta(i, done)).c_str());
    return head(i) + buf;
  }

  std::string done(size_t i) {
    const Cell& c = cells_[i];
    if (c.status == "ok" && c.r.windows > 0) {
      const double secs_per_tok = c.seconds / static_cast<double>(c.r.windows * c.length);
      rate_[c.length] = secs_per_tok;
    }
    std::string what;
    if (c.status == "ok")
      what = cat("ppl ", format_ppl(c.r.ppl, c.r.stderr_ppl), ", ", c.r.windows, " windows, ",
                 std::llround(c.r.tokens_per_s), " tok/s");
    else if (c.status == "too_short")
      what = cat("not run: the text has ", n_tokens_, " tokens, fewer than one window");
    else
      what = "failed: " + c.error;
    return cat(head(i), ": ", what, "; ", format_duration(elapsed()), " elapsed, ETA ",
               format_duration(eta(i, c.windows)));
  }

 private:
  const std::vector<Cell>& cells_;
  const std::vector<PplCurveConfig>& configs_;
  int64_t n_tokens_;
  std::chrono::steady_clock::time_point t0_, cell_t0_;
  std::map<int64_t, double> rate_;  // length -> seconds per token
};

}  // namespace

PplCurveEval::PplCurveEval(std::shared_ptr<const Model> model, int64_t trained_ctx,
                           const std::string& model_path, const std::string& text_path,
                           const std::string& text, PplCurveSettings settings,
                           std::vector<PplCurveConfig> configs)
    : impl_(std::make_unique<Impl>()) {
  Impl& r = *impl_;
  r.model = std::move(model);
  r.s = std::move(settings);
  r.configs = std::move(configs);
  r.model_path = model_path;
  r.text_path = text_path;
  if (r.s.chunks < 0)
    fail_setting({"ppl_curve.chunks"}, "ppl_curve.chunks must be >= 0, got ", r.s.chunks);
  if (r.s.orig_ctx < 0)
    fail_setting({"ppl_curve.orig_ctx"}, "ppl_curve.orig_ctx must be > 0, got ", r.s.orig_ctx);
  if (r.s.lengths.empty()) fail_setting({"ppl_curve.lengths"}, "ppl_curve.lengths is empty");
  for (int64_t L : r.s.lengths)
    if (L < 4)
      fail_setting({"ppl_curve.lengths"}, "ppl_curve.lengths: ", L,
                   " is too short; a window needs at least 4 tokens");
  if (r.configs.empty()) fail_setting({"ppl_curve.configs"}, "ppl_curve.configs is empty");
  {
    std::error_code ec;
    const auto bytes = std::filesystem::file_size(model_path, ec);
    r.model_bytes = ec ? 0 : static_cast<int64_t>(bytes);
  }
  r.machine = machine_json();
  r.orig_ctx = r.s.orig_ctx > 0 ? r.s.orig_ctx : trained_ctx;
  if (r.orig_ctx <= 0)
    fail_setting({"ppl_curve.orig_ctx"}, model_path,
                 ": the trained context length is unknown; set ppl_curve.orig_ctx");

  r.tokens = r.model->tokenizer().encode(text, true);
  r.n_tokens = static_cast<int64_t>(r.tokens.size());

  // Each cell gets what a session built from the same settings would: RoPE from GGUF <
  // config.json < the configuration, then its memory.
  r.grid = Grid(r.s.lengths.size(), r.configs.size());
  for (int64_t L : r.s.lengths) {
    for (size_t ci = 0; ci < r.configs.size(); ++ci) {
      const PplCurveConfig& cfg = r.configs[ci];
      const std::string what = cat("config '", cfg.name, "' at length ", L);
      Cell c;
      c.config = ci;
      c.length = L;
      c.scale = curve_scale(L, r.orig_ctx);
      const PplCurveCellSpec cs = cfg.at(L, r.orig_ctx);
      c.flags = cs.flags;
      try {
        c.session = resolve_session(*r.model, cs.spec);
      } catch (const Error& e) {
        const std::string msg = e.what();
        if (msg.rfind(what, 0) == 0) throw;
        fail(what, " (flags \"", c.flags, "\"): ", msg);
      }
      c.windows = r.n_tokens / L;
      if (r.s.chunks > 0) c.windows = std::min(c.windows, r.s.chunks);
      if (c.windows == 0) {
        c.status = "too_short";
        r.grid.finish(r.cells.size());
      }
      r.cells.push_back(std::move(c));
    }
  }
}

PplCurveEval::~PplCurveEval() = default;

int64_t PplCurveEval::n_tokens() const { return impl_->n_tokens; }
int64_t PplCurveEval::orig_ctx() const { return impl_->orig_ctx; }
size_t PplCurveEval::cells() const { return impl_->cells.size(); }

const SessionOptions& PplCurveEval::session(size_t length_index, size_t config) const {
  return impl_->cells[impl_->grid.index(length_index, config)].session;
}

size_t PplCurveEval::failed() const {
  return static_cast<size_t>(std::count_if(impl_->cells.begin(), impl_->cells.end(),
                                           [](const Cell& c) { return c.status == "error"; }));
}

nlohmann::json PplCurveEval::results() const { return impl_->to_json(); }

std::vector<std::string> PplCurveEval::figure_files() const {
  return impl_->checkpoint ? impl_->checkpoint->figure_files() : std::vector<std::string>{};
}

void PplCurveEval::run(const CheckpointFiles& files, const GridProgressFn& progress) {
  Impl& r = *impl_;
  auto report = [&](GridProgress::Kind kind, const std::string& text) {
    if (progress) progress({kind, text, 0, 0, ""});
  };
  report(GridProgress::Kind::Note,
         cat("ppl-curve: ", r.cells.size(), " cells (", r.configs.size(), " configurations x ",
             r.s.lengths.size(), " lengths), ", r.n_tokens, " tokens, trained context ", r.orig_ctx,
             (r.s.chunks > 0 ? cat(", at most ", r.s.chunks, " windows per cell") : "")));
  r.checkpoint = std::make_unique<Checkpoint>(files);
  if (!files.resume.empty()) {
    size_t kept = 0;
    if (auto earlier = read_earlier_run(files.resume, ResultKind::PplCurve))
      kept = r.resume_from(files.resume, *earlier);
    report(GridProgress::Kind::Note, cat("ppl-curve: resuming ", files.resume, ": ", kept, " of ",
                                         r.cells.size(), " cells already measured"));
  }

  CurveProgress prog(r.cells, r.configs, r.n_tokens);
  GridRun run;
  run.results = [&] { return r.to_json(); };
  run.run_cell = [&](size_t i) {
    Cell& c = r.cells[i];
    prog.start();
    const auto t0 = std::chrono::steady_clock::now();
    try {
      Session s(r.model, c.session);
      PplOptions po;
      po.ctx = c.length;
      po.max_windows = r.s.chunks;
      po.progress = [&](int64_t done, int64_t total, double tps) {
        report(GridProgress::Kind::Status, prog.window(i, done, total, tps));
      };
      c.r = perplexity(s, r.tokens, po);
      c.status = "ok";
    } catch (const Error& e) {
      c.status = "error";
      c.error = e.what();
    }
    c.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  run.cell_done = [&](size_t i, bool) { report(GridProgress::Kind::CellDone, prog.done(i)); };
  run_grid(r.grid, *r.checkpoint, run, progress);
}

std::string PplCurveEval::table(bool markdown) const {
  const Impl& r = *impl_;
  std::string out;
  if (!markdown)
    out += cat("perplexity (\xC2\xB1 standard error) by context length: ", r.text_path, ", ",
               r.n_tokens, " tokens, model ", r.model_path, ", trained context ", r.orig_ctx, "\n");
  TextTable t;
  t.gap = "   ";
  std::vector<std::string> head = {"ctx", "s"};
  for (const auto& c : r.configs) head.push_back(c.name);
  t.rows.push_back(head);
  t.right.assign(head.size(), false);
  t.right[0] = t.right[1] = true;
  for (size_t li = 0; li < r.s.lengths.size(); ++li) {
    std::vector<std::string> row = {std::to_string(r.s.lengths[li]),
                                    format_number(curve_scale(r.s.lengths[li], r.orig_ctx))};
    for (size_t ci = 0; ci < r.configs.size(); ++ci)
      row.push_back(cell_text(r.cells[r.grid.index(li, ci)]));
    t.rows.push_back(row);
  }
  out += format_table(t, markdown);
  // Cells that did not run, said plainly.
  for (const Cell& c : r.cells) {
    if (c.status == "too_short") {
      out += cat(markdown ? "\n" : "", "n/a: the text has ", r.n_tokens,
                 " tokens, fewer than one window at that length (ctx");
      for (int64_t L : r.s.lengths)
        if (L > r.n_tokens) out += cat(" ", L);
      out += ")\n";
      break;
    }
  }
  for (const Cell& c : r.cells)
    if (c.status == "error")
      out += cat(markdown ? "\n" : "", "error: ", r.configs[c.config].name, " at ", c.length, ": ",
                 c.error, "\n");
  return out;
}

}  // namespace lc::eval
