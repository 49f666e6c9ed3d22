#include "kernels/scratch.h"

#include <new>

#include "core/error.h"
#include "core/thread_pool.h"

namespace lc {

namespace {

constexpr size_t kAlign = 64;

template <typename T>
size_t cap(const std::vector<T>& v) {
  return v.capacity() * sizeof(T);
}

}  // namespace

void AlignedBytes::Free::operator()(std::byte* p) const {
  ::operator delete (p, std::align_val_t{kAlign});
}

void* AlignedBytes::get(size_t n) {
  if (n > size_ || !p_) {
    const size_t want = (n + kAlign - 1) / kAlign * kAlign;
    p_.reset();
    size_ = 0;
    p_.reset(static_cast<std::byte*>(
        ::operator new (want == 0 ? kAlign : want, std::align_val_t{kAlign})));
    size_ = want == 0 ? kAlign : want;
  }
  return p_.get();
}

size_t MatmulRowScratch::bytes() const {
  size_t b = tile.bytes() + cap(q) + cap(s4) + cap(m32) + cap(act_u) + cap(act16);
  for (int p = 0; p < kPanels; ++p) b += cap(pq[p]) + cap(pd[p]) + cap(pm[p]) + cap(pb[p]);
  return b;
}

size_t ThreadScratch::bytes() const {
  // keys_t reserves its largest size once but grows only as far as it is written (its size).
  return cap(dequant) + cap(act_q) + cap(act_d) + cap(act_s) + cap(act_b) + cap(tasks) +
         rows.bytes() + keys_t.size() * sizeof(float) + cap(key_row) + cap(scores) + cap(tmax) +
         cap(part_m) + cap(part_acc) + cap(part_l) + cap(blk_q) + cap(blk_k) + cap(blk_v) +
         cap(blk_s) + cap(blk_acc) + cap(blk_mx) + cap(blk_m) + cap(blk_l) + cap(blk_lo) +
         cap(blk_hi) + cap(mass_q) + cap(mass_s) + cap(mass_mx) + cap(mass_sum);
}

void KernelScratch::prepare() {
  const size_t n = static_cast<size_t>(num_threads());
  if (slots_.size() >= n) return;
  LC_CHECK(!in_parallel_region());
  while (slots_.size() < n) slots_.push_back(std::make_unique<ThreadScratch>());
}

ThreadScratch& KernelScratch::slot() {
  const size_t i = static_cast<size_t>(thread_index());
  LC_CHECK(i < slots_.size());
  return *slots_[i];
}

size_t KernelScratch::bytes() const {
  size_t b = slots_.capacity() * sizeof(slots_[0]);
  for (const auto& s : slots_) b += sizeof(ThreadScratch) + s->bytes();
  return b;
}

}  // namespace lc
