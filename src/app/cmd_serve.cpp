// longctx serve: the OpenAI-compatible HTTP server (src/server) over one model.
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <thread>

#include "app/commands.h"
#include "app/common.h"
#include "core/error.h"
#include "engine/memory_config.h"
#include "server/server.h"

namespace lc::app {

namespace {

struct ServeOpts {
  ModelOptions mo;
  server::ServerOptions so;
  std::string api_key_file, session_dir, prompt_cache = "1G", session_budget = "20G",
                                         session_ram = "4G";
  int64_t ctx = 0;
  bool no_session_dir = false;
};

// $XDG_STATE_HOME/longctx/sessions, else ~/.local/state/longctx/sessions (parents created).
std::string default_session_dir() {
  const char* xdg = std::getenv("XDG_STATE_HOME");
  const char* home = std::getenv("HOME");
  std::string base;
  if (xdg != nullptr && *xdg == '/') {
    base = xdg;
  } else if (home != nullptr && *home == '/') {
    base = std::string(home) + "/.local/state";
  } else {
    fail("no folder for saved sessions: HOME is not set; give one with --session-dir DIR");
  }
  std::string dir = base + "/longctx/sessions";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    fail("cannot create the session folder ", dir, ": ", ec.message(),
         "; give one with --session-dir DIR");
  return dir;
}

std::string read_api_key(const std::string& path) {
  std::string key = read_file(path);
  while (!key.empty() && (key.back() == '\n' || key.back() == '\r' || key.back() == ' '))
    key.pop_back();
  if (key.empty()) fail("--api-key-file ", path, " is empty");
  return key;
}

void run_serve(ServeOpts& o) {
  if (!o.api_key_file.empty()) o.so.api_key = read_api_key(o.api_key_file);
  if (o.so.parallel < 1) fail("--parallel must be >= 1, got ", o.so.parallel);
  if (o.so.queue < 0) fail("--queue must be >= 0, got ", o.so.queue);
  if (o.so.port < 0 || o.so.port > 65535) fail("--port must be in [0, 65535], got ", o.so.port);
  o.so.prompt_cache_bytes = parse_bytes(o.prompt_cache, "server.prompt_cache");
  o.so.session_budget = parse_bytes(o.session_budget, "server.session_budget");
  o.so.session_ram = parse_bytes(o.session_ram, "server.session_ram");
  if (!o.so.session_store.empty() && (o.no_session_dir || !o.session_dir.empty()))
    fail("--session-store replaces --session-dir and --no-session-dir: give one of them");
  if (!o.no_session_dir && o.so.session_store.empty())
    o.so.session_dir = o.session_dir.empty() ? default_session_dir() : o.session_dir;
  // Listen first: while the model loads, GET /health answers 503 {"status": "loading"}.
  o.so.model_path = o.mo.model;
  server::Server srv(o.so);
  const int port = srv.bind();
  std::thread serving([&srv] { srv.run(); });
  std::cerr << "loading " << o.mo.model
            << " (GET /health answers 503 until it is loaded) at http://" << o.so.host << ":"
            << port << "\n";
  Loaded l;
  try {
    if (o.ctx < 0) fail("--ctx must be >= 0, got ", o.ctx);
    l = load_model(o.mo);
    l.session.memory.max_ctx = o.ctx;
    srv.attach(l.model, l.session);
  } catch (...) {
    srv.stop();
    serving.join();
    throw;
  }
  std::cerr << "serving " << srv.model_id() << " (trained context " << l.trained_ctx << ", "
            << o.so.parallel << " parallel, queue " << o.so.queue << ") on http://" << o.so.host
            << ":" << port << (o.so.api_key.empty() ? "" : " (API key required)") << "\n";
  std::cerr << (!o.so.session_store.empty() ? "sessions are saved in " + o.so.session_store
                : o.so.session_dir.empty()
                    ? std::string("sessions are kept in RAM only (--no-session-dir)")
                    : "sessions are saved in " + o.so.session_dir)
            << "\n";
  if (o.mo.verbose)
    for (const std::string& line : describe_settings(l.session))
      std::cerr << "setting: " << line << "\n";
  serving.join();
}

}  // namespace

void register_serve(CLI::App& root) {
  auto o = std::make_shared<ServeOpts>();
  CLI::App* cmd =
      root.add_subcommand("serve", "serve the model over an OpenAI-compatible HTTP API");
  o->mo.add_to(*cmd);
  cmd->add_option("--host", o->so.host, "address to listen on (loopback by default)")
      ->capture_default_str();
  cmd->add_option("--port", o->so.port, "port to listen on (0 = any free port)")
      ->capture_default_str();
  cmd->add_option("--parallel", o->so.parallel, "requests generating at once")
      ->capture_default_str();
  cmd->add_option("--queue", o->so.queue, "requests that may wait for a turn (more get 503)")
      ->capture_default_str();
  auto* key = cmd->add_option("--api-key", o->so.api_key,
                              "require 'Authorization: Bearer KEY' on every request but /health");
  cmd->add_option("--api-key-file", o->api_key_file, "read the API key from a file")->excludes(key);
  cmd->add_option("--chat-template", o->so.chat_template,
                  "chat template family overriding the model's: chatml, llama2, llama3, mistral, "
                  "phi3, internlm2");
  cmd->add_option("-c,--ctx,--ctx-size", o->ctx,
                  "most tokens a session may hold: a longer prompt is a 400 "
                  "context_length_exceeded, generation stops at it (0 = no limit)")
      ->capture_default_str();
  cmd->add_option("--alias", o->so.model_id, "the model's name in the API (default: file name)");
  cmd->add_option("--max-sessions", o->so.max_sessions,
                  "named sessions kept (the least recently used goes first)")
      ->capture_default_str();
  cmd->add_option("--session-store", o->so.session_store,
                  "shared session store for several replicas: dir:PATH or redis://HOST:PORT[/DB] "
                  "(instead of --session-dir)");
  cmd->add_option("--session-lease", o->so.session_lease_seconds,
                  "seconds after which a dead replica's hold on a session expires (redis; a live "
                  "replica renews it every quarter of this)")
      ->capture_default_str();
  auto* dir = cmd->add_option("--session-dir", o->session_dir,
                              "folder where named sessions are saved after every request and found "
                              "again after a restart (default: ~/.local/state/longctx/sessions)");
  cmd->add_flag("--no-session-dir", o->no_session_dir, "keep sessions in RAM only")->excludes(dir);
  cmd->add_option("--session-budget", o->session_budget,
                  "bytes of the session store; beyond it the least recently used idle sessions "
                  "are deleted (0 = no limit)")
      ->capture_default_str();
  cmd->add_option("--session-ram", o->session_ram,
                  "KV bytes of idle sessions kept in RAM; beyond it the least recently used wait "
                  "in the session folder (0 = no limit)")
      ->capture_default_str();
  cmd->add_option("--prompt-cache", o->prompt_cache,
                  "KV bytes the prompt cache of requests without a session may keep (0 = off)")
      ->capture_default_str();
  cmd->callback([o] { run_serve(*o); });
}

}  // namespace lc::app
