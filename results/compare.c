/* Regression comparison of two sets of results, for CI. */
#include "results/results.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "results/store_internal.h"

/* The defaults, documented in docs/ci.md. Figures that a fixed seed makes
 * deterministic are held tightly: op counts, steps and peak memory must not
 * move at all; accuracy and loss may move by what a different kernel path
 * (AVX-512 against AVX2, say) does to float rounding. */
static const od_res_tolerance od__defaults[] = {
    {"test_accuracy", OD_RES_TOL_ABS, 0.005, OD_RES_BETTER_HIGHER},
    {"test_loss", OD_RES_TOL_REL, 0.01, OD_RES_BETTER_LOWER},
    {"train_loss", OD_RES_TOL_REL, 0.01, OD_RES_BETTER_LOWER},
    {"emulated_time_s", OD_RES_TOL_REL, 0.001, OD_RES_BETTER_LOWER},
    {"energy_j", OD_RES_TOL_REL, 0.001, OD_RES_BETTER_LOWER},
    {"epsilon", OD_RES_TOL_REL, 1e-6, OD_RES_BETTER_LOWER},
    {"flops_total", OD_RES_TOL_REL, 0, OD_RES_BETTER_NONE},
    {"steps", OD_RES_TOL_ABS, 0, OD_RES_BETTER_NONE},
    {"samples", OD_RES_TOL_ABS, 0, OD_RES_BETTER_NONE},
    {"peak_mem_bytes", OD_RES_TOL_REL, 0, OD_RES_BETTER_LOWER},
    {"host_time_s", OD_RES_TOL_RATIO, 1.5, OD_RES_BETTER_LOWER},
};

/* Configuration keys that say where things are, not what is computed. */
static const char *const od__ignored_keys[] = {
    "checkpoint", "resume", "data_dir", "file",
};

void od_res_tolerances_default(od_res_tolerances *t)
{
    memset(t, 0, sizeof *t);
    t->n = (int)(sizeof od__defaults / sizeof od__defaults[0]);
    memcpy(t->t, od__defaults, sizeof od__defaults);
}

static od_res_tolerance *od__tol_find(od_res_tolerances *t, const char *m)
{
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->t[i].metric, m) == 0)
            return &t->t[i];
    return NULL;
}

int od_res_tolerances_load(od_res_tolerances *t, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return od_res_fail("cannot read the tolerance file %s: %s", path,
                           strerror(errno));
    char line[512];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char metric[64], kind[16], better[16] = "";
        double value;
        int n = sscanf(line, "%63s %15s %lf %15s", metric, kind, &value,
                       better);
        if (n <= 0)
            continue;
        od_res_tolerance nt = {.tol = value};
        snprintf(nt.metric, sizeof nt.metric, "%s", metric);
        if (n < 3) {
            rc = od_res_fail("%s:%d: expected \"metric abs|rel|ratio VALUE "
                             "[higher|lower|none]\"", path, lineno);
            break;
        }
        if (strcmp(kind, "abs") == 0)
            nt.kind = OD_RES_TOL_ABS;
        else if (strcmp(kind, "rel") == 0)
            nt.kind = OD_RES_TOL_REL;
        else if (strcmp(kind, "ratio") == 0)
            nt.kind = OD_RES_TOL_RATIO;
        else
            rc = od_res_fail("%s:%d: tolerance kind '%s': use abs, rel or "
                             "ratio", path, lineno, kind);
        if (rc == 0 && (!(value >= 0) ||
                        (nt.kind == OD_RES_TOL_RATIO && value < 1)))
            rc = od_res_fail("%s:%d: tolerance %g: must be >= 0 (>= 1 for "
                             "ratio)", path, lineno, value);
        od_res_tolerance *old = od__tol_find(t, metric);
        nt.better = old ? old->better : OD_RES_BETTER_NONE;
        if (rc == 0 && n == 4) {
            if (strcmp(better, "higher") == 0)
                nt.better = OD_RES_BETTER_HIGHER;
            else if (strcmp(better, "lower") == 0)
                nt.better = OD_RES_BETTER_LOWER;
            else if (strcmp(better, "none") == 0)
                nt.better = OD_RES_BETTER_NONE;
            else
                rc = od_res_fail("%s:%d: direction '%s': use higher, lower "
                                 "or none", path, lineno, better);
        }
        if (rc)
            break;
        if (old)
            *old = nt;
        else if (t->n == OD_RES_MAX_TOLERANCES)
            rc = od_res_fail("%s: more than %d metrics", path,
                             OD_RES_MAX_TOLERANCES);
        else
            t->t[t->n++] = nt;
        if (strcmp(metric, "host_time_s") == 0)
            t->host_time = 1;
    }
    fclose(f);
    return rc;
}

/* ---- Matching ----------------------------------------------------------- */

static int od__ignored(const char *key)
{
    for (size_t i = 0; i < sizeof od__ignored_keys / sizeof *od__ignored_keys;
         i++)
        if (strcmp(key, od__ignored_keys[i]) == 0)
            return 1;
    return 0;
}

/* Same configuration: every key both runs have (other than the ignored
 * ones) has the same text. Keys only one side has are new or retired
 * keys of another ondev version. */
static int od__same_config(const od_res_run *a, const od_res_run *b)
{
    for (int i = 0; i < a->config.n; i++) {
        const od_res_value *va = &a->config.v[i];
        if (od__ignored(va->key))
            continue;
        const od_res_value *vb = od_res_values_find(&b->config, va->key);
        if (!vb)
            continue;
        if (va->is_text != vb->is_text)
            return 0;
        if (va->is_text ? strcmp(va->text, vb->text) != 0
                        : va->num != vb->num)
            return 0;
    }
    return 1;
}

/* ---- Verdicts ----------------------------------------------------------- */

typedef enum od__verdict {
    OD__OK = 0,
    OD__IMPROVED,
    OD__REGRESSION,
    OD__MISSING,
} od__verdict;

static const char *const od__verdict_names[] = {
    "ok", "improved", "REGRESSION", "MISSING",
};

typedef struct od__check {
    int point;                 /* index into base */
    const od_res_tolerance *tol;
    double base, cur;
    const char *units;
    od__verdict verdict;
    char change[32];
    char limit[48];            /* the tolerance in words */
} od__check;

static void od__judge(od__check *c)
{
    const od_res_tolerance *t = c->tol;
    double b = c->base, n = c->cur, d = n - b;
    switch (t->kind) {
    case OD_RES_TOL_ABS:
        snprintf(c->limit, sizeof c->limit, "+-%g", t->tol);
        break;
    case OD_RES_TOL_REL:
        snprintf(c->limit, sizeof c->limit, "+-%g%%", 100.0 * t->tol);
        break;
    case OD_RES_TOL_RATIO:
        snprintf(c->limit, sizeof c->limit, "x%g", t->tol);
        break;
    }
    if (isnan(b) && isnan(n)) {
        snprintf(c->change, sizeof c->change, "-");
        c->verdict = OD__OK;
        return;
    }
    if (isnan(b) || isnan(n)) {
        snprintf(c->change, sizeof c->change, "n/a");
        c->verdict = OD__MISSING;
        return;
    }
    if (t->kind == OD_RES_TOL_RATIO)
        snprintf(c->change, sizeof c->change, "x%.3f", b != 0 ? n / b : NAN);
    else if (b != 0)
        snprintf(c->change, sizeof c->change, "%+.3g%%", 100.0 * d / fabs(b));
    else
        snprintf(c->change, sizeof c->change, "%+.3g", d);

    int outside, worse;
    if (t->kind == OD_RES_TOL_RATIO) {
        /* A wide band for noisy figures: only the ratio is judged. */
        double r = b > 0 ? n / b : (n > 0 ? INFINITY : 1.0);
        outside = r > t->tol || r < 1.0 / t->tol;
        worse = t->better == OD_RES_BETTER_HIGHER ? r < 1.0 : r > 1.0;
    } else {
        double lim = t->kind == OD_RES_TOL_ABS ? t->tol : t->tol * fabs(b);
        outside = fabs(d) > lim;
        worse = t->better == OD_RES_BETTER_HIGHER ? d < 0 : d > 0;
    }
    if (!outside)
        c->verdict = OD__OK;
    else if (t->better == OD_RES_BETTER_NONE || worse)
        c->verdict = OD__REGRESSION;
    else
        c->verdict = OD__IMPROVED;
}

/* ---- JUnit -------------------------------------------------------------- */

static void od__xml(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default:
            if ((unsigned char)*s >= 0x20 || *s == '\n' || *s == '\t')
                fputc(*s, f);
        }
    }
}

static int od__write_junit(const char *path, const od_res_set *base,
                           const od__check *checks, int nchecks)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return od_res_fail("out of memory");
    int failures = 0;
    for (int i = 0; i < nchecks; i++)
        failures += checks[i].verdict >= OD__REGRESSION;
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<testsuites name=\"ondev compare\" tests=\"%d\" "
               "failures=\"%d\">\n", nchecks, failures);
    for (int p = 0; p < base->nruns; p++) {
        int n = 0, nf = 0;
        for (int i = 0; i < nchecks; i++)
            if (checks[i].point == p) {
                n++;
                nf += checks[i].verdict >= OD__REGRESSION;
            }
        if (n == 0)
            continue;
        const char *label = base->runs[p].label;
        fputs("  <testsuite name=\"", f);
        od__xml(f, label);
        fprintf(f, "\" tests=\"%d\" failures=\"%d\">\n", n, nf);
        for (int i = 0; i < nchecks; i++) {
            const od__check *c = &checks[i];
            if (c->point != p)
                continue;
            fputs("    <testcase classname=\"ondev.compare.", f);
            od__xml(f, label);
            fputs("\" name=\"", f);
            od__xml(f, c->tol->metric);
            fputs("\">", f);
            char detail[256];
            int unitless = !c->units[0] || strcmp(c->units, "1") == 0;
            snprintf(detail, sizeof detail,
                     "base %.17g, new %.17g%s%s, change %s, tolerance %s",
                     c->base, c->cur, unitless ? "" : " ",
                     unitless ? "" : c->units, c->change, c->limit);
            if (c->verdict >= OD__REGRESSION) {
                fprintf(f, "\n      <failure type=\"%s\" message=\"",
                        c->verdict == OD__MISSING ? "missing" : "regression");
                od__xml(f, detail);
                fputs("\"/>\n    ", f);
            } else {
                fputs("\n      <system-out>", f);
                od__xml(f, detail);
                fputs("</system-out>\n    ", f);
            }
            fputs("</testcase>\n", f);
        }
        fputs("  </testsuite>\n", f);
    }
    fputs("</testsuites>\n", f);
    fclose(f);
    int rc = od__res_write_atomic(path, buf, len);
    free(buf);
    return rc;
}

/* ---- The comparison ----------------------------------------------------- */

static int od__interrupted(const od_res_run *r)
{
    double v = od_res_summary_num(r, "interrupted");
    return !isnan(v) && v != 0;
}

int od_res_compare(const od_res_set *base, const od_res_set *cur,
                   const od_res_tolerances *tol, FILE *out,
                   const char *junit_path)
{
    if (base->nruns == 0 || cur->nruns == 0) {
        od_res_fail("nothing to compare: %s has no runs",
                    base->nruns ? cur->source : base->source);
        return OD_RES_CMP_UNUSABLE;
    }

    /* Each base run pairs with exactly one new run. */
    int *match = malloc((size_t)base->nruns * sizeof *match);
    if (!match) {
        od_res_fail("out of memory");
        return OD_RES_CMP_UNUSABLE;
    }
    int rc = OD_RES_CMP_OK;
    for (int i = 0; i < base->nruns && rc == OD_RES_CMP_OK; i++) {
        const od_res_run *b = &base->runs[i];
        match[i] = -1;
        for (int j = 0; j < cur->nruns; j++) {
            if (!od__same_config(b, &cur->runs[j]))
                continue;
            if (match[i] >= 0) {
                od_res_fail("%s and %s have the same configuration as %s: "
                            "cannot tell which to compare",
                            cur->runs[match[i]].path, cur->runs[j].path,
                            b->path);
                rc = OD_RES_CMP_UNUSABLE;
            }
            match[i] = j;
        }
        if (rc == OD_RES_CMP_OK && match[i] < 0) {
            od_res_fail("no run in %s has the configuration of %s (%s): "
                        "were both made from the same sweep?", cur->source,
                        b->path, b->label);
            rc = OD_RES_CMP_UNUSABLE;
        }
        if (rc == OD_RES_CMP_OK &&
            (od__interrupted(b) || od__interrupted(&cur->runs[match[i]]))) {
            od_res_fail("%s was interrupted: its figures cannot stand for "
                        "a full run", od__interrupted(b)
                                          ? b->path
                                          : cur->runs[match[i]].path);
            rc = OD_RES_CMP_UNUSABLE;
        }
    }
    if (rc != OD_RES_CMP_OK) {
        free(match);
        return rc;
    }
    if (cur->nruns > base->nruns)
        fprintf(out, "note: %d run%s of %s %s no counterpart in %s and %s "
                "not compared\n", cur->nruns - base->nruns,
                cur->nruns - base->nruns == 1 ? "" : "s", cur->source,
                cur->nruns - base->nruns == 1 ? "has" : "have", base->source,
                cur->nruns - base->nruns == 1 ? "is" : "are");

    /* One check per point and metric present on either side. */
    od__check *checks = calloc((size_t)(base->nruns * tol->n) + 1,
                               sizeof *checks);
    if (!checks) {
        free(match);
        od_res_fail("out of memory");
        return OD_RES_CMP_UNUSABLE;
    }
    int n = 0;
    for (int i = 0; i < base->nruns; i++) {
        const od_res_run *b = &base->runs[i], *c = &cur->runs[match[i]];
        for (int k = 0; k < tol->n; k++) {
            const od_res_tolerance *t = &tol->t[k];
            if (strcmp(t->metric, "host_time_s") == 0 && !tol->host_time)
                continue;
            const od_res_value *vb = od_res_values_find(&b->summary,
                                                        t->metric);
            const od_res_value *vc = od_res_values_find(&c->summary,
                                                        t->metric);
            if (!vb && !vc)
                continue;
            od__check *ch = &checks[n++];
            ch->point = i;
            ch->tol = t;
            ch->base = vb && !vb->is_text ? vb->num : NAN;
            ch->cur = vc && !vc->is_text ? vc->num : NAN;
            ch->units = vb && !vb->is_text ? vb->units
                        : vc && !vc->is_text ? vc->units : "";
            od__judge(ch);
        }
    }

    /* The table. */
    int regressions = 0, improved = 0;
    fprintf(out, "%-24s %-16s %14s %14s %10s %9s  %s\n", "point", "metric",
            "base", "new", "change", "tolerance", "verdict");
    for (int i = 0; i < n; i++) {
        const od__check *c = &checks[i];
        char bs[32], ns[32], label[25];
        od__res_fmt_num(c->base, bs, sizeof bs);
        od__res_fmt_num(c->cur, ns, sizeof ns);
        snprintf(label, sizeof label, "%s", base->runs[c->point].label);
        fprintf(out, "%-24s %-16s %14s %14s %10s %9s  %s\n", label,
                c->tol->metric, bs, ns, c->change, c->limit,
                od__verdict_names[c->verdict]);
        regressions += c->verdict >= OD__REGRESSION;
        improved += c->verdict == OD__IMPROVED;
    }
    fprintf(out, "\n%d check%s over %d point%s: %d regression%s, %d "
            "improved%s\n", n, n == 1 ? "" : "s", base->nruns,
            base->nruns == 1 ? "" : "s", regressions,
            regressions == 1 ? "" : "s", improved,
            improved ? " (update the baseline to keep the gain)" : "");

    if (junit_path && od__write_junit(junit_path, base, checks, n)) {
        rc = OD_RES_CMP_UNUSABLE;
    } else if (n == 0) {
        od_res_fail("none of the compared metrics is in %s or %s",
                    base->source, cur->source);
        rc = OD_RES_CMP_UNUSABLE;
    } else {
        rc = regressions ? OD_RES_CMP_REGRESSION : OD_RES_CMP_OK;
    }
    free(checks);
    free(match);
    return rc;
}
