#include "memory/memory_state.h"

#include <algorithm>

#include "core/error.h"

namespace lc {

void put_table(ByteWriter& w, const RopeTable& t) {
  w.array(t.inv_freq);
  w.put(t.attn_factor);
  w.put<int32_t>(t.dim);
  w.put<uint8_t>(static_cast<uint8_t>(t.layout));
  w.put<int64_t>(t.n_hat);
  w.array(t.start_inv_freq);
  w.put(t.start_attn_factor);
}

RopeTable get_table(ByteReader& r) {
  RopeTable t;
  t.inv_freq = r.array<float>(1 << 16);
  t.attn_factor = r.get<float>();
  t.dim = r.get<int32_t>();
  const uint8_t layout = r.get<uint8_t>();
  r.expect(layout <= static_cast<uint8_t>(RopeLayout::SplitHalf), "RoPE layout");
  t.layout = static_cast<RopeLayout>(layout);
  r.expect(t.dim >= 0 && static_cast<size_t>(t.dim) == 2 * t.inv_freq.size(), "RoPE dimension");
  t.n_hat = r.get<int64_t>();
  t.start_inv_freq = r.array<float>(1 << 16);
  t.start_attn_factor = r.get<float>();
  r.expect(t.n_hat >= 0 && (t.n_hat == 0 || t.start_inv_freq.size() == t.inv_freq.size()),
           "RoPE leading positions");
  return t;
}

void put_memory_tag(ByteWriter& w, const std::string& kind, const MemoryDims& dims) {
  w.str(kind);
  w.put<int32_t>(dims.n_layer);
  w.put<int32_t>(static_cast<int32_t>(dims.attn.n_head));
  w.put<int32_t>(static_cast<int32_t>(dims.attn.n_head_kv));
  w.put<int32_t>(static_cast<int32_t>(dims.attn.head_dim));
}

void check_memory_tag(ByteReader& r, const std::string& kind, const MemoryDims& dims) {
  const std::string k = r.str(64);
  if (k != kind)
    fail(r.what(), ": the state was saved by a '", k, "' memory, this session's is '", kind, "'");
  const int32_t nl = r.get<int32_t>(), nh = r.get<int32_t>(), nkv = r.get<int32_t>(),
                hd = r.get<int32_t>();
  if (nl != dims.n_layer || nh != dims.attn.n_head || nkv != dims.attn.n_head_kv ||
      hd != dims.attn.head_dim)
    fail(r.what(), ": the state was saved for ", nl, " layers of ", nh, " heads (", nkv,
         " KV heads) of ", hd, ", this model has ", dims.n_layer, " layers of ", dims.attn.n_head,
         " heads (", dims.attn.n_head_kv, " KV heads) of ", dims.attn.head_dim);
}

void Segments::truncate(int64_t n) {
  while (!list_.empty() && list_.back().last > n) list_.pop_back();
}

int64_t Segments::items_per_segment(size_t item_bytes) {
  constexpr size_t kSegmentBytes = size_t{64} << 20;
  return static_cast<int64_t>(std::max<size_t>(1, kSegmentBytes / std::max<size_t>(1, item_bytes)));
}

void Segments::save(MemorySave& out, int64_t n, int64_t max_items,
                    const std::function<std::vector<uint8_t>(int64_t, int64_t)>& make) {
  LC_CHECK(saved() <= n && max_items > 0);
  for (Segment& s : list_) {
    if (s.key.compare(0, out.ns.size() + 1, out.ns + "/") == 0 && out.store.has(s.key)) continue;
    s.key = out.store.put(out.ns, make(s.first, s.last));
  }
  while (saved() < n) {
    const int64_t first = saved(), last = std::min(n, first + max_items);
    list_.push_back({out.store.put(out.ns, make(first, last)), first, last});
  }
  out.head.put<uint64_t>(list_.size());
  for (const Segment& s : list_) {
    out.head.str(s.key);
    out.head.put(s.first);
    out.head.put(s.last);
    out.refs.push_back(s.key);
  }
}

void Segments::load(MemoryLoad& in, int64_t n,
                    const std::function<void(int64_t, int64_t, const std::vector<uint8_t>&)>& use) {
  list_.clear();
  const uint64_t count = in.head.get<uint64_t>();
  in.head.expect(count <= static_cast<uint64_t>(n) + 1, "segment count");
  int64_t at = 0;
  for (uint64_t i = 0; i < count; ++i) {
    Segment s;
    s.key = in.head.str(256);
    s.first = in.head.get<int64_t>();
    s.last = in.head.get<int64_t>();
    in.head.expect(s.first == at && s.last > s.first && s.last <= n, "segment range");
    use(s.first, s.last, in.store.get(s.key));
    at = s.last;
    list_.push_back(std::move(s));
  }
  in.head.expect(at == n, "segments (they do not cover the state)");
}

}  // namespace lc
