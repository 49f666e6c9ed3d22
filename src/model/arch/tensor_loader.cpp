#include "model/arch/tensor_loader.h"

#include "core/error.h"
#include "kernels/quant.h"

namespace lc {

namespace {
std::string shape_str(const std::vector<int64_t>& ne) {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}
}  // namespace

const GgufTensor& TensorLoader::get(const std::string& name) const {
  const GgufTensor* t = f_.tensor(name);
  if (!t) fail(f_.path(), ": missing tensor '", name, "'");
  return *t;
}

WeightMatrix TensorLoader::matrix(const std::string& name, int64_t n_in, int64_t n_out) const {
  const GgufTensor& t = get(name);
  const bool ok = (t.ne.size() == 2 && t.ne[0] == n_in && t.ne[1] == n_out) ||
                  (t.ne.size() == 1 && n_out == 1 && t.ne[0] == n_in);
  if (!ok)
    fail(f_.path(), ": tensor '", name, "' has shape ", shape_str(t.ne), ", expected [", n_in, ", ",
         n_out, "]");
  const TensorTypeInfo& ti = tensor_type_info(t.type);
  switch (t.type) {
    case TensorType::F32:
    case TensorType::F16:
    case TensorType::BF16:
    case TensorType::Q4_0:
    case TensorType::Q4_1:
    case TensorType::Q5_0:
    case TensorType::Q5_1:
    case TensorType::Q8_0:
    case TensorType::Q2_K:
    case TensorType::Q3_K:
    case TensorType::Q4_K:
    case TensorType::Q5_K:
    case TensorType::Q6_K:
    case TensorType::IQ4_NL:
    case TensorType::IQ4_XS:
      break;
    default:
      fail(f_.path(), ": tensor '", name, "' has type ", ti.name,
           ", which is not supported for weight matrices");
  }
  WeightMatrix w;
  w.type = t.type;
  w.n_in = n_in;
  w.n_out = n_out;
  w.data = t.data;
  w.row_bytes = static_cast<size_t>(row_bytes(ti, n_in));
  return w;
}

VecWeight TensorLoader::vec(const std::string& name, int64_t n) const {
  const GgufTensor& t = get(name);
  if (t.n_elements() != n || t.ne[0] != n)
    fail(f_.path(), ": tensor '", name, "' has shape ", shape_str(t.ne), ", expected [", n, "]");
  const TensorTypeInfo& ti = tensor_type_info(t.type);
  if (n % ti.block_size != 0)
    fail(f_.path(), ": tensor '", name, "' of type ", ti.name, " has ", n,
         " elements, not a multiple of its block size");
  VecWeight v(static_cast<size_t>(n));
  dequantize_row_ref(t.type, t.data, v.data(), n);
  return v;
}

VecWeight TensorLoader::vec_if(const std::string& name, int64_t n) const {
  return has(name) ? vec(name, n) : VecWeight{};
}

}  // namespace lc
