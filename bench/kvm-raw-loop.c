/*
 * The limit for a port-I/O exit round trip: the smallest possible VMM.
 * One vCPU in real mode runs `out %al, $0x80; jmp .-2` forever; this
 * program answers N exits with nothing but KVM_RUN and prints the mean
 * nanoseconds per round trip.  Usage: kvm-raw-loop [N]
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
    /* out %al,$0x80 ; jmp back to the out */
    static const uint8_t code[] = { 0xe6, 0x80, 0xeb, 0xfc };
    long n = argc > 1 ? atol(argv[1]) : 20000;
    struct kvm_userspace_memory_region mem = { 0 };
    struct kvm_sregs sregs;
    struct kvm_regs regs = { 0 };
    struct kvm_run *run;
    int kvm, vm, cpu, size;
    uint8_t *ram;
    uint64_t start, elapsed;

    kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) {
        return die("/dev/kvm");
    }
    vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0) {
        return die("KVM_CREATE_VM");
    }
    ram = mmap(NULL, 0x10000, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memcpy(ram + 0x1000, code, sizeof(code));
    mem.memory_size = 0x10000;
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
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    ioctl(cpu, KVM_SET_SREGS, &sregs);
    regs.rip = 0x1000;
    regs.rflags = 2;
    ioctl(cpu, KVM_SET_REGS, &regs);

    for (long i = -1000; i < n; i++) {       /* 1000 warm-up exits */
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
