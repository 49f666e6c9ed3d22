#pragma once

#include <string>

namespace lc::test {

inline std::string shared_path(const std::string& rel) {
  return std::string(LONGCTX_SHARED_DIR) + "/" + rel;
}
inline std::string longctx_binary() { return LONGCTX_BINARY; }

// A fresh temporary directory for one test (removed by the OS eventually; tests keep files small).
std::string temp_dir();

// A temporary directory that lives as long as the object (removed with its contents).
struct ScopedTempDir {
  std::string path;
  explicit ScopedTempDir(const std::string& prefix = "longctx-test");
  ~ScopedTempDir();
  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;
};

// Runs a shell command, capturing stdout (and stderr when merge_stderr); returns the exit code.
int run_command(const std::string& cmd, std::string* out, bool merge_stderr = true);

}  // namespace lc::test
