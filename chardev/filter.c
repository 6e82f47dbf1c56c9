/*
 * Input filters applied before bytes reach a frontend: the telnet decoder
 * (RFC 854 commands stripped) and the Ctrl-A escapes of a muxed console
 * (mon:stdio, mux=on).  Main thread only; both work in place and only
 * ever shrink the data, so the frontend's can_read() budget holds.
 */
#include "chardev-int.h"
#include "util/error.h"

enum {
    TELNET_SE = 240,
    TELNET_SB = 250,
    TELNET_WILL = 251,
    TELNET_DONT = 254,
    TELNET_IAC = 255,
};

#define CTRL_A 0x01

size_t chardev_telnet_decode(TelnetState *state, uint8_t *buf, size_t len)
{
    size_t out = 0;

    for (size_t i = 0; i < len; i++) {
        uint8_t c = buf[i];

        switch (*state) {
        case TELNET_CR:
            /* A telnet client sends Enter as CR NUL: the NUL is padding. */
            *state = TELNET_DATA;
            if (c == 0) {
                break;
            }
            G_GNUC_FALLTHROUGH;
        case TELNET_DATA:
            if (c == TELNET_IAC) {
                *state = TELNET_IAC_SEEN;
            } else {
                buf[out++] = c;
                if (c == '\r') {
                    *state = TELNET_CR;
                }
            }
            break;
        case TELNET_IAC_SEEN:
            if (c == TELNET_IAC) {
                buf[out++] = c; /* IAC IAC is a data byte 0xff */
                *state = TELNET_DATA;
            } else if (c >= TELNET_WILL && c <= TELNET_DONT) {
                *state = TELNET_OPTION;
            } else if (c == TELNET_SB) {
                *state = TELNET_SUB;
            } else {
                *state = TELNET_DATA; /* NOP, BRK, AYT, GA...: dropped */
            }
            break;
        case TELNET_OPTION:
            *state = TELNET_DATA;
            break;
        case TELNET_SUB:
            if (c == TELNET_IAC) {
                *state = TELNET_SUB_IAC;
            }
            break;
        case TELNET_SUB_IAC:
            *state = c == TELNET_SE ? TELNET_DATA : TELNET_SUB;
            break;
        }
    }
    return out;
}

static const char mux_help[] = "\r\n"
                               "C-a h    print this help\r\n"
                               "C-a x    exit emulator\r\n"
                               "C-a c    switch between console and monitor\r\n"
                               "C-a C-a  sends C-a\r\n";

static void mux_quit(Chardev *chr)
{
    static const char terminated[] = "QEMU: Terminated\n\r";

    chardev_write(chr, terminated, sizeof(terminated) - 1);
    if (chr->set->quit_fn) {
        chr->set->quit_fn(chr->set->quit_opaque);
    } else {
        warn_report("chardev '%s': C-a x: no quit handler set", chr->id);
    }
}

size_t chardev_mux_filter(Chardev *chr, uint8_t *buf, size_t len)
{
    size_t out = 0;

    for (size_t i = 0; i < len; i++) {
        uint8_t c = buf[i];

        if (!chr->mux_escape) {
            if (c == CTRL_A) {
                chr->mux_escape = true;
            } else {
                buf[out++] = c;
            }
            continue;
        }
        chr->mux_escape = false;
        switch (c) {
        case CTRL_A:
            buf[out++] = c;
            break;
        case 'h':
        case '?':
            chardev_write(chr, mux_help, sizeof(mux_help) - 1);
            break;
        case 'x':
            mux_quit(chr);
            break;
        case 'c':
            chardev_mux_switch_focus(chr);
            break;
        default:
            break; /* unknown escapes are swallowed */
        }
    }
    return out;
}
