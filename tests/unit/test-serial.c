/*
 * 16550A UART tests through the io bus, as a guest sees it: divisor latch,
 * IER/IIR priorities, FIFO fill and drain, LSR/MSR bits, loopback,
 * interrupt levels (through a recording IrqLine), transmit to a chardev,
 * receive with flow control from a real socket client, odd access sizes,
 * and save/load.
 */
#include <glib/gstdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "chardev/chardev.h"
#include "hw/bus.h"
#include "hw/serial.h"
#include "unit.h"

#define BASE 0x3f8

enum {
    RBR = 0,
    THR = 0,
    DLL = 0,
    IER = 1,
    DLM = 1,
    IIR = 2,
    FCR = 2,
    LCR = 3,
    MCR = 4,
    LSR = 5,
    MSR = 6,
    SCR = 7
};

typedef struct FakeIrq {
    int level;
    int raises; /* 0 -> 1 transitions */
    int lowers;
    int gsi;
} FakeIrq;

static void fake_irq_set(void *opaque, int gsi, int level)
{
    FakeIrq *irq = opaque;

    if (level && !irq->level) {
        irq->raises++;
    } else if (!level && irq->level) {
        irq->lowers++;
    }
    irq->level = level;
    irq->gsi = gsi;
}

typedef struct Rig {
    Bus bus;
    pthread_mutex_t lock;
    FakeIrq irq;
    SerialPort *uart;
} Rig;

static void rig_init(Rig *rig, Chardev *chr)
{
    IrqLine line;
    GError *err = NULL;

    memset(rig, 0, sizeof(*rig));
    bus_init(&rig->bus, "io");
    pthread_mutex_init(&rig->lock, NULL);
    line = (IrqLine){ fake_irq_set, &rig->irq, 4 };
    rig->uart = serial_new(&rig->bus, BASE, line, chr, &rig->lock, &err);
    CHECK(rig->uart != NULL);
    if (err) {
        fprintf(stderr, "serial_new: %s\n", err->message);
        g_clear_error(&err);
    }
}

static void rig_destroy(Rig *rig)
{
    serial_free(rig->uart);
    bus_destroy(&rig->bus);
    pthread_mutex_destroy(&rig->lock);
}

/* Guest accesses, with the machine lock held as on a vCPU thread. */
static uint8_t inb(Rig *rig, unsigned reg)
{
    uint8_t v = 0;

    pthread_mutex_lock(&rig->lock);
    bus_dispatch(&rig->bus, BASE + reg, &v, 1, false);
    pthread_mutex_unlock(&rig->lock);
    return v;
}

static void outb(Rig *rig, unsigned reg, uint8_t v)
{
    pthread_mutex_lock(&rig->lock);
    bus_dispatch(&rig->bus, BASE + reg, &v, 1, true);
    pthread_mutex_unlock(&rig->lock);
}

static void pump_for(int ms)
{
    gint64 deadline = g_get_monotonic_time() + ms * 1000;

    while (g_get_monotonic_time() < deadline) {
        g_main_context_iteration(NULL, FALSE);
        g_usleep(500);
    }
}

UNIT_TEST(isa_resources)
{
    CHECK_EQ(serial_isa_base(0), 0x3f8);
    CHECK_EQ(serial_isa_base(1), 0x2f8);
    CHECK_EQ(serial_isa_base(2), 0x3e8);
    CHECK_EQ(serial_isa_base(3), 0x2e8);
    CHECK_EQ(serial_isa_irq(0), 4);
    CHECK_EQ(serial_isa_irq(1), 3);
    CHECK_EQ(serial_isa_irq(2), 4);
    CHECK_EQ(serial_isa_irq(3), 3);
    CHECK_EQ(serial_isa_irq(4), -1);
}

UNIT_TEST(power_on_state)
{
    Rig rig;

    rig_init(&rig, NULL);
    CHECK_EQ(inb(&rig, IER), 0);
    CHECK_EQ(inb(&rig, IIR), 0x01); /* no interrupt, FIFOs off */
    CHECK_EQ(inb(&rig, LCR), 0);
    CHECK_EQ(inb(&rig, MCR), 0);
    CHECK_EQ(inb(&rig, LSR), 0x60);        /* THRE | TEMT */
    CHECK_EQ(inb(&rig, MSR) & 0xf0, 0xb0); /* DCD, DSR, CTS */
    CHECK_EQ(rig.irq.level, 0);
    /* The register block sits on the bus; its neighbours do not. */
    CHECK(bus_find(&rig.bus, BASE + 7) != NULL);
    CHECK(bus_find(&rig.bus, BASE + 8) == NULL);
    rig_destroy(&rig);
}

UNIT_TEST(divisor_latch_and_scratch)
{
    Rig rig;

    rig_init(&rig, NULL);
    outb(&rig, IER, 0x05);
    outb(&rig, LCR, 0x83); /* DLAB, 8N1 */
    outb(&rig, DLL, 0x01);
    outb(&rig, DLM, 0x02);
    CHECK_EQ(inb(&rig, DLL), 0x01);
    CHECK_EQ(inb(&rig, DLM), 0x02);
    CHECK_EQ(inb(&rig, LCR), 0x83);
    outb(&rig, LCR, 0x03);
    CHECK_EQ(inb(&rig, IER), 0x05); /* IER untouched by the latch writes */
    outb(&rig, LCR, 0x83);
    CHECK_EQ(inb(&rig, DLL), 0x01); /* divisor kept */
    CHECK_EQ(inb(&rig, DLM), 0x02);
    outb(&rig, LCR, 0x03);
    outb(&rig, SCR, 0x5a);
    CHECK_EQ(inb(&rig, SCR), 0x5a);
    outb(&rig, IER, 0xff);
    CHECK_EQ(inb(&rig, IER), 0x0f); /* reserved bits read as zero */
    rig_destroy(&rig);
}

UNIT_TEST(transmit_goes_to_chardev_and_thr_stays_empty)
{
    char *dir = g_dir_make_tmp("test-serial-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "out", NULL);
    g_autofree char *spec = g_strdup_printf("file:%s", path);
    g_autofree char *contents = NULL;
    ChardevSet *set = chardev_set_new();
    Chardev *chr = chardev_new_from_legacy(set, spec, "serial0", NULL);
    Rig rig;

    rig_init(&rig, chr);
    CHECK(chardev_set_open_all(set, NULL));
    for (const char *p = "hello, world\r\n"; *p; p++) {
        outb(&rig, THR, *p);
        CHECK_EQ(inb(&rig, LSR) & 0x60, 0x60);
    }
    rig_destroy(&rig);
    chardev_set_free(set);
    CHECK(g_file_get_contents(path, &contents, NULL, NULL));
    CHECK_STR(contents, "hello, world\r\n");
    g_unlink(path);
    g_rmdir(dir);
    g_free(dir);
}

UNIT_TEST(thre_interrupt)
{
    Rig rig;

    rig_init(&rig, NULL);
    /* Enabling THRI while THR is empty raises it at once. */
    outb(&rig, IER, 0x02);
    CHECK_EQ(rig.irq.level, 1);
    CHECK_EQ(rig.irq.gsi, 4);
    CHECK_EQ(inb(&rig, IIR), 0x02);
    /* Reading IIR acknowledged it. */
    CHECK_EQ(rig.irq.level, 0);
    CHECK_EQ(inb(&rig, IIR), 0x01);

    /* Each THR write: the line drops, then rises again as THR empties. */
    int raises = rig.irq.raises;
    outb(&rig, THR, 'a');
    CHECK_EQ(rig.irq.level, 1);
    CHECK_EQ(rig.irq.raises, raises + 1);
    outb(&rig, THR, 'b');
    CHECK_EQ(rig.irq.raises, raises + 2);
    CHECK_EQ(inb(&rig, IIR), 0x02);
    CHECK_EQ(rig.irq.level, 0);

    /* Disabling the source lowers the line. */
    outb(&rig, THR, 'c');
    CHECK_EQ(rig.irq.level, 1);
    outb(&rig, IER, 0x00);
    CHECK_EQ(rig.irq.level, 0);
    rig_destroy(&rig);
}

UNIT_TEST(loopback_fifo_fill_drain_and_overrun)
{
    Rig rig;

    rig_init(&rig, NULL);
    outb(&rig, FCR, 0x07); /* FIFO on, both cleared, trigger 1 */
    CHECK_EQ(inb(&rig, IIR), 0xc1);
    outb(&rig, MCR, 0x10); /* loopback */
    for (int i = 0; i < 16; i++) {
        outb(&rig, THR, 'A' + i);
    }
    CHECK_EQ(inb(&rig, LSR), 0x61); /* DR */
    outb(&rig, THR, 'z');           /* 17th byte: overrun, lost */
    CHECK_EQ(inb(&rig, LSR), 0x63); /* DR | OE */
    CHECK_EQ(inb(&rig, LSR), 0x61); /* OE clears on read */
    for (int i = 0; i < 16; i++) {
        CHECK_EQ(inb(&rig, RBR), 'A' + i);
    }
    CHECK_EQ(inb(&rig, LSR), 0x60);
    CHECK_EQ(inb(&rig, RBR), 0); /* empty FIFO reads harmlessly */

    /* Without the FIFO (16450 mode) one byte fits. */
    outb(&rig, FCR, 0x00);
    outb(&rig, THR, 'x');
    outb(&rig, THR, 'y');
    CHECK_EQ(inb(&rig, LSR), 0x63);
    CHECK_EQ(inb(&rig, RBR), 'x');
    CHECK_EQ(inb(&rig, LSR) & 1, 0);

    /* FCR "clear receiver" empties it. */
    outb(&rig, FCR, 0x01);
    outb(&rig, THR, '1');
    outb(&rig, THR, '2');
    outb(&rig, FCR, 0x03);
    CHECK_EQ(inb(&rig, LSR) & 1, 0);
    rig_destroy(&rig);
}

UNIT_TEST(rx_interrupt_trigger_level_and_timeout)
{
    Rig rig;

    rig_init(&rig, NULL);
    outb(&rig, FCR, 0xc1); /* FIFO on, trigger 14 */
    outb(&rig, MCR, 0x10);
    outb(&rig, IER, 0x01);
    CHECK_EQ(rig.irq.level, 0);
    for (int i = 0; i < 5; i++) {
        outb(&rig, THR, i);
    }
    /* Below the trigger level the data times out (no timer here: at once). */
    CHECK_EQ(inb(&rig, IIR), 0xcc);
    CHECK_EQ(rig.irq.level, 1);
    for (int i = 5; i < 14; i++) {
        outb(&rig, THR, i);
    }
    CHECK_EQ(inb(&rig, IIR), 0xc4);
    for (int i = 0; i < 14; i++) {
        CHECK_EQ(inb(&rig, RBR), i);
    }
    CHECK_EQ(inb(&rig, IIR), 0xc1);
    CHECK_EQ(rig.irq.level, 0);
    rig_destroy(&rig);
}

UNIT_TEST(iir_priorities)
{
    Rig rig;

    rig_init(&rig, NULL);
    outb(&rig, FCR, 0x01);
    outb(&rig, MCR, 0x10);
    /* Pending: modem status (MCR change in loopback), THRE, RX data, overrun. */
    outb(&rig, MCR, 0x13);
    for (int i = 0; i < 17; i++) {
        outb(&rig, THR, i);
    }
    outb(&rig, IER, 0x0f);
    CHECK_EQ(rig.irq.level, 1);
    CHECK_EQ(inb(&rig, IIR) & 0x0f, 0x06); /* receiver line status first */
    CHECK_EQ(inb(&rig, LSR) & 0x02, 0x02); /* reading LSR acknowledges it */
    CHECK_EQ(inb(&rig, IIR) & 0x0f, 0x04); /* then received data */
    for (int i = 0; i < 16; i++) {
        inb(&rig, RBR);
    }
    CHECK_EQ(inb(&rig, IIR) & 0x0f, 0x02); /* then THRE, acknowledged by the read */
    CHECK_EQ(inb(&rig, IIR) & 0x0f, 0x00); /* then modem status */
    CHECK(inb(&rig, MSR) & 0x0f);          /* reading MSR acknowledges it */
    CHECK_EQ(inb(&rig, IIR) & 0x0f, 0x01);
    CHECK_EQ(rig.irq.level, 0);
    rig_destroy(&rig);
}

UNIT_TEST(loopback_modem_lines)
{
    Rig rig;

    rig_init(&rig, NULL);
    inb(&rig, MSR);
    outb(&rig, MCR, 0x10); /* loopback, all outputs low */
    CHECK_EQ(inb(&rig, MSR) & 0xf0, 0x00);
    outb(&rig, MCR, 0x1f);          /* DTR RTS OUT1 OUT2 */
    CHECK_EQ(inb(&rig, MSR), 0xfb); /* CTS DSR RI DCD + DCTS DDSR DDCD */
    CHECK_EQ(inb(&rig, MSR), 0xf0); /* deltas cleared by the read */
    outb(&rig, MCR, 0x1b);          /* OUT1 (RI) falls */
    CHECK_EQ(inb(&rig, MSR), 0xb4); /* TERI */
    outb(&rig, MCR, 0x00);          /* out of loopback: the idle lines return */
    CHECK_EQ(inb(&rig, MSR) & 0xf0, 0xb0);
    rig_destroy(&rig);
}

UNIT_TEST(odd_access_sizes)
{
    Rig rig;
    uint8_t data[8];

    rig_init(&rig, NULL);
    outb(&rig, SCR, 0x77);
    /* A dword read at LSR covers LSR, MSR, SCR and one byte past the UART. */
    memset(data, 0, sizeof(data));
    pthread_mutex_lock(&rig.lock);
    bus_dispatch(&rig.bus, BASE + LSR, data, 4, false);
    pthread_mutex_unlock(&rig.lock);
    CHECK_EQ(data[0], 0x60);
    CHECK_EQ(data[1] & 0xf0, 0xb0);
    CHECK_EQ(data[2], 0x77);
    CHECK_EQ(data[3], 0xff);

    /* A word write at LCR writes LCR and MCR; a qword at SCR stays in range. */
    data[0] = 0x03;
    data[1] = 0x08;
    pthread_mutex_lock(&rig.lock);
    bus_dispatch(&rig.bus, BASE + LCR, data, 2, true);
    memset(data, 0xee, sizeof(data));
    bus_dispatch(&rig.bus, BASE + SCR, data, 8, true);
    bus_dispatch(&rig.bus, BASE + SCR, data, 8, false);
    pthread_mutex_unlock(&rig.lock);
    CHECK_EQ(inb(&rig, LCR), 0x03);
    CHECK_EQ(inb(&rig, MCR), 0x08);
    CHECK_EQ(data[0], 0xee);
    for (int i = 1; i < 8; i++) {
        CHECK_EQ(data[i], 0xff);
    }
    rig_destroy(&rig);
}

UNIT_TEST(reset_lowers_irq_and_clears_state)
{
    Rig rig;

    rig_init(&rig, NULL);
    outb(&rig, FCR, 0x01);
    outb(&rig, MCR, 0x10);
    outb(&rig, THR, 'q');
    outb(&rig, IER, 0x03);
    outb(&rig, SCR, 0x11);
    CHECK_EQ(rig.irq.level, 1);
    pthread_mutex_lock(&rig.lock);
    serial_reset(rig.uart);
    pthread_mutex_unlock(&rig.lock);
    CHECK_EQ(rig.irq.level, 0);
    CHECK_EQ(inb(&rig, LSR), 0x60);
    CHECK_EQ(inb(&rig, IER), 0);
    CHECK_EQ(inb(&rig, SCR), 0);
    CHECK_EQ(inb(&rig, IIR), 0x01);
    rig_destroy(&rig);
}

UNIT_TEST(chardev_input_flow_control)
{
    char *dir = g_dir_make_tmp("test-serial-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "in.sock", NULL);
    g_autofree char *spec = g_strdup_printf("unix:%s,server,nowait", path);
    ChardevSet *set = chardev_set_new();
    Chardev *chr = chardev_new_from_legacy(set, spec, "serial0", NULL);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    GString *got = g_string_new(NULL);
    char msg[40];
    Rig rig;
    int c;

    for (size_t i = 0; i < sizeof(msg); i++) {
        msg[i] = '0' + i % 40;
    }
    rig_init(&rig, chr);
    outb(&rig, FCR, 0x01);
    outb(&rig, IER, 0x01);
    CHECK(chardev_set_open_all(set, NULL));
    c = socket(AF_UNIX, SOCK_STREAM, 0);
    g_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
    CHECK(connect(c, (struct sockaddr *)&sun, sizeof(sun)) == 0);
    CHECK(send(c, msg, sizeof(msg), 0) == (ssize_t)sizeof(msg));
    pump_for(100);

    /* The FIFO holds 16; the rest waits in the socket, nothing overruns. */
    CHECK_EQ(rig.irq.level, 1);
    CHECK_EQ(inb(&rig, IIR), 0xc4);
    for (int rounds = 0; rounds < 100 && got->len < sizeof(msg); rounds++) {
        int n = 0;
        while ((inb(&rig, LSR) & 0x01) && n < 16) {
            g_string_append_c(got, inb(&rig, RBR));
            n++;
        }
        CHECK(n <= 16);
        pump_for(10);
    }
    CHECK_EQ(got->len, sizeof(msg));
    CHECK(memcmp(got->str, msg, sizeof(msg)) == 0);
    CHECK_EQ(inb(&rig, LSR) & 0x02, 0); /* never overran */
    CHECK_EQ(rig.irq.level, 0);

    /* In loopback the line input is cut off. */
    outb(&rig, MCR, 0x10);
    CHECK(send(c, "lost", 4, 0) == 4);
    pump_for(50);
    CHECK_EQ(inb(&rig, LSR) & 0x01, 0);

    close(c);
    pump_for(20);
    rig_destroy(&rig);
    chardev_set_free(set);
    g_string_free(got, TRUE);
    g_rmdir(dir);
    g_free(dir);
}

UNIT_TEST(attach_to_busy_chardev_fails_cleanly)
{
    ChardevSet *set = chardev_set_new();
    Chardev *chr = chardev_new_from_legacy(set, "null", "serial0", NULL);
    IrqLine line = { fake_irq_set, NULL, 4 };
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    FakeIrq irq = { 0 };
    GError *err = NULL;
    Bus bus;
    SerialPort *a, *b;

    line.opaque = &irq;
    bus_init(&bus, "io");
    a = serial_new(&bus, 0x3f8, line, chr, &lock, &err);
    CHECK(a != NULL);
    b = serial_new(&bus, 0x2f8, line, chr, &lock, &err);
    CHECK(b == NULL);
    CHECK_STR(err ? err->message : NULL, "chardev 'serial0' is already in use");
    g_clear_error(&err);
    CHECK(bus_find(&bus, 0x2f8) == NULL); /* the failed UART left the bus */
    CHECK(serial_new(&bus, 0x3f8, line, NULL, &lock, &err) == NULL); /* overlap */
    g_clear_error(&err);
    serial_free(a);
    CHECK(bus_find(&bus, 0x3f8) == NULL);
    bus_destroy(&bus);
    chardev_set_free(set);
}

static void setup_busy_state(Rig *rig)
{
    outb(rig, LCR, 0x80);
    outb(rig, DLL, 0x01);
    outb(rig, DLM, 0x00);
    outb(rig, LCR, 0x1b);
    outb(rig, FCR, 0x81); /* FIFO, trigger 8 */
    outb(rig, MCR, 0x1b);
    outb(rig, SCR, 0x42);
    for (int i = 0; i < 5; i++) {
        outb(rig, THR, 'a' + i);
    }
    inb(rig, RBR); /* the FIFO's head is not at slot 0 */
    outb(rig, THR, 'f');
    outb(rig, IER, 0x05);
}

UNIT_TEST(save_load_round_trip)
{
    Rig src, dst;
    GByteArray *blob = g_byte_array_new();
    GError *err = NULL;

    rig_init(&src, NULL);
    rig_init(&dst, NULL);
    setup_busy_state(&src);
    CHECK_EQ(src.irq.level, 1);
    pthread_mutex_lock(&src.lock);
    CHECK(serial_save(src.uart, blob));
    pthread_mutex_unlock(&src.lock);
    CHECK(blob->len > 1);
    CHECK_EQ(blob->data[0], 1); /* version */

    pthread_mutex_lock(&dst.lock);
    CHECK(serial_load(dst.uart, blob->data, blob->len, &err));
    pthread_mutex_unlock(&dst.lock);
    CHECK(err == NULL);
    CHECK_EQ(dst.irq.level, 1); /* the loaded interrupt is driven */

    /* Both UARTs now answer every read alike. */
    static const unsigned order[] = { IER, LCR, MCR, SCR, IIR, LSR, MSR };
    for (size_t i = 0; i < G_N_ELEMENTS(order); i++) {
        CHECK_EQ(inb(&dst, order[i]), inb(&src, order[i]));
    }
    for (int i = 0; i < 6; i++) {
        CHECK_EQ(inb(&dst, RBR), inb(&src, RBR));
    }
    outb(&src, LCR, 0x9b);
    outb(&dst, LCR, 0x9b);
    CHECK_EQ(inb(&dst, DLL), 0x01);
    CHECK_EQ(inb(&dst, DLM), 0x00);

    /* A second save of the loaded copy is byte-identical to the source's. */
    GByteArray *again = g_byte_array_new(), *orig = g_byte_array_new();
    serial_save(dst.uart, again);
    serial_save(src.uart, orig);
    CHECK_EQ(again->len, orig->len);
    CHECK(memcmp(again->data, orig->data, orig->len) == 0);
    g_byte_array_free(again, TRUE);
    g_byte_array_free(orig, TRUE);
    g_byte_array_free(blob, TRUE);
    rig_destroy(&src);
    rig_destroy(&dst);
}

UNIT_TEST(load_refuses_bad_blobs)
{
    Rig src, dst;
    GByteArray *blob = g_byte_array_new();
    GByteArray *before = g_byte_array_new(), *after = g_byte_array_new();
    GError *err = NULL;
    uint8_t *bad;

    rig_init(&src, NULL);
    rig_init(&dst, NULL);
    setup_busy_state(&src);
    serial_save(src.uart, blob);
    outb(&dst, SCR, 0x99);
    serial_save(dst.uart, before);

    /* version, length, then each range check */
    static const struct {
        int offset; /* -1: truncate, -2: extend */
        uint8_t value;
        const char *error;
    } cases[] = {
        { 0, 2, "serial: unsupported state version 2" },
        { 0, 0, "serial: unsupported state version 0" },
        { -1, 0, "serial: state is 27 bytes, expected 28" },
        { -2, 0, "serial: state is 29 bytes, expected 28" },
        { 11, 17, "serial: corrupt state" },  /* RX count beyond the FIFO */
        { 3, 0xf0, "serial: corrupt state" }, /* IER reserved bits */
        { 5, 0x20, "serial: corrupt state" }, /* MCR reserved bits */
        { 10, 2, "serial: corrupt state" },   /* THRE pending not a bool */
        { 6, 0x01, "serial: corrupt state" }, /* LSR error bits only */
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        size_t len = blob->len;
        bad = g_malloc0(blob->len + 1);
        memcpy(bad, blob->data, blob->len);
        if (cases[i].offset == -1) {
            len--;
        } else if (cases[i].offset == -2) {
            len++;
        } else {
            bad[cases[i].offset] = cases[i].value;
        }
        CHECK(!serial_load(dst.uart, bad, len, &err));
        CHECK_STR(err ? err->message : NULL, cases[i].error);
        g_clear_error(&err);
        g_free(bad);
    }
    CHECK(!serial_load(dst.uart, blob->data, 0, &err));
    g_clear_error(&err);

    /* A 16450-mode blob cannot hold two bytes. */
    bad = g_memdup2(blob->data, blob->len);
    bad[9] = 0x00;
    bad[11] = 2;
    CHECK(!serial_load(dst.uart, bad, blob->len, &err));
    g_clear_error(&err);
    g_free(bad);

    serial_save(dst.uart, after);
    CHECK(memcmp(before->data, after->data, before->len) == 0); /* untouched */
    CHECK_EQ(inb(&dst, SCR), 0x99);
    g_byte_array_free(blob, TRUE);
    g_byte_array_free(before, TRUE);
    g_byte_array_free(after, TRUE);
    rig_destroy(&src);
    rig_destroy(&dst);
}

UNIT_MAIN()
