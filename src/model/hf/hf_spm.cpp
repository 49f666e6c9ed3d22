// A SentencePiece tokenizer.model -> tokenizer.* metadata (model "llama": pieces, scores, types),
// read with libsentencepiece. Whether the model puts "▁" before the text (the normalizer's
// add_dummy_prefix) is found by encoding a letter.
#include <sentencepiece_processor.h>

#include "core/error.h"
#include "model/hf/hf_folder.h"

namespace lc {

void spm_tokenizer_metadata(const std::string& path, int64_t n_vocab,
                            std::vector<std::pair<std::string, GgufValue>>& kv) {
  sentencepiece::SentencePieceProcessor sp;
  const auto status = sp.Load(path);
  if (!status.ok()) fail(path, ": not a SentencePiece model (", status.ToString(), ")");
  const int n = sp.GetPieceSize();
  if (n <= 0 || n > n_vocab)
    fail(path, ": the SentencePiece model has ", n, " pieces but the embedding has ", n_vocab,
         " rows");
  std::vector<std::string> tokens(static_cast<size_t>(n_vocab));
  std::vector<float> scores(static_cast<size_t>(n_vocab), 0.0f);
  std::vector<int32_t> types(static_cast<size_t>(n_vocab), 5);
  for (int64_t i = 0; i < n_vocab; ++i) {
    const auto k = static_cast<size_t>(i);
    if (i >= n) {
      tokens[k] = "[PAD" + std::to_string(i) + "]";
      continue;
    }
    const int id = static_cast<int>(i);
    tokens[k] = sp.IdToPiece(id);
    scores[k] = sp.GetScore(id);
    types[k] = sp.IsUnknown(id)   ? 2
               : sp.IsControl(id) ? 3
               : sp.IsUnused(id)  ? 5
               : sp.IsByte(id)    ? 6
                                  : 1;
  }
  std::vector<std::string> pieces;
  const bool prefix =
      sp.Encode("a", &pieces).ok() && !pieces.empty() && pieces[0].rfind("\xE2\x96\x81", 0) == 0;
  const auto set = [&](std::string key, GgufValue v) {
    kv.emplace_back(std::move(key), std::move(v));
  };
  set("tokenizer.ggml.model", GgufValue::of_str("llama"));
  set("tokenizer.ggml.pre", GgufValue::of_str("default"));
  set("tokenizer.ggml.tokens", GgufValue::of_strs(tokens));
  set("tokenizer.ggml.scores", GgufValue::of_f32s(scores));
  set("tokenizer.ggml.token_type", GgufValue::of_i32s(types));
  set("tokenizer.ggml.add_space_prefix", GgufValue::of_bool(prefix));
  const auto id = [&](const char* key, int v) {
    if (v >= 0 && v < n) set(key, GgufValue::of_u32(static_cast<uint32_t>(v)));
  };
  id("tokenizer.ggml.bos_token_id", sp.bos_id());
  id("tokenizer.ggml.eos_token_id", sp.eos_id());
  id("tokenizer.ggml.unknown_token_id", sp.unk_id());
  id("tokenizer.ggml.padding_token_id", sp.pad_id());
}

}  // namespace lc
