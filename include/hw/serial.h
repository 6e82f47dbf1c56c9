/*
 * 16550A UART (COM1-COM4).  Register accesses arrive on vCPU threads with
 * the machine lock held; input from the chardev arrives on the main thread,
 * which takes the same lock before touching the UART.
 */
#ifndef HW_SERIAL_H
#define HW_SERIAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <glib.h>

#include "chardev/chardev.h"
#include "hw/bus.h"
#include "hw/irq.h"

typedef struct SerialPort SerialPort;

/* Standard PC resources of COM(index+1): 0x3f8/4, 0x2f8/3, 0x3e8/4, 0x2e8/3. */
uint16_t serial_isa_base(unsigned index);
int serial_isa_irq(unsigned index);

/*
 * Create a UART at base on io_bus, raising irq, talking to chr (may be NULL:
 * output discarded, no input).  lock is the machine lock.
 */
SerialPort *serial_new(Bus *io_bus, uint16_t base, IrqLine irq, Chardev *chr,
                       pthread_mutex_t *lock, GError **errp);
/* Back to power-on state (called with the machine lock held). */
void serial_reset(SerialPort *s);
void serial_free(SerialPort *s);

/*
 * Device state for migration, versioned (machine lock held).  serial_load
 * refuses an unknown version, a wrong length or out-of-range fields and
 * then leaves the UART untouched.
 */
bool serial_save(SerialPort *s, GByteArray *out);
bool serial_load(SerialPort *s, const uint8_t *buf, size_t len, GError **errp);

#endif
