# Directvisor VMM build.  `./configure && make` builds
# build/qemu-system-x86_64 and the test guest build/tests/guest/testos.

-include build/config.mak
CC ?= cc
PREFIX ?= /usr/local
B := build
PYTHON ?= /usr/bin/python3

# Plain `make` builds what `make all` builds, whatever rule comes first.
.DEFAULT_GOAL := all

WARN := -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers \
        -Wformat=2 -Wshadow=local -Wstrict-prototypes
CFLAGS ?= -O2 -g
ALL_CFLAGS := $(CFLAGS) $(WARN) -std=gnu11 -D_GNU_SOURCE -Iinclude -I$(B) -I. \
              $(DEPS_CFLAGS) -MMD -MP
LDLIBS := $(DEPS_LIBS)

# Every subsystem's sources; system/main.c holds main() and stays out of
# the library that unit tests link against.
LIB_SRCS := $(wildcard util/*.c accel/kvm/*.c hw/core/*.c hw/i386/*.c \
              hw/char/*.c hw/osnet/*.c hw/pci/*.c hw/virtio/*.c block/*.c \
              migration/*.c chardev/*.c monitor/*.c system/*.c)
LIB_SRCS := $(filter-out system/main.c,$(LIB_SRCS))
LIB_OBJS := $(LIB_SRCS:%.c=$(B)/%.o) $(B)/qapi/qapi-commands.o

# The QMP command table, generated from the schema.
QAPI_SCHEMA := $(wildcard qapi/*.json)
$(B)/qapi/qapi-commands.h $(B)/qapi/qapi-commands.c: $(QAPI_SCHEMA) scripts/qapi-gen.py
	$(PYTHON) scripts/qapi-gen.py $(B)/qapi $(QAPI_SCHEMA)

$(B)/qapi/qapi-commands.o: $(B)/qapi/qapi-commands.c
	$(CC) $(ALL_CFLAGS) -Imonitor -c -o $@ $<

VMM := $(B)/qemu-system-x86_64

UNIT_SRCS := $(wildcard tests/unit/test-*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(B)/tests/unit/%)

BENCH_SRCS := $(wildcard bench/*.c)
BENCH_BINS := $(BENCH_SRCS:bench/%.c=$(B)/bench/%)

# Every C object may include the generated header: build it first.
$(LIB_OBJS) $(B)/system/main.o $(UNIT_BINS:%=%.o) $(BENCH_BINS:%=%.o): \
	| $(B)/qapi/qapi-commands.h

all: $(VMM) guest

$(B)/config.mak:
	@echo "run ./configure first" >&2; exit 1

$(B)/%.o: %.c $(B)/config.mak
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(B)/libvmm.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(VMM): $(B)/system/main.o $(B)/libvmm.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/tests/unit/%: $(B)/tests/unit/%.o $(B)/libvmm.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/bench/%: $(B)/bench/%.o $(B)/libvmm.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

-include tests/guest/guest.mk
-include tests/guest/linux/linux.mk

unit: $(UNIT_BINS)

# Natively what this /dev/kvm can run, the rest in the nested rig
# (scripts/check.py says which); the last line counts both.
check: all unit $(BENCH_BINS) linux-guest
	$(PYTHON) scripts/check.py

bench: all $(BENCH_BINS)
	$(PYTHON) bench/run.py

install: $(VMM)
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(VMM) $(DESTDIR)$(PREFIX)/bin/qemu-system-x86_64

format-check:
	clang-format --dry-run -Werror $(shell git ls-files '*.c' '*.h' | grep -v '^tests/guest/')

clean:
	rm -rf $(B)/*/ $(B)/*.a $(VMM)

.PHONY: all unit check bench install clean guest format-check
-include $(LIB_OBJS:.o=.d) $(B)/system/main.d
.SECONDARY:
