/*
 * Direct Linux boot (boot protocol 2.12+, 64-bit entry): check the bzImage
 * header, place kernel, initrd and command line in guest RAM, build
 * boot_params with the e820 map, and start the BSP in long mode on an
 * identity map of the low 4 GiB.  The images are read once, before KVM,
 * and kept for every reload.  Runs on the main thread with vCPUs paused
 * (start and system_reset).
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "accel/kvm/kvm.h"
#include "hw/i386/pc.h"
#include "util/error.h"

/* Offsets in the setup header / boot_params (Documentation/x86/boot). */
#define HDR_SETUP_SECTS      0x1f1
#define HDR_SYSSIZE          0x1f4
#define HDR_BOOT_FLAG        0x1fe
#define HDR_JUMP             0x200
#define HDR_MAGIC            0x202
#define HDR_VERSION          0x206
#define HDR_TYPE_OF_LOADER   0x210
#define HDR_LOADFLAGS        0x211
#define HDR_CODE32_START     0x214
#define HDR_RAMDISK_IMAGE    0x218
#define HDR_RAMDISK_SIZE     0x21c
#define HDR_CMD_LINE_PTR     0x228
#define HDR_INITRD_ADDR_MAX  0x22c
#define HDR_KERNEL_ALIGNMENT 0x230
#define HDR_RELOCATABLE      0x234
#define HDR_XLOADFLAGS       0x236
#define HDR_CMDLINE_SIZE     0x238
#define HDR_PREF_ADDRESS     0x258
#define HDR_INIT_SIZE        0x260
#define BP_E820_ENTRIES      0x1e8
#define BP_E820_TABLE        0x2d0
#define BP_E820_MAX          128
#define BP_SIZE              0x1000

#define LOADED_HIGH   0x01
#define XLF_KERNEL_64 0x01

static uint16_t rd16(const uint8_t *p)
{
    return p[0] | (p[1] << 8);
}

static uint32_t rd32(const uint8_t *p)
{
    return rd16(p) | ((uint32_t)rd16(p + 2) << 16);
}

static uint64_t rd64(const uint8_t *p)
{
    return rd32(p) | ((uint64_t)rd32(p + 4) << 32);
}

static void wr16(uint8_t *p, uint16_t v)
{
    p[0] = v;
    p[1] = v >> 8;
}

static void wr32(uint8_t *p, uint32_t v)
{
    wr16(p, v);
    wr16(p + 2, v >> 16);
}

static void wr64(uint8_t *p, uint64_t v)
{
    wr32(p, v);
    wr32(p + 4, v >> 32);
}

bool bzimage_parse(const uint8_t *image, size_t size, BzImageInfo *info, GError **errp)
{
    uint64_t syssize_bytes;

    memset(info, 0, sizeof(*info));
    if (size < 1024) {
        error_setg(errp, "not a Linux bzImage: file is only %zu bytes", size);
        return false;
    }
    if (rd32(image + HDR_MAGIC) != 0x53726448 /* "HdrS" */) {
        error_setg(errp, "not a Linux bzImage: no 'HdrS' boot header");
        return false;
    }
    if (rd16(image + HDR_BOOT_FLAG) != 0xaa55) {
        error_setg(errp, "not a Linux bzImage: bad boot flag 0x%04x",
                   rd16(image + HDR_BOOT_FLAG));
        return false;
    }
    info->protocol = rd16(image + HDR_VERSION);
    if (info->protocol < 0x20c) {
        error_setg(errp,
                   "Linux boot protocol %u.%02u is too old: the 64-bit "
                   "entry needs 2.12 or later",
                   info->protocol >> 8, info->protocol & 0xff);
        return false;
    }
    info->setup_sects = image[HDR_SETUP_SECTS] ? image[HDR_SETUP_SECTS] : 4;
    info->loaded_high = image[HDR_LOADFLAGS] & LOADED_HIGH;
    info->kernel_64 = rd16(image + HDR_XLOADFLAGS) & XLF_KERNEL_64;
    info->relocatable = image[HDR_RELOCATABLE];
    info->initrd_addr_max = rd32(image + HDR_INITRD_ADDR_MAX);
    info->cmdline_size = rd32(image + HDR_CMDLINE_SIZE);
    info->pref_address = rd64(image + HDR_PREF_ADDRESS);
    info->init_size = rd32(image + HDR_INIT_SIZE);
    if (!info->loaded_high) {
        error_setg(errp, "not a bzImage: a zImage (loaded below 1 MiB) is not "
                         "supported");
        return false;
    }
    if (!info->kernel_64) {
        error_setg(errp, "kernel has no 64-bit entry point (XLF_KERNEL_64)");
        return false;
    }
    info->payload_offset = (uint64_t)(info->setup_sects + 1) * 512;
    if (info->payload_offset >= size) {
        error_setg(errp,
                   "truncated bzImage: %u setup sectors run past the "
                   "end of the %zu-byte file",
                   info->setup_sects, size);
        return false;
    }
    info->payload_size = size - info->payload_offset;
    syssize_bytes = (uint64_t)rd32(image + HDR_SYSSIZE) * 16;
    /* syssize counts 16-byte paragraphs, so the last one may be partial */
    if (syssize_bytes > info->payload_size + 15) {
        error_setg(errp,
                   "truncated bzImage: the header promises %" G_GUINT64_FORMAT
                   " bytes of kernel, the file holds %" G_GUINT64_FORMAT,
                   syssize_bytes, info->payload_size);
        return false;
    }
    if (info->init_size < info->payload_size) {
        info->init_size = info->payload_size;
    }
    return true;
}

/* Where the protected-mode kernel goes. */
static uint64_t kernel_load_addr(const BzImageInfo *info)
{
    if (info->relocatable && info->pref_address >= KERNEL_LOAD_ADDR) {
        return info->pref_address;
    }
    return KERNEL_LOAD_ADDR;
}

struct LinuxBoot {
    char *kernel, *initrd, *append; /* the paths and -append (NULL: none) */
    uint64_t ram_below_4g;          /* where kernel and initrd must end */
    GBytes *kernel_image;           /* the files' contents */
    GBytes *initrd_image;           /* NULL without -initrd */
};

static bool load_files(LinuxBoot *lb, GError **errp)
{
    gchar *data = NULL;
    gsize len = 0;
    GError *err = NULL;

    if (!lb->kernel_image) {
        if (!g_file_get_contents(lb->kernel, &data, &len, &err)) {
            error_setg(errp, "-kernel %s: could not read the kernel: %s", lb->kernel,
                       err->message);
            g_error_free(err);
            return false;
        }
        lb->kernel_image = g_bytes_new_take(data, len);
    }
    if (lb->initrd && !lb->initrd_image) {
        if (!g_file_get_contents(lb->initrd, &data, &len, &err)) {
            error_setg(errp, "-initrd %s: could not read the initial ram disk: %s",
                       lb->initrd, err->message);
            g_error_free(err);
            return false;
        }
        lb->initrd_image = g_bytes_new_take(data, len);
    }
    return true;
}

static void write_boot_page_tables(const GuestMemory *mem)
{
    uint64_t *pml4 = guest_memory_hva(mem, BOOT_PML4_ADDR, 4096);
    uint64_t *pdpt = guest_memory_hva(mem, BOOT_PDPT_ADDR, 4096);
    uint64_t *pd = guest_memory_hva(mem, BOOT_PD_ADDR, 4 * 4096);
    uint64_t *gdt = guest_memory_hva(mem, BOOT_GDT_ADDR, 4 * 8);

    memset(pml4, 0, 4096);
    memset(pdpt, 0, 4096);
    pml4[0] = BOOT_PDPT_ADDR | 0x3; /* present, writable */
    for (int i = 0; i < 4; i++) {
        pdpt[i] = (BOOT_PD_ADDR + i * 4096) | 0x3;
    }
    for (int i = 0; i < 4 * 512; i++) {
        pd[i] = ((uint64_t)i << 21) | 0x83; /* present, writable, 2 MiB */
    }
    gdt[0] = 0;
    gdt[1] = 0;
    gdt[2] = 0x00af9b000000ffffULL; /* 0x10: 64-bit code */
    gdt[3] = 0x00cf93000000ffffULL; /* 0x18: data */
}

static void write_boot_params(const GuestMemory *mem, const E820Entry *e820,
                              unsigned nr_e820, const uint8_t *image, uint64_t load,
                              uint64_t initrd_addr, uint64_t initrd_size,
                              size_t cmdline_len)
{
    uint8_t *bp = guest_memory_hva(mem, BOOT_PARAMS_ADDR, BP_SIZE);
    size_t hdr_end = 0x202 + image[HDR_JUMP + 1];

    memset(bp, 0, BP_SIZE);
    if (hdr_end > BP_SIZE || hdr_end < HDR_INIT_SIZE + 4) {
        hdr_end = HDR_INIT_SIZE + 4;
    }
    memcpy(bp + HDR_SETUP_SECTS, image + HDR_SETUP_SECTS, hdr_end - HDR_SETUP_SECTS);
    bp[HDR_TYPE_OF_LOADER] = 0xff;
    wr32(bp + HDR_CODE32_START, load);
    wr32(bp + HDR_CMD_LINE_PTR, cmdline_len ? BOOT_CMDLINE_ADDR : 0);
    wr32(bp + HDR_RAMDISK_IMAGE, initrd_addr);
    wr32(bp + HDR_RAMDISK_SIZE, initrd_size);
    bp[BP_E820_ENTRIES] = nr_e820;
    for (unsigned i = 0; i < nr_e820 && i < BP_E820_MAX; i++) {
        uint8_t *e = bp + BP_E820_TABLE + i * 20;
        wr64(e, e820[i].addr);
        wr64(e + 8, e820[i].size);
        wr32(e + 16, e820[i].type);
    }
}

/* Where everything goes, worked out from the files and the memory plan. */
typedef struct LinuxBootPlan {
    const uint8_t *image;
    BzImageInfo info;
    const char *append;
    size_t cmdline_len;
    uint64_t load, end, initrd_addr, initrd_size;
} LinuxBootPlan;

static bool linux_boot_plan(LinuxBoot *lb, LinuxBootPlan *p, GError **errp)
{
    uint64_t below_4g = lb->ram_below_4g;
    size_t size;
    GError *err = NULL;
    uint32_t cmdline_max;

    memset(p, 0, sizeof(*p));
    if (!load_files(lb, errp)) {
        return false;
    }
    p->image = g_bytes_get_data(lb->kernel_image, &size);
    if (!bzimage_parse(p->image, size, &p->info, &err)) {
        error_setg(errp, "-kernel %s: %s", lb->kernel, err->message);
        g_error_free(err);
        return false;
    }
    p->append = lb->append ? lb->append : "";
    p->cmdline_len = strlen(p->append);
    p->load = kernel_load_addr(&p->info);
    p->end = p->load + p->info.init_size;
    if (p->end > below_4g) {
        error_setg(errp,
                   "-kernel %s: the kernel needs RAM up to 0x%" G_GINT64_MODIFIER
                   "x, the guest has 0x%" G_GINT64_MODIFIER "x",
                   lb->kernel, p->end, below_4g);
        return false;
    }
    cmdline_max = p->info.cmdline_size ? p->info.cmdline_size : 255;
    if (p->cmdline_len > cmdline_max || p->cmdline_len >= BOOT_CMDLINE_MAX) {
        error_setg(errp,
                   "-append: kernel command line is %zu bytes, the "
                   "kernel takes at most %u",
                   p->cmdline_len, cmdline_max);
        return false;
    }
    if (lb->initrd_image) {
        uint64_t top = MIN((uint64_t)p->info.initrd_addr_max + 1, below_4g);

        p->initrd_size = g_bytes_get_size(lb->initrd_image);
        p->initrd_addr = p->initrd_size <= top ? (top - p->initrd_size) & ~0xfffULL : 0;
        if (p->initrd_size > top || p->initrd_addr < p->end) {
            error_setg(errp,
                       "-initrd %s: the initial ram disk (%" G_GUINT64_FORMAT
                       " bytes) does not fit in guest RAM beside the kernel",
                       lb->initrd, p->initrd_size);
            return false;
        }
    }
    return true;
}

LinuxBoot *linux_boot_prepare(const char *kernel, const char *initrd, const char *append,
                              uint64_t ram_below_4g, GError **errp)
{
    LinuxBoot *lb = g_new0(LinuxBoot, 1);
    LinuxBootPlan plan;

    lb->kernel = g_strdup(kernel);
    lb->initrd = g_strdup(initrd);
    lb->append = g_strdup(append);
    lb->ram_below_4g = ram_below_4g;
    if (!linux_boot_plan(lb, &plan, errp)) {
        linux_boot_free(lb);
        return NULL;
    }
    return lb;
}

void linux_boot_free(LinuxBoot *lb)
{
    if (!lb) {
        return;
    }
    if (lb->kernel_image) {
        g_bytes_unref(lb->kernel_image);
    }
    if (lb->initrd_image) {
        g_bytes_unref(lb->initrd_image);
    }
    g_free(lb->kernel);
    g_free(lb->initrd);
    g_free(lb->append);
    g_free(lb);
}

bool linux_boot_load(LinuxBoot *lb, const GuestMemory *mem, const E820Entry *e820,
                     unsigned nr_e820, GError **errp)
{
    LinuxBootPlan p;

    if (!linux_boot_plan(lb, &p, errp)) {
        return false;
    }
    if (!guest_memory_hva(mem, p.load, p.info.init_size)) {
        error_setg(errp, "-kernel %s: the kernel does not fit in guest RAM", lb->kernel);
        return false;
    }
    if (p.initrd_size) {
        memcpy(guest_memory_hva(mem, p.initrd_addr, p.initrd_size),
               g_bytes_get_data(lb->initrd_image, NULL), p.initrd_size);
    }
    memcpy(guest_memory_hva(mem, p.load, p.info.payload_size),
           p.image + p.info.payload_offset, p.info.payload_size);
    memcpy(guest_memory_hva(mem, BOOT_CMDLINE_ADDR, p.cmdline_len + 1), p.append,
           p.cmdline_len + 1);
    write_boot_page_tables(mem);
    write_boot_params(mem, e820, nr_e820, p.image, p.load, p.initrd_addr, p.initrd_size,
                      p.cmdline_len + 1);
    return true;
}

static void set_segment(struct kvm_segment *seg, uint16_t selector, uint8_t type,
                        bool code64)
{
    *seg = (struct kvm_segment){
        .base = 0,
        .limit = 0xffffffff,
        .selector = selector,
        .type = type,
        .present = 1,
        .dpl = 0,
        .db = code64 ? 0 : 1,
        .s = 1,
        .l = code64,
        .g = 1,
    };
}

bool linux_boot_setup_bsp(LinuxBoot *lb, VCpu *bsp, GError **errp)
{
    const uint8_t *image = g_bytes_get_data(lb->kernel_image, NULL);
    struct kvm_sregs sregs;
    struct kvm_regs regs = { 0 };
    BzImageInfo info;

    if (!bzimage_parse(image, g_bytes_get_size(lb->kernel_image), &info, errp)) {
        return false;
    }
    if (ioctl(bsp->fd, KVM_GET_SREGS, &sregs) < 0) {
        error_setg_errno(errp, errno, "KVM_GET_SREGS failed");
        return false;
    }
    set_segment(&sregs.cs, 0x10, 0xb, true);
    set_segment(&sregs.ds, 0x18, 0x3, false);
    sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
    sregs.gdt.base = BOOT_GDT_ADDR;
    sregs.gdt.limit = 4 * 8 - 1;
    sregs.cr0 = 0x80000011; /* PG | ET | PE */
    sregs.cr3 = BOOT_PML4_ADDR;
    sregs.cr4 = 0x20;   /* PAE */
    sregs.efer = 0x500; /* LMA | LME */
    regs.rflags = 0x2;
    regs.rip = kernel_load_addr(&info) + 0x200;
    regs.rsi = BOOT_PARAMS_ADDR;
    regs.rsp = BOOT_PARAMS_ADDR;
    if (ioctl(bsp->fd, KVM_SET_SREGS, &sregs) < 0 ||
        ioctl(bsp->fd, KVM_SET_REGS, &regs) < 0) {
        error_setg_errno(errp, errno, "setting up the boot vCPU failed");
        return false;
    }
    return true;
}
