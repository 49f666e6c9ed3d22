// Finds model tensors in a GGUF file and checks their shapes, with errors naming the tensor.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/gguf.h"
#include "model/model.h"

namespace lc {

class TensorLoader {
 public:
  explicit TensorLoader(const GgufFile& f) : f_(f) {}
  bool has(const std::string& name) const { return f_.tensor(name) != nullptr; }
  const std::string& path() const { return f_.path(); }
  // A matrix of n_out rows of n_in elements (GGUF ne = [n_in, n_out]).
  WeightMatrix matrix(const std::string& name, int64_t n_in, int64_t n_out) const;
  // A vector of n elements, converted to f32.
  VecWeight vec(const std::string& name, int64_t n) const;
  VecWeight vec_if(const std::string& name, int64_t n) const;  // empty if absent

 private:
  const GgufTensor& get(const std::string& name) const;
  const GgufFile& f_;
};

}  // namespace lc
