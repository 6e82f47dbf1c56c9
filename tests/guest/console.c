/* console.c: COM1 (16550 at 0x3f8) output, one whole "testos: ..." line at a
 * time under console_lock so lines from different CPUs never interleave.
 * The port I/O happens in ring 0 (cheaper exits); ring 3 prints through user_request. */
#include "testos.h"

#define COM1 0x3f8
#define LSR_THR_EMPTY 0x20
#define LINE_MAX 200

static volatile u32 console_lock;

void console_init(void)
{
    outb(COM1 + 1, 0x00); /* no UART interrupts */
    outb(COM1 + 3, 0x80); /* DLAB: divisor 1 = 115200 baud */
    outb(COM1 + 0, 0x01);
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03); /* 8N1 */
    outb(COM1 + 2, 0x07); /* FIFOs on and cleared */
    outb(COM1 + 4, 0x03); /* DTR, RTS */
}

static void console_putc(char c)
{
    while (!(inb(COM1 + 5) & LSR_THR_EMPTY)) {
        cpu_relax();
    }
    outb(COM1, (u8)c);
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
