// longctx tokenize: token ids and pieces of a text.
#include <iostream>
#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "app/common.h"
#include "core/error.h"

namespace lc::app {

void register_tokenize(CLI::App& root) {
  struct Opts {
    std::string model, text, file;
    bool json = false, no_bos = false, special = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = root.add_subcommand("tokenize", "print the token ids and pieces of a text");
  cmd->add_option("-m,--model", o->model, "GGUF model or tokenizer-only GGUF")->required();
  cmd->add_option("text", o->text, "text to tokenize");
  cmd->add_option("-f,--file", o->file, "read the text from a file");
  cmd->add_flag("--json", o->json, "print {\"ids\": [...], \"pieces\": [...]}");
  cmd->add_flag("--no-bos", o->no_bos, "do not add BOS/EOS even if the model adds them");
  cmd->add_flag("--special", o->special, "parse special token texts such as <|im_start|>");
  cmd->callback([o] {
    if (o->text.empty() == o->file.empty()) fail("give either TEXT or -f FILE");
    const std::string text = o->file.empty() ? o->text : read_file(o->file);
    auto model = Model::load(o->model);
    const Tokenizer& tok = model->tokenizer();
    const auto ids = tok.encode(text, !o->no_bos, o->special);
    if (o->json) {
      nlohmann::json j;
      j["ids"] = ids;
      auto pieces = nlohmann::json::array();
      for (int32_t id : ids) pieces.push_back(valid_utf8(tok.token_to_piece(id, true)));
      j["pieces"] = pieces;
      std::cout << j.dump() << "\n";
      return;
    }
    for (int32_t id : ids)
      std::cout << id << "\t" << valid_utf8(tok.token_to_piece(id, true)) << "\n";
    std::cerr << ids.size() << " tokens\n";
  });
}

}  // namespace lc::app
