// Scratch memory of the kernels, owned by their caller (a session's Workspace, a KV memory, a
// test) instead of by the kernels themselves, so that one process can run many sessions on many
// threads: kernels keep no process-wide or thread_local buffers.
//
// A KernelScratch holds one slot per thread of the pool (core/thread_pool.h). A kernel running
// a chunk or task of a parallel region uses the slot of thread_index(); the caller (and any kernel
// called outside a region) uses slot 0. Parallel regions of different callers are serialised by
// the pool, so two chunks that run at the same time never share a slot, and a KernelScratch is
// used by one caller thread at a time (the session that owns it).
//
// Buffers only grow (reused from call to call, never reallocated per call); bytes() reports what
// they hold, for memory accounting.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace lc {

// A growable block of bytes aligned to 64. get() keeps the block when it is large enough and
// otherwise replaces it (the old contents are not kept).
class AlignedBytes {
 public:
  void* get(size_t n);
  size_t bytes() const { return size_; }

 private:
  struct Free {
    void operator()(std::byte* p) const;
  };
  std::unique_ptr<std::byte, Free> p_;
  size_t size_ = 0;
};

// Buffers of KernelTable::matmul_rows (the SIMD row kernels of simd_x86_matmul.h, the AVX-512
// panels of simd_avx512_panel.h and the BF16 panels of simd_avx512_bf16.cpp).
struct MatmulRowScratch {
  static constexpr int kPanels = 2;
  AlignedBytes tile;  // unpacked rows of one row tile (simd_x86_matmul.h: QScratch), or BF16 panels
  std::vector<int8_t> q;             // rows of a panel in canonical form, a chunk of K at a time
  std::vector<float> s4;             // their scales per 4 elements
  std::vector<float> m32;            // their mins per 32 elements
  std::vector<uint8_t> pq[kPanels];  // packed panels
  std::vector<float> pd[kPanels], pm[kPanels];
  std::vector<int32_t> pb[kPanels];  // integer bias of the Q6_K panels (AVX2: of every panel)
  std::vector<uint8_t> act_u;        // AVX2 panels: the quantized activations + 128
  std::vector<float> act16;          // activation sums per 16 elements (mins of Q2_K)
  size_t bytes() const;
};

// One piece of a matmul_group region: rows [r0, r1) of matrix m.
struct MatmulTask {
  int m;
  int64_t r0, r1;
};

// The buffers of one thread. Each kernel that may run inside another one (a nested region runs on
// the same thread) has members of its own.
struct ThreadScratch {
  // matmul.cpp
  std::vector<float> dequant;  // rows of a weight type without a direct kernel
  std::vector<int8_t> act_q;   // the input rows quantized (the caller's slot; read by all)
  std::vector<float> act_d, act_s;
  std::vector<uint16_t> act_b;  // the input rows rounded to bf16 (the caller's slot; read by all)
  std::vector<MatmulTask> tasks;
  MatmulRowScratch rows;

  // attention.cpp
  std::vector<float> keys_t;  // a span's keys transposed (+ f16 values as f32), the caller's
  std::vector<float> key_row;
  std::vector<float> scores, tmax;      // one tile's scores of a query's heads and their maxima
  std::vector<float> part_m, part_acc;  // partial softmax states of the split path (caller's)
  std::vector<double> part_l;
  std::vector<float> blk_q, blk_k, blk_v, blk_s, blk_acc, blk_mx, blk_m;  // block_item
  std::vector<double> blk_l;
  std::vector<int64_t> blk_lo, blk_hi;
  std::vector<float> mass_q, mass_s, mass_mx;  // attention_key_mass
  std::vector<double> mass_sum;

  size_t bytes() const;
};

class KernelScratch {
 public:
  KernelScratch() = default;
  KernelScratch(KernelScratch&&) = default;
  KernelScratch& operator=(KernelScratch&&) = default;

  // Makes sure there is a slot for every thread of the pool. Kernels call it on entry; outside a
  // parallel region it adds what is missing, inside one the slots must already be there (the pool
  // cannot grow while a region runs).
  void prepare();
  // The slot of the current thread (thread_index()); prepare() must have run since the thread
  // count last changed.
  ThreadScratch& slot();

  int slots() const { return static_cast<int>(slots_.size()); }
  // Bytes held by every slot's buffers.
  size_t bytes() const;

 private:
  std::vector<std::unique_ptr<ThreadScratch>> slots_;
};

}  // namespace lc
