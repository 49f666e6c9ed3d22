// A regular file mapped read-only into memory (the GGUF and safetensors readers).
#pragma once

#include <cstdint>
#include <string>

namespace lc {

struct FileMap {
  void* addr = nullptr;  // null for an empty file
  uint64_t size = 0;
};

// Maps the file; lc::Error naming `kind` ("GGUF", "safetensors"), the path and the OS error when
// it cannot be opened or mapped or is not a regular file (a FIFO never blocks the open).
FileMap map_file(const std::string& path, const char* kind);
void unmap_file(const FileMap& m);

}  // namespace lc
