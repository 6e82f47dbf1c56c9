/*
 * A small AML encoder (ACPI 6.4, chapter 20 "ACPI Machine Language
 * Specification", and section 6.4 "Resource Data Types"): enough terms to
 * write the pc machine's DSDT.  A term is an Aml; containers (scopes,
 * devices, methods, If/Else, packages, fields, resource templates) take
 * their contents with aml_append, which consumes the child.  aml_encode
 * turns a finished tree into bytes.  No global state; not thread-safe per
 * tree.  Names are ASL paths ("\\_SB.PCI0", "^S02", "LNKA"); a bad name is
 * a programming error (g_assert).
 */
#ifndef HW_ACPI_AML_H
#define HW_ACPI_AML_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Aml Aml;

/* Field access types, lock and update rules (section 19.6.48 Field). */
typedef enum AmlAccess {
    AML_ACCESS_ANY = 0,
    AML_ACCESS_BYTE = 1,
    AML_ACCESS_WORD = 2,
    AML_ACCESS_DWORD = 3,
} AmlAccess;

typedef enum AmlUpdate {
    AML_PRESERVE = 0,
    AML_WRITE_AS_ONES = 1,
    AML_WRITE_AS_ZEROS = 2,
} AmlUpdate;

/* Operation region spaces (section 19.6.100 OperationRegion). */
typedef enum AmlRegionSpace {
    AML_SYSTEM_MEMORY = 0,
    AML_SYSTEM_IO = 1,
    AML_PCI_CONFIG = 2,
} AmlRegionSpace;

/* ---- the tree ---- */

/* Append child's encoding to parent (a container) and free child. */
void aml_append(Aml *parent, Aml *child);
/* Append the encoding of a to out and free a. */
void aml_encode(GByteArray *out, Aml *a);
void aml_free(Aml *a);

/* ---- data (20.2.3 Data Objects Encoding) ---- */

/* The shortest integer form: Zero, One, Ones, Byte/Word/DWord/QWordConst. */
Aml *aml_int(uint64_t value);
/* Always a DWordConst (for values patched or compared byte-wise). */
Aml *aml_dword(uint32_t value);
Aml *aml_string(const char *s);
/* EisaId("PNP0A03"): the compressed 32-bit id (section 6.1.5 _HID). */
Aml *aml_eisaid(const char *id);
/* Buffer (20.2.5.4 DefBuffer) holding len bytes. */
Aml *aml_buffer(const uint8_t *data, size_t len);
/* Package (20.2.5.4 DefPackage): up to 255 elements, appended. */
Aml *aml_package(void);
/* A reference to a named object (20.2.2 Name Objects Encoding). */
Aml *aml_name(const char *path);
/* Local0-Local7 and Arg0-Arg6 (20.2.6.2 Local Objects, 20.2.6.1 Args). */
Aml *aml_local(unsigned n);
Aml *aml_arg(unsigned n);

/* ---- named objects and namespace modifiers (20.2.5.1, 20.2.5.2) ---- */

/* Name (path, value) */
Aml *aml_name_decl(const char *path, Aml *value);
/* Scope (path) { ... } */
Aml *aml_scope(const char *path);
/* Device (path) { ... } */
Aml *aml_device(const char *path);
/* Method (path, nargs, Serialized/NotSerialized) { ... } */
Aml *aml_method(const char *path, unsigned nargs, bool serialized);
/* OperationRegion (path, space, offset, length) */
Aml *aml_operation_region(const char *path, AmlRegionSpace space, Aml *offset,
                          Aml *length);
/* Field (region, access, NoLock|Lock, update) { ... } of named/reserved fields */
Aml *aml_field(const char *region, AmlAccess access, bool lock, AmlUpdate update);
Aml *aml_named_field(const char *name, unsigned bits);
Aml *aml_reserved_field(unsigned bits);
/* Mutex (path, sync level) */
Aml *aml_mutex(const char *path, unsigned sync_level);
/* CreateDWordField (buffer, byte index, path) */
Aml *aml_create_dword_field(Aml *buffer, Aml *index, const char *path);

/* ---- statements and expressions (20.2.5.3, 20.2.5.4) ---- */

Aml *aml_if(Aml *predicate);
Aml *aml_else(void);
Aml *aml_return(Aml *value);
Aml *aml_notify(Aml *object, Aml *value);
Aml *aml_store(Aml *value, Aml *target);
Aml *aml_acquire(Aml *mutex, uint16_t timeout);
Aml *aml_release(Aml *mutex);
/* target may be NULL (no result stored) */
Aml *aml_and(Aml *a, Aml *b, Aml *target);
Aml *aml_or(Aml *a, Aml *b, Aml *target);
Aml *aml_shiftleft(Aml *value, Aml *count, Aml *target);
Aml *aml_lequal(Aml *a, Aml *b);
Aml *aml_lless(Aml *a, Aml *b);
/* A method call: the method's name followed by nargs argument terms. */
Aml *aml_call(const char *method, unsigned nargs, ...);

/* ---- resource templates (section 6.4) ---- */

/* ResourceTemplate () { ... }: a Buffer of descriptors closed by EndTag. */
Aml *aml_resource_template(void);
/* IO (Decode16, min, max, align, length) (6.4.2.5) */
Aml *aml_io(uint16_t min, uint16_t max, uint8_t align, uint8_t length);
/* IRQNoFlags () {irq} (6.4.2.1) */
Aml *aml_irq_no_flags(unsigned irq);
/* Interrupt (ResourceConsumer, Level|Edge, ActiveHigh|Low, Shared|Exclusive)
 * {irqs} (6.4.3.6 Extended Interrupt Descriptor) */
Aml *aml_interrupt(bool level, bool active_low, bool shared, const uint32_t *irqs,
                   unsigned count);
/* Producers with fixed minimum and maximum, positive decode (6.4.3.5):
 * WordBusNumber, WordIO (EntireRange), DWordMemory and QWordMemory
 * (ReadWrite, Cacheable or NonCacheable). */
Aml *aml_word_bus_number(uint16_t min, uint16_t max);
Aml *aml_word_io(uint16_t min, uint16_t max);
Aml *aml_dword_memory(bool cacheable, uint32_t min, uint32_t max);
Aml *aml_qword_memory(bool cacheable, uint64_t min, uint64_t max);

/* ---- PCI interrupt routing (section 6.2.13 _PRT) ---- */

/* Package { slot << 16 | 0xFFFF, pin (0 = INTA), link, 0 } */
Aml *aml_prt_entry(unsigned slot, unsigned pin, const char *link);

#endif
