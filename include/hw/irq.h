/*
 * An interrupt line a device drives: level 1 asserts, 0 deasserts.  For
 * the in-kernel irqchip this ends in KVM_IRQ_LINE, which is thread-safe.
 */
#ifndef HW_IRQ_H
#define HW_IRQ_H

typedef void (*IrqSetFn)(void *opaque, int gsi, int level);

typedef struct IrqLine {
    IrqSetFn set;
    void *opaque;
    int gsi;
} IrqLine;

static inline void irq_set_level(const IrqLine *irq, int level)
{
    if (irq && irq->set) {
        irq->set(irq->opaque, irq->gsi, level);
    }
}

#endif
