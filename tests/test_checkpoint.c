/* Checkpoints: bitwise round trips of parameters and optimiser state, and
 * refusal (with the model left as it was) of corrupt, truncated, foreign and
 * mismatched files. Files go to a fresh directory under $TMPDIR or /tmp. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/checkpoint.h"

#define MAXP 4

typedef struct net {
    od_arena *arena;
    od_ctx ctx;
    od_param prm[MAXP];
    od_param *pptr[MAXP];
    od_model model;
} net;

typedef struct spec {
    const char *name;
    int ndim;
    int dims[2];
} spec;

static const spec NET_A[3] = {
    {"fc1.weight", 2, {4, 3}}, {"fc1.bias", 1, {4}}, {"fc2.weight", 2, {2, 4}}};

static char g_dir[256];

/* A model of the given parameters, values drawn from seed, gradients set. */
static void net_init(net *n, const spec *sp, int np, uint64_t seed)
{
    memset(n, 0, sizeof *n);
    n->arena = od_arena_create(0);
    assert_non_null(n->arena);
    n->ctx.arena = n->arena;
    od_rng rng;
    od_rng_seed(&rng, seed, 0);
    for (int i = 0; i < np; i++) {
        od_param *p = &n->prm[i];
        snprintf(p->name, sizeof p->name, "%s", sp[i].name);
        assert_int_equal(od_tensor_alloc(n->arena, OD_MEM_PARAM, &p->value,
                                         sp[i].ndim, sp[i].dims), OD_OK);
        assert_int_equal(od_tensor_alloc(n->arena, OD_MEM_GRAD, &p->grad,
                                         sp[i].ndim, sp[i].dims), OD_OK);
        for (size_t k = 0; k < p->value.size; k++)
            p->value.data[k] = (float)od_rng_normal(&rng);
        p->trainable = 1;
        n->pptr[i] = p;
    }
    n->model.ctx = &n->ctx;
    n->model.params = n->pptr;
    n->model.nparams = np;
}

static void net_grads(net *n, uint64_t seed)
{
    od_rng rng;
    od_rng_seed(&rng, seed, 1);
    for (int i = 0; i < n->model.nparams; i++)
        for (size_t k = 0; k < n->prm[i].grad.size; k++)
            n->prm[i].grad.data[k] = (float)od_rng_normal(&rng);
}

static void net_free(net *n)
{
    for (int i = 0; i < n->model.nparams; i++) {
        od_arena_free(n->arena, n->prm[i].value.data);
        od_arena_free(n->arena, n->prm[i].grad.data);
    }
    assert_int_equal(od_arena_used(n->arena), 0);
    od_arena_destroy(n->arena);
}

static int net_same_values(const net *a, const net *b)
{
    for (int i = 0; i < a->model.nparams; i++)
        if (memcmp(a->prm[i].value.data, b->prm[i].value.data,
                   a->prm[i].value.size * sizeof(float)) != 0)
            return 0;
    return 1;
}

static void path_in_dir(char *buf, size_t len, const char *file)
{
    snprintf(buf, len, "%s/%s", g_dir, file);
}

static long file_size(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

static void poke(const char *path, long off, const void *bytes, size_t n)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, off, SEEK_SET), 0);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    fclose(f);
}

/* Count directory entries other than . and .. */
static int dir_entries(void)
{
    DIR *d = opendir(g_dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static int setup_dir(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/ondev-ckpt-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
    (void)state;
    DIR *d = opendir(g_dir);
    if (!d)
        return -1;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", g_dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    return rmdir(g_dir);
}

static void test_crc32_known_value(void **state)
{
    (void)state;
    /* The check value of CRC-32/ISO-HDLC (zlib, PNG). */
    assert_int_equal(od_crc32(0, "123456789", 9), 0xCBF43926u);
    /* Continuing over a split gives the same result. */
    uint32_t c = od_crc32(0, "1234", 4);
    assert_int_equal(od_crc32(c, "56789", 5), 0xCBF43926u);
    assert_int_equal(od_crc32(0, "", 0), 0);
}

/* Train A two steps, save, load into B (other values, fresh optimiser):
 * values, state and counters are bitwise equal, and a further step keeps
 * them equal. Once for Adam, once for SGD with momentum. */
static void round_trip(const od_optim_config *cfg, const char *file)
{
    char path[512];
    path_in_dir(path, sizeof path, file);
    net a, b;
    net_init(&a, NET_A, 3, 1);
    net_init(&b, NET_A, 3, 2);
    od_optim *oa = NULL, *ob = NULL;
    assert_int_equal(od_optim_create(&a.ctx, &a.model, cfg, &oa), OD_OK);
    assert_int_equal(od_optim_create(&b.ctx, &b.model, cfg, &ob), OD_OK);
    for (int s = 0; s < 2; s++) {
        net_grads(&a, 10 + (uint64_t)s);
        assert_int_equal(od_optim_step(oa, -1.0f), OD_OK);
    }
    int before = dir_entries();
    assert_int_equal(od_checkpoint_save(path, &a.model, oa, 1234567890123ull),
                     OD_OK);
    assert_int_equal(dir_entries(), before + 1); /* no temporary left */

    uint64_t step = 0;
    assert_false(net_same_values(&a, &b));
    assert_int_equal(od_checkpoint_load(path, &b.model, ob, &step), OD_OK);
    assert_true(step == 1234567890123ull);
    assert_true(net_same_values(&a, &b));
    assert_int_equal(od_optim_step_count(ob), 2);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(od_optim_param_steps(ob, i), 2);
        for (int k = 0; k < od_optim_slot_count(oa); k++)
            assert_memory_equal(od_optim_state(oa, i, k),
                                od_optim_state(ob, i, k),
                                a.prm[i].value.size * sizeof(float));
    }

    net_grads(&a, 99);
    net_grads(&b, 99);
    assert_int_equal(od_optim_step(oa, -1.0f), OD_OK);
    assert_int_equal(od_optim_step(ob, -1.0f), OD_OK);
    assert_true(net_same_values(&a, &b));

    od_optim_destroy(oa);
    od_optim_destroy(ob);
    net_free(&a);
    net_free(&b);
}

static void test_round_trip_adam(void **state)
{
    (void)state;
    od_optim_config c = od_optim_config_default(OD_OPTIM_ADAM);
    round_trip(&c, "adam.ckpt");
}

static void test_round_trip_sgd_momentum(void **state)
{
    (void)state;
    od_optim_config c = od_optim_config_default(OD_OPTIM_SGD);
    c.momentum = 0.9f;
    round_trip(&c, "sgd.ckpt");
}

/* Parameters only; saving again replaces the file under the same name. */
static void test_params_only(void **state)
{
    (void)state;
    char path[512];
    path_in_dir(path, sizeof path, "params.ckpt");
    net a, b;
    net_init(&a, NET_A, 3, 3);
    net_init(&b, NET_A, 3, 4);
    assert_int_equal(od_checkpoint_save(path, &b.model, NULL, 1), OD_OK);
    assert_int_equal(od_checkpoint_save(path, &a.model, NULL, 7), OD_OK);
    uint64_t step = 0;
    assert_int_equal(od_checkpoint_load(path, &b.model, NULL, &step), OD_OK);
    assert_int_equal(step, 7);
    assert_true(net_same_values(&a, &b));

    /* Asking for optimiser state the file does not hold is a mismatch. */
    od_optim_config c = od_optim_config_default(OD_OPTIM_SGD);
    od_optim *o = NULL;
    assert_int_equal(od_optim_create(&b.ctx, &b.model, &c, &o), OD_OK);
    assert_int_equal(od_checkpoint_load(path, &b.model, o, NULL),
                     OD_ERR_MISMATCH);
    assert_non_null(strstr(od_error_message(), "no optimiser state"));
    od_optim_destroy(o);
    net_free(&a);
    net_free(&b);
}

/* Save A into `file`, return its path; B is the model loads go into. */
static void saved(net *a, net *b, char *path, size_t len, const char *file)
{
    path_in_dir(path, len, file);
    net_init(a, NET_A, 3, 5);
    net_init(b, NET_A, 3, 6);
    assert_int_equal(od_checkpoint_save(path, &a->model, NULL, 3), OD_OK);
}

/* Load must fail with st, a message naming the file and containing `what`,
 * and B unchanged. */
static void expect_refused(net *b, const char *path, od_status st,
                           const char *what)
{
    net snapshot;
    net_init(&snapshot, NET_A, 3, 6); /* the same values B started with */
    assert_true(net_same_values(&snapshot, b));
    uint64_t step = 42;
    assert_int_equal(od_checkpoint_load(path, &b->model, NULL, &step), st);
    const char *msg = od_error_message();
    if (!strstr(msg, path) || !strstr(msg, what)) {
        print_error("message '%s' lacks '%s' or the path\n", msg, what);
        fail();
    }
    assert_int_equal(step, 42);
    assert_true(net_same_values(&snapshot, b));
    net_free(&snapshot);
}

static void test_corrupt_byte(void **state)
{
    (void)state;
    char path[512];
    net a, b;
    saved(&a, &b, path, sizeof path, "corrupt.ckpt");
    long n = file_size(path);
    /* A byte in the middle (parameter data) and the last byte (the CRC). */
    unsigned char x = 0x5a;
    poke(path, n / 2, &x, 1);
    expect_refused(&b, path, OD_ERR_FORMAT, "checksum");
    assert_int_equal(od_checkpoint_save(path, &a.model, NULL, 3), OD_OK);
    unsigned char last;
    FILE *f = fopen(path, "rb");
    fseek(f, n - 1, SEEK_SET);
    assert_int_equal(fread(&last, 1, 1, f), 1);
    fclose(f);
    last ^= 1;
    poke(path, n - 1, &last, 1);
    expect_refused(&b, path, OD_ERR_FORMAT, "checksum");
    net_free(&a);
    net_free(&b);
}

static void test_truncated(void **state)
{
    (void)state;
    char path[512];
    net a, b;
    saved(&a, &b, path, sizeof path, "trunc.ckpt");
    long n = file_size(path);
    assert_int_equal(truncate(path, n - 1), 0);
    expect_refused(&b, path, OD_ERR_FORMAT, "truncated");
    assert_int_equal(truncate(path, n / 2), 0);
    expect_refused(&b, path, OD_ERR_FORMAT, "truncated");
    assert_int_equal(truncate(path, 12), 0); /* inside the header */
    expect_refused(&b, path, OD_ERR_FORMAT, "truncated");
    assert_int_equal(truncate(path, 0), 0);
    expect_refused(&b, path, OD_ERR_FORMAT, "not an ondev checkpoint");
    net_free(&a);
    net_free(&b);
}

static void test_wrong_magic_and_version(void **state)
{
    (void)state;
    char path[512];
    net a, b;
    saved(&a, &b, path, sizeof path, "magic.ckpt");
    poke(path, 0, "PK", 2);
    expect_refused(&b, path, OD_ERR_FORMAT, "not an ondev checkpoint");

    assert_int_equal(od_checkpoint_save(path, &a.model, NULL, 3), OD_OK);
    uint32_t v = OD_CHECKPOINT_VERSION + 1;
    poke(path, 8, &v, 4);
    expect_refused(&b, path, OD_ERR_FORMAT, "version 2");

    char missing[600];
    snprintf(missing, sizeof missing, "%s/none.ckpt", g_dir);
    expect_refused(&b, missing, OD_ERR_IO, "cannot open");
    net_free(&a);
    net_free(&b);
}

/* Other shape, other name, other count: each refused naming what differs;
 * neither model nor optimiser changes. */
static void test_model_mismatch(void **state)
{
    (void)state;
    char path[512];
    net a, b;
    saved(&a, &b, path, sizeof path, "mismatch.ckpt");

    spec shape[3] = {NET_A[0], NET_A[1], {"fc2.weight", 2, {3, 4}}};
    net c;
    net_init(&c, shape, 3, 6);
    od_optim_config cfg = od_optim_config_default(OD_OPTIM_ADAM);
    od_optim *o = NULL;
    assert_int_equal(od_optim_create(&c.ctx, &c.model, &cfg, &o), OD_OK);
    net_grads(&c, 1);
    assert_int_equal(od_optim_step(o, -1.0f), OD_OK);
    net c_before;
    net_init(&c_before, shape, 3, 6);
    memcpy(c_before.prm[2].value.data, c.prm[2].value.data, 12 * 4);
    memcpy(c_before.prm[0].value.data, c.prm[0].value.data, 12 * 4);
    memcpy(c_before.prm[1].value.data, c.prm[1].value.data, 4 * 4);
    float m_before[12];
    memcpy(m_before, od_optim_state(o, 2, 0), sizeof m_before);

    assert_int_equal(od_checkpoint_load(path, &c.model, NULL, NULL),
                     OD_ERR_MISMATCH);
    assert_non_null(strstr(od_error_message(), "'fc2.weight'"));
    assert_non_null(strstr(od_error_message(), "(2, 4)"));
    assert_non_null(strstr(od_error_message(), "(3, 4)"));
    assert_true(net_same_values(&c, &c_before));
    assert_memory_equal(m_before, od_optim_state(o, 2, 0), sizeof m_before);
    od_optim_destroy(o);
    net_free(&c);
    net_free(&c_before);

    spec renamed[3] = {NET_A[0], {"fc1.b", 1, {4}}, NET_A[2]};
    net_init(&c, renamed, 3, 6);
    assert_int_equal(od_checkpoint_load(path, &c.model, NULL, NULL),
                     OD_ERR_MISMATCH);
    assert_non_null(strstr(od_error_message(), "'fc1.bias'"));
    assert_non_null(strstr(od_error_message(), "'fc1.b'"));
    net_free(&c);

    net_init(&c, NET_A, 2, 6);
    assert_int_equal(od_checkpoint_load(path, &c.model, NULL, NULL),
                     OD_ERR_MISMATCH);
    assert_non_null(strstr(od_error_message(), "3 parameters"));
    net_free(&c);

    /* The untouched model B still loads the file. */
    assert_int_equal(od_checkpoint_load(path, &b.model, NULL, NULL), OD_OK);
    assert_true(net_same_values(&a, &b));
    net_free(&a);
    net_free(&b);
}

/* State of another optimiser kind, or without momentum buffers. */
static void test_optimiser_mismatch(void **state)
{
    (void)state;
    char path[512];
    path_in_dir(path, sizeof path, "optkind.ckpt");
    net a;
    net_init(&a, NET_A, 3, 8);
    od_optim_config sgd = od_optim_config_default(OD_OPTIM_SGD);
    od_optim *o = NULL;
    assert_int_equal(od_optim_create(&a.ctx, &a.model, &sgd, &o), OD_OK);
    assert_int_equal(od_checkpoint_save(path, &a.model, o, 0), OD_OK);
    od_optim_destroy(o);

    net b;
    net_init(&b, NET_A, 3, 9);
    od_optim_config adam = od_optim_config_default(OD_OPTIM_ADAM);
    assert_int_equal(od_optim_create(&b.ctx, &b.model, &adam, &o), OD_OK);
    assert_int_equal(od_checkpoint_load(path, &b.model, o, NULL),
                     OD_ERR_MISMATCH);
    assert_non_null(strstr(od_error_message(), "sgd"));
    od_optim_destroy(o);

    sgd.momentum = 0.9f;
    assert_int_equal(od_optim_create(&b.ctx, &b.model, &sgd, &o), OD_OK);
    assert_int_equal(od_checkpoint_load(path, &b.model, o, NULL),
                     OD_ERR_MISMATCH);
    assert_non_null(strstr(od_error_message(), "momentum"));
    od_optim_destroy(o);

    net snapshot;
    net_init(&snapshot, NET_A, 3, 9);
    assert_true(net_same_values(&snapshot, &b));
    net_free(&snapshot);
    net_free(&a);
    net_free(&b);
}

static void test_unwritable_directory(void **state)
{
    (void)state;
    net a;
    net_init(&a, NET_A, 3, 1);
    char path[512];
    snprintf(path, sizeof path, "%s/no/such/dir/x.ckpt", g_dir);
    assert_int_equal(od_checkpoint_save(path, &a.model, NULL, 0), OD_ERR_IO);
    assert_non_null(strstr(od_error_message(), path));
    net_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32_known_value),
        cmocka_unit_test(test_round_trip_adam),
        cmocka_unit_test(test_round_trip_sgd_momentum),
        cmocka_unit_test(test_params_only),
        cmocka_unit_test(test_corrupt_byte),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_wrong_magic_and_version),
        cmocka_unit_test(test_model_mismatch),
        cmocka_unit_test(test_optimiser_mismatch),
        cmocka_unit_test(test_unwritable_directory),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
