/*
 * Fuzz target for the incoming migration stream: each input is the whole
 * stream a source would send (header, sections, checksums; migration-int.h),
 * loaded into a pc machine built without KVM: 8 MiB of RAM, one vCPU, the
 * PCI host bridge and PIIX3, a virtio-blk disk (at 00:02.0, on a fake
 * backend), the i8042, the RTC and COM1, exactly what a -kernel testos
 * source with one if=virtio drive sends.  The stream goes through the
 * loader's own steps (incoming_load_stream, _check, _apply_devices): every
 * section is read and checked, RAM is written, the KVM and vCPU records
 * are checked (applying them needs KVM) and every device parses and applies
 * its blob.  The machine is built once (virtio-blk's threads make building
 * it slow) and reset to power-on state before each input.
 *
 * The input's first byte is a mode: bit 0 set, every section's checksum is
 * put right before the load (so that the fuzzer can change what is inside
 * a section and still get past the checksum); the rest is the stream.
 *
 * Outcome: "ok: sections=N ram_pages=N arrives=STATE" or "refused: ERROR".
 * Seeds: tests/fuzz/corpus-migration/, made by make-corpus-migration.py.
 */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hw/i386/i8042.h"
#include "hw/i386/pc.h"
#include "hw/machine.h"
#include "hw/pci.h"
#include "hw/serial.h"
#include "hw/virtio.h"
#include "migration/migration-int.h"
#include "tests/fuzz/fuzz-pc.h"
#include "tests/fuzz/fuzz.h"

#define FUZZ_RAM_SIZE (8ULL << 20)

static void fake_irq_set(void *opaque, int gsi, int level)
{
}

/* ---- the machine ---- */

typedef struct FuzzMachine {
    Machine m;
    VmConfig cfg;
    I8042 *i8042;
    Rtc *rtc;
    SerialPort *com1;
} FuzzMachine;

static void fuzz_reset_line(void *opaque)
{
}

static bool com1_load(void *opaque, const uint8_t *buf, size_t len, uint32_t version,
                      GError **errp)
{
    return serial_load(opaque, buf, len, errp);
}

static bool com1_save(void *opaque, GByteArray *out, GError **errp)
{
    return serial_save(opaque, out);
}

static const DeviceStateOps com1_ops = { com1_save, com1_load };

static void machine_build(FuzzMachine *f, uint8_t *ram)
{
    Machine *m = &f->m;
    IrqLine irq = { fake_irq_set, NULL, 4 };
    GError *err = NULL;

    memset(f, 0, sizeof(*f));
    f->cfg.smp = (SmpConfig){ .cpus = 1, .sockets = 1, .cores = 1, .threads = 1 };
    f->cfg.ram_size = FUZZ_RAM_SIZE;
    m->cfg = &f->cfg;
    m->kvm.vm_fd = m->kvm.sys_fd = -1;
    pthread_mutex_init(&m->lock, NULL);
    bus_init(&m->io_bus, "io");
    bus_init(&m->mmio_bus, "mmio");
    device_state_list_init(&m->device_states);
    m->runstate = RUN_STATE_INMIGRATE;
    m->nr_vcpus = 1;
    if (!machine_plan_memory(m, FUZZ_RAM_SIZE, &err)) {
        goto fail;
    }
    m->ram = ram;
    f->i8042 = i8042_new(&m->io_bus, &m->device_states, fuzz_reset_line, NULL, &err);
    f->rtc = f->i8042
                 ? rtc_new(&m->io_bus, &m->device_states,
                           &(RtcMachineInfo){ m->below_4g, m->above_4g, m->nr_vcpus },
                           &err)
                 : NULL;
    f->com1 = f->rtc
                  ? serial_new(&m->io_bus, serial_isa_base(0), irq, NULL, &m->lock, &err)
                  : NULL;
    if (!f->com1 || !device_state_register(&m->device_states, "serial0", 1, &com1_ops,
                                           f->com1, &err)) {
        goto fail;
    }
    fuzz_pc_pci_init(m);
    return;
fail:
    fprintf(stderr, "fuzz-migration: building the machine: %s\n", err->message);
    abort();
}

/* Power-on state: what the last input loaded is gone. */
static void machine_reset(FuzzMachine *f)
{
    Machine *m = &f->m;

    machine_lock(m);
    pci_pc_reset(m->pci);
    i8042_reset(f->i8042);
    serial_reset(f->com1);
    machine_unlock(m);
}

/*
 * Put right the checksum of every section that the stream holds whole (the
 * framing of migration-int.h).  Stops at the first section that does not
 * fit.
 */
static void fix_checksums(uint8_t *s, size_t size)
{
    size_t pos = 16;

    while (size - pos >= 3 && pos <= size) {
        uint16_t name_len = s[pos + 1] | s[pos + 2] << 8;
        size_t head = 3 + (size_t)name_len + 12;
        uint64_t len = 0, sum;

        if (size - pos < head) {
            return;
        }
        for (int i = 7; i >= 0; i--) {
            len = len << 8 | s[pos + head - 8 + i];
        }
        if (len > size - pos - head || size - pos - head - len < 8) {
            return;
        }
        sum = mig_hash(s + pos, head + len);
        for (int i = 0; i < 8; i++) {
            s[pos + head + len + i] = sum >> (8 * i);
        }
        pos += head + len + 8;
    }
}

void fuzz_target(const uint8_t *data, size_t size, FILE *report)
{
    static FuzzMachine f;
    static uint8_t *ram;
    static int fd = -1;
    IncomingLoad load;
    GError *err = NULL;
    uint8_t *copy;
    bool ok;

    if (!ram) {
        ram = mmap(NULL, FUZZ_RAM_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        fd = memfd_create("fuzz-migration", 0);
        if (ram == MAP_FAILED || fd < 0) {
            perror("fuzz-migration");
            abort();
        }
        machine_build(&f, ram);
    }
    if (size < 1) {
        if (report) {
            fprintf(report, "skipped: no mode byte");
        }
        return;
    }
    copy = g_memdup2(data + 1, size - 1);
    if (data[0] & 1) {
        fix_checksums(copy, size - 1);
    }
    if (ftruncate(fd, 0) < 0 || pwrite(fd, copy, size - 1, 0) != (ssize_t)size - 1 ||
        lseek(fd, 0, SEEK_SET) != 0) {
        abort();
    }
    g_free(copy);
    machine_reset(&f);
    incoming_load_init(&load, &f.m);
    ok = incoming_load_stream(&load, fd, &err) && incoming_load_check(&load, &err) &&
         incoming_load_apply_devices(&load, &err);
    if (report && ok) {
        fprintf(report, "ok: sections=%u ram_pages=%" G_GUINT64_FORMAT " arrives=%s",
                load.nr_sections, load.ram_pages, runstate_name(load.arrives));
    } else if (report) {
        fprintf(report, "refused: %.280s", err->message);
    }
    g_clear_error(&err);
    incoming_load_destroy(&load);
}
