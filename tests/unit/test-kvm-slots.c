/*
 * KVM memory slots (accel/kvm/kvm.c) over a fake kernel: removable slots
 * (passed-through BARs, which follow the guest's BAR programming from a
 * vCPU thread) against the migration thread's dirty-log reads.  The fake
 * kernel counts slot ioctls that overlap (none may: the slot table and
 * each ioctl are under one lock, so a slot id looked up for
 * KVM_GET_DIRTY_LOG is still that slot when the ioctl runs) and refuses
 * what Linux refuses (overlapping slots, dirty-log reads of a slot
 * without logging, removal of a slot that is not there).
 */
#include <errno.h>
#include <pthread.h>
#include <unistd.h>

#include "accel/kvm/kvm.h"
#include "hw/i386/pc.h"
#include "unit.h"

UNIT_MAIN()

#define RAM_LOW   (16ULL << 20)
#define RAM_HIGH  (8ULL << 20)
#define HIGH_BASE (4ULL << 30)
#define BAR_SIZE  (128ULL << 10)

typedef struct FakeSlot {
    bool used;
    uint64_t gpa, size;
    uint32_t flags;
} FakeSlot;

typedef struct FakeKernel {
    pthread_mutex_t lock;
    FakeSlot slots[64];
    int in_flight;
    int overlaps;      /* an ioctl began while another was in flight */
    int bad_get;       /* GET_DIRTY_LOG on a slot without logging */
    int bad_del;       /* removal of a slot that is not there */
    int bar_logged;    /* a slot outside RAM got KVM_MEM_LOG_DIRTY_PAGES */
    unsigned delay_us; /* each ioctl takes this long (widens the windows) */
} FakeKernel;

static FakeKernel fk;

static bool in_ram(uint64_t gpa)
{
    return gpa < RAM_LOW || (gpa >= HIGH_BASE && gpa < HIGH_BASE + RAM_HIGH);
}

static int fake_set_region(const struct kvm_userspace_memory_region *r)
{
    FakeSlot *s = &fk.slots[r->slot];

    if (!r->memory_size) {
        if (!s->used) {
            fk.bad_del++;
            errno = EINVAL;
            return -1;
        }
        s->used = false;
        return 0;
    }
    if (s->used) { /* a flags change (dirty logging) of the same slot */
        if (s->gpa != r->guest_phys_addr || s->size != r->memory_size) {
            errno = EINVAL;
            return -1;
        }
        s->flags = r->flags;
    } else {
        for (int i = 0; i < 64; i++) {
            FakeSlot *o = &fk.slots[i];
            if (o->used && r->guest_phys_addr < o->gpa + o->size &&
                o->gpa < r->guest_phys_addr + r->memory_size) {
                errno = EEXIST;
                return -1;
            }
        }
        *s = (FakeSlot){ true, r->guest_phys_addr, r->memory_size, r->flags };
    }
    if ((s->flags & KVM_MEM_LOG_DIRTY_PAGES) && !in_ram(s->gpa)) {
        fk.bar_logged++;
    }
    return 0;
}

static int fake_ioctl(KvmVm *kvm, unsigned long request, void *arg)
{
    int ret = 0;

    (void)kvm;
    if (__atomic_fetch_add(&fk.in_flight, 1, __ATOMIC_SEQ_CST)) {
        __atomic_fetch_add(&fk.overlaps, 1, __ATOMIC_SEQ_CST);
    }
    if (fk.delay_us) {
        usleep(fk.delay_us);
    }
    pthread_mutex_lock(&fk.lock);
    if (request == KVM_SET_USER_MEMORY_REGION) {
        ret = fake_set_region(arg);
    } else if (request == KVM_GET_DIRTY_LOG) {
        struct kvm_dirty_log *log = arg;
        FakeSlot *s = &fk.slots[log->slot];
        if (!s->used || !(s->flags & KVM_MEM_LOG_DIRTY_PAGES)) {
            fk.bad_get++;
            errno = ENOENT;
            ret = -1;
        } else {
            ((uint64_t *)log->dirty_bitmap)[0] = 1; /* page 0 written */
        }
    } else {
        errno = ENOTTY;
        ret = -1;
    }
    pthread_mutex_unlock(&fk.lock);
    __atomic_fetch_sub(&fk.in_flight, 1, __ATOMIC_SEQ_CST);
    return ret;
}

/* A VM with RAM below and above 4 GiB, as the pc board registers it. */
static void vm_setup(KvmVm *kvm)
{
    memset(&fk, 0, sizeof(fk));
    pthread_mutex_init(&fk.lock, NULL);
    memset(kvm, 0, sizeof(*kvm));
    kvm->vm_fd = kvm->sys_fd = kvm->vfio_dev_fd = -1;
    kvm_vm_slots_init(kvm);
    kvm->slot_ioctl = fake_ioctl;
    CHECK(kvm_vm_add_ram(kvm, 0, RAM_LOW, (void *)0x10000000, NULL));
    CHECK(kvm_vm_add_ram(kvm, HIGH_BASE, RAM_HIGH, (void *)0x20000000, NULL));
}

static int fake_nr_used(void)
{
    int n = 0;

    for (int i = 0; i < 64; i++) {
        n += fk.slots[i].used;
    }
    return n;
}

/* Device memory is never dirty-logged, nor read as RAM. */
UNIT_TEST(bar_slot_not_dirty_logged)
{
    KvmVm kvm;
    GError *err = NULL;
    uint64_t bitmap[RAM_LOW / 4096 / 64];
    int bar, bar_at_4g;

    vm_setup(&kvm);
    /* logging on for RAM, as migration starts it */
    CHECK(kvm_dirty_log_enable(&kvm, 0, true, NULL));
    CHECK(kvm_dirty_log_get(&kvm, 0, bitmap, NULL));
    /* a BAR added while migration logs: no logging for it */
    bar = kvm_vm_slot_add(&kvm, 0xe0000000, BAR_SIZE, (void *)0x30000000, NULL);
    CHECK(bar >= 2);
    CHECK(!(fk.slots[bar].flags & KVM_MEM_LOG_DIRTY_PAGES));
    CHECK(!kvm_dirty_log_enable(&kvm, 0xe0000000, true, &err));
    CHECK_STR(err ? err->message : NULL, "no RAM memory slot at 0xe0000000");
    g_clear_error(&err);
    CHECK(!kvm_dirty_log_get(&kvm, 0xe0000000, bitmap, &err));
    CHECK(err != NULL);
    g_clear_error(&err);
    /* a BAR where a RAM region would start (no RAM above 4 GiB on this
     * board): still not RAM */
    kvm_vm_slot_del(&kvm, 1); /* a RAM slot: not removable, left alone */
    CHECK(fk.slots[1].used);
    CHECK_EQ(fk.bad_del, 0);
    bar_at_4g = kvm_vm_slot_add(&kvm, HIGH_BASE + RAM_HIGH, BAR_SIZE, (void *)0x40000000,
                                NULL);
    CHECK(bar_at_4g > bar);
    CHECK(!kvm_dirty_log_enable(&kvm, HIGH_BASE + RAM_HIGH, true, NULL));
    /* a BAR programmed over RAM: KVM refuses, the table is unchanged */
    CHECK_EQ(kvm_vm_slot_add(&kvm, 0x100000, BAR_SIZE, (void *)0x50000000, &err), -1);
    CHECK(err && strstr(err->message, "KVM_SET_USER_MEMORY_REGION at 0x100000"));
    g_clear_error(&err);
    CHECK_EQ(fk.bar_logged, 0);
    CHECK_EQ(fake_nr_used(), 4);
    kvm_vm_slot_del(&kvm, bar);
    kvm_vm_slot_del(&kvm, bar_at_4g);
    kvm_vm_slot_del(&kvm, bar); /* twice: nothing */
    CHECK_EQ(fk.bad_del, 0);
    CHECK_EQ(fake_nr_used(), 2);
    CHECK_EQ(kvm.slot_generation, 4);
    /* freed ids come back, lowest first */
    CHECK_EQ(kvm_vm_slot_add(&kvm, 0xe0000000, BAR_SIZE, (void *)0x30000000, NULL), bar);
    CHECK(kvm_dirty_log_enable(&kvm, 0, false, NULL));
}

typedef struct Mover {
    KvmVm *kvm;
    int rounds;
    int failed_adds;
} Mover;

/* A guest moving its BAR between two addresses and switching decoding
 * off and on, as a vCPU thread does it. */
static void *mover(void *opaque)
{
    Mover *mv = opaque;

    for (int i = 0; i < mv->rounds; i++) {
        uint64_t gpa = (i & 1) ? 0xe0000000 : 0xfe000000;
        int slot = kvm_vm_slot_add(mv->kvm, gpa, BAR_SIZE, (void *)0x30000000, NULL);
        if (slot < 0) {
            mv->failed_adds++;
            continue;
        }
        kvm_vm_slot_del(mv->kvm, slot);
    }
    return NULL;
}

/* The migration thread reads RAM's dirty log while BARs come and go. */
UNIT_TEST(bar_moves_during_dirty_log_reads)
{
    enum {
        ROUNDS = 400
    };
    static uint64_t low[RAM_LOW / 4096 / 64], high[RAM_HIGH / 4096 / 64];
    KvmVm kvm;
    Mover mv;
    pthread_t t;
    int failed_gets = 0;

    vm_setup(&kvm);
    fk.delay_us = 20;
    CHECK(kvm_dirty_log_enable(&kvm, 0, true, NULL));
    CHECK(kvm_dirty_log_enable(&kvm, HIGH_BASE, true, NULL));
    mv = (Mover){ &kvm, ROUNDS, 0 };
    CHECK_EQ(pthread_create(&t, NULL, mover, &mv), 0);
    for (int i = 0; i < ROUNDS; i++) {
        low[0] = high[0] = 0;
        if (!kvm_dirty_log_get(&kvm, 0, low, NULL) ||
            !kvm_dirty_log_get(&kvm, HIGH_BASE, high, NULL) || low[0] != 1 ||
            high[0] != 1) {
            failed_gets++;
        }
    }
    pthread_join(t, NULL);
    CHECK_EQ(failed_gets, 0);
    CHECK_EQ(mv.failed_adds, 0);
    CHECK_EQ(fk.overlaps, 0);
    CHECK_EQ(fk.bad_get, 0);
    CHECK_EQ(fk.bad_del, 0);
    CHECK_EQ(fk.bar_logged, 0);
    CHECK_EQ(kvm.slot_generation, 2 * ROUNDS);
    CHECK_EQ(kvm.removable_slots, 0);
    CHECK_EQ(fake_nr_used(), 2);
    CHECK(fk.slots[0].used && fk.slots[1].used && fk.slots[0].gpa == 0 &&
          fk.slots[1].gpa == HIGH_BASE);
    CHECK(kvm_dirty_log_enable(&kvm, 0, false, NULL));
    CHECK(kvm_dirty_log_enable(&kvm, HIGH_BASE, false, NULL));
}
