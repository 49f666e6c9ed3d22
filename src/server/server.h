// An OpenAI-compatible HTTP server over one loaded model:
//   POST /v1/chat/completions, POST /v1/completions (JSON, or Server-Sent Events with "stream"),
//   GET /v1/models, GET /health, POST /tokenize, POST /detokenize, GET /props, GET /metrics.
// One Model is shared by every session. A request naming a session ("session_id", or the header
// X-Session-Id) keeps its Session between requests and prefills only the tokens that extend what
// the session holds (a prompt that diverges takes the session back to the common prefix where its
// memory can); with a session folder, sessions are saved after every request and survive restarts
// (GET /v1/sessions, GET and DELETE /v1/sessions/{id}). Other requests reuse the longest common
// prefix of a recent unnamed request's session (a prompt cache under a byte budget). At most
// `parallel` requests run at once, up to `queue` more wait, and beyond that the answer is 503 with
// Retry-After.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "engine/session_spec.h"
#include "model/model.h"

namespace lc::server {

struct ServerOptions {
  std::string host = "127.0.0.1";  // loopback unless told otherwise
  int port = 8080;                 // 0: any free port (see Server::bind())
  int parallel = 4;                // requests generating at once (taking turns step by step)
  int queue = 64;                  // requests that may wait for a turn; more get 503
  std::string api_key;             // "" = no key required
  std::string model_path;          // the file, shown by /props and accepted as a model name
  std::string model_id;            // the model's name in /v1/models ("" = model_path's file name)
  std::string chat_template;       // a template family overriding the GGUF's ("" = the GGUF's)
  double ping_seconds = 3;         // SSE ": ping" comments at least this often while prefilling
  size_t max_sessions = 256;       // named sessions kept in RAM; the least recently used goes first
  // Where named sessions are saved after every request and found again after a restart ("" = kept
  // in RAM only): a folder (core/object_store.h DirStore), created when missing.
  std::string session_dir;
  // Or a store by URL (server/session_store.h: dir:PATH, redis://HOST:PORT[/DB]); wins over
  // session_dir. Replicas sharing it take over each other's sessions.
  std::string session_store;
  // Redis: a replica's hold on a session expires this long after the replica stopped renewing it
  // (it renews every quarter of it while alive), so a dead replica's sessions are free again
  // within it.
  double session_lease_seconds = 10;
  // Bytes of KV memory the prompt cache of unnamed requests may keep (0 = no prompt cache).
  size_t prompt_cache_bytes = size_t{1} << 30;
  // Bytes of the session store; beyond it the least recently used idle sessions are deleted
  // (0 = no limit).
  size_t session_budget = size_t{20} << 30;
  // KV bytes of idle named sessions kept in RAM; beyond it the least recently used are dropped
  // from RAM, to be loaded from the session folder at their next request (0 = no limit; without
  // a session folder sessions are only dropped by max_sessions).
  size_t session_ram = size_t{4} << 30;
};

class Server {
 public:
  // lc::Error naming the setting when an option is out of range ("server.parallel", ...) or the
  // chat template named is unknown.
  Server(std::shared_ptr<const Model> model, SessionOptions session, ServerOptions opt);
  // A server whose model is still loading: once bound and running it answers GET /health with
  // 503 {"status": "loading"} and every other endpoint with 503 model_loading, until attach().
  explicit Server(ServerOptions opt);
  // The model and the sessions' settings (once; from any thread, also while run() serves).
  // lc::Error when the session store cannot be opened.
  void attach(std::shared_ptr<const Model> model, SessionOptions session);
  bool ready() const;
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the listening socket; returns the port (the chosen one when options' port is 0).
  // lc::Error when the address cannot be bound.
  int bind();
  // Serves until stop(); bind() first. Returns at once when stop() came first.
  void run();
  // Stops run() (from any thread, before or while it runs).
  void stop();

  const std::string& model_id() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lc::server
