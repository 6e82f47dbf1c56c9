# tests/guest/guest.mk: builds testos (build/tests/guest/testos, a bzImage)
# with the system gcc and GNU ld; included by the top-level Makefile.

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

GUEST_SRCS := $(wildcard $(GUEST_DIR)/*.c $(GUEST_DIR)/*.S)
GUEST_OBJS := $(patsubst $(GUEST_DIR)/%,$(GUEST_OUT)/obj/%.o,$(GUEST_SRCS))

guest: $(GUEST_OUT)/testos

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

-include $(GUEST_OBJS:.o=.d)
