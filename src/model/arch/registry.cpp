#include "model/arch/arch.h"

namespace lc {

namespace {
const ArchSpec* const kArchs[] = {&arch_llama(), &arch_qwen2(), &arch_phi3(), &arch_internlm2()};
}

const ArchSpec* find_arch(const std::string& name) {
  for (const ArchSpec* a : kArchs)
    if (name == a->name) return a;
  if (name == "mistral") return &arch_llama();  // some converters write "mistral"
  return nullptr;
}

std::vector<std::string> supported_archs() {
  std::vector<std::string> v;
  for (const ArchSpec* a : kArchs) v.emplace_back(a->name);
  return v;
}

}  // namespace lc
