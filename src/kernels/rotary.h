// Applying rotary position embedding from a precomputed inverse-frequency table.
#pragma once

#include <cstdint>
#include <vector>

namespace lc {

// Adjacent: pairs (x[2i], x[2i+1]) (llama GGUF layout). SplitHalf: pairs (x[i], x[i + d/2])
// (GPT-NeoX / HF layout, used by qwen2, phi3 in GGUF).
enum class RopeLayout { Adjacent, SplitHalf };

struct RopeTable {
  std::vector<float> inv_freq;  // dim/2 entries
  float attn_factor = 1.0f;     // multiplies both cos and sin
  int dim = 0;
  RopeLayout layout = RopeLayout::Adjacent;
  // Positions below n_hat rotate with start_inv_freq (dim/2 entries when n_hat > 0) and
  // start_attn_factor instead (LongRoPE's leading positions left unscaled).
  int64_t n_hat = 0;
  std::vector<float> start_inv_freq;
  float start_attn_factor = 1.0f;

  bool operator==(const RopeTable&) const = default;
};

// cos/sin (already multiplied by the attention factor) for one position: dim/2 each.
void rope_cos_sin(const RopeTable& t, double pos, float* cos_out, float* sin_out);
// The attention factor a position is rotated with (start_attn_factor below n_hat).
float rope_attn_factor_at(const RopeTable& t, double pos);

// The table that turns keys rotated with `from` into keys rotated with `to` (angle differences,
// ratio of attention factors, per region of positions). Both must share n_hat.
RopeTable rope_delta(const RopeTable& from, const RopeTable& to);

// Rotates n_vec vectors of head_dim (stride floats apart) in place by one position's cos/sin.
// Only the first t.dim elements of each vector rotate (partial rotary).
void rope_rotate(const RopeTable& t, const float* cs, const float* sn, float* x, int64_t n_vec,
                 int64_t head_dim, int64_t stride);

// Rotates `n_tok` rows of `n_heads` vectors each, token t at position pos0 + t * pos_step.
// Rows are `row_stride` floats apart; heads are head_dim apart inside a row.
void rope_apply(const RopeTable& t, float* x, int64_t n_tok, int64_t row_stride, int64_t n_heads,
                int64_t head_dim, int64_t pos0, int64_t pos_step = 1);

// cos / sin of the positions pos0 + i (i < n), computed once and reused by every layer's keys and
// queries of a forward step (the same numbers rope_cos_sin gives for each position).
struct RopeAngles {
  RopeTable table;
  int64_t pos0 = 0, n = 0;
  std::vector<float> cs, sn;  // n x dim/2 each

  // Fills the angles of (t, pos0, n) unless they are already those.
  void fill(const RopeTable& t, int64_t pos0, int64_t n);
};

// rope_apply with the angles of `a`: token i of x at position a.pos0 + i, i < n_tok <= a.n.
void rope_apply(const RopeAngles& a, float* x, int64_t n_tok, int64_t row_stride, int64_t n_heads,
                int64_t head_dim);

}  // namespace lc
