# longctx — the two commands people need are `make demo` and `make test`.
SHELL := /bin/bash
MAKEFLAGS += --no-print-directory
.SHELLFLAGS := -o pipefail -c
JOBS ?= $(shell nproc)
BUILD ?= build
LONGCTX_MODEL ?= ../shared/models/stories260K.gguf
FUZZ_SECONDS ?= 60

.PHONY: setup build test demo asan-test fuzz format clean

setup:
	@./scripts/setup

$(BUILD)/CMakeCache.txt:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null

build: setup $(BUILD)/CMakeCache.txt
	@cmake --build $(BUILD) -j $(JOBS) 2>&1 | (grep -v -E '^\[ *[0-9]+%\]' || true)
	@test -x $(BUILD)/longctx

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

demo: build
	@./scripts/demo "$(LONGCTX_MODEL)" $(BUILD)/longctx

# AddressSanitizer + UBSan build of everything, running the whole test suite.
asan-test: setup
	@cmake -S . -B $(BUILD)-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLONGCTX_SANITIZE=ON >/dev/null
	@cmake --build $(BUILD)-asan -j $(JOBS) 2>&1 | (grep -v -E '^\[ *[0-9]+%\]' || true)
	@cd $(BUILD)-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS)

# libFuzzer on the GGUF reader (clang), bounded in time. Warnings are errors in the g++ builds;
# clang's extra warnings are shown here but do not stop the fuzzer.
fuzz: setup
	@CXX=clang++ cmake -S . -B $(BUILD)-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLONGCTX_FUZZ=ON -DLONGCTX_TESTS=OFF -DLONGCTX_WERROR=OFF >/dev/null
	@cmake --build $(BUILD)-fuzz -j $(JOBS) --target fuzz_gguf 2>&1 | (grep -v -E '^\[ *[0-9]+%\]' || true)
	@test -x $(BUILD)-fuzz/fuzz/fuzz_gguf
	@mkdir -p $(BUILD)-fuzz/corpus && cp -n fuzz/corpus/* $(BUILD)-fuzz/corpus/ 2>/dev/null || true
	@$(BUILD)-fuzz/fuzz/fuzz_gguf -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -rss_limit_mb=2048 \
	  -print_final_stats=1 $(BUILD)-fuzz/corpus 2>&1 | tail -n 12

format:
	@find src tests fuzz bench -name '*.cpp' -o -name '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(BUILD)-asan $(BUILD)-fuzz
