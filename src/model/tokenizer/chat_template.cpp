// Chat templates of the common model families. The family is recognised from markers in the
// Jinja text of `tokenizer.chat_template`; each family is then rendered the way its official
// template renders it (the template each function follows is named above it).
#include "model/tokenizer/chat_template.h"

#include <optional>

#include "core/error.h"

namespace lc {

namespace {

bool has(std::string_view s, std::string_view what) {
  return s.find(what) != std::string_view::npos;
}

// Python's str.strip() / Jinja's trim for the whitespace that occurs in practice.
std::string strip(std::string_view s) {
  constexpr std::string_view ws = " \t\n\r\v\f";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return std::string();
  const size_t e = s.find_last_not_of(ws);
  return std::string(s.substr(b, e - b + 1));
}

struct SystemSplit {
  std::optional<std::string> system;
  std::vector<const ChatMessage*> rest;
};

SystemSplit split_system(const std::vector<ChatMessage>& msgs) {
  SystemSplit s;
  size_t first = 0;
  if (!msgs.empty() && msgs[0].role == "system") {
    s.system = msgs[0].content;
    first = 1;
  }
  for (size_t i = first; i < msgs.size(); ++i) s.rest.push_back(&msgs[i]);
  return s;
}

void check_alternation(const SystemSplit& s, std::string_view family) {
  for (size_t i = 0; i < s.rest.size(); ++i) {
    if ((s.rest[i]->role == "user") != (i % 2 == 0))
      fail("the ", family,
           " chat template needs roles to alternate user/assistant/user/assistant/... after an "
           "optional first system message; message ",
           i + (s.system ? 1 : 0), " has role '", s.rest[i]->role, "'");
  }
}

// ChatML (e.g. OpenHermes, SmolLM2, Qwen2 when a system message is given):
// {% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] +
// '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}
std::string render_chatml(const std::vector<ChatMessage>& msgs, bool add_gen) {
  std::string out;
  for (const ChatMessage& m : msgs)
    out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
  if (add_gen) out += "<|im_start|>assistant\n";
  return out;
}

// meta-llama/Llama-2-*-chat-hf: the system message is wrapped in <<SYS>> inside the first user
// turn; every user turn is "<s>[INST] {content.strip()} [/INST]", every assistant turn
// " {content.strip()} </s>". The template has no generation prompt (the [/INST] opens the reply).
std::string render_llama2(const std::vector<ChatMessage>& msgs, std::string_view bos) {
  const SystemSplit s = split_system(msgs);
  check_alternation(s, "llama2");
  const std::string inner_bos = bos.empty() ? "<s>" : std::string(bos);
  std::string out;
  for (size_t i = 0; i < s.rest.size(); ++i) {
    const ChatMessage& m = *s.rest[i];
    std::string content = m.content;
    if (i == 0 && s.system) content = "<<SYS>>\n" + *s.system + "\n<</SYS>>\n\n" + content;
    if (m.role == "user") {
      out += (i == 0 ? std::string(bos) : inner_bos) + "[INST] " + strip(content) + " [/INST]";
    } else if (m.role == "assistant") {
      out += " " + strip(content) + " </s>";
    }
  }
  return out;
}

// Meta-Llama-3-*-Instruct: BOS before the first message; each message is
// "<|start_header_id|>{role}<|end_header_id|>\n\n{content | trim}<|eot_id|>".
std::string render_llama3(const std::vector<ChatMessage>& msgs, bool add_gen,
                          std::string_view bos) {
  std::string out;
  for (size_t i = 0; i < msgs.size(); ++i) {
    if (i == 0) out += bos;
    out += "<|start_header_id|>" + msgs[i].role + "<|end_header_id|>\n\n" + strip(msgs[i].content) +
           "<|eot_id|>";
  }
  if (add_gen) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

// mistralai/Mistral-7B-Instruct-v0.1 / v0.2 as released: "<s>[INST] {user} [/INST]{assistant}</s>
// [INST] ..." with strictly alternating user/assistant roles. That template rejects a system
// message; here it is put before the first user message followed by a blank line, as Mistral's
// later official template (and mistral-common) do.
std::string render_mistral(const std::vector<ChatMessage>& msgs, std::string_view bos) {
  const SystemSplit s = split_system(msgs);
  check_alternation(s, "mistral");
  std::string out(bos);
  for (size_t i = 0; i < s.rest.size(); ++i) {
    const ChatMessage& m = *s.rest[i];
    if (m.role == "user") {
      const std::string content = i == 0 && s.system ? *s.system + "\n\n" + m.content : m.content;
      out += "[INST] " + content + " [/INST]";
    } else if (m.role == "assistant") {
      out += m.content + "</s>";
    } else {
      fail("the mistral chat template only supports user and assistant roles (after an optional ",
           "first system message); got '", m.role, "'");
    }
  }
  return out;
}

// microsoft/Phi-3-mini-4k-instruct: "<|{role}|>\n{content}<|end|>\n" for system, user and
// assistant (other roles are skipped); then "<|assistant|>\n" with add_generation_prompt, else the
// EOS text "<|endoftext|>".
std::string render_phi3(const std::vector<ChatMessage>& msgs, bool add_gen, std::string_view bos) {
  std::string out(bos);
  for (const ChatMessage& m : msgs) {
    if (m.role == "system" || m.role == "user" || m.role == "assistant")
      out += "<|" + m.role + "|>\n" + m.content + "<|end|>\n";
  }
  out += add_gen ? "<|assistant|>\n" : "<|endoftext|>";
  return out;
}

}  // namespace

std::string_view chat_format_name(ChatFormat f) {
  switch (f) {
    case ChatFormat::ChatML:
      return "chatml";
    case ChatFormat::Llama2:
      return "llama2";
    case ChatFormat::Llama3:
      return "llama3";
    case ChatFormat::Mistral:
      return "mistral";
    case ChatFormat::Phi3:
      return "phi3";
    case ChatFormat::InternLM2:
      return "internlm2";
  }
  return "unknown";
}

ChatFormat detect_chat_format(std::string_view jinja) {
  // Most specific markers first: Llama 3 headers; then the <|im_start|> family, where InternLM2
  // is ChatML written after the BOS token (or naming InternLM's own role markers); then Phi-3's
  // role tags; then [INST], with <<SYS>> telling Llama 2 from Mistral.
  if (has(jinja, "<|start_header_id|>") && has(jinja, "<|end_header_id|>"))
    return ChatFormat::Llama3;
  if (has(jinja, "<|im_start|>")) {
    if (has(jinja, "bos_token") || has(jinja, "<|action_start|>") || has(jinja, "<|plugin|>") ||
        has(jinja, "<|interpreter|>") || has(jinja, "InternLM") || has(jinja, "internlm"))
      return ChatFormat::InternLM2;
    return ChatFormat::ChatML;
  }
  if ((has(jinja, "<|user|>") || has(jinja, "<|assistant|>")) && has(jinja, "<|end|>"))
    return ChatFormat::Phi3;
  if (has(jinja, "[INST]")) return has(jinja, "<<SYS>>") ? ChatFormat::Llama2 : ChatFormat::Mistral;

  std::string head;
  for (char c : jinja.substr(0, 60)) {
    if (c == '\n')
      head += "\\n";
    else
      head += c;
  }
  fail("unknown chat template: \"", head, jinja.size() > 60 ? "...\"" : "\"",
       "; supported families: chatml, llama2, llama3, mistral, phi3, internlm2 (name one "
       "explicitly to use it)");
}

ChatFormat chat_format_from_name(std::string_view name) {
  for (ChatFormat f : {ChatFormat::ChatML, ChatFormat::Llama2, ChatFormat::Llama3,
                       ChatFormat::Mistral, ChatFormat::Phi3, ChatFormat::InternLM2}) {
    if (chat_format_name(f) == name) return f;
  }
  fail("unknown chat template name '", name,
       "'; known: chatml, llama2, llama3, mistral, phi3, internlm2");
}

std::string apply_chat_template(ChatFormat f, const std::vector<ChatMessage>& msgs,
                                bool add_generation_prompt, std::string_view bos) {
  switch (f) {
    case ChatFormat::ChatML:
      return render_chatml(msgs, add_generation_prompt);
    case ChatFormat::InternLM2:
      return std::string(bos) + render_chatml(msgs, add_generation_prompt);
    case ChatFormat::Llama2:
      return render_llama2(msgs, bos);
    case ChatFormat::Llama3:
      return render_llama3(msgs, add_generation_prompt, bos);
    case ChatFormat::Mistral:
      return render_mistral(msgs, bos);
    case ChatFormat::Phi3:
      return render_phi3(msgs, add_generation_prompt, bos);
  }
  fail("unsupported chat format");
}

}  // namespace lc
