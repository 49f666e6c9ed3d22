// The server's sessions: named ones (kept in RAM up to a count, least recently used first out,
// and — with a store — saved after every request and loaded again on first use, so they survive
// restarts), and a prompt cache of recent unnamed ones under a byte budget from which a request
// without a name reuses the longest common prefix.
//
// A request leases a session: exclusive use until the lease is returned. The session then holds
// the longest prefix of the request's prompt it could keep (see reuse_prefix): what extends it is
// prefilled, what diverged was taken back (truncate) or, when the memory cannot, forgotten.
#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/object_store.h"
#include "engine/session.h"

namespace lc::server {

// Makes s hold the longest prefix of ids it can keep, leaving at least one token of ids to feed;
// returns how many tokens of ids it holds.
int64_t reuse_prefix(Session& s, const std::vector<int32_t>& ids);

// The store's name for a session id (ids are printable ASCII; store names are narrower).
std::string store_name(const std::string& session_id);

class SessionRegistry {
 public:
  using Clock = std::chrono::steady_clock;
  struct Entry {
    std::mutex busy;
    std::unique_ptr<Session> session;
    Clock::time_point last_used;
    // Hash of the store's manifest that the session in RAM corresponds to ("none": no state in
    // the store; "": unknown, load it).
    std::string state;
  };
  class Lease {
   public:
    Session& session() { return *session_; }
    const std::string& name() const { return name_; }
    int64_t cached = 0;  // prompt tokens the session already held

    // Keeps the hold on the session in a shared store alive during a long request (at most
    // every few seconds); false once it was lost.
    bool keep_alive() {
      if (!store_lock_ || Clock::now() - renewed_ < std::chrono::seconds(5)) return true;
      renewed_ = Clock::now();
      return store_lock_->renew();
    }

   private:
    friend class SessionRegistry;
    std::unique_ptr<StoreLock> store_lock_;
    Clock::time_point renewed_;
    std::shared_ptr<Entry> entry_;
    std::unique_lock<std::mutex> lock_;
    std::unique_ptr<Session> own_;
    Session* session_ = nullptr;
    std::string name_;
  };

  struct Limits {
    size_t max_sessions = 256;  // named sessions in RAM
    // KV bytes of idle named sessions in RAM; beyond it the least recently used are dropped from
    // RAM (with a store only: they are loaded again at their next request). 0 = no limit.
    size_t ram_bytes = 0;
    // Bytes of saved sessions in the store; beyond it the least recently used sessions that no
    // replica is using are deleted from it (in the store's order: ObjectStore::manifests_by_age).
    // 0 = no limit.
    size_t store_bytes = 0;
    size_t cache_bytes = 0;  // the prompt cache of unnamed requests (0 = off)
  };
  // store: where named sessions are saved (null: kept in RAM only).
  SessionRegistry(std::shared_ptr<const Model> model, SessionOptions opt, Limits limits,
                  std::unique_ptr<ObjectStore> store);

  // A named session holding the longest usable prefix of ids; loaded from the store on first use.
  // RequestError (409 session_incompatible, 500 session_corrupt) when its saved state cannot be
  // used — other sessions are unaffected.
  std::unique_ptr<Lease> named(const std::string& id, const std::vector<int32_t>& ids);
  // A session for a request without a name: from the prompt cache when one shares a prefix.
  std::unique_ptr<Lease> unnamed(const std::vector<int32_t>& ids);
  // Returns a lease. Named sessions are saved to the store first (lc::Error if that fails; the
  // lease is returned all the same); an unnamed one joins the prompt cache when `keep`.
  void give_back(std::unique_ptr<Lease> lease, bool keep);

  // GET /v1/sessions and /v1/sessions/{id}; DELETE /v1/sessions/{id} (false when unknown;
  // RequestError 409 while a request uses it).
  nlohmann::json list();
  std::optional<nlohmann::json> describe(const std::string& id);
  bool remove(const std::string& id);

  size_t sessions_in_ram();
  size_t sessions_saved();  // manifests in the store
  size_t kv_bytes_in_ram();
  size_t kv_bytes_on_disk();
  const ObjectStore* store() const { return store_.get(); }

 private:
  nlohmann::json info(const std::string& id, Session* s);
  // Sum over the idle sessions (prompt cache and named ones not in use) of a memory's bytes.
  size_t idle_kv_bytes(size_t (KvMemory::*bytes)() const);
  // Drops idle sessions from RAM beyond limits_.ram_bytes (caller holds m_).
  void enforce_ram_budget(const std::string& keep);
  // Deletes the least recently used sessions beyond limits_.store_bytes, each under its lease
  // (caller holds store_m_).
  void enforce_store_budget(const std::string& keep);

  std::shared_ptr<const Model> model_;
  SessionOptions opt_;
  Limits limits_;
  std::unique_ptr<ObjectStore> store_;
  std::mutex store_m_;  // the store is used by one request at a time
  bool log_saves_;      // LONGCTX_LOG_SAVES set: a line on stderr per save (measurements)
  std::mutex m_;
  std::unordered_map<std::string, std::shared_ptr<Entry>> named_;
  std::list<std::unique_ptr<Session>> cache_;  // most recently used first
};

}  // namespace lc::server
