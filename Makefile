# Thin wrapper over meson: `make` builds build/photosync, `make check` runs
# every test (also under ASan+UBSan; those that make a store once more on
# PostgreSQL servers they start), `make demo` starts the demo (`make
# demo-cluster`: as a cluster of nodes behind HAProxy), `make
# bench` measures photosync against references (docs/performance.md),
# `make fuzz` runs the fuzz targets of tests/fuzz/ for FUZZ_SECONDS each
# (FUZZ_RUNS=N: for N executions each instead; FUZZ_TARGETS="a b": only
# those; docs/testing.md). `make deb` builds the Debian package into
# $(DEB_BUILD).
BUILD ?= build
SAN_BUILD ?= build-san
BENCH_BUILD ?= build-bench
FUZZ_BUILD ?= build-fuzz
DEB_BUILD ?= build-deb
CLANG_BUILD ?= build-clang
ANALYZE_BUILD ?= build-analyze
FUZZ_SECONDS ?= 60
FUZZ_RUNS ?=
FUZZ_TARGETS ?= http_head http_chunked http_multipart http_params url ews_soap \
    autodiscover_request autodiscover_answer s2s_metadata s2s_token jpeg \
    names ldap_values negotiate graph_path avatar
FUZZ_LIMIT = $(if $(FUZZ_RUNS),-runs=$(FUZZ_RUNS),-max_total_time=$(FUZZ_SECONDS))
MESON_OPTS ?=

.PHONY: all deps check check-plain check-san demo demo-cluster bench fuzz \
    clean install check-clang check-valgrind analyze

all: $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(BUILD)/build.ninja:
	./scripts/deps.sh build
	meson setup $(BUILD) $(MESON_OPTS)

$(SAN_BUILD)/build.ninja:
	./scripts/deps.sh build
	meson setup $(SAN_BUILD) -Db_sanitize=address,undefined \
	    -Db_lundef=false $(MESON_OPTS)

# `make install PREFIX=/usr DESTDIR=/tmp/stage`: the binary, units,
# service user, /etc/default files, documentation and LDAP schema
# (docs/operations.md). PREFIX is set on the build (meson configure).
PREFIX ?= /usr/local
install: $(BUILD)/build.ninja
	meson configure $(BUILD) --prefix=$(PREFIX)
	ninja -C $(BUILD)
	meson install -C $(BUILD) --no-rebuild $(if $(DESTDIR),--destdir $(abspath $(DESTDIR)))

deps:
	./scripts/deps.sh test

check: check-plain check-san check-clang check-valgrind analyze

check-plain: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)
	meson test -C $(BUILD) --print-errorlogs

check-san: deps $(SAN_BUILD)/build.ninja
	ninja -C $(SAN_BUILD)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/sanitizers/lsan.supp \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    meson test -C $(SAN_BUILD) --print-errorlogs

# clang with its warnings (meson.build: -Weverything less a written-down
# few) as errors; the unit tests and the fuzz corpora run with it, not the
# integration tests (they run in the gcc builds).
$(CLANG_BUILD)/build.ninja:
	./scripts/deps.sh test
	CC=clang meson setup $(CLANG_BUILD) -Dwerror=true $(MESON_OPTS)

check-clang: deps $(CLANG_BUILD)/build.ninja
	ninja -C $(CLANG_BUILD)
	meson test -C $(CLANG_BUILD) --print-errorlogs --suite unit \
	    --suite fuzz --no-suite postgresql

# Unit tests, every fuzz corpus and one master serving
# requests, in the plain build, under valgrind's memcheck: reads of
# uninitialised memory, which the sanitizers do not see
# (tests/valgrind/check.sh says which tests).
check-valgrind: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)
	tests/valgrind/check.sh $(BUILD)

# The clang static analyzer over the tree (scan-build); fails when it
# reports anything (docs/testing.md: what it found, and how the code
# states what it cannot see).
analyze:
	./scripts/deps.sh analyze
	rm -rf $(ANALYZE_BUILD)
	scan-build --use-cc=clang -o $(ANALYZE_BUILD)/report \
	    meson setup $(ANALYZE_BUILD) $(MESON_OPTS)
	scan-build --use-cc=clang --status-bugs -o $(ANALYZE_BUILD)/report \
	    ninja -C $(ANALYZE_BUILD)

demo: all
	./scripts/deps.sh demo
	$(BUILD)/photosync demo $(DEMO_ARGS)

# The same environment as a cluster: PostgreSQL, two master nodes and
# DEMO_NODES portal nodes behind HAProxy, kept in ./demo-cluster.
DEMO_NODES ?= 3
demo-cluster: all
	./scripts/deps.sh demo
	$(BUILD)/photosync demo --dir demo-cluster --nodes $(DEMO_NODES) \
	    $(DEMO_ARGS)

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

# clang with libFuzzer, ASan and UBSan. Each target runs on a copy of its
# corpus in $(FUZZ_BUILD)/corpus/<target>/, beside what earlier runs left
# there (findings in $(FUZZ_BUILD)/findings/); add what it finds to
# tests/fuzz/corpus/.
$(FUZZ_BUILD)/build.ninja:
	./scripts/deps.sh fuzz
	CC=clang meson setup $(FUZZ_BUILD) -Dfuzzing_engine=libfuzzer \
	    -Db_sanitize=address,undefined -Db_lundef=false $(MESON_OPTS)

fuzz: $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD) $(addprefix tests/fuzz/,$(FUZZ_TARGETS))
	mkdir -p $(FUZZ_BUILD)/findings
	for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(FUZZ_BUILD)/corpus/$$t && \
	    cp tests/fuzz/corpus/$$t/* $(FUZZ_BUILD)/corpus/$$t/ && \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    $(FUZZ_BUILD)/tests/fuzz/$$t $(FUZZ_LIMIT) \
	        -dict=tests/fuzz/$$t.dict \
	        -artifact_prefix=$(FUZZ_BUILD)/findings/$$t- \
	        $(FUZZ_BUILD)/corpus/$$t || exit 1; \
	done

# $(DEB_BUILD)/photosync_VERSION_ARCH.deb with debhelper, from a copy of
# this tree, without the network (scripts/deb.sh), then lintian on it.
.PHONY: deb
deb:
	./scripts/deps.sh deb
	./scripts/deb.sh $(DEB_BUILD)
	lintian --fail-on error $(DEB_BUILD)/photosync_*.deb

clean:
	rm -rf $(BUILD) $(SAN_BUILD) $(BENCH_BUILD) $(FUZZ_BUILD) \
	    $(DEB_BUILD) $(CLANG_BUILD) $(ANALYZE_BUILD)
