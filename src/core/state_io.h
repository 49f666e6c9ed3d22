// Binary records for saved state: a writer that appends plain values and arrays, a reader that
// checks every length against what is left (a truncated or corrupt record is an lc::Error, never
// an out-of-bounds read or a huge allocation), and a content hash to name and verify objects.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "core/error.h"

namespace lc {

// A 128-bit hash of the bytes as 32 hex digits (not cryptographic: names and checks objects).
std::string content_hash(const void* data, size_t n);

class ByteWriter {
 public:
  template <typename T>
  void put(const T& x) {
    static_assert(std::is_trivially_copyable_v<T>);
    raw(&x, sizeof x);
  }
  void raw(const void* p, size_t n) {
    if (n == 0) return;  // p may be null (an empty vector's data)
    const auto* b = static_cast<const uint8_t*>(p);
    buf_.insert(buf_.end(), b, b + n);
  }
  // An array: its element count, then its elements.
  template <typename T>
  void array(const T* p, size_t n) {
    static_assert(std::is_trivially_copyable_v<T>);
    put<uint64_t>(n);
    raw(p, n * sizeof(T));
  }
  template <typename T>
  void array(const std::vector<T>& v) {
    array(v.data(), v.size());
  }
  void str(const std::string& s) { array(s.data(), s.size()); }

  const std::vector<uint8_t>& bytes() const { return buf_; }
  std::vector<uint8_t>& bytes() { return buf_; }

 private:
  std::vector<uint8_t> buf_;
};

class ByteReader {
 public:
  // `what` names the record in errors ("session 'a': memory state").
  ByteReader(const uint8_t* p, size_t n, std::string what) : p_(p), n_(n), what_(std::move(what)) {}

  template <typename T>
  T get() {
    static_assert(std::is_trivially_copyable_v<T>);
    T x;
    raw(&x, sizeof x);
    return x;
  }
  void raw(void* dst, size_t n) {
    need(n);
    if (n == 0) return;  // dst may be null (an empty vector's data)
    std::memcpy(dst, p_ + at_, n);
    at_ += n;
  }
  // An array written by ByteWriter::array; lc::Error when it is longer than max_n elements or
  // than what is left.
  template <typename T>
  std::vector<T> array(size_t max_n = SIZE_MAX) {
    const uint64_t n = get<uint64_t>();
    if (n > max_n || n > (n_ - at_) / sizeof(T))
      fail(what_, ": an array of ", n, " elements does not fit the record (corrupt or truncated)");
    std::vector<T> v(static_cast<size_t>(n));
    raw(v.data(), v.size() * sizeof(T));
    return v;
  }
  std::string str(size_t max_n = 1 << 20) {
    const std::vector<char> c = array<char>(max_n);
    return std::string(c.begin(), c.end());
  }
  // Checks a value read from the record: lc::Error naming it when the condition fails.
  void expect(bool ok, const char* field) const {
    if (!ok) fail(what_, ": bad value of ", field, " (corrupt, or written by another version)");
  }
  bool done() const { return at_ == n_; }
  const std::string& what() const { return what_; }

 private:
  void need(size_t n) const {
    if (n > n_ - at_) fail(what_, ": the record ends early (corrupt or truncated)");
  }
  const uint8_t* p_;
  size_t n_, at_ = 0;
  std::string what_;
};

}  // namespace lc
