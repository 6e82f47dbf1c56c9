/*
 * KVM's VFIO pseudo-device (KVM_DEV_TYPE_VFIO): the VM is told which VFIO
 * groups its devices come from, so KVM knows about their non-coherent DMA
 * and can pair their interrupts with posted interrupts.  Main thread only.
 */
#include <errno.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "accel/kvm/kvm.h"
#include "util/error.h"

/* Created on first use: a VM without VFIO devices never has one. */
static bool kvm_vfio_device_get(KvmVm *kvm, GError **errp)
{
    struct kvm_create_device create = { .type = KVM_DEV_TYPE_VFIO };

    if (kvm->vfio_dev_fd >= 0) {
        return true;
    }
    if (ioctl(kvm->vm_fd, KVM_CREATE_DEVICE, &create) < 0) {
        error_setg_errno(errp, errno, "KVM_CREATE_DEVICE (KVM_DEV_TYPE_VFIO)");
        return false;
    }
    kvm->vfio_dev_fd = create.fd;
    return true;
}

bool kvm_vfio_group(KvmVm *kvm, int group_fd, bool add, GError **errp)
{
    int32_t fd = group_fd;
    struct kvm_device_attr attr = {
        .group = KVM_DEV_VFIO_GROUP,
        .attr = add ? KVM_DEV_VFIO_GROUP_ADD : KVM_DEV_VFIO_GROUP_DEL,
        .addr = (uintptr_t)&fd,
    };

    if (!add && kvm->vfio_dev_fd < 0) {
        return true;
    }
    if (!kvm_vfio_device_get(kvm, errp)) {
        return false;
    }
    if (ioctl(kvm->vfio_dev_fd, KVM_SET_DEVICE_ATTR, &attr) < 0) {
        error_setg_errno(errp, errno, "KVM_SET_DEVICE_ATTR (%s)",
                         add ? "KVM_DEV_VFIO_GROUP_ADD" : "KVM_DEV_VFIO_GROUP_DEL");
        return false;
    }
    return true;
}

bool kvm_vfio_group_fn(void *opaque_kvm, int group_fd, bool add, GError **errp)
{
    return kvm_vfio_group(opaque_kvm, group_fd, add, errp);
}
