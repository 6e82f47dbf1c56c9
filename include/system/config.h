/*
 * VmConfig: everything the command line asked for, filled in by
 * system/options.c from the option table (system/options.def) and read by
 * machine set-up.  Owned by main(); never changed after start-up.
 */
#ifndef SYSTEM_CONFIG_H
#define SYSTEM_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

#include "util/subopt.h"

typedef struct SmpConfig {
    unsigned cpus, sockets, dies, cores, threads, maxcpus;
} SmpConfig;

/* The most vCPUs the pc machine takes (xAPIC ids fit in 8 bits). */
#define MACHINE_MAX_CPUS 255

typedef enum MonitorOptKind {
    MONITOR_OPT_HMP, /* -monitor SPEC */
    MONITOR_OPT_QMP, /* -qmp SPEC */
    MONITOR_OPT_MON, /* -mon chardev=ID,mode=... */
} MonitorOptKind;

/* One monitor option, kept in command-line order (QEMU numbers them). */
typedef struct MonitorOpt {
    MonitorOptKind kind;
    char *arg;     /* as given: -monitor's and -qmp's chardev spec */
    char *chardev; /* -mon chardev=, found when monitors are created */
    bool control;  /* QMP: -qmp, or -mon mode=control */
} MonitorOpt;

/*
 * One -device, split when read (driver given, id unique).  The device model
 * checks the properties at machine set-up, against the drives, and marks
 * those it reads (SubOpt.used): its check and its creation read the same.
 */
typedef struct DeviceOpt {
    char *arg; /* as given, for the errors found then */
    char *driver;
    SubOpts *props; /* every sub-option, driver= and id= included */
} DeviceOpt;

/* One -object: a secret (its value read at start) or a RAM backend. */
typedef struct ObjectOpt {
    char *type; /* "secret" or "memory-backend-ram" */
    char *id;
    char *format, *file, *data; /* secret: as given */
    GByteArray *secret;         /* secret: the value, decoded, once created */
    uint64_t size;              /* memory-backend-ram */
} ObjectOpt;

/* One -blockdev, parsed when read; the node is opened at machine set-up. */
typedef struct BlockdevOpt {
    char *arg;                       /* as given, for the errors found then */
    void *json;                      /* the arguments (jansson), opts' strings */
    struct BlockdevAddOptions *opts; /* hw/drives.h */
} BlockdevOpt;

/* One -netdev, parsed when read (net/net.h's NetdevConfig). */
typedef struct NetdevOpt {
    char *arg; /* as given, for the errors found when it opens */
    struct NetdevConfig *cfg;
} NetdevOpt;

/* One -sandbox on: the syscall sets its seccomp filter denies. */
typedef struct SandboxOpt {
    bool deny_obsolete;   /* obsolete=deny (the default) */
    bool deny_privileged; /* elevateprivileges=deny or children */
    bool no_new_privs;    /* elevateprivileges=children */
    bool deny_spawn;      /* spawn=deny */
    bool deny_resources;  /* resourcecontrol=deny */
} SandboxOpt;

/* -runas: the user the VMM becomes once set up. */
typedef struct RunasOpt {
    bool given;
    char *name; /* a user name (initgroups), NULL for UID:GID */
    uint32_t uid, gid;
} RunasOpt;

typedef struct VmConfig {
    bool accel_kvm_seen; /* -enable-kvm, -accel kvm, accel=kvm */
    bool sandbox_given;  /* any -sandbox (refused without libseccomp) */
    GArray *sandboxes;   /* of SandboxOpt: each -sandbox on is one filter */
    RunasOpt runas;      /* -runas */
    bool accel_tcg;      /* machine none: tcg in accel= (carry on without KVM) */
    bool accel_no_kvm;   /* machine none: accel= without kvm (KVM not opened) */
    char *cpu_model;     /* "host" (the only model) */
    bool host_cache_info;
    SmpConfig smp; /* the last -smp */
    uint64_t ram_size;
    char *machine_type;
    char *kernel, *initrd, *append;
    char *bios; /* -bios: firmware image (default SeaBIOS) */
    bool no_reboot, no_shutdown, nographic, nodefaults, display_none, daemonize;
    bool start_paused;  /* -S */
    bool log_cpu_reset; /* -d cpu_reset: say each guest reset's cause, dump the vCPUs */
    bool log_stall;     /* -d stall: say the main loop's long stints (system/stall.c) */
    bool no_acpi;       /* -no-acpi: no ACPI tables, the power button does nothing */
    char *name, *pidfile;
    GPtrArray *serials;      /* -serial specs, in order ("none" kept) */
    GPtrArray *chardevs;     /* -chardev option strings */
    GPtrArray *drives;       /* of DriveConfig (block/drive.h), parsed when read */
    GPtrArray *devices;      /* of DeviceOpt, in order */
    GPtrArray *netdevs;      /* of NetdevOpt, parsed when read, in order */
    GPtrArray *monitor_opts; /* of MonitorOpt, in order */
    char *cpumap;            /* -osnet_cpumap path=: the map file */
    bool cpumap_did;         /* -osnet_cpumap did=on */
    char *incoming;
    bool overcommit_cpu_pm; /* -overcommit cpu-pm=on (any of them) */
    bool mem_lock;          /* -overcommit mem-lock=on: mlockall at start */
    bool ram_size_given;    /* -m was given (memory-backend= must agree) */
    char *memory_backend;   /* -machine memory-backend=ID */
    char *uuid;             /* -uuid, lower case */
    GPtrArray *objects;     /* of ObjectOpt, in order */
    GPtrArray *blockdevs;   /* of BlockdevOpt, in order */
} VmConfig;

/* -machine none: a QMP-only process with no VM (management tools probe it). */
static inline bool vm_config_machine_none(const VmConfig *cfg)
{
    return cfg->machine_type && g_str_equal(cfg->machine_type, "none");
}

VmConfig *vm_config_new(void);
void vm_config_free(VmConfig *cfg);

/*
 * Parse argv into cfg.  On a bad option, returns false with errp set to
 * the message QEMU would print ("-foo: invalid option"); *exit_now is set
 * for -help and -version, which print and succeed.
 */
bool vm_config_parse_argv(VmConfig *cfg, int argc, char **argv, bool *exit_now,
                          GError **errp);

/*
 * Parse -smp's argument with QEMU 7.2's rules (omitted members computed,
 * cores preferred over sockets) and check the topology.  smp_parse_opts
 * does it for sub-options already split (and marks those it uses).
 */
bool smp_parse(SmpConfig *smp, const char *arg, GError **errp);
bool smp_parse_opts(SmpConfig *smp, SubOpts *opts, GError **errp);

/* Print the option table's help text to stdout. */
void vm_config_print_help(void);

#endif
