// Byte-level GGUF image builder for tests: writes fields one by one (so a test can write wrong
// counts, lengths, types and offsets) and remembers offsets of interest for error-message checks.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lc::test {

class GgufBytes {
 public:
  std::vector<uint8_t> bytes;

  size_t size() const { return bytes.size(); }

  GgufBytes& raw(std::string_view s);
  GgufBytes& u8(uint8_t v);
  GgufBytes& u16(uint16_t v);
  GgufBytes& u32(uint32_t v);
  GgufBytes& u64(uint64_t v);
  GgufBytes& f32(float v);
  GgufBytes& str(std::string_view s);  // u64 length + bytes
  GgufBytes& zeros(size_t n);
  GgufBytes& pad_to(size_t alignment);  // zero bytes up to a multiple of alignment

  // "GGUF", version, tensor count, metadata count.
  GgufBytes& header(uint32_t version, uint64_t n_tensors, uint64_t n_kv);
  // Key, value type and (for the typed helpers) the value.
  GgufBytes& key(std::string_view k, uint32_t type);
  GgufBytes& kv_u32(std::string_view k, uint32_t v);
  GgufBytes& kv_str(std::string_view k, std::string_view v);
  // Name, n_dims, dims, tensor type id, offset.
  GgufBytes& tensor_info(std::string_view name, const std::vector<uint64_t>& ne, uint32_t type,
                         uint64_t offset);
};

// Overwrites a little-endian field inside an image.
void patch_u32(std::vector<uint8_t>& b, size_t at, uint32_t v);
void patch_u64(std::vector<uint8_t>& b, size_t at, uint64_t v);

}  // namespace lc::test
