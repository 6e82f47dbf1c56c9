# tests/guest/linux/linux.mk: builds the Linux test guest's initramfs
# (build/tests/guest/linux/initramfs.cpio, with dv-dirty built static by the
# host gcc) from the rig's kernel cache (build/rig/kernel: Debian's kernel,
# its modules and busybox; `rig.sh --build-only` downloads them once).
# Included by the top-level Makefile; `make linux-guest`.  The tests rebuild
# it themselves when it is missing or older than its sources.

LINUX_GUEST_DIR := tests/guest/linux
LINUX_GUEST_OUT := $(B)/tests/guest/linux
LINUX_GUEST_KERNEL := $(B)/rig/kernel
LINUX_GUEST_SRCS := $(LINUX_GUEST_DIR)/init $(LINUX_GUEST_DIR)/lib.sh \
        $(LINUX_GUEST_DIR)/mkinitramfs.sh $(wildcard $(LINUX_GUEST_DIR)/scenarios/*.sh)

linux-guest: $(LINUX_GUEST_OUT)/initramfs.cpio

$(LINUX_GUEST_OUT)/dv-dirty: $(LINUX_GUEST_DIR)/dirty.c $(LINUX_GUEST_DIR)/linux.mk
	@mkdir -p $(dir $@)
	gcc -static -O2 -Wall -Wextra -o $@ $<

$(LINUX_GUEST_KERNEL)/vmlinuz:
	bash tests/rig/rig.sh --build-only

$(LINUX_GUEST_OUT)/initramfs.cpio: $(LINUX_GUEST_OUT)/dv-dirty $(LINUX_GUEST_SRCS) \
                                   $(LINUX_GUEST_KERNEL)/vmlinuz
	bash $(LINUX_GUEST_DIR)/mkinitramfs.sh --out $@

.PHONY: linux-guest
