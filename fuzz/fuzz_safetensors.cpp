// libFuzzer target for the safetensors reader: any byte string must either parse or raise
// lc::Error; whatever parses is walked completely (every tensor byte, every lookup), so the
// sanitizers see any pointer the reader hands out that is not inside the image.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "core/safetensors.h"

namespace {

volatile uint64_t g_sink;

void walk(const lc::SafetensorsFile& f) {
  uint64_t h = f.file_size() + f.metadata().size();
  for (const auto& [k, v] : f.metadata()) h += k.size() + v.size();
  for (const lc::SafetensorsTensor& t : f.tensors()) {
    if (f.tensor(t.name) != &t) __builtin_trap();
    if (t.end < t.begin ||
        t.nbytes() != static_cast<uint64_t>(t.n_elements()) * lc::safetensors_dtype_size(t.dtype))
      __builtin_trap();
    h += t.shape.size() + (t.type ? static_cast<uint64_t>(*t.type) : 0);
    for (uint64_t k = 0; k < t.nbytes(); ++k) h += t.data[k];
  }
  g_sink = h;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto f = lc::SafetensorsFile::from_bytes(std::vector<uint8_t>(data, data + size),
                                             "fuzz.safetensors");
    walk(*f);
  } catch (const lc::Error&) {
    // Rejected input: the expected outcome for most mutations.
  }
  return 0;
}
