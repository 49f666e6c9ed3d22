#include "engine/generate.h"

namespace lc {

GenerateResult generate(Session& s, const std::vector<int32_t>& prompt, const GenerateOptions& opt,
                        const std::function<void(const std::string&)>& on_text,
                        const std::function<void(int64_t, int64_t)>& on_prefill) {
  Generation g(s, prompt, opt);
  while (true) {
    const bool prefilling = g.progress().prefilling();
    if (!g.step()) break;
    if (prefilling && on_prefill) {
      const GenerationProgress p = g.progress();
      on_prefill(p.prompt_done, p.prompt_total);
    }
    if (on_text && !g.new_text().empty()) on_text(g.new_text());
  }
  return g.result();
}

}  // namespace lc
