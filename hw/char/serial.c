/*
 * 16550A UART: the eight registers, a 16-byte receive FIFO and the four
 * interrupt sources on a level IrqLine.  Transmit is immediate (bytes go
 * straight to the chardev), so THR always reads empty after a write.
 * Locking: register accesses, reset, save and load run with the machine
 * lock held; the chardev callbacks (main thread) take it themselves.
 */
#include <string.h>

#include "hw/serial.h"
#include "util/error.h"

#define UART_FIFO_SIZE 16
#define UART_IO_LEN    8

enum {
    UART_IER_RDI = 0x01,  /* received data available */
    UART_IER_THRI = 0x02, /* transmitter holding register empty */
    UART_IER_RLSI = 0x04, /* receiver line status */
    UART_IER_MSI = 0x08,  /* modem status */

    UART_IIR_NO_INT = 0x01,
    UART_IIR_MSI = 0x00,
    UART_IIR_THRI = 0x02,
    UART_IIR_RDI = 0x04,
    UART_IIR_RLSI = 0x06,
    UART_IIR_CTI = 0x0c, /* character timeout: data below the trigger level */
    UART_IIR_ID_MASK = 0x0f,
    UART_IIR_FIFO_ON = 0xc0,

    UART_FCR_ENABLE = 0x01,
    UART_FCR_CLEAR_RCVR = 0x02,
    UART_FCR_CLEAR_XMIT = 0x04,
    UART_FCR_DMA = 0x08,
    UART_FCR_TRIGGER = 0xc0,

    UART_LCR_DLAB = 0x80,

    UART_MCR_DTR = 0x01,
    UART_MCR_RTS = 0x02,
    UART_MCR_OUT1 = 0x04,
    UART_MCR_OUT2 = 0x08,
    UART_MCR_LOOP = 0x10,
    UART_MCR_MASK = 0x1f,

    UART_LSR_DR = 0x01,
    UART_LSR_OE = 0x02,
    UART_LSR_PE = 0x04,
    UART_LSR_FE = 0x08,
    UART_LSR_BI = 0x10,
    UART_LSR_THRE = 0x20,
    UART_LSR_TEMT = 0x40,
    UART_LSR_ERRORS = 0x1e,

    UART_MSR_DCTS = 0x01,
    UART_MSR_DDSR = 0x02,
    UART_MSR_TERI = 0x04,
    UART_MSR_DDCD = 0x08,
    UART_MSR_DELTAS = 0x0f,
    UART_MSR_CTS = 0x10,
    UART_MSR_DSR = 0x20,
    UART_MSR_RI = 0x40,
    UART_MSR_DCD = 0x80,
};

/* Modem lines of a permanently attached peer (as QEMU reports them). */
#define UART_MSR_IDLE (UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS)

#define SERIAL_STATE_VERSION 1
#define SERIAL_STATE_SIZE    (12 + UART_FIFO_SIZE)

struct SerialPort {
    Bus *bus;
    uint16_t base;
    IrqLine irq;
    Chardev *chr;
    pthread_mutex_t *lock;

    uint16_t divisor;
    uint8_t ier;
    uint8_t lcr;
    uint8_t mcr;
    uint8_t lsr_errors; /* OE/PE/FE/BI, cleared by reading LSR */
    uint8_t msr;
    uint8_t scr;
    uint8_t fcr;
    bool thr_ipending; /* THR-empty interrupt owed to the guest */
    uint8_t rx_fifo[UART_FIFO_SIZE];
    uint8_t rx_head;
    uint8_t rx_count;
    int irq_level; /* last level driven, -1 when unknown */
};

static const uint16_t isa_bases[] = { 0x3f8, 0x2f8, 0x3e8, 0x2e8 };
static const int isa_irqs[] = { 4, 3, 4, 3 };

uint16_t serial_isa_base(unsigned index)
{
    return index < G_N_ELEMENTS(isa_bases) ? isa_bases[index] : 0;
}

int serial_isa_irq(unsigned index)
{
    return index < G_N_ELEMENTS(isa_irqs) ? isa_irqs[index] : -1;
}

static bool serial_fifo_on(const SerialPort *s)
{
    return s->fcr & UART_FCR_ENABLE;
}

/* Receive capacity: the FIFO, or one holding register in 16450 mode. */
static unsigned serial_rx_capacity(const SerialPort *s)
{
    return serial_fifo_on(s) ? UART_FIFO_SIZE : 1;
}

static unsigned serial_rx_space(const SerialPort *s)
{
    unsigned cap = serial_rx_capacity(s);

    return s->rx_count < cap ? cap - s->rx_count : 0;
}

static unsigned serial_rx_trigger(const SerialPort *s)
{
    static const unsigned levels[] = { 1, 4, 8, 14 };

    return serial_fifo_on(s) ? levels[s->fcr >> 6] : 1;
}

/* The highest-priority pending interrupt, as IIR reports it. */
static uint8_t serial_iir(const SerialPort *s)
{
    uint8_t id = UART_IIR_NO_INT;

    if ((s->ier & UART_IER_RLSI) && (s->lsr_errors & UART_LSR_ERRORS)) {
        id = UART_IIR_RLSI;
    } else if ((s->ier & UART_IER_RDI) && s->rx_count) {
        /* No timer: data below the trigger level times out at once. */
        id = s->rx_count >= serial_rx_trigger(s) ? UART_IIR_RDI : UART_IIR_CTI;
    } else if ((s->ier & UART_IER_THRI) && s->thr_ipending) {
        id = UART_IIR_THRI;
    } else if ((s->ier & UART_IER_MSI) && (s->msr & UART_MSR_DELTAS)) {
        id = UART_IIR_MSI;
    }
    return id | (serial_fifo_on(s) ? UART_IIR_FIFO_ON : 0);
}

static void serial_update_irq(SerialPort *s)
{
    int level = !(serial_iir(s) & UART_IIR_NO_INT);

    if (level != s->irq_level) {
        s->irq_level = level;
        irq_set_level(&s->irq, level);
    }
}

static void serial_rx_clear(SerialPort *s)
{
    s->rx_head = 0;
    s->rx_count = 0;
}

static void serial_rx_push(SerialPort *s, uint8_t byte)
{
    if (!serial_rx_space(s)) {
        s->lsr_errors |= UART_LSR_OE; /* the new byte is lost, as on hardware */
        return;
    }
    s->rx_fifo[(s->rx_head + s->rx_count) % UART_FIFO_SIZE] = byte;
    s->rx_count++;
}

/* Tell the chardev when room appears in a receiver it saw full. */
static void serial_rx_room_changed(SerialPort *s, unsigned old_space)
{
    if (old_space == 0 && serial_rx_space(s) > 0) {
        chardev_accept_input(s->chr);
    }
}

static uint8_t serial_rx_pop(SerialPort *s)
{
    unsigned old_space = serial_rx_space(s);
    uint8_t byte;

    if (!s->rx_count) {
        return 0;
    }
    byte = s->rx_fifo[s->rx_head];
    s->rx_head = (s->rx_head + 1) % UART_FIFO_SIZE;
    s->rx_count--;
    serial_rx_room_changed(s, old_space);
    return byte;
}

/* In loopback the modem inputs follow the modem outputs. */
static void serial_update_msr(SerialPort *s)
{
    uint8_t lines = UART_MSR_IDLE;
    uint8_t old = s->msr;

    if (s->mcr & UART_MCR_LOOP) {
        lines = (s->mcr & UART_MCR_RTS ? UART_MSR_CTS : 0) |
                (s->mcr & UART_MCR_DTR ? UART_MSR_DSR : 0) |
                (s->mcr & UART_MCR_OUT1 ? UART_MSR_RI : 0) |
                (s->mcr & UART_MCR_OUT2 ? UART_MSR_DCD : 0);
    }
    s->msr = lines | (old & UART_MSR_DELTAS);
    if ((old ^ lines) & UART_MSR_CTS) {
        s->msr |= UART_MSR_DCTS;
    }
    if ((old ^ lines) & UART_MSR_DSR) {
        s->msr |= UART_MSR_DDSR;
    }
    if ((old & UART_MSR_RI) && !(lines & UART_MSR_RI)) {
        s->msr |= UART_MSR_TERI; /* trailing edge of ring indicator */
    }
    if ((old ^ lines) & UART_MSR_DCD) {
        s->msr |= UART_MSR_DDCD;
    }
}

static void serial_transmit(SerialPort *s, uint8_t byte)
{
    /* Writing THR takes back a pending THRE interrupt (the line drops)... */
    s->thr_ipending = false;
    serial_update_irq(s);
    if (s->mcr & UART_MCR_LOOP) {
        serial_rx_push(s, byte);
    } else {
        chardev_write(s->chr, &byte, 1);
    }
    /* ...and since the byte left at once, THR is empty again. */
    s->thr_ipending = true;
}

static void serial_write_fcr(SerialPort *s, uint8_t value)
{
    unsigned old_space = serial_rx_space(s);

    if ((value ^ s->fcr) & UART_FCR_ENABLE) {
        serial_rx_clear(s); /* switching FIFO mode empties the FIFOs */
    }
    if (value & UART_FCR_CLEAR_RCVR) {
        serial_rx_clear(s);
    }
    s->fcr = value & (UART_FCR_ENABLE | UART_FCR_DMA | UART_FCR_TRIGGER);
    serial_rx_room_changed(s, old_space);
}

static void serial_write_reg(SerialPort *s, unsigned reg, uint8_t value)
{
    bool dlab = s->lcr & UART_LCR_DLAB;

    switch (reg) {
    case 0:
        if (dlab) {
            s->divisor = (s->divisor & 0xff00) | value;
        } else {
            serial_transmit(s, value);
        }
        break;
    case 1:
        if (dlab) {
            s->divisor = (s->divisor & 0x00ff) | (value << 8);
        } else {
            /* Enabling THRI while THR is empty raises it at once. */
            if (!(s->ier & UART_IER_THRI) && (value & UART_IER_THRI)) {
                s->thr_ipending = true;
            }
            s->ier = value & 0x0f;
        }
        break;
    case 2:
        serial_write_fcr(s, value);
        break;
    case 3:
        s->lcr = value;
        break;
    case 4:
        s->mcr = value & UART_MCR_MASK;
        serial_update_msr(s);
        break;
    case 7:
        s->scr = value;
        break;
    default:
        break; /* LSR and MSR writes (factory test) are ignored */
    }
}

static uint8_t serial_read_reg(SerialPort *s, unsigned reg)
{
    bool dlab = s->lcr & UART_LCR_DLAB;
    uint8_t value;

    switch (reg) {
    case 0:
        return dlab ? s->divisor & 0xff : serial_rx_pop(s);
    case 1:
        return dlab ? s->divisor >> 8 : s->ier;
    case 2:
        value = serial_iir(s);
        if ((value & UART_IIR_ID_MASK) == UART_IIR_THRI) {
            s->thr_ipending = false; /* reading IIR acknowledges THRE */
        }
        return value;
    case 3:
        return s->lcr;
    case 4:
        return s->mcr;
    case 5:
        value = s->lsr_errors | UART_LSR_THRE | UART_LSR_TEMT |
                (s->rx_count ? UART_LSR_DR : 0);
        s->lsr_errors = 0;
        return value;
    case 6:
        value = s->msr;
        s->msr &= ~UART_MSR_DELTAS;
        return value;
    default:
        return s->scr;
    }
}

/*
 * Bus handler.  A wider access is what an ISA bus makes of it: one byte
 * access per byte, at consecutive registers; bytes past the eighth
 * register read as 0xff and their writes are dropped.
 */
static void serial_io(void *opaque, uint64_t offset, uint8_t *data, unsigned len,
                      bool is_write)
{
    SerialPort *s = opaque;

    for (unsigned i = 0; i < len; i++) {
        uint64_t reg = offset + i;

        if (reg >= UART_IO_LEN) {
            if (!is_write) {
                data[i] = 0xff;
            }
        } else if (is_write) {
            serial_write_reg(s, reg, data[i]);
        } else {
            data[i] = serial_read_reg(s, reg);
        }
    }
    serial_update_irq(s);
}

/* ---- chardev frontend (main thread) ---- */

static size_t serial_chr_can_read(void *opaque)
{
    SerialPort *s = opaque;
    size_t space;

    pthread_mutex_lock(s->lock);
    space = serial_rx_space(s);
    pthread_mutex_unlock(s->lock);
    return space;
}

static void serial_chr_read(void *opaque, const uint8_t *buf, size_t len)
{
    SerialPort *s = opaque;

    pthread_mutex_lock(s->lock);
    /* In loopback the receiver is cut off from the line: input is lost. */
    if (!(s->mcr & UART_MCR_LOOP)) {
        for (size_t i = 0; i < len; i++) {
            serial_rx_push(s, buf[i]);
        }
        serial_update_irq(s);
    }
    pthread_mutex_unlock(s->lock);
}

static void serial_chr_event(void *opaque, ChardevEvent event)
{
    /* The modem lines stay up whether or not a client is connected. */
}

static const ChardevHandlers serial_chr_handlers = {
    .can_read = serial_chr_can_read,
    .read = serial_chr_read,
    .event = serial_chr_event,
};

/* ---- life cycle ---- */

void serial_reset(SerialPort *s)
{
    unsigned old_space = serial_rx_space(s);

    s->divisor = 12; /* 9600 baud */
    s->ier = 0;
    s->lcr = 0;
    s->mcr = 0;
    s->lsr_errors = 0;
    s->msr = UART_MSR_IDLE;
    s->scr = 0;
    s->fcr = 0;
    s->thr_ipending = false;
    serial_rx_clear(s);
    serial_update_irq(s);
    serial_rx_room_changed(s, old_space);
}

SerialPort *serial_new(Bus *io_bus, uint16_t base, IrqLine irq, Chardev *chr,
                       pthread_mutex_t *lock, GError **errp)
{
    SerialPort *s = g_new0(SerialPort, 1);

    s->bus = io_bus;
    s->base = base;
    s->irq = irq;
    s->chr = chr;
    s->lock = lock;
    s->irq_level = 0;
    serial_reset(s);
    if (!bus_register(io_bus, base, UART_IO_LEN, serial_io, s, "serial", errp)) {
        g_free(s);
        return NULL;
    }
    if (chr && !chardev_attach(chr, &serial_chr_handlers, s, errp)) {
        bus_unregister(io_bus, base);
        g_free(s);
        return NULL;
    }
    if (chr) {
        /* a console connected after boot still shows the boot messages */
        chardev_keep_backlog(chr);
    }
    return s;
}

void serial_free(SerialPort *s)
{
    if (!s) {
        return;
    }
    chardev_detach(s->chr);
    bus_unregister(s->bus, s->base);
    g_free(s);
}

/* ---- migration ---- */

/*
 * Version 1 layout (28 bytes): version, divisor (LE16), IER, LCR, MCR,
 * LSR error bits, MSR, SCR, FCR, THRE-pending, RX count, 16 RX bytes
 * oldest first.
 */
bool serial_save(SerialPort *s, GByteArray *out)
{
    uint8_t buf[SERIAL_STATE_SIZE] = {
        SERIAL_STATE_VERSION,
        s->divisor & 0xff,
        s->divisor >> 8,
        s->ier,
        s->lcr,
        s->mcr,
        s->lsr_errors,
        s->msr,
        s->scr,
        s->fcr,
        s->thr_ipending,
        s->rx_count,
    };

    for (unsigned i = 0; i < s->rx_count; i++) {
        buf[12 + i] = s->rx_fifo[(s->rx_head + i) % UART_FIFO_SIZE];
    }
    g_byte_array_append(out, buf, sizeof(buf));
    return true;
}

bool serial_load(SerialPort *s, const uint8_t *buf, size_t len, GError **errp)
{
    unsigned old_space = serial_rx_space(s);
    uint8_t fcr, count;

    if (len < 1 || buf[0] != SERIAL_STATE_VERSION) {
        error_setg(errp, "serial: unsupported state version %d", len ? buf[0] : -1);
        return false;
    }
    if (len != SERIAL_STATE_SIZE) {
        error_setg(errp, "serial: state is %zu bytes, expected %d", len,
                   SERIAL_STATE_SIZE);
        return false;
    }
    fcr = buf[9];
    count = buf[11];
    if ((buf[3] & 0xf0) || (buf[5] & ~UART_MCR_MASK) || (buf[6] & ~UART_LSR_ERRORS) ||
        (fcr & ~(UART_FCR_ENABLE | UART_FCR_DMA | UART_FCR_TRIGGER)) || buf[10] > 1 ||
        count > ((fcr & UART_FCR_ENABLE) ? UART_FIFO_SIZE : 1)) {
        error_setg(errp, "serial: corrupt state");
        return false;
    }
    s->divisor = buf[1] | (buf[2] << 8);
    s->ier = buf[3];
    s->lcr = buf[4];
    s->mcr = buf[5];
    s->lsr_errors = buf[6];
    s->msr = buf[7];
    s->scr = buf[8];
    s->fcr = fcr;
    s->thr_ipending = buf[10];
    s->rx_head = 0;
    s->rx_count = count;
    memcpy(s->rx_fifo, buf + 12, UART_FIFO_SIZE);
    s->irq_level = -1; /* drive the loaded level whatever was there */
    serial_update_irq(s);
    serial_rx_room_changed(s, old_space);
    return true;
}
