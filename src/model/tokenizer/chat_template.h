// Chat templates of the common families, recognised from `tokenizer.chat_template`.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace lc {

enum class ChatFormat { ChatML, Llama2, Llama3, Mistral, Phi3, InternLM2 };

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

std::string_view chat_format_name(ChatFormat f);
// Recognises the family from the Jinja text; lc::Error ("unknown chat template ...") if none fits.
ChatFormat detect_chat_format(std::string_view jinja);
// By name ("chatml", "llama2", "llama3", "mistral", "phi3", "internlm2"); lc::Error if unknown.
ChatFormat chat_format_from_name(std::string_view name);
// Renders the conversation; with add_generation_prompt the assistant turn is opened.
// bos is the BOS text the template writes itself ("<s>", "<|begin_of_text|>"), or "" when the
// tokenizer adds BOS on its own. It goes where the official template puts bos_token at the start
// (llama2, llama3, mistral, phi3, internlm2; chatml has none). Llama 2 also writes BOS before every
// later user turn: there it is `bos`, or "<s>" when `bos` is empty (encode with parse_special).
// Llama 2 and Mistral need alternating user/assistant roles after an optional first system
// message, as their templates do; anything else is an lc::Error.
std::string apply_chat_template(ChatFormat f, const std::vector<ChatMessage>& msgs,
                                bool add_generation_prompt, std::string_view bos = "");

}  // namespace lc
