/*
 * The machine's block backends (hw/core/drives.c) without a VM: drive_add,
 * blockdev-add, blockdev-del and drive_del with their errors, each failed
 * call leaving the list as it was; a device claiming a drive or node, the
 * image lock held exactly while one uses a hot-added raw image, and what
 * goes when the device goes (a drive with it, a node not).
 */
#include <fcntl.h>
#include <glib/gstdio.h>
#include <unistd.h>

#include "block/block.h"
#include "hw/core/devices-int.h"
#include "hw/devices.h"
#include "hw/drives.h"
#include "hw/machine-info.h"
#include "hw/machine.h"
#include "system/config.h"
#include "unit.h"

typedef struct Rig {
    Machine m;
    VmConfig *cfg;
    char *dir;
} Rig;

static void rig_setup(Rig *r)
{
    GError *err = NULL;

    memset(r, 0, sizeof(*r));
    r->cfg = vm_config_new();
    r->m.cfg = r->cfg;
    r->dir = g_dir_make_tmp("test-drives-XXXXXX", NULL);
    CHECK(r->dir != NULL);
    CHECK(machine_drives_open(&r->m, &err));
}

static void rig_teardown(Rig *r)
{
    machine_drives_free(&r->m);
    vm_config_free(r->cfg);
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", r->dir);
    CHECK_EQ(system(cmd), 0);
    g_free(r->dir);
}

/* An empty 1 MiB raw image in the rig's folder. */
static char *rig_image(Rig *r, const char *name)
{
    char *path = g_build_filename(r->dir, name, NULL);
    int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0644);

    CHECK(fd >= 0);
    CHECK_EQ(ftruncate(fd, 1 << 20), 0);
    close(fd);
    return path;
}

/* What query-block shows, as one line to compare before and after. */
static char *listing(Rig *r)
{
    GArray *list = machine_query_drives(&r->m);
    GString *out = g_string_new("");

    for (guint i = 0; i < list->len; i++) {
        MachineDriveInfo *d = &g_array_index(list, MachineDriveInfo, i);
        g_string_append_printf(out, "%s|%s|%d|%s;", d->id, d->node_name, d->attached,
                               d->qdev ? d->qdev : "-");
    }
    g_array_unref(list);
    return g_string_free(out, FALSE);
}

/* Can another opener get the image for writing (nobody holds its lock)? */
static bool image_free(const char *path)
{
    BlockOptions o = { .filename = path, .format = "raw" };
    GError *err = NULL;
    BlockDriverState *bs = bdrv_open(&o, &err);

    g_clear_error(&err);
    bdrv_close(bs);
    return bs != NULL;
}

/* A refused call (ok false) gave error and left query-block as before; frees err. */
static void check_refused(Rig *r, const char *before, bool ok, GError *err,
                          const char *error)
{
    CHECK(!ok);
    CHECK(err != NULL);
    if (err) {
        CHECK_STR(err->message, error);
        g_error_free(err);
    }
    g_autofree char *after = listing(r);
    CHECK_STR(after, before);
}

static void drive_add_fails(Rig *r, const char *options, const char *error)
{
    g_autofree char *before = listing(r);
    GError *err = NULL;
    bool ok = machine_drive_add(&r->m, options, &err);

    check_refused(r, before, ok, err, error);
}

UNIT_TEST(drive_add_errors_change_nothing)
{
    Rig r;
    GError *err = NULL;

    rig_setup(&r);
    g_autofree char *a = rig_image(&r, "a.img");
    g_autofree char *ok = g_strdup_printf("file=%s,if=none,id=d1,format=raw", a);
    CHECK(machine_drive_add(&r.m, ok, &err));
    g_autofree char *first = listing(&r);
    CHECK_STR(first, "d1|#block100|0|-;");

    drive_add_fails(&r, ok, "Duplicate ID 'd1' for drive");
    g_autofree char *ide = g_strdup_printf("file=%s,id=d2,format=raw", a);
    drive_add_fails(&r, ide, "Can't hot-add drive to type 1");
    g_autofree char *virtio = g_strdup_printf("file=%s,if=virtio,id=d2", a);
    drive_add_fails(&r, virtio, "Can't hot-add drive to type 7");
    g_autofree char *bad_id = g_strdup_printf("file=%s,if=none,id=9x", a);
    drive_add_fails(&r, bad_id,
                    "Parameter 'id' expects an identifier\nIdentifiers consist of "
                    "letters, digits, '-', '.', '_', starting with a letter.");
    drive_add_fails(&r, "if=none,id=d3", "A block device must be specified for \"file\"");
    drive_add_fails(&r, "file=/nonexistent/x.img,if=none,id=d3,format=raw",
                    "Could not open '/nonexistent/x.img': No such file or directory");
    g_autofree char *cache = g_strdup_printf("file=%s,if=none,id=d3,cache=bad", a);
    drive_add_fails(&r, cache, "invalid cache option");
    drive_add_fails(&r, "file=x,,if=none,=", "Invalid parameter ''");
    /* a node's name is taken for drives too */
    BlockdevAddOptions node = { .node_name = "n1", .driver = "raw", .filename = a };
    CHECK(machine_blockdev_add(&r.m, &node, &err));
    g_autofree char *clash = g_strdup_printf("file=%s,if=none,id=n1,format=raw", a);
    drive_add_fails(&r, clash, "Device name 'n1' conflicts with an existing node name");
    /* the default id: "none" and the lowest unit no if=none drive has */
    g_autofree char *anon = g_strdup_printf("file=%s,if=none,format=raw", a);
    CHECK(machine_drive_add(&r.m, anon, &err));
    g_autofree char *second = listing(&r);
    CHECK_STR(second, "d1|#block100|0|-;none1|#block101|0|-;");
    /* drive_del of a node no device uses deletes it; of no such thing fails */
    CHECK(machine_drive_del(&r.m, "n1", &err));
    CHECK(!machine_drive_del(&r.m, "n1", &err));
    CHECK_STR(err->message, "Device 'n1' not found");
    g_clear_error(&err);
    CHECK(machine_drive_del(&r.m, "d1", &err));
    g_autofree char *third = listing(&r);
    CHECK_STR(third, "none1|#block101|0|-;");
    rig_teardown(&r);
}

static void blockdev_add_fails(Rig *r, const BlockdevAddOptions *o, const char *error)
{
    g_autofree char *before = listing(r);
    GError *err = NULL;
    bool ok = machine_blockdev_add(&r->m, o, &err);

    check_refused(r, before, ok, err, error);
}

UNIT_TEST(blockdev_add_names_files_and_blockdev_del)
{
    Rig r;
    GError *err = NULL;

    rig_setup(&r);
    g_autofree char *a = rig_image(&r, "a.img");
    BlockdevAddOptions file = { .node_name = "f1", .driver = "file", .filename = a };
    BlockdevAddOptions over = { .node_name = "n1", .driver = "raw", .file_node = "f1" };
    CHECK(machine_blockdev_add(&r.m, &file, &err));
    CHECK(machine_blockdev_add(&r.m, &over, &err));
    blockdev_add_fails(&r, &over, "Duplicate nodes with node-name='n1'");
    BlockdevAddOptions o = over;
    o.node_name = NULL;
    blockdev_add_fails(&r, &o, "'node-name' must be specified for the root node");
    o.node_name = "1x";
    blockdev_add_fails(&r, &o, "Invalid node-name: '1x'");
    o.node_name = "";
    blockdev_add_fails(&r, &o, "Invalid node-name: ''");
    o.node_name = "abcdefghijklmnopqrstuvwxyz012345"; /* 32 */
    blockdev_add_fails(&r, &o, "Node name too long");
    o.node_name = "n2";
    o.file_node = "nosuch";
    blockdev_add_fails(&r, &o, "Cannot find device='nosuch' nor node-name='nosuch'");
    o.file_node = "n1"; /* a raw node: this VMM stacks only on file nodes */
    blockdev_add_fails(&r, &o,
                       "'n1' is not a driver=file node: this VMM opens raw "
                       "images only over one");
    o = (BlockdevAddOptions){ .node_name = "q", .driver = "qcow2", .filename = a };
    blockdev_add_fails(&r, &o, "Image is not in qcow2 format");
    g_autofree char *drive = g_strdup_printf("file=%s,if=none,id=d1,format=raw", a);
    CHECK(machine_drive_add(&r.m, drive, &err));
    o = (BlockdevAddOptions){ .node_name = "d1", .driver = "raw", .filename = a };
    blockdev_add_fails(&r, &o, "node-name=d1 is conflicting with a device id");

    /* a file node another node stands on stays until that one goes */
    CHECK(!machine_blockdev_del(&r.m, "f1", &err));
    CHECK_STR(err->message, "Block device f1 is in use");
    g_clear_error(&err);
    CHECK(!machine_blockdev_del(&r.m, "d1", &err)); /* a drive is no node */
    CHECK_STR(err->message, "Failed to find node with node-name='d1'");
    g_clear_error(&err);
    CHECK(machine_blockdev_del(&r.m, "n1", &err));
    CHECK(machine_blockdev_del(&r.m, "f1", &err));
    CHECK(!machine_blockdev_del(&r.m, "f1", &err));
    g_clear_error(&err);
    rig_teardown(&r);
}

UNIT_TEST(a_device_holds_the_lock_and_takes_its_drive_but_not_its_node)
{
    Rig r;
    GError *err = NULL;
    int dev1, dev2; /* stand-ins: only their addresses are used */

    rig_setup(&r);
    g_autofree char *a = rig_image(&r, "a.img");
    g_autofree char *b = rig_image(&r, "b.img");
    g_autofree char *opts = g_strdup_printf("file=%s,if=none,id=d1,format=raw", a);
    CHECK(machine_drive_add(&r.m, opts, &err));
    BlockdevAddOptions node = { .node_name = "n1", .driver = "raw", .filename = b };
    CHECK(machine_blockdev_add(&r.m, &node, &err));
    CHECK(image_free(a) && image_free(b)); /* nobody uses them yet */

    /* a creation that fails gives its claim back, lock included */
    CHECK(machine_drive_claim(&r.m, "d1", &err) != NULL);
    CHECK(!image_free(a));
    machine_drives_commit(&r.m, NULL, NULL);
    CHECK(image_free(a));

    CHECK(machine_drive_claim(&r.m, "d1", &err) != NULL);
    CHECK(machine_drive_claim(&r.m, "d1", &err) == NULL);
    CHECK_STR(err->message, "Drive 'd1' is already in use by another device");
    g_clear_error(&err);
    machine_drives_commit(&r.m, (PciDevice *)&dev1,
                          "/machine/peripheral/v1/virtio-backend");
    CHECK(machine_drive_claim(&r.m, "n1", &err) != NULL);
    machine_drives_commit(&r.m, (PciDevice *)&dev2,
                          "/machine/peripheral/v2/virtio-backend");
    CHECK(!image_free(a) && !image_free(b));
    CHECK(machine_drive_claim(&r.m, "n1", &err) == NULL);
    CHECK_STR(err->message, "Node 'n1' is already in use by block device "
                            "'/machine/peripheral/v2/virtio-backend'");
    g_clear_error(&err);
    CHECK(machine_drive_claim(&r.m, "x", &err) == NULL);
    CHECK_STR(err->message, "Property 'virtio-blk-device.drive' can't find value 'x'");
    g_clear_error(&err);
    g_autofree char *used = listing(&r);
    CHECK_STR(used, "d1|#block100|1|/machine/peripheral/v1/virtio-backend;"
                    "|n1|1|/machine/peripheral/v2/virtio-backend;");
    CHECK(!machine_blockdev_del(&r.m, "n1", &err));
    CHECK_STR(err->message, "Node n1 is in use");
    g_clear_error(&err);
    CHECK(!machine_drive_del(&r.m, "d1", &err));
    g_clear_error(&err);

    /* the devices go: the drive with its device, the node stays, unlocked */
    machine_drives_device_gone(&r.m, (PciDevice *)&dev1);
    machine_drives_device_gone(&r.m, (PciDevice *)&dev2);
    g_autofree char *gone = listing(&r);
    CHECK_STR(gone, "");
    CHECK(image_free(a) && image_free(b));
    CHECK(machine_drive_add(&r.m, opts, &err)); /* its id is free again */
    CHECK(machine_blockdev_del(&r.m, "n1", &err));
    rig_teardown(&r);
}

UNIT_TEST(migration_hands_over_only_the_locks_in_use)
{
    Rig r;
    GError *err = NULL;
    int dev;

    rig_setup(&r);
    g_autofree char *a = rig_image(&r, "a.img");
    g_autofree char *b = rig_image(&r, "b.img");
    g_autofree char *used = g_strdup_printf("file=%s,if=none,id=d1,format=raw", a);
    g_autofree char *idle = g_strdup_printf("file=%s,if=none,id=d2,format=raw", b);
    CHECK(machine_drive_add(&r.m, used, &err) && machine_drive_add(&r.m, idle, &err));
    CHECK(machine_drive_claim(&r.m, "d1", &err) != NULL);
    machine_drives_commit(&r.m, (PciDevice *)&dev,
                          "/machine/peripheral/v/virtio-backend");
    machine_drives_release(&r.m);
    CHECK(image_free(a) && image_free(b));
    CHECK(machine_drives_acquire(&r.m, &err)); /* a failed migration's source */
    CHECK(!image_free(a) && image_free(b));
    rig_teardown(&r);
}

UNIT_MAIN()
