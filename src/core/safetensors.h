// safetensors reader (Hugging Face weight files), single files and sharded sets.
//
// Layout: u64 little-endian header length N, N bytes of JSON (an object: tensor name ->
// {"dtype", "shape", "data_offsets": [begin, end]}, plus an optional "__metadata__" object of
// strings), then the data section; offsets are relative to its start. The reader maps the file
// and validates everything before handing out pointers: the header length against the file, the
// JSON (an object, bounded nesting), every entry's dtype, shape (no overflow), byte range (inside
// the data section, matching dtype x shape, covering it without overlaps or holes). Every problem
// is an lc::Error naming the file, the tensor and the problem.
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

struct SafetensorsTensor {
  std::string name;
  std::string dtype;               // as written: "F32", "BF16", "I64", ...
  std::optional<TensorType> type;  // F32, F16, BF16 (and F64, I8..I64); nullopt for other dtypes
  std::vector<int64_t> shape;      // outermost first (row-major), as in the file
  uint64_t begin = 0, end = 0;     // byte range inside the data section
  const uint8_t* data = nullptr;   // points into the mapping (valid while the file lives)

  uint64_t nbytes() const { return end - begin; }
  int64_t n_elements() const;
};

class SafetensorsFile {
 public:
  // The largest header accepted (the format's own limit is 100 MB).
  static constexpr uint64_t kMaxHeaderBytes = uint64_t{100} << 20;

  // Maps and validates a file. Throws lc::Error on any problem.
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);
  // Parses an in-memory image (tests, fuzzing); `name` is used in messages.
  static std::shared_ptr<SafetensorsFile> from_bytes(std::vector<uint8_t> bytes,
                                                     const std::string& name);

  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  uint64_t file_size() const { return size_; }
  const std::map<std::string, std::string>& metadata() const { return meta_; }
  // Tensors in data order.
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const SafetensorsTensor* tensor(std::string_view name) const;  // nullptr if absent
  // Drops the mapped pages that lie wholly inside the tensor's bytes from this process's resident
  // memory (after a copy of the tensor was made; reading it again faults them back in from the
  // file). Nothing for an in-memory image.
  void release(const SafetensorsTensor& t) const;

 private:
  SafetensorsFile() = default;
  void parse();

  std::string path_;
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  void* map_ = nullptr;
  std::vector<uint8_t> owned_;
  std::map<std::string, std::string> meta_;
  std::vector<SafetensorsTensor> tensors_;
  std::map<std::string, size_t, std::less<>> index_;
};

// The tensors of a checkpoint: one model.safetensors, or the shards named by an index file
// (model.safetensors.index.json: {"weight_map": {tensor: shard file}}). lc::Error for a missing
// or unreadable shard, a tensor the index names but its shard lacks, and a tensor in two shards.
class SafetensorsSet {
 public:
  // `path` is a .safetensors file or an index .json file.
  static SafetensorsSet open(const std::string& path);

  const std::vector<std::shared_ptr<SafetensorsFile>>& files() const { return files_; }
  // The tensor and the file that holds it; nullptr if absent.
  const SafetensorsTensor* find(std::string_view name,
                                const SafetensorsFile** file = nullptr) const;
  // Every tensor name, sorted.
  std::vector<std::string> names() const;

 private:
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, std::pair<size_t, const SafetensorsTensor*>, std::less<>> index_;
};

// Writes a safetensors file (tests, tools). Tensors are stored in the order added.
class SafetensorsWriter {
 public:
  // dtype "F32", "F16", "BF16", ...; nbytes must equal the shape's element count x dtype size.
  void add(const std::string& name, const std::string& dtype, const std::vector<int64_t>& shape,
           const void* data, size_t nbytes);
  void set_metadata(const std::string& key, const std::string& value);
  std::vector<uint8_t> to_bytes() const;
  void write(const std::string& path) const;

 private:
  struct T {
    std::string name, dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> data;
  };
  std::vector<T> tensors_;
  std::map<std::string, std::string> meta_;
};

// Bytes per element of a safetensors dtype name; 0 when unknown.
uint64_t safetensors_dtype_size(std::string_view dtype);

}  // namespace lc
