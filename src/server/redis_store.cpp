// The Redis session store (see session_store.h). Keys, for a session (namespace) NS:
//   longctx:obj:NS/HASH:I     chunk I of an object       longctx:objn:NS/HASH  its chunk count
//   longctx:ns:NS             set of NS's object keys    longctx:nsbytes:NS    hash key -> size
//   longctx:manifest:NS       the manifest               longctx:manifests     set of session names
//   longctx:lease:NS          the lease token of the replica that holds NS
//   longctx:used              sorted set: session name -> when its manifest was last written
//                             (Redis's clock, milliseconds), for the byte budget's order
// A replica renews the leases it holds from a thread of its own (every quarter of the lease's
// length, on a connection of its own), so a lease lasts as long as its replica is alive and
// expires within one lease length after the replica dies.
#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "core/error.h"
#include "server/session_store.h"

namespace lc::server {

namespace {

constexpr size_t kChunk = size_t{8} << 20;
const std::string kPrefix = "longctx:";

struct Reply {
  redisReply* r = nullptr;
  ~Reply() {
    if (r) freeReplyObject(r);
  }
};

class RedisStore;

class RedisLease final : public StoreLock {
 public:
  RedisLease(RedisStore& s, std::string name, std::string token)
      : s_(s), name_(std::move(name)), token_(std::move(token)) {}
  ~RedisLease() override;
  bool renew() override;

 private:
  RedisStore& s_;
  std::string name_, token_;
};

class RedisStore final : public ObjectStore {
 public:
  RedisStore(std::string host, int port, int db, double lease_seconds)
      : host_(std::move(host)),
        port_(port),
        db_(db),
        lease_ms_(static_cast<long long>(lease_seconds * 1000)) {
    std::random_device rd;
    replica_ = std::to_string(rd()) + std::to_string(rd());
    {
      std::lock_guard lock(m_);
      c_ = connect();
    }
    renewer_ = std::thread([this] { renew_leases(); });
  }
  ~RedisStore() override {
    {
      std::lock_guard lock(leases_m_);
      stopping_ = true;
    }
    renew_cv_.notify_all();
    renewer_.join();
    if (c_) redisFree(c_);
  }
  std::string describe() const override {
    return "redis://" + host_ + ":" + std::to_string(port_) + "/" + std::to_string(db_);
  }

  bool has(const std::string& key) const override {
    return integer({"EXISTS", kPrefix + "objn:" + key}) > 0;
  }
  std::vector<uint8_t> get(const std::string& key) const override {
    std::lock_guard lock(m_);
    Reply n;
    n.r = command_locked({"GET", kPrefix + "objn:" + key});
    if (n.r->type == REDIS_REPLY_NIL) fail(describe(), ": object ", key, " is missing");
    if (n.r->type != REDIS_REPLY_STRING) fail(describe(), ": object ", key, " is corrupt");
    const long long chunks = std::atoll(n.r->str);
    if (chunks < 0 || chunks > (1 << 20)) fail(describe(), ": object ", key, " is corrupt");
    std::vector<uint8_t> out;
    for (long long i = 0; i < chunks; ++i) {
      Reply c;
      c.r = command_locked({"GET", kPrefix + "obj:" + key + ":" + std::to_string(i)});
      if (c.r->type != REDIS_REPLY_STRING)
        fail(describe(), ": object ", key, " is missing chunk ", i);
      out.insert(out.end(), c.r->str, c.r->str + c.r->len);
    }
    check_object(describe(), key, out);
    return out;
  }
  std::vector<std::string> list(const std::string& ns) const override {
    return strings({"SMEMBERS", kPrefix + "ns:" + ns});
  }
  void remove(const std::string& key) override {
    const size_t slash = key.find('/');
    const std::string ns = slash == std::string::npos ? "" : key.substr(0, slash);
    std::lock_guard lock(m_);
    Reply n;
    n.r = command_locked({"GET", kPrefix + "objn:" + key});
    if (n.r->type == REDIS_REPLY_STRING) {
      const long long chunks = std::atoll(n.r->str);
      std::vector<std::string> del = {"DEL", kPrefix + "objn:" + key};
      for (long long i = 0; i < std::min(chunks, 1LL << 20); ++i)
        del.push_back(kPrefix + "obj:" + key + ":" + std::to_string(i));
      Reply a;
      a.r = command_locked(del);
    } else {
      // A write cut short (no count): its chunks, written in order from 0, up to the first
      // missing one.
      for (long long i = 0; i < (1LL << 20); ++i) {
        Reply d;
        d.r = command_locked({"DEL", kPrefix + "obj:" + key + ":" + std::to_string(i)});
        if (d.r->type != REDIS_REPLY_INTEGER || d.r->integer == 0) break;
      }
    }
    Reply b, c;
    b.r = command_locked({"SREM", kPrefix + "ns:" + ns, key});
    c.r = command_locked({"HDEL", kPrefix + "nsbytes:" + ns, key});
  }

  void put_manifest(const std::string& name, const std::string& text,
                    const std::vector<std::string>& refs) override {
    if (!valid_store_name(name)) fail(describe(), ": '", name, "' is not a valid name");
    std::string token;
    {
      std::lock_guard lock(leases_m_);
      if (auto it = leases_.find(name); it != leases_.end()) token = it->second;
    }
    // Written only while this replica's lease holds (when it took one): checked in Redis,
    // atomically with the write, which also records when (for manifests_by_age).
    static const char* kScript =
        "if ARGV[2] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[2] then return 0 end "
        "redis.call('SET', KEYS[2], ARGV[1]) redis.call('SADD', KEYS[3], ARGV[3]) "
        "local t = redis.call('TIME') "
        "redis.call('ZADD', KEYS[4], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), "
        "ARGV[3]) return 1";
    if (integer({"EVAL", kScript, "4", kPrefix + "lease:" + name, kPrefix + "manifest:" + name,
                 kPrefix + "manifests", kPrefix + "used", text, token, name}) != 1)
      fail(describe(), ": session '", name,
           "' was taken over by another replica (its lease expired); this state was not saved");
    const std::set<std::string> keep(refs.begin(), refs.end());
    for (const std::string& k : list(name))
      if (keep.count(k) == 0) remove(k);
  }
  std::optional<std::string> get_manifest(const std::string& name) const override {
    std::lock_guard lock(m_);
    Reply r;
    r.r = command_locked({"GET", kPrefix + "manifest:" + name});
    if (r.r->type != REDIS_REPLY_STRING) return std::nullopt;
    return std::string(r.r->str, r.r->len);
  }
  std::vector<std::string> manifests() const override {
    std::vector<std::string> v = strings({"SMEMBERS", kPrefix + "manifests"});
    std::sort(v.begin(), v.end());
    return v;
  }
  std::vector<std::string> manifests_by_age() const override {
    // Manifests written before the order was recorded first, by name; then by time written.
    const std::vector<std::string> all = manifests();
    const std::vector<std::string> timed = strings({"ZRANGE", kPrefix + "used", "0", "-1"});
    const std::set<std::string> have(all.begin(), all.end());
    const std::set<std::string> known(timed.begin(), timed.end());
    std::vector<std::string> out;
    for (const std::string& n : all)
      if (known.count(n) == 0) out.push_back(n);
    for (const std::string& n : timed)
      if (have.count(n) != 0) out.push_back(n);
    return out;
  }
  void remove_manifest(const std::string& name) override {
    integer({"DEL", kPrefix + "manifest:" + name});
    integer({"SREM", kPrefix + "manifests", name});
    integer({"ZREM", kPrefix + "used", name});
    for (const std::string& k : list(name)) remove(k);
  }
  uint64_t bytes(const std::string& ns) const override {
    uint64_t total = 0;
    for (const std::string& v : strings({"HVALS", kPrefix + "nsbytes:" + ns}))
      total += std::strtoull(v.c_str(), nullptr, 10);
    return total;
  }

  std::unique_ptr<StoreLock> try_lock(const std::string& name) override {
    std::random_device rd;
    const std::string token = replica_ + ":" + std::to_string(rd());
    {
      std::lock_guard lock(m_);
      Reply r;
      r.r = command_locked(
          {"SET", kPrefix + "lease:" + name, token, "NX", "PX", std::to_string(lease_ms_)});
      if (r.r->type != REDIS_REPLY_STATUS) return nullptr;  // held by another replica
    }
    std::lock_guard lock(leases_m_);
    leases_[name] = token;
    return std::make_unique<RedisLease>(*this, name, token);
  }

  double lock_expires_in(const std::string& name) const override {
    const long long ms = integer({"PTTL", kPrefix + "lease:" + name});
    return ms > 0 ? static_cast<double>(ms) / 1000 : 0;
  }

  // For RedisLease: the lease's token still in place, then deleted or its expiry extended.
  static constexpr const char* kRenew =
      "if redis.call('GET', KEYS[1]) == ARGV[1] then "
      "return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0";
  bool lease_op(const std::string& name, const std::string& token, bool release) {
    static const char* kRelease =
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end "
        "return 0";
    if (release) {
      std::lock_guard lock(leases_m_);
      if (auto it = leases_.find(name); it != leases_.end() && it->second == token)
        leases_.erase(it);
    }
    return integer({"EVAL", release ? kRelease : kRenew, "1", kPrefix + "lease:" + name, token,
                    std::to_string(lease_ms_)}) == 1;
  }

 protected:
  void put_object(const std::string& key, const std::vector<uint8_t>& bytes) override {
    const size_t slash = key.find('/');
    const std::string ns = key.substr(0, slash);
    const size_t chunks = (bytes.size() + kChunk - 1) / kChunk;
    std::lock_guard lock(m_);
    // Listed in its namespace first, so that a write cut short is found and deleted with the
    // namespace's other objects that no manifest references (remove()).
    Reply listed;
    listed.r = command_locked({"SADD", kPrefix + "ns:" + ns, key});
    for (size_t i = 0; i < chunks; ++i) {
      const size_t n = std::min(kChunk, bytes.size() - i * kChunk);
      Reply r;
      r.r = command_locked(
          {"SET", kPrefix + "obj:" + key + ":" + std::to_string(i),
           std::string(reinterpret_cast<const char*>(bytes.data()) + i * kChunk, n)});
    }
    // The count last: an object without it does not exist (a write cut short leaves only chunks,
    // which the next write of the same key overwrites, or the next save of the session deletes).
    Reply a, c;
    a.r = command_locked({"SET", kPrefix + "objn:" + key, std::to_string(chunks)});
    c.r = command_locked({"HSET", kPrefix + "nsbytes:" + ns, key, std::to_string(bytes.size())});
  }

 private:
  // A new connection (StoreUnavailable when Redis cannot be reached).
  redisContext* connect() const {
    timeval tv{5, 0};
    redisContext* c = redisConnectWithTimeout(host_.c_str(), port_, tv);
    if (c == nullptr || c->err) {
      const std::string err = c ? c->errstr : "out of memory";
      if (c) redisFree(c);
      throw StoreUnavailable(cat("the session store ", describe(), " cannot be reached: ", err));
    }
    redisSetTimeout(c, timeval{30, 0});
    if (db_ != 0) {
      Reply r;
      r.r = static_cast<redisReply*>(redisCommand(c, "SELECT %d", db_));
      if (!r.r || r.r->type == REDIS_REPLY_ERROR) {
        redisFree(c);
        fail(describe(), ": cannot select database ", db_);
      }
    }
    return c;
  }

  // The renewing thread: every quarter of the lease's length, extends each lease this replica
  // holds (on its own connection, so a long transfer on the main one does not delay it).
  void renew_leases() {
    redisContext* c = nullptr;
    const auto every = std::chrono::milliseconds(std::max(50LL, lease_ms_ / 4));
    std::unique_lock lock(leases_m_);
    while (!renew_cv_.wait_for(lock, every, [&] { return stopping_; })) {
      const std::map<std::string, std::string> held = leases_;
      if (held.empty()) continue;
      lock.unlock();
      try {
        if (!c) c = connect();
        for (const auto& [name, token] : held) {
          const std::string key = kPrefix + "lease:" + name, ms = std::to_string(lease_ms_);
          const char* argv[] = {"EVAL", kRenew, "1", key.c_str(), token.c_str(), ms.c_str()};
          const size_t lens[] = {4, std::strlen(kRenew), 1, key.size(), token.size(), ms.size()};
          Reply r;
          r.r = static_cast<redisReply*>(redisCommandArgv(c, 6, argv, lens));
          if (r.r == nullptr) {  // connection lost: a new one next time
            redisFree(c);
            c = nullptr;
            break;
          }
        }
      } catch (const Error&) {
        // Redis unreachable: tried again next time (the leases expire if it stays away).
      }
      lock.lock();
    }
    if (c) redisFree(c);
  }

  // One command; reconnects once when the connection was lost. The caller holds m_.
  redisReply* command_locked(const std::vector<std::string>& args) const {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const std::string& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (!c_) c_ = connect();
      auto* r = static_cast<redisReply*>(
          redisCommandArgv(c_, static_cast<int>(argv.size()), argv.data(), lens.data()));
      if (r == nullptr) {
        const std::string err = c_->errstr;
        redisFree(c_);
        c_ = nullptr;
        if (attempt == 1)
          throw StoreUnavailable(cat("the session store ", describe(), " failed: ", err));
        continue;
      }
      if (r->type == REDIS_REPLY_ERROR) {
        const std::string err(r->str, r->len);
        freeReplyObject(r);
        fail("the session store ", describe(), " answered an error: ", err);
      }
      return r;
    }
    throw StoreUnavailable(cat("the session store ", describe(), " cannot be reached"));
  }

  long long integer(const std::vector<std::string>& args) const {
    std::lock_guard lock(m_);
    Reply r;
    r.r = command_locked(args);
    if (r.r->type == REDIS_REPLY_INTEGER) return r.r->integer;
    if (r.r->type == REDIS_REPLY_STATUS) return 1;
    return 0;
  }
  std::vector<std::string> strings(const std::vector<std::string>& args) const {
    std::lock_guard lock(m_);
    Reply r;
    r.r = command_locked(args);
    std::vector<std::string> out;
    if (r.r->type == REDIS_REPLY_ARRAY)
      for (size_t i = 0; i < r.r->elements; ++i)
        if (r.r->element[i]->type == REDIS_REPLY_STRING)
          out.emplace_back(r.r->element[i]->str, r.r->element[i]->len);
    return out;
  }

  std::string host_;
  int port_, db_;
  long long lease_ms_;
  std::string replica_;
  mutable std::mutex m_;  // c_
  mutable redisContext* c_ = nullptr;
  std::mutex leases_m_;                        // leases_, stopping_
  std::map<std::string, std::string> leases_;  // sessions this replica holds -> token
  bool stopping_ = false;
  std::condition_variable renew_cv_;
  std::thread renewer_;
};

RedisLease::~RedisLease() {
  try {
    s_.lease_op(name_, token_, true);
  } catch (const Error&) {
    // The lease expires by itself.
  }
}

bool RedisLease::renew() { return s_.lease_op(name_, token_, false); }

}  // namespace

std::unique_ptr<ObjectStore> open_session_store(const std::string& url, double lease_seconds) {
  if (url.rfind("redis://", 0) == 0) {
    std::string rest = url.substr(8);
    int db = 0;
    if (const size_t slash = rest.find('/'); slash != std::string::npos) {
      const std::string d = rest.substr(slash + 1);
      rest = rest.substr(0, slash);
      if (!d.empty()) {
        if (d.find_first_not_of("0123456789") != std::string::npos || d.size() > 4)
          fail_setting({"server.session_store"}, "server.session_store '", url,
                       "': the database must be a number");
        db = std::stoi(d);
      }
    }
    const size_t colon = rest.rfind(':');
    const std::string host = colon == std::string::npos ? rest : rest.substr(0, colon);
    const std::string port = colon == std::string::npos ? "6379" : rest.substr(colon + 1);
    if (host.empty() || port.empty() || port.size() > 5 ||
        port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) > 65535)
      fail_setting({"server.session_store"}, "server.session_store '", url,
                   "' is not redis://HOST:PORT[/DB]");
    return std::make_unique<RedisStore>(host, std::stoi(port), db, lease_seconds);
  }
  if (url.rfind("dir:", 0) == 0) return open_dir_store(url.substr(4));
  if (url.find("://") != std::string::npos)
    fail_setting({"server.session_store"}, "server.session_store '", url,
                 "' is of no known kind: use dir:PATH or redis://HOST:PORT[/DB]");
  return open_dir_store(url);
}

}  // namespace lc::server
