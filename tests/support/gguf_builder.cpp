#include "support/gguf_builder.h"

#include <cstring>

namespace lc::test {

namespace {

template <typename T>
void put(std::vector<uint8_t>& b, T v) {
  const size_t at = b.size();
  b.resize(at + sizeof(T));
  std::memcpy(b.data() + at, &v, sizeof(T));
}

}  // namespace

GgufBytes& GgufBytes::raw(std::string_view s) {
  bytes.insert(bytes.end(), s.begin(), s.end());
  return *this;
}
GgufBytes& GgufBytes::u8(uint8_t v) {
  put(bytes, v);
  return *this;
}
GgufBytes& GgufBytes::u16(uint16_t v) {
  put(bytes, v);
  return *this;
}
GgufBytes& GgufBytes::u32(uint32_t v) {
  put(bytes, v);
  return *this;
}
GgufBytes& GgufBytes::u64(uint64_t v) {
  put(bytes, v);
  return *this;
}
GgufBytes& GgufBytes::f32(float v) {
  put(bytes, v);
  return *this;
}
GgufBytes& GgufBytes::str(std::string_view s) {
  u64(s.size());
  return raw(s);
}
GgufBytes& GgufBytes::zeros(size_t n) {
  bytes.resize(bytes.size() + n, 0);
  return *this;
}
GgufBytes& GgufBytes::pad_to(size_t alignment) {
  while (bytes.size() % alignment != 0) bytes.push_back(0);
  return *this;
}

GgufBytes& GgufBytes::header(uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
  raw("GGUF");
  u32(version);
  u64(n_tensors);
  return u64(n_kv);
}

GgufBytes& GgufBytes::key(std::string_view k, uint32_t type) {
  str(k);
  return u32(type);
}

GgufBytes& GgufBytes::kv_u32(std::string_view k, uint32_t v) {
  key(k, 4);
  return u32(v);
}

GgufBytes& GgufBytes::kv_str(std::string_view k, std::string_view v) {
  key(k, 8);
  return str(v);
}

GgufBytes& GgufBytes::tensor_info(std::string_view name, const std::vector<uint64_t>& ne,
                                  uint32_t type, uint64_t offset) {
  str(name);
  u32(static_cast<uint32_t>(ne.size()));
  for (uint64_t d : ne) u64(d);
  u32(type);
  return u64(offset);
}

void patch_u32(std::vector<uint8_t>& b, size_t at, uint32_t v) {
  std::memcpy(b.data() + at, &v, 4);
}
void patch_u64(std::vector<uint8_t>& b, size_t at, uint64_t v) {
  std::memcpy(b.data() + at, &v, 8);
}

}  // namespace lc::test
