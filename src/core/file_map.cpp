#include "core/file_map.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace lc {

FileMap map_file(const std::string& path, const char* kind) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) fail("cannot open ", kind, " file ", path, ": ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    fail("cannot stat ", kind, " file ", path, ": ", std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(kind, " path ", path, " is not a regular file");
  }
  FileMap m;
  m.size = static_cast<uint64_t>(st.st_size);
  if (m.size > 0) {
    m.addr = ::mmap(nullptr, static_cast<size_t>(m.size), PROT_READ, MAP_PRIVATE, fd, 0);
    if (m.addr == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      fail("cannot map ", kind, " file ", path, ": ", std::strerror(err));
    }
  }
  ::close(fd);
  return m;
}

void unmap_file(const FileMap& m) {
  if (m.addr != nullptr) ::munmap(m.addr, static_cast<size_t>(m.size));
}

}  // namespace lc
