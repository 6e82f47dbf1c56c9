/*
 * Split-ring processing without KVM, against a malloc'd guest RAM: chains,
 * indirect tables, event index, and every hostile ring the device must
 * survive.
 */
#include <errno.h>
#include <string.h>

#include "hw/virtio.h"
#include "unit.h"
#include "virtio-fakes.h"

UNIT_MAIN()

UNIT_TEST(ring_simple_chain_pop_and_push)
{
    VirtQueue vq;
    VirtQueueElement e;
    const char *why;

    machine_setup();
    vq_setup(&vq, 0);
    virtqueue_element_init(&e);
    desc_set(DESC_GPA, 3, BUF_GPA, 16, NEXT, 7);
    desc_set(DESC_GPA, 7, BUF_GPA + 0x1000, 512, NEXT | WRITE, 1);
    desc_set(DESC_GPA, 1, BUF_GPA + 0x2000, 1, WRITE, 0);
    CHECK_EQ(pop(&vq, &e, &why), 0); /* nothing yet */
    avail_add(3);
    CHECK_EQ(pop(&vq, &e, &why), 1);
    CHECK_EQ(e.head, 3);
    CHECK_EQ(e.out_num, 1);
    CHECK_EQ(e.in_num, 2);
    CHECK_EQ(e.out_len, 16);
    CHECK_EQ(e.in_len, 513);
    CHECK(e.iov[0].iov_base == m.ram + BUF_GPA);
    CHECK(e.iov[2].iov_base == m.ram + BUF_GPA + 0x2000);
    CHECK(!e.bad_address);
    CHECK_EQ(pop(&vq, &e, &why), 0);
    virtqueue_push(&vq, &e, 513);
    CHECK_EQ(used_idx(), 1);
    CHECK_EQ(get32(USED_GPA + 4), 3);
    CHECK_EQ(used_len(0), 513);
    virtqueue_element_free(&e);
    virtqueue_destroy(&vq);
    machine_teardown();
}

UNIT_TEST(ring_indirect_table)
{
    VirtQueue vq;
    VirtQueueElement e;
    const char *why;
    uint64_t table = BUF_GPA + 0x10000;

    machine_setup();
    vq_setup(&vq, F_INDIRECT);
    virtqueue_element_init(&e);
    desc_set(table, 0, BUF_GPA, 16, NEXT, 2); /* chained out of order */
    desc_set(table, 2, BUF_GPA + 0x1000, 4096, NEXT | WRITE, 1);
    desc_set(table, 1, BUF_GPA + 0x3000, 1, WRITE, 0);
    /* a plain descriptor, then the indirect one: both count */
    desc_set(DESC_GPA, 0, BUF_GPA + 0x4000, 8, NEXT, 5);
    desc_set(DESC_GPA, 5, table, 3 * 16, INDIRECT | WRITE, 0); /* WRITE ignored */
    avail_add(0);
    CHECK_EQ(pop(&vq, &e, &why), 1);
    CHECK_EQ(e.out_num, 2);
    CHECK_EQ(e.in_num, 2);
    CHECK_EQ(e.out_len, 24);
    CHECK_EQ(e.in_len, 4097);
    CHECK(e.iov[2].iov_base == m.ram + BUF_GPA + 0x1000);
    virtqueue_element_free(&e);
    virtqueue_destroy(&vq);
    machine_teardown();
}

UNIT_TEST(ring_event_index_both_ways)
{
    VirtQueue vq;
    VirtQueueElement e;
    const char *why;

    machine_setup();
    vq_setup(&vq, F_EVENT);
    virtqueue_element_init(&e);
    for (int i = 0; i < 4; i++) {
        desc_set(DESC_GPA, i, BUF_GPA, 1, WRITE, 0);
        avail_add(i);
    }
    put16(AVAIL_GPA + 4 + 2 * QSIZE, 2); /* used_event: after 3 used */
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(pop(&vq, &e, &why), 1);
        virtqueue_push(&vq, &e, 1);
        /* the first is always signalled; then only crossing used_event */
        CHECK_EQ(virtqueue_should_notify(&vq), i == 0 || i == 2);
    }
    /* device side: enabling notifications publishes avail_event */
    virtqueue_set_notification(&vq, true);
    CHECK_EQ(get16(USED_GPA + 4 + 8 * QSIZE), 4);
    CHECK(!virtqueue_has_avail(&vq));
    avail_add(0);
    CHECK(virtqueue_has_avail(&vq));
    virtqueue_element_free(&e);
    virtqueue_destroy(&vq);
    machine_teardown();
}

UNIT_TEST(ring_flags_without_event_index)
{
    VirtQueue vq;
    VirtQueueElement e;
    const char *why;

    machine_setup();
    vq_setup(&vq, 0);
    virtqueue_element_init(&e);
    desc_set(DESC_GPA, 0, BUF_GPA, 1, WRITE, 0);
    avail_add(0);
    avail_add(0);
    CHECK_EQ(pop(&vq, &e, &why), 1);
    virtqueue_push(&vq, &e, 1);
    put16(AVAIL_GPA, VRING_AVAIL_F_NO_INTERRUPT);
    CHECK(!virtqueue_should_notify(&vq));
    put16(AVAIL_GPA, 0);
    CHECK(virtqueue_should_notify(&vq));
    virtqueue_set_notification(&vq, false);
    CHECK_EQ(get16(USED_GPA), VRING_USED_F_NO_NOTIFY);
    virtqueue_set_notification(&vq, true);
    CHECK_EQ(get16(USED_GPA), 0);
    virtqueue_element_free(&e);
    virtqueue_destroy(&vq);
    machine_teardown();
}

/* Set up one hostile ring with fn, pop it, expect -EINVAL and a reason. */
static void expect_ring_error(void (*fn)(void), uint64_t features, const char *why_part)
{
    VirtQueue vq;
    VirtQueueElement e;
    const char *why;
    uint8_t *copy;

    machine_setup();
    vq_setup(&vq, features);
    virtqueue_element_init(&e);
    fn();
    copy = g_memdup2(m.ram, RAM_SIZE);
    CHECK_EQ(pop(&vq, &e, &why), -EINVAL);
    if (!why || !strstr(why, why_part)) {
        fprintf(stderr, "expected '%s', got '%s'\n", why_part, why ? why : "(none)");
        unit_failed = 1;
    }
    CHECK(memcmp(copy, m.ram, RAM_SIZE) == 0); /* nothing was written */
    CHECK_EQ(vq.last_avail_idx, 0);
    g_free(copy);
    virtqueue_element_free(&e);
    virtqueue_destroy(&vq);
    machine_teardown();
}

static void hostile_loop(void)
{
    desc_set(DESC_GPA, 0, BUF_GPA, 16, NEXT, 1);
    desc_set(DESC_GPA, 1, BUF_GPA, 16, NEXT, 0);
    avail_add(0);
}

static void hostile_self_loop(void)
{
    desc_set(DESC_GPA, 4, BUF_GPA, 0, NEXT, 4);
    avail_add(4);
}

static void hostile_next_out_of_range(void)
{
    desc_set(DESC_GPA, 0, BUF_GPA, 16, NEXT, QSIZE + 5);
    avail_add(0);
}

static void hostile_head_out_of_range(void)
{
    avail_add(300);
}

static void hostile_avail_jump(void)
{
    put16(AVAIL_GPA + 2, QSIZE + 1);
}

static void hostile_nested_indirect(void)
{
    uint64_t t1 = BUF_GPA + 0x10000, t2 = BUF_GPA + 0x20000;

    desc_set(t2, 0, BUF_GPA, 16, 0, 0);
    desc_set(t1, 0, t2, 16, INDIRECT, 0);
    desc_set(DESC_GPA, 0, t1, 16, INDIRECT, 0);
    avail_add(0);
}

/* a "table" that is the descriptor ring itself: its entry 0 is the same
 * indirect descriptor (a walker comparing tables with the ring loops) */
static void hostile_indirect_table_is_the_ring(void)
{
    desc_set(DESC_GPA, 0, DESC_GPA, QSIZE * 16, INDIRECT, 0);
    avail_add(0);
}

static void hostile_indirect_with_next(void)
{
    desc_set(BUF_GPA + 0x10000, 0, BUF_GPA, 16, 0, 0);
    desc_set(DESC_GPA, 0, BUF_GPA + 0x10000, 16, INDIRECT | NEXT, 1);
    desc_set(DESC_GPA, 1, BUF_GPA, 16, 0, 0);
    avail_add(0);
}

static void hostile_indirect_len_zero(void)
{
    desc_set(DESC_GPA, 0, BUF_GPA, 0, INDIRECT, 0);
    avail_add(0);
}

static void hostile_indirect_len_odd(void)
{
    desc_set(DESC_GPA, 0, BUF_GPA, 17, INDIRECT, 0);
    avail_add(0);
}

static void hostile_indirect_outside_ram(void)
{
    desc_set(DESC_GPA, 0, RAM_SIZE - 16, 64, INDIRECT, 0);
    avail_add(0);
}

static void hostile_indirect_huge(void)
{
    desc_set(DESC_GPA, 0, BUF_GPA, 0xfffffff0u, INDIRECT, 0);
    avail_add(0);
}

static void hostile_indirect_loop(void)
{
    uint64_t t = BUF_GPA + 0x10000;

    desc_set(t, 0, BUF_GPA, 16, NEXT, 1);
    desc_set(t, 1, BUF_GPA, 16, NEXT, 0);
    desc_set(DESC_GPA, 0, t, 2 * 16, INDIRECT, 0);
    avail_add(0);
}

static void hostile_chain_too_long(void)
{
    uint64_t t = BUF_GPA + 0x10000;

    for (unsigned i = 0; i < 256; i++) {
        desc_set(t, i, BUF_GPA, 1, NEXT, i + 1);
    }
    desc_set(t, 255, BUF_GPA, 1, 0, 0);
    desc_set(DESC_GPA, 0, BUF_GPA, 1, NEXT, 1); /* 1 + 256 > 256 */
    desc_set(DESC_GPA, 1, t, 256 * 16, INDIRECT, 0);
    avail_add(0);
}

static void hostile_readable_after_writable(void)
{
    desc_set(DESC_GPA, 0, BUF_GPA, 1, WRITE | NEXT, 1);
    desc_set(DESC_GPA, 1, BUF_GPA, 16, 0, 0);
    avail_add(0);
}

UNIT_TEST(ring_hostile_chains_are_errors)
{
    expect_ring_error(hostile_loop, 0, "loops");
    expect_ring_error(hostile_self_loop, 0, "loops");
    expect_ring_error(hostile_next_out_of_range, 0, "out of range");
    expect_ring_error(hostile_head_out_of_range, 0, "head index out of range");
    expect_ring_error(hostile_avail_jump, 0, "more than the queue size");
    expect_ring_error(hostile_readable_after_writable, 0, "after a device-writable");
    expect_ring_error(hostile_nested_indirect, F_INDIRECT, "inside an indirect");
    expect_ring_error(hostile_nested_indirect, 0, "without VIRTIO_RING_F_INDIRECT");
    expect_ring_error(hostile_indirect_table_is_the_ring, F_INDIRECT,
                      "inside an indirect");
    expect_ring_error(hostile_indirect_with_next, F_INDIRECT, "NEXT set");
    expect_ring_error(hostile_indirect_len_zero, F_INDIRECT, "length");
    expect_ring_error(hostile_indirect_len_odd, F_INDIRECT, "length");
    expect_ring_error(hostile_indirect_outside_ram, F_INDIRECT, "outside guest RAM");
    expect_ring_error(hostile_indirect_huge, F_INDIRECT, "length");
    expect_ring_error(hostile_indirect_loop, F_INDIRECT, "loops");
    expect_ring_error(hostile_chain_too_long, F_INDIRECT, "longer");
}

UNIT_TEST(ring_buffers_outside_ram_and_zero_lengths)
{
    VirtQueue vq;
    VirtQueueElement e;
    const char *why;

    machine_setup();
    vq_setup(&vq, 0);
    virtqueue_element_init(&e);
    desc_set(DESC_GPA, 0, BUF_GPA, 0, NEXT, 1);       /* zero length */
    desc_set(DESC_GPA, 1, RAM_SIZE - 8, 16, NEXT, 2); /* runs off RAM */
    desc_set(DESC_GPA, 2, 0xfffffffffffffff0ULL, 0x20, NEXT | WRITE, 3); /* wraps */
    desc_set(DESC_GPA, 3, 0xe0000000ULL, 1, WRITE, 0);                   /* PCI hole */
    avail_add(0);
    CHECK_EQ(pop(&vq, &e, &why), 1); /* a well-formed chain of bad buffers */
    CHECK(e.bad_address);
    CHECK(e.iov[0].iov_base == NULL && e.iov[0].iov_len == 0);
    CHECK(e.iov[1].iov_base == NULL && e.iov[2].iov_base == NULL &&
          e.iov[3].iov_base == NULL);
    virtqueue_element_free(&e);
    virtqueue_destroy(&vq);
    machine_teardown();
}

UNIT_TEST(ring_setup_checks_size_alignment_and_ram)
{
    VirtQueue vq;
    const char *why = NULL;

    machine_setup();
    virtqueue_init(&vq, &m.mem, NULL, 0, 256);
    vq.desc_gpa = DESC_GPA;
    vq.avail_gpa = AVAIL_GPA;
    vq.used_gpa = USED_GPA;
    static const uint16_t bad_sizes[] = { 0, 100, 512 };
    for (size_t i = 0; i < G_N_ELEMENTS(bad_sizes); i++) {
        vq.size = bad_sizes[i];
        CHECK(!virtqueue_map_rings(&vq, 0, &why));
    }
    vq.size = 256;
    vq.used_gpa = USED_GPA + 2;
    CHECK(!virtqueue_map_rings(&vq, 0, &why) && strstr(why, "misaligned"));
    vq.used_gpa = RAM_SIZE - 64;
    CHECK(!virtqueue_map_rings(&vq, 0, &why) && strstr(why, "outside"));
    vq.used_gpa = USED_GPA;
    vq.desc_gpa = 0xfffffffffffff000ULL;
    CHECK(!virtqueue_map_rings(&vq, 0, &why) && !vq.ready);
    virtqueue_destroy(&vq);
    machine_teardown();
}
