# longctx — the two commands people need are `make demo` and `make test`.
SHELL := /bin/bash
MAKEFLAGS += --no-print-directory
.SHELLFLAGS := -o pipefail -c
JOBS ?= $(shell nproc)
BUILD ?= build
LONGCTX_MODEL ?= ../shared/models/stories260K.gguf
FUZZ_SECONDS ?= 60

.PHONY: setup build test demo asan-test tsan-test fuzz fuzz-request fuzz-session fuzz-safetensors cluster-demo format clean

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

# Redis, three replicas and nginx on loopback ports: a conversation whose replica is killed is
# continued by another from the shared store (docs/deploy.md).
cluster-demo: build
	@node scripts/cluster.mjs demo $(BUILD)/longctx "$(LONGCTX_MODEL)"

# AddressSanitizer + UBSan build of everything, running the whole test suite.
asan-test: setup
	@cmake -S . -B $(BUILD)-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLONGCTX_SANITIZE=ON >/dev/null
	@cmake --build $(BUILD)-asan -j $(JOBS) 2>&1 | (grep -v -E '^\[ *[0-9]+%\]' || true)
	@cd $(BUILD)-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS)

# ThreadSanitizer build (clang) of the concurrency tests only: sessions of one model on several
# threads, and callers sharing the thread pool. A race report fails the run.
tsan-test: setup
	@CXX=clang++ cmake -S . -B $(BUILD)-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLONGCTX_TSAN=ON -DLONGCTX_WERROR=OFF >/dev/null
	@cmake --build $(BUILD)-tsan -j $(JOBS) --target test_concurrency test_thread_pool 2>&1 | (grep -v -E '^\[ *[0-9]+%\]' || true)
	@cd $(BUILD)-tsan && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
	  ctest --output-on-failure -j $(JOBS) -R '^(Concurrency|ThreadPoolTest)\.'

# libFuzzer targets (clang), each bounded in time: $(call run_fuzzer,TARGET,CORPUS) builds
# fuzz/TARGET.cpp and runs it on a copy of fuzz/CORPUS. Warnings are errors in the g++ builds;
# clang's extra warnings are shown here but do not stop the fuzzer.
define run_fuzzer
	@CXX=clang++ cmake -S . -B $(BUILD)-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLONGCTX_FUZZ=ON -DLONGCTX_TESTS=OFF -DLONGCTX_WERROR=OFF >/dev/null
	@cmake --build $(BUILD)-fuzz -j $(JOBS) --target $(1) 2>&1 | (grep -v -E '^\[ *[0-9]+%\]' || true)
	@test -x $(BUILD)-fuzz/fuzz/$(1)
	@mkdir -p $(BUILD)-fuzz/$(2) && cp -n fuzz/$(2)/* $(BUILD)-fuzz/$(2)/ 2>/dev/null || true
	@$(BUILD)-fuzz/fuzz/$(1) -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -rss_limit_mb=2048 \
	  -print_final_stats=1 $(BUILD)-fuzz/$(2) 2>&1 | tail -n 12
endef

# The GGUF reader.
fuzz: setup
	$(call run_fuzzer,fuzz_gguf,corpus)

# The server's request parser.
fuzz-request: setup
	$(call run_fuzzer,fuzz_request,corpus-request)

# Saved session state (the memories' state records, the session file reader).
fuzz-session: setup
	$(call run_fuzzer,fuzz_session,corpus-session)

# The safetensors header reader.
fuzz-safetensors: setup
	$(call run_fuzzer,fuzz_safetensors,corpus-safetensors)

format:
	@find src tests fuzz bench -name '*.cpp' -o -name '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(BUILD)-asan $(BUILD)-tsan $(BUILD)-fuzz
