// Full attention: every key and value is kept; keys are stored rotated at their absolute
// positions. When the RoPE table changes between steps (dynamic NTK, LongRoPE short->long), the
// stored keys are re-rotated to the new table so that every key is always consistent with it.
//
// Keys and values are stored as the memory's KvType (kv_type.h): f32, f16 (half the bytes read
// per decoded token) or q8_0 (about 3.8x fewer; needs a head dim that is a multiple of 32). New
// keys are rotated in f32, then converted; re-rotation converts the stored keys back to f32,
// rotates them and converts them again (so with f16 / q8_0 each table change rounds once more).
#pragma once

#include <vector>

#include "kernels/kv_type.h"
#include "kernels/quant_blocks.h"
#include "memory/kv_memory.h"
#include "memory/memory_state.h"

namespace lc {

class FullMemory final : public KvMemory {
 public:
  // max_tokens: a hard limit on stored tokens (0 = unlimited); exceeding it is an lc::Error.
  // kv_type Q8_0 with a head dim that is not a multiple of 32 is an lc::Error.
  FullMemory(const MemoryDims& dims, int64_t max_tokens, KvType kv_type = KvType::F32);

  std::string name() const override { return "full"; }
  void attend(int layer, const MemoryStep& step, float* q, const float* k, const float* v,
              float* out) override;
  void commit(const MemoryStep& step) override;
  void reset() override;
  int64_t n_past() const override { return n_past_; }
  bool last_token_alone() const override { return false; }
  size_t bytes_in_ram() const override;
  KvType kv_type() const { return type_; }
  // State: the tables in the head; rows in segments of the rows appended between saves (all
  // written again after a re-rotation).
  void save_state(MemorySave& out) override;
  void load_state(MemoryLoad& in) override;
  bool truncate(int64_t n) override;

 private:
  // Rows of n_head_kv * head_dim elements in the memory's type: only that type's vector is used.
  struct Rows {
    std::vector<float> f32;
    std::vector<uint16_t> f16;
    std::vector<BlockQ8_0> q8;
  };
  struct Layer {
    Rows k, v;        // [n_past, n_head_kv*head_dim]
    RopeTable table;  // table the stored keys are rotated with
  };
  // Storage of element `elem` (a multiple of the type's block) of `r`.
  void* at(Rows& r, int64_t elem) const;
  // Appends n f32 elements to r, converted to the memory's type.
  void append(Rows& r, const float* x, int64_t n) const;
  // Re-rotates the n_past_ stored keys of L by `delta` (see attend).
  void rerotate(Layer& L, const RopeTable& delta);

  MemoryDims dims_;
  int64_t max_tokens_;
  KvType type_;
  int64_t n_past_ = 0;
  std::vector<Layer> layers_;
  Segments saved_;  // rows already in immutable objects
  AttnState state_;
  std::vector<float> scratch_;  // f32 rows being rotated before they are stored
  RopeAngles angles_;           // cos / sin of the current step's positions
};

}  // namespace lc
