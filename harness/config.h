/* The configuration of an experiment: one table of named keys, each with a
 * type, a default, what values are allowed and a one-line description.
 * --print-config, `ondev config --markdown` (docs/configuration.md) and the
 * validation of every value all read this one table.
 *
 * Values come from, in order (later wins): the defaults below, a YAML file
 * (a flat mapping of key: value), then --set key=value arguments. Every
 * value is checked when it is set, so a bad one is refused before any work
 * starts, with a message naming the key, the value and what is allowed.
 *
 * Adding a key is one OD_CONFIG_X line below; the field of the same name
 * appears in od_config. Columns:
 *   name, type, default (as text), allowed, description
 * Types and what "allowed" holds:
 *   INT    64-bit integer      a range, "[lo, hi]" ("(" / ")" exclude, inf)
 *   FLOAT  double              a range, as for INT
 *   BOOL   true/false (also yes/no, on/off, 1/0)
 *   STR    text up to OD_CONFIG_STR_MAX - 1 bytes
 *   ENUM   one of the names    "a|b|c"
 *   SIZE   bytes               plain bytes or with a unit: 512MiB, 2GB, 64K */
#ifndef ONDEV_HARNESS_CONFIG_H
#define ONDEV_HARNESS_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/common.h"

#define OD_CONFIG_KEYS(X)                                                     \
    X(workload, STR, "fmnist-mlp", "",                                        \
      "model and dataset to train (`ondev run --help` lists them)")           \
    X(epochs, INT, "1", "[0, 100000]",                                        \
      "passes over the training set (0: evaluate and save only)")             \
    X(batch_size, INT, "64", "[1, 65536]",                                    \
      "examples per step; the last step of an epoch takes what is left")      \
    X(lr, FLOAT, "0.05", "(0, 1000]", "peak learning rate")                   \
    X(optimizer, ENUM, "sgd", "sgd|adam|adamw", "parameter update rule")      \
    X(momentum, FLOAT, "0", "[0, 1)", "SGD momentum (0: plain SGD)")          \
    X(nesterov, BOOL, "false", "", "Nesterov momentum (SGD, momentum > 0)")   \
    X(weight_decay, FLOAT, "0", "[0, 1000]",                                  \
      "L2 penalty (sgd, adam) or decoupled decay (adamw)")                    \
    X(beta1, FLOAT, "0.9", "[0, 1)", "Adam: decay of the first moment")       \
    X(beta2, FLOAT, "0.999", "[0, 1)", "Adam: decay of the second moment")    \
    X(eps, FLOAT, "1e-08", "(0, 1]", "Adam: term added to the denominator")   \
    X(schedule, ENUM, "constant", "constant|step|cosine",                     \
      "learning-rate schedule over the training steps")                       \
    X(lr_step_size, INT, "1000", "[1, inf)",                                  \
      "step schedule: steps between multiplications by lr_gamma")             \
    X(lr_gamma, FLOAT, "0.1", "(0, 1]", "step schedule: factor applied")      \
    X(lr_min, FLOAT, "0", "[0, 1000]", "cosine schedule: final learning rate")\
    X(warmup_steps, INT, "0", "[0, inf)",                                     \
      "steps of linear warm-up up to lr before the schedule starts")      \
    X(threads, INT, "1", "[0, 1024]",                                         \
      "worker threads, one per physical core first (0: all cores)")           \
    X(seed, INT, "1", "[0, inf)",                                             \
      "seed of initialisation, shuffling and dropout")                        \
    X(shuffle, BOOL, "true", "",                                              \
      "visit the training set in a fresh order each epoch (false: in order)") \
    X(train_subset, INT, "0", "[0, inf)",                                     \
      "train on the first N training examples (0: all)")                      \
    X(test_subset, INT, "0", "[0, inf)",                                      \
      "evaluate on the first N test examples (0: all)")                       \
    X(eval_each_epoch, BOOL, "true", "",                                      \
      "evaluate after every epoch (always after the last)")                   \
    X(mem_budget, SIZE, "0", "",                                              \
      "training memory limit, e.g. 512MiB or 2GB (0: unlimited)")             \
    X(checkpoint, STR, "", "", "file to save the model to at the end")        \
    X(resume, STR, "", "", "checkpoint file to load before training")         \
    X(data_dir, STR, "", "", "dataset directory (empty: the workload's)")    \
    X(device, STR, "", "",                                                    \
      "emulated phone profile (`ondev devices` lists them; empty: none)")    \
    X(ambient_c, FLOAT, "25", "(-40, 80)", "device: ambient temperature, C") \
    X(governor, ENUM, "pid", "pid|step_wise|none", "device: thermal governor")\
    X(placement, STR, "big", "", "device: a cluster name, big, or all")       \
    X(device_threads, INT, "0", "[0, 64]",                                    \
      "device: cores used on the placed cluster (0: all)")                    \
    X(battery_start_pct, FLOAT, "100", "(0, 100]", "device: initial charge")  \
    X(battery_model, ENUM, "linear", "linear|kibam", "device: battery model") \
    X(stop_below_pct, FLOAT, "0", "[0, 100)",                                 \
      "device: stop when the charge falls below this (0: never)")             \
    X(charging, BOOL, "false", "", "device: plugged in")                      \
    X(only_while_charging, BOOL, "false", "", "device: train only plugged in")\
    X(charge_current_ma, FLOAT, "0", "[0, 100000]",                           \
      "device: net charging current (0: the profile's)")                      \
    X(pause_skin_c, FLOAT, "0", "[0, 100]",                                   \
      "device: pause while the skin is above this (0: never)")                \
    X(max_freq_khz, FLOAT, "0", "[0, 100000000]",                             \
      "device: frequency cap on every cluster (0: none)")                     \
    X(pace, ENUM, "virtual", "virtual|realtime",                              \
      "device: realtime sleeps so wall time follows emulated time")           \
    X(dp, BOOL, "false", "",                                                  \
      "train with DP-SGD (per-example clipping, noise)")                      \
    X(clip_norm, FLOAT, "1", "(0, 1e6]",                                      \
      "DP: per-example gradient norm bound C")                                \
    X(noise_multiplier, FLOAT, "0", "[0, 1e4]",                               \
      "DP: noise std / clip_norm (0: calibrated from epsilon)")               \
    X(epsilon, FLOAT, "0", "[0, 1e4]",                                        \
      "DP: target epsilon that sets noise_multiplier (0: not used)")          \
    X(delta, FLOAT, "1e-05", "(0, 1)", "DP: delta of the reported epsilon")   \
    X(sampling, ENUM, "poisson", "poisson|shuffle",                           \
      "DP: batch sampling (Poisson: q = batch_size / training samples)")      \
    X(accountant, ENUM, "rdp", "rdp|pld", "DP: privacy accountant")           \
    X(conversion, ENUM, "improved", "improved|classic",                       \
      "DP, RDP accountant: RDP to (epsilon, delta) conversion")               \
    X(microbatch, INT, "0", "[0, 65536]",                                     \
      "examples per physical pass of a batch (0: the whole batch)")          \
    X(memory_policy, ENUM, "fail", "fail|adapt",                              \
      "a batch over the memory budget: fail, or split into micro-batches")

#define OD_CONFIG_STR_MAX 512

typedef enum od_config_type {
    OD_CONFIG_INT = 0,
    OD_CONFIG_FLOAT,
    OD_CONFIG_BOOL,
    OD_CONFIG_STR,
    OD_CONFIG_ENUM,
    OD_CONFIG_SIZE,
} od_config_type;

/* Where a value came from. */
typedef enum od_config_origin {
    OD_CONFIG_FROM_DEFAULT = 0,
    OD_CONFIG_FROM_FILE,
    OD_CONFIG_FROM_ARG,
} od_config_origin;

#define OD__CONFIG_ENUM_ENTRY(name, type, def, allowed, doc) \
    OD_CONFIG_KEY_##name,
typedef enum od_config_key_id {
    OD_CONFIG_KEYS(OD__CONFIG_ENUM_ENTRY)
    OD_CONFIG_KEY_COUNT
} od_config_key_id;

#define OD__CONFIG_CTYPE_INT(n) int64_t n;
#define OD__CONFIG_CTYPE_FLOAT(n) double n;
#define OD__CONFIG_CTYPE_BOOL(n) int n;
#define OD__CONFIG_CTYPE_STR(n) char n[OD_CONFIG_STR_MAX];
#define OD__CONFIG_CTYPE_ENUM(n) char n[OD_CONFIG_STR_MAX];
#define OD__CONFIG_CTYPE_SIZE(n) uint64_t n;
#define OD__CONFIG_FIELD(name, type, def, allowed, doc) \
    OD__CONFIG_CTYPE_##type(name)

typedef struct od_config {
    OD_CONFIG_KEYS(OD__CONFIG_FIELD)
    od_config_origin origin[OD_CONFIG_KEY_COUNT];
    char file[OD_CONFIG_STR_MAX];   /* the YAML file read, "" when none */
} od_config;

typedef struct od_config_key {
    const char *name;
    od_config_type type;
    const char *default_text;
    const char *allowed;
    const char *doc;
    size_t offset;      /* of the field in od_config */
} od_config_key;

/* The table, in declaration order. */
const od_config_key *od_config_keys(size_t *count);
/* NULL when no key has that name. */
const od_config_key *od_config_key_find(const char *name);
const char *od_config_type_name(od_config_type type);

/* Every key at its default. */
void od_config_defaults(od_config *c);

/* Parse text as the value of key and store it. origin_text says where the
 * value came from ("--set", "run.yaml:3:8") and starts any error message.
 * OD_ERR_INVALID for an unknown key (suggesting the closest name) or a
 * value that does not parse or is not allowed. */
od_status od_config_set(od_config *c, const char *key, const char *text,
                        od_config_origin origin, const char *origin_text);
/* "key=value", as given to --set. */
od_status od_config_set_arg(od_config *c, const char *arg);

/* Read a YAML file (a flat mapping of key: value) over c. Syntax errors and
 * bad values name the file, line and column. */
od_status od_config_load_yaml(od_config *c, const char *path);
/* The same from text in memory; name stands for the file in messages. */
od_status od_config_load_yaml_text(od_config *c, const char *text,
                                   size_t len, const char *name);

/* Checks that involve several keys, after all sources are applied. */
od_status od_config_validate(const od_config *c);

/* The effective configuration as YAML that `ondev run FILE` reads back. */
void od_config_write_yaml(const od_config *c, FILE *f);
/* The key table in Markdown (docs/configuration.md). */
void od_config_write_markdown(FILE *f);
/* One key's current value as text (the form --set accepts). */
void od_config_value_text(const od_config *c, const od_config_key *k,
                          char *buf, size_t len);

/* "512MiB" -> 536870912. Units: B; K, M, G, T and KiB, MiB, GiB, TiB are
 * powers of 1024; KB, MB, GB, TB powers of 1000; case-insensitive. A
 * fractional number is allowed ("1.5GiB") and rounded down to whole bytes. */
od_status od_parse_size(const char *text, uint64_t *bytes);
/* The shortest exact form: "512MiB", "1000", "0". */
void od_format_size(uint64_t bytes, char *buf, size_t len);

/* The name in names[0..n) closest to s by edit distance, or NULL if none is
 * close enough to be a plausible typo. */
const char *od_closest_name(const char *s, const char *const *names,
                            size_t n);

#endif
