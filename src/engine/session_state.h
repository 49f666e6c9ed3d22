// Saved sessions: a Session's tokens, the logits after the last one and its memory's contents,
// written to an ObjectStore (core/object_store.h) as immutable objects plus one manifest, so that
// a process started later continues the session exactly where it stopped (the same logits for
// the same next token) without reading its text again.
//
// The manifest (JSON) names the objects and carries a fingerprint of the model file and of the
// settings the memory's contents depend on; a state saved with another model or other settings is
// refused with a message naming each difference. Settings that only change how work is done
// (threads, batch, memory.mem_budget, memory.spill_dir, memory.spill_max, memory.measure_recall)
// are left out of it.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/object_store.h"
#include "engine/session.h"

namespace lc {

using Fingerprint = std::vector<std::pair<std::string, std::string>>;

// A saved state of another model or other settings (load_session): the message names each
// difference.
class SessionIncompatible : public Error {
 public:
  using Error::Error;
};

// The model file (name, size, a hash of its first and last MiB) and the resolved settings.
Fingerprint session_fingerprint(const Session& s);

struct SaveStats {
  std::string manifest;  // the manifest written
  uint64_t tokens = 0;
  size_t objects = 0;         // objects the state references
  uint64_t bytes_stored = 0;  // bytes of those objects in the store
  double seconds = 0;
};

// Writes the session as manifest `name` of the store (objects first, the manifest last, then the
// objects of the previous state that are no longer needed are deleted). lc::Error when the store
// cannot be written; the previous state then stays as it was.
// `label` is kept in the manifest as the front end's own name for the session (shown by
// saved_session_info; "" = the manifest's name).
SaveStats save_session(Session& s, ObjectStore& store, const std::string& name,
                       const std::string& label = "");

// Restores manifest `name` into s (reset first). False when the store has no such manifest.
// SessionIncompatible for another model or other settings (each difference named); StoreUnavailable
// when the store cannot be read; lc::Error for a corrupt, truncated or missing object. s is left
// empty on any error.
bool load_session(Session& s, const ObjectStore& store, const std::string& name);

// What a saved state holds, from its manifest alone (for listings): tokens, saved time (UTC,
// ISO 8601), memory policy. lc::Error when the manifest is not one.
struct SavedSessionInfo {
  int64_t tokens = 0;
  std::string saved_at, memory, label;
};
SavedSessionInfo saved_session_info(const std::string& manifest_text, const std::string& name);

}  // namespace lc
