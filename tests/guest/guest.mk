# tests/guest/guest.mk: builds testos (build/tests/guest/testos, a bzImage)
# with the system gcc and GNU ld, and the bootable disk images holding it
# (testos.img raw, testos.qcow2 with qemu-img from qemu-utils); included by
# the top-level Makefile.

GUEST_DIR := tests/guest
GUEST_OUT := $(B)/tests/guest
GUEST_CC := gcc
GUEST_LD := ld
GUEST_OBJCOPY := objcopy
GUEST_CFLAGS := -std=gnu11 -O2 -Wall -Wextra -Wno-unused-parameter \
        -ffreestanding -nostdlib -fno-pic -fno-pie -mno-red-zone -mgeneral-regs-only \
        -fno-stack-protector -fno-asynchronous-unwind-tables -fcf-protection=none \
        -fno-tree-loop-distribute-patterns -fno-delete-null-pointer-checks \
        -fno-strict-aliasing -mcmodel=small -MMD -MP
GUEST_ASFLAGS := -fno-pic -fno-pie -MMD -MP -D__ASSEMBLER__

GUEST_BOOT_SRC := $(GUEST_DIR)/bootdisk.S
GUEST_SRCS := $(filter-out $(GUEST_BOOT_SRC),$(wildcard $(GUEST_DIR)/*.c $(GUEST_DIR)/*.S))
GUEST_OBJS := $(patsubst $(GUEST_DIR)/%,$(GUEST_OUT)/obj/%.o,$(GUEST_SRCS))
GUEST_BOOT_OBJ := $(GUEST_OUT)/obj/bootdisk.S.o
QEMU_IMG ?= qemu-img

guest: $(GUEST_OUT)/testos $(GUEST_OUT)/testos.img $(GUEST_OUT)/testos.qcow2

$(GUEST_OUT)/obj/%.c.o: $(GUEST_DIR)/%.c $(GUEST_DIR)/guest.mk
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_CFLAGS) -c -o $@ $<

$(GUEST_OUT)/obj/%.S.o: $(GUEST_DIR)/%.S $(GUEST_DIR)/guest.mk
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_ASFLAGS) -c -o $@ $<

$(GUEST_OUT)/testos.elf: $(GUEST_OBJS) $(GUEST_DIR)/testos.ld
	$(GUEST_LD) -nostdlib -static -no-pie --no-warn-rwx-segments -z noexecstack \
		-T $(GUEST_DIR)/testos.ld -o $@ $(GUEST_OBJS)

$(GUEST_OUT)/testos: $(GUEST_OUT)/testos.elf
	$(GUEST_OBJCOPY) -O binary $< $@

# The disk image: the 4 KiB loader (bootdisk.S), the bzImage from LBA 8, zeros
# up to a whole MiB. README.md: layout and how to patch the command line.
$(GUEST_OUT)/bootdisk.elf: $(GUEST_BOOT_OBJ) $(GUEST_DIR)/bootdisk.ld
	$(GUEST_LD) -nostdlib -static -no-pie --no-warn-rwx-segments -z noexecstack \
		-T $(GUEST_DIR)/bootdisk.ld -o $@ $(GUEST_BOOT_OBJ)

$(GUEST_OUT)/bootdisk.bin: $(GUEST_OUT)/bootdisk.elf
	$(GUEST_OBJCOPY) -O binary $< $@

$(GUEST_OUT)/testos.img: $(GUEST_OUT)/bootdisk.bin $(GUEST_OUT)/testos
	cat $^ > $@.tmp
	truncate -s %1M $@.tmp
	mv $@.tmp $@

$(GUEST_OUT)/testos.qcow2: $(GUEST_OUT)/testos.img
	@if command -v $(QEMU_IMG) >/dev/null 2>&1; then \
		echo "$(QEMU_IMG) convert -f raw -O qcow2 $< $@"; \
		$(QEMU_IMG) convert -f raw -O qcow2 $< $@.tmp && mv $@.tmp $@; \
	else \
		echo "$(QEMU_IMG) not found (Debian: qemu-utils): $@ not built"; \
	fi

-include $(GUEST_OBJS:.o=.d) $(GUEST_BOOT_OBJ:.o=.d)
