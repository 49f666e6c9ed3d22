#include "eval/passkey_eval.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "engine/generate.h"
#include "engine/retrieval_trace_file.h"
#include "engine/session.h"
#include "eval/machine.h"
#include "eval/text_format.h"
#include "model/tokenizer/chat_template.h"

namespace lc::eval {

namespace {

using nlohmann::json;

struct Trial {
  std::string key, answer;
  bool correct = false;
  int64_t tokens = 0, needle_pos = 0;
  bool assembled = true;
  double prompt_seconds = 0, gen_seconds = 0;
  // Block memories: per layer, the answer steps (the prompt's last token and each generated one)
  // whose retrieval attended a block of the needle, of how many.
  std::vector<int64_t> needle_hits, needle_steps;
};

// Records, per layer, whether the answer steps' retrieval attended the needle's blocks, and
// passes every event on to the session's own trace (a file) when there is one.
class NeedleRecorder final : public RetrievalTrace {
 public:
  explicit NeedleRecorder(std::shared_ptr<RetrievalTrace> next) : next_(std::move(next)) {}
  bool wants_ranks() const override { return next_ && next_->wants_ranks(); }
  bool wants_scores() const override { return next_ && next_->wants_scores(); }
  void start(int64_t needle_first, int64_t needle_last, int64_t answer_from,
             const std::string& label) {
    set_needle(needle_first, needle_last);
    if (next_) next_->set_needle(needle_first, needle_last);
    answer_from_ = answer_from;
    hits_.clear();
    steps_.clear();
    if (auto* f = dynamic_cast<RetrievalTraceFile*>(next_.get())) f->note(label);
  }
  void record(const RetrievalEvent& e) override {
    if (next_) next_->record(e);
    if (e.pos < answer_from_) return;
    const auto l = static_cast<size_t>(e.layer);
    if (hits_.size() <= l) {
      hits_.resize(l + 1, 0);
      steps_.resize(l + 1, 0);
    }
    bool hit = false;
    for (const RetrievalEvent::Needle& n : e.needle) hit = hit || n.chosen;
    hits_[l] += hit;
    ++steps_[l];
  }
  const std::vector<int64_t>& hits() const { return hits_; }
  const std::vector<int64_t>& steps() const { return steps_; }

 private:
  std::shared_ptr<RetrievalTrace> next_;
  int64_t answer_from_ = 0;
  std::vector<int64_t> hits_, steps_;
};

struct Cell {
  int64_t length = 0;
  double depth = 0;
  std::vector<Trial> trials;
  double seconds = 0;

  int64_t correct() const {
    int64_t n = 0;
    for (const Trial& t : trials) n += t.correct;
    return n;
  }
  double accuracy() const {
    return trials.empty() ? 0 : static_cast<double>(correct()) / static_cast<double>(trials.size());
  }
};

// Relative prefill cost of a prompt, for the ETA: each token costs its matrix products plus
// attention over the positions it sees (all of them for full memory, at most `span` otherwise).
// K is the context length at which a token's attention costs as much as its matrix products: a
// third of the flop break-even d + d_kv + 1.5 d_ff, as attention runs at lower efficiency
// (measured with passkey-llama-tiny at 1k-16k).
struct CostModel {
  double k = 1024;
  int64_t span = 0;  // 0 = unbounded (full memory)

  CostModel(const HParams& hp, const MemoryConfig& mc) {
    const double d = hp.n_embd, kv = static_cast<double>(hp.n_head_kv) * hp.head_dim;
    if (d > 0) k = std::max(1.0, (d + kv + 1.5 * hp.n_ff) / 3);
    if (mc.policy != MemoryPolicy::Full) {
      span = mc.ctx.n_init + mc.ctx.n_local;
      if (mc.policy == MemoryPolicy::InfLLM) span += mc.ctx.topk * mc.ctx.block_size;
    }
  }
  // Cost of the first m tokens of a prompt.
  double operator()(double m) const {
    const double quad = span == 0 || m <= static_cast<double>(span) ? m : static_cast<double>(span);
    double attn = quad * quad / 2;
    if (span > 0 && m > static_cast<double>(span))
      attn += (m - static_cast<double>(span)) * static_cast<double>(span);
    return m + attn / k;
  }
};

json cell_json(const Cell& c) {
  json e;
  e["length"] = c.length;
  e["depth"] = c.depth;
  int64_t lo = 0, hi = 0, sum = 0;
  for (size_t i = 0; i < c.trials.size(); ++i) {
    const int64_t n = c.trials[i].tokens;
    lo = i ? std::min(lo, n) : n;
    hi = i ? std::max(hi, n) : n;
    sum += n;
  }
  const auto n = static_cast<int64_t>(c.trials.size());
  e["tokens"] = n ? (sum + n / 2) / n : 0;
  e["tokens_min"] = lo;
  e["tokens_max"] = hi;
  e["trials"] = n;
  e["correct"] = c.correct();
  const double p = c.accuracy();
  e["accuracy"] = p;
  e["stderr"] = n ? std::sqrt(p * (1 - p) / static_cast<double>(n)) : 0.0;
  e["seconds"] = c.seconds;
  e["answers"] = json::array();
  for (size_t i = 0; i < c.trials.size(); ++i) {
    const Trial& t = c.trials[i];
    e["answers"].push_back({{"trial", i},
                            {"key", t.key},
                            {"answer", valid_utf8(t.answer)},
                            {"correct", t.correct},
                            {"tokens", t.tokens},
                            {"needle_pos", t.needle_pos},
                            {"assembled", t.assembled},
                            {"prompt_seconds", t.prompt_seconds},
                            {"gen_seconds", t.gen_seconds}});
    if (!t.needle_steps.empty()) {
      // Per layer: did the answer's retrieval attend the needle (all steps / some / none)?
      json& a = e["answers"].back();
      a["needle_retrieved"] = json::array();
      for (size_t l = 0; l < t.needle_steps.size(); ++l)
        a["needle_retrieved"].push_back(
            {{"layer", l}, {"steps", t.needle_steps[l]}, {"with_needle", t.needle_hits[l]}});
    }
  }
  return e;
}

Cell cell_from_json(const json& e) {
  Cell c;
  c.length = e.at("length").get<int64_t>();
  c.depth = e.at("depth").get<double>();
  c.seconds = e.value("seconds", 0.0);
  for (const json& a : e.at("answers")) {
    Trial t;
    t.key = a.at("key").get<std::string>();
    t.answer = a.at("answer").get<std::string>();
    t.correct = passkey_correct(t.answer, t.key);
    t.tokens = a.value("tokens", int64_t{0});
    t.needle_pos = a.value("needle_pos", int64_t{0});
    t.assembled = a.value("assembled", true);
    t.prompt_seconds = a.value("prompt_seconds", 0.0);
    t.gen_seconds = a.value("gen_seconds", 0.0);
    if (a.contains("needle_retrieved"))
      for (const json& l : a.at("needle_retrieved")) {
        t.needle_steps.push_back(l.value("steps", int64_t{0}));
        t.needle_hits.push_back(l.value("with_needle", int64_t{0}));
      }
    c.trials.push_back(std::move(t));
  }
  return c;
}

}  // namespace

void check_passkey_settings(const PasskeySettings& s) {
  if (s.trials < 1) fail_setting({"passkey.trials"}, "passkey.trials must be >= 1, got ", s.trials);
  if (s.n_predict < 1) fail_setting({"n_predict"}, "n_predict must be >= 1, got ", s.n_predict);
  if (s.seed < 0) fail_setting({"passkey.seed"}, "passkey.seed must be >= 0, got ", s.seed);
}

struct PasskeyEval::Impl {
  std::shared_ptr<const Model> model;
  SessionOptions session;
  PasskeySettings s;
  PasskeyFormat fmt = PasskeyFormat::Landmark;
  PasskeyConfig cfg;
  std::unique_ptr<PasskeyBuilder> builder;

  // The run: its settings (what a resumed run must match), the grid, and cells from an earlier
  // run outside the grid (kept in the file).
  json settings, machine;
  std::string model_path, model_name, resume_path;
  Grid grid;
  std::vector<Cell> cells;  // length-major
  std::vector<Cell> others;
  double seconds = 0;         // all runs
  double run_seconds = 0;     // this run
  int64_t prompt_tokens = 0;  // this run
  size_t ran = 0;             // cells run this run
  std::unique_ptr<Checkpoint> checkpoint;

  json to_json() const {
    json j;
    j["model_path"] = model_path;
    j["settings"] = settings;
    j["machine"] = machine;
    j["lengths"] = s.lengths;
    j["depths"] = s.depths;
    j["complete"] = grid.complete();
    j["seconds"] = seconds;
    std::vector<const Cell*> all;
    for (size_t i = 0; i < cells.size(); ++i)
      if (grid.done(i)) all.push_back(&cells[i]);
    for (const Cell& c : others) all.push_back(&c);
    std::sort(all.begin(), all.end(), [](const Cell* a, const Cell* b) {
      return a->length != b->length ? a->length < b->length : a->depth < b->depth;
    });
    j["cells"] = json::array();
    for (const Cell* c : all) j["cells"].push_back(cell_json(*c));
    return j;
  }

  // Keeps the finished cells of an earlier run; lc::Error when its settings differ.
  void resume_from(const std::string& path, const json& j) {
    require_same_inputs(path, j["settings"], settings);
    try {
      for (const json& e : j["cells"]) {
        Cell c = cell_from_json(e);
        auto it = std::find_if(cells.begin(), cells.end(), [&](const Cell& g) {
          return g.length == c.length && std::abs(g.depth - c.depth) < 1e-9;
        });
        if (it != cells.end()) {
          grid.resume(static_cast<size_t>(it - cells.begin()));
          *it = std::move(c);
        } else {
          others.push_back(std::move(c));
        }
      }
    } catch (const json::exception& e) {
      fail_setting({"resume"}, "resume file '", path, "': a cell is malformed: ", e.what());
    }
    seconds = j.value("seconds", 0.0);
  }
};

PasskeyEval::PasskeyEval(std::shared_ptr<const Model> model, const SessionOptions& session,
                         const std::string& model_path, PasskeySettings settings)
    : impl_(std::make_unique<Impl>()) {
  Impl& r = *impl_;
  check_passkey_settings(settings);
  if (settings.lengths.empty()) fail_setting({"passkey.lengths"}, "passkey.lengths is empty");
  if (settings.depths.empty()) fail_setting({"passkey.depths"}, "passkey.depths is empty");
  r.model = std::move(model);
  r.session = session;
  r.s = std::move(settings);
  const PasskeySettings& s = r.s;
  const Tokenizer& tok = r.model->tokenizer();
  const bool has_template = !tok.chat_template().empty() || !s.chat_template.empty();
  r.fmt = s.format
              ? *s.format
              : (has_template && s.chat ? PasskeyFormat::InfiniteBench : PasskeyFormat::Landmark);
  r.cfg.format = r.fmt;
  if (!s.chat_template.empty() && (r.fmt != PasskeyFormat::InfiniteBench || !s.chat))
    fail_setting({"passkey.chat_template"},
                 "passkey.chat_template applies to the infinitebench format only (and not with "
                 "passkey.chat off)");
  if (r.fmt == PasskeyFormat::InfiniteBench && s.chat && has_template) {
    if (!s.chat_template.empty()) {
      r.cfg.chat = chat_format_from_name(s.chat_template);
    } else {
      try {
        r.cfg.chat = detect_chat_format(tok.chat_template());
      } catch (const Error& e) {
        fail_setting({"passkey.chat_template", "passkey.chat"}, e.what(),
                     "; name the family with passkey.chat_template, or turn passkey.chat off");
      }
    }
  }
  if (!s.filler_name.empty()) r.cfg.filler = passkey_split_filler(s.filler_text);
  if (s.separator == "space")
    r.cfg.separator = " ";
  else if (s.separator != "newline")
    fail_setting({"passkey.separator"}, "passkey.separator must be newline or space, got '",
                 s.separator, "'");
  if (s.separator != "newline" && r.fmt != PasskeyFormat::Landmark)
    fail_setting({"passkey.separator"}, "passkey.separator applies to the landmark format only");
  r.builder = std::make_unique<PasskeyBuilder>(tok, r.cfg);

  // The longest keys of the format give the shortest room for filler.
  const std::string longest_key = r.fmt == PasskeyFormat::InfiniteBench ? "00000" : "50000";
  const int64_t least = r.builder->min_tokens(longest_key);
  for (int64_t L : s.lengths)
    if (L < least)
      fail_setting({"passkey.lengths"}, "length ", L, " is too short: the ",
                   passkey_format_name(r.fmt), " prompt without filler already takes ", least,
                   " tokens");

  std::error_code ec;
  r.model_path = model_path;
  r.model_name = std::filesystem::path(model_path).filename().string();
  const auto model_bytes = std::filesystem::file_size(model_path, ec);
  r.settings = {
      {"model", r.model_name},
      {"model_bytes", ec ? 0 : model_bytes},
      {"format", passkey_format_name(r.fmt)},
      {"chat", r.cfg.chat ? json(chat_format_name(*r.cfg.chat)) : json(nullptr)},
      {"filler", s.filler_name.empty() ? "noise" : s.filler_name},
      {"filler_units", r.builder->n_units()},
      {"separator", s.separator},
      {"seed", s.seed},
      {"trials", s.trials},
      {"n_predict", s.n_predict},
      {"memory", describe_memory(session.memory)},
      {"rope", rope_summary(session.rope)},
      {"batch", session.batch},
  };
  r.machine = machine_json();
  r.grid = Grid(s.lengths.size(), s.depths.size());
  for (int64_t L : s.lengths)
    for (double d : s.depths) {
      Cell c;
      c.length = L;
      c.depth = d;
      r.cells.push_back(c);
    }
}

PasskeyEval::~PasskeyEval() = default;

int64_t PasskeyEval::longest_context() const {
  return *std::max_element(impl_->s.lengths.begin(), impl_->s.lengths.end()) + impl_->s.n_predict;
}

nlohmann::json PasskeyEval::results() const { return impl_->to_json(); }

std::vector<std::string> PasskeyEval::figure_files() const {
  return impl_->checkpoint ? impl_->checkpoint->figure_files() : std::vector<std::string>{};
}

void PasskeyEval::run(const CheckpointFiles& files, const GridProgressFn& progress) {
  Impl& r = *impl_;
  const PasskeySettings& s = r.s;
  auto note = [&](const std::string& text) {
    if (progress) progress({GridProgress::Kind::Note, text, 0, 0, ""});
  };
  r.checkpoint = std::make_unique<Checkpoint>(files);
  r.resume_path = files.resume;
  if (!files.resume.empty()) {
    if (auto earlier = read_earlier_run(files.resume, ResultKind::Passkey))
      r.resume_from(files.resume, *earlier);
    else
      note(cat("passkey: ", files.resume, " does not exist yet; starting afresh"));
  }
  const std::vector<size_t> pending = r.grid.pending();
  if (pending.size() < r.cells.size())
    note(cat("passkey: ", r.cells.size() - pending.size(), " of ", r.cells.size(),
             " cells already done in ", files.resume));
  note(cat("passkey: ", r.model_name, ", ", passkey_format_name(r.fmt), " format",
           (r.cfg.chat ? cat(" (", chat_format_name(*r.cfg.chat), " chat template)") : ""),
           ", filler ", r.settings["filler"].get<std::string>(), ", memory ",
           r.settings["memory"].get<std::string>(), ", rope ",
           r.settings["rope"].get<std::string>(), "; ", pending.size(), " cells x ", s.trials,
           " trials to run"));

  Session session(r.model, r.session);
  auto recorder = std::make_shared<NeedleRecorder>(session.retrieval_trace());
  session.set_retrieval_trace(recorder);
  GenerateOptions g;
  g.n_predict = s.n_predict;
  g.sampling.temperature = 0;  // greedy
  g.sampling.repeat_penalty = 1;

  // Progress in prompt tokens weighted by their attention cost (so the ETA holds when long
  // prompts are slower per token), scaled to the total token count.
  const CostModel cost(r.model->hparams(), r.session.memory);
  int64_t total_tokens = 0;
  double total_work = 0;
  for (size_t i : pending) {
    total_tokens += r.cells[i].length * s.trials;
    total_work += cost(static_cast<double>(r.cells[i].length)) * static_cast<double>(s.trials);
  }
  const double scale = total_work > 0 ? static_cast<double>(total_tokens) / total_work : 0;
  const auto t0 = std::chrono::steady_clock::now();
  const double earlier_seconds = r.seconds;
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  double done_work = 0;
  r.prompt_tokens = 0;
  r.ran = 0;

  GridRun run;
  run.results = [&] { return r.to_json(); };
  run.run_cell = [&](size_t i) {
    Cell& c = r.cells[i];
    const size_t pi = r.ran;
    const auto cell_t0 = std::chrono::steady_clock::now();
    for (int64_t t = 0; t < s.trials; ++t) {
      const uint64_t trial_seed =
          passkey_trial_seed(static_cast<uint64_t>(s.seed), c.length, c.depth, t);
      const PasskeyDraw draw = passkey_draw(r.fmt, r.builder->n_units(), trial_seed);
      const PasskeyPrompt p = r.builder->build(c.length, c.depth, draw);
      const auto n = static_cast<int64_t>(p.ids.size());
      auto show = [&](int64_t prefilled) {
        if (!progress) return;
        const double secs = elapsed();
        const double tps = secs > 0 ? static_cast<double>(r.prompt_tokens + prefilled) / secs : 0;
        char rate[48];
        std::snprintf(rate, sizeof rate, "%.0f tok/s", tps);
        const double part = n > 0 ? static_cast<double>(prefilled * c.length) / n : 0;
        progress({GridProgress::Kind::Advance,
                  cat("cell ", pi + 1, "/", pending.size(), " (length ", c.length, ", depth ",
                      format_number(c.depth), ", trial ", t + 1, "/", s.trials, "), ", rate),
                  std::llround((done_work + cost(part)) * scale), total_tokens, "weighted tokens"});
      };
      show(0);
      session.reset();
      recorder->start(
          p.needle_pos, p.needle_pos + p.needle_tokens, n - 1,
          cat("{\"trial\":{\"length\":", c.length, ",\"depth\":", c.depth, ",\"trial\":", t,
              ",\"key\":\"", p.key, "\",\"tokens\":", n, ",\"needle_pos\":", p.needle_pos, "}}"));
      const GenerateResult gr =
          generate(session, p.ids, g, {}, [&](int64_t done, int64_t) { show(done); });
      Trial tr;
      tr.key = p.key;
      tr.answer = gr.text;
      tr.correct = passkey_correct(gr.text, p.key);
      tr.tokens = n;
      tr.needle_pos = p.needle_pos;
      tr.assembled = p.assembled;
      tr.prompt_seconds = gr.prompt_seconds;
      tr.gen_seconds = gr.gen_seconds;
      tr.needle_hits = recorder->hits();
      tr.needle_steps = recorder->steps();
      c.trials.push_back(std::move(tr));
      done_work += cost(static_cast<double>(c.length));
      r.prompt_tokens += n;
    }
    c.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - cell_t0).count();
    r.seconds = earlier_seconds + elapsed();
    ++r.ran;
  };
  run.cell_done = [&](size_t i, bool ran) {
    if (!ran || !progress) return;
    const Cell& c = r.cells[i];
    progress({GridProgress::Kind::CellDone,
              cat("passkey: cell ", r.ran, "/", pending.size(), ": length ", c.length, ", depth ",
                  format_number(c.depth), ": ", c.correct(), "/", c.trials.size(), " correct, ",
                  format_duration(c.seconds)),
              0, 0, ""});
  };
  run_grid(r.grid, *r.checkpoint, run, progress);
  r.run_seconds = elapsed();
}

std::string PasskeyEval::table() const {
  const Impl& r = *impl_;
  const PasskeySettings& s = r.s;
  TextTable t;
  std::vector<std::string> head = {"length", "tokens"};
  for (double d : s.depths) head.push_back(format_number(d));
  head.push_back("mean");
  t.rows.push_back(head);
  t.right.assign(head.size(), true);
  t.right[0] = false;
  std::vector<int64_t> col_correct(s.depths.size(), 0), col_trials(s.depths.size(), 0);
  int64_t all_correct = 0, all_trials = 0;
  for (size_t li = 0; li < s.lengths.size(); ++li) {
    std::vector<std::string> row = {std::to_string(s.lengths[li]), ""};
    int64_t tok = 0, n_tok = 0, correct = 0, n = 0;
    for (size_t di = 0; di < s.depths.size(); ++di) {
      const size_t i = r.grid.index(li, di);
      const Cell& c = r.cells[i];
      if (!r.grid.done(i)) {
        row.push_back("-");
        continue;
      }
      row.push_back(format_percent(c.accuracy()));
      for (const Trial& tr : c.trials) tok += tr.tokens;
      n_tok += static_cast<int64_t>(c.trials.size());
      correct += c.correct();
      n += static_cast<int64_t>(c.trials.size());
      col_correct[di] += c.correct();
      col_trials[di] += static_cast<int64_t>(c.trials.size());
    }
    row[1] = n_tok ? std::to_string((tok + n_tok / 2) / n_tok) : "-";
    row.push_back(n ? format_percent(static_cast<double>(correct) / static_cast<double>(n)) : "-");
    all_correct += correct;
    all_trials += n;
    t.rows.push_back(row);
  }
  if (s.lengths.size() > 1) {
    std::vector<std::string> row = {"mean", ""};
    for (size_t di = 0; di < s.depths.size(); ++di)
      row.push_back(col_trials[di] ? format_percent(static_cast<double>(col_correct[di]) /
                                                    static_cast<double>(col_trials[di]))
                                   : "-");
    row.push_back(all_trials ? format_percent(static_cast<double>(all_correct) /
                                              static_cast<double>(all_trials))
                             : "-");
    t.rows.push_back(row);
  }
  std::string out = cat("passkey accuracy (", s.trials, " trial", (s.trials == 1 ? "" : "s"),
                        " per cell; rows: prompt length, columns: needle depth)\n");
  out += format_table(t);
  if (all_trials)
    out += cat("overall: ", all_correct, "/", all_trials, " correct (",
               format_percent(static_cast<double>(all_correct) / static_cast<double>(all_trials)),
               ")\n");
  return out;
}

std::string PasskeyEval::summary() const {
  const Impl& r = *impl_;
  const double secs = r.run_seconds;
  std::string out =
      cat("total time ", format_duration(secs), " (", r.ran, " cells, ", r.prompt_tokens,
          " prompt tokens, ",
          (secs > 0 ? std::llround(static_cast<double>(r.prompt_tokens) / secs) : 0), " tok/s)");
  const size_t kept = r.grid.resumed_count();
  if (kept > 0)
    out +=
        cat("; ", kept, " cells from ", r.resume_path, ", all runs ", format_duration(r.seconds));
  return out + "\n";
}

}  // namespace lc::eval
