# Thin wrapper over meson: `make` builds build/photosync, `make check` runs
# every test (also under ASan+UBSan), `make demo` starts the demo.
BUILD ?= build
SAN_BUILD ?= build-san
MESON_OPTS ?=

.PHONY: all deps check check-plain check-san demo clean

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

clean:
	rm -rf $(BUILD) $(SAN_BUILD)
