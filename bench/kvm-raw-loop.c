/*
 * The limit for a port-I/O exit round trip: the smallest possible VMM.
 * One vCPU in 64-bit mode (identity-mapped with 2 MiB pages, like testos)
 * runs testos's ring-0 pio loop forever; this program answers N exits with
 * nothing but KVM_RUN and prints the mean nanoseconds per round trip.
 * Usage: kvm-raw-loop [N]
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static int die(const char *what)
{
    fprintf(stderr, "kvm-raw-loop: %s: %s\n", what, strerror(errno));
    return 1;
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    /*
     * The same instructions per iteration as testos's ring-0 pio loop, so
     * both pay the same guest-side (emulation) cost:
     *   out %al,$0x80 ; add $1,%rcx ; cmp %rcx,%rbx ; jne .-11 ; jmp .-13
     */
    static const uint8_t code[] = { 0xe6, 0x80, 0x48, 0x83, 0xc1, 0x01, 0x48,
                                    0x39, 0xcb, 0x75, 0xf5, 0xeb, 0xf3 };
    const size_t ram_size = 4 << 20;
    uint64_t *gdt, *pml4, *pdpt, *pd;
    long n = argc > 1 ? atol(argv[1]) : 20000;
    struct kvm_userspace_memory_region mem = { 0 };
    struct kvm_sregs sregs;
    struct kvm_regs regs = { 0 };
    struct kvm_run *run;
    int kvm, vm, cpu, size;
    uint8_t *ram;
    uint64_t start = 0, elapsed;

    kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) {
        return die("/dev/kvm");
    }
    vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0) {
        return die("KVM_CREATE_VM");
    }
    ram = mmap(NULL, ram_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
               0);
    memcpy(ram + 0x100000, code, sizeof(code));
    gdt = (uint64_t *)(ram + 0x500);
    gdt[2] = 0x00af9b000000ffffULL; /* 0x10: 64-bit code */
    gdt[3] = 0x00cf93000000ffffULL; /* 0x18: data */
    pml4 = (uint64_t *)(ram + 0x9000);
    pdpt = (uint64_t *)(ram + 0xa000);
    pd = (uint64_t *)(ram + 0xb000);
    pml4[0] = 0xa000 | 3;
    pdpt[0] = 0xb000 | 3;
    pd[0] = 0x83;
    pd[1] = (2 << 20) | 0x83;
    mem.memory_size = ram_size;
    mem.userspace_addr = (uintptr_t)ram;
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &mem) < 0) {
        return die("KVM_SET_USER_MEMORY_REGION");
    }
    cpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (cpu < 0 || size <= 0) {
        return die("KVM_CREATE_VCPU");
    }
    run = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, cpu, 0);
    if (ioctl(cpu, KVM_GET_SREGS, &sregs) < 0) {
        return die("KVM_GET_SREGS");
    }
    sregs.cs = (struct kvm_segment){ .limit = 0xffffffff,
                                     .selector = 0x10,
                                     .type = 0xb,
                                     .present = 1,
                                     .s = 1,
                                     .l = 1,
                                     .g = 1 };
    sregs.ds = (struct kvm_segment){ .limit = 0xffffffff,
                                     .selector = 0x18,
                                     .type = 0x3,
                                     .present = 1,
                                     .s = 1,
                                     .db = 1,
                                     .g = 1 };
    sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
    sregs.gdt.base = 0x500;
    sregs.gdt.limit = 31;
    sregs.cr0 = 0x80000011;
    sregs.cr3 = 0x9000;
    sregs.cr4 = 0x20;
    sregs.efer = 0x500;
    if (ioctl(cpu, KVM_SET_SREGS, &sregs) < 0) {
        return die("KVM_SET_SREGS");
    }
    regs.rip = 0x100000;
    regs.rflags = 2;
    ioctl(cpu, KVM_SET_REGS, &regs);

    for (long i = -1000; i < n; i++) { /* 1000 warm-up exits */
        if (i == 0) {
            start = now_ns();
        }
        if (ioctl(cpu, KVM_RUN, 0) < 0) {
            return die("KVM_RUN");
        }
        if (run->exit_reason != KVM_EXIT_IO) {
            fprintf(stderr, "kvm-raw-loop: unexpected exit %u\n", run->exit_reason);
            return 1;
        }
    }
    elapsed = now_ns() - start;
    printf("raw-loop n=%ld ns=%llu\n", n, (unsigned long long)(elapsed / n));
    return 0;
}
