// Where saved sessions live: immutable objects (put once under a key, read back whole, checked
// against the content hash their key carries) and small manifests, each replaced atomically, that
// say which objects make up a state. A state is consistent whenever its manifest is: objects are
// written (and made durable) before the manifest that references them, and objects no manifest
// references any more are deleted after the new manifest is in place.
//
// Keys are "<namespace>/<hash>" where the hash is content_hash() of the bytes; names (manifests and
// namespaces) are 1-128 characters of [A-Za-z0-9._-], not starting with '.'.
//
// Implementations: DirStore (a folder; the default) and BundleStore (one file, for the command
// line's session files). Errors (missing or corrupt object, I/O failure) are lc::Error naming the
// store, the key and the problem.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"

namespace lc {

// The store could not be reached, read or written (an OS or connection error), as opposed to what
// it holds being corrupt or missing (a plain lc::Error). What it held stays as it was.
class StoreUnavailable : public Error {
 public:
  using Error::Error;
};

// True for a usable manifest or namespace name (see above).
bool valid_store_name(const std::string& name);

// Exclusive use of one session's state among the processes sharing a store (held until
// destroyed). renew() keeps a lease that expires alive; false once it was lost.
class StoreLock {
 public:
  virtual ~StoreLock() = default;
  virtual bool renew() { return true; }
};

class ObjectStore {
 public:
  virtual ~ObjectStore() = default;
  // Takes the session `name` for this process: null when another process holds it. A store
  // shared by several processes writes a manifest only while its writer holds the lock (when it
  // took one): a writer that lost it gets an lc::Error instead of overwriting a newer state.
  virtual std::unique_ptr<StoreLock> try_lock(const std::string& name) {
    (void)name;
    return std::make_unique<StoreLock>();
  }
  // Seconds until the lock another process holds on `name` lapses unless its holder renews it
  // (a lease that expires); 0 when unknown, free, or a lock that never expires.
  virtual double lock_expires_in(const std::string& name) const {
    (void)name;
    return 0;
  }
  // "dir:/path", "file:/path": what the store is, for messages.
  virtual std::string describe() const = 0;

  // Stores bytes under "<ns>/<content_hash>" unless that object exists; returns the key.
  std::string put(const std::string& ns, const std::vector<uint8_t>& bytes);
  virtual bool has(const std::string& key) const = 0;
  // The object's bytes, verified against its key's hash; lc::Error when missing or corrupt.
  virtual std::vector<uint8_t> get(const std::string& key) const = 0;
  // Keys of the objects in a namespace.
  virtual std::vector<std::string> list(const std::string& ns) const = 0;
  virtual void remove(const std::string& key) = 0;

  // Replaces the manifest atomically, once every object put before it is durable; then deletes
  // the objects of namespace `name` that are not in `refs`.
  virtual void put_manifest(const std::string& name, const std::string& text,
                            const std::vector<std::string>& refs) = 0;
  virtual std::optional<std::string> get_manifest(const std::string& name) const = 0;
  virtual std::vector<std::string> manifests() const = 0;
  // The manifests, least recently written first: the same order for every process sharing the
  // store (a server writes a session's manifest at the end of each request that uses it, so this
  // is least recently used first).
  virtual std::vector<std::string> manifests_by_age() const { return manifests(); }
  // Deletes the manifest and every object of its namespace.
  virtual void remove_manifest(const std::string& name) = 0;
  // Bytes of the objects of a namespace.
  virtual uint64_t bytes(const std::string& ns) const = 0;

 protected:
  virtual void put_object(const std::string& key, const std::vector<uint8_t>& bytes) = 0;
};

// A folder: manifests/<name>.json and objects/<ns>/<hash>, each written to a temporary file,
// fsynced and renamed into place; locks/<name>.lock taken with flock (released by the kernel when
// the holder dies, so another process sharing the folder takes over at once). Created when
// missing.
std::unique_ptr<ObjectStore> open_dir_store(const std::string& dir);

// One file holding manifests and their objects (the state of one session): objects put are kept
// until put_manifest, which writes a new file (the referenced objects, old and new, then the
// manifests and an index), fsyncs it and renames it over the old one. Reading a file that is not a
// bundle, or a truncated one, is an lc::Error naming the file.
std::unique_ptr<ObjectStore> open_bundle_store(const std::string& path);

// Verifies bytes against the hash in their key; lc::Error naming `where` and the key otherwise.
void check_object(const std::string& where, const std::string& key,
                  const std::vector<uint8_t>& bytes);

}  // namespace lc
