/* The results store: one HDF5 file per run, an index for a sweep, and the
 * in-memory form that reports and regression checks read.
 *
 * This part knows nothing of the engine or the harness. A run is described
 * to it as plain data:
 *   - groups of named values: text (kept as string attributes) or numbers
 *     (kept as scalar datasets, each with a `units` attribute);
 *   - tables: named double columns with units, appended row by row.
 * docs/results-format.md describes the layout a file ends up with.
 *
 * Crash safety: a writer works on "<path>.part" and renames it to <path>
 * only in od_res_commit, after the root's `complete` marker is written and
 * the file is flushed to disk. A reader refuses a file without the marker
 * and says it is half-written.
 *
 * Functions return 0 on success and -1 on failure, leaving a message for
 * people in od_res_error(). */
#ifndef ONDEV_RESULTS_RESULTS_H
#define ONDEV_RESULTS_RESULTS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define OD_RES_FORMAT "ondev-results"
#define OD_RES_FORMAT_VERSION 1
#define OD_RES_KIND_RUN "run"
#define OD_RES_KIND_INDEX "sweep-index"
/* Suffix of a file being written. */
#define OD_RES_PART_SUFFIX ".part"
/* Name of a sweep's index inside its directory. */
#define OD_RES_INDEX_NAME "index.h5"

/* The message of the last failure on this thread; "" when none. */
const char *od_res_error(void);
int od_res_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- Writing ------------------------------------------------------------ */

typedef struct od_res_writer od_res_writer;
typedef struct od_res_table od_res_table;

/* Start a file of the given kind (OD_RES_KIND_RUN or _INDEX) at
 * path + ".part". The parent directory must exist. */
int od_res_create(const char *path, const char *kind, od_res_writer **out);

/* A text value: string attribute name on group (created as needed; nested
 * names such as "host/cache" allowed; "" or "/" is the root). */
int od_res_put_text(od_res_writer *w, const char *group, const char *name,
                    const char *text);
/* A number: scalar float64 dataset group/name with attribute units
 * ("1" for a pure number). NaN is stored as NaN. */
int od_res_put_num(od_res_writer *w, const char *group, const char *name,
                   double value, const char *units);
/* An exact integer: scalar int64 dataset with units. */
int od_res_put_int(od_res_writer *w, const char *group, const char *name,
                   int64_t value, const char *units);
/* A column of n doubles group/name (n,) with units, written at once. */
int od_res_put_column(od_res_writer *w, const char *group, const char *name,
                      const double *v, size_t n, const char *units);
/* A column of n UTF-8 strings group/name (n,). */
int od_res_put_strings(od_res_writer *w, const char *group,
                       const char *name, const char *const *v, size_t n);

/* A table appended row by row: group `name` (a path such as
 * "traces/steps"; readers look for tables under traces/) with one 1-D
 * float64 dataset per column. A column whose values so far are all NaN is not created
 * until its first number arrives (earlier rows read as NaN), so columns
 * that never apply to a run are absent. cols and units have ncols entries
 * and are copied. The table belongs to w: od_res_commit closes it. */
int od_res_table_create(od_res_writer *w, const char *name, int ncols,
                        const char *const *cols, const char *const *units,
                        od_res_table **out);
/* Append one row: row[ncols], NaN where a value does not apply. Rows are
 * buffered and reach the file in blocks (and at every od_res_flush). */
int od_res_table_append(od_res_table *t, const double *row);
size_t od_res_table_rows(const od_res_table *t);

/* Write buffered rows and flush the file, so that a reader of the ".part"
 * file sees everything appended so far. */
int od_res_flush(od_res_writer *w);

/* Finish: write buffered rows, set the root's `complete` marker, flush,
 * close, fsync and rename "<path>.part" to path. w is freed in every case;
 * on failure the ".part" file is left for inspection. */
int od_res_commit(od_res_writer *w);
/* Give up: close and remove the ".part" file; w is freed. NULL is fine. */
void od_res_discard(od_res_writer *w);

/* ---- Reading ------------------------------------------------------------ */

/* A named value from a group: text, or a number with its units. */
typedef struct od_res_value {
    char *key;
    int is_text;
    char *text;      /* is_text */
    double num;      /* !is_text */
    char *units;     /* !is_text; "" when the file had none */
} od_res_value;

typedef struct od_res_values {
    od_res_value *v;
    int n;
} od_res_values;

typedef struct od_res_column {
    char *name;
    char *units;
    double *data;    /* (nrows) */
} od_res_column;

typedef struct od_res_table_data {
    char *name;      /* the table's name under traces/, e.g. "steps" */
    size_t nrows;
    int ncols;
    od_res_column *cols;
} od_res_table_data;

/* One run as read back. */
typedef struct od_res_run {
    char *path;
    char *label;            /* short name for tables and legends */
    char *config_text;      /* the configuration as given to the run */
    od_res_values config;   /* /config attributes: key -> value text */
    od_res_values build;    /* /build */
    od_res_values host;     /* /host */
    od_res_values summary;  /* /summary */
    int ntraces;
    od_res_table_data *traces;
} od_res_run;

/* Runs from one source: a run file, a sweep index, or a directory. */
typedef struct od_res_set {
    char *source;
    int nruns;
    od_res_run *runs;
    int nskipped;           /* half-written files seen in a directory */
} od_res_set;

/* Read path: a run file, a sweep index (every point it lists), or a
 * directory (its index.h5 if present, else every *.h5 in it, in name
 * order). A file without its `complete` marker fails with a message saying
 * it is half-written; in a directory, "*.part" files are counted in
 * nskipped and named in a warning on stderr. Labels are set from the
 * configuration keys that differ between the runs. */
int od_res_load(const char *path, od_res_set *set);
void od_res_set_free(od_res_set *set);

/* Lookups; NULL when absent. */
const od_res_value *od_res_values_find(const od_res_values *vs,
                                       const char *key);
const od_res_table_data *od_res_run_trace(const od_res_run *r,
                                          const char *name);
const od_res_column *od_res_trace_column(const od_res_table_data *t,
                                         const char *name);
/* A summary number; NaN when absent or not a number. */
double od_res_summary_num(const od_res_run *r, const char *key);
/* A summary or configuration text; NULL when absent. */
const char *od_res_run_text(const od_res_run *r, const char *key);

/* ---- Summaries, sweeps -------------------------------------------------- */

/* The summary of every run as CSV (a header row, then a row per run; the
 * columns are the union of the summary keys, numbers with %.17g, NaN as
 * an empty field) or JSON (an array of objects, NaN as null). A second
 * header line is not used: units appear in the column name as
 * "key [units]" for CSV and under "units" for JSON. */
int od_res_write_summary_csv(const od_res_set *set, FILE *f);
int od_res_write_summary_json(const od_res_set *set, FILE *f);
/* Both, next to a file: "<stem>.csv" and "<stem>.json", each written to a
 * temporary name first and renamed. */
int od_res_write_summary_files(const od_res_set *set, const char *stem);

/* The index of a sweep in dir, written last: it lists files[0..n) (names
 * relative to dir, each a committed run file) with a row per point of
 * their summaries, then "summary.csv" and "summary.json" beside it. */
int od_res_write_index(const char *dir, const char *const *files, int n);

/* ---- Report ------------------------------------------------------------- */

/* Plots (PNG and SVG through gnuplot, with the .gp script and .dat data
 * of each beside it), report.html and report.md in outdir (created).
 * Plots whose data are absent are skipped with a line on log explaining
 * why. Fails when gnuplot cannot be run. */
int od_res_report(const od_res_set *set, const char *outdir, FILE *log);

/* ---- Regression comparison ---------------------------------------------- */

typedef enum od_res_tol_kind {
    OD_RES_TOL_ABS = 0,   /* |new - base| <= tol */
    OD_RES_TOL_REL,       /* |new - base| <= tol * |base| */
    OD_RES_TOL_RATIO,     /* new / base <= tol (worse direction only) */
} od_res_tol_kind;

typedef enum od_res_better {
    OD_RES_BETTER_NONE = 0,  /* any change past tolerance is a regression */
    OD_RES_BETTER_HIGHER,
    OD_RES_BETTER_LOWER,
} od_res_better;

typedef struct od_res_tolerance {
    char metric[64];
    od_res_tol_kind kind;
    double tol;
    od_res_better better;
} od_res_tolerance;

#define OD_RES_MAX_TOLERANCES 64

typedef struct od_res_tolerances {
    int n;
    od_res_tolerance t[OD_RES_MAX_TOLERANCES];
    int host_time;           /* compare host_time_s too */
} od_res_tolerances;

/* The documented defaults (docs/ci.md). host_time is off. */
void od_res_tolerances_default(od_res_tolerances *t);
/* Lines "metric abs|rel|ratio value [higher|lower|none]" override or add;
 * '#' starts a comment. A line for host_time_s turns host_time on. */
int od_res_tolerances_load(od_res_tolerances *t, const char *path);

/* Outcome of od_res_compare. */
enum {
    OD_RES_CMP_OK = 0,
    OD_RES_CMP_REGRESSION = 1,
    OD_RES_CMP_UNUSABLE = 2,
};

/* Match the runs of base and cur by configuration, compare each metric
 * of tol, print a table to out and, when junit_path is not NULL, write
 * JUnit XML with one test case per metric and point. Returns one of
 * OD_RES_CMP_*; on UNUSABLE the reason is in od_res_error(). */
int od_res_compare(const od_res_set *base, const od_res_set *cur,
                   const od_res_tolerances *tol, FILE *out,
                   const char *junit_path);

#endif
