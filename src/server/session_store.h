// Where a server keeps its sessions, by URL (the server's setting server.session_store):
//   dir:PATH (or a plain path)  a folder (core/object_store.h DirStore); on a filesystem every
//                               replica mounts (NFS, CephFS), replicas share it
//   redis://HOST:PORT[/DB]      Redis: objects as binary values in chunks of at most 8 MiB,
//                               written once under their content-addressed keys; a manifest per
//                               session; each session leased by one replica at a time (SET NX PX
//                               with a token, renewed by the holder every quarter of its length
//                               while the holder lives), its manifest written only
//                               while the writer's lease holds (checked atomically in Redis)
#pragma once

#include <memory>
#include <string>

#include "core/object_store.h"

namespace lc::server {

// lc::Error naming the setting and the problem for a URL of no known kind or a store that cannot
// be reached.
std::unique_ptr<ObjectStore> open_session_store(const std::string& url, double lease_seconds = 10);

}  // namespace lc::server
