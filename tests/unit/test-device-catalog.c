/*
 * The QOM type catalogue (hw/core/device-catalog.c) against the -device
 * parsers: every PCI model -device takes is listed, every listed one is
 * taken, and every property listed for it is one its parser reads.
 */
#include "hw/device-catalog.h"
#include "hw/pci.h"
#include "util/error.h"
#include "util/subopt.h"
#include "unit.h"

static BlockDriverState *no_drive(void *opaque, const char *drive_id, GError **errp)
{
    error_setg(errp, "test: there are no drives");
    return NULL;
}

/* the error -device DRIVER,KEY=VALUE gets, or NULL */
static char *check_error(const char *driver, const char *key, const char *value)
{
    char *arg = g_strdup_printf("%s=%s", key, value);
    SubOpts *opts = subopts_parse(arg, NULL, NULL);
    GError *err = NULL;
    char *msg = NULL;

    if (!pci_device_check(driver, opts, no_drive, NULL, &err)) {
        msg = g_strdup(err->message);
        g_error_free(err);
    }
    subopts_free(opts);
    g_free(arg);
    return msg;
}

UNIT_TEST(every_pci_driver_is_a_listed_pci_device)
{
    char *list = pci_driver_list();
    char **lines = g_strsplit(list, "\n", -1);
    int seen = 0;

    for (char **l = lines; *l && **l; l++) {
        char name[64];
        const QomTypeInfo *t;

        CHECK(sscanf(*l, "name \"%63[^\"]\"", name) == 1);
        t = qom_type_find(name);
        CHECK(t && !t->abstract && qom_type_implements(t, "pci-device"));
        seen++;
    }
    CHECK(seen >= 3);
    g_strfreev(lines);
    g_free(list);
}

UNIT_TEST(every_listed_pci_device_is_a_driver_taking_its_properties)
{
    size_t count;
    const QomTypeInfo *types = qom_types(&count);
    int devices = 0;

    for (size_t i = 0; i < count; i++) {
        const QomPropertyInfo *props[64];
        size_t n;

        if (types[i].abstract || !qom_type_implements(&types[i], "pci-device")) {
            continue;
        }
        devices++;
        CHECK(pci_driver_exists(types[i].name));
        n = qom_type_properties(&types[i], props, G_N_ELEMENTS(props));
        CHECK(n >= 2);
        for (size_t j = 0; j < n; j++) {
            char *msg = check_error(types[i].name, props[j]->name, "1");
            char *unknown = g_strdup_printf("Property '%s.%s' not found", types[i].name,
                                            props[j]->name);

            if (msg && strstr(msg, unknown)) {
                fprintf(stderr, "listed but not taken: %s\n", unknown);
                unit_failed = 1;
            }
            g_free(unknown);
            g_free(msg);
        }
    }
    CHECK(devices >= 3);
}

UNIT_TEST(a_property_not_listed_is_refused_by_name)
{
    char *msg = check_error("virtio-blk-pci", "no-such-prop", "1");

    CHECK_STR(msg, "Property 'virtio-blk-pci.no-such-prop' not found");
    g_free(msg);
}

UNIT_TEST(parents_come_first_and_abstract_types_have_no_instances)
{
    size_t count;
    const QomTypeInfo *types = qom_types(&count);

    CHECK_STR(types[0].name, "object");
    for (size_t i = 1; i < count; i++) {
        const QomTypeInfo *parent = qom_type_find(types[i].parent);

        CHECK(parent != NULL && parent < &types[i]);
        CHECK(qom_type_implements(&types[i], "object"));
        CHECK(qom_type_implements(&types[i], types[i].name));
    }
    CHECK(qom_type_implements(qom_type_find("pc-i440fx-4.2-machine"), "machine"));
    CHECK(!qom_type_implements(qom_type_find("vfio-pci"), "virtio-pci"));
    CHECK(qom_type_find("device")->abstract);
    CHECK(qom_type_find("no-such-type") == NULL);
}

UNIT_MAIN()
