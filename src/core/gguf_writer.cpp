// GGUF v3 writer: metadata in insertion order, tensor infos, then the data section with every
// tensor's data aligned to the file's alignment.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "core/gguf.h"

namespace lc {

namespace {

class ByteSink {
 public:
  std::vector<uint8_t> bytes;

  template <typename T>
  void put(T v) {
    const size_t at = bytes.size();
    bytes.resize(at + sizeof(T));
    std::memcpy(bytes.data() + at, &v, sizeof(T));
  }
  void put_str(const std::string& s) {
    put<uint64_t>(s.size());
    bytes.insert(bytes.end(), s.begin(), s.end());
  }
  void pad_to(uint64_t alignment) {
    while (bytes.size() % alignment != 0) bytes.push_back(0);
  }
};

void put_value(ByteSink& out, const GgufValue& v, GgufType t, const std::string& key) {
  if (v.type != t) {
    fail("GgufWriter: key '", key, "': array item of type ", gguf_type_name(v.type),
         " in an array of ", gguf_type_name(t));
  }
  switch (t) {
    case GgufType::U8:
      out.put(static_cast<uint8_t>(v.u));
      break;
    case GgufType::I8:
      out.put(static_cast<int8_t>(v.i));
      break;
    case GgufType::U16:
      out.put(static_cast<uint16_t>(v.u));
      break;
    case GgufType::I16:
      out.put(static_cast<int16_t>(v.i));
      break;
    case GgufType::U32:
      out.put(static_cast<uint32_t>(v.u));
      break;
    case GgufType::I32:
      out.put(static_cast<int32_t>(v.i));
      break;
    case GgufType::U64:
      out.put(static_cast<uint64_t>(v.u));
      break;
    case GgufType::I64:
      out.put(static_cast<int64_t>(v.i));
      break;
    case GgufType::F32:
      out.put(static_cast<float>(v.f));
      break;
    case GgufType::F64:
      out.put(static_cast<double>(v.f));
      break;
    case GgufType::BOOL:
      out.put(static_cast<uint8_t>(v.u != 0 ? 1 : 0));
      break;
    case GgufType::STRING:
      out.put_str(v.s);
      break;
    case GgufType::ARRAY:
      out.put(static_cast<uint32_t>(v.elem_type));
      out.put<uint64_t>(v.items.size());
      for (const GgufValue& it : v.items) put_value(out, it, v.elem_type, key);
      break;
  }
}

bool is_pow2(uint64_t a) { return a != 0 && (a & (a - 1)) == 0; }

}  // namespace

void GgufWriter::set(const std::string& key, GgufValue v) {
  if (key == "general.alignment" && v.type == GgufType::U32 && is_pow2(v.u)) alignment_ = v.u;
  for (auto& kv : kv_) {
    if (kv.first == key) {
      kv.second = std::move(v);
      return;
    }
  }
  kv_.emplace_back(key, std::move(v));
}

void GgufWriter::set_alignment(uint64_t a) {
  if (!is_pow2(a) || a > std::numeric_limits<uint32_t>::max()) {
    fail("GgufWriter: alignment ", a, " is not a power of two that fits in u32");
  }
  alignment_ = a;
  set("general.alignment", GgufValue::of_u32(static_cast<uint32_t>(a)));
}

void GgufWriter::add_tensor(const std::string& name, const std::vector<int64_t>& ne,
                            TensorType type, const void* data, size_t nbytes) {
  const TensorTypeInfo& ti = tensor_type_info(type);
  if (name.empty()) fail("GgufWriter: empty tensor name");
  for (const T& t : tensors_) {
    if (t.name == name) fail("GgufWriter: duplicate tensor name '", name, "'");
  }
  if (ne.empty() || ne.size() > 4) {
    fail("GgufWriter: tensor '", name, "' has ", ne.size(), " dimensions (must be 1 to 4)");
  }
  int64_t n = 1;
  for (int64_t d : ne) {
    if (d <= 0 || n > std::numeric_limits<int64_t>::max() / d) {
      fail("GgufWriter: tensor '", name, "' has an invalid dimension ", d);
    }
    n *= d;
  }
  if (ne[0] % ti.block_size != 0) {
    fail("GgufWriter: tensor '", name, "' row size ", ne[0],
         " is not a multiple of the block size ", ti.block_size, " of ", ti.name);
  }
  const int64_t expect = n / ti.block_size * ti.type_size;
  if (static_cast<uint64_t>(expect) != nbytes) {
    fail("GgufWriter: tensor '", name, "' of type ", ti.name, " needs ", expect, " bytes, got ",
         nbytes);
  }
  T t{name, ne, type, {}};
  const auto* p = static_cast<const uint8_t*>(data);
  t.data.assign(p, p + nbytes);
  tensors_.push_back(std::move(t));
}

void GgufWriter::add_tensor_f32(const std::string& name, const std::vector<int64_t>& ne,
                                const std::vector<float>& data) {
  add_tensor(name, ne, TensorType::F32, data.data(), data.size() * sizeof(float));
}

std::vector<uint8_t> GgufWriter::to_bytes() const {
  ByteSink out;
  out.bytes.insert(out.bytes.end(), {'G', 'G', 'U', 'F'});
  out.put<uint32_t>(3);
  out.put<uint64_t>(tensors_.size());
  out.put<uint64_t>(kv_.size());
  for (const auto& [key, v] : kv_) {
    out.put_str(key);
    out.put(static_cast<uint32_t>(v.type));
    put_value(out, v, v.type, key);
  }
  uint64_t offset = 0;
  for (const T& t : tensors_) {
    out.put_str(t.name);
    out.put<uint32_t>(static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) out.put<uint64_t>(static_cast<uint64_t>(d));
    out.put(static_cast<uint32_t>(t.type));
    out.put<uint64_t>(offset);
    offset += (t.data.size() + alignment_ - 1) / alignment_ * alignment_;
  }
  if (!tensors_.empty()) out.pad_to(alignment_);
  for (const T& t : tensors_) {
    out.bytes.insert(out.bytes.end(), t.data.begin(), t.data.end());
    out.pad_to(alignment_);
  }
  return out.bytes;
}

void GgufWriter::write(const std::string& path) const {
  const std::vector<uint8_t> bytes = to_bytes();
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) fail("cannot create GGUF file ", path, ": ", std::strerror(errno));
  const size_t n = std::fwrite(bytes.data(), 1, bytes.size(), f);
  const bool ok = n == bytes.size() && std::fflush(f) == 0;
  const int err = errno;
  if (std::fclose(f) != 0 || !ok) {
    std::remove(path.c_str());
    fail("cannot write GGUF file ", path, ": ", std::strerror(err));
  }
}

}  // namespace lc
