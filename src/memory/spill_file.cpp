#include "memory/spill_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "core/error.h"
#include "kernels/kv_type.h"
#include "kernels/quant.h"

namespace lc {

namespace {

std::string os_error(int err) { return std::strerror(err); }

}  // namespace

SpillFile::SpillFile(std::string dir, TensorType type, int64_t row_floats, int rows_per_token,
                     size_t max_bytes)
    : dir_(resolve_dir(dir)),
      type_(type),
      row_floats_(row_floats),
      rows_per_token_(rows_per_token),
      row_bytes_(static_cast<size_t>(row_bytes(tensor_type_info(type), row_floats))),
      max_bytes_(max_bytes) {}

SpillFile::~SpillFile() { reset(); }

std::string SpillFile::resolve_dir(const std::string& dir) {
  if (!dir.empty()) return dir;
  const char* tmp = std::getenv("TMPDIR");
  if (tmp != nullptr && *tmp != '\0') return tmp;
  return "/tmp";
}

void SpillFile::create() {
  std::string templ = dir_;
  if (templ.back() != '/') templ += '/';
  templ += "longctx-spill-XXXXXX";
  std::vector<char> name(templ.begin(), templ.end());
  name.push_back('\0');
  const int fd = ::mkstemp(name.data());
  if (fd < 0) {
    const int err = errno;
    fail("cannot create the spill file in directory '", dir_, "' (", templ, "): ", os_error(err),
         "; choose a writable directory with the setting memory.spill_dir");
  }
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  // Unlinked at once: the open descriptor keeps the data, and the file disappears with the process.
  ::unlink(name.data());
  fd_ = fd;
  path_ = name.data();
  size_ = 0;
}

uint64_t SpillFile::append(const float* kv, int64_t n, std::vector<uint8_t>& scratch,
                           int64_t reserve_n) {
  const size_t bytes = block_bytes(std::max(n, reserve_n));
  if (fd_ < 0) create();
  if (max_bytes_ != 0 && size_ + bytes > max_bytes_) {
    fail("cannot write ", bytes, " bytes to the spill file '", path_, "': ", os_error(ENOSPC),
         " (the spill quota memory.spill_max of ", max_bytes_, " bytes would be exceeded; ", size_,
         " bytes used); raise memory.spill_max or memory.mem_budget");
  }
  const uint64_t offset = size_;
  write_at(offset, kv, n, scratch);
  size_ += bytes;
  return offset;
}

void SpillFile::write_at(uint64_t offset, const float* kv, int64_t n,
                         std::vector<uint8_t>& scratch) {
  LC_CHECK(fd_ >= 0);
  const size_t bytes = block_bytes(n);
  const uint8_t* src;
  if (type_ == TensorType::F32) {
    src = reinterpret_cast<const uint8_t*>(kv);
  } else {
    if (scratch.size() < bytes) scratch.resize(bytes);
    quantize_row_ref(type_, kv, scratch.data(), rows_per_token_ * n * row_floats_);
    src = scratch.data();
  }
  size_t done = 0;
  while (done < bytes) {
    const ssize_t w = ::pwrite(fd_, src + done, bytes - done, static_cast<off_t>(offset + done));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      const int err = w < 0 ? errno : ENOSPC;  // a write that makes no progress: disk full
      fail("cannot write ", bytes, " bytes at offset ", offset, " to the spill file '", path_,
           "': ", os_error(err),
           "; free disk space, choose another memory.spill_dir or raise memory.mem_budget");
    }
    done += static_cast<size_t>(w);
  }
}

void SpillFile::read(uint64_t offset, int64_t n, float* kv, std::vector<uint8_t>& scratch) const {
  LC_CHECK(fd_ >= 0);
  const size_t bytes = block_bytes(n);
  uint8_t* dst;
  if (type_ == TensorType::F32) {
    dst = reinterpret_cast<uint8_t*>(kv);
  } else {
    if (scratch.size() < bytes) scratch.resize(bytes);
    dst = scratch.data();
  }
  size_t done = 0;
  while (done < bytes) {
    const ssize_t r = ::pread(fd_, dst + done, bytes - done, static_cast<off_t>(offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      const int err = errno;
      fail("cannot read ", bytes, " bytes at offset ", offset, " from the spill file '", path_,
           "': ", os_error(err));
    }
    if (r == 0) {
      fail("cannot read ", bytes, " bytes at offset ", offset, " from the spill file '", path_,
           "': unexpected end of file (the file was truncated)");
    }
    done += static_cast<size_t>(r);
  }
  if (type_ != TensorType::F32)
    kv_to_f32(type_ == TensorType::F16 ? KvType::F16 : KvType::Q8_0, dst, kv,
              rows_per_token_ * n * row_floats_);
}

void SpillFile::reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  size_ = 0;
  path_.clear();
}

void SpillFile::shrink(size_t bytes) {
  LC_CHECK(bytes <= size_);
  if (bytes == size_) return;
  if (fd_ >= 0) (void)::ftruncate(fd_, static_cast<off_t>(bytes));
  size_ = bytes;
}

}  // namespace lc
