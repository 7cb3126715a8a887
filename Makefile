# DevStream developer entry points. `make run` and `make test` work on a fresh
# Debian 12 machine as root: they install what they need first.
JOBS        ?= 2
HOST        ?= 127.0.0.1
PORT        ?= 8000
DB          ?= ./data/devstream.db
RELEASE_DIR := build/release
ASAN_DIR    := build/asan
GENERATOR   := -G Ninja

.PHONY: all deps dev-deps test-deps bench-deps build build-asan build-clang run test bench bench-build bench-quick fuzz soak fmt lint clean

all: build

deps:
	@sh deps/install.sh deps/debian-packages.txt

test-deps: deps
	@sh deps/install.sh deps/debian-test-packages.txt
	@if [ -f tests/node/package-lock.json ]; then \
	  cd tests/node && ( [ -d node_modules ] && npm ls >/dev/null 2>&1 || npm ci --no-audit --no-fund --loglevel=error ); fi

$(RELEASE_DIR)/build.ninja:
	cmake -S . -B $(RELEASE_DIR) $(GENERATOR) -DCMAKE_BUILD_TYPE=Release

$(ASAN_DIR)/build.ninja:
	cmake -S . -B $(ASAN_DIR) $(GENERATOR) -DCMAKE_BUILD_TYPE=Debug -DDEVSTREAM_SANITIZE=ON

build: deps $(RELEASE_DIR)/build.ninja
	cmake --build $(RELEASE_DIR) -j $(JOBS) --target devstream

build-asan: test-deps $(ASAN_DIR)/build.ninja
	cmake --build $(ASAN_DIR) -j $(JOBS)

run: build
	@mkdir -p $(dir $(DB))
	$(RELEASE_DIR)/devstream serve --host $(HOST) --port $(PORT) --db $(DB)

test: build-asan
	cd $(ASAN_DIR) && ctest --output-on-failure -j $(JOBS) --timeout 600

bench-deps: test-deps
	@sh deps/install.sh deps/debian-bench-packages.txt
	@cd bench/node && ( [ -d node_modules ] && npm ls >/dev/null 2>&1 || npm ci --no-audit --no-fund --loglevel=error )

bench-build: bench-deps $(RELEASE_DIR)/build.ninja
	cmake -S . -B $(RELEASE_DIR) -DDEVSTREAM_BUILD_BENCH=ON
	cmake --build $(RELEASE_DIR) -j $(JOBS)

# Every benchmark (tens of minutes); bench-quick: a subset under 5 minutes.
bench: bench-build
	@sh bench/run.sh

bench-quick: bench-build
	@BENCH_QUICK=1 sh bench/run.sh

# libFuzzer with clang, a few minutes per target (FUZZ_SECONDS), reporting
# executions and coverage; the seed corpora are replayed by `make test`.
fuzz: dev-deps test-deps
	@sh tests/fuzz/run_fuzz.sh

# The reliability rounds for many minutes (DEVSTREAM_SOAK_SECONDS) and many
# crash rounds (DEVSTREAM_CRASH_ROUNDS) on the sanitizer build.
soak: build-asan
	@sh tests/reliability/soak.sh

dev-deps: deps
	@sh deps/install.sh deps/debian-dev-packages.txt

fmt: dev-deps
	git ls-files '*.h' '*.cpp' | xargs clang-format -i

lint: dev-deps $(RELEASE_DIR)/build.ninja
	git ls-files 'src/*.cpp' | xargs clang-tidy -p $(RELEASE_DIR) --quiet

clean:
	rm -rf build

# The code must also build with clang 14 (used for libFuzzer); checked on demand.
build-clang: dev-deps
	CXX=clang++-14 cmake -S . -B build/clang $(GENERATOR) -DCMAKE_BUILD_TYPE=Debug
	cmake --build build/clang -j $(JOBS)
