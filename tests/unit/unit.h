/*
 * A very small unit-test harness.  Each test file declares its cases with
 * UNIT_TEST(name) and ends with UNIT_MAIN().  The binary runs every case
 * (or only the ones named on its command line) and `--list` prints the
 * names, one a line, so tests/functional/test_unit.py runs each case as a
 * pytest item.
 */
#ifndef TESTS_UNIT_H
#define TESTS_UNIT_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct UnitCase {
    const char *name;
    void (*fn)(void);
} UnitCase;

#define UNIT_MAX_CASES 256
extern UnitCase unit_cases[UNIT_MAX_CASES];
extern int unit_nr_cases;
extern int unit_failed;

#define UNIT_TEST(case_name)                                                             \
    static void unit_##case_name(void);                                                  \
    __attribute__((constructor)) static void unit_register_##case_name(void)             \
    {                                                                                    \
        if (unit_nr_cases < UNIT_MAX_CASES) {                                            \
            unit_cases[unit_nr_cases].name = #case_name;                                 \
            unit_cases[unit_nr_cases++].fn = unit_##case_name;                           \
        }                                                                                \
    }                                                                                    \
    static void unit_##case_name(void)

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);     \
            unit_failed = 1;                                                             \
        }                                                                                \
    } while (0)

#define CHECK_EQ(a, b)                                                                   \
    do {                                                                                 \
        long long unit_a_ = (long long)(a), unit_b_ = (long long)(b);                    \
        if (unit_a_ != unit_b_) {                                                        \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__,          \
                    __LINE__, #a, #b, unit_a_, unit_b_);                                 \
            unit_failed = 1;                                                             \
        }                                                                                \
    } while (0)

#define CHECK_STR(a, b)                                                                  \
    do {                                                                                 \
        const char *unit_a_ = (a), *unit_b_ = (b);                                       \
        if (!unit_a_ || !unit_b_ || strcmp(unit_a_, unit_b_) != 0) {                     \
            fprintf(stderr, "%s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__,      \
                    __LINE__, #a, #b, unit_a_ ? unit_a_ : "(null)",                      \
                    unit_b_ ? unit_b_ : "(null)");                                       \
            unit_failed = 1;                                                             \
        }                                                                                \
    } while (0)

#define UNIT_MAIN()                                                                      \
    UnitCase unit_cases[UNIT_MAX_CASES];                                                 \
    int unit_nr_cases;                                                                   \
    int unit_failed;                                                                     \
    int main(int argc, char **argv)                                                      \
    {                                                                                    \
        int passed = 0, failed = 0;                                                      \
        if (argc > 1 && strcmp(argv[1], "--list") == 0) {                                \
            for (int i = 0; i < unit_nr_cases; i++) {                                    \
                printf("%s\n", unit_cases[i].name);                                      \
            }                                                                            \
            return 0;                                                                    \
        }                                                                                \
        for (int i = 0; i < unit_nr_cases; i++) {                                        \
            int wanted = argc == 1;                                                      \
            for (int j = 1; j < argc; j++) {                                             \
                wanted |= strcmp(argv[j], unit_cases[i].name) == 0;                      \
            }                                                                            \
            if (!wanted) {                                                               \
                continue;                                                                \
            }                                                                            \
            unit_failed = 0;                                                             \
            unit_cases[i].fn();                                                          \
            printf("%s: %s\n", unit_failed ? "FAIL" : "ok", unit_cases[i].name);         \
            unit_failed ? failed++ : passed++;                                           \
        }                                                                                \
        printf("%d passed, %d failed\n", passed, failed);                                \
        return failed ? 1 : 0;                                                           \
    }

#endif
