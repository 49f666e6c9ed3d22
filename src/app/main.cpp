// longctx: run LLaMA-family GGUF models far past their trained context on a CPU.
#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "app/commands.h"
#include "app/setting_flags.h"
#include "core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"longctx: long-context inference for LLaMA-family GGUF models on CPU"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "help for every subcommand");
  lc::app::register_info(app);
  lc::app::register_tokenize(app);
  lc::app::register_generate(app);
  lc::app::register_ppl(app);
  lc::app::register_sample_text(app);
  lc::app::register_eval(app);
  lc::app::register_make_model(app);
  lc::app::register_convert(app);
  lc::app::register_bench(app);
  lc::app::register_bench_context(app);
  lc::app::register_plot_context(app);
  lc::app::register_serve(app);
  lc::app::register_rope_search(app);
  lc::app::register_rope_apply(app);
  try {
    std::vector<std::string> args = lc::app::rewrite_llama_cpp_args(argc, argv);
    app.name(args.front());
    args.erase(args.begin());
    std::reverse(args.begin(), args.end());  // CLI11 takes them reversed
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const lc::Error& e) {
    std::cout.flush();
    std::cerr << "error: " << lc::app::message_with_flags(e) << "\n";
    return 1;
  } catch (const std::bad_alloc&) {
    std::cerr << "error: out of memory\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "internal error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
