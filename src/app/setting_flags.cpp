#include "app/setting_flags.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <iostream>

#include "model/rope/rope_config.h"

namespace lc::app {

namespace {

double parse_double(std::string_view flag, const std::string& v) {
  errno = 0;
  char* end = nullptr;
  double d = std::strtod(v.c_str(), &end);
  if (v.empty() || end != v.c_str() + v.size() || errno == ERANGE || !std::isfinite(d))
    fail(flag, " '", v, "': expected a number");
  return d;
}

int64_t parse_int(std::string_view flag, const std::string& v) {
  errno = 0;
  char* end = nullptr;
  long long n = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || end != v.c_str() + v.size() || errno == ERANGE)
    fail(flag, " '", v, "': expected an integer");
  return n;
}

void set_rope(SessionSpec& s, const std::string& v, const std::string& flag) {
  rope_parse_flag(s.rope, flag, v);
}

using F = FlagGroup;

const std::vector<SettingFlag> kFlags = {
    {"-t,--threads", "threads", F::Run, "threads (default: all cores or $LONGCTX_THREADS)", "",
     [](SessionSpec& s, const std::string& v, const std::string& f) {
       s.threads = static_cast<int>(parse_int(f, v));
     }},
    {"-b,--batch,--batch-size,--ubatch-size", "batch", F::Run,
     "prompt tokens per forward step (chunked prefill; llama.cpp's --batch-size and "
     "--ubatch-size name the same thing here)",
     "512",
     [](SessionSpec& s, const std::string& v, const std::string& f) { s.batch = parse_int(f, v); }},
    {"--memory", "memory.policy", F::Memory, "KV memory policy: full, streaming, infllm", "full",
     [](SessionSpec& s, const std::string& v, const std::string& f) {
       s.memory.policy = parse_memory_policy(v);
     }},
    {"--kv-type,--cache-type-k,--cache-type-v", "memory.kv_type", F::Memory,
     "KV cache type of --memory full: f16 (the default), f32 (twice the bytes), q8_0 (head dim "
     "a multiple of 32); streaming / infllm store f32; llama.cpp's --cache-type-k / -v set it "
     "for keys and values together",
     "f16",
     [](SessionSpec& s, const std::string& v, const std::string& f) {
       const KvType t = kv_type_from_name(v);
       if (s.memory.kv_type && *s.memory.kv_type != t)
         fail(f, " ", v, ": keys and values are stored in one type here, and another flag set ",
              kv_type_name(*s.memory.kv_type), "; give the same type to both");
       s.memory.kv_type = t;
     }},
    {"--ctx-train", "ctx_train", F::Memory,
     "the model's trained context, when the file's context_length is wrong (defaults of the "
     "memory policies derive from it)",
     "",
     [](SessionSpec& s, const std::string& v, const std::string& f) {
       s.ctx_train = parse_int(f, v);
     }},
    {"--n-init", "memory.n_init", F::Memory, "attention sinks (streaming, infllm)", "",
     [](SessionSpec& s, const std::string& v, const std::string& f) {
       s.memory.n_init = parse_int(f, v);
     }},
    {"--n-local", "memory.n_local", F::Memory, "local window (streaming, infllm)", "",
     [](SessionSpec& s, const std::string& v, const std::string& f) {
       s.memory.n_local = parse_int(f, v);
     }},
    {"--block-size", "memory.block_size", F::Memory, "tokens per memory block (infllm)", "",
     [](SessionSpec& s, const std::string& v, const std::string& f) {
       s.memory.block_size = parse_int(f, v);
     }},
    {"--topk", "memory.topk", F::Memory, "memory blocks retrieved per step (infllm)", "",
     [](SessionSpec& s, const std::string& v, const std::string& f) {
       s.memory.topk = parse_int(f, v);
     }},
    {"--repr-topk", "memory.repr_topk", F::Memory, "representative tokens per block (infllm)", "",
     [](SessionSpec& s, const std::string& v, const std::string& f) {
       s.memory.repr_topk = parse_int(f, v);
     }},
    {"--exec-block", "memory.exec_block", F::Memory,
     "query tokens per attention step (<= --n-local)", "",
     [](SessionSpec& s, const std::string& v, const std::string& f) {
       s.memory.exec_block = parse_int(f, v);
     }},
    {"--mem-budget", "memory.mem_budget", F::Memory,
     "RAM for memory blocks, e.g. 256M (infllm; the rest spills to disk; default: twice what "
     "a decoding step reads, at least 64M; 0 = keep everything in RAM)",
     "",
     [](SessionSpec& s, const std::string& v, const std::string& f) {
       s.memory.mem_budget = parse_bytes(v, "memory.mem_budget");
     }},
    {"--spill-dir", "memory.spill_dir", F::Memory, "directory of the spill file (default $TMPDIR)",
     "", [](SessionSpec& s, const std::string& v, const std::string&) { s.memory.spill_dir = v; }},
    {"--spill-type", "memory.spill_type", F::Memory, "spilled block type: f32, f16, q8_0", "f16",
     [](SessionSpec& s, const std::string& v, const std::string&) {
       s.memory.spill_type = spill_type_from_name(v);
     }},
    {"--retrieval", "memory.retrieval", F::Memory,
     "block search: index (clustered representatives, bounded work) or exact", "index",
     [](SessionSpec& s, const std::string& v, const std::string& f) {
       if (v != "index" && v != "exact") fail(f, " must be index or exact, got '", v, "'");
       s.memory.exact_retrieval = v == "exact";
     }},
    {"--index-group", "memory.index_group", F::Memory,
     "blocks per cluster of the index before the cluster splits", "32",
     [](SessionSpec& s, const std::string& v, const std::string& f) {
       s.memory.index_group = parse_int(f, v);
     }},
    {"--index-clusters", "memory.index_clusters", F::Memory, "clusters of the index at most",
     "1024",
     [](SessionSpec& s, const std::string& v, const std::string& f) {
       s.memory.index_clusters = parse_int(f, v);
     }},
    {"--index-budget", "memory.index_budget", F::Memory,
     "blocks scored per search after the cluster bounds (0 = no cap: the search is exact, its "
     "work grows with the context)",
     "2048",
     [](SessionSpec& s, const std::string& v, const std::string& f) {
       s.memory.index_budget = parse_int(f, v);
     }},
    {"--index-probe", "memory.index_probe", F::Memory, "clusters visited per search (0 = no cap)",
     "0",
     [](SessionSpec& s, const std::string& v, const std::string& f) {
       s.memory.index_probe = parse_int(f, v);
     }},
    {"--measure-recall", "memory.measure_recall", F::Memory,
     "also run exact search and report the index's recall (slow)", "",
     [](SessionSpec& s, const std::string&, const std::string&) {
       s.memory.measure_recall = true;
     }},
    {"--head-score", "memory.head_score", F::Memory,
     "how a block's per-head scores combine (infllm): max (of per-head z-scores), norm (sum of "
     "z-scores) or sum (InfLLM's plain sum over heads)",
     "max",
     [](SessionSpec& s, const std::string& v, const std::string& f) {
       if (v == "sum")
         s.memory.head_score = HeadScore::Sum;
       else if (v == "norm")
         s.memory.head_score = HeadScore::Norm;
       else if (v == "max")
         s.memory.head_score = HeadScore::Max;
       else
         fail(f, " must be max, norm or sum, got '", v, "'");
     }},
    {"--neighbors", "memory.neighbors", F::Memory,
     "best blocks whose adjacent blocks are attended too (infllm)", "",
     [](SessionSpec& s, const std::string& v, const std::string& f) {
       s.memory.neighbors = parse_int(f, v);
     }},
    {"--retrieval-interval", "memory.retrieval_interval", F::Memory,
     "decoding searches every N tokens and re-ranks that search's candidates in between (infllm; "
     "default 1: every token; faster at long contexts, less accurate)",
     "",
     [](SessionSpec& s, const std::string& v, const std::string& f) {
       s.memory.retrieval_interval = parse_int(f, v);
     }},
    {"--trace-retrieval", "memory.trace_retrieval", F::Memory,
     "append one JSON line per block search to this file: blocks chosen, scores, and where the "
     "needle's blocks ranked when a needle is known (infllm)",
     "",
     [](SessionSpec& s, const std::string& v, const std::string&) {
       s.memory.trace_retrieval = v;
     }},
    {"--hf-config", "rope.hf_config", F::Rope, "Hugging Face config.json whose RoPE settings apply",
     "", [](SessionSpec& s, const std::string& v, const std::string&) { s.hf_config = v; }},
    {"--rope-scaling", "rope.scaling", F::Rope,
     "RoPE scaling method: none, linear, yarn, dynamic, ntk, llama3, longrope", "", set_rope},
    {"--rope-scale", "rope.scale", F::Rope,
     "RoPE context scale factor (e.g. 4 = four times the trained context)", "", set_rope},
    {"--rope-freq-base", "rope.freq_base", F::Rope, "RoPE base frequency (theta)", "", set_rope},
    {"--rope-freq-scale", "rope.freq_scale", F::Rope, "RoPE frequency scale (= 1 / --rope-scale)",
     "", set_rope},
    {"--yarn-orig-ctx", "rope.orig_ctx", F::Rope,
     "original (trained) context length for scaling methods", "", set_rope},
    {"--yarn-ext-factor", "rope.ext_factor", F::Rope, "YaRN extrapolation mix factor", "",
     set_rope},
    {"--yarn-attn-factor", "rope.attn_factor", F::Rope, "YaRN attention factor multiplier", "",
     set_rope},
    {"--yarn-beta-fast", "rope.beta_fast", F::Rope, "YaRN beta_fast (default 32)", "", set_rope},
    {"--yarn-beta-slow", "rope.beta_slow", F::Rope, "YaRN beta_slow (default 1)", "", set_rope},
    {"--rope-factors", "rope.factors", F::Rope,
     "JSON file with LongRoPE long_factor / short_factor lists", "", set_rope},
};

// The first long name of a row: "--batch" of "-b,--batch,--batch-size".
std::string long_name(const SettingFlag& f) {
  const std::string names = f.names;
  size_t pos = 0;
  while (pos < names.size()) {
    const size_t end = std::min(names.find(',', pos), names.size());
    const std::string n = names.substr(pos, end - pos);
    if (n.rfind("--", 0) == 0) return n;
    pos = end + 1;
  }
  return names;
}

const char* group_name(FlagGroup g) {
  switch (g) {
    case FlagGroup::Run:
      return "Options";
    case FlagGroup::Memory:
      return "KV memory";
    case FlagGroup::Rope:
      return "RoPE scaling";
  }
  return "";
}

}  // namespace

bool rope_parse_flag(RopeOverrides& o, std::string_view flag, const std::string& value) {
  if (flag == "--rope-scaling") {
    if (!rope_method_from_name(value) || value == "default" || value == "su")
      fail("--rope-scaling '", value, "': expected one of ", rope_method_choices());
    o.scaling = value;
  } else if (flag == "--rope-scale") {
    double d = parse_double(flag, value);
    if (!(d > 0.0)) fail("--rope-scale '", value, "': expected a scale factor > 0 (e.g. 4)");
    o.scale = d;
  } else if (flag == "--rope-freq-base") {
    double d = parse_double(flag, value);
    if (!(d > 0.0)) fail("--rope-freq-base '", value, "': expected a base > 0 (e.g. 10000)");
    o.freq_base = d;
  } else if (flag == "--rope-freq-scale") {
    double d = parse_double(flag, value);
    if (!(d > 0.0))
      fail("--rope-freq-scale '", value, "': expected a frequency scale > 0 (1 / the factor)");
    o.freq_scale = d;
  } else if (flag == "--yarn-orig-ctx") {
    int64_t n = parse_int(flag, value);
    if (n < 0) fail("--yarn-orig-ctx '", value, "': expected a context length >= 0 (0 = model's)");
    o.yarn_orig_ctx = n;
  } else if (flag == "--yarn-ext-factor") {
    double d = parse_double(flag, value);
    if (d < 0.0 && d != -1.0)
      fail("--yarn-ext-factor '", value, "': expected a number >= 0, or -1 for automatic");
    o.yarn_ext_factor = d;
  } else if (flag == "--yarn-attn-factor") {
    double d = parse_double(flag, value);
    if (!(d > 0.0)) fail("--yarn-attn-factor '", value, "': expected a number > 0");
    o.yarn_attn_factor = d;
  } else if (flag == "--yarn-beta-fast") {
    o.yarn_beta_fast = parse_double(flag, value);
  } else if (flag == "--yarn-beta-slow") {
    o.yarn_beta_slow = parse_double(flag, value);
  } else if (flag == "--rope-factors") {
    if (value.empty()) fail("--rope-factors: expected a JSON file name");
    o.factors_file = value;
  } else {
    return false;
  }
  for (const SettingFlag& f : kFlags)
    if (long_name(f) == flag) o.origin[f.setting] = "cli:" + std::string(flag);
  return true;
}

const char* rope_flags_help() {
  return "  --rope-scaling {none,linear,yarn,dynamic,ntk,llama3,longrope}  RoPE context extension\n"
         "  --rope-scale S          context scale factor (linear, yarn, dynamic, llama3; ntk "
         "alpha)\n"
         "  --rope-freq-base B      RoPE base frequency (theta)\n"
         "  --rope-freq-scale F     frequency scale, 1/S\n"
         "  --yarn-orig-ctx N       original (trained) context length\n"
         "  --yarn-ext-factor X     YaRN extrapolation mix (1 = YaRN, 0 = linear; -1 automatic)\n"
         "  --yarn-attn-factor M    multiplies the attention factor\n"
         "  --yarn-beta-fast B      YaRN high-frequency boundary (default 32)\n"
         "  --yarn-beta-slow B      YaRN low-frequency boundary (default 1)\n"
         "  --rope-factors FILE     LongRoPE lists: JSON {\"long_factor\": [...], "
         "\"short_factor\": [...]}\n";
}

const std::vector<SettingFlag>& setting_flags() { return kFlags; }

std::string flag_for_setting(const std::string& setting) {
  for (const SettingFlag& f : kFlags)
    if (setting == f.setting) return long_name(f);
  // Settings of a generation or an evaluation rather than of a session.
  static const std::pair<const char*, const char*> kOther[] = {
      {"sampling.temperature", "--temp"},
      {"sampling.top_p", "--top-p"},
      {"sampling.min_p", "--min-p"},
      {"sampling.top_k", "--top-k"},
      {"sampling.repeat_penalty", "--repeat-penalty"},
      {"sampling.repeat_last_n", "--repeat-last-n"},
      {"sampling.seed", "--seed"},
      {"n_predict", "--n-predict"},
      {"ppl.ctx", "--ctx"},
      {"passkey.depths", "--depths"},
      {"passkey.lengths", "--lengths"},
      {"passkey.trials", "--trials"},
      {"passkey.seed", "--seed"},
      {"passkey.format", "--format"},
      {"passkey.separator", "--separator"},
      {"passkey.chat_template", "--chat-template"},
      {"passkey.chat", "--no-chat"},
      {"passkey.filler", "--filler"},
      {"ppl_curve.lengths", "--lengths"},
      {"ppl_curve.chunks", "--chunks"},
      {"ppl_curve.orig_ctx", "--orig-ctx"},
      {"ppl_curve.configs", "--config"},
      {"bench_context.lengths", "--lengths"},
      {"resume", "--resume"},
      {"memory.max_ctx", "--ctx"},
  };
  for (const auto& [s, f] : kOther)
    if (setting == s) return f;
  return "";
}

std::string message_with_flags(const Error& e) {
  return message_with_flags(e.what(), e.settings());
}

std::string message_with_flags(const std::string& message,
                               const std::vector<std::string>& settings) {
  std::vector<std::string> flags;
  for (const std::string& s : settings) {
    const std::string f = flag_for_setting(s);
    if (!f.empty()) flags.push_back(f);
  }
  std::string msg = message;
  if (flags.empty()) return msg;
  msg += flags.size() == 1 ? " (flag " : " (flags ";
  for (size_t i = 0; i < flags.size(); ++i) msg += (i ? ", " : "") + flags[i];
  return msg + ")";
}

std::string setting_flags_text(const std::vector<std::pair<std::string, std::string>>& settings) {
  std::string out;
  for (const auto& [setting, value] : settings) {
    const std::string f = flag_for_setting(setting);
    if (!out.empty()) out += " ";
    out += f.empty() ? setting + " = " + value : f + (value.empty() ? "" : " " + value);
  }
  return out;
}

void SettingOptions::add(CLI::App& cmd, FlagGroup group) {
  for (const SettingFlag& f : kFlags) {
    if (f.group != group) continue;
    Bound b{&f, std::make_unique<std::string>(), nullptr};
    if (std::string(f.setting) == "memory.measure_recall") {
      b.opt = cmd.add_flag(f.names, f.help);
    } else {
      b.opt = cmd.add_option(f.names, *b.value, f.help);
      static const std::string kText[] = {
          "memory.policy",     "memory.kv_type",   "memory.mem_budget", "memory.spill_dir",
          "memory.spill_type", "memory.retrieval", "memory.head_score", "memory.trace_retrieval"};
      const std::string setting = f.setting;
      const bool text = setting.rfind("rope.", 0) == 0 ||
                        std::find(std::begin(kText), std::end(kText), setting) != std::end(kText);
      b.opt->type_name(text ? "TEXT" : "INT");
      if (*f.default_text) b.opt->default_str(f.default_text);
    }
    b.opt->group(group_name(group));
    bound_.push_back(std::move(b));
  }
}

void SettingOptions::fill(SessionSpec& spec) const {
  for (const Bound& b : bound_) {
    if (b.opt->count() == 0) continue;
    const std::string flag = long_name(*b.row);
    b.row->set(spec, *b.value, flag);
    spec.set_origin(b.row->setting, "cli:" + flag);
  }
}

std::vector<std::string> SettingOptions::given_words(FlagGroup group) const {
  std::vector<std::string> words;
  for (const Bound& b : bound_) {
    if (b.opt->count() == 0 || b.row->group != group) continue;
    words.push_back(long_name(*b.row));
    if (std::string(b.row->setting) != "memory.measure_recall") words.push_back(*b.value);
  }
  return words;
}

std::vector<std::string> rewrite_llama_cpp_args(int argc, char** argv) {
  static const std::pair<const char*, const char*> kShort[] = {
      {"-ngl", "--n-gpu-layers"}, {"-fa", "--flash-attn"},  {"-ctk", "--cache-type-k"},
      {"-ctv", "--cache-type-v"}, {"-ub", "--ubatch-size"},
  };
  std::vector<std::string> out;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    for (const auto& [from, to] : kShort) {
      const std::string f = from;
      if (a == f)
        a = to;
      else if (a.rfind(f + "=", 0) == 0)
        a = to + a.substr(f.size());
    }
    out.push_back(std::move(a));
  }
  return out;
}

void add_compat_flags(CLI::App& cmd) {
  const char* g = "llama.cpp flags";
  auto note = [](const std::string& text) { std::cerr << "note: " << text << "\n"; };
  cmd.add_option_function<std::string>(
         "--n-gpu-layers,--gpu-layers",
         [note](const std::string& v) {
           note("--n-gpu-layers " + v +
                " is ignored: longctx runs on the CPU, every layer stays in RAM");
         },
         "accepted for llama.cpp scripts (-ngl); ignored: longctx runs on the CPU")
      ->group(g);
  cmd.add_option_function<std::string>(
         "--flash-attn",
         [note](const std::string& v) {
           note("--flash-attn" + (v.empty() ? std::string() : " " + v) +
                " changes nothing: attention here is always computed in tiles with an online "
                "softmax, as flash attention does");
         },
         "accepted for llama.cpp scripts (-fa); attention is always tiled here")
      ->expected(0, 1)
      ->group(g);
  cmd.add_flag_callback(
         "--no-warmup",
         [note] { note("--no-warmup changes nothing: longctx makes no warm-up run"); },
         "accepted for llama.cpp scripts; longctx makes no warm-up run")
      ->group(g);
  cmd.add_flag_callback(
         "--no-mmap",
         [note] {
           note("--no-mmap is ignored: weights are always memory-mapped (read-only, shared)");
         },
         "accepted for llama.cpp scripts; weights are always memory-mapped")
      ->group(g);
}

}  // namespace lc::app
