# Thin wrapper over meson: `make` builds build/photosync, `make check` runs
# every test (also under ASan+UBSan), `make demo` starts the demo, `make
# bench` measures photosync against references (docs/performance.md).
BUILD ?= build
SAN_BUILD ?= build-san
BENCH_BUILD ?= build-bench
MESON_OPTS ?=

.PHONY: all deps check check-plain check-san demo bench clean

all: $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(BUILD)/build.ninja:
	./scripts/deps.sh build
	meson setup $(BUILD) $(MESON_OPTS)

$(SAN_BUILD)/build.ninja:
	./scripts/deps.sh build
	meson setup $(SAN_BUILD) -Db_sanitize=address,undefined \
	    -Db_lundef=false $(MESON_OPTS)

deps:
	./scripts/deps.sh test

check: check-plain check-san

check-plain: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)
	meson test -C $(BUILD) --print-errorlogs

check-san: deps $(SAN_BUILD)/build.ninja
	ninja -C $(SAN_BUILD)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/sanitizers/lsan.supp \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    meson test -C $(SAN_BUILD) --print-errorlogs

demo: all
	$(BUILD)/photosync demo $(DEMO_ARGS)

# A release build of its own with the benchmark programs; the driver writes
# bench/results/latest.md and fails when a floor does not hold. Knobs
# (BENCH_ROUNDS, BENCH_SECONDS, BENCH_QUICK=1, ...): docs/performance.md.
$(BENCH_BUILD)/build.ninja:
	./scripts/deps.sh bench
	meson setup $(BENCH_BUILD) --buildtype=release -Dbench=true \
	    $(MESON_OPTS)

bench: $(BENCH_BUILD)/build.ninja
	./scripts/deps.sh bench
	meson configure $(BENCH_BUILD) --buildtype=release -Dbench=true
	ninja -C $(BENCH_BUILD)
	BENCH_BUILD=$(abspath $(BENCH_BUILD)) /usr/bin/python3 bench/bench.py

clean:
	rm -rf $(BUILD) $(SAN_BUILD) $(BENCH_BUILD)
