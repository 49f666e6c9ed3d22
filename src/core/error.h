// Two error channels (see README "Errors"):
//  - lc::Error: bad input (files, configs, requests, flags). Thrown inside the library, caught
//    by the app layer and shown to the user; the message names the problem so a user can act
//    on it.
//  - LC_CHECK: a broken internal invariant. Always on; throws lc::InternalError with file/line.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace lc {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
  // An error about settings (e.g. "memory.n_local"): their names, so that a front end can add its
  // own name for each (a command-line flag, a request field).
  Error(const std::string& msg, std::vector<std::string> settings)
      : std::runtime_error(msg), settings_(std::move(settings)) {}
  const std::vector<std::string>& settings() const { return settings_; }

 private:
  std::vector<std::string> settings_;
};

class InternalError : public std::logic_error {
 public:
  explicit InternalError(const std::string& msg) : std::logic_error(msg) {}
};

// Builds a message from any streamable values: lc::fail("bad value ", x, " in ", file).
template <typename... Args>
std::string cat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}

template <typename... Args>
[[noreturn]] void fail(Args&&... args) {
  throw Error(cat(std::forward<Args>(args)...));
}

// An error about the named settings: fail_setting({"memory.n_local"}, "memory.n_local = ", n, ...).
template <typename... Args>
[[noreturn]] void fail_setting(std::vector<std::string> settings, Args&&... args) {
  throw Error(cat(std::forward<Args>(args)...), std::move(settings));
}

}  // namespace lc

#define LC_CHECK(cond)                                                                         \
  do {                                                                                         \
    if (!(cond))                                                                               \
      throw ::lc::InternalError(::lc::cat(__FILE__, ":", __LINE__, ": check failed: " #cond)); \
  } while (0)
