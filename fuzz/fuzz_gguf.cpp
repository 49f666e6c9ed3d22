// libFuzzer target for the GGUF reader: any byte string must either parse or raise lc::Error;
// whatever parses is walked completely (every getter on every key, every tensor byte), so the
// sanitizers see any pointer the reader hands out that is not inside the image.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "core/gguf.h"
#include "kernels/quant.h"

namespace {

volatile uint64_t g_sink;

template <typename F>
void touch_getter(F&& f) {
  try {
    f();
  } catch (const lc::Error&) {
    // A type mismatch is a normal answer for a getter.
  }
}

bool dequantizable(lc::TensorType t) {
  switch (t) {
    case lc::TensorType::F32:
    case lc::TensorType::F16:
    case lc::TensorType::BF16:
    case lc::TensorType::Q4_0:
    case lc::TensorType::Q4_1:
    case lc::TensorType::Q5_0:
    case lc::TensorType::Q5_1:
    case lc::TensorType::Q8_0:
    case lc::TensorType::Q2_K:
    case lc::TensorType::Q3_K:
    case lc::TensorType::Q4_K:
    case lc::TensorType::Q5_K:
    case lc::TensorType::Q6_K:
    case lc::TensorType::Q8_K:
      return true;
    default:
      return false;
  }
}

void walk(const lc::GgufFile& f) {
  uint64_t h = f.version() + f.alignment() + f.file_size();
  for (const auto& kv : f.metadata()) {
    const std::string& key = kv.first;
    const lc::GgufValue& v = kv.second;
    h += key.size() + v.to_string().size() + v.items.size();
    if (f.find(key) != &v) __builtin_trap();
    touch_getter([&] { h += f.get_str(key).value_or("").size(); });
    touch_getter([&] { h += static_cast<uint64_t>(f.get_int(key).value_or(0)); });
    touch_getter([&] { h += static_cast<uint64_t>(f.get_float(key).value_or(0) != 0); });
    touch_getter([&] { h += f.get_bool(key).value_or(false); });
    touch_getter([&] { h += f.get_str_array(key).value_or(std::vector<std::string>{}).size(); });
    touch_getter([&] { h += f.get_f32_array(key).value_or(std::vector<float>{}).size(); });
    touch_getter([&] { h += f.get_i32_array(key).value_or(std::vector<int32_t>{}).size(); });
    touch_getter([&] { h += f.get_str_or(key, "").size(); });
    touch_getter([&] { h += static_cast<uint64_t>(f.get_int_or(key, 0)); });
    touch_getter([&] { h += static_cast<uint64_t>(f.get_float_or(key, 0) != 0); });
    touch_getter([&] { h += f.get_bool_or(key, false); });
  }
  std::vector<float> row;
  for (const lc::GgufTensor& t : f.tensors()) {
    if (f.tensor(t.name) != &t) __builtin_trap();
    h += static_cast<uint64_t>(t.n_elements()) + static_cast<uint64_t>(t.rows());
    for (uint64_t k = 0; k < t.nbytes; ++k) h += t.data[k];
    // Dequantize the first row of the types the reference code supports (rows are short here).
    const int64_t n = t.ne[0];
    if (n <= 4096 && dequantizable(t.type)) {
      row.resize(static_cast<size_t>(n));
      lc::dequantize_row_ref(t.type, t.data, row.data(), n);
      for (float x : row) h += static_cast<uint64_t>(x == x);
    }
  }
  g_sink = h;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto f = lc::GgufFile::from_bytes(std::vector<uint8_t>(data, data + size), "fuzz.gguf");
    walk(*f);
  } catch (const lc::Error&) {
    // Rejected input: the expected outcome for most mutations.
  }
  return 0;
}
