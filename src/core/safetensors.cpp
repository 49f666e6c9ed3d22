#include "core/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/file_map.h"

namespace lc {

using json = nlohmann::json;

namespace {

constexpr int kMaxDepth = 8;      // JSON nesting accepted in a header
constexpr size_t kMaxDims = 8;    // dimensions of one tensor
constexpr size_t kMaxShown = 60;  // characters of a JSON value quoted in a message

std::string shown(const json& v) {
  std::string d = v.dump();
  return d.size() > kMaxShown ? d.substr(0, kMaxShown - 3) + "..." : d;
}

std::optional<TensorType> dtype_type(std::string_view d) {
  if (d == "F32") return TensorType::F32;
  if (d == "F16") return TensorType::F16;
  if (d == "BF16") return TensorType::BF16;
  if (d == "F64") return TensorType::F64;
  if (d == "I8") return TensorType::I8;
  if (d == "I16") return TensorType::I16;
  if (d == "I32") return TensorType::I32;
  if (d == "I64") return TensorType::I64;
  return std::nullopt;
}

uint64_t json_u64(const json& v, bool& ok) {
  ok = v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0);
  return ok ? v.get<uint64_t>() : 0;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open ", path);
  std::ostringstream os;
  os << in.rdbuf();
  if (in.bad()) fail("cannot read ", path);
  return os.str();
}

}  // namespace

uint64_t safetensors_dtype_size(std::string_view d) {
  if (d == "BOOL" || d == "U8" || d == "I8" || d == "F8_E4M3" || d == "F8_E5M2") return 1;
  if (d == "U16" || d == "I16" || d == "F16" || d == "BF16") return 2;
  if (d == "U32" || d == "I32" || d == "F32") return 4;
  if (d == "U64" || d == "I64" || d == "F64") return 8;
  return 0;
}

int64_t SafetensorsTensor::n_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  std::shared_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  const FileMap m = map_file(path, "safetensors");
  f->map_ = m.addr;
  f->size_ = m.size;
  f->base_ = static_cast<const uint8_t*>(m.addr);
  f->parse();
  return f;
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::from_bytes(std::vector<uint8_t> bytes,
                                                             const std::string& name) {
  std::shared_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = name;
  f->owned_ = std::move(bytes);
  f->base_ = f->owned_.data();
  f->size_ = f->owned_.size();
  f->parse();
  return f;
}

SafetensorsFile::~SafetensorsFile() { unmap_file(FileMap{map_, size_}); }

const SafetensorsTensor* SafetensorsFile::tensor(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

void SafetensorsFile::release(const SafetensorsTensor& t) const {
  if (map_ == nullptr || t.data == nullptr) return;
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto b = reinterpret_cast<uintptr_t>(t.data), e = b + t.nbytes();
  const uintptr_t pb = (b + page - 1) / page * page, pe = e / page * page;
  if (pe > pb) ::madvise(reinterpret_cast<void*>(pb), pe - pb, MADV_DONTNEED);
}

void SafetensorsFile::parse() {
  const std::string& p = path_;
  if (size_ < 8)
    fail(p, ": ", size_, " bytes is too short for a safetensors file (8-byte header length)");
  uint64_t n = 0;
  for (int k = 7; k >= 0; --k) n = (n << 8) | base_[k];
  if (n > kMaxHeaderBytes)
    fail(p, ": safetensors header length ", n, " is absurd (more than ", kMaxHeaderBytes,
         " bytes); not a safetensors file?");
  if (n > size_ - 8)
    fail(p, ": safetensors header length ", n, " is beyond the end of the file (", size_,
         " bytes)");
  if (n < 2) fail(p, ": safetensors header of ", n, " bytes cannot hold a JSON object");
  const auto* h = reinterpret_cast<const char*>(base_ + 8);
  const uint64_t data_size = size_ - 8 - n;
  const uint8_t* data = base_ + 8 + n;

  std::set<std::string> seen;
  json j;
  try {
    j = json::parse(h, h + n, [&](int depth, json::parse_event_t ev, json& v) {
      if (depth > kMaxDepth) fail(p, ": safetensors header nests JSON deeper than ", kMaxDepth);
      if (ev == json::parse_event_t::key && depth == 1 && !seen.insert(v.get<std::string>()).second)
        fail(p, ": safetensors header names '", v.get<std::string>(), "' twice");
      return true;
    });
  } catch (const json::exception& e) {
    fail(p, ": safetensors header is not valid JSON (", e.what(), ")");
  }
  if (!j.is_object())
    fail(p, ": safetensors header is JSON ", j.type_name(), ", expected an object of tensors");

  struct Range {
    uint64_t b, e;
    size_t i;
  };
  std::vector<Range> ranges;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (v.is_null()) continue;
      if (!v.is_object())
        fail(p, ": safetensors __metadata__ is ", shown(v), ", expected an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string())
          fail(p, ": safetensors __metadata__ entry '", m.key(), "' = ", shown(m.value()),
               " is not a string");
        meta_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = p + ": tensor '" + name + "'";
    if (!v.is_object()) fail(where, ": entry ", shown(v), " is not an object");
    SafetensorsTensor t;
    t.name = name;
    auto dt = v.find("dtype");
    if (dt == v.end() || !dt->is_string()) fail(where, ": no \"dtype\" string");
    t.dtype = dt->get<std::string>();
    const uint64_t esize = safetensors_dtype_size(t.dtype);
    if (esize == 0) fail(where, ": unknown dtype \"", t.dtype.substr(0, kMaxShown), "\"");
    t.type = dtype_type(t.dtype);
    auto sh = v.find("shape");
    if (sh == v.end() || !sh->is_array()) fail(where, ": no \"shape\" list");
    if (sh->size() > kMaxDims)
      fail(where, ": shape has ", sh->size(), " dimensions (at most ", kMaxDims, ")");
    uint64_t count = 1;
    bool overflow = false;
    for (const json& d : *sh) {
      bool ok = false;
      const uint64_t x = json_u64(d, ok);
      if (!ok || x > (uint64_t{1} << 40))
        fail(where, ": shape ", shown(*sh), " has an entry that is not a dimension");
      t.shape.push_back(static_cast<int64_t>(x));
      if (x != 0 && count > std::numeric_limits<uint64_t>::max() / x) overflow = true;
      count *= x;
    }
    if (overflow || count > std::numeric_limits<uint64_t>::max() / esize)
      fail(where, ": shape ", shown(*sh), " has too many elements");
    auto off = v.find("data_offsets");
    if (off == v.end() || !off->is_array() || off->size() != 2)
      fail(where, ": no \"data_offsets\" [begin, end] pair");
    bool ok_b = false, ok_e = false;
    t.begin = json_u64((*off)[0], ok_b);
    t.end = json_u64((*off)[1], ok_e);
    if (!ok_b || !ok_e) fail(where, ": data_offsets ", shown(*off), " are not byte offsets");
    if (t.begin > t.end)
      fail(where, ": data_offsets [", t.begin, ", ", t.end, "] end before they begin");
    if (t.end > data_size)
      fail(where, ": data_offsets [", t.begin, ", ", t.end, "] are outside the data section (",
           data_size, " bytes)");
    if (t.end - t.begin != count * esize)
      fail(where, ": dtype ", t.dtype, " and shape ", shown(*sh), " need ", count * esize,
           " bytes but data_offsets [", t.begin, ", ", t.end, "] hold ", t.end - t.begin);
    t.data = data + t.begin;
    ranges.push_back({t.begin, t.end, tensors_.size()});
    tensors_.push_back(std::move(t));
  }
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.b != b.b ? a.b < b.b : a.e < b.e; });
  // As the format's reference reader requires: the tensors cover the data section exactly, in
  // order, with neither overlaps nor holes.
  const Range* prev = nullptr;
  uint64_t covered = 0;
  for (const Range& r : ranges) {
    if (r.b == r.e) continue;  // empty tensors take no bytes
    if (prev && r.b < prev->e)
      fail(p, ": tensor '", tensors_[r.i].name, "' (bytes ", r.b, "..", r.e, ") overlaps tensor '",
           tensors_[prev->i].name, "' (bytes ", prev->b, "..", prev->e, ")");
    if (r.b != covered)
      fail(p, ": bytes ", covered, "..", r.b, " of the data section, before tensor '",
           tensors_[r.i].name, "', belong to no tensor");
    covered = r.e;
    prev = &r;
  }
  if (covered != data_size)
    fail(p, ": the last ", data_size - covered, " bytes of the data section (", covered, "..",
         data_size, ") belong to no tensor");
  // Data order, as the file stores them.
  std::vector<SafetensorsTensor> ordered;
  ordered.reserve(tensors_.size());
  for (const Range& r : ranges) ordered.push_back(std::move(tensors_[r.i]));
  tensors_ = std::move(ordered);
  for (size_t i = 0; i < tensors_.size(); ++i) index_[tensors_[i].name] = i;
}

// ---------------------------------------------------------------------------------------------
// SafetensorsSet

SafetensorsSet SafetensorsSet::open(const std::string& path) {
  namespace fs = std::filesystem;
  SafetensorsSet s;
  const auto add = [&](std::shared_ptr<SafetensorsFile> f) {
    const size_t fi = s.files_.size();
    for (const SafetensorsTensor& t : f->tensors()) {
      auto [it, fresh] = s.index_.emplace(t.name, std::make_pair(fi, &t));
      if (!fresh)
        fail(f->path(), ": tensor '", t.name, "' is also in ", s.files_[it->second.first]->path());
    }
    s.files_.push_back(std::move(f));
  };
  if (path.size() < 5 || path.substr(path.size() - 5) != ".json") {
    add(SafetensorsFile::open(path));
    return s;
  }
  json j;
  try {
    j = json::parse(read_text(path));
  } catch (const json::exception& e) {
    fail(path, ": not valid JSON (", e.what(), ")");
  }
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    fail(path, ": expected an object with a \"weight_map\" object (tensor name -> shard file)");
  const fs::path dir = fs::path(path).parent_path();
  std::map<std::string, std::vector<std::string>> by_shard;
  for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
    if (!it.value().is_string())
      fail(path, ": weight_map entry '", it.key(), "' = ", shown(it.value()),
           " is not a file name");
    const std::string shard = it.value().get<std::string>();
    if (shard.empty() || shard.find('/') != std::string::npos || shard == "..")
      fail(path, ": weight_map entry '", it.key(), "' names \"", shard,
           "\", expected a file name in the same folder");
    by_shard[shard].push_back(it.key());
  }
  if (by_shard.empty()) fail(path, ": weight_map is empty");
  for (const auto& [shard, names] : by_shard) {
    const std::string sp = (dir / shard).string();
    std::error_code ec;
    if (!fs::exists(sp, ec))
      fail(path, ": shard ", shard, " (holding tensor '", names.front(), "' and ", names.size() - 1,
           " more) is missing: ", sp, " does not exist");
    auto f = SafetensorsFile::open(sp);
    for (const std::string& n : names)
      if (!f->tensor(n))
        fail(path, ": tensor '", n, "' is mapped to shard ", shard, ", which does not hold it");
    add(std::move(f));
  }
  return s;
}

const SafetensorsTensor* SafetensorsSet::find(std::string_view name,
                                              const SafetensorsFile** file) const {
  auto it = index_.find(name);
  if (it == index_.end()) return nullptr;
  if (file) *file = files_[it->second.first].get();
  return it->second.second;
}

std::vector<std::string> SafetensorsSet::names() const {
  std::vector<std::string> v;
  for (const auto& [k, _] : index_) v.push_back(k);
  return v;
}

// ---------------------------------------------------------------------------------------------
// SafetensorsWriter

void SafetensorsWriter::add(const std::string& name, const std::string& dtype,
                            const std::vector<int64_t>& shape, const void* data, size_t nbytes) {
  uint64_t count = 1;
  for (int64_t d : shape) count *= static_cast<uint64_t>(d);
  const uint64_t es = safetensors_dtype_size(dtype);
  if (es == 0) fail("safetensors writer: unknown dtype ", dtype);
  if (count * es != nbytes)
    fail("safetensors writer: tensor '", name, "' needs ", count * es, " bytes, got ", nbytes);
  const auto* b = static_cast<const uint8_t*>(data);
  tensors_.push_back({name, dtype, shape, std::vector<uint8_t>(b, b + nbytes)});
}

void SafetensorsWriter::set_metadata(const std::string& key, const std::string& value) {
  meta_[key] = value;
}

std::vector<uint8_t> SafetensorsWriter::to_bytes() const {
  json h = json::object();
  if (!meta_.empty()) h["__metadata__"] = meta_;
  uint64_t off = 0;
  for (const T& t : tensors_) {
    h[t.name] = {
        {"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {off, off + t.data.size()}}};
    off += t.data.size();
  }
  std::string text = h.dump();
  while (text.size() % 8 != 0) text += ' ';
  const uint64_t n = text.size();
  std::vector<uint8_t> out(static_cast<size_t>(8 + n + off));
  for (int k = 0; k < 8; ++k) out[static_cast<size_t>(k)] = static_cast<uint8_t>(n >> (8 * k));
  std::memcpy(out.data() + 8, text.data(), text.size());
  size_t at = static_cast<size_t>(8 + n);
  for (const T& t : tensors_) {
    if (!t.data.empty()) std::memcpy(out.data() + at, t.data.data(), t.data.size());
    at += t.data.size();
  }
  return out;
}

void SafetensorsWriter::write(const std::string& path) const {
  const std::vector<uint8_t> b = to_bytes();
  std::ofstream out(path, std::ios::binary);
  if (!out) fail("cannot create ", path);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  if (!out) fail("cannot write ", path);
}

}  // namespace lc
