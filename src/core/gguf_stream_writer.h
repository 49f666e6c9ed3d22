// A GGUF v3 writer for files too large to build in memory: metadata and every tensor's info
// (name, shape, type) are declared first, begin() writes the header with the data offsets computed
// from the shapes, then the tensors' data is appended in declaration order, piece by piece.
#pragma once

#include <cstdint>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "core/gguf.h"

namespace lc {

class GgufStreamWriter {
 public:
  GgufStreamWriter() = default;
  ~GgufStreamWriter();  // a file begun but not finished is closed and removed
  GgufStreamWriter(const GgufStreamWriter&) = delete;
  GgufStreamWriter& operator=(const GgufStreamWriter&) = delete;

  // Metadata, before begin(). Same rules as GgufWriter::set / set_alignment.
  void set(const std::string& key, GgufValue v);
  void set_alignment(uint64_t a);

  // Declares a tensor (before begin()); lc::Error on a bad name, shape or row size. Returns the
  // tensor's data size in bytes.
  uint64_t add_tensor_info(const std::string& name, const std::vector<int64_t>& ne,
                           TensorType type);

  size_t n_tensors() const { return tensors_.size(); }
  uint64_t tensor_bytes(size_t i) const { return tensors_.at(i).nbytes; }
  // Size of the data section (tensor data plus alignment padding).
  uint64_t data_bytes() const { return data_bytes_; }

  // Creates the file and writes the header and tensor infos; lc::Error if it cannot be written.
  void begin(const std::string& path);
  // Appends bytes of the current tensor's data; a tensor may arrive in any number of pieces but
  // never spans into the next one. Padding is written when a tensor is complete.
  void write(const void* data, size_t nbytes);
  // Index of the tensor the next write() belongs to (n_tensors() when all are written).
  size_t current_tensor() const { return cur_; }
  // Checks that every tensor's data was written, flushes and closes the file.
  void finish();

 private:
  struct Info {
    std::string name;
    std::vector<int64_t> ne;
    TensorType type;
    uint64_t nbytes;
  };
  void put(const void* data, size_t n);
  void pad();
  void close_and_remove();

  GgufWriter meta_;  // metadata only: serialises the key-value section
  uint64_t alignment_ = 32;
  std::vector<Info> tensors_;
  std::set<std::string> names_;
  uint64_t data_bytes_ = 0;

  std::string path_;
  std::FILE* f_ = nullptr;
  uint64_t pos_ = 0;  // bytes written so far
  size_t cur_ = 0;
  uint64_t cur_written_ = 0;
  bool finished_ = false;
};

}  // namespace lc
