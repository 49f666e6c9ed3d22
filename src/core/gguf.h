// GGUF (versions 2 and 3) reader and writer.
//
// The reader maps the file and validates everything before handing out pointers: magic, version,
// counts, string lengths, value types, nesting depth, tensor dimensions (no overflow), tensor
// types, alignment, data ranges inside the file and not overlapping. Every problem is an lc::Error
// whose message names the file, the byte offset and the problem.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor_type.h"

namespace lc {

enum class GgufType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};
std::string_view gguf_type_name(GgufType t);

// One metadata value. Scalars keep their declared type; integers are readable as int64/uint64,
// floats as double. Arrays hold their element type and items (which may themselves be arrays).
struct GgufValue {
  GgufType type = GgufType::U8;
  GgufType elem_type = GgufType::U8;  // for ARRAY
  uint64_t u = 0;                     // unsigned ints and bool
  int64_t i = 0;                      // signed ints (also set for unsigned when it fits)
  double f = 0;                       // floats (also set for ints)
  std::string s;                      // STRING
  std::vector<GgufValue> items;       // ARRAY

  bool is_int() const;
  bool is_float() const;
  bool is_number() const { return is_int() || is_float() || type == GgufType::BOOL; }
  std::string to_string(size_t max_items = 8) const;  // human-readable, arrays abbreviated

  static GgufValue of_u32(uint32_t v);
  static GgufValue of_i32(int32_t v);
  static GgufValue of_u64(uint64_t v);
  static GgufValue of_f32(float v);
  static GgufValue of_bool(bool v);
  static GgufValue of_str(std::string v);
  static GgufValue of_strs(const std::vector<std::string>& v);
  static GgufValue of_f32s(const std::vector<float>& v);
  static GgufValue of_i32s(const std::vector<int32_t>& v);
};

struct GgufTensor {
  std::string name;
  std::vector<int64_t> ne;  // ne[0] is the innermost (row) dimension, as in ggml
  TensorType type = TensorType::F32;
  uint64_t offset = 0;  // relative to the start of the data section
  uint64_t nbytes = 0;
  const uint8_t* data = nullptr;  // points into the mapping (valid while the GgufFile lives)

  int64_t n_elements() const;
  int64_t rows() const { return ne.empty() ? 1 : n_elements() / ne[0]; }
};

class GgufFile {
 public:
  // Maps and validates a file. Throws lc::Error on any problem.
  static std::shared_ptr<GgufFile> open(const std::string& path);
  // Parses an in-memory image (tests, fuzzing); `name` is used in messages.
  static std::shared_ptr<GgufFile> from_bytes(std::vector<uint8_t> bytes, const std::string& name);
  // A container assembled from metadata and tensor views (another weight source, such as a
  // Hugging Face folder, presented in GGUF names). Tensor data points into memory that `owner`
  // keeps alive; each tensor's nbytes must match its shape and type, and names must be unique
  // (lc::Error naming the tensor otherwise). `name` is what path() returns.
  static std::shared_ptr<GgufFile> assemble(std::string name,
                                            std::vector<std::pair<std::string, GgufValue>> kv,
                                            std::vector<GgufTensor> tensors,
                                            std::shared_ptr<const void> owner);

  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t file_size() const { return size_; }

  // Metadata in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  const GgufValue* find(std::string_view key) const;

  // Typed getters. The nullopt / default forms return it when the key is absent; a key that is
  // present with an incompatible type is an lc::Error naming key, found type and expected type.
  std::optional<std::string> get_str(std::string_view key) const;
  std::optional<int64_t> get_int(std::string_view key) const;
  std::optional<double> get_float(std::string_view key) const;  // accepts ints too
  std::optional<bool> get_bool(std::string_view key) const;
  std::optional<std::vector<std::string>> get_str_array(std::string_view key) const;
  std::optional<std::vector<float>> get_f32_array(std::string_view key) const;    // numeric arrays
  std::optional<std::vector<int32_t>> get_i32_array(std::string_view key) const;  // integer arrays
  std::string get_str_or(std::string_view key, const std::string& dflt) const;
  int64_t get_int_or(std::string_view key, int64_t dflt) const;
  double get_float_or(std::string_view key, double dflt) const;
  bool get_bool_or(std::string_view key, bool dflt) const;

  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufTensor* tensor(std::string_view name) const;  // nullptr if absent

 private:
  GgufFile() = default;
  void parse();

  std::string path_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  void* map_ = nullptr;                // mmap region (when opened from a file)
  std::vector<uint8_t> owned_;         // image (when parsed from bytes)
  std::shared_ptr<const void> owner_;  // what assembled tensors point into
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::map<std::string, size_t, std::less<>> kv_index_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

// Writes GGUF v3 files (used by tests and by `longctx make-model`).
class GgufWriter {
 public:
  void set(const std::string& key, GgufValue v);  // replaces an existing key, keeps order
  void set_alignment(uint64_t a);                 // also writes general.alignment
  // Copies nbytes of data; nbytes must equal the size implied by ne and type.
  void add_tensor(const std::string& name, const std::vector<int64_t>& ne, TensorType type,
                  const void* data, size_t nbytes);
  void add_tensor_f32(const std::string& name, const std::vector<int64_t>& ne,
                      const std::vector<float>& data);

  std::vector<uint8_t> to_bytes() const;
  void write(const std::string& path) const;  // lc::Error if the file cannot be written

 private:
  struct T {
    std::string name;
    std::vector<int64_t> ne;
    TensorType type;
    std::vector<uint8_t> data;
  };
  uint64_t alignment_ = 32;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<T> tensors_;
};

}  // namespace lc
