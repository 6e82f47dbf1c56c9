/*
 * Inside the container/group backend (container.c: contexts, groups, the
 * container; vfio-device.c: a host device's ops).  Every system call the
 * backend makes goes through one VfioSyscalls table, libc's by default,
 * so that unit tests can stand in for the kernel and drive every error.
 */
#ifndef HW_VFIO_VFIO_INT_H
#define HW_VFIO_VFIO_INT_H

#include <dirent.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "hw/vfio.h"

typedef struct VfioSyscalls {
    int (*open)(const char *path, int flags);
    int (*close)(int fd);
    int (*ioctl)(int fd, unsigned long request, void *arg);
    ssize_t (*pread)(int fd, void *buf, size_t len, off_t off);
    ssize_t (*pwrite)(int fd, const void *buf, size_t len, off_t off);
    void *(*mmap)(void *addr, size_t len, int prot, int flags, int fd, off_t off);
    int (*munmap)(void *addr, size_t len);
    /* sysfs */
    int (*access)(const char *path, int mode);
    ssize_t (*readlink)(const char *path, char *buf, size_t size);
    DIR *(*opendir)(const char *path);
    struct dirent *(*readdir)(DIR *dir);
    int (*closedir)(DIR *dir);
    int (*getrlimit)(int resource, struct rlimit *limit);
} VfioSyscalls;

extern const VfioSyscalls vfio_syscalls_libc;

/*
 * Tests only: use sys instead of libc (NULL: libc again) and look for
 * sysfs under sysfs_root instead of /sys (NULL: /sys).
 */
void vfio_syscalls_override(const VfioSyscalls *sys, const char *sysfs_root);
const VfioSyscalls *vfio_sys(void);

/* One IOMMU group: shared by the context's devices that belong to it. */
typedef struct VfioGroup {
    VfioContext *ctx;
    int id;
    int fd;
    unsigned nr_devices;
} VfioGroup;

/* A VfioDevice's backend state. */
typedef struct VfioHostDevice {
    VfioDevice dev;
    VfioGroup *group;
    int fd;
    /* where each region lies in fd, learnt on first use */
    struct VfioRegionPlace {
        bool known;
        uint64_t offset, size;
    } * places;
} VfioHostDevice;

extern const VfioDeviceOps vfio_host_device_ops;

/*
 * The close op's half in container.c: the device leaves its context, and
 * its group too when it was the group's last device.
 */
void vfio_context_device_gone(VfioHostDevice *hdev);
/*
 * The close op: release(hdev) (close the fd, vfio_context_device_gone,
 * free) now, or on a thread of its own with close_in_background.
 */
void vfio_context_device_close(VfioHostDevice *hdev,
                               void (*release)(VfioHostDevice *hdev));

/*
 * VFIO_DEVICE_GET_REGION_INFO's reply (buf, len bytes, as the kernel wrote
 * it) parsed into out, its capability chain checked against len: a chain
 * that leaves the buffer, loops or lists areas outside the region is an
 * error naming the device.
 */
bool vfio_region_parse(const char *name, const void *buf, size_t len, VfioRegion *out,
                       GError **errp);

#endif
