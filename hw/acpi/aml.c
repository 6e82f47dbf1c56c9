/*
 * The AML encoder (include/hw/acpi/aml.h): each term is a node holding its
 * opcode and the bytes of its body; a container's PkgLength is worked out
 * when the container is encoded into its parent, once its size is known.
 * Section numbers are those of ACPI 6.4.  No global state.
 */
#include <stdarg.h>
#include <string.h>

#include "hw/acpi/aml.h"

/* Opcodes (20.3 AML Byte Stream Byte Values). */
#define AML_ZERO_OP               0x00
#define AML_ONE_OP                0x01
#define AML_NAME_OP               0x08
#define AML_BYTE_PREFIX           0x0a
#define AML_WORD_PREFIX           0x0b
#define AML_DWORD_PREFIX          0x0c
#define AML_STRING_PREFIX         0x0d
#define AML_QWORD_PREFIX          0x0e
#define AML_SCOPE_OP              0x10
#define AML_BUFFER_OP             0x11
#define AML_PACKAGE_OP            0x12
#define AML_METHOD_OP             0x14
#define AML_DUAL_NAME             0x2e
#define AML_MULTI_NAME            0x2f
#define AML_EXT_OP                0x5b
#define AML_ROOT_CHAR             0x5c
#define AML_PARENT_CHAR           0x5e
#define AML_LOCAL0_OP             0x60
#define AML_ARG0_OP               0x68
#define AML_STORE_OP              0x70
#define AML_SHIFT_LEFT_OP         0x79
#define AML_AND_OP                0x7b
#define AML_OR_OP                 0x7d
#define AML_NOTIFY_OP             0x86
#define AML_CREATE_DWORD_FIELD_OP 0x8a
#define AML_LEQUAL_OP             0x93
#define AML_LLESS_OP              0x95
#define AML_IF_OP                 0xa0
#define AML_ELSE_OP               0xa1
#define AML_RETURN_OP             0xa4
#define AML_ONES_OP               0xff
/* after AML_EXT_OP */
#define AML_EXT_MUTEX_OP   0x01
#define AML_EXT_ACQUIRE_OP 0x23
#define AML_EXT_RELEASE_OP 0x27
#define AML_EXT_REGION_OP  0x80
#define AML_EXT_FIELD_OP   0x81
#define AML_EXT_DEVICE_OP  0x82

/* Resource descriptor tags (6.4.2 small, 6.4.3 large). */
#define RES_IRQ_NO_FLAGS  0x22 /* small item 4, length 2 */
#define RES_IO            0x47 /* small item 8, length 7 */
#define RES_END_TAG       0x79 /* small item 0xf, length 1 */
#define RES_DWORD_ADDRESS 0x87
#define RES_WORD_ADDRESS  0x88
#define RES_EXT_INTERRUPT 0x89
#define RES_QWORD_ADDRESS 0x8a
/* Address space resource types and general flags (6.4.3.5, table 6.45) */
#define RES_TYPE_MEMORY          0
#define RES_TYPE_IO              1
#define RES_TYPE_BUS             2
#define RES_FLAGS_PRODUCER_FIXED 0x0c /* _MAF, _MIF fixed; positive decode */

typedef enum AmlKind {
    AML_TERM,      /* body is the whole encoding */
    AML_PKG,       /* opcode, PkgLength, body */
    AML_PACKAGE,   /* opcode, PkgLength, NumElements, body */
    AML_RESOURCES, /* Buffer of descriptors, EndTag added on encoding */
} AmlKind;

struct Aml {
    AmlKind kind;
    uint8_t op[2];
    unsigned op_len;
    unsigned count; /* package elements so far */
    GByteArray *body;
};

static Aml *aml_new(AmlKind kind, int op, int ext_op)
{
    Aml *a = g_new0(Aml, 1);

    a->kind = kind;
    if (op >= 0) {
        a->op[a->op_len++] = op;
    }
    if (ext_op >= 0) {
        a->op[a->op_len++] = ext_op;
    }
    a->body = g_byte_array_new();
    return a;
}

static void put_byte(GByteArray *b, uint8_t v)
{
    g_byte_array_append(b, &v, 1);
}

static void put_le(GByteArray *b, uint64_t v, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; i++) {
        put_byte(b, v >> (8 * i));
    }
}

/*
 * PkgLength (20.2.4): one byte holds up to 63; longer lengths take 1-3
 * more bytes, the lead byte giving their count in bits 7-6 and the low
 * nibble in bits 3-0.  With include_self the length counts its own bytes
 * (containers); without, it is a plain value (field widths, 20.2.5.2).
 */
static void put_pkglength(GByteArray *b, size_t length, bool include_self)
{
    unsigned extra;
    size_t total;

    if (length + include_self <= 0x3f) {
        put_byte(b, length + include_self);
        return;
    }
    for (extra = 1; extra < 3; extra++) {
        if (length + (include_self ? extra + 1 : 0) < (1u << (4 + 8 * extra))) {
            break;
        }
    }
    total = length + (include_self ? extra + 1 : 0);
    g_assert(total < (1u << 28));
    put_byte(b, (extra << 6) | (total & 0xf));
    for (unsigned i = 0; i < extra; i++) {
        put_byte(b, total >> (4 + 8 * i));
    }
}

static bool name_char_ok(char c, bool lead)
{
    return c == '_' || (c >= 'A' && c <= 'Z') || (!lead && c >= '0' && c <= '9');
}

/*
 * NameString (20.2.2): root or parent prefixes, then no segment (NullName),
 * one, two (DualNamePrefix) or more (MultiNamePrefix, count) NameSegs of
 * four characters, short ones padded with '_'.
 */
static void put_namestring(GByteArray *b, const char *path)
{
    gchar **segs;
    unsigned n;

    while (*path == '\\' || *path == '^') {
        put_byte(b, *path == '\\' ? AML_ROOT_CHAR : AML_PARENT_CHAR);
        path++;
    }
    segs = g_strsplit(path, ".", -1);
    n = *path ? g_strv_length(segs) : 0;
    if (n == 0) {
        put_byte(b, AML_ZERO_OP); /* NullName */
    } else if (n == 2) {
        put_byte(b, AML_DUAL_NAME);
    } else if (n > 2) {
        g_assert(n < 256);
        put_byte(b, AML_MULTI_NAME);
        put_byte(b, n);
    }
    for (unsigned i = 0; i < n; i++) {
        size_t len = strlen(segs[i]);
        g_assert(len >= 1 && len <= 4);
        for (size_t j = 0; j < 4; j++) {
            char c = j < len ? segs[i][j] : '_';
            g_assert(name_char_ok(c, j == 0));
            put_byte(b, c);
        }
    }
    g_strfreev(segs);
}

void aml_free(Aml *a)
{
    if (a) {
        g_byte_array_free(a->body, TRUE);
        g_free(a);
    }
}

void aml_encode(GByteArray *out, Aml *a)
{
    g_byte_array_append(out, a->op, a->op_len);
    switch (a->kind) {
    case AML_TERM:
        break;
    case AML_PKG:
        put_pkglength(out, a->body->len, true);
        break;
    case AML_PACKAGE:
        put_pkglength(out, a->body->len + 1, true);
        put_byte(out, a->count);
        break;
    case AML_RESOURCES: {
        /* 6.4.2.9 End Tag: checksum 0 means "the sum is not checked" */
        uint8_t end[2] = { RES_END_TAG, 0 };
        GByteArray *size = g_byte_array_new();
        Aml *n = aml_int(a->body->len + sizeof(end));

        aml_encode(size, n);
        put_pkglength(out, size->len + a->body->len + sizeof(end), true);
        g_byte_array_append(out, size->data, size->len);
        g_byte_array_append(a->body, end, sizeof(end));
        g_byte_array_free(size, TRUE);
        break;
    }
    }
    g_byte_array_append(out, a->body->data, a->body->len);
    aml_free(a);
}

void aml_append(Aml *parent, Aml *child)
{
    g_assert(parent->kind != AML_TERM);
    if (parent->kind == AML_PACKAGE) {
        g_assert(parent->count < 255);
        parent->count++;
    }
    aml_encode(parent->body, child);
}

/* A term made of its opcode and the encodings of args (consumed). */
static Aml *aml_op_terms(int op, int ext_op, unsigned n, Aml **args)
{
    Aml *a = aml_new(AML_TERM, op, ext_op);

    for (unsigned i = 0; i < n; i++) {
        if (args[i]) {
            aml_encode(a->body, args[i]);
        } else {
            put_byte(a->body, AML_ZERO_OP); /* NullName: no target */
        }
    }
    return a;
}

/* ---- data ---- */

Aml *aml_int(uint64_t value)
{
    Aml *a = aml_new(AML_TERM, -1, -1);

    if (value == 0) {
        put_byte(a->body, AML_ZERO_OP);
    } else if (value == 1) {
        put_byte(a->body, AML_ONE_OP);
    } else if (value == UINT64_MAX) {
        put_byte(a->body, AML_ONES_OP);
    } else if (value <= 0xff) {
        put_byte(a->body, AML_BYTE_PREFIX);
        put_le(a->body, value, 1);
    } else if (value <= 0xffff) {
        put_byte(a->body, AML_WORD_PREFIX);
        put_le(a->body, value, 2);
    } else if (value <= 0xffffffff) {
        put_byte(a->body, AML_DWORD_PREFIX);
        put_le(a->body, value, 4);
    } else {
        put_byte(a->body, AML_QWORD_PREFIX);
        put_le(a->body, value, 8);
    }
    return a;
}

Aml *aml_dword(uint32_t value)
{
    Aml *a = aml_new(AML_TERM, AML_DWORD_PREFIX, -1);

    put_le(a->body, value, 4);
    return a;
}

Aml *aml_string(const char *s)
{
    Aml *a = aml_new(AML_TERM, AML_STRING_PREFIX, -1);

    g_byte_array_append(a->body, (const guint8 *)s, strlen(s) + 1);
    return a;
}

static unsigned hex_digit(char c)
{
    g_assert(g_ascii_isxdigit(c));
    return g_ascii_xdigit_value(c);
}

/*
 * 6.1.5 _HID: an EISA id is three letters of 5 bits each ('A' = 1) and
 * four hex digits, stored big-endian in a DWord.
 */
Aml *aml_eisaid(const char *id)
{
    uint32_t v;

    g_assert(strlen(id) == 7);
    for (int i = 0; i < 3; i++) {
        g_assert(id[i] >= 'A' && id[i] <= 'Z');
    }
    v = (uint32_t)((id[0] - '@') << 26 | (id[1] - '@') << 21 | (id[2] - '@') << 16);
    v |= hex_digit(id[3]) << 12 | hex_digit(id[4]) << 8 | hex_digit(id[5]) << 4 |
         hex_digit(id[6]);
    return aml_dword(GUINT32_SWAP_LE_BE(v));
}

Aml *aml_buffer(const uint8_t *data, size_t len)
{
    Aml *a = aml_new(AML_PKG, AML_BUFFER_OP, -1);

    aml_encode(a->body, aml_int(len));
    g_byte_array_append(a->body, data, len);
    return a;
}

Aml *aml_package(void)
{
    return aml_new(AML_PACKAGE, AML_PACKAGE_OP, -1);
}

Aml *aml_name(const char *path)
{
    Aml *a = aml_new(AML_TERM, -1, -1);

    put_namestring(a->body, path);
    return a;
}

Aml *aml_local(unsigned n)
{
    g_assert(n <= 7);
    return aml_new(AML_TERM, AML_LOCAL0_OP + n, -1);
}

Aml *aml_arg(unsigned n)
{
    g_assert(n <= 6);
    return aml_new(AML_TERM, AML_ARG0_OP + n, -1);
}

/* ---- named objects ---- */

Aml *aml_name_decl(const char *path, Aml *value)
{
    Aml *a = aml_new(AML_TERM, AML_NAME_OP, -1);

    put_namestring(a->body, path);
    aml_encode(a->body, value);
    return a;
}

/* 20.2.5.1 DefScope := ScopeOp PkgLength NameString TermList */
Aml *aml_scope(const char *path)
{
    Aml *a = aml_new(AML_PKG, AML_SCOPE_OP, -1);

    put_namestring(a->body, path);
    return a;
}

/* 20.2.5.2 DefDevice := DeviceOp PkgLength NameString TermList */
Aml *aml_device(const char *path)
{
    Aml *a = aml_new(AML_PKG, AML_EXT_OP, AML_EXT_DEVICE_OP);

    put_namestring(a->body, path);
    return a;
}

/* 20.2.5.2 DefMethod := MethodOp PkgLength NameString MethodFlags TermList;
 * flags: bits 0-2 ArgCount, bit 3 SerializeFlag, bits 4-7 SyncLevel 0 */
Aml *aml_method(const char *path, unsigned nargs, bool serialized)
{
    Aml *a = aml_new(AML_PKG, AML_METHOD_OP, -1);

    g_assert(nargs <= 7);
    put_namestring(a->body, path);
    put_byte(a->body, nargs | (serialized ? 0x08 : 0));
    return a;
}

/* 20.2.5.2 DefOpRegion := OpRegionOp NameString RegionSpace RegionOffset RegionLen */
Aml *aml_operation_region(const char *path, AmlRegionSpace space, Aml *offset,
                          Aml *length)
{
    Aml *a = aml_new(AML_TERM, AML_EXT_OP, AML_EXT_REGION_OP);

    put_namestring(a->body, path);
    put_byte(a->body, space);
    aml_encode(a->body, offset);
    aml_encode(a->body, length);
    return a;
}

/* 20.2.5.2 DefField := FieldOp PkgLength NameString FieldFlags FieldList;
 * flags: bits 0-3 AccessType, bit 4 LockRule, bits 5-6 UpdateRule */
Aml *aml_field(const char *region, AmlAccess access, bool lock, AmlUpdate update)
{
    Aml *a = aml_new(AML_PKG, AML_EXT_OP, AML_EXT_FIELD_OP);

    put_namestring(a->body, region);
    put_byte(a->body, access | (lock ? 0x10 : 0) | update << 5);
    return a;
}

/* 20.2.5.2 NamedField := NameSeg PkgLength (the width in bits) */
Aml *aml_named_field(const char *name, unsigned bits)
{
    Aml *a = aml_new(AML_TERM, -1, -1);

    g_assert(strlen(name) <= 4 && !strchr(name, '.') && name[0] != '\\');
    put_namestring(a->body, name);
    put_pkglength(a->body, bits, false);
    return a;
}

/* 20.2.5.2 ReservedField := 0x00 PkgLength */
Aml *aml_reserved_field(unsigned bits)
{
    Aml *a = aml_new(AML_TERM, 0x00, -1);

    put_pkglength(a->body, bits, false);
    return a;
}

/* 20.2.5.2 DefMutex := MutexOp NameString SyncFlags */
Aml *aml_mutex(const char *path, unsigned sync_level)
{
    Aml *a = aml_new(AML_TERM, AML_EXT_OP, AML_EXT_MUTEX_OP);

    g_assert(sync_level <= 15);
    put_namestring(a->body, path);
    put_byte(a->body, sync_level);
    return a;
}

/* 20.2.5.2 DefCreateDWordField := CreateDWordFieldOp SourceBuff ByteIndex NameString */
Aml *aml_create_dword_field(Aml *buffer, Aml *index, const char *path)
{
    Aml *args[] = { buffer, index };
    Aml *a = aml_op_terms(AML_CREATE_DWORD_FIELD_OP, -1, 2, args);

    put_namestring(a->body, path);
    return a;
}

/* ---- statements and expressions ---- */

/* 20.2.5.3 DefIfElse := IfOp PkgLength Predicate TermList DefElse */
Aml *aml_if(Aml *predicate)
{
    Aml *a = aml_new(AML_PKG, AML_IF_OP, -1);

    aml_encode(a->body, predicate);
    return a;
}

/* 20.2.5.3 DefElse := ElseOp PkgLength TermList (right after its If) */
Aml *aml_else(void)
{
    return aml_new(AML_PKG, AML_ELSE_OP, -1);
}

/* 20.2.5.3 DefReturn := ReturnOp ArgObject */
Aml *aml_return(Aml *value)
{
    return aml_op_terms(AML_RETURN_OP, -1, 1, &value);
}

/* 20.2.5.3 DefNotify := NotifyOp NotifyObject NotifyValue */
Aml *aml_notify(Aml *object, Aml *value)
{
    Aml *args[] = { object, value };

    return aml_op_terms(AML_NOTIFY_OP, -1, 2, args);
}

/* 20.2.5.4 DefStore := StoreOp TermArg SuperName */
Aml *aml_store(Aml *value, Aml *target)
{
    Aml *args[] = { value, target };

    return aml_op_terms(AML_STORE_OP, -1, 2, args);
}

/* 20.2.5.4 DefAcquire := AcquireOp MutexObject Timeout (WordData) */
Aml *aml_acquire(Aml *mutex, uint16_t timeout)
{
    Aml *a = aml_op_terms(AML_EXT_OP, AML_EXT_ACQUIRE_OP, 1, &mutex);

    put_le(a->body, timeout, 2);
    return a;
}

/* 20.2.5.3 DefRelease := ReleaseOp MutexObject */
Aml *aml_release(Aml *mutex)
{
    return aml_op_terms(AML_EXT_OP, AML_EXT_RELEASE_OP, 1, &mutex);
}

/* 20.2.5.4 DefAnd := AndOp Operand Operand Target */
Aml *aml_and(Aml *a, Aml *b, Aml *target)
{
    Aml *args[] = { a, b, target };

    return aml_op_terms(AML_AND_OP, -1, 3, args);
}

/* 20.2.5.4 DefOr := OrOp Operand Operand Target */
Aml *aml_or(Aml *a, Aml *b, Aml *target)
{
    Aml *args[] = { a, b, target };

    return aml_op_terms(AML_OR_OP, -1, 3, args);
}

/* 20.2.5.4 DefShiftLeft := ShiftLeftOp Operand ShiftCount Target */
Aml *aml_shiftleft(Aml *value, Aml *count, Aml *target)
{
    Aml *args[] = { value, count, target };

    return aml_op_terms(AML_SHIFT_LEFT_OP, -1, 3, args);
}

/* 20.2.5.4 DefLEqual := LequalOp Operand Operand */
Aml *aml_lequal(Aml *a, Aml *b)
{
    Aml *args[] = { a, b };

    return aml_op_terms(AML_LEQUAL_OP, -1, 2, args);
}

/* 20.2.5.4 DefLLess := LlessOp Operand Operand */
Aml *aml_lless(Aml *a, Aml *b)
{
    Aml *args[] = { a, b };

    return aml_op_terms(AML_LLESS_OP, -1, 2, args);
}

/* 20.2.5.4 MethodInvocation := NameString TermArgList */
Aml *aml_call(const char *method, unsigned nargs, ...)
{
    Aml *a = aml_name(method);
    va_list ap;

    g_assert(nargs <= 7);
    va_start(ap, nargs);
    for (unsigned i = 0; i < nargs; i++) {
        aml_encode(a->body, va_arg(ap, Aml *));
    }
    va_end(ap);
    return a;
}

/* ---- resource templates ---- */

Aml *aml_resource_template(void)
{
    return aml_new(AML_RESOURCES, AML_BUFFER_OP, -1);
}

static Aml *aml_raw(const uint8_t *bytes, size_t len)
{
    Aml *a = aml_new(AML_TERM, -1, -1);

    g_byte_array_append(a->body, bytes, len);
    return a;
}

/* 6.4.2.5 I/O Port Descriptor; information bit 0: 16-bit decode */
Aml *aml_io(uint16_t min, uint16_t max, uint8_t align, uint8_t length)
{
    uint8_t d[8] = { RES_IO, 1, min, min >> 8, max, max >> 8, align, length };

    return aml_raw(d, sizeof(d));
}

/* 6.4.2.1 IRQ Descriptor, the two-byte form: a mask of IRQs 0-15 */
Aml *aml_irq_no_flags(unsigned irq)
{
    uint8_t d[3] = { RES_IRQ_NO_FLAGS, (1u << irq) & 0xff, (1u << irq) >> 8 };

    g_assert(irq < 16);
    return aml_raw(d, sizeof(d));
}

/* 6.4.3.6 Extended Interrupt Descriptor; flags: bit 0 consumer, bit 1
 * edge-triggered, bit 2 active-low, bit 3 shared */
Aml *aml_interrupt(bool level, bool active_low, bool shared, const uint32_t *irqs,
                   unsigned count)
{
    Aml *a = aml_new(AML_TERM, -1, -1);

    g_assert(count >= 1 && count <= 255);
    put_byte(a->body, RES_EXT_INTERRUPT);
    put_le(a->body, 2 + 4 * count, 2);
    put_byte(a->body,
             0x01 | (level ? 0 : 0x02) | (active_low ? 0x04 : 0) | (shared ? 0x08 : 0));
    put_byte(a->body, count);
    for (unsigned i = 0; i < count; i++) {
        put_le(a->body, irqs[i], 4);
    }
    return a;
}

/*
 * 6.4.3.5 Address Space Descriptors: tag, length, resource type, general
 * flags, type-specific flags, then granularity (0), minimum, maximum,
 * translation offset (0) and length, each of width bytes.
 */
static Aml *aml_address_space(uint8_t tag, unsigned width, uint8_t type,
                              uint8_t type_flags, uint64_t min, uint64_t max)
{
    Aml *a = aml_new(AML_TERM, -1, -1);

    put_byte(a->body, tag);
    put_le(a->body, 3 + 5 * width, 2);
    put_byte(a->body, type);
    put_byte(a->body, RES_FLAGS_PRODUCER_FIXED);
    put_byte(a->body, type_flags);
    put_le(a->body, 0, width);
    put_le(a->body, min, width);
    put_le(a->body, max, width);
    put_le(a->body, 0, width);
    put_le(a->body, max - min + 1, width);
    return a;
}

/* 6.4.3.5.3 Word Address Space Descriptor, bus number range */
Aml *aml_word_bus_number(uint16_t min, uint16_t max)
{
    return aml_address_space(RES_WORD_ADDRESS, 2, RES_TYPE_BUS, 0, min, max);
}

/* 6.4.3.5.3 Word Address Space Descriptor, I/O; _RNG 3: entire range */
Aml *aml_word_io(uint16_t min, uint16_t max)
{
    return aml_address_space(RES_WORD_ADDRESS, 2, RES_TYPE_IO, 0x03, min, max);
}

/* 6.4.3.5.2 DWord Address Space Descriptor, memory; table 6.50: bit 0
 * read-write, bits 1-2 _MEM (1 = cacheable) */
Aml *aml_dword_memory(bool cacheable, uint32_t min, uint32_t max)
{
    return aml_address_space(RES_DWORD_ADDRESS, 4, RES_TYPE_MEMORY,
                             0x01 | (cacheable ? 0x02 : 0), min, max);
}

/* 6.4.3.5.1 QWord Address Space Descriptor, memory */
Aml *aml_qword_memory(bool cacheable, uint64_t min, uint64_t max)
{
    return aml_address_space(RES_QWORD_ADDRESS, 8, RES_TYPE_MEMORY,
                             0x01 | (cacheable ? 0x02 : 0), min, max);
}

/* 6.2.13 _PRT: {Address (slot, any function), Pin, Source, Source Index} */
Aml *aml_prt_entry(unsigned slot, unsigned pin, const char *link)
{
    Aml *p = aml_package();

    g_assert(slot < 32 && pin < 4);
    aml_append(p, aml_dword(slot << 16 | 0xffff));
    aml_append(p, aml_int(pin));
    aml_append(p, aml_name(link));
    aml_append(p, aml_int(0));
    return p;
}
