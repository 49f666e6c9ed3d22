// libFuzzer target for saved session state: the memories' state records (full, streaming, infllm)
// read from arbitrary bytes, and the session file (bundle) reader. Any input must give an
// lc::Error or a loaded memory, never a crash, a hang or a huge allocation.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/object_store.h"
#include "memory/context_memory.h"
#include "memory/full_memory.h"

namespace {

// Serves the input's pieces (split at "\xff\xfe") as objects, whatever the key.
class PieceStore final : public lc::ObjectStore {
 public:
  explicit PieceStore(std::vector<std::vector<uint8_t>> pieces) : pieces_(std::move(pieces)) {}
  std::string describe() const override { return "fuzz"; }
  bool has(const std::string&) const override { return true; }
  std::vector<uint8_t> get(const std::string& key) const override {
    if (pieces_.empty()) lc::fail("no object ", key);
    size_t h = 0;
    for (char c : key) h = h * 31 + static_cast<unsigned char>(c);
    return pieces_[h % pieces_.size()];
  }
  std::vector<std::string> list(const std::string&) const override { return {}; }
  void remove(const std::string&) override {}
  void put_manifest(const std::string&, const std::string&,
                    const std::vector<std::string>&) override {}
  std::optional<std::string> get_manifest(const std::string&) const override {
    return std::nullopt;
  }
  std::vector<std::string> manifests() const override { return {}; }
  void remove_manifest(const std::string&) override {}
  uint64_t bytes(const std::string&) const override { return 0; }

 protected:
  void put_object(const std::string&, const std::vector<uint8_t>&) override {}

 private:
  std::vector<std::vector<uint8_t>> pieces_;
};

lc::MemoryDims dims() {
  lc::MemoryDims d;
  d.n_layer = 2;
  d.attn.n_head = 2;
  d.attn.n_head_kv = 1;
  d.attn.head_dim = 32;
  return d;
}

void load(lc::KvMemory& m, const std::vector<uint8_t>& head, const PieceStore& store) {
  lc::ByteReader r(head.data(), head.size(), "fuzz");
  lc::MemoryLoad in{store, r};
  try {
    m.load_state(in);
  } catch (const lc::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  // Pieces: head, then objects.
  std::vector<std::vector<uint8_t>> pieces(1);
  for (size_t i = 1; i < size; ++i) {
    if (i + 1 < size && data[i] == 0xff && data[i + 1] == 0xfe) {
      pieces.emplace_back();
      ++i;
    } else {
      pieces.back().push_back(data[i]);
    }
  }
  const std::vector<uint8_t> head = pieces.front();
  pieces.erase(pieces.begin());
  const PieceStore store(pieces);
  switch (data[0] % 5) {
    case 0:
    case 1:
    case 2: {
      lc::FullMemory m(dims(), 1 << 16, static_cast<lc::KvType>(data[0] % 3));
      load(m, head, store);
      break;
    }
    case 3: {
      lc::ContextMemoryOptions o;
      o.infllm = (data[0] / 5) % 2 == 0;
      o.n_init = 4;
      o.n_local = 16;
      o.block_size = 8;
      o.exec_block = 8;
      o.topk = 2;
      o.repr_topk = 2;
      lc::ContextMemory m(dims(), o);
      load(m, head, store);
      break;
    }
    default: {
      // The session file reader.
      char path[] = "/tmp/fuzz-session-XXXXXX";
      const int fd = ::mkstemp(path);
      if (fd < 0) return 0;
      if (::write(fd, data + 1, size - 1) != static_cast<ssize_t>(size - 1)) {
        ::close(fd);
        ::unlink(path);
        return 0;
      }
      ::close(fd);
      try {
        auto s = lc::open_bundle_store(path);
        for (const std::string& n : s->manifests()) (void)s->get_manifest(n);
        for (const std::string& k : s->list("session")) (void)s->get(k);
      } catch (const lc::Error&) {
      }
      ::unlink(path);
    }
  }
  return 0;
}
