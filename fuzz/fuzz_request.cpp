// libFuzzer target for the server's request parser: any byte string must either become a typed
// request or raise RequestError with a status of 400 or 413 and a message; nothing else may
// escape, and the sanitizers watch the JSON depth scan and the UTF-8 check.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "server/request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  for (auto endpoint : {lc::server::Endpoint::ChatCompletions, lc::server::Endpoint::Completions}) {
    try {
      const lc::server::CompletionRequest r = lc::server::parse_completion_request(body, endpoint);
      if (endpoint == lc::server::Endpoint::ChatCompletions && r.messages.empty()) std::abort();
    } catch (const lc::server::RequestError& e) {
      const int status = e.error().status;
      if ((status != 400 && status != 413) || e.error().message.empty()) std::abort();
    }
  }
  return 0;
}
