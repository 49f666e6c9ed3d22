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

namespace lc {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
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

}  // namespace lc

#define LC_CHECK(cond)                                                                         \
  do {                                                                                         \
    if (!(cond))                                                                               \
      throw ::lc::InternalError(::lc::cat(__FILE__, ":", __LINE__, ": check failed: " #cond)); \
  } while (0)
