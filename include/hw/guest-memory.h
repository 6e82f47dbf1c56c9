/*
 * Guest-memory access as devices get it at creation: the one way a device
 * turns a guest-physical range into a host pointer, without knowing the
 * machine's memory map.  The range is checked whole: a range that is not
 * entirely inside guest RAM gives NULL.  Callable from any thread; the
 * map does not change while the VM exists.
 */
#ifndef HW_GUEST_MEMORY_H
#define HW_GUEST_MEMORY_H

#include <stdint.h>

typedef struct GuestMemory {
    void *(*gpa_to_hva)(void *opaque, uint64_t gpa, uint64_t len);
    void *opaque;
} GuestMemory;

/* Host pointer to guest-physical [gpa, gpa+len), or NULL. */
static inline void *guest_memory_hva(const GuestMemory *mem, uint64_t gpa, uint64_t len)
{
    return mem->gpa_to_hva(mem->opaque, gpa, len);
}

#endif
