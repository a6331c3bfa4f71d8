/* Emulated phone-class devices: profiles read from YAML data files, and the
 * models that turn the engine's per-op costs into emulated time, energy,
 * heat and battery drain.
 *
 * This part has its own types only. The harness converts the engine's cost
 * records into od_dev_op and hands them to an emulator, step by step; the
 * emulator charges them in virtual time (nothing sleeps) and is fully
 * deterministic. docs/devices.md explains each model, its sources and its
 * limits.
 *
 * Errors: functions whose outcome a caller must handle return od_dev_status
 * and leave a message in od_dev_error_message(); bugs trip OD_DEV_ASSERT,
 * which is on in every build. */
#ifndef ONDEV_DEVICES_DEVICE_H
#define ONDEV_DEVICES_DEVICE_H

#include <stddef.h>
#include <stdio.h>

/* ---------------------------------------------------------------- errors */

typedef enum od_dev_status {
    OD_DEV_OK = 0,
    OD_DEV_ERR_INVALID,     /* a bad setting or argument */
    OD_DEV_ERR_IO,          /* a profile file could not be read */
    OD_DEV_ERR_FORMAT,      /* a profile file is malformed */
    OD_DEV_ERR_NOT_FOUND,   /* no profile of that name on the search path */
    OD_DEV_ERR_NOMEM,
} od_dev_status;

/* The message of the last failure on this thread; "" when none. */
const char *od_dev_error_message(void);
od_dev_status od_dev_fail(od_dev_status st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void od_dev__assert_fail(const char *expr, const char *file, int line)
    __attribute__((noreturn));
#define OD_DEV_ASSERT(expr) \
    ((expr) ? (void)0 : od_dev__assert_fail(#expr, __FILE__, __LINE__))

/* ------------------------------------------------------------ op records */

/* Mirrors the engine's op kinds (engine/cost.h), in the same order. */
typedef enum od_dev_op_kind {
    OD_DEV_OP_GEMM = 0,
    OD_DEV_OP_CONV,
    OD_DEV_OP_POOL,
    OD_DEV_OP_ELTWISE,
    OD_DEV_OP_SOFTMAX,
    OD_DEV_OP_NORM,
    OD_DEV_OP_EMBED,
    OD_DEV_OP_REDUCE,
    OD_DEV_OP_OPTIM,
    OD_DEV_OP_RNG,
    OD_DEV_OP_COPY,
    OD_DEV_OP_KIND_COUNT
} od_dev_op_kind;

/* One executed op: its kind, FP32 operations and bytes moved (read plus
 * written). */
typedef struct od_dev_op {
    int kind;           /* od_dev_op_kind */
    double flops;
    double bytes;
} od_dev_op;

const char *od_dev_op_kind_name(int kind);

/* The default share of a core's peak FLOP rate each kind reaches. These are
 * placeholders until `ondev profile` calibrates them (docs/devices.md). */
double od_dev_default_efficiency(int kind);

/* --------------------------------------------------------------- profiles */

#define OD_DEV_MAX_CLUSTERS 4
#define OD_DEV_MAX_FREQS 32
#define OD_DEV_MAX_TRIPS 8
#define OD_DEV_MAX_PID_STAGES 4
#define OD_DEV_MAX_SOURCES 24
#define OD_DEV_MAX_FACTS 192
#define OD_DEV_NAME_MAX 32
#define OD_DEV_TEXT_MAX 512

/* One CPU cluster. Frequencies ascend; the arrays hold nfreq entries. */
typedef struct od_dev_cluster {
    char name[OD_DEV_NAME_MAX];         /* "little", "mid", "big" */
    char core_type[OD_DEV_NAME_MAX];    /* "Cortex-X1" */
    int cores;
    int nfreq;
    double freq_khz[OD_DEV_MAX_FREQS];
    double core_current_ma[OD_DEV_MAX_FREQS];  /* one busy core at f */
    double cluster_current_ma;                 /* cluster powered on */
    /* Heat of the whole cluster with every core busy at f (mW); when the
     * profile gives none (has_heat 0) heat is the electrical power of the
     * battery model, see od_dev_cluster_heat_mw. */
    double heat_mw[OD_DEV_MAX_FREQS];
    int has_heat;
    double heat_scale;          /* without heat_mw: heat / electrical power */
    double flop_per_cycle;      /* peak FP32 per core per cycle */
    double l2_bytes;
    double power_weight;        /* share of the thermal power budget */
} od_dev_cluster;

/* One stage of the power-allocator governor, active from control_c - the
 * previous stage's band up. Units: degrees C, mW, mW per degree C. */
typedef struct od_dev_pid_stage {
    double control_c;
    double sustainable_mw;
    double k_po, k_pu;          /* proportional gain over / under control */
    double k_i, k_d;
    double i_max_mw;
    double i_cutoff_c;          /* integrate only when error < this */
    double min_alloc_mw, max_alloc_mw;
} od_dev_pid_stage;

typedef struct od_dev_source {
    char id[OD_DEV_NAME_MAX];
    char text[OD_DEV_TEXT_MAX];
} od_dev_source;

/* Where one figure came from: key is its path in the file
 * ("clusters.big.freq_khz"), value its text as written (lists joined by
 * ", "), source an index into sources[]. */
typedef struct od_dev_fact {
    char key[64];
    char value[256];
    int source;
} od_dev_fact;

typedef struct od_dev_profile {
    char name[OD_DEV_NAME_MAX];         /* file stem: "pixel6" */
    char model[96];                     /* "Google Pixel 6 (oriole)" */
    char soc[64];
    char path[OD_DEV_TEXT_MAX];         /* the file it was read from */

    int nclusters;                      /* ascending performance */
    od_dev_cluster clusters[OD_DEV_MAX_CLUSTERS];

    double mem_total_bytes;
    double mem_bandwidth_bytes_per_s;   /* peak of the memory interface */
    double mem_cpu_bw_share;            /* share of the peak the CPU gets */
    double mem_app_share;               /* share of memory an app may use */

    double battery_mah;
    double battery_v;                   /* nominal voltage */
    double charge_current_ma;           /* net charging current */
    double kibam_c;                     /* kinetic model: available share */
    double kibam_k_per_s;               /* kinetic model: rate constant */

    double suspend_ma;                  /* device asleep */
    double awake_ma;                    /* awake, CPU idle */
    double active_ma;                   /* added while any core runs */

    double r_soc_skin_c_per_w;
    double r_skin_amb_c_per_w;
    double c_soc_j_per_c;
    double c_skin_j_per_c;
    int ntrips;
    double trips_c[OD_DEV_MAX_TRIPS];   /* ascending skin thresholds */
    double hysteresis_c;
    double poll_s;                      /* governor period when hot */
    int npid;
    od_dev_pid_stage pid[OD_DEV_MAX_PID_STAGES];    /* ascending */

    int nsources;
    od_dev_source sources[OD_DEV_MAX_SOURCES];
    int nfacts;
    od_dev_fact facts[OD_DEV_MAX_FACTS];

    /* Share of a core's peak FLOP rate per op kind, from the profile's
     * optional `efficiency:` section (written by `ondev profile`); 0 where
     * the profile gives none, and the emulator then uses its default. */
    double efficiency[OD_DEV_OP_KIND_COUNT];
} od_dev_profile;

/* Parse one profile file. A malformed file is refused with
 * OD_DEV_ERR_FORMAT and a message "FILE:LINE:COL: what is wrong". */
od_dev_status od_dev_profile_load(const char *path, od_dev_profile *p);
/* The same from text in memory; name stands for the file in messages and
 * gives the profile's name when the text has no `name:`. */
od_dev_status od_dev_profile_parse(const char *text, size_t len,
                                   const char *name, od_dev_profile *p);

/* The source text of the figure at key, or NULL when none is recorded. */
const char *od_dev_profile_source(const od_dev_profile *p, const char *key);

/* Memory an app may use on this phone: total × app share. */
double od_dev_profile_mem_budget_bytes(const od_dev_profile *p);

/* The big cluster: the one whose single core has the highest peak FLOP
 * rate (the later one on a tie). */
int od_dev_profile_big_cluster(const od_dev_profile *p);
/* Index of the cluster called name, or -1. */
int od_dev_profile_cluster_index(const od_dev_profile *p, const char *name);

/* The directories searched for NAME.yaml, in order: each entry of the
 * environment variable ONDEV_DEVICE_PATH (colon-separated), then
 * shipped_dir (may be NULL). */
typedef struct od_dev_search_path {
    int ndirs;
    char dirs[16][OD_DEV_TEXT_MAX];
} od_dev_search_path;

void od_dev_search_path_init(od_dev_search_path *sp, const char *shipped_dir);

/* Find and load NAME. OD_DEV_ERR_NOT_FOUND lists the valid names. A name
 * containing '/' or ending in ".yaml" is read as a file path. */
od_dev_status od_dev_profile_find(const od_dev_search_path *sp,
                                  const char *name, od_dev_profile *p);

/* The profile names on the path, sorted, without duplicates (an earlier
 * directory wins). Returns the count; names holds up to cap of them. */
int od_dev_profile_names(const od_dev_search_path *sp,
                         char (*names)[OD_DEV_NAME_MAX], int cap);

/* -------------------------------------------------------------- CPU model */

/* Roofline time of one op on n_cores of cluster c at freq_khz: the larger
 * of compute time flops / (n_cores × FLOP per cycle × f × efficiency) and
 * memory time bytes / bandwidth_bytes_per_s. */
double od_dev_op_time_s(const od_dev_cluster *c, int n_cores,
                        double freq_khz, double efficiency,
                        double bandwidth_bytes_per_s, const od_dev_op *op);

/* Heat of cluster c with n_busy cores at frequency index fi (mW). */
double od_dev_cluster_heat_mw(const od_dev_cluster *c, int fi, int n_busy,
                              double battery_v);
/* Battery current of cluster c with n_busy cores at index fi (mA):
 * cluster current + n_busy × core current; 0 when n_busy is 0. */
double od_dev_cluster_current_ma(const od_dev_cluster *c, int fi,
                                 int n_busy);

/* ---------------------------------------------------------- thermal model */

/* Two lumped nodes, SoC and skin, in series to ambient:
 *   C_soc  dT_soc/dt  = P - (T_soc - T_skin) / R_ss
 *   C_skin dT_skin/dt = (T_soc - T_skin) / R_ss - (T_skin - T_amb) / R_sa
 * with the power P entering the SoC node. */
typedef struct od_dev_thermal {
    double r_ss_c_per_w, r_sa_c_per_w;
    double c_soc_j_per_c, c_skin_j_per_c;
    double ambient_c;
    double soc_c, skin_c;
} od_dev_thermal;

void od_dev_thermal_init(od_dev_thermal *t, const od_dev_profile *p,
                         double ambient_c);
/* Advance by dt_s under constant power_w, exactly (closed form of the
 * linear system), so the result does not depend on how time is split. */
void od_dev_thermal_advance(od_dev_thermal *t, double power_w, double dt_s);
/* Steady-state temperatures under constant power_w. */
void od_dev_thermal_steady(const od_dev_thermal *t, double power_w,
                           double *soc_c, double *skin_c);

/* ---------------------------------------------------------- battery model */

typedef enum od_dev_battery_model {
    OD_DEV_BATTERY_LINEAR = 0,  /* ideal: charge falls with current */
    OD_DEV_BATTERY_KIBAM,       /* kinetic battery model, two wells */
} od_dev_battery_model;

typedef struct od_dev_battery {
    od_dev_battery_model model;
    double capacity_c;          /* coulombs */
    double voltage_v;
    double kibam_c, kibam_k_per_s;
    double avail_c, bound_c;    /* charge in the two wells (coulombs); the
                                   linear model keeps everything in avail */
    double energy_j;            /* drawn by the load so far */
} od_dev_battery;

void od_dev_battery_init(od_dev_battery *b, const od_dev_profile *p,
                         od_dev_battery_model model, double soc);
/* Draw load_ma for dt_s while charge_ma flows in (0 when unplugged). */
void od_dev_battery_advance(od_dev_battery *b, double load_ma,
                            double charge_ma, double dt_s);
/* State of charge in [0, 1]: all charge over capacity. */
double od_dev_battery_soc(const od_dev_battery *b);
/* Charge the load can draw now, over capacity (the available well). */
double od_dev_battery_available(const od_dev_battery *b);

/* -------------------------------------------------------------- emulator */

typedef enum od_dev_governor {
    OD_DEV_GOV_PID = 0,         /* power allocator (default) */
    OD_DEV_GOV_STEP_WISE,       /* one frequency step per trip crossed */
    OD_DEV_GOV_NONE,            /* never throttles */
} od_dev_governor;

typedef enum od_dev_verdict {
    OD_DEV_CONTINUE = 0,
    OD_DEV_PAUSE,               /* wait (idle) and ask again */
    OD_DEV_STOP,                /* give up: the reason says why */
} od_dev_verdict;

#define OD_DEV_PLACE_ALL (-1)

typedef struct od_dev_settings {
    double ambient_c;           /* 25 */
    od_dev_governor governor;
    int cluster;                /* index, or OD_DEV_PLACE_ALL for every
                                   cluster (big.LITTLE-aware); default big */
    int threads;                /* cores used on the placed cluster; 0: all */
    double max_freq_khz;        /* user cap; 0: none */
    double initial_soc;         /* 1.0 */
    od_dev_battery_model battery_model;
    double efficiency[OD_DEV_OP_KIND_COUNT];   /* 0: the profile's, else
                                                  the default */
    /* Policies (0 / negative disables). */
    double stop_below_soc;      /* stop when charge falls below this */
    int charging;               /* plugged in: charge_ma flows in */
    int only_while_charging;    /* pause when not charging */
    double charge_current_ma;   /* 0: the profile's */
    double pause_skin_c;        /* pause while skin is above this */
} od_dev_settings;

void od_dev_settings_defaults(od_dev_settings *s, const od_dev_profile *p);

/* Parse a governor / placement / battery model name into s ("pid",
 * "step_wise", "none"; "big", "little", a cluster name or "all";
 * "linear", "kibam"). OD_DEV_ERR_INVALID names the allowed values. */
od_dev_status od_dev_settings_governor(od_dev_settings *s, const char *name);
od_dev_status od_dev_settings_placement(od_dev_settings *s,
                                        const od_dev_profile *p,
                                        const char *name);
od_dev_status od_dev_settings_battery_model(od_dev_settings *s,
                                            const char *name);

typedef struct od_dev_emu od_dev_emu;

/* Create an emulator for profile p (copied) under settings s. */
od_dev_status od_dev_emu_create(const od_dev_profile *p,
                                const od_dev_settings *s, od_dev_emu **out);
void od_dev_emu_destroy(od_dev_emu *e);

/* Charge n ops run back to back on the placed cores: time, energy, heat,
 * governor decisions and battery. Returns the emulated seconds taken. */
double od_dev_emu_advance(od_dev_emu *e, const od_dev_op *ops, size_t n);
/* Let dt_s pass with every core idle (waiting, paused). */
void od_dev_emu_idle(od_dev_emu *e, double dt_s);
/* Plug the phone in (charging 1) or out, e.g. on a participation trace. */
void od_dev_emu_set_charging(od_dev_emu *e, int charging);

/* May work go on? reason (may be NULL) gets a sentence for people. */
od_dev_verdict od_dev_emu_verdict(const od_dev_emu *e, char *reason,
                                  size_t len);

/* Totals since creation. */
double od_dev_emu_time_s(const od_dev_emu *e);
double od_dev_emu_busy_time_s(const od_dev_emu *e);
double od_dev_emu_energy_j(const od_dev_emu *e);
double od_dev_emu_battery_used_pct(const od_dev_emu *e);
double od_dev_emu_max_skin_c(const od_dev_emu *e);
double od_dev_emu_throttled_time_s(const od_dev_emu *e);
double od_dev_emu_mean_freq_khz(const od_dev_emu *e);  /* busy-time mean */
double od_dev_emu_mem_budget_bytes(const od_dev_emu *e);

/* Current state, for traces. */
double od_dev_emu_soc_c(const od_dev_emu *e);
double od_dev_emu_skin_c(const od_dev_emu *e);
double od_dev_emu_freq_khz(const od_dev_emu *e);       /* placed cluster */
double od_dev_emu_soc(const od_dev_emu *e);            /* charge, [0, 1] */
double od_dev_emu_power_w(const od_dev_emu *e);        /* battery draw */
double od_dev_emu_heat_w(const od_dev_emu *e);
double od_dev_emu_budget_mw(const od_dev_emu *e);      /* governor budget */
const od_dev_profile *od_dev_emu_profile(const od_dev_emu *e);

#endif
