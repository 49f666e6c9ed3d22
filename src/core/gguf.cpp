// GGUF reader: maps the file and validates every field before anything is handed out.
//
// Layout (v2 and v3 are identical on little-endian hosts; v1 used 32-bit counts and is refused):
//   "GGUF" u32 version, u64 n_tensors, u64 n_kv,
//   n_kv x { string key, u32 value type, value },
//   n_tensors x { string name, u32 n_dims, u64 ne[n_dims], u32 tensor type, u64 offset },
//   padding to general.alignment, then the data section (tensor offsets are relative to it).
// A string is u64 length + bytes; an array is u32 element type + u64 count + items.
#include "core/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "core/file_map.h"

namespace lc {

namespace {

constexpr uint32_t kMaxArrayDepth = 8;  // arrays nested inside arrays, counting the outer one
constexpr uint64_t kMaxValues = uint64_t{8} << 20;  // metadata values in all arrays together
constexpr uint32_t kMaxDims = 4;

// Bytes a scalar of type t occupies in the file; 0 for STRING / ARRAY / unknown.
uint64_t scalar_size(GgufType t) {
  switch (t) {
    case GgufType::U8:
    case GgufType::I8:
    case GgufType::BOOL:
      return 1;
    case GgufType::U16:
    case GgufType::I16:
      return 2;
    case GgufType::U32:
    case GgufType::I32:
    case GgufType::F32:
      return 4;
    case GgufType::U64:
    case GgufType::I64:
    case GgufType::F64:
      return 8;
    case GgufType::STRING:
    case GgufType::ARRAY:
      return 0;
  }
  return 0;
}

bool valid_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::F64); }

// Smallest number of bytes one value of type t can take in the file.
uint64_t min_value_size(GgufType t) {
  if (t == GgufType::STRING) return 8;
  if (t == GgufType::ARRAY) return 4 + 8;
  return scalar_size(t);
}

class Cursor {
 public:
  Cursor(const std::string& path, const uint8_t* base, uint64_t size)
      : path_(path), base_(base), size_(size) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }
  void seek(uint64_t p) { pos_ = p; }

  [[noreturn]] void fail_at(uint64_t offset, const std::string& problem) const {
    fail(path_, ": byte offset ", offset, ": ", problem);
  }

  void need(uint64_t n, const char* what) const {
    if (n > remaining()) {
      fail_at(pos_, cat("truncated file: ", what, " needs ", n, " bytes but only ", remaining(),
                        " remain"));
    }
  }

  template <typename T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, base_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string read_string(const char* what) {
    const uint64_t at = pos_;
    const uint64_t len = read<uint64_t>(what);
    if (len > remaining()) {
      fail_at(at, cat("string length ", len, " of ", what, " is larger than the remaining ",
                      remaining(), " bytes"));
    }
    std::string s(reinterpret_cast<const char*>(base_ + pos_), static_cast<size_t>(len));
    pos_ += len;
    return s;
  }

 private:
  const std::string& path_;
  const uint8_t* base_;
  uint64_t size_;
  uint64_t pos_ = 0;
};

GgufValue read_scalar(Cursor& c, GgufType t) {
  GgufValue v;
  v.type = t;
  switch (t) {
    case GgufType::U8:
      v.u = c.read<uint8_t>("u8 value");
      break;
    case GgufType::U16:
      v.u = c.read<uint16_t>("u16 value");
      break;
    case GgufType::U32:
      v.u = c.read<uint32_t>("u32 value");
      break;
    case GgufType::U64:
      v.u = c.read<uint64_t>("u64 value");
      break;
    case GgufType::I8:
      v.i = c.read<int8_t>("i8 value");
      break;
    case GgufType::I16:
      v.i = c.read<int16_t>("i16 value");
      break;
    case GgufType::I32:
      v.i = c.read<int32_t>("i32 value");
      break;
    case GgufType::I64:
      v.i = c.read<int64_t>("i64 value");
      break;
    case GgufType::F32:
      v.f = c.read<float>("f32 value");
      break;
    case GgufType::F64:
      v.f = c.read<double>("f64 value");
      break;
    case GgufType::BOOL: {
      const uint64_t at = c.pos();
      const uint8_t b = c.read<uint8_t>("bool value");
      if (b > 1) c.fail_at(at, cat("invalid bool value ", int{b}, " (must be 0 or 1)"));
      v.u = b;
      break;
    }
    case GgufType::STRING:
    case GgufType::ARRAY:
      LC_CHECK(false);
  }
  switch (t) {
    case GgufType::U8:
    case GgufType::U16:
    case GgufType::U32:
    case GgufType::U64:
    case GgufType::BOOL:
      if (v.u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        v.i = static_cast<int64_t>(v.u);
      }
      v.f = static_cast<double>(v.u);
      break;
    case GgufType::I8:
    case GgufType::I16:
    case GgufType::I32:
    case GgufType::I64:
      if (v.i >= 0) v.u = static_cast<uint64_t>(v.i);
      v.f = static_cast<double>(v.i);
      break;
    default:
      break;
  }
  return v;
}

struct ValueReader {
  Cursor& c;
  uint64_t n_values = 0;

  GgufValue read_value(GgufType t, uint32_t depth) {
    if (t == GgufType::STRING) {
      GgufValue v;
      v.type = GgufType::STRING;
      v.s = c.read_string("string value");
      return v;
    }
    if (t != GgufType::ARRAY) return read_scalar(c, t);

    const uint64_t at = c.pos();
    if (depth >= kMaxArrayDepth) {
      c.fail_at(at, cat("arrays nested more than ", kMaxArrayDepth, " levels deep"));
    }
    const uint32_t et = c.read<uint32_t>("array element type");
    if (!valid_type(et)) c.fail_at(at, cat("unknown array element type ", et));
    const GgufType elem = static_cast<GgufType>(et);
    const uint64_t count_at = c.pos();
    const uint64_t count = c.read<uint64_t>("array length");
    const uint64_t min = min_value_size(elem);
    if (count > c.remaining() / min) {
      c.fail_at(count_at, cat("array length ", count, " of ", gguf_type_name(elem),
                              " cannot fit in the remaining ", c.remaining(), " bytes"));
    }
    n_values += count;
    if (n_values > kMaxValues) {
      c.fail_at(count_at, cat("too many metadata array items (more than ", kMaxValues, ")"));
    }
    GgufValue v;
    v.type = GgufType::ARRAY;
    v.elem_type = elem;
    v.items.reserve(static_cast<size_t>(count));
    for (uint64_t k = 0; k < count; ++k) v.items.push_back(read_value(elem, depth + 1));
    return v;
  }
};

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

bool is_pow2(uint64_t a) { return a != 0 && (a & (a - 1)) == 0; }

void append_escaped(std::string& out, const std::string& s, size_t max_chars) {
  out += '"';
  size_t n = 0;
  for (char ch : s) {
    if (n++ == max_chars) {
      out += "...";
      break;
    }
    const auto u = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (ch == '\n') {
      out += "\\n";
    } else if (ch == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7f) {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 15];
    } else {
      out += ch;
    }
  }
  out += '"';
}

void append_value(std::string& out, const GgufValue& v, size_t max_items) {
  switch (v.type) {
    case GgufType::STRING:
      append_escaped(out, v.s, 200);
      return;
    case GgufType::BOOL:
      out += v.u ? "true" : "false";
      return;
    case GgufType::F32:
    case GgufType::F64:
      out += cat(v.f);
      return;
    case GgufType::U8:
    case GgufType::U16:
    case GgufType::U32:
    case GgufType::U64:
      out += cat(v.u);
      return;
    case GgufType::I8:
    case GgufType::I16:
    case GgufType::I32:
    case GgufType::I64:
      out += cat(v.i);
      return;
    case GgufType::ARRAY:
      out += '[';
      for (size_t k = 0; k < v.items.size(); ++k) {
        if (k == max_items) {
          out += cat(", ... (", v.items.size(), " items)");
          break;
        }
        if (k) out += ", ";
        append_value(out, v.items[k], max_items);
      }
      out += ']';
      return;
  }
}

}  // namespace

std::string_view gguf_type_name(GgufType t) {
  switch (t) {
    case GgufType::U8:
      return "u8";
    case GgufType::I8:
      return "i8";
    case GgufType::U16:
      return "u16";
    case GgufType::I16:
      return "i16";
    case GgufType::U32:
      return "u32";
    case GgufType::I32:
      return "i32";
    case GgufType::F32:
      return "f32";
    case GgufType::BOOL:
      return "bool";
    case GgufType::STRING:
      return "string";
    case GgufType::ARRAY:
      return "array";
    case GgufType::U64:
      return "u64";
    case GgufType::I64:
      return "i64";
    case GgufType::F64:
      return "f64";
  }
  return "unknown";
}

// ---------------------------------------------------------------------------------------------
// GgufValue

bool GgufValue::is_int() const {
  switch (type) {
    case GgufType::U8:
    case GgufType::I8:
    case GgufType::U16:
    case GgufType::I16:
    case GgufType::U32:
    case GgufType::I32:
    case GgufType::U64:
    case GgufType::I64:
      return true;
    default:
      return false;
  }
}

bool GgufValue::is_float() const { return type == GgufType::F32 || type == GgufType::F64; }

std::string GgufValue::to_string(size_t max_items) const {
  std::string out;
  append_value(out, *this, max_items);
  return out;
}

GgufValue GgufValue::of_u32(uint32_t v) {
  GgufValue r;
  r.type = GgufType::U32;
  r.u = v;
  r.i = v;
  r.f = v;
  return r;
}

GgufValue GgufValue::of_i32(int32_t v) {
  GgufValue r;
  r.type = GgufType::I32;
  r.i = v;
  if (v >= 0) r.u = static_cast<uint64_t>(v);
  r.f = v;
  return r;
}

GgufValue GgufValue::of_u64(uint64_t v) {
  GgufValue r;
  r.type = GgufType::U64;
  r.u = v;
  if (v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    r.i = static_cast<int64_t>(v);
  }
  r.f = static_cast<double>(v);
  return r;
}

GgufValue GgufValue::of_f32(float v) {
  GgufValue r;
  r.type = GgufType::F32;
  r.f = v;
  return r;
}

GgufValue GgufValue::of_bool(bool v) {
  GgufValue r;
  r.type = GgufType::BOOL;
  r.u = v ? 1 : 0;
  r.i = v ? 1 : 0;
  r.f = v ? 1 : 0;
  return r;
}

GgufValue GgufValue::of_str(std::string v) {
  GgufValue r;
  r.type = GgufType::STRING;
  r.s = std::move(v);
  return r;
}

GgufValue GgufValue::of_strs(const std::vector<std::string>& v) {
  GgufValue r;
  r.type = GgufType::ARRAY;
  r.elem_type = GgufType::STRING;
  r.items.reserve(v.size());
  for (const std::string& s : v) r.items.push_back(of_str(s));
  return r;
}

GgufValue GgufValue::of_f32s(const std::vector<float>& v) {
  GgufValue r;
  r.type = GgufType::ARRAY;
  r.elem_type = GgufType::F32;
  r.items.reserve(v.size());
  for (float x : v) r.items.push_back(of_f32(x));
  return r;
}

GgufValue GgufValue::of_i32s(const std::vector<int32_t>& v) {
  GgufValue r;
  r.type = GgufType::ARRAY;
  r.elem_type = GgufType::I32;
  r.items.reserve(v.size());
  for (int32_t x : v) r.items.push_back(of_i32(x));
  return r;
}

// ---------------------------------------------------------------------------------------------
// GgufTensor

int64_t GgufTensor::n_elements() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;  // the reader has checked that this cannot overflow
  return n;
}

// ---------------------------------------------------------------------------------------------
// GgufFile

std::shared_ptr<GgufFile> GgufFile::open(const std::string& path) {
  std::shared_ptr<GgufFile> f(new GgufFile());
  f->path_ = path;
  const FileMap m = map_file(path, "GGUF");
  f->map_ = m.addr;
  f->size_ = m.size;
  f->base_ = static_cast<const uint8_t*>(m.addr);
  f->parse();
  return f;
}

std::shared_ptr<GgufFile> GgufFile::from_bytes(std::vector<uint8_t> bytes,
                                               const std::string& name) {
  std::shared_ptr<GgufFile> f(new GgufFile());
  f->path_ = name;
  f->owned_ = std::move(bytes);
  f->base_ = f->owned_.data();
  f->size_ = f->owned_.size();
  f->parse();
  return f;
}

std::shared_ptr<GgufFile> GgufFile::assemble(std::string name,
                                             std::vector<std::pair<std::string, GgufValue>> kv,
                                             std::vector<GgufTensor> tensors,
                                             std::shared_ptr<const void> owner) {
  std::shared_ptr<GgufFile> f(new GgufFile());
  f->path_ = std::move(name);
  f->version_ = 3;
  f->owner_ = std::move(owner);
  f->kv_ = std::move(kv);
  for (size_t i = 0; i < f->kv_.size(); ++i)
    if (!f->kv_index_.emplace(f->kv_[i].first, i).second)
      fail(f->path_, ": metadata key '", f->kv_[i].first, "' given twice");
  f->tensors_ = std::move(tensors);
  for (size_t i = 0; i < f->tensors_.size(); ++i) {
    const GgufTensor& t = f->tensors_[i];
    const TensorTypeInfo& ti = tensor_type_info(t.type);
    if (t.ne.empty() || t.ne[0] % ti.block_size != 0 ||
        static_cast<uint64_t>(row_bytes(ti, t.ne[0]) * t.rows()) != t.nbytes || !t.data)
      fail(f->path_, ": tensor '", t.name, "' has a byte size that does not match its shape");
    if (!f->tensor_index_.emplace(t.name, i).second)
      fail(f->path_, ": tensor '", t.name, "' given twice");
    f->size_ += t.nbytes;
  }
  return f;
}

GgufFile::~GgufFile() { unmap_file(FileMap{map_, size_}); }

void GgufFile::parse() {
  Cursor c(path_, base_, size_);

  // Header.
  c.need(4, "magic");
  if (std::memcmp(base_, "GGUF", 4) != 0) {
    std::string got;
    for (int k = 0; k < 4; ++k) {
      const auto ch = static_cast<unsigned char>(base_[k]);
      got += (ch >= 0x20 && ch < 0x7f) ? static_cast<char>(ch) : '?';
    }
    c.fail_at(0, cat("bad magic \"", got, "\": not a GGUF file"));
  }
  c.seek(4);
  version_ = c.read<uint32_t>("version");
  if (version_ != 2 && version_ != 3) {
    std::string hint;
    if (version_ == 1) hint = " (GGUF v1 is obsolete; convert the file again)";
    if ((version_ & 0xffff) == 0 && version_ != 0) hint = " (big-endian file?)";
    c.fail_at(4, cat("unsupported GGUF version ", version_, hint, "; versions 2 and 3 are read"));
  }
  const uint64_t n_tensors_at = c.pos();
  const uint64_t n_tensors = c.read<uint64_t>("tensor count");
  const uint64_t n_kv_at = c.pos();
  const uint64_t n_kv = c.read<uint64_t>("metadata count");
  // Each key/value takes at least 8 (key length) + 4 (type) + 1 bytes; each tensor info at least
  // 8 (name length) + 4 (n_dims) + 8 (one dim) + 4 (type) + 8 (offset).
  if (n_kv > c.remaining() / 13) {
    c.fail_at(n_kv_at, cat("metadata count ", n_kv, " cannot fit in the remaining ", c.remaining(),
                           " bytes"));
  }
  if (n_tensors > c.remaining() / 32) {
    c.fail_at(n_tensors_at, cat("tensor count ", n_tensors, " cannot fit in the remaining ",
                                c.remaining(), " bytes"));
  }

  // Metadata.
  ValueReader vr{c};
  kv_.reserve(static_cast<size_t>(n_kv));
  for (uint64_t k = 0; k < n_kv; ++k) {
    const uint64_t key_at = c.pos();
    std::string key = c.read_string("metadata key");
    if (key.empty()) c.fail_at(key_at, cat("empty metadata key (entry ", k, ")"));
    if (kv_index_.count(key) != 0) c.fail_at(key_at, cat("duplicate metadata key '", key, "'"));
    const uint64_t type_at = c.pos();
    const uint32_t t = c.read<uint32_t>("metadata value type");
    if (!valid_type(t)) {
      c.fail_at(type_at, cat("unknown value type ", t, " for metadata key '", key, "'"));
    }
    GgufValue v = vr.read_value(static_cast<GgufType>(t), 0);
    if (key == "general.alignment") {
      if (v.type != GgufType::U32) {
        c.fail_at(type_at,
                  cat("general.alignment has type ", gguf_type_name(v.type), ", expected u32"));
      }
      if (!is_pow2(v.u)) {
        c.fail_at(type_at, cat("general.alignment ", v.u, " is not a power of two"));
      }
      alignment_ = v.u;
    }
    kv_index_.emplace(key, kv_.size());
    kv_.emplace_back(std::move(key), std::move(v));
  }

  // Tensor infos.
  if (n_tensors > c.remaining() / 32) {
    c.fail_at(n_tensors_at, cat("tensor count ", n_tensors, " cannot fit in the remaining ",
                                c.remaining(), " bytes"));
  }
  std::vector<uint64_t> info_at;
  tensors_.reserve(static_cast<size_t>(n_tensors));
  info_at.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t k = 0; k < n_tensors; ++k) {
    const uint64_t at = c.pos();
    GgufTensor t;
    t.name = c.read_string("tensor name");
    if (t.name.empty()) c.fail_at(at, cat("empty tensor name (tensor ", k, ")"));
    if (tensor_index_.count(t.name) != 0) {
      c.fail_at(at, cat("duplicate tensor name '", t.name, "'"));
    }
    const uint64_t dims_at = c.pos();
    const uint32_t n_dims = c.read<uint32_t>("tensor dimension count");
    if (n_dims == 0 || n_dims > kMaxDims) {
      c.fail_at(dims_at, cat("tensor '", t.name, "' has ", n_dims, " dimensions (must be 1 to ",
                             kMaxDims, ")"));
    }
    int64_t n_el = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t d_at = c.pos();
      const uint64_t raw = c.read<uint64_t>("tensor dimension");
      if (raw == 0 || raw > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        c.fail_at(d_at, cat("tensor '", t.name, "' dimension ", d, " is ",
                            static_cast<int64_t>(raw), " (must be positive)"));
      }
      const auto dim = static_cast<int64_t>(raw);
      if (n_el > std::numeric_limits<int64_t>::max() / dim) {
        c.fail_at(d_at, cat("tensor '", t.name, "' element count overflows int64"));
      }
      n_el *= dim;
      t.ne.push_back(dim);
    }
    const uint64_t type_at = c.pos();
    const uint32_t type_id = c.read<uint32_t>("tensor type");
    const std::optional<TensorTypeInfo> ti = tensor_type_info(type_id);
    if (!ti) c.fail_at(type_at, cat("tensor '", t.name, "' has unknown tensor type ", type_id));
    t.type = ti->type;
    if (t.ne[0] % ti->block_size != 0) {
      c.fail_at(dims_at,
                cat("tensor '", t.name, "' row size ", t.ne[0],
                    " is not a multiple of the block size ", ti->block_size, " of ", ti->name));
    }
    const int64_t n_blocks = n_el / ti->block_size;
    if (n_blocks > std::numeric_limits<int64_t>::max() / ti->type_size) {
      c.fail_at(dims_at, cat("tensor '", t.name, "' byte size overflows int64"));
    }
    t.nbytes = static_cast<uint64_t>(n_blocks * ti->type_size);
    const uint64_t off_at = c.pos();
    t.offset = c.read<uint64_t>("tensor data offset");
    if (t.offset % alignment_ != 0) {
      c.fail_at(off_at, cat("tensor '", t.name, "' data offset ", t.offset,
                            " is not a multiple of the alignment ", alignment_));
    }
    tensor_index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
    info_at.push_back(at);
  }

  if (tensors_.empty()) return;  // tokenizer-only files may end right after the metadata

  // Data section.
  const uint64_t data_start = align_up(c.pos(), alignment_);
  if (data_start > size_) {
    c.fail_at(c.pos(), cat("truncated file: data section starts at ", data_start,
                           " but the file has ", size_, " bytes"));
  }
  const uint64_t data_size = size_ - data_start;
  for (size_t k = 0; k < tensors_.size(); ++k) {
    GgufTensor& t = tensors_[k];
    if (t.offset > data_size || t.nbytes > data_size - t.offset) {
      c.fail_at(info_at[k],
                cat("tensor '", t.name, "' data [", data_start + t.offset, ", +", t.nbytes,
                    ") lies outside the file of ", size_, " bytes (truncated file?)"));
    }
    t.data = base_ + data_start + t.offset;
  }
  std::vector<size_t> order(tensors_.size());
  for (size_t k = 0; k < order.size(); ++k) order[k] = k;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return tensors_[a].offset < tensors_[b].offset; });
  for (size_t k = 1; k < order.size(); ++k) {
    const GgufTensor& prev = tensors_[order[k - 1]];
    const GgufTensor& cur = tensors_[order[k]];
    if (cur.offset < prev.offset + prev.nbytes) {
      c.fail_at(info_at[order[k]],
                cat("tensor '", cur.name, "' data at offset ", cur.offset, " overlaps tensor '",
                    prev.name, "' (offset ", prev.offset, ", ", prev.nbytes, " bytes)"));
    }
  }
}

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const GgufTensor* GgufFile::tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

std::string type_desc(const GgufValue& v) {
  if (v.type == GgufType::ARRAY) return cat("array of ", gguf_type_name(v.elem_type));
  return std::string(gguf_type_name(v.type));
}

[[noreturn]] void wrong_type(const std::string& path, std::string_view key, const GgufValue& v,
                             const char* expected) {
  fail(path, ": metadata key '", key, "' has type ", type_desc(v), ", expected ", expected);
}

bool is_int_type(GgufType t) {
  GgufValue v;
  v.type = t;
  return v.is_int();
}

bool is_float_type(GgufType t) { return t == GgufType::F32 || t == GgufType::F64; }

}  // namespace

std::optional<std::string> GgufFile::get_str(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::STRING) wrong_type(path_, key, *v, "string");
  return v->s;
}

std::optional<int64_t> GgufFile::get_int(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_int()) wrong_type(path_, key, *v, "an integer");
  if (v->type == GgufType::U64 &&
      v->u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    fail(path_, ": metadata key '", key, "' value ", v->u, " is too large");
  }
  return v->i;
}

std::optional<double> GgufFile::get_float(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_int() && !v->is_float()) wrong_type(path_, key, *v, "a number");
  return v->f;
}

std::optional<bool> GgufFile::get_bool(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::BOOL) wrong_type(path_, key, *v, "bool");
  return v->u != 0;
}

std::optional<std::vector<std::string>> GgufFile::get_str_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::ARRAY || v->elem_type != GgufType::STRING) {
    wrong_type(path_, key, *v, "array of string");
  }
  std::vector<std::string> out;
  out.reserve(v->items.size());
  for (const GgufValue& it : v->items) out.push_back(it.s);
  return out;
}

std::optional<std::vector<float>> GgufFile::get_f32_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::ARRAY || !(is_int_type(v->elem_type) || is_float_type(v->elem_type))) {
    wrong_type(path_, key, *v, "a numeric array");
  }
  std::vector<float> out;
  out.reserve(v->items.size());
  for (const GgufValue& it : v->items) out.push_back(static_cast<float>(it.f));
  return out;
}

std::optional<std::vector<int32_t>> GgufFile::get_i32_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::ARRAY || !is_int_type(v->elem_type)) {
    wrong_type(path_, key, *v, "an integer array");
  }
  std::vector<int32_t> out;
  out.reserve(v->items.size());
  for (size_t k = 0; k < v->items.size(); ++k) {
    const GgufValue& it = v->items[k];
    const bool neg = it.type == GgufType::I8 || it.type == GgufType::I16 ||
                     it.type == GgufType::I32 || it.type == GgufType::I64;
    const bool fits = neg ? (it.i >= std::numeric_limits<int32_t>::min() &&
                             it.i <= std::numeric_limits<int32_t>::max())
                          : it.u <= static_cast<uint64_t>(std::numeric_limits<int32_t>::max());
    if (!fits) {
      fail(path_, ": metadata key '", key, "' item ", k, " (", it.to_string(),
           ") does not fit in int32");
    }
    out.push_back(static_cast<int32_t>(neg ? it.i : static_cast<int64_t>(it.u)));
  }
  return out;
}

std::string GgufFile::get_str_or(std::string_view key, const std::string& dflt) const {
  std::optional<std::string> v = get_str(key);
  return v ? *v : dflt;
}

int64_t GgufFile::get_int_or(std::string_view key, int64_t dflt) const {
  return get_int(key).value_or(dflt);
}

double GgufFile::get_float_or(std::string_view key, double dflt) const {
  return get_float(key).value_or(dflt);
}

bool GgufFile::get_bool_or(std::string_view key, bool dflt) const {
  return get_bool(key).value_or(dflt);
}

}  // namespace lc
