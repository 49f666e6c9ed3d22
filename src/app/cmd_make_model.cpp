// longctx make-model: a random-weight GGUF with the shape of a real model (or a custom one), its
// tokenizer copied from a vocabulary GGUF, complete metadata so other GGUF readers load it too.
// Written tensor by tensor (GgufStreamWriter), so a 7B model never needs to fit in memory twice.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <vector>

#include "app/commands.h"
#include "app/common.h"
#include "core/error.h"
#include "core/gguf_stream_writer.h"
#include "core/thread_pool.h"
#include "kernels/quant.h"
#include "model/names.h"

namespace lc::app {

namespace {

struct Shape {
  std::string name;  // general.name
  std::string arch;
  int64_t n_layer = 0, n_embd = 0, n_head = 0, n_head_kv = 0, n_ff = 0, n_ctx = 0;
  float rope_base = 10000.0f;
  float norm_eps = 1e-5f;
  bool tied = false;
  bool qkv_bias = false;
};

// The real models' hyper-parameters (from their Hugging Face config.json files).
const std::map<std::string, Shape>& known_shapes() {
  static const std::map<std::string, Shape> shapes = {
      {"smollm2-135m",
       {"SmolLM2-135M (random weights)", "llama", 30, 576, 9, 3, 1536, 8192, 1e5f, 1e-5f, true,
        false}},
      {"llama-1b",
       {"Llama-3.2-1B (random weights)", "llama", 16, 2048, 32, 8, 8192, 131072, 5e5f, 1e-5f, true,
        false}},
      {"mistral-7b",
       {"Mistral-7B (random weights)", "llama", 32, 4096, 32, 8, 14336, 32768, 1e6f, 1e-5f, false,
        false}},
      {"qwen2-0.5b",
       {"Qwen2-0.5B (random weights)", "qwen2", 24, 896, 14, 2, 4864, 32768, 1e6f, 1e-6f, true,
        true}},
  };
  return shapes;
}

struct Opts {
  std::string shape, type = "q8_0", vocab, out, arch;
  uint64_t seed = 1;
  int threads = 0;
  // Custom shape (or overrides of a named one); -1 / negative = not given.
  int64_t layers = -1, dim = -1, heads = -1, kv_heads = -1, ffn = -1, ctx = -1, vocab_size = -1;
  double rope_base = -1;
  bool tied = false;
};

enum class Init { Matrix, Norm, Bias };

struct Planned {
  std::string name;
  int64_t n_in = 0, n_out = 1;  // n_out == 1 with a 1-D shape for vectors
  TensorType type = TensorType::F32;
  Init init = Init::Matrix;
};

// ---- random numbers: one xorshift64* stream per (seed, tensor, row), so the output does not
// depend on the thread count or on how rows are grouped.
uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

struct RowRng {
  uint64_t s;
  RowRng(uint64_t seed, uint64_t tensor, uint64_t row)
      : s(mix64(mix64(mix64(seed) + tensor) + row) | 1u) {}
  uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1Dull;
  }
  // Approximately N(0, 1): the sum of four 16-bit uniforms (Irwin-Hall), centred and scaled to unit
  // variance. Bell-shaped, bounded at +-3.46; one random draw per value.
  float normal() {
    const uint64_t r = next();
    const auto sum =
        static_cast<float>((r & 0xFFFF) + ((r >> 16) & 0xFFFF) + ((r >> 32) & 0xFFFF) + (r >> 48));
    constexpr float kScale = 1.7320508f / 65536.0f;  // sqrt(12 / 4) / 65536
    return (sum - 131070.0f) * kScale;
  }
};

void fill_row(const Planned& t, uint64_t seed, uint64_t tensor_index, int64_t row, float* dst) {
  RowRng rng(seed, tensor_index, static_cast<uint64_t>(row));
  switch (t.init) {
    case Init::Matrix: {
      const float scale = 1.0f / std::sqrt(static_cast<float>(t.n_in));
      for (int64_t i = 0; i < t.n_in; ++i) dst[i] = rng.normal() * scale;
      break;
    }
    case Init::Norm:
      for (int64_t i = 0; i < t.n_in; ++i) dst[i] = 1.0f + 0.02f * rng.normal();
      break;
    case Init::Bias:
      for (int64_t i = 0; i < t.n_in; ++i) dst[i] = 0.02f * rng.normal();
      break;
  }
}

Shape resolve_shape(const Opts& o) {
  Shape s;
  if (o.shape == "custom") {
    s.arch = o.arch.empty() ? "llama" : o.arch;
    s.name = "custom " + s.arch + " (random weights)";
    if (o.layers < 0 || o.dim < 0 || o.heads < 0 || o.ffn < 0)
      fail("--shape custom needs --layers, --dim, --heads and --ffn");
    s.n_ctx = 4096;
    s.norm_eps = s.arch == "qwen2" ? 1e-6f : 1e-5f;
    s.qkv_bias = s.arch == "qwen2";
    s.tied = o.tied;
  } else {
    auto it = known_shapes().find(o.shape);
    if (it == known_shapes().end())
      fail("unknown --shape '", o.shape,
           "' (expected smollm2-135m, llama-1b, mistral-7b, qwen2-0.5b or custom)");
    s = it->second;
    if (!o.arch.empty() && o.arch != s.arch)
      fail("--arch applies to --shape custom only (", o.shape, " is ", s.arch, ")");
    if (o.tied) s.tied = true;
  }
  // Flags override the named shape's values (e.g. --layers 2 for a quick test).
  if (o.layers >= 0) s.n_layer = o.layers;
  if (o.dim >= 0) s.n_embd = o.dim;
  if (o.heads >= 0) s.n_head = o.heads;
  if (o.kv_heads >= 0) s.n_head_kv = o.kv_heads;
  if (o.ffn >= 0) s.n_ff = o.ffn;
  if (o.ctx >= 0) s.n_ctx = o.ctx;
  if (o.rope_base >= 0) s.rope_base = static_cast<float>(o.rope_base);
  if (s.n_head_kv <= 0) s.n_head_kv = s.n_head;
  if (s.arch != "llama" && s.arch != "qwen2")
    fail("--arch must be llama or qwen2, got '", s.arch, "'");
  if (s.n_layer < 1 || s.n_layer > 4096) fail("--layers must be in 1..4096, got ", s.n_layer);
  if (s.n_embd < 2 || s.n_embd > (1 << 20)) fail("--dim must be in 2..1048576, got ", s.n_embd);
  if (s.n_ff < 1 || s.n_ff > (1 << 20)) fail("--ffn must be in 1..1048576, got ", s.n_ff);
  if (s.n_ctx < 1) fail("--ctx must be positive, got ", s.n_ctx);
  if (!(s.rope_base > 1)) fail("--rope-base must be > 1, got ", s.rope_base);
  if (s.n_head < 1 || s.n_embd % s.n_head != 0)
    fail("--dim ", s.n_embd, " must be a multiple of --heads ", s.n_head);
  if ((s.n_embd / s.n_head) % 2 != 0)
    fail("the head dimension --dim / --heads = ", s.n_embd / s.n_head,
         " must be even (RoPE pairs)");
  if (s.n_head_kv > s.n_head || s.n_head % s.n_head_kv != 0)
    fail("--heads ", s.n_head, " must be a multiple of --kv-heads ", s.n_head_kv);
  return s;
}

// The type a matrix with rows of n_in elements gets: the requested one when its block size divides
// n_in, else q8_0, else f16.
TensorType matrix_type(TensorType want, int64_t n_in) {
  for (TensorType t : {want, TensorType::Q8_0, TensorType::F16})
    if (n_in % tensor_type_info(t).block_size == 0) return t;
  return TensorType::F32;
}

std::vector<Planned> plan_tensors(const Shape& s, int64_t n_vocab, TensorType want) {
  std::vector<Planned> p;
  const int64_t d = s.n_embd, hd = s.n_embd / s.n_head, dq = s.n_head * hd, dkv = s.n_head_kv * hd;
  auto matrix = [&](const std::string& name, int64_t n_in, int64_t n_out) {
    p.push_back({name, n_in, n_out, matrix_type(want, n_in), Init::Matrix});
  };
  auto vec = [&](const std::string& name, int64_t n, Init init) {
    p.push_back({name, n, 1, TensorType::F32, init});
  };
  using namespace names;
  matrix(kTokEmbd, d, n_vocab);
  for (int il = 0; il < s.n_layer; ++il) {
    vec(layer(il, kAttnNorm), d, Init::Norm);
    matrix(layer(il, kAttnQ), d, dq);
    matrix(layer(il, kAttnK), d, dkv);
    matrix(layer(il, kAttnV), d, dkv);
    if (s.qkv_bias) {
      vec(layer(il, kAttnQBias), dq, Init::Bias);
      vec(layer(il, kAttnKBias), dkv, Init::Bias);
      vec(layer(il, kAttnVBias), dkv, Init::Bias);
    }
    matrix(layer(il, kAttnOut), dq, d);
    vec(layer(il, kFfnNorm), d, Init::Norm);
    matrix(layer(il, kFfnGate), d, s.n_ff);
    matrix(layer(il, kFfnUp), d, s.n_ff);
    matrix(layer(il, kFfnDown), s.n_ff, d);
  }
  vec(kOutputNorm, d, Init::Norm);
  if (!s.tied) matrix(kOutput, d, n_vocab);
  return p;
}

std::string mib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", bytes / (1024.0 * 1024.0));
  return buf;
}

void run_make_model(const Opts& o) {
  const auto t_start = std::chrono::steady_clock::now();
  if (o.out.empty()) fail("give the output file with -o");
  if (o.threads < 0) fail("--threads must be >= 0, got ", o.threads);
  if (o.threads > 0) set_num_threads(o.threads);
  const auto want = tensor_type_from_name(o.type);
  if (!want ||
      (*want != TensorType::F32 && *want != TensorType::F16 && *want != TensorType::BF16 &&
       *want != TensorType::Q8_0 && *want != TensorType::Q4_0 && *want != TensorType::Q4_K))
    fail("unknown --type '", o.type, "' (expected f32, f16, bf16, q8_0, q4_0, q4_k)");

  auto vocab = GgufFile::open(o.vocab);
  const GgufValue* toks = vocab->find("tokenizer.ggml.tokens");
  if (!toks || toks->type != GgufType::ARRAY || toks->items.empty())
    fail(o.vocab, ": no tokenizer.ggml.tokens list; give a GGUF file that holds a tokenizer");
  const auto n_tokens = static_cast<int64_t>(toks->items.size());
  const Shape s = resolve_shape(o);
  const int64_t n_vocab = o.vocab_size >= 0 ? o.vocab_size : n_tokens;
  if (n_vocab < n_tokens)
    fail("--vocab-size ", n_vocab, " is smaller than the ", n_tokens, " tokens of ", o.vocab);

  const std::vector<Planned> plan = plan_tensors(s, n_vocab, *want);
  GgufStreamWriter w;
  const std::string& a = s.arch;
  const auto u32 = [](int64_t v) { return GgufValue::of_u32(static_cast<uint32_t>(v)); };
  w.set(names::kArchitecture, GgufValue::of_str(a));
  w.set("general.type", GgufValue::of_str("model"));
  w.set(names::kModelName, GgufValue::of_str(s.name));
  w.set("general.description",
        GgufValue::of_str("random weights written by longctx make-model --shape " + o.shape +
                          " --type " + o.type + " --seed " + std::to_string(o.seed)));
  w.set(names::kFileType, GgufValue::of_u32(llama_file_type(*want)));
  w.set("general.quantization_version", GgufValue::of_u32(2));
  w.set(names::key(a, names::kContextLength), u32(s.n_ctx));
  w.set(names::key(a, names::kEmbeddingLength), u32(s.n_embd));
  w.set(names::key(a, names::kBlockCount), u32(s.n_layer));
  w.set(names::key(a, names::kFeedForwardLength), u32(s.n_ff));
  w.set(names::key(a, names::kHeadCount), u32(s.n_head));
  w.set(names::key(a, names::kHeadCountKv), u32(s.n_head_kv));
  w.set(names::key(a, names::kRmsEps), GgufValue::of_f32(s.norm_eps));
  w.set(names::key(a, "rope.freq_base"), GgufValue::of_f32(s.rope_base));
  w.set(names::key(a, names::kRopeDimCount), u32(s.n_embd / s.n_head));
  w.set(names::key(a, names::kVocabSize), u32(n_vocab));
  for (const auto& [k, v] : vocab->metadata())
    if (k.rfind("tokenizer.", 0) == 0) w.set(k, v);

  int64_t n_params = 0;
  std::map<std::string, int> type_counts;
  std::map<int64_t, int> fallbacks;  // row length -> tensors not in the requested type
  for (const Planned& t : plan) {
    const std::vector<int64_t> ne = t.n_out == 1 && t.init != Init::Matrix
                                        ? std::vector<int64_t>{t.n_in}
                                        : std::vector<int64_t>{t.n_in, t.n_out};
    w.add_tensor_info(t.name, ne, t.type);
    n_params += t.n_in * t.n_out;
    type_counts[std::string(tensor_type_info(t.type).name)]++;
    if (t.init == Init::Matrix && t.type != *want) fallbacks[t.n_in]++;
  }
  std::cerr << "make-model: " << o.shape << " (" << a << ", " << s.n_layer << " layers, dim "
            << s.n_embd << ", " << s.n_head << "/" << s.n_head_kv << " heads, ffn " << s.n_ff
            << ", vocab " << n_vocab << ", context " << s.n_ctx << (s.tied ? ", tied output" : "")
            << "), " << n_params << " parameters, " << mib(static_cast<double>(w.data_bytes()))
            << " of " << o.type << " tensor data -> " << o.out << "\n";
  const TensorTypeInfo& wi = tensor_type_info(*want);
  for (const auto& [n_in, count] : fallbacks)
    std::cerr << "make-model: " << count << " matrices with rows of " << n_in
              << " (not a multiple of the " << wi.block_size << "-element " << wi.name
              << " block) stored as " << tensor_type_info(matrix_type(*want, n_in)).name << "\n";

  w.begin(o.out);
  // Rows are generated and quantized in parallel, a slab of about 16M values at a time, and written
  // before the next slab starts: memory stays bounded whatever the model size.
  constexpr int64_t kSlabValues = int64_t{1} << 24;
  const int64_t total_mib = std::max<int64_t>(1, static_cast<int64_t>(w.data_bytes() >> 20));
  Progress prog("make-model", total_mib, "MiB");
  uint64_t done_bytes = 0;
  std::vector<uint8_t> slab;
  for (size_t ti = 0; ti < plan.size(); ++ti) {
    const Planned& t = plan[ti];
    const TensorTypeInfo& info = tensor_type_info(t.type);
    const auto rb = static_cast<size_t>(row_bytes(info, t.n_in));
    const int64_t slab_rows = std::max<int64_t>(1, kSlabValues / t.n_in);
    for (int64_t r0 = 0; r0 < t.n_out; r0 += slab_rows) {
      const int64_t nr = std::min(slab_rows, t.n_out - r0);
      slab.resize(rb * static_cast<size_t>(nr));
      parallel_for(nr, [&](int64_t b, int64_t e) {
        std::vector<float> row(static_cast<size_t>(t.n_in));
        for (int64_t r = b; r < e; ++r) {
          fill_row(t, o.seed, ti, r0 + r, row.data());
          quantize_row_ref(t.type, row.data(), slab.data() + rb * static_cast<size_t>(r), t.n_in);
        }
      });
      w.write(slab.data(), slab.size());
      done_bytes += slab.size();
      prog.update(static_cast<int64_t>(done_bytes >> 20));
    }
  }
  w.finish();
  prog.update(total_mib);
  prog.finish();
  // Read the header back: the file must open as a valid GGUF.
  auto check = GgufFile::open(o.out);
  LC_CHECK(check->tensors().size() == plan.size());
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  std::string types;
  for (const auto& [name, n] : type_counts)
    types += (types.empty() ? "" : ", ") + name + " x" + std::to_string(n);
  std::fprintf(stderr, "make-model: wrote %s (%s, %zu tensors: %s) in %.1f s\n", o.out.c_str(),
               mib(static_cast<double>(check->file_size())).c_str(), plan.size(), types.c_str(),
               secs);
}

}  // namespace

void register_make_model(CLI::App& root) {
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = root.add_subcommand(
      "make-model",
      "write a random-weight GGUF with a real model's shape and a tokenizer from a vocab GGUF");
  cmd->add_option("--shape", o->shape,
                  "smollm2-135m, llama-1b, mistral-7b, qwen2-0.5b or custom (with --layers --dim "
                  "--heads --ffn ...); the shape flags also override a named shape")
      ->required();
  cmd->add_option("--type", o->type, "weight matrix type: f32, f16, bf16, q8_0, q4_0, q4_k")
      ->capture_default_str();
  cmd->add_option("--vocab", o->vocab, "GGUF file whose tokenizer.* metadata is copied")
      ->required();
  cmd->add_option("-o,--output", o->out, "output GGUF file")->required();
  cmd->add_option("--seed", o->seed, "random seed")->capture_default_str();
  cmd->add_option("-t,--threads", o->threads, "threads (default: all cores or $LONGCTX_THREADS)");
  const char* g = "Custom shape";
  cmd->add_option("--arch", o->arch, "architecture: llama or qwen2 (qwen2 adds q/k/v biases)")
      ->group(g);
  cmd->add_option("--layers", o->layers, "transformer blocks")->group(g);
  cmd->add_option("--dim", o->dim, "embedding dimension")->group(g);
  cmd->add_option("--heads", o->heads, "query heads")->group(g);
  cmd->add_option("--kv-heads", o->kv_heads, "key-value heads (default: --heads)")->group(g);
  cmd->add_option("--ffn", o->ffn, "feed-forward dimension")->group(g);
  cmd->add_option("--ctx", o->ctx, "context_length to record (default 4096)")->group(g);
  cmd->add_option("--vocab-size", o->vocab_size,
                  "embedding rows (default and minimum: the vocab file's token count)")
      ->group(g);
  cmd->add_option("--rope-base", o->rope_base, "RoPE base frequency (default 10000)")->group(g);
  cmd->add_flag("--tied", o->tied, "no output.weight: the output shares token_embd")->group(g);
  cmd->callback([o] { run_make_model(*o); });
}

}  // namespace lc::app
