/*
 * Whole-VM KVM state for migration: each vCPU's registers, MSRs, LAPIC,
 * XSAVE, pending events and MP state, and the VM's in-kernel PIC, IOAPIC,
 * PIT and KVM clock.  The blobs are tagged records of the kernel's own
 * structures (versioned by tag and length), checked in full before anything
 * is applied.  All vCPUs must be paused; main thread.
 */
#ifndef ACCEL_KVM_KVM_STATE_H
#define ACCEL_KVM_KVM_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <glib.h>

typedef struct VCpu VCpu;
typedef struct KvmVm KvmVm;

bool vcpu_state_save(VCpu *cpu, GByteArray *out, GError **errp);
/* Check the blob fully, then apply it; on error the vCPU is unchanged. */
bool vcpu_state_load(VCpu *cpu, const uint8_t *buf, size_t len, GError **errp);

bool kvm_vm_state_save(KvmVm *kvm, GByteArray *out, GError **errp);
bool kvm_vm_state_load(KvmVm *kvm, const uint8_t *buf, size_t len, GError **errp);

/*
 * The KVM clock across a stop, as QEMU's kvmclock device does it: stop
 * reads the clock once (a later stop or a migration's save keeps that
 * value); resume sets it back, so the guest's kvmclock does not count the
 * time the VM was stopped, then tells each vCPU (KVM_KVMCLOCK_CTRL) that
 * the guest was paused, so its soft-lockup watchdog does not fire.  A
 * migration's load counts as a stop at the loaded value.  vCPUs paused.
 */
void kvm_clock_stop(KvmVm *kvm);
bool kvm_clock_resume(KvmVm *kvm, VCpu *const *vcpus, unsigned nr_vcpus, GError **errp);

/* The check half of the loads above, without a vCPU or a VM (no ioctl). */
bool vcpu_state_check(const uint8_t *buf, size_t len, GError **errp);
bool kvm_vm_state_check(const uint8_t *buf, size_t len, GError **errp);

#endif
