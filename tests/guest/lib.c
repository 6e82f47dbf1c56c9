/* lib.c: the freestanding C helpers testos needs (memory, strings, a small
 * printf-style formatter, spinlocks). Pure code: runs in ring 0 or ring 3. */
#include "testos.h"

void *memset(void *dst, int c, size_t n)
{
    u8 *d = dst;
    while (n--) {
        *d++ = (u8)c;
    }
    return dst;
}

void *memcpy(void *dst, const void *src, size_t n)
{
    u8 *d = dst;
    const u8 *s = src;
    while (n--) {
        *d++ = *s++;
    }
    return dst;
}

size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n]) {
        n++;
    }
    return n;
}

int strncmp(const char *a, const char *b, size_t n)
{
    for (; n; n--, a++, b++) {
        if (*a != *b || !*a) {
            return (u8)*a - (u8)*b;
        }
    }
    return 0;
}

typedef struct Out {
    char *buf;
    size_t size;
    size_t len;
} Out;

static void out_char(Out *out, char c)
{
    if (out->len + 1 < out->size) {
        out->buf[out->len++] = c;
    }
}

static void out_number(Out *out, u64 value, unsigned base, int negative)
{
    char digits[24];
    int n = 0;

    do {
        digits[n++] = "0123456789abcdef"[value % base];
        value /= base;
    } while (value);
    if (negative) {
        out_char(out, '-');
    }
    while (n) {
        out_char(out, digits[--n]);
    }
}

/* Formats into buf (always NUL-terminated); returns the length. Supports
 * %s %c %d %u %x with an optional l, and %%. */
int format_line(char *buf, size_t size, const char *fmt, __builtin_va_list ap)
{
    Out out = {buf, size, 0};

    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            out_char(&out, *fmt);
            continue;
        }
        int is_long = 0;
        fmt++;
        while (*fmt == 'l') {
            is_long = 1;
            fmt++;
        }
        switch (*fmt) {
        case 's': {
            const char *s = __builtin_va_arg(ap, const char *);
            while (*s) {
                out_char(&out, *s++);
            }
            break;
        }
        case 'c':
            out_char(&out, (char)__builtin_va_arg(ap, int));
            break;
        case 'd': {
            long v = is_long ? __builtin_va_arg(ap, long) : __builtin_va_arg(ap, int);
            out_number(&out, v < 0 ? -(u64)v : (u64)v, 10, v < 0);
            break;
        }
        case 'u':
        case 'x': {
            u64 v = is_long ? __builtin_va_arg(ap, u64) : __builtin_va_arg(ap, u32);
            out_number(&out, v, *fmt == 'u' ? 10 : 16, 0);
            break;
        }
        case '%':
            out_char(&out, '%');
            break;
        case '\0':
            fmt--; /* a lone '%' at the end */
            break;
        default:
            out_char(&out, '?');
            break;
        }
    }
    if (out.size) {
        out.buf[out.len] = '\0';
    }
    return (int)out.len;
}

int snformat(char *buf, size_t size, const char *fmt, ...)
{
    __builtin_va_list ap;

    __builtin_va_start(ap, fmt);
    int len = format_line(buf, size, fmt, ap);
    __builtin_va_end(ap);
    return len;
}

void spin_lock(volatile u32 *lock)
{
    while (__atomic_exchange_n(lock, 1, __ATOMIC_ACQUIRE)) {
        while (*lock) {
            cpu_relax();
        }
    }
}

void spin_unlock(volatile u32 *lock)
{
    __atomic_store_n(lock, 0, __ATOMIC_RELEASE);
}
