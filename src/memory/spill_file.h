// The cold tier of the block store: one append-only spill file of immutable blocks, each stored
// once (K rows then V rows, or K rows only) in a spill element type and read back as f32 with
// pread.
//
// The file is created lazily (mkstemp under the spill directory) on the first append and unlinked
// at once, so it never outlives the process, whatever way the process ends. Every OS failure is an
// lc::Error naming the file and the OS error; a short write is reported as "no space left".
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor_type.h"

namespace lc {

class SpillFile {
 public:
  // row_floats: floats per token row; rows_per_token: 2 (K and V) or 1; max_bytes: quota on the
  // file size (0 = none).
  SpillFile(std::string dir, TensorType type, int64_t row_floats, int rows_per_token,
            size_t max_bytes);
  ~SpillFile();
  SpillFile(const SpillFile&) = delete;
  SpillFile& operator=(const SpillFile&) = delete;

  // Bytes one block of n tokens takes on disk.
  size_t block_bytes(int64_t n) const {
    return static_cast<size_t>(rows_per_token_) * static_cast<size_t>(n) * row_bytes_;
  }

  // Appends a block of n tokens (kv: rows_per_token * n * row_floats floats) and returns
  // its offset; the record takes the room of max(n, reserve_n) tokens, so that the block can be
  // rewritten there longer (write_at). scratch is reused to encode. On error nothing is counted
  // as written (a failed append's bytes are overwritten by the next one).
  uint64_t append(const float* kv, int64_t n, std::vector<uint8_t>& scratch, int64_t reserve_n = 0);
  // Rewrites the record at offset (from append, reserved for at least n tokens).
  void write_at(uint64_t offset, const float* kv, int64_t n, std::vector<uint8_t>& scratch);

  // Reads back the block of n tokens at offset into kv (rows_per_token * n * row_floats floats).
  // Thread-safe
  // with respect to other reads and to appends (pread / pwrite on disjoint ranges).
  void read(uint64_t offset, int64_t n, float* kv, std::vector<uint8_t>& scratch) const;

  size_t size() const { return size_; }              // bytes written so far
  const std::string& path() const { return path_; }  // "" until created
  bool created() const { return fd_ >= 0; }
  void reset();  // closes the file and forgets its contents
  // Forgets the bytes from `bytes` on (<= size()): later appends go there. The file is cut there
  // too where the OS allows (a failure to cut only leaves the space allocated).
  void shrink(size_t bytes);

  // The directory a spill file would go in: dir, or $TMPDIR, or /tmp.
  static std::string resolve_dir(const std::string& dir);

 private:
  void create();

  std::string dir_;
  TensorType type_;
  int64_t row_floats_;
  int rows_per_token_;
  size_t row_bytes_;
  size_t max_bytes_;
  int fd_ = -1;
  size_t size_ = 0;
  std::string path_;
};

}  // namespace lc
