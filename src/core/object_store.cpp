#include "core/object_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <set>

#include "core/error.h"
#include "core/state_io.h"

namespace lc {

namespace {

constexpr uint64_t kP1 = 0x9E3779B185EBCA87ull, kP2 = 0xC2B2AE3D27D4EB4Full;

uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xFF51AFD7ED558CCDull;
  x ^= x >> 33;
  x *= 0xC4CEB9FE1A85EC53ull;
  x ^= x >> 33;
  return x;
}

std::string os_error() { return std::strerror(errno); }

}  // namespace

std::string content_hash(const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint64_t a = 0x243F6A8885A308D3ull ^ n, b = 0x13198A2E03707344ull ^ (n * kP1);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    uint64_t x, y;
    std::memcpy(&x, p + i, 8);
    std::memcpy(&y, p + i + 8, 8);
    a = (a ^ (x * kP2)) * kP1;
    a = (a << 29) | (a >> 35);
    b = (b ^ (y * kP1)) * kP2;
    b = (b << 31) | (b >> 33);
  }
  uint64_t t0 = 0, t1 = 0;
  if (n > i) std::memcpy(&t0, p + i, std::min<size_t>(8, n - i));
  if (n - i > 8) std::memcpy(&t1, p + i + 8, n - i - 8);
  a = mix(a ^ mix(t0 + kP1) ^ b);
  b = mix(b ^ mix(t1 + kP2) ^ a);
  char out[33];
  std::snprintf(out, sizeof out, "%016llx%016llx", static_cast<unsigned long long>(a),
                static_cast<unsigned long long>(b));
  return out;
}

bool valid_store_name(const std::string& name) {
  if (name.empty() || name.size() > 128 || name[0] == '.') return false;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-'))
      return false;
  return true;
}

namespace {

// Splits "<ns>/<hash>"; lc::Error for anything else.
std::pair<std::string, std::string> split_key(const std::string& where, const std::string& key) {
  const size_t slash = key.find('/');
  const std::string ns = slash == std::string::npos ? "" : key.substr(0, slash);
  const std::string hash = slash == std::string::npos ? "" : key.substr(slash + 1);
  bool ok = valid_store_name(ns) && hash.size() == 32;
  for (char c : hash) ok = ok && std::isxdigit(static_cast<unsigned char>(c));
  if (!ok) fail(where, ": '", key, "' is not an object key");
  return {ns, hash};
}

void check_name(const std::string& where, const std::string& name) {
  if (!valid_store_name(name))
    fail(where, ": '", name,
         "' is not a valid name (1-128 characters of A-Z a-z 0-9 . _ -, not starting with '.')");
}

void write_all(int fd, const void* p, size_t n, const std::string& path) {
  const auto* b = static_cast<const uint8_t*>(p);
  while (n > 0) {
    const ssize_t w = ::write(fd, b, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) fail("cannot write '", path, "': ", w < 0 ? os_error() : "no space left");
    b += w;
    n -= static_cast<size_t>(w);
  }
}

void read_at(int fd, void* p, size_t n, uint64_t off, const std::string& path) {
  auto* b = static_cast<uint8_t*>(p);
  while (n > 0) {
    const ssize_t r = ::pread(fd, b, n, static_cast<off_t>(off));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) fail("cannot read '", path, "': ", r < 0 ? os_error() : "the file ends early");
    b += r;
    n -= static_cast<size_t>(r);
    off += static_cast<uint64_t>(r);
  }
}

// Writes all n bytes at offset off (so a failed write leaves the next one the same place).
void write_at(int fd, const void* p, size_t n, uint64_t off, const std::string& path) {
  const auto* b = static_cast<const uint8_t*>(p);
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, b, n, static_cast<off_t>(off));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) fail("cannot write '", path, "': ", w < 0 ? os_error() : "no space left");
    b += w;
    n -= static_cast<size_t>(w);
    off += static_cast<uint64_t>(w);
  }
}

// Creates a new file beside path, named path + suffix + a unique part (returned in name).
int create_beside(const std::string& path, const char* suffix, std::string& name) {
  const std::string tmp = path + suffix + "XXXXXX";
  std::vector<char> buf(tmp.begin(), tmp.end());
  buf.push_back('\0');
  const int fd = ::mkstemp(buf.data());
  if (fd < 0) fail("cannot create a file beside '", path, "': ", os_error());
  name = buf.data();
  return fd;
}

void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

std::string parent_of(const std::string& path) {
  const size_t s = path.rfind('/');
  if (s == std::string::npos) return ".";
  return s == 0 ? "/" : path.substr(0, s);
}

// Writes a file crash-safely: a temporary file beside it, fsync, rename, and (unless the caller
// syncs the folder itself, once for many files) fsync of the folder.
void write_file_atomic(const std::string& path, const void* p, size_t n, bool sync_dir = true) {
  std::string name;
  const int fd = create_beside(path, ".tmp-", name);
  try {
    write_all(fd, p, n, path);
    if (::fsync(fd) != 0) fail("cannot write '", path, "': ", os_error());
  } catch (...) {
    ::close(fd);
    ::unlink(name.data());
    throw;
  }
  ::close(fd);
  if (::rename(name.data(), path.c_str()) != 0) {
    const std::string err = os_error();
    ::unlink(name.data());
    fail("cannot write '", path, "': ", err);
  }
  if (sync_dir) fsync_dir(parent_of(path));
}

std::vector<uint8_t> read_file(const std::string& path, bool* missing) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT && missing != nullptr) {
      *missing = true;
      return {};
    }
    throw StoreUnavailable(cat("cannot open '", path, "': ", os_error()));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw StoreUnavailable(cat("cannot read '", path, "': ", os_error()));
  }
  std::vector<uint8_t> b(static_cast<size_t>(st.st_size));
  try {
    read_at(fd, b.data(), b.size(), 0, path);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  return b;
}

void make_dir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
    fail("cannot create the folder '", dir, "': ", os_error());
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) fail("'", dir, "' is not a folder");
}

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (const dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(n);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

class FileLock final : public StoreLock {
 public:
  explicit FileLock(int fd) : fd_(fd) {}
  ~FileLock() override { ::close(fd_); }  // closing releases the flock

 private:
  int fd_;
};

class DirStore final : public ObjectStore {
 public:
  explicit DirStore(std::string dir) : dir_(std::move(dir)) {
    while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
    make_dir(dir_);
    make_dir(dir_ + "/manifests");
    make_dir(dir_ + "/objects");
    make_dir(dir_ + "/locks");
    if (::access(dir_.c_str(), W_OK | X_OK) != 0)
      fail("the session folder '", dir_, "' is not writable: ", os_error());
  }
  std::string describe() const override { return "dir:" + dir_; }

  std::unique_ptr<StoreLock> try_lock(const std::string& name) override {
    check_name(describe(), name);
    const std::string path = dir_ + "/locks/" + name + ".lock";
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) fail(describe(), ": cannot open the lock file ", path, ": ", os_error());
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      ::close(fd);
      if (err == EWOULDBLOCK) return nullptr;
      fail(describe(), ": cannot lock ", path, ": ", std::strerror(err));
    }
    return std::make_unique<FileLock>(fd);
  }

  bool has(const std::string& key) const override {
    split_key(describe(), key);
    struct stat st {};
    return ::stat(object_path(key).c_str(), &st) == 0;
  }
  std::vector<uint8_t> get(const std::string& key) const override {
    split_key(describe(), key);
    bool missing = false;
    std::vector<uint8_t> b = read_file(object_path(key), &missing);
    if (missing) fail(describe(), ": object ", key, " is missing");
    check_object(describe(), key, b);
    return b;
  }
  std::vector<std::string> list(const std::string& ns) const override {
    check_name(describe(), ns);
    std::vector<std::string> keys;
    for (const std::string& f : list_dir(dir_ + "/objects/" + ns))
      if (f.size() == 32) keys.push_back(ns + "/" + f);
    return keys;
  }
  void remove(const std::string& key) override {
    split_key(describe(), key);
    ::unlink(object_path(key).c_str());
  }
  void put_manifest(const std::string& name, const std::string& text,
                    const std::vector<std::string>& refs) override {
    check_name(describe(), name);
    // Objects were written with fsync and renamed; the folder entries must be durable too.
    fsync_dir(dir_ + "/objects/" + name);
    write_file_atomic(manifest_path(name), text.data(), text.size());
    const std::set<std::string> keep(refs.begin(), refs.end());
    for (const std::string& k : list(name))
      if (keep.count(k) == 0) remove(k);
    // Temporary files of writes cut short (a writer killed before its rename): only the holder of
    // the session's lock writes them, and its own writes are all done by now.
    const std::string objects = dir_ + "/objects/" + name;
    for (const std::string& f : list_dir(objects))
      if (f.find(".tmp-") != std::string::npos) ::unlink((objects + "/" + f).c_str());
    const std::string stale = name + ".json.tmp-";
    for (const std::string& f : list_dir(dir_ + "/manifests"))
      if (f.compare(0, stale.size(), stale) == 0) ::unlink((dir_ + "/manifests/" + f).c_str());
  }
  std::optional<std::string> get_manifest(const std::string& name) const override {
    check_name(describe(), name);
    bool missing = false;
    const std::vector<uint8_t> b = read_file(manifest_path(name), &missing);
    if (missing) return std::nullopt;
    return std::string(b.begin(), b.end());
  }
  std::vector<std::string> manifests() const override {
    std::vector<std::string> out;
    for (const std::string& f : list_dir(dir_ + "/manifests"))
      if (f.size() > 5 && f.compare(f.size() - 5, 5, ".json") == 0 &&
          valid_store_name(f.substr(0, f.size() - 5)))
        out.push_back(f.substr(0, f.size() - 5));
    return out;
  }
  std::vector<std::string> manifests_by_age() const override {
    // By the manifest's modification time (each write replaces the file), then by name.
    std::vector<std::pair<std::pair<int64_t, int64_t>, std::string>> v;
    for (const std::string& n : manifests()) {
      struct stat st {};
      if (::stat(manifest_path(n).c_str(), &st) != 0) continue;  // deleted meanwhile
      v.push_back({{static_cast<int64_t>(st.st_mtim.tv_sec), st.st_mtim.tv_nsec}, n});
    }
    std::sort(v.begin(), v.end());
    std::vector<std::string> out;
    for (auto& [when, n] : v) out.push_back(std::move(n));
    return out;
  }
  void remove_manifest(const std::string& name) override {
    check_name(describe(), name);
    ::unlink(manifest_path(name).c_str());
    fsync_dir(dir_ + "/manifests");
    for (const std::string& k : list(name)) remove(k);
    ::rmdir((dir_ + "/objects/" + name).c_str());
  }
  uint64_t bytes(const std::string& ns) const override {
    uint64_t total = 0;
    for (const std::string& k : list(ns)) {
      struct stat st {};
      if (::stat(object_path(k).c_str(), &st) == 0) total += static_cast<uint64_t>(st.st_size);
    }
    return total;
  }

 protected:
  void put_object(const std::string& key, const std::vector<uint8_t>& bytes) override {
    const auto [ns, hash] = split_key(describe(), key);
    make_dir(dir_ + "/objects/" + ns);
    // The folder is synced once, before the manifest that references the object (put_manifest).
    write_file_atomic(object_path(key), bytes.data(), bytes.size(), false);
  }

 private:
  std::string object_path(const std::string& key) const { return dir_ + "/objects/" + key; }
  std::string manifest_path(const std::string& name) const {
    return dir_ + "/manifests/" + name + ".json";
  }
  std::string dir_;
};

// Bundle file layout: "LCBUNDL1", the objects' bytes, then the index (ByteWriter: count, then per
// object key, offset, size; count, then per manifest name, text), then a trailer: the index's
// offset and size (u64 each), the index's content hash (32 bytes) and "LCBUNDLE".
constexpr char kBundleHead[8] = {'L', 'C', 'B', 'U', 'N', 'D', 'L', '1'};
constexpr char kBundleTail[8] = {'L', 'C', 'B', 'U', 'N', 'D', 'L', 'E'};
constexpr size_t kTrailer = 8 + 8 + 32 + 8;

class BundleStore final : public ObjectStore {
 public:
  explicit BundleStore(std::string path) : path_(std::move(path)) {
    try {
      load();
    } catch (...) {  // the destructor will not run: a rejected file must not keep its descriptor
      if (fd_ >= 0) ::close(fd_);
      throw;
    }
  }
  ~BundleStore() override {
    if (fd_ >= 0) ::close(fd_);
    if (stage_fd_ >= 0) ::close(stage_fd_);
  }
  std::string describe() const override { return "file:" + path_; }

  bool has(const std::string& key) const override {
    return pending_.count(key) > 0 || index_.count(key) > 0;
  }
  std::vector<uint8_t> get(const std::string& key) const override {
    if (auto it = pending_.find(key); it != pending_.end()) {
      std::vector<uint8_t> b(static_cast<size_t>(it->second.second));
      read_at(stage_fd_, b.data(), b.size(), it->second.first, path_);
      return b;
    }
    const auto it = index_.find(key);
    if (it == index_.end()) fail(describe(), ": object ", key, " is missing");
    std::vector<uint8_t> b(static_cast<size_t>(it->second.second));
    read_at(fd_, b.data(), b.size(), it->second.first, path_);
    check_object(describe(), key, b);
    return b;
  }
  std::vector<std::string> list(const std::string& ns) const override {
    std::vector<std::string> out;
    for (const auto& [k, v] : index_)
      if (k.compare(0, ns.size() + 1, ns + "/") == 0) out.push_back(k);
    for (const auto& [k, v] : pending_)
      if (k.compare(0, ns.size() + 1, ns + "/") == 0 && index_.count(k) == 0) out.push_back(k);
    return out;
  }
  void remove(const std::string& key) override {
    pending_.erase(key);
    removed_.insert(key);
  }
  void put_manifest(const std::string& name, const std::string& text,
                    const std::vector<std::string>& refs) override {
    check_name(describe(), name);
    std::map<std::string, std::string> manifests = manifests_;
    manifests[name] = text;
    std::set<std::string> keep;
    for (const auto& [k, v] : index_)
      if (k.compare(0, name.size() + 1, name + "/") != 0 && removed_.count(k) == 0) keep.insert(k);
    for (const std::string& r : refs) keep.insert(r);
    write(manifests, keep);
    drop_pending();
    removed_.clear();
  }
  std::optional<std::string> get_manifest(const std::string& name) const override {
    const auto it = manifests_.find(name);
    if (it == manifests_.end()) return std::nullopt;
    return it->second;
  }
  std::vector<std::string> manifests() const override {
    std::vector<std::string> out;
    for (const auto& [k, v] : manifests_) out.push_back(k);
    return out;
  }
  void remove_manifest(const std::string& name) override {
    std::map<std::string, std::string> manifests = manifests_;
    manifests.erase(name);
    std::set<std::string> keep;
    for (const auto& [k, v] : index_)
      if (k.compare(0, name.size() + 1, name + "/") != 0) keep.insert(k);
    write(manifests, keep);
    drop_pending();
  }
  uint64_t bytes(const std::string& ns) const override {
    uint64_t total = 0;
    for (const auto& [k, v] : index_)
      if (k.compare(0, ns.size() + 1, ns + "/") == 0) total += v.second;
    return total;
  }

 protected:
  // Objects wait for the next manifest in a staging file beside the session file (unlinked at
  // once: it goes away with the process), not in RAM: a long context's state may be gigabytes.
  void put_object(const std::string& key, const std::vector<uint8_t>& bytes) override {
    if (stage_fd_ < 0) {
      std::string name;
      stage_fd_ = create_beside(path_, ".stage-", name);
      ::unlink(name.c_str());
      stage_end_ = 0;
    }
    write_at(stage_fd_, bytes.data(), bytes.size(), stage_end_, path_ + " (staging)");
    pending_[key] = {stage_end_, bytes.size()};
    stage_end_ += bytes.size();
  }

 private:
  void drop_pending() {
    pending_.clear();
    if (stage_fd_ >= 0) ::close(stage_fd_);
    stage_fd_ = -1;
    stage_end_ = 0;
  }

  void load() {
    bool missing = false;
    fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) {
      missing = errno == ENOENT;
      if (!missing) fail("cannot open the session file '", path_, "': ", os_error());
      return;
    }
    struct stat st {};
    if (::fstat(fd_, &st) != 0) fail("cannot read '", path_, "': ", os_error());
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    const std::string what = "session file '" + path_ + "'";
    if (size < 8 + kTrailer) fail(what, " is not a longctx session file (too short)");
    char head[8];
    read_at(fd_, head, 8, 0, path_);
    if (std::memcmp(head, kBundleHead, 8) != 0) fail(what, " is not a longctx session file");
    uint8_t tr[kTrailer];
    read_at(fd_, tr, kTrailer, size - kTrailer, path_);
    if (std::memcmp(tr + kTrailer - 8, kBundleTail, 8) != 0)
      fail(what, " is truncated or corrupt (no trailer)");
    uint64_t ioff = 0, isize = 0;
    std::memcpy(&ioff, tr, 8);
    std::memcpy(&isize, tr + 8, 8);
    if (ioff < 8 || ioff > size - kTrailer || isize != size - kTrailer - ioff)
      fail(what, " is truncated or corrupt (index out of place)");
    std::vector<uint8_t> idx(static_cast<size_t>(isize));
    read_at(fd_, idx.data(), idx.size(), ioff, path_);
    if (content_hash(idx.data(), idx.size()) != std::string(reinterpret_cast<char*>(tr + 16), 32))
      fail(what, " is corrupt (its index does not match its checksum)");
    ByteReader r(idx.data(), idx.size(), what);
    const uint64_t n = r.get<uint64_t>();
    r.expect(n <= isize / 16, "object count");
    for (uint64_t i = 0; i < n; ++i) {
      const std::string key = r.str(256);
      const uint64_t off = r.get<uint64_t>(), len = r.get<uint64_t>();
      r.expect(off >= 8 && off <= ioff && len <= ioff - off, "object offset");
      split_key(what, key);
      index_[key] = {off, len};
    }
    const uint64_t m = r.get<uint64_t>();
    r.expect(m <= isize / 16, "manifest count");
    for (uint64_t i = 0; i < m; ++i) {
      const std::string name = r.str(256);
      check_name(what, name);
      manifests_[name] = r.str(size_t{1} << 30);
    }
    r.expect(r.done(), "index length");
  }

  void write(const std::map<std::string, std::string>& manifests,
             const std::set<std::string>& keep) {
    std::string name;
    const int fd = create_beside(path_, ".tmp-", name);
    std::map<std::string, std::pair<uint64_t, uint64_t>> index;
    try {
      write_all(fd, kBundleHead, 8, path_);
      uint64_t off = 8;
      for (const std::string& k : keep) {
        if (!has(k))
          fail(describe(), ": the manifest references object ", k, ", which was never stored");
        const std::vector<uint8_t> b = get(k);
        write_all(fd, b.data(), b.size(), path_);
        index[k] = {off, b.size()};
        off += b.size();
      }
      ByteWriter w;
      w.put<uint64_t>(index.size());
      for (const auto& [k, v] : index) {
        w.str(k);
        w.put<uint64_t>(v.first);
        w.put<uint64_t>(v.second);
      }
      w.put<uint64_t>(manifests.size());
      for (const auto& [k, v] : manifests) {
        w.str(k);
        w.str(v);
      }
      write_all(fd, w.bytes().data(), w.bytes().size(), path_);
      uint8_t tr[kTrailer];
      const uint64_t isize = w.bytes().size();
      std::memcpy(tr, &off, 8);
      std::memcpy(tr + 8, &isize, 8);
      std::memcpy(tr + 16, content_hash(w.bytes().data(), w.bytes().size()).data(), 32);
      std::memcpy(tr + kTrailer - 8, kBundleTail, 8);
      write_all(fd, tr, kTrailer, path_);
      if (::fsync(fd) != 0) fail("cannot write '", path_, "': ", os_error());
    } catch (...) {
      ::close(fd);
      ::unlink(name.data());
      throw;
    }
    if (::rename(name.data(), path_.c_str()) != 0) {
      const std::string err = os_error();
      ::close(fd);
      ::unlink(name.data());
      fail("cannot write '", path_, "': ", err);
    }
    fsync_dir(parent_of(path_));
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;  // the new file (same content as the path now names)
    index_ = std::move(index);
    manifests_ = manifests;
  }

  std::string path_;
  int fd_ = -1;
  std::map<std::string, std::pair<uint64_t, uint64_t>> index_;  // key -> offset, size
  std::map<std::string, std::string> manifests_;
  std::map<std::string, std::pair<uint64_t, uint64_t>> pending_;  // key -> offset, size (staged)
  int stage_fd_ = -1;
  uint64_t stage_end_ = 0;
  std::set<std::string> removed_;
};

}  // namespace

void check_object(const std::string& where, const std::string& key,
                  const std::vector<uint8_t>& bytes) {
  const auto [ns, hash] = split_key(where, key);
  if (content_hash(bytes.data(), bytes.size()) != hash)
    fail(where, ": object ", key, " is corrupt (its content does not match its checksum)");
}

std::string ObjectStore::put(const std::string& ns, const std::vector<uint8_t>& bytes) {
  check_name(describe(), ns);
  const std::string key = ns + "/" + content_hash(bytes.data(), bytes.size());
  if (!has(key)) put_object(key, bytes);
  return key;
}

std::unique_ptr<ObjectStore> open_dir_store(const std::string& dir) {
  return std::make_unique<DirStore>(dir);
}

std::unique_ptr<ObjectStore> open_bundle_store(const std::string& path) {
  return std::make_unique<BundleStore>(path);
}

}  // namespace lc
