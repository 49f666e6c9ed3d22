#include "eval/machine.h"

#include <sched.h>
#include <unistd.h>

#include <ctime>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "core/thread_pool.h"
#include "kernels/dispatch.h"

namespace lc::eval {

namespace {

// The value of a "key : value" line of /proc/cpuinfo.
std::string cpuinfo_value(const std::string& line) {
  const size_t colon = line.find(':');
  if (colon == std::string::npos) return "";
  size_t i = colon + 1;
  while (i < line.size() && line[i] == ' ') ++i;
  return line.substr(i);
}

std::string compiler() {
#if defined(__clang__)
  return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  return std::string("gcc ") + __VERSION__;
#else
  return "unknown";
#endif
}

}  // namespace

nlohmann::json machine_json() {
  int64_t nproc = static_cast<int64_t>(std::thread::hardware_concurrency());
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) nproc = CPU_COUNT(&set);
  std::string cpu = "unknown";
  std::set<std::pair<std::string, std::string>> cores;  // (physical id, core id)
  std::string physical;
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0 && cpu == "unknown") cpu = cpuinfo_value(line);
    if (line.rfind("physical id", 0) == 0) physical = cpuinfo_value(line);
    if (line.rfind("core id", 0) == 0) cores.insert({physical, cpuinfo_value(line)});
  }
  nlohmann::json m = {{"cpu", cpu}, {"nproc", nproc}, {"threads", num_threads()}};
  if (!cores.empty()) m["cores"] = cores.size();
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0) m["ram_bytes"] = static_cast<int64_t>(pages) * page;
  m["isa"] = isa_name(kernels().isa);
  m["compiler"] = compiler();
#ifdef NDEBUG
  m["build"] = "optimised (NDEBUG)";
#else
  m["build"] = "debug (assertions on)";
#endif
  m["date"] = utc_time("%Y-%m-%dT%H:%M:%SZ");
  return m;
}

std::string utc_time(const char* format) {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, format, &tm);
  return buf;
}

}  // namespace lc::eval
