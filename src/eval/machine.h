// The `machine` object every results file carries: what ran the evaluation.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace lc::eval {

// {"cpu": model name, "cores": physical cores, "nproc": processors this process may run on,
//  "threads": threads of the pool, "ram_bytes": physical memory, "isa": the kernels' instruction
//  set, "compiler": compiler and version, "build": optimised or debug, "date": UTC time (ISO
//  8601)}. Anything that cannot be read is left out (cpu: "unknown").
nlohmann::json machine_json();

// The time now in UTC, formatted by strftime's `format`.
std::string utc_time(const char* format);

}  // namespace lc::eval
