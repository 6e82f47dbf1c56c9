/* console.c: serial output (16550 UARTs: COM1, and COM2-COM4 where present),
 * one whole "testos: ..." line at a time under console_lock so lines from
 * different CPUs never interleave.
 * The port I/O happens in ring 0 (cheaper exits); ring 3 prints through user_request. */
#include "testos.h"

#define COM1 0x3f8
#define LSR_THR_EMPTY 0x20
#define LINE_MAX 200

static volatile u32 console_lock;

/* The UARTs every line goes to: COM1 always; COM2-COM4 where one answers
 * (its LSR reads neither 0xff, as an unclaimed port does, nor without the
 * THR-empty bit an idle UART shows: a VMM that reads unclaimed ports as 0
 * must not make every character wait). QEMU numbers
 * -serial options in order and `-serial none` keeps its place, so the
 * seed's `-serial none ... -serial stdio` puts stdio on COM2. */
static const u16 com_ports[] = {0x3f8, 0x2f8, 0x3e8, 0x2e8};
static u16 ports[ARRAY_SIZE(com_ports)];
static u32 nports;

static void uart_init(u16 base)
{
    outb(base + 1, 0x00); /* no UART interrupts */
    outb(base + 3, 0x80); /* DLAB: divisor 1 = 115200 baud */
    outb(base + 0, 0x01);
    outb(base + 1, 0x00);
    outb(base + 3, 0x03); /* 8N1 */
    outb(base + 2, 0x07); /* FIFOs on and cleared */
    outb(base + 4, 0x03); /* DTR, RTS */
}

void console_init(void)
{
    nports = 0;
    for (u32 i = 0; i < ARRAY_SIZE(com_ports); i++) {
        u16 base = com_ports[i];
        u8 lsr = inb(base + 5);
        if (base == COM1 || (lsr != 0xFF && (lsr & LSR_THR_EMPTY))) {
            uart_init(base);
            ports[nports++] = base;
        }
    }
}

static void console_putc(char c)
{
    for (u32 i = 0; i < nports; i++) {
        u16 base = ports[i];
        for (u32 spin = 0; !(inb(base + 5) & LSR_THR_EMPTY) && spin < 1000000; spin++) {
            cpu_relax();
        }
        outb(base, (u8)c);
    }
}

/* Writes text (without prefix or newline) as one line, ring 0. */
void console_write_line(const char *text, size_t len)
{
    spin_lock(&console_lock);
    for (size_t i = 0; i < len; i++) {
        console_putc(text[i]);
    }
    console_putc('\n');
    spin_unlock(&console_lock);
}

static int format_prefixed(char *buf, const char *fmt, __builtin_va_list ap)
{
    static const char prefix[] = "testos: ";
    memcpy(buf, prefix, sizeof(prefix) - 1);
    int len = format_line(buf + sizeof(prefix) - 1, LINE_MAX - sizeof(prefix), fmt, ap);
    return (int)(sizeof(prefix) - 1) + len;
}

void kprintf(const char *fmt, ...)
{
    char buf[LINE_MAX];
    __builtin_va_list ap;

    __builtin_va_start(ap, fmt);
    int len = format_prefixed(buf, fmt, ap);
    __builtin_va_end(ap);
    console_write_line(buf, len);
}

void uprintf(const char *fmt, ...)
{
    char buf[LINE_MAX];
    __builtin_va_list ap;

    __builtin_va_start(ap, fmt);
    int len = format_prefixed(buf, fmt, ap);
    __builtin_va_end(ap);
    user_request(REQ_WRITE, (u64)buf, len);
}

/* For the exception path: waits a bounded time for the lock, then takes it
 * anyway (the faulting CPU may be the one holding it). */
void console_emergency_line(const char *text, size_t len)
{
    for (u32 i = 0; i < 100000 && console_lock; i++) {
        cpu_relax();
    }
    spin_unlock(&console_lock);
    console_write_line(text, len);
}
