#include "core/gguf_stream_writer.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "core/error.h"

namespace lc {

namespace {

bool is_pow2(uint64_t a) { return a != 0 && (a & (a - 1)) == 0; }

template <typename T>
void append(std::vector<uint8_t>& out, T v) {
  const size_t at = out.size();
  out.resize(at + sizeof(T));
  std::memcpy(out.data() + at, &v, sizeof(T));
}

}  // namespace

GgufStreamWriter::~GgufStreamWriter() {
  if (f_ && !finished_) close_and_remove();
}

void GgufStreamWriter::set(const std::string& key, GgufValue v) {
  LC_CHECK(f_ == nullptr && !finished_);
  if (key == "general.alignment" && v.type == GgufType::U32 && is_pow2(v.u)) {
    if (!tensors_.empty() && v.u != alignment_)
      fail("GgufStreamWriter: set the alignment before declaring tensors");
    alignment_ = v.u;
  }
  meta_.set(key, std::move(v));
}

void GgufStreamWriter::set_alignment(uint64_t a) {
  LC_CHECK(f_ == nullptr && !finished_);
  if (!tensors_.empty() && a != alignment_)
    fail("GgufStreamWriter: set the alignment before declaring tensors");
  meta_.set_alignment(a);  // validates
  alignment_ = a;
}

uint64_t GgufStreamWriter::add_tensor_info(const std::string& name, const std::vector<int64_t>& ne,
                                           TensorType type) {
  LC_CHECK(f_ == nullptr && !finished_);
  const TensorTypeInfo& ti = tensor_type_info(type);
  if (name.empty()) fail("GgufStreamWriter: empty tensor name");
  if (names_.count(name)) fail("GgufStreamWriter: duplicate tensor name '", name, "'");
  if (ne.empty() || ne.size() > 4)
    fail("GgufStreamWriter: tensor '", name, "' has ", ne.size(), " dimensions (must be 1 to 4)");
  int64_t n = 1;
  for (int64_t d : ne) {
    if (d <= 0 || n > std::numeric_limits<int64_t>::max() / d)
      fail("GgufStreamWriter: tensor '", name, "' has an invalid dimension ", d);
    n *= d;
  }
  if (ne[0] % ti.block_size != 0)
    fail("GgufStreamWriter: tensor '", name, "' row size ", ne[0],
         " is not a multiple of the block size ", ti.block_size, " of ", ti.name);
  const auto nbytes = static_cast<uint64_t>(n / ti.block_size * ti.type_size);
  names_.insert(name);
  tensors_.push_back({name, ne, type, nbytes});
  data_bytes_ += (nbytes + alignment_ - 1) / alignment_ * alignment_;
  return nbytes;
}

void GgufStreamWriter::begin(const std::string& path) {
  LC_CHECK(f_ == nullptr && !finished_);
  // The metadata-only GgufWriter image is magic, version, tensor count (0), key count and the
  // key-value section, with no padding: patch the tensor count and append the tensor infos.
  std::vector<uint8_t> head = meta_.to_bytes();
  LC_CHECK(head.size() >= 24 && std::memcmp(head.data(), "GGUF", 4) == 0);
  const auto n_tensors = static_cast<uint64_t>(tensors_.size());
  std::memcpy(head.data() + 8, &n_tensors, sizeof n_tensors);
  uint64_t offset = 0;
  for (const Info& t : tensors_) {
    append<uint64_t>(head, t.name.size());
    head.insert(head.end(), t.name.begin(), t.name.end());
    append<uint32_t>(head, static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) append<uint64_t>(head, static_cast<uint64_t>(d));
    append<uint32_t>(head, static_cast<uint32_t>(t.type));
    append<uint64_t>(head, offset);
    offset += (t.nbytes + alignment_ - 1) / alignment_ * alignment_;
  }
  if (!tensors_.empty())
    while (head.size() % alignment_ != 0) head.push_back(0);

  path_ = path;
  f_ = std::fopen(path.c_str(), "wb");
  if (!f_) fail("cannot create GGUF file ", path, ": ", std::strerror(errno));
  put(head.data(), head.size());
  cur_ = 0;
  cur_written_ = 0;
  while (cur_ < tensors_.size() && tensors_[cur_].nbytes == 0) ++cur_;
}

void GgufStreamWriter::write(const void* data, size_t nbytes) {
  LC_CHECK(f_ != nullptr && !finished_);
  if (nbytes == 0) return;
  LC_CHECK(cur_ < tensors_.size());
  const Info& t = tensors_[cur_];
  LC_CHECK(cur_written_ + nbytes <= t.nbytes);
  put(data, nbytes);
  cur_written_ += nbytes;
  if (cur_written_ == t.nbytes) {
    pad();
    ++cur_;
    cur_written_ = 0;
  }
}

void GgufStreamWriter::finish() {
  LC_CHECK(f_ != nullptr && !finished_);
  if (cur_ != tensors_.size()) {
    const std::string name = tensors_[cur_].name;
    close_and_remove();
    fail("GgufStreamWriter: ", path_, ": data of tensor '", name, "' was not written");
  }
  const bool ok = std::fflush(f_) == 0;
  const int err = errno;
  const bool closed = std::fclose(f_) == 0;
  f_ = nullptr;
  if (!ok || !closed) {
    std::remove(path_.c_str());
    fail("cannot write GGUF file ", path_, ": ", std::strerror(err));
  }
  finished_ = true;
}

void GgufStreamWriter::put(const void* data, size_t n) {
  if (std::fwrite(data, 1, n, f_) != n) {
    const int err = errno;
    close_and_remove();
    fail("cannot write GGUF file ", path_, ": ", std::strerror(err));
  }
  pos_ += n;
}

void GgufStreamWriter::pad() {
  static const uint8_t zeros[64] = {};
  while (pos_ % alignment_ != 0) {
    const uint64_t n = std::min<uint64_t>(sizeof zeros, alignment_ - pos_ % alignment_);
    put(zeros, static_cast<size_t>(n));
  }
}

void GgufStreamWriter::close_and_remove() {
  std::fclose(f_);
  f_ = nullptr;
  std::remove(path_.c_str());
}

}  // namespace lc
