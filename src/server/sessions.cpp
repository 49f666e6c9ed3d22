#include "server/sessions.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "core/error.h"
#include "core/state_io.h"
#include "engine/session_state.h"
#include "server/request.h"

namespace lc::server {

using json = nlohmann::json;

int64_t reuse_prefix(Session& s, const std::vector<int32_t>& ids) {
  const std::vector<int32_t>& held = s.tokens();
  size_t p = 0;
  while (p < held.size() && p < ids.size() && held[p] == ids[p]) ++p;
  p = std::min(p, ids.empty() ? 0 : ids.size() - 1);  // at least one token to feed
  if (p == held.size()) return static_cast<int64_t>(p);
  try {
    if (p > 0 && s.truncate(static_cast<int64_t>(p))) return static_cast<int64_t>(p);
  } catch (const Error&) {
    // A spilled block could not be read back (the session is empty now): read the prompt afresh.
  }
  s.reset();
  return 0;
}

std::string store_name(const std::string& id) {
  if (valid_store_name(id) && id.compare(0, 2, "x-") != 0) return id;
  return "x-" + content_hash(id.data(), id.size());
}

SessionRegistry::SessionRegistry(std::shared_ptr<const Model> model, SessionOptions opt,
                                 Limits limits, std::unique_ptr<ObjectStore> store)
    : model_(std::move(model)),
      opt_(std::move(opt)),
      limits_(limits),
      store_(std::move(store)),
      log_saves_(std::getenv("LONGCTX_LOG_SAVES") != nullptr) {
  limits_.max_sessions = std::max<size_t>(1, limits_.max_sessions);
}

std::unique_ptr<SessionRegistry::Lease> SessionRegistry::named(const std::string& id,
                                                               const std::vector<int32_t>& ids) {
  std::shared_ptr<Entry> e;
  {
    std::lock_guard lock(m_);
    auto it = named_.find(id);
    if (it != named_.end()) {
      e = it->second;
    } else {
      while (named_.size() >= limits_.max_sessions) {
        auto oldest = named_.begin();
        for (auto j = named_.begin(); j != named_.end(); ++j)
          if (j->second->last_used < oldest->second->last_used) oldest = j;
        named_.erase(oldest);  // saved after its last request; a request using it keeps it alive
      }
      e = std::make_shared<Entry>();
      named_.emplace(id, e);
    }
    e->last_used = Clock::now();
  }
  auto lease = std::make_unique<Lease>();
  lease->lock_ = std::unique_lock(e->busy);
  lease->entry_ = e;
  lease->name_ = id;
  if (!e->session) e->session = std::make_unique<Session>(model_, opt_);
  if (store_) {
    const std::string name = store_name(id);
    try {
      // Exclusive use among the replicas sharing the store, for this request.
      lease->store_lock_ = store_->try_lock(name);
      if (!lease->store_lock_) {
        // Retry once the holder's lease would lapse: at once when the holder finishes and
        // releases it, at the latest when a holder that died stops renewing it.
        ApiError busy;
        busy.status = 503;
        busy.param = "session_id";
        busy.code = "session_busy";
        const double lapse = store_->lock_expires_in(name);
        busy.retry_after = std::max(1, static_cast<int>(std::ceil(lapse)));
        busy.message = cat("session '", id, "' is in use by another replica (its hold lapses in ",
                           busy.retry_after, " s unless renewed); retry then");
        throw RequestError(busy);
      }
      lease->renewed_ = Clock::now();
      std::lock_guard lock(store_m_);
      // What the session holds in RAM is its state only if the store still has the state this
      // replica last saved or loaded (another replica may have continued it meanwhile).
      const std::optional<std::string> text = store_->get_manifest(name);
      const std::string now = text ? content_hash(text->data(), text->size()) : "none";
      if (now != e->state) {
        e->state.clear();
        if (text)
          load_session(*e->session, *store_, name);
        else
          e->session->reset();
        e->state = now;
      }
    } catch (const SessionIncompatible& err) {
      // The next request tries again, until the session is deleted.
      fail_request(409, "session_id", "session_incompatible",
                   cat("session '", id, "' cannot be continued: ", err.what(),
                       "; DELETE /v1/sessions/{id} to start it afresh"));
    } catch (const StoreUnavailable& err) {
      fail_request(503, "session_id", "session_store_unavailable",
                   cat("session '", id, "' cannot be continued: ", err.what(),
                       "; retry when the store is back"));
    } catch (const Error& err) {
      fail_request(500, "session_id", "session_corrupt",
                   cat("session '", id, "' cannot be continued: ", err.what(),
                       "; DELETE /v1/sessions/{id} to start it afresh"));
    }
  }
  lease->session_ = e->session.get();
  lease->cached = reuse_prefix(*lease->session_, ids);
  return lease;
}

std::unique_ptr<SessionRegistry::Lease> SessionRegistry::unnamed(const std::vector<int32_t>& ids) {
  auto lease = std::make_unique<Lease>();
  {
    std::lock_guard lock(m_);
    auto best = cache_.end();
    size_t best_p = 0;
    for (auto it = cache_.begin(); it != cache_.end(); ++it) {
      const std::vector<int32_t>& held = (*it)->tokens();
      size_t p = 0;
      while (p < held.size() && p < ids.size() && held[p] == ids[p]) ++p;
      if (p > best_p) {
        best_p = p;
        best = it;
      }
    }
    if (best != cache_.end()) {
      lease->own_ = std::move(*best);
      cache_.erase(best);
    }
  }
  if (!lease->own_) lease->own_ = std::make_unique<Session>(model_, opt_);
  lease->session_ = lease->own_.get();
  lease->cached = reuse_prefix(*lease->session_, ids);
  return lease;
}

void SessionRegistry::give_back(std::unique_ptr<Lease> lease, bool keep) {
  if (lease->entry_) {
    Entry& e = *lease->entry_;
    e.last_used = Clock::now();
    if (store_) {
      std::lock_guard lock(store_m_);
      const std::string name = store_name(lease->name_);
      try {
        if (lease->session_->n_past() == 0) {
          e.state.clear();  // emptied by an error: back to its saved state at its next request
        } else {
          if (log_saves_)
            std::fprintf(stderr, "serve: session '%s' saving: %llu tokens\n", lease->name_.c_str(),
                         static_cast<unsigned long long>(lease->session_->n_past()));
          const SaveStats st = save_session(*lease->session_, *store_, name, lease->name_);
          e.state = content_hash(st.manifest.data(), st.manifest.size());
          enforce_store_budget(name);
          if (log_saves_)
            std::fprintf(stderr,
                         "serve: session '%s' saved: %llu tokens, %.1f MiB in the store, %.3f s\n",
                         lease->name_.c_str(), static_cast<unsigned long long>(st.tokens),
                         static_cast<double>(st.bytes_stored) / (1 << 20), st.seconds);
        }
      } catch (const Error&) {
        // Not saved: what RAM holds is ahead of the store; the next request goes back to the
        // store's last consistent state.
        lease->session_->reset();
        e.state.clear();
        throw;
      }
    }
    const std::string id = lease->name_;
    lease.reset();  // unlocks the session: it is idle now
    std::lock_guard lock(m_);
    enforce_ram_budget(id);
    return;
  }
  const size_t cache_bytes = limits_.cache_bytes;
  if (!keep || cache_bytes == 0 || lease->own_->n_past() == 0) return;
  std::lock_guard lock(m_);
  cache_.push_front(std::move(lease->own_));
  size_t total = 0;
  for (auto it = cache_.begin(); it != cache_.end();) {
    total += (*it)->memory().bytes_in_ram();
    if (total > cache_bytes && it != cache_.begin())
      it = cache_.erase(it);
    else
      ++it;
  }
  if (cache_.front()->memory().bytes_in_ram() > cache_bytes) cache_.pop_front();
}

void SessionRegistry::enforce_ram_budget(const std::string& keep) {
  if (limits_.ram_bytes == 0 || !store_) return;  // without a store, dropping would lose them
  // Idle sessions, least recently used first.
  std::vector<std::pair<Clock::time_point, std::string>> idle;
  size_t total = 0;
  for (const auto& [id, e] : named_) {
    std::unique_lock busy(e->busy, std::try_to_lock);
    if (!busy.owns_lock() || !e->session) continue;
    total += e->session->memory().bytes_in_ram();
    if (id != keep) idle.emplace_back(e->last_used, id);
  }
  std::sort(idle.begin(), idle.end());
  for (const auto& [when, id] : idle) {
    if (total <= limits_.ram_bytes) break;
    auto it = named_.find(id);
    std::unique_lock busy(it->second->busy, std::try_to_lock);
    if (!busy.owns_lock()) continue;
    total -= it->second->session->memory().bytes_in_ram();
    busy.unlock();
    named_.erase(it);  // saved after its last request: loaded again at its next one
  }
}

void SessionRegistry::enforce_store_budget(const std::string& keep) {
  if (limits_.store_bytes == 0) return;
  // Every session in the store, whichever replica saved it, least recently used first (the
  // store's order, the same for every replica sharing it).
  std::vector<std::pair<std::string, uint64_t>> order;
  uint64_t total = 0;
  for (const std::string& name : store_->manifests_by_age()) {
    const uint64_t b = store_->bytes(name);
    total += b;
    if (name != keep) order.emplace_back(name, b);
  }
  for (const auto& [name, b] : order) {
    if (total <= limits_.store_bytes) break;
    // Only a session no request uses, on any replica: its lease (the lock file for dir:) is
    // taken for the deletion and a session whose lease is held is skipped. The lease also keeps
    // another replica from starting a request on it meanwhile.
    std::unique_ptr<StoreLock> held;
    try {
      held = store_->try_lock(name);
    } catch (const Error&) {
    }
    if (!held) continue;
    {
      // A copy in this replica's RAM stays its state (saved again at its next request); ids map
      // to names one way only, so compare through store_name.
      std::lock_guard lock(m_);
      for (const auto& [id, e] : named_)
        if (store_name(id) == name) {
          std::unique_lock busy(e->busy, std::try_to_lock);
          if (busy.owns_lock()) e->state = "none";
        }
    }
    store_->remove_manifest(name);
    total -= b;
    std::fprintf(stderr, "serve: session store over its budget: deleted saved session '%s'\n",
                 name.c_str());
  }
}

json SessionRegistry::info(const std::string& id, Session* s) {
  json j = {{"id", id}, {"object", "session"}, {"in_memory", s != nullptr}};
  if (s != nullptr) {
    j["tokens"] = s->n_past();
    j["memory"] = s->memory().name();
    j["kv_bytes_in_ram"] = s->memory().bytes_in_ram();
    j["kv_bytes_spilled"] = s->memory().bytes_on_disk();
  }
  if (store_) {
    std::lock_guard lock(store_m_);
    const std::string name = store_name(id);
    if (const auto text = store_->get_manifest(name)) {
      try {
        const SavedSessionInfo i = saved_session_info(*text, name);
        j["saved"] = {{"tokens", i.tokens},
                      {"saved_at", i.saved_at},
                      {"bytes", store_->bytes(name)},
                      {"memory", i.memory}};
        if (s == nullptr) {
          j["tokens"] = i.tokens;
          j["memory"] = i.memory;
        }
      } catch (const Error& e) {
        j["saved"] = {{"error", e.what()}};
      }
    }
  }
  return j;
}

json SessionRegistry::list() {
  std::map<std::string, Session*> ids;
  {
    std::lock_guard lock(m_);
    for (const auto& [id, e] : named_) ids[id] = nullptr;
  }
  if (store_) {
    std::vector<std::string> names;
    {
      std::lock_guard lock(store_m_);
      names = store_->manifests();
    }
    for (const std::string& n : names) {
      std::string label = n;
      try {
        std::lock_guard lock(store_m_);
        if (const auto text = store_->get_manifest(n)) label = saved_session_info(*text, n).label;
      } catch (const Error&) {
      }
      ids.emplace(label, nullptr);
    }
  }
  json data = json::array();
  for (const auto& [id, unused] : ids) {
    if (auto d = describe(id)) data.push_back(*d);
  }
  return {{"object", "list"}, {"data", data}};
}

std::optional<json> SessionRegistry::describe(const std::string& id) {
  std::shared_ptr<Entry> e;
  {
    std::lock_guard lock(m_);
    if (auto it = named_.find(id); it != named_.end()) e = it->second;
  }
  std::unique_lock<std::mutex> busy;
  Session* s = nullptr;
  if (e) {
    busy = std::unique_lock(e->busy, std::try_to_lock);
    if (busy.owns_lock()) s = e->session.get();
  }
  json j = info(id, s);
  if (e && !busy.owns_lock()) {
    j["in_memory"] = true;
    j["busy"] = true;
  }
  if (!e && !j.contains("saved")) return std::nullopt;
  return j;
}

bool SessionRegistry::remove(const std::string& id) {
  bool found = false;
  {
    std::lock_guard lock(m_);
    if (auto it = named_.find(id); it != named_.end()) {
      std::unique_lock busy(it->second->busy, std::try_to_lock);
      if (!busy.owns_lock())
        fail_request(409, "session_id", "session_busy",
                     cat("session '", id, "' is in use by a request; retry when it is done"));
      named_.erase(it);
      found = true;
    }
  }
  if (store_) {
    std::lock_guard lock(store_m_);
    const std::string name = store_name(id);
    if (store_->get_manifest(name) || !store_->list(name).empty()) {
      store_->remove_manifest(name);
      found = true;
    }
  }
  return found;
}

size_t SessionRegistry::sessions_in_ram() {
  std::lock_guard lock(m_);
  return named_.size();
}

size_t SessionRegistry::sessions_saved() {
  if (!store_) return 0;
  std::lock_guard lock(store_m_);
  return store_->manifests().size();
}

size_t SessionRegistry::idle_kv_bytes(size_t (KvMemory::*bytes)() const) {
  std::lock_guard lock(m_);
  size_t b = 0;
  for (const auto& s : cache_) b += (s->memory().*bytes)();
  for (const auto& [id, e] : named_) {
    std::unique_lock busy(e->busy, std::try_to_lock);
    if (busy.owns_lock() && e->session) b += (e->session->memory().*bytes)();
  }
  return b;
}

size_t SessionRegistry::kv_bytes_in_ram() { return idle_kv_bytes(&KvMemory::bytes_in_ram); }

size_t SessionRegistry::kv_bytes_on_disk() { return idle_kv_bytes(&KvMemory::bytes_on_disk); }

}  // namespace lc::server
