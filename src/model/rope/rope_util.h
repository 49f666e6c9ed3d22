// Small helpers shared by the RoPE configuration files (internal to src/model/rope).
#pragma once

#include <sstream>
#include <string>

#include "model/rope/rope.h"

namespace lc::rope_detail {

// Shortest readable form of a number: 4 -> "4", 0.5 -> "0.5", 1e6 -> "1000000".
inline std::string num(double v) {
  std::ostringstream os;
  os.precision(10);
  os << v;
  return os.str();
}

// A higher-precedence source changed the method: method-specific parameters go back to their
// defaults (factor and context lengths are shared between methods and stay).
void reset_method_params(RopeSettings& s);
// Sets the method from `src`, resetting method parameters when it changes; llama3 drops GGUF
// rope_freqs divisors (both encode the same scaling).
void set_method(RopeSettings& s, RopeMethod m, const std::string& src);

}  // namespace lc::rope_detail
