/* The configuration: defaults, YAML files, --set, and the refusal of every
 * kind of bad input with a message that names the key and the value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness/config.h"

/* The failure message contains every one of the given fragments. */
static void assert_message_has(const char *first, ...)
{
    const char *msg = od_error_message();
    va_list ap;
    va_start(ap, first);
    for (const char *s = first; s; s = va_arg(ap, const char *)) {
        if (!strstr(msg, s))
            fail_msg("message '%s' lacks '%s'", msg, s);
    }
    va_end(ap);
}

static od_status load_text(od_config *c, const char *text)
{
    return od_config_load_yaml_text(c, text, strlen(text), "exp.yaml");
}

static void test_defaults(void **state)
{
    (void)state;
    od_config c;
    od_config_defaults(&c);
    assert_string_equal(c.workload, "fmnist-mlp");
    assert_int_equal(c.epochs, 1);
    assert_int_equal(c.batch_size, 64);
    assert_true(c.lr == 0.05);
    assert_string_equal(c.optimizer, "sgd");
    assert_string_equal(c.schedule, "constant");
    assert_true(c.momentum == 0.0);
    assert_false(c.nesterov);
    assert_int_equal(c.threads, 1);
    assert_int_equal(c.seed, 1);
    assert_int_equal(c.train_subset, 0);
    assert_true(c.eval_each_epoch);
    assert_int_equal(c.mem_budget, 0);
    assert_string_equal(c.checkpoint, "");
    assert_string_equal(c.resume, "");
    assert_string_equal(c.data_dir, "");
    for (int i = 0; i < OD_CONFIG_KEY_COUNT; i++)
        assert_int_equal(c.origin[i], OD_CONFIG_FROM_DEFAULT);
    assert_int_equal(od_config_validate(&c), OD_OK);
}

static void test_yaml_file(void **state)
{
    (void)state;
    char path[] = "/tmp/ondev_test_config_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text =
        "# a comment\n"
        "epochs: 3\n"
        "lr: 1e-3\n"
        "optimizer: ADAM\n"
        "nesterov: no\n"
        "mem_budget: 512MiB\n"
        "data_dir: \"/data/with space\"\n"
        "checkpoint: ~\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);

    od_config c;
    od_config_defaults(&c);
    od_status st = od_config_load_yaml(&c, path);
    unlink(path);
    assert_int_equal(st, OD_OK);
    assert_int_equal(c.epochs, 3);
    assert_true(c.lr == 1e-3);
    assert_string_equal(c.optimizer, "adam");   /* canonical spelling */
    assert_false(c.nesterov);
    assert_int_equal(c.mem_budget, 512ull << 20);
    assert_string_equal(c.data_dir, "/data/with space");
    assert_string_equal(c.checkpoint, "");
    assert_int_equal(c.batch_size, 64);          /* untouched: default */
    assert_int_equal(c.origin[OD_CONFIG_KEY_epochs], OD_CONFIG_FROM_FILE);
    assert_int_equal(c.origin[OD_CONFIG_KEY_batch_size],
                     OD_CONFIG_FROM_DEFAULT);

    /* A missing file names the path. */
    assert_int_equal(od_config_load_yaml(&c, "/nonexistent/x.yaml"),
                     OD_ERR_IO);
    assert_message_has("/nonexistent/x.yaml", NULL);
}

static void test_empty_yaml(void **state)
{
    (void)state;
    od_config c;
    od_config_defaults(&c);
    assert_int_equal(load_text(&c, ""), OD_OK);
    assert_int_equal(load_text(&c, "# only a comment\n"), OD_OK);
    assert_int_equal(load_text(&c, "---\n"), OD_OK);
    assert_int_equal(c.epochs, 1);
}

static void test_set_overrides_file(void **state)
{
    (void)state;
    od_config c;
    od_config_defaults(&c);
    assert_int_equal(load_text(&c, "epochs: 3\nbatch_size: 16\n"), OD_OK);
    assert_int_equal(od_config_set_arg(&c, "epochs=5"), OD_OK);
    assert_int_equal(od_config_set_arg(&c, "workload=fmnist-cnn"), OD_OK);
    assert_int_equal(od_config_set_arg(&c, "data_dir=a=b"), OD_OK);
    assert_int_equal(c.epochs, 5);
    assert_int_equal(c.batch_size, 16);
    assert_string_equal(c.workload, "fmnist-cnn");
    assert_string_equal(c.data_dir, "a=b");      /* split at the first '=' */
    assert_int_equal(c.origin[OD_CONFIG_KEY_epochs], OD_CONFIG_FROM_ARG);
    assert_int_equal(c.origin[OD_CONFIG_KEY_batch_size], OD_CONFIG_FROM_FILE);

    assert_int_equal(od_config_set_arg(&c, "epochs"), OD_ERR_INVALID);
    assert_message_has("key=value", "epochs", NULL);
    assert_int_equal(od_config_set_arg(&c, "=3"), OD_ERR_INVALID);
}

static void test_unknown_key(void **state)
{
    (void)state;
    od_config c;
    od_config_defaults(&c);
    assert_int_equal(od_config_set_arg(&c, "epoch=3"), OD_ERR_INVALID);
    assert_message_has("'epoch'", "did you mean 'epochs'", NULL);
    assert_int_equal(od_config_set_arg(&c, "batchsize=3"), OD_ERR_INVALID);
    assert_message_has("'batchsize'", "'batch_size'", NULL);
    assert_int_equal(od_config_set_arg(&c, "Optimiser=adam"), OD_ERR_INVALID);
    assert_message_has("'optimizer'", NULL);

    /* Nothing close: no suggestion. */
    assert_int_equal(od_config_set_arg(&c, "qqqqqqqqqq=1"), OD_ERR_INVALID);
    assert_message_has("'qqqqqqqqqq'", NULL);
    assert_null(strstr(od_error_message(), "did you mean"));

    /* From a file, the message gives file, line and column. */
    assert_int_equal(load_text(&c, "epochs: 2\n  \nlearning_rat: 0.1\n"),
                     OD_ERR_INVALID);
    assert_message_has("exp.yaml:3:1", "'learning_rat'", NULL);
}

static void test_bad_values(void **state)
{
    (void)state;
    static const struct {
        const char *arg, *key, *value, *hint;
    } cases[] = {
        {"batch_size=-3", "batch_size", "-3", "[1, 65536]"},
        {"batch_size=0", "batch_size", "0", "[1, 65536]"},
        {"batch_size=12.5", "batch_size", "12.5", "integer"},
        {"epochs=99999999999999999999", "epochs", "99999999999999999999",
         "range"},
        {"lr=abc", "lr", "abc", "number"},
        {"lr=0", "lr", "0", "(0, 1000]"},
        {"lr=nan", "lr", "nan", "number"},
        {"momentum=1", "momentum", "1", "[0, 1)"},
        {"optimizer=foo", "optimizer", "foo", "sgd, adam, adamw"},
        {"schedule=linear", "schedule", "linear", "constant, step, cosine"},
        {"nesterov=maybe", "nesterov", "maybe", "true or false"},
        {"mem_budget=12XB", "mem_budget", "12XB", "unit"},
        {"mem_budget=-1", "mem_budget", "-1", "size"},
        {"threads=", "threads", "", "integer"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        od_config c, before;
        od_config_defaults(&c);
        before = c;
        if (od_config_set_arg(&c, cases[i].arg) != OD_ERR_INVALID)
            fail_msg("%s was accepted", cases[i].arg);
        char quoted[64];
        snprintf(quoted, sizeof quoted, "'%s'", cases[i].value);
        assert_message_has(cases[i].key, quoted, cases[i].hint, "--set",
                           NULL);
        /* A refused value leaves the configuration as it was. */
        assert_memory_equal(&c, &before, sizeof c);
    }

    /* The same refusal from a file points at the key. */
    od_config c;
    od_config_defaults(&c);
    assert_int_equal(load_text(&c, "epochs: 2\nbatch_size: -3\n"),
                     OD_ERR_INVALID);
    assert_message_has("exp.yaml:2:1", "batch_size", "'-3'", NULL);
    assert_int_equal(c.epochs, 1);   /* a refused file changes nothing */
}

static void test_cross_key_checks(void **state)
{
    (void)state;
    od_config c;
    od_config_defaults(&c);
    assert_int_equal(od_config_set_arg(&c, "nesterov=true"), OD_OK);
    assert_int_equal(od_config_validate(&c), OD_ERR_INVALID);
    assert_message_has("nesterov", "momentum", NULL);
    assert_int_equal(od_config_set_arg(&c, "momentum=0.9"), OD_OK);
    assert_int_equal(od_config_validate(&c), OD_OK);

    od_config_defaults(&c);
    assert_int_equal(od_config_set_arg(&c, "schedule=cosine"), OD_OK);
    assert_int_equal(od_config_set_arg(&c, "lr_min=0.5"), OD_OK);
    assert_int_equal(od_config_validate(&c), OD_ERR_INVALID);
    assert_message_has("lr_min", NULL);
}

static void test_malformed_yaml(void **state)
{
    (void)state;
    od_config c;
    od_config_defaults(&c);

    /* An unclosed quote, and a mapping value where none may start. */
    assert_int_equal(load_text(&c, "epochs: 3\nlr: \"0.1\nseed: 2\n"),
                     OD_ERR_FORMAT);
    assert_message_has("exp.yaml:4:1", "YAML syntax error", "line 2", NULL);
    assert_int_equal(load_text(&c, "epochs: 3\nlr: a: b\n"), OD_ERR_FORMAT);
    assert_message_has("exp.yaml:2:", "YAML syntax error", NULL);

    /* A bad indentation on line 3. */
    assert_int_equal(load_text(&c, "epochs: 3\nlr: 0.1\n  seed: 2\n"),
                     OD_ERR_FORMAT);
    assert_message_has("exp.yaml:3:", NULL);

    /* Structure other than a flat mapping. */
    assert_int_equal(load_text(&c, "epochs:\n  value: 3\n"), OD_ERR_FORMAT);
    assert_message_has("exp.yaml:2:", "epochs", "mapping", NULL);
    assert_int_equal(load_text(&c, "- epochs\n- 3\n"), OD_ERR_FORMAT);
    assert_message_has("exp.yaml:1:1", "flat mapping", NULL);
    assert_int_equal(load_text(&c, "just text\n"), OD_ERR_FORMAT);
    assert_message_has("mapping", NULL);

    /* A key given twice. */
    assert_int_equal(load_text(&c, "lr: 0.1\nepochs: 2\nlr: 0.2\n"),
                     OD_ERR_FORMAT);
    assert_message_has("exp.yaml:3:1", "'lr'", "line 1", NULL);
}

static void test_sizes(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        uint64_t bytes;
    } good[] = {
        {"0", 0}, {"100", 100}, {"100B", 100}, {"64K", 65536},
        {"512MiB", 536870912ull}, {"512mib", 536870912ull},
        {"2GB", 2000000000ull}, {"1.5GiB", 1610612736ull},
        {"3 KB", 3000}, {"1TiB", 1099511627776ull},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        uint64_t b = 1;
        if (od_parse_size(good[i].text, &b) != OD_OK)
            fail_msg("'%s' refused: %s", good[i].text, od_error_message());
        assert_int_equal(b, good[i].bytes);
    }
    static const char *const bad[] = {"12XB", "", "MiB", "-1", "1.5.2GB",
                                      "1e30GB", "12 X"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t b;
        if (od_parse_size(bad[i], &b) == OD_OK)
            fail_msg("'%s' accepted as %llu bytes", bad[i],
                     (unsigned long long)b);
    }

    /* Formatting gives the shortest exact form, which parses back. */
    static const uint64_t sizes[] = {0, 1000, 1024, 536870912ull,
                                     3ull << 30, 1536, 1023};
    static const char *const texts[] = {"0", "1000", "1KiB", "512MiB",
                                        "3GiB", "1536", "1023"};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char buf[32];
        uint64_t back;
        od_format_size(sizes[i], buf, sizeof buf);
        assert_string_equal(buf, texts[i]);
        assert_int_equal(od_parse_size(buf, &back), OD_OK);
        assert_int_equal(back, sizes[i]);
    }
}

/* --print-config output read back gives the same configuration. */
static void test_yaml_round_trip(void **state)
{
    (void)state;
    od_config c, d;
    od_config_defaults(&c);
    assert_int_equal(od_config_set_arg(&c, "lr=0.1"), OD_OK);
    assert_int_equal(od_config_set_arg(&c, "data_dir=/a \"quoted\" dir"),
                     OD_OK);
    assert_int_equal(od_config_set_arg(&c, "mem_budget=1500000"), OD_OK);
    assert_int_equal(od_config_set_arg(&c, "eps=3e-7"), OD_OK);

    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    od_config_write_yaml(&c, f);
    fclose(f);

    od_config_defaults(&d);
    if (od_config_load_yaml_text(&d, buf, len, "printed") != OD_OK)
        fail_msg("printed configuration not readable: %s\n%s",
                 od_error_message(), buf);
    free(buf);
    size_t n;
    const od_config_key *keys = od_config_keys(&n);
    assert_int_equal(n, OD_CONFIG_KEY_COUNT);
    for (size_t i = 0; i < n; i++) {
        char a[OD_CONFIG_STR_MAX], b[OD_CONFIG_STR_MAX];
        od_config_value_text(&c, &keys[i], a, sizeof a);
        od_config_value_text(&d, &keys[i], b, sizeof b);
        if (strcmp(a, b) != 0)
            fail_msg("%s: '%s' printed, '%s' read back", keys[i].name, a, b);
    }
    assert_true(d.lr == 0.1 && d.eps == 3e-7);
}

static void test_markdown_lists_every_key(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    od_config_write_markdown(f);
    fclose(f);
    size_t n;
    const od_config_key *keys = od_config_keys(&n);
    for (size_t i = 0; i < n; i++) {
        char cell[96];
        snprintf(cell, sizeof cell, "| `%s` |", keys[i].name);
        if (!strstr(buf, cell))
            fail_msg("key %s missing from the Markdown table", keys[i].name);
        assert_true(strlen(keys[i].doc) > 0);
    }
    free(buf);
}

static void test_closest_name(void **state)
{
    (void)state;
    const char *names[] = {"run", "privacy", "sweep"};
    assert_string_equal(od_closest_name("rnu", names, 3), "run");
    assert_string_equal(od_closest_name("privcy", names, 3), "privacy");
    assert_null(od_closest_name("compare", names, 3));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_yaml_file),
        cmocka_unit_test(test_empty_yaml),
        cmocka_unit_test(test_set_overrides_file),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_cross_key_checks),
        cmocka_unit_test(test_malformed_yaml),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_yaml_round_trip),
        cmocka_unit_test(test_markdown_lists_every_key),
        cmocka_unit_test(test_closest_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
