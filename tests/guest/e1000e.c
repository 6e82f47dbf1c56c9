/* e1000e.c: the `vfio-e1000e`, `vfio-e1000e-msi` and `vfio-hostile` scenarios, a minimal
 * driver for an Intel 82574L (8086:10d3, the e1000e QEMU emulates, and the
 * NIC the rig passes through with vfio-pci). `vfio-e1000e` raises each MSI-X
 * cause through the Interrupt Cause Set register and sees it arrive on the
 * vector IVAR routes it to, then loops a frame through the PHY (MII control
 * bit 14) by DMA from and to guest RAM and compares it. `vfio-hostile` hands
 * the device DMA addresses outside guest RAM and garbage MSI-X table entries
 * and only checks that the guest lives on. `vfio-e1000e-msi` raises causes
 * with MSI (one message) instead of MSI-X.
 *
 * Ring 3, BSP only, polled; interrupts are counted by e1000e_irq_entries
 * (entry.S) into e1000e_irqs. Register facts: the 82574 datasheet (section
 * 10) and QEMU's hw/net/e1000e_core.c, which is what both VMMs reach here. */
#include "virtio.h"

/* Device registers (byte offsets into BAR0). */
#define REG_CTRL     0x00000
#define REG_STATUS   0x00008
#define REG_CTRL_EXT 0x00018
#define REG_MDIC     0x00020
#define REG_ICR      0x000C0
#define REG_ITR      0x000C4
#define REG_ICS      0x000C8
#define REG_IMS      0x000D0
#define REG_IMC      0x000D8
#define REG_EIAC     0x000DC
#define REG_IAM      0x000E0
#define REG_IVAR     0x000E4
#define REG_EITR0    0x000E8 /* EITR of vector n: REG_EITR0 + 4 * n */
#define REG_RCTL     0x00100
#define REG_TCTL     0x00400
#define REG_RDBAL    0x02800
#define REG_RDBAH    0x02804
#define REG_RDLEN    0x02808
#define REG_RDH      0x02810
#define REG_RDT      0x02818
#define REG_RDTR     0x02820
#define REG_RADV     0x0282C
#define REG_TDBAL    0x03800
#define REG_TDBAH    0x03804
#define REG_TDLEN    0x03808
#define REG_TDH      0x03810
#define REG_TDT      0x03818
#define REG_TARC0    0x03840
#define REG_RFCTL    0x05008
#define REG_RAL0     0x05400
#define REG_RAH0     0x05404
#define REG_MRQC     0x05818

#define CTRL_FD              (1u << 0)
#define CTRL_SLU             (1u << 6)
#define CTRL_SPEED_1000      (2u << 8)
#define CTRL_FRCSPD          (1u << 11)
#define CTRL_FRCDPX          (1u << 12)
#define CTRL_RST             (1u << 26)
#define CTRL_VME             (1u << 30)
#define STATUS_LU            (1u << 1)
#define CTRL_EXT_EIAME       (1u << 24) /* IAM bits auto-cleared as messages go */
#define CTRL_EXT_IAME        (1u << 27) /* IMS bits kept when EIAC clears ICR */
#define CTRL_EXT_TIMERS_CLR  (1u << 29) /* an IMS write of all causes fires the timers */
#define CTRL_EXT_PBA_SUPPORT (1u << 31) /* MSI-X pending bits cleared with IMS */

/* Interrupt causes (ICR/ICS/IMS/IMC/EIAC) that have an IVAR field in MSI-X
 * mode, and the IVAR layout: one 4-bit field each, vector in bits 0-2, bit 3
 * valid. */
#define CAUSE_RXQ0  (1u << 20)
#define CAUSE_RXQ1  (1u << 21)
#define CAUSE_TXQ0  (1u << 22)
#define CAUSE_TXQ1  (1u << 23)
#define CAUSE_OTHER (1u << 24)
#define CAUSES_MSIX 0x01F00000u
#define IVAR_VALID  8u

/* MDIC: PHY registers through the MAC. The 82574's PHY is at address 1. */
#define MDIC_REG_SHIFT    16
#define MDIC_PHY1         (1u << 21)
#define MDIC_OP_WRITE     (1u << 26)
#define MDIC_OP_READ      (2u << 26)
#define MDIC_READY        (1u << 28)
#define MDIC_ERROR        (1u << 30)
#define PHY_BMCR          0
#define BMCR_LOOPBACK     (1u << 14)
#define BMCR_LOOP_1000_FD 0x4140 /* loopback, 1000 Mb/s, full duplex, no autoneg */

#define RCTL_EN     (1u << 1)
#define RCTL_UPE    (1u << 3)
#define RCTL_MPE    (1u << 4)
#define RCTL_BAM    (1u << 15)
#define RCTL_SECRC  (1u << 26) /* strip the FCS: the length is the frame's */
#define TCTL_EN     (1u << 1)
#define TCTL_PSP    (1u << 3)
#define TCTL_CT     (0x0Fu << 4)
#define TCTL_COLD   (0x3Fu << 12)
#define TARC_ENABLE (1u << 10)

/* Legacy descriptors, 16 bytes each. */
#define TXD_CMD_EOP  0x01
#define TXD_CMD_IFCS 0x02
#define TXD_CMD_RS   0x08
#define TXD_STAT_DD  0x01
#define RXD_STAT_DD  0x01
#define RXD_STAT_EOP 0x02

typedef struct TxDesc {
    u64 addr;
    u16 length;
    u8 cso, cmd;
    volatile u8 status;
    u8 css;
    u16 special;
} TxDesc;

typedef struct RxDesc {
    u64 addr;
    volatile u16 length;
    u16 csum;
    volatile u8 status;
    volatile u8 errors;
    u16 special;
} RxDesc;

_Static_assert(sizeof(TxDesc) == 16 && sizeof(RxDesc) == 16, "legacy descriptors");

#define RING      8               /* descriptors per ring: TDLEN/RDLEN 128 bytes */
#define BUF       2048            /* RCTL.BSIZE 0 */
#define FRAME     1000            /* the looped-back frame, FCS not counted */
#define NVEC      5               /* MSI-X vectors the 82574 has, one per IVAR field */
#define ETHERTYPE 0x88B5          /* IEEE local experimental */
#define FAR_AWAY  0x10000000000UL /* 1 TiB: no guest here has RAM there */

typedef struct E1000e {
    u32 bdf;
    PciBar bars[6];
    volatile u8 *regs;
    volatile u32 *msix_table;
    u32 msix_cap, msix_size;
    u32 table_bir, table_off, pba_bir, pba_off;
    TxDesc *tx;
    RxDesc *rx;
    u8 *txbuf, *rxbuf; /* 1 and RING buffers of BUF bytes */
    u32 tx_tail;
    u8 mac[6];
} E1000e;

static E1000e nic;
volatile u64
    e1000e_irqs[E1000E_IRQ_STUBS]; /* per stub: NVEC vectors, then the stray one */

static const char *const cause_names[NVEC] = { "rxq0", "rxq1", "txq0", "txq1", "other" };

static u32 rd32(const E1000e *n, u32 reg)
{
    return *(volatile u32 *)(n->regs + reg);
}

static void wr32(const E1000e *n, u32 reg, u32 value)
{
    *(volatile u32 *)(n->regs + reg) = value;
}

static u64 ms_ticks(u64 ms)
{
    return ms * boot_info.tsc_khz;
}

/* Waits up to ms for *counter to move past before; 1 if it did. */
static int wait_count(volatile u64 *counter, u64 before, u64 ms)
{
    u64 start = rdtsc();

    while (*counter == before) {
        if (rdtsc() - start > ms_ticks(ms)) {
            return 0;
        }
        cpu_relax();
    }
    return 1;
}

/* Waits up to ms for (*byte & mask); 1 if it came. */
/* How long a frame may take through the device and back: generous, since in
 * the nested rig the device is emulated by TCG two levels down, on a loaded
 * host (1 s was once not enough there; the frame came a moment later). */
#define DMA_WAIT_MS 10000u

static int wait_bits(volatile u8 *byte, u8 mask, u64 ms)
{
    u64 start = rdtsc();

    while (!(*byte & mask)) {
        if (rdtsc() - start > ms_ticks(ms)) {
            return 0;
        }
        cpu_relax();
    }
    return 1;
}

/* One PHY register access through MDIC: 0 and *value, or -1 (no READY
 * within 100 ms, or ERROR). */
static int mdic(const E1000e *n, u32 op, u32 reg, u16 *value)
{
    wr32(n, REG_MDIC,
         op | MDIC_PHY1 | reg << MDIC_REG_SHIFT | (op == MDIC_OP_WRITE ? *value : 0));
    u64 start = rdtsc();
    u32 v;
    while (!((v = rd32(n, REG_MDIC)) & MDIC_READY)) {
        if (rdtsc() - start > ms_ticks(100)) {
            return -1;
        }
        cpu_relax();
    }
    if (v & MDIC_ERROR) {
        return -1;
    }
    *value = (u16)v;
    return 0;
}

static void bdf_text(u32 bdf, char *out)
{
    snformat(out, 8, "%x%x:%x%x.%x", bdf >> 12 & 0xF, bdf >> 8 & 0xF, bdf >> 7 & 1,
             bdf >> 3 & 0xF, bdf & 7);
}

/* The MSI-X capability: where the table and the PBA are. */
static const char *msix_find(E1000e *n)
{
    n->msix_cap = pci_find_cap(n->bdf, PCI_CAP_MSIX, 0);
    if (!n->msix_cap) {
        return "no MSI-X capability";
    }
    n->msix_size = (pci_read(n->bdf, n->msix_cap + 2, 2) & 0x7FF) + 1;
    u32 table = pci_read(n->bdf, n->msix_cap + 4, 4);
    u32 pba = pci_read(n->bdf, n->msix_cap + 8, 4);
    n->table_bir = table & 7;
    n->table_off = table & ~7u;
    n->pba_bir = pba & 7;
    n->pba_off = pba & ~7u;
    if (n->msix_size < NVEC) {
        return "MSI-X table has fewer than 5 entries";
    }
    const PciBar *bar = &n->bars[n->table_bir];
    if (n->table_bir > 5 || bar->io || !bar->size ||
        (u64)n->table_off + 16 * n->msix_size > bar->size) {
        return "MSI-X table is not inside a memory BAR";
    }
    n->msix_table = phys(bar->addr + n->table_off);
    return NULL;
}

/* Entry i -> the BSP at VEC_E1000E + i, unmasked; MSI-X on, function unmasked. */
static void msix_program(E1000e *n)
{
    u32 ctrl = pci_read(n->bdf, n->msix_cap + 2, 2);

    pci_write(n->bdf, n->msix_cap + 2, 2, (ctrl | 0x4000) & ~0x8000); /* masked, off */
    for (u32 i = 0; i < NVEC; i++) {
        volatile u32 *e = n->msix_table + 4 * i;
        e[0] = LAPIC_BASE | boot_info.apic_ids[0] << 12;
        e[1] = 0;
        e[2] = VEC_E1000E + i;
        e[3] = 0;
    }
    pci_write(n->bdf, n->msix_cap + 2, 2, (ctrl | 0x8000) & ~0x4000);
}

/* Finds the first 8086:10d3 on bus 0, places and enables its BARs and bus
 * mastering, finds its MSI-X table. NULL, or what is wrong (*absent set when
 * there is no such device). */
static const char *nic_find(E1000e *n, int *absent)
{
    static const u16 ids[] = { 0x10D3 };
    u32 bdfs[1];
    char where[8];

    *absent = 0;
    if (!pci_find(0x8086, ids, 1, bdfs, 1)) {
        *absent = 1;
        return "no 8086:10d3 on PCI bus 0";
    }
    n->bdf = bdfs[0];
    if (pci_enable(n->bdf, n->bars) < 0) {
        return "no room for its BARs in 0xE0000000-0xFEC00000";
    }
    if (n->bars[0].io || n->bars[0].size < 0x20000) {
        return "BAR0 is not a 128 KiB memory BAR";
    }
    n->regs = phys(n->bars[0].addr);
    const char *err = msix_find(n);
    if (err) {
        return err;
    }
    bdf_text(n->bdf, where);
    uprintf("vfio device %s 8086:10d3 bar0=0x%lx msix=%u table=bar%u+0x%x pba=bar%u+0x%x "
            "bars=%s",
            where, n->bars[0].addr, n->msix_size, n->table_bir, n->table_off, n->pba_bir,
            n->pba_off, n->bars[0].assigned_by_testos ? "testos" : "firmware");
    return NULL;
}

/* One line with what an earlier driver of the NIC left in the registers
 * this driver relies on (before nic_reset): what to look at when a
 * scenario fails only after some other user of the same NIC. */
static void nic_state_print(const E1000e *n)
{
    u16 bmcr = 0;

    if (mdic(n, MDIC_OP_READ, PHY_BMCR, &bmcr) < 0) {
        bmcr = 0xFFFF;
    }
    uprintf("vfio found ctrl=0x%x ctrl_ext=0x%x ims=0x%x iam=0x%x eiac=0x%x ivar=0x%x "
            "eitr=%u,%u,%u,%u,%u rctl=0x%x rfctl=0x%x mrqc=0x%x tctl=0x%x bmcr=0x%x",
            rd32(n, REG_CTRL), rd32(n, REG_CTRL_EXT), rd32(n, REG_IMS), rd32(n, REG_IAM),
            rd32(n, REG_EIAC), rd32(n, REG_IVAR), rd32(n, REG_EITR0),
            rd32(n, REG_EITR0 + 4), rd32(n, REG_EITR0 + 8), rd32(n, REG_EITR0 + 12),
            rd32(n, REG_EITR0 + 16), rd32(n, REG_RCTL), rd32(n, REG_RFCTL),
            rd32(n, REG_MRQC), rd32(n, REG_TCTL), bmcr);
}

/* Software reset, interrupts masked and cleared, receive and transmit off,
 * legacy receive descriptors on one queue, link up within 3 s.
 *
 * CTRL.RST alone does not give a known state on every device that claims
 * to be an 82574: QEMU 7.2's e1000e (the NIC the rig passes through) only
 * reloads the MAC address on it, and the reset the host's vfio-pci does
 * when the device is opened (a PM D3hot-D0 cycle there, it has no FLR)
 * changes nothing in it. So what an earlier driver programmed stays; Linux's
 * e1000e leaves extended receive descriptors (RFCTL.EXTEN: the DD bit is
 * not where a legacy descriptor has it), RSS (MRQC), interrupt auto-masking
 * (CTRL_EXT, IAM), its own IVAR and interrupt throttling. Every register
 * this driver relies on is therefore written here or in irq_route. */
static const char *nic_reset(E1000e *n)
{
    nic_state_print(n);
    wr32(n, REG_IMC, 0xFFFFFFFF);
    wr32(n, REG_CTRL, rd32(n, REG_CTRL) | CTRL_RST);
    delay_us(20000); /* the 82574 needs about 1 us; Linux waits 20 ms */
    u64 start = rdtsc();
    while (rd32(n, REG_CTRL) & CTRL_RST) {
        if (rdtsc() - start > ms_ticks(1000)) {
            return "CTRL.RST did not clear within 1 s";
        }
        cpu_relax();
    }
    wr32(n, REG_IMC, 0xFFFFFFFF);
    (void)rd32(n, REG_ICR); /* with every cause masked, the read clears them all */
    wr32(n, REG_RCTL, 0);
    wr32(n, REG_TCTL, 0);
    wr32(n, REG_CTRL, rd32(n, REG_CTRL) & ~CTRL_VME);
    wr32(n, REG_RFCTL, 0); /* legacy receive descriptors */
    wr32(n, REG_MRQC, 0);  /* no RSS: every frame to queue 0 */
    wr32(n, REG_RDTR, 0);  /* no receive interrupt delay */
    wr32(n, REG_RADV, 0);
    start = rdtsc();
    while (!(rd32(n, REG_STATUS) & STATUS_LU)) {
        if (rdtsc() - start > ms_ticks(3000)) {
            return "link not up within 3 s of the reset";
        }
        cpu_relax();
    }
    u32 ral = rd32(n, REG_RAL0), rah = rd32(n, REG_RAH0);
    for (u32 i = 0; i < 4; i++) {
        n->mac[i] = (u8)(ral >> 8 * i);
    }
    n->mac[4] = (u8)rah;
    n->mac[5] = (u8)(rah >> 8);
    return NULL;
}

/* IVAR: rxq0, rxq1, txq0, txq1, other -> vectors 0..4; EIAC clears each
 * cause in ICR once its message is sent (so the next ICS of it sends again);
 * no auto-masking (IAM, CTRL_EXT.EIAME/IAME); throttling as low as the
 * device allows (QEMU's e1000e keeps every EITR at 500 or more: 128 us). */
static void irq_route(const E1000e *n)
{
    u32 ivar = 0;

    for (u32 i = 0; i < NVEC; i++) {
        ivar |= (IVAR_VALID | i) << 4 * i;
        wr32(n, REG_EITR0 + 4 * i, 0);
    }
    wr32(n, REG_ITR, 0);
    wr32(n, REG_CTRL_EXT,
         (rd32(n, REG_CTRL_EXT) &
          ~(CTRL_EXT_EIAME | CTRL_EXT_IAME | CTRL_EXT_TIMERS_CLR)) |
             CTRL_EXT_PBA_SUPPORT);
    wr32(n, REG_IAM, 0);
    wr32(n, REG_IVAR, ivar);
    wr32(n, REG_EIAC, CAUSES_MSIX);
}

/* The pending bits of the first 32 MSI-X vectors. */
static u32 msix_pba(const E1000e *n)
{
    const PciBar *bar = &n->bars[n->pba_bir];

    if (n->pba_bir > 5 || bar->io || !bar->size || n->pba_off + 4 > bar->size) {
        return 0;
    }
    return *(volatile u32 *)phys(bar->addr + n->pba_off);
}

/* How long after a cause's first message another one may still come: past
 * the longest throttling interval an 82574 has (EITR 0xFFFF: 16.8 ms). */
#define IRQ_SETTLE_US 50000u

/* Each cause through ICS: its vector (and no other) arrives within 1 s.
 *
 * Its vector may get the message twice: QEMU 7.2's e1000e, once a vector
 * had a message held back by its throttling timer (two causes on it within
 * 128 us, as under a Linux driver's traffic), sends that vector again at
 * the end of every later throttling interval, and nothing short of
 * restarting QEMU clears that (its eitr_intr_pending). The device sends the
 * second message, so it is said on a line of its own and not counted as
 * the VMM's fault; a third, or any message on another vector, is. A fresh
 * device (testos under Debian's QEMU) sends each exactly once. */
static int irq_test(E1000e *n)
{
    u64 before[E1000E_IRQ_STUBS];

    for (u32 v = 0; v < NVEC; v++) {
        u32 cause = CAUSE_RXQ0 << v;
        for (u32 i = 0; i < E1000E_IRQ_STUBS; i++) {
            before[i] = e1000e_irqs[i];
        }
        wr32(n, REG_IMS, cause);
        wr32(n, REG_ICS, cause);
        int arrived = wait_count(&e1000e_irqs[v], before[v], 1000);
        u32 ims = rd32(n, REG_IMS), pba = msix_pba(n);
        wr32(n, REG_IMC, cause);
        if (!arrived) {
            uprintf(
                "vfio irq FAILED: cause %s (ICS 0x%x) did not arrive on MSI-X vector %u "
                "(IDT 0x%x) within 1 s; IMS=0x%x PBA=0x%x",
                cause_names[v], cause, v, VEC_E1000E + v, ims, pba);
            return 0;
        }
        delay_us(IRQ_SETTLE_US); /* a repeated or misrouted message lands by now */
        for (u32 i = 0; i < E1000E_IRQ_STUBS; i++) {
            u64 got = e1000e_irqs[i] - before[i];
            if (i == v && got == 2) {
                uprintf("vfio irq repeated: cause %s gave 2 interrupts on its vector %u "
                        "(the device's throttling timer sent it again)",
                        cause_names[v], v);
                continue;
            }
            if (got != (i == v)) {
                uprintf("vfio irq FAILED: cause %s (vector %u) gave %lu interrupt(s) on "
                        "IDT 0x%x",
                        cause_names[v], v, got, VEC_E1000E + i);
                return 0;
            }
        }
    }
    uprintf("vfio irq ok");
    return 1;
}

/* PHY loopback (BMCR bit 14, speed and duplex forced as the MAC is). */
static const char *phy_loopback(const E1000e *n, int on)
{
    u16 bmcr = on ? BMCR_LOOP_1000_FD : 0x1140; /* off: autoneg, 1000 FD again */

    if (on) {
        wr32(n, REG_CTRL,
             (rd32(n, REG_CTRL) & ~(3u << 8)) | CTRL_FRCSPD | CTRL_FRCDPX |
                 CTRL_SPEED_1000 | CTRL_FD | CTRL_SLU);
    }
    if (mdic(n, MDIC_OP_WRITE, PHY_BMCR, &bmcr) < 0) {
        return "MDIC write of the PHY's BMCR failed";
    }
    if (mdic(n, MDIC_OP_READ, PHY_BMCR, &bmcr) < 0) {
        return "MDIC read of the PHY's BMCR failed";
    }
    if (on && !(bmcr & BMCR_LOOPBACK)) {
        return "the PHY's BMCR does not keep the loopback bit";
    }
    return NULL;
}

/* Both rings in guest RAM, RX buffers posted (rx_at: where RX buffer i
 * points, NULL: the buffers in RAM), receive and transmit enabled. */
static const char *rings_setup(E1000e *n, const u64 *rx_at)
{
    if (!n->tx) {
        n->tx = dma_alloc(4096, 4096);
        n->rx = dma_alloc(4096, 4096);
        n->txbuf = dma_alloc(BUF, 4096);
        n->rxbuf = dma_alloc((u64)RING * BUF, 4096);
        if (!n->tx || !n->rx || !n->txbuf || !n->rxbuf) {
            return "DMA pool too small";
        }
    }
    wr32(n, REG_RCTL, 0);
    wr32(n, REG_TCTL, 0);
    memset(n->tx, 0, RING * sizeof(TxDesc));
    memset(n->rx, 0, RING * sizeof(RxDesc));
    for (u32 i = 0; i < RING; i++) {
        n->rx[i].addr = rx_at ? rx_at[i] : (u64)(n->rxbuf + (u64)i * BUF);
    }
    wr32(n, REG_RDBAL, (u32)(u64)n->rx);
    wr32(n, REG_RDBAH, (u32)((u64)n->rx >> 32));
    wr32(n, REG_RDLEN, RING * sizeof(RxDesc));
    wr32(n, REG_RDH, 0);
    wr32(n, REG_RDT, 0);
    wr32(n, REG_TDBAL, (u32)(u64)n->tx);
    wr32(n, REG_TDBAH, (u32)((u64)n->tx >> 32));
    wr32(n, REG_TDLEN, RING * sizeof(TxDesc));
    wr32(n, REG_TDH, 0);
    wr32(n, REG_TDT, 0);
    n->tx_tail = 0;
    wr32(n, REG_TARC0, rd32(n, REG_TARC0) | TARC_ENABLE);
    wr32(n, REG_RCTL, RCTL_EN | RCTL_UPE | RCTL_MPE | RCTL_BAM | RCTL_SECRC);
    wr32(n, REG_RDT, RING - 1);
    wr32(n, REG_TCTL, TCTL_EN | TCTL_PSP | TCTL_CT | TCTL_COLD);
    return NULL;
}

/* A broadcast frame of FRAME bytes from our MAC, payload pattern by seed. */
static void frame_build(const E1000e *n, u8 *f, u32 seed)
{
    memset(f, 0xFF, 6);
    memcpy(f + 6, n->mac, 6);
    f[12] = ETHERTYPE >> 8;
    f[13] = ETHERTYPE & 0xFF;
    for (u32 i = 14; i < FRAME; i++) {
        f[i] = (u8)(i * 7 + seed);
    }
}

/* Queues one frame of len bytes at addr (any address: hostile cases). */
static volatile TxDesc *tx_post(E1000e *n, u64 addr, u16 len)
{
    TxDesc *d = &n->tx[n->tx_tail];

    d->addr = addr;
    d->length = len;
    d->cso = d->css = 0;
    d->special = 0;
    d->status = 0;
    d->cmd = TXD_CMD_EOP | TXD_CMD_IFCS | TXD_CMD_RS;
    n->tx_tail = (n->tx_tail + 1) % RING;
    __asm__ volatile("mfence" ::: "memory"); /* the descriptor before the tail */
    wr32(n, REG_TDT, n->tx_tail);
    return d;
}

static int dma_test(E1000e *n)
{
    const char *err = phy_loopback(n, 1);

    if (err || (err = rings_setup(n, NULL))) {
        uprintf("vfio dma FAILED: %s", err);
        return 0;
    }
    u64 rx0 = e1000e_irqs[0], tx0 = e1000e_irqs[2];
    wr32(n, REG_IMS, CAUSE_RXQ0 | CAUSE_TXQ0);
    frame_build(n, n->txbuf, 0x5A);
    memset(n->rxbuf, 0, BUF);
    volatile TxDesc *t = tx_post(n, (u64)n->txbuf, FRAME);
    int sent = wait_bits(&t->status, TXD_STAT_DD, DMA_WAIT_MS);
    int got = wait_bits(&n->rx[0].status, RXD_STAT_DD, DMA_WAIT_MS);
    delay_us(1000); /* the completion interrupts, if any */
    wr32(n, REG_IMC, 0xFFFFFFFF);
    u32 tdh = rd32(n, REG_TDH), rdh = rd32(n, REG_RDH);
    uprintf(
        "vfio dma frame=%u tx_done=%s rx_done=%s tdh=%u rdh=%u rx_irqs=%lu tx_irqs=%lu",
        FRAME, sent ? "yes" : "no", got ? "yes" : "no", tdh, rdh, e1000e_irqs[0] - rx0,
        e1000e_irqs[2] - tx0);
    if (!sent) {
        uprintf(
            "vfio dma FAILED: the TX descriptor was not written back (DD) within %u s",
            DMA_WAIT_MS / 1000);
        return 0;
    }
    if (!got) {
        uprintf(
            "vfio dma FAILED: no frame came back through the PHY loopback within %u s",
            DMA_WAIT_MS / 1000);
        return 0;
    }
    RxDesc *r = &n->rx[0];
    if (r->length != FRAME || r->errors || !(r->status & RXD_STAT_EOP)) {
        uprintf("vfio dma FAILED: received length=%u status=0x%x errors=0x%x, sent %u",
                r->length, r->status, r->errors, FRAME);
        return 0;
    }
    for (u32 i = 0; i < FRAME; i++) {
        if (n->rxbuf[i] != n->txbuf[i]) {
            uprintf("vfio dma FAILED: byte %u differs: sent 0x%x received 0x%x", i,
                    n->txbuf[i], n->rxbuf[i]);
            return 0;
        }
    }
    phy_loopback(n, 0);
    wr32(n, REG_RCTL, 0);
    wr32(n, REG_TCTL, 0);
    uprintf("vfio dma ok");
    return 1;
}

/* Finds, resets and routes the NIC; prints `vfio no device` or a FAILED line
 * (with who's name) and returns 0 when it cannot go on. */
static int nic_open(E1000e *n, const char *who)
{
    int absent;
    const char *err;

    dma_init();
    if ((err = nic_find(n, &absent))) {
        if (absent) {
            uprintf("vfio no device");
        } else {
            uprintf("vfio %s FAILED: %s", who, err);
        }
        return 0;
    }
    if ((err = nic_reset(n))) {
        uprintf("vfio %s FAILED: %s", who, err);
        return 0;
    }
    msix_program(n);
    irq_route(n);
    return 1;
}

static u64 vfio_e1000e_user(u64 unused)
{
    E1000e *n = &nic;

    if (nic_open(n, "irq")) {
        irq_test(n);
        dma_test(n);
    }
    return 0;
}

void scenario_vfio_e1000e(Cpu *bsp)
{
    run_user(bsp, vfio_e1000e_user, 0);
}

/* ---- vfio-e1000e-msi ---- */

#define PCI_CAP_MSI  0x05
#define ICR_LSC      (1u << 2) /* link status change */
#define ICR_RXT0     (1u << 7) /* receive timer */
#define MSI_ADDR_BSP 0xFEE00000u

/* MSI (not MSI-X): one message, to the BSP at VEC_E1000E; every cause
 * raises it in this mode. NULL, or what is wrong. */
static const char *msi_program(E1000e *n, u32 *cap_out)
{
    u32 cap = pci_find_cap(n->bdf, PCI_CAP_MSI, 0);
    u32 ctrl;

    if (!cap) {
        return "no MSI capability";
    }
    *cap_out = cap;
    ctrl = pci_read(n->bdf, n->msix_cap + 2, 2);
    pci_write(n->bdf, n->msix_cap + 2, 2, ctrl & ~0xC000); /* MSI-X off */
    ctrl = pci_read(n->bdf, cap + 2, 2);
    pci_write(n->bdf, cap + 4, 4, MSI_ADDR_BSP);
    if (ctrl & 0x80) { /* 64-bit address */
        pci_write(n->bdf, cap + 8, 4, 0);
        pci_write(n->bdf, cap + 12, 2, VEC_E1000E);
    } else {
        pci_write(n->bdf, cap + 8, 2, VEC_E1000E);
    }
    pci_write(n->bdf, cap + 2, 2, (ctrl & ~0x70) | 1); /* one vector, enabled */
    wr32(n, REG_ITR, 0);
    wr32(n, REG_IAM, 0);
    wr32(n, REG_CTRL_EXT,
         rd32(n, REG_CTRL_EXT) & ~(CTRL_EXT_EIAME | CTRL_EXT_IAME | CTRL_EXT_TIMERS_CLR));
    rd32(n, REG_ICR); /* nothing left pending */
    return NULL;
}

/* The NIC's own link changes (its autonegotiation after the reset) raise
 * LSC as ICS does: with every cause masked, read ICR (which clears it) until
 * no link change has shown for 1 s, at most 5 s, so the LSC check counts
 * only the ICS write's interrupt. Returns the link changes seen. */
static u32 link_settle(E1000e *n)
{
    u64 start = rdtsc(), quiet = start;
    u32 changes = 0;

    wr32(n, REG_IMC, 0xFFFFFFFF);
    while (rdtsc() - quiet < ms_ticks(1000) && rdtsc() - start < ms_ticks(5000)) {
        if (rd32(n, REG_ICR) & ICR_LSC) {
            changes++;
            quiet = rdtsc();
        }
        delay_us(10000);
    }
    return changes;
}

/* Each cause through ICS: one MSI arrives on VEC_E1000E within 1 s, and no
 * other interrupt; reading ICR acknowledges it. */
static int msi_test(E1000e *n)
{
    static const u32 causes[] = { ICR_LSC, ICR_RXT0, CAUSE_OTHER };
    static const char *const names[] = { "lsc", "rxt0", "other" };
    u64 before[E1000E_IRQ_STUBS];

    for (u32 c = 0; c < sizeof(causes) / sizeof(causes[0]); c++) {
        for (u32 i = 0; i < E1000E_IRQ_STUBS; i++) {
            before[i] = e1000e_irqs[i];
        }
        wr32(n, REG_IMS, causes[c]);
        wr32(n, REG_ICS, causes[c]);
        int arrived = wait_count(&e1000e_irqs[0], before[0], 1000);
        u32 icr = rd32(n, REG_ICR);
        wr32(n, REG_IMC, causes[c]);
        if (!arrived) {
            uprintf("vfio msi FAILED: cause %s (ICS 0x%x) did not arrive on IDT 0x%x "
                    "within 1 s; ICR=0x%x",
                    names[c], causes[c], VEC_E1000E, icr);
            return 0;
        }
        delay_us(IRQ_SETTLE_US);
        for (u32 i = 0; i < E1000E_IRQ_STUBS; i++) {
            u64 got = e1000e_irqs[i] - before[i];
            if (got != (i == 0)) {
                uprintf("vfio msi FAILED: cause %s gave %lu interrupt(s) on IDT 0x%x "
                        "(ICR at the first 0x%x, STATUS now 0x%x)",
                        names[c], got, VEC_E1000E + i, icr, rd32(n, REG_STATUS));
                return 0;
            }
        }
    }
    uprintf("vfio msi ok");
    return 1;
}

static u64 vfio_e1000e_msi_user(u64 unused)
{
    E1000e *n = &nic;
    const char *err;
    u32 cap = 0;

    if (!nic_open(n, "msi")) {
        return 0;
    }
    if ((err = msi_program(n, &cap))) {
        uprintf("vfio msi FAILED: %s", err);
        return 0;
    }
    uprintf("vfio msi cap=0x%x control=0x%x link_changes=%u", cap,
            pci_read(n->bdf, cap + 2, 2), link_settle(n));
    msi_test(n);
    return 0;
}

void scenario_vfio_e1000e_msi(Cpu *bsp)
{
    run_user(bsp, vfio_e1000e_msi_user, 0);
}

/* ---- vfio-hostile ---- */

/* Sends one frame from addr (len bytes) and reports what became of it. */
static void hostile_tx(E1000e *n, const char *name, u64 addr, u16 len)
{
    volatile TxDesc *t = tx_post(n, addr, len);
    int sent = wait_bits(&t->status, TXD_STAT_DD, 200);

    uprintf("vfio hostile %s tx_done=%s tdh=%u rdh=%u", name, sent ? "yes" : "no",
            rd32(n, REG_TDH), rd32(n, REG_RDH));
}

/* TX buffers outside RAM: far above it, just past its end, straddling it. */
static void c_tx_far(E1000e *n, const char *name)
{
    hostile_tx(n, name, FAR_AWAY, FRAME);
}

static void c_tx_past_ram(E1000e *n, const char *name)
{
    hostile_tx(n, name, e820_ram_top(), FRAME);
}

static void c_tx_straddle(E1000e *n, const char *name)
{
    hostile_tx(n, name, e820_ram_top() - 512, FRAME);
}

/* RX buffers outside RAM, a good frame looped back into them. */
static void c_rx_far(E1000e *n, const char *name)
{
    u64 far_rx[RING];

    for (u32 i = 0; i < RING; i++) {
        far_rx[i] = FAR_AWAY + (u64)i * BUF;
    }
    rings_setup(n, far_rx);
    hostile_tx(n, name, (u64)n->txbuf, FRAME);
}

/* The TX ring itself outside RAM. */
static void c_tx_ring_far(E1000e *n, const char *name)
{
    wr32(n, REG_TCTL, 0);
    wr32(n, REG_TDBAL, 0);
    wr32(n, REG_TDBAH, (u32)(FAR_AWAY >> 32));
    wr32(n, REG_TDH, 0);
    wr32(n, REG_TDT, 1);
    wr32(n, REG_TCTL, TCTL_EN | TCTL_PSP | TCTL_CT | TCTL_COLD);
    delay_us(100000);
    uprintf("vfio hostile %s tdh=%u", name, rd32(n, REG_TDH));
}

/* Every MSI-X entry garbage (each masked while it is written, as the PCI
 * spec asks, so that a VMM that follows it takes the garbage in), then every
 * cause raised. The vector byte stays one testos counts (VEC_E1000E_STRAY),
 * so that whatever a VMM delivers the guest lives to report it; address,
 * upper data bits and control are garbage. */
static void c_msix_garbage(E1000e *n, const char *name)
{
    static const u32 garbage[NVEC][4] = {
        { 0xDEADBEEC, 0xFFFFFFFF, 0xFFFF0000 | VEC_E1000E_STRAY, 0xFFFFFFFE },
        { 0xFEEFF00C, 0, 0xC100 | VEC_E1000E_STRAY,
          0 },                                      /* broadcast, lowest prio, level */
        { 0, 0, 0x5A5A5A00 | VEC_E1000E_STRAY, 0 }, /* address: a RAM page (below) */
        { LAPIC_BASE, 1, VEC_E1000E_STRAY, 0 },     /* the LAPIC + 4 GiB */
        { LAPIC_BASE | 3, 0, 0xFFFF0000 | VEC_E1000E_STRAY, 0x7FFFFFFE },
    };
    volatile u32 *scratch = dma_alloc(4096, 4096);
    u64 stray0 = e1000e_irqs[NVEC], regular0 = 0, regular = 0;

    if (!scratch) {
        uprintf("vfio hostile %s skipped (DMA pool too small)", name);
        return;
    }
    for (u32 i = 0; i < NVEC; i++) {
        regular0 += e1000e_irqs[i];
        volatile u32 *e = n->msix_table + 4 * i;
        e[3] = 1;
        e[0] = i == 2 ? (u32)(u64)scratch : garbage[i][0];
        e[1] = garbage[i][1];
        e[2] = garbage[i][2];
        e[3] = garbage[i][3];
    }
    /* Past the table and into the PBA (read-only): both to be ignored. */
    const PciBar *table = &n->bars[n->table_bir];
    if ((u64)n->table_off + 16 * n->msix_size + 4 <= table->size) {
        n->msix_table[4 * n->msix_size] = 0xFFFFFFFF;
    }
    const PciBar *pba = &n->bars[n->pba_bir];
    if (n->pba_bir <= 5 && !pba->io && pba->size && n->pba_off + 4 <= pba->size) {
        *(volatile u32 *)phys(pba->addr + n->pba_off) = 0xFFFFFFFF;
    }
    wr32(n, REG_IMS, CAUSES_MSIX);
    wr32(n, REG_ICS, CAUSES_MSIX);
    delay_us(100000);
    wr32(n, REG_IMC, 0xFFFFFFFF);
    for (u32 i = 0; i < NVEC; i++) {
        regular += e1000e_irqs[i];
        n->msix_table[4 * i + 3] = 1; /* masked */
    }
    uprintf("vfio hostile %s stray_irqs=%lu regular_irqs=%lu scratch=0x%x", name,
            e1000e_irqs[NVEC] - stray0, regular - regular0, *scratch);
}

static const struct {
    const char *name;
    void (*run)(E1000e *n, const char *name);
} hostile_cases[] = {
    { "tx-far", c_tx_far },           { "tx-past-ram", c_tx_past_ram },
    { "tx-straddle", c_tx_straddle }, { "rx-far", c_rx_far },
    { "tx-ring-far", c_tx_ring_far }, { "msix-garbage", c_msix_garbage },
};

static u64 vfio_hostile_user(u64 unused)
{
    E1000e *n = &nic;
    const char *err;

    if (!nic_open(n, "hostile")) {
        return 0;
    }
    if ((err = phy_loopback(n, 1)) || (err = rings_setup(n, NULL))) {
        uprintf("vfio hostile FAILED: %s", err);
        return 0;
    }
    frame_build(n, n->txbuf, 0x33);
    for (u32 c = 0; c < ARRAY_SIZE(hostile_cases); c++) {
        if (testos_skipped(hostile_cases[c].name)) {
            uprintf("vfio hostile %s skipped (testos.skip)", hostile_cases[c].name);
            continue;
        }
        if ((err = rings_setup(n, NULL))) {
            uprintf("vfio hostile FAILED: %s", err);
            return 0;
        }
        hostile_cases[c].run(n, hostile_cases[c].name);
    }
    wr32(n, REG_TCTL, 0);
    wr32(n, REG_RCTL, 0);
    phy_loopback(n, 0);
    uprintf("vfio hostile done status=0x%x", rd32(n, REG_STATUS));
    return 0;
}

void scenario_vfio_hostile(Cpu *bsp)
{
    run_user(bsp, vfio_hostile_user, 0);
}
