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
        -Wformat=2 -Wshadow=local -Wstrict-prototypes $(WERROR)
CFLAGS ?= -O2 -g
# Public headers live under include/, private ones beside their .c files
# (found by the quotes' own folder), generated ones under build/.  Only the
# tests and benchmarks may reach a subsystem's private header, by its path
# from the top (-I.); scripts/check-layers.py holds the rest to the layers.
INC = -Iinclude -I$(B) -I$(B)/qapi $(INC_PRIVATE)
$(B)/tests/%.o $(B)/bench/%.o $(B)/san/tests/%.o $(B)/tsan/tests/%.o \
$(B)/fuzz/obj/tests/%.o: INC_PRIVATE := -I.
ALL_CFLAGS = $(CFLAGS) $(WARN) -std=gnu11 -D_GNU_SOURCE $(INC) \
              $(DEPS_CFLAGS) -MMD -MP
LDLIBS := $(DEPS_LIBS)

# Every subsystem's sources; system/main.c holds main() and stays out of
# the library that unit tests link against.
LIB_SRCS := $(wildcard util/*.c accel/kvm/*.c hw/acpi/*.c hw/core/*.c hw/i386/*.c \
              hw/char/*.c hw/osnet/*.c hw/pci/*.c hw/virtio/*.c hw/vfio/*.c block/*.c \
              migration/*.c chardev/*.c monitor/*.c system/*.c net/*.c)
LIB_SRCS := $(filter-out system/main.c,$(LIB_SRCS))
LIB_OBJS := $(LIB_SRCS:%.c=$(B)/%.o) $(B)/qapi/qapi-commands.o

# The QMP command table, generated from the schema.
QAPI_SCHEMA := $(wildcard qapi/*.json)
$(B)/qapi/qapi-commands.h $(B)/qapi/qapi-commands.c: $(QAPI_SCHEMA) scripts/qapi-gen.py \
		scripts/qapi_schema.py scripts/qapi_introspect.py
	$(PYTHON) scripts/qapi-gen.py $(B)/qapi $(QAPI_SCHEMA)

$(B)/qapi/qapi-commands.o: $(B)/qapi/qapi-commands.c
	$(CC) $(ALL_CFLAGS) -Imonitor -c -o $@ $<

VMM := $(B)/qemu-system-x86_64

UNIT_SRCS := $(wildcard tests/unit/test-*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(B)/tests/unit/%)
# Programs the functional tests run where the hardware is (not unit tests).
UNIT_TOOLS := $(B)/tests/unit/vfio-probe
# The virtio tests share a fake guest and a memory disk
# (tests/unit/virtio-fakes.c), linked into each of them.
VIRTIO_UNIT := test-virtqueue test-virtio-blk test-virtio-pci test-virtio-net
VIRTIO_FAKES := tests/unit/virtio-fakes.o

BENCH_SRCS := $(wildcard bench/*.c)
BENCH_BINS := $(BENCH_SRCS:bench/%.c=$(B)/bench/%)

# Every C object may include the generated header: build it first.
$(LIB_OBJS) $(B)/system/main.o $(UNIT_BINS:%=%.o) $(B)/$(VIRTIO_FAKES) \
	$(BENCH_BINS:%=%.o): | $(B)/qapi/qapi-commands.h

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

# Objects before the library, whatever order the prerequisites come in.
$(B)/tests/unit/%: $(B)/tests/unit/%.o $(B)/libvmm.a
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(filter %.a,$^) $(LDLIBS)

$(VIRTIO_UNIT:%=$(B)/tests/unit/%): $(B)/$(VIRTIO_FAKES)

$(B)/bench/%: $(B)/bench/%.o $(B)/libvmm.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# ---- sanitizers and fuzzing ----
# build/san/: the library, the VMM, the unit tests and the fuzz targets'
# corpus replays (tests/fuzz/replay-main.c) built with ASan + UBSan by the
# same compiler; build/fuzz/: the targets under libFuzzer (clang).
SAN := $(B)/san
SAN_FLAGS := -fsanitize=address,undefined,float-cast-overflow \
             -fno-sanitize-recover=undefined,float-cast-overflow \
             -fno-omit-frame-pointer
SAN_CFLAGS = -O1 -g $(WARN) -std=gnu11 -D_GNU_SOURCE $(INC) \
              $(DEPS_CFLAGS) -MMD -MP $(SAN_FLAGS)
SAN_LIB_OBJS := $(LIB_SRCS:%.c=$(SAN)/%.o) $(SAN)/qapi/qapi-commands.o
SAN_VMM := $(SAN)/qemu-system-x86_64
SAN_UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(SAN)/tests/unit/%)
SAN_UNIT_TOOLS := $(UNIT_TOOLS:$(B)/%=$(SAN)/%)

FUZZ_SRCS := $(wildcard tests/fuzz/fuzz-*.c)
FUZZ_NAMES := $(FUZZ_SRCS:tests/fuzz/fuzz-%.c=%)
REPLAY_BINS := $(FUZZ_NAMES:%=$(SAN)/tests/fuzz/replay-%)

FUZZ := $(B)/fuzz
FUZZ_CC ?= clang
FUZZ_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS = -O1 -g -std=gnu11 -D_GNU_SOURCE $(INC) $(DEPS_CFLAGS) \
               -MMD -MP $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link \
               -Wno-gnu-variable-sized-type-not-at-end
FUZZ_LIB_OBJS := $(LIB_SRCS:%.c=$(FUZZ)/obj/%.o) $(FUZZ)/obj/qapi/qapi-commands.o
FUZZ_BINS := $(FUZZ_NAMES:%=$(FUZZ)/fuzz-%)

$(SAN_LIB_OBJS) $(SAN)/system/main.o $(SAN_UNIT_BINS:%=%.o) $(SAN)/$(VIRTIO_FAKES) \
	$(FUZZ_LIB_OBJS): | $(B)/qapi/qapi-commands.h

$(SAN)/%.o: %.c $(B)/config.mak
	@mkdir -p $(dir $@)
	$(CC) $(SAN_CFLAGS) -c -o $@ $<

$(SAN)/qapi/qapi-commands.o: $(B)/qapi/qapi-commands.c
	@mkdir -p $(dir $@)
	$(CC) $(SAN_CFLAGS) -Imonitor -c -o $@ $<

$(SAN)/libvmm.a: $(SAN_LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(SAN_VMM): $(SAN)/system/main.o $(SAN)/libvmm.a
	$(CC) $(SAN_FLAGS) -o $@ $^ $(LDLIBS)

$(SAN)/tests/unit/%: $(SAN)/tests/unit/%.o $(SAN)/libvmm.a
	$(CC) $(SAN_FLAGS) -o $@ $(filter %.o,$^) $(filter %.a,$^) $(LDLIBS)

$(VIRTIO_UNIT:%=$(SAN)/tests/unit/%): $(SAN)/$(VIRTIO_FAKES)

$(SAN)/tests/fuzz/replay-%: $(SAN)/tests/fuzz/fuzz-%.o $(SAN)/tests/fuzz/replay-main.o \
		$(SAN)/libvmm.a
	$(CC) $(SAN_FLAGS) -o $@ $^ $(LDLIBS)

$(FUZZ)/obj/%.o: %.c $(B)/config.mak
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ)/obj/qapi/qapi-commands.o: $(B)/qapi/qapi-commands.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Imonitor -c -o $@ $<

$(FUZZ)/libvmm.a: $(FUZZ_LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ)/fuzz-%: $(FUZZ)/obj/tests/fuzz/fuzz-%.o $(FUZZ)/obj/tests/fuzz/libfuzzer-main.o \
		$(FUZZ)/libvmm.a
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

# Every fuzz target under libFuzzer: tests/fuzz/README.md says how to run them.
fuzz: $(FUZZ_BINS)

# Every target's corpus replay under ASan + UBSan (make check runs them).
fuzz-replay: $(REPLAY_BINS)

# ThreadSanitizer over the threaded code (the block layer's I/O threads,
# virtio's I/O threads and workers): those unit tests in build/tsan.  Every
# lock there is a pthread mutex, which TSan sees; GLib's are not used.
TSAN := $(B)/tsan
# -Wno-tsan: TSan does not model atomic_thread_fence, which the virtqueue
# uses to order its accesses to rings the guest (not a thread) shares.
TSAN_FLAGS := -fsanitize=thread -Wno-tsan
TSAN_CFLAGS = -O1 -g $(WARN) -std=gnu11 -D_GNU_SOURCE $(INC) \
               $(DEPS_CFLAGS) -MMD -MP $(TSAN_FLAGS)
TSAN_LIB_OBJS := $(LIB_SRCS:%.c=$(TSAN)/%.o) $(TSAN)/qapi/qapi-commands.o
TSAN_UNIT_BINS := $(TSAN)/tests/unit/test-block $(TSAN)/tests/unit/test-qcow2 \
                  $(TSAN)/tests/unit/test-virtio-pci $(TSAN)/tests/unit/test-kvm-slots \
                  $(TSAN)/tests/unit/test-virtio-net

$(TSAN_LIB_OBJS) $(TSAN_UNIT_BINS:%=%.o) $(TSAN)/$(VIRTIO_FAKES): | $(B)/qapi/qapi-commands.h

$(TSAN)/%.o: %.c $(B)/config.mak
	@mkdir -p $(dir $@)
	$(CC) $(TSAN_CFLAGS) -c -o $@ $<

$(TSAN)/qapi/qapi-commands.o: $(B)/qapi/qapi-commands.c
	@mkdir -p $(dir $@)
	$(CC) $(TSAN_CFLAGS) -Imonitor -c -o $@ $<

$(TSAN)/libvmm.a: $(TSAN_LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(TSAN)/tests/unit/%: $(TSAN)/tests/unit/%.o $(TSAN)/libvmm.a
	$(CC) $(TSAN_FLAGS) -o $@ $(filter %.o,$^) $(filter %.a,$^) $(LDLIBS)

$(TSAN)/tests/unit/test-virtio-pci $(TSAN)/tests/unit/test-virtio-net: $(TSAN)/$(VIRTIO_FAKES)

# The ASan + UBSan build of everything: make check runs its unit tests,
# the corpus replays and the functional tests that need no VM.
sanitize-build: $(SAN_VMM) $(SAN_UNIT_BINS) $(SAN_UNIT_TOOLS) fuzz-replay $(TSAN_UNIT_BINS)

sanitize: sanitize-build fuzz
	$(PYTHON) scripts/check.py --sanitized-only

-include $(SAN_LIB_OBJS:.o=.d) $(SAN)/system/main.d $(SAN_UNIT_BINS:%=%.d) \
	$(REPLAY_BINS:$(SAN)/tests/fuzz/replay-%=$(SAN)/tests/fuzz/fuzz-%.d) \
	$(FUZZ_LIB_OBJS:.o=.d) $(TSAN_LIB_OBJS:.o=.d) $(TSAN_UNIT_BINS:%=%.d) \
	$(SAN)/$(VIRTIO_FAKES:.o=.d) $(TSAN)/$(VIRTIO_FAKES:.o=.d)

-include tests/guest/guest.mk
-include tests/guest/linux/linux.mk

unit: $(UNIT_BINS) $(UNIT_TOOLS)

# Natively what this /dev/kvm can run, the rest in the nested rig
# (scripts/check.py says which); the last line counts both.
check: all unit $(BENCH_BINS) linux-guest sanitize-build fuzz
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

.PHONY: all unit check bench install clean guest format-check fuzz fuzz-replay sanitize sanitize-build
-include $(LIB_OBJS:.o=.d) $(B)/system/main.d $(UNIT_BINS:%=%.d) $(BENCH_BINS:%=%.d) \
	$(UNIT_TOOLS:%=%.d) \
	$(B)/$(VIRTIO_FAKES:.o=.d)
.SECONDARY:
