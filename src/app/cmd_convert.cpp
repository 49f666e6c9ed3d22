// longctx convert: a Hugging Face model folder written as a GGUF file that llama.cpp loads —
// hyper-parameters, tokenizer and RoPE metadata in llama.cpp's key names, tensors in GGUF names
// and layouts (the q/k rows of llama-layout architectures permuted as llama.cpp's converter
// does), matrices in the requested type. The config.json rope_scaling is carried over: linear
// and yarn as rope.scaling.* keys, llama3 as the rope_freqs tensor, longrope as the
// rope_factors_long/short tensors; dynamic NTK has no GGUF form and a null rope_scaling means no
// scaling — both are reported.
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>

#include "app/commands.h"
#include "app/common.h"
#include "core/error.h"
#include "core/gguf_stream_writer.h"
#include "core/thread_pool.h"
#include "kernels/quant.h"
#include "model/names.h"

namespace lc::app {

namespace {

struct Opts {
  std::string dir, out, type = "f16";
};

// The type a matrix with rows of n_in elements gets: the requested one when its block size
// divides n_in, else q8_0, else f16, else f32.
TensorType matrix_type(TensorType want, int64_t n_in) {
  for (TensorType t : {want, TensorType::Q8_0, TensorType::F16})
    if (n_in % tensor_type_info(t).block_size == 0) return t;
  return TensorType::F32;
}

// Asks the kernel to reclaim the pages wholly inside [p, p + n) (a tensor already written): the
// source is mapped, and without this every page read stays resident until the end. Safe for any
// memory (reclaimed pages are read back when touched); a kernel without MADV_PAGEOUT ignores it.
void page_out(const void* p, size_t n) {
#ifdef MADV_PAGEOUT
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto b = reinterpret_cast<uintptr_t>(p), e = b + n;
  const uintptr_t pb = (b + page - 1) / page * page, pe = e / page * page;
  if (pe > pb) ::madvise(reinterpret_cast<void*>(pb), pe - pb, MADV_PAGEOUT);
#else
  (void)p;
  (void)n;
#endif
}

struct Extra {
  std::string name;
  std::vector<float> data;
};

// RoPE scaling as GGUF metadata and tensors; notes say what could not be stored.
void rope_metadata(const RopeSettings& s, const std::string& arch, GgufStreamWriter& w,
                   std::vector<Extra>& extra, std::vector<std::string>& notes) {
  const std::string p = arch + ".rope.scaling.";
  const auto f32 = [](double v) { return GgufValue::of_f32(static_cast<float>(v)); };
  const auto u32 = [](int64_t v) { return GgufValue::of_u32(static_cast<uint32_t>(v)); };
  switch (s.method) {
    case RopeMethod::None:
      if (s.hf_rope_scaling_null)
        notes.push_back(
            "config.json has \"rope_scaling\": null: written with no RoPE scaling, as trained; "
            "to run past the trained context set rope_scaling in config.json before converting, "
            "or choose a RoPE scaling when running the GGUF");
      break;
    case RopeMethod::Linear:
      w.set(p + "type", GgufValue::of_str("linear"));
      w.set(p + "factor", f32(s.factor));
      break;
    case RopeMethod::Yarn:
      w.set(p + "type", GgufValue::of_str("yarn"));
      w.set(p + "factor", f32(s.factor));
      w.set(p + "original_context_length", u32(s.orig_ctx));
      w.set(p + "yarn_beta_fast", f32(s.beta_fast));
      w.set(p + "yarn_beta_slow", f32(s.beta_slow));
      {
        // GGUF readers multiply rope.scaling.attn_factor into the derived 0.1 ln s + 1, so an
        // explicit attention_factor (or mscale / mscale_all_dim) is stored as its ratio to it.
        RopeSettings derived = s;
        derived.attn_factor.reset();
        derived.mscale.reset();
        derived.mscale_all_dim.reset();
        derived.attn_mult = 1.0;
        const double ratio = rope_attn_factor(s) / rope_attn_factor(derived);
        if (std::fabs(ratio - 1.0) > 1e-9) w.set(p + "attn_factor", f32(ratio));
      }
      break;
    case RopeMethod::Llama3: {
      // llama.cpp stores Llama 3's frequency scaling as per-pair divisors (rope_freqs).
      RopeSettings plain = s;
      plain.method = RopeMethod::None;
      const RopeTable scaled = rope_table(s, 0), base = rope_table(plain, 0);
      Extra e{"rope_freqs.weight", {}};
      for (size_t i = 0; i < base.inv_freq.size(); ++i)
        e.data.push_back(base.inv_freq[i] / scaled.inv_freq[i]);
      extra.push_back(std::move(e));
      break;
    }
    case RopeMethod::LongRope:
      w.set(p + "original_context_length", u32(s.orig_ctx));
      if (s.attn_factor) w.set(p + "attn_factor", f32(*s.attn_factor));
      extra.push_back({"rope_factors_long.weight", s.long_factors});
      extra.push_back({"rope_factors_short.weight", s.short_factors});
      break;
    case RopeMethod::DynamicNtk:
    case RopeMethod::FixedNtk:
      notes.push_back(std::string("RoPE scaling ") + rope_method_name(s.method) +
                      " has no GGUF form (llama.cpp does not implement it): written with no "
                      "scaling; longctx applies it when given the config.json (rope.hf_config) "
                      "or the RoPE scaling settings");
      break;
  }
}

void run_convert(const Opts& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto want = tensor_type_from_name(o.type);
  if (!want || (*want != TensorType::F32 && *want != TensorType::F16 && *want != TensorType::BF16 &&
                *want != TensorType::Q8_0 && *want != TensorType::Q4_0 &&
                *want != TensorType::Q4_K && *want != TensorType::Q6_K))
    fail("unknown --type '", o.type, "' (expected f32, f16, bf16, q8_0, q4_0, q4_k, q6_k)");
  auto model = Model::load(o.dir);
  const Model& m = *model;
  if (m.hf_config().empty())
    fail(o.dir, " is not a Hugging Face model folder (convert reads a folder with config.json)");
  const GgufFile& f = m.gguf();
  const HParams& hp = m.hparams();

  GgufStreamWriter w;
  for (const auto& [k, v] : f.metadata()) w.set(k, v);
  w.set(names::kFileType, GgufValue::of_u32(llama_file_type(*want)));
  w.set("general.quantization_version", GgufValue::of_u32(2));
  std::vector<Extra> extra;
  std::vector<std::string> notes;
  rope_metadata(m.rope(), hp.arch, w, extra, notes);
  if (f.find("tokenizer.hf.pre_regexes"))
    notes.push_back(
        "the tokenizer.json pre-tokenizer is of no llama.cpp family: its regexes are "
        "stored as tokenizer.hf.pre_regexes, which longctx reads and llama.cpp does "
        "not (llama.cpp refuses the pre-tokenizer name '" +
        f.get_str_or("tokenizer.ggml.pre", "") + "')");

  std::vector<TensorType> types;
  std::map<std::string, int> type_counts;
  for (const GgufTensor& t : f.tensors()) {
    const TensorType tt = t.ne.size() == 2 ? matrix_type(*want, t.ne[0]) : TensorType::F32;
    w.add_tensor_info(t.name, t.ne, tt);
    types.push_back(tt);
    type_counts[std::string(tensor_type_info(tt).name)]++;
  }
  for (const Extra& e : extra)
    w.add_tensor_info(e.name, {static_cast<int64_t>(e.data.size())}, TensorType::F32);

  w.begin(o.out);
  std::vector<uint8_t> buf;
  for (size_t i = 0; i < f.tensors().size(); ++i) {
    const GgufTensor& t = f.tensors()[i];
    const int64_t n_in = t.ne[0], rows = t.rows();
    const TensorTypeInfo& src = tensor_type_info(t.type);
    const auto src_rb = static_cast<size_t>(row_bytes(src, n_in));
    const auto dst_rb = static_cast<size_t>(row_bytes(tensor_type_info(types[i]), n_in));
    buf.resize(dst_rb * static_cast<size_t>(rows));
    parallel_for(rows, [&](int64_t b, int64_t e) {
      std::vector<float> row(static_cast<size_t>(n_in));
      for (int64_t r = b; r < e; ++r) {
        dequantize_row_ref(t.type, t.data + src_rb * static_cast<size_t>(r), row.data(), n_in);
        quantize_row_ref(types[i], row.data(), buf.data() + dst_rb * static_cast<size_t>(r), n_in);
      }
    });
    w.write(buf.data(), buf.size());
    page_out(t.data, t.nbytes);
  }
  for (const Extra& e : extra) w.write(e.data.data(), e.data.size() * sizeof(float));
  w.finish();

  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::string tl;
  for (const auto& [name, n] : type_counts)
    tl += (tl.empty() ? "" : ", ") + name + " x" + std::to_string(n);
  std::fprintf(stderr,
               "convert: %s (%s, %d layers, vocab %d) -> %s: %zu tensors (%s), rope %s, %.1f s\n",
               o.dir.c_str(), hp.arch.c_str(), hp.n_layer, hp.n_vocab, o.out.c_str(),
               f.tensors().size() + extra.size(), tl.c_str(), rope_summary(m.rope()).c_str(), secs);
  for (const std::string& n : notes) std::cerr << "convert: note: " << n << "\n";
}

}  // namespace

void register_convert(CLI::App& root) {
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = root.add_subcommand(
      "convert", "write a Hugging Face model folder (config.json, safetensors, tokenizer) as GGUF");
  cmd->add_option("dir", o->dir, "Hugging Face model folder")->required();
  cmd->add_option("-o,--output", o->out, "output GGUF file")->required();
  cmd->add_option("--type", o->type, "weight matrix type: f32, f16, bf16, q8_0, q4_0, q4_k, q6_k")
      ->capture_default_str();
  cmd->callback([o] { run_convert(*o); });
}

}  // namespace lc::app
