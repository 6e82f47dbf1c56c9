/*
 * -sandbox and -runas as read from the command line: the syscall sets
 * each spelling asks for (QEMU 7.2's defaults, the last value of a key
 * winning, one filter per -sandbox on), -runas's UID:GID form, and the
 * pair refused before start.  No filter is installed here.
 */
#include "system/config.h"
#include "system/sandbox-int.h"
#include "unit.h"
#include "util/error.h"

/* Parse args into a new VmConfig; *msg gets the error text or NULL. */
static VmConfig *parse(const char *const *args, char **msg)
{
    char *argv[16] = { "qemu-system-x86_64" };
    VmConfig *cfg = vm_config_new();
    GError *err = NULL;
    bool exit_now;
    int argc = 1;

    while (*args && argc < 15) {
        argv[argc++] = (char *)*args++;
    }
    *msg = NULL;
    if (!vm_config_parse_argv(cfg, argc, argv, &exit_now, &err)) {
        *msg = g_strdup(err->message);
        g_error_free(err);
    }
    return cfg;
}

static const SandboxOpt *sandbox_at(const VmConfig *cfg, guint i)
{
    return &g_array_index(cfg->sandboxes, SandboxOpt, i);
}

UNIT_TEST(on_denies_the_default_and_obsolete_sets)
{
    char *msg;
    VmConfig *cfg = parse((const char *[]){ "-sandbox", "on", NULL }, &msg);

    CHECK(msg == NULL);
    CHECK(cfg->sandbox_given);
    CHECK_EQ(cfg->sandboxes->len, 1);
    CHECK(sandbox_at(cfg, 0)->deny_obsolete);
    CHECK(!sandbox_at(cfg, 0)->deny_privileged && !sandbox_at(cfg, 0)->deny_spawn &&
          !sandbox_at(cfg, 0)->deny_resources && !sandbox_at(cfg, 0)->no_new_privs);
    vm_config_free(cfg);
}

UNIT_TEST(libvirts_line_denies_every_set)
{
    char *msg;
    VmConfig *cfg = parse(
        (const char *[]){ "-sandbox",
                          "on,obsolete=deny,elevateprivileges=deny,spawn=deny,"
                          "resourcecontrol=deny",
                          NULL },
        &msg);
    const SandboxOpt *sb;

    CHECK(msg == NULL);
    sb = sandbox_at(cfg, 0);
    CHECK(sb->deny_obsolete && sb->deny_privileged && sb->deny_spawn &&
          sb->deny_resources);
    CHECK(!sb->no_new_privs);
    vm_config_free(cfg);
}

UNIT_TEST(children_also_sets_no_new_privs)
{
    char *msg;
    VmConfig *cfg = parse(
        (const char *[]){ "-sandbox", "on,elevateprivileges=children,obsolete=allow",
                          NULL },
        &msg);

    CHECK(msg == NULL);
    CHECK(sandbox_at(cfg, 0)->deny_privileged && sandbox_at(cfg, 0)->no_new_privs);
    CHECK(!sandbox_at(cfg, 0)->deny_obsolete);
    vm_config_free(cfg);
}

UNIT_TEST(off_installs_nothing_and_each_on_is_a_filter)
{
    char *msg;
    VmConfig *cfg = parse((const char *[]){ "-sandbox", "off,spawn=whatever", NULL },
                          &msg);

    CHECK(msg == NULL); /* QEMU reads the values only when enabled */
    CHECK(cfg->sandbox_given && !cfg->sandboxes);
    vm_config_free(cfg);

    cfg = parse((const char *[]){ "-sandbox", "on", "-sandbox", "enable=on,spawn=deny",
                                  "-sandbox", "off", NULL },
                &msg);
    CHECK(msg == NULL);
    CHECK_EQ(cfg->sandboxes->len, 2);
    CHECK(!sandbox_at(cfg, 0)->deny_spawn && sandbox_at(cfg, 1)->deny_spawn);
    vm_config_free(cfg);
}

UNIT_TEST(the_last_value_of_a_key_wins)
{
    char *msg;
    VmConfig *cfg = parse(
        (const char *[]){ "-sandbox", "on,spawn=deny,spawn=allow", NULL }, &msg);

    CHECK(msg == NULL);
    CHECK(!sandbox_at(cfg, 0)->deny_spawn);
    vm_config_free(cfg);
}

UNIT_TEST(bad_values_are_qemus_texts)
{
    static const struct {
        const char *arg, *msg;
    } cases[] = {
        { "on,obtain=deny", "-sandbox on,obtain=deny: Invalid parameter 'obtain'" },
        { "on,spawn=no", "-sandbox on,spawn=no: invalid argument for spawn" },
        { "on,spawn", "-sandbox on,spawn: invalid argument for spawn" },
        { "on,obsolete=x,spawn=y",
          "-sandbox on,obsolete=x,spawn=y: invalid argument for obsolete" },
        { "maybe", "-sandbox maybe: Parameter 'enable' expects 'on' or 'off'" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        char *msg;
        VmConfig *cfg = parse((const char *[]){ "-sandbox", cases[i].arg, NULL }, &msg);

        CHECK_STR(msg, cases[i].msg);
        g_free(msg);
        vm_config_free(cfg);
    }
}

UNIT_TEST(runas_takes_a_name_or_numbers)
{
    char *msg;
    VmConfig *cfg = parse((const char *[]){ "-runas", "root", NULL }, &msg);

    CHECK(msg == NULL);
    CHECK(cfg->runas.given);
    CHECK_STR(cfg->runas.name, "root");
    CHECK_EQ(cfg->runas.uid, 0);
    vm_config_free(cfg);

    /* C's base-0 numbers, as QEMU's qemu_strtoul; the last -runas wins */
    cfg = parse((const char *[]){ "-runas", "root", "-runas", "0x10:010", NULL }, &msg);
    CHECK(msg == NULL);
    CHECK(cfg->runas.name == NULL);
    CHECK_EQ(cfg->runas.uid, 16);
    CHECK_EQ(cfg->runas.gid, 8);
    vm_config_free(cfg);

    /* strtoul's blanks and signs, as QEMU 7.2 takes them */
    cfg = parse((const char *[]){ "-runas", " 1:+2", NULL }, &msg);
    CHECK(msg == NULL);
    CHECK_EQ(cfg->runas.uid, 1);
    CHECK_EQ(cfg->runas.gid, 2);
    vm_config_free(cfg);
}

UNIT_TEST(runas_refuses_what_is_neither)
{
    static const char *const bad[] = { "12:",  ":12",          "1:2:3",
                                       "-1:5", "4294967295:1", "1:4294967295",
                                       "08:1", "1:x",          "" };

    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        char *msg, *want;
        VmConfig *cfg = parse((const char *[]){ "-runas", bad[i], NULL }, &msg);

        want = g_strdup_printf(
            "-runas %s: User \"%s\" doesn't exist (and is not <uid>:<gid>)", bad[i],
            bad[i]);
        CHECK_STR(msg, want);
        g_free(want);
        g_free(msg);
        vm_config_free(cfg);
    }
}

UNIT_TEST(runas_under_elevateprivileges_deny_is_refused)
{
    char *msg;
    GError *err = NULL;
    VmConfig *cfg = parse((const char *[]){ "-sandbox", "on,elevateprivileges=deny",
                                            "-runas", "1:1", NULL },
                          &msg);

    CHECK(msg == NULL);
    CHECK(!privileges_check(cfg, &err));
    CHECK_STR(err ? err->message : NULL,
              "-runas: -sandbox elevateprivileges=deny forbids changing the user");
    g_clear_error(&err);
    vm_config_free(cfg);

    cfg = parse((const char *[]){ "-sandbox", "on,spawn=deny", "-runas", "1:1", NULL },
                &msg);
    CHECK(privileges_check(cfg, &err));
    vm_config_free(cfg);
}

UNIT_MAIN()
