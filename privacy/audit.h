/* A privacy audit in one training run (Steinke, Nasr & Jagielski,
 * "Privacy Auditing with One (1) Training Run", NeurIPS 2023,
 * arXiv:2305.08846).
 *
 * m canaries are each put into the training set with probability 1/2,
 * independently. After training, an auditor who sees the model scores every
 * canary, guesses "in" for the r/2 highest scores and "out" for the r/2
 * lowest, and abstains on the rest. If training is (ε, δ)-DP, the paper
 * bounds the probability of v or more correct guesses (od_audit_p_value);
 * observing v correct guesses rules out, at confidence 1 - β, every ε whose
 * bound is at most β. The largest ruled-out ε is the empirical lower bound
 * ε̂: a correct implementation can never (beyond probability β) show ε̂
 * above the ε it claims; a broken one can.
 *
 * ondev's audit run is white-box and small enough for a test: a linear
 * softmax model over d features plus one private feature per canary; canary
 * j is the input A e_(d + j) with label 0, and its score is how far the
 * weight of class 0 on feature d + j moved during training. Real examples
 * fill the first d features. Training is DP-SGD with Poisson sampling
 * (privacy/dpsgd.h) and plain SGD updates. */
#ifndef ONDEV_PRIVACY_AUDIT_H
#define ONDEV_PRIVACY_AUDIT_H

#include <stdint.h>

#include "engine/common.h"

/* The paper's bound on P[W >= v] for the number W of correct guesses
 * when m = canaries canaries are randomised, r = guesses guesses are made
 * and v = correct of them are right, under (ε, δ)-DP:
 *
 *   F(k)  = P[Binomial(r, q) >= k],  q = e^ε / (1 + e^ε)
 *   α     = max over i = 1..v of (F(v - i) - F(v)) / i
 *   p     = min(1, F(v) + 2 m δ α)
 *
 * With δ = 0 this is the binomial tail F(v) of the pure-DP theorem. p is
 * the p-value of the hypothesis "training is (ε, δ)-DP" after observing v.
 * OD_ERR_INVALID unless 0 <= v <= r <= m, r >= 1, ε >= 0 and finite and
 * δ in [0, 1]. */
od_status od_audit_p_value(int canaries, int guesses, int correct,
                           double epsilon, double delta, double *p_out);

/* ε̂: the largest ε >= 0 with od_audit_p_value(m, r, v, ε, δ) <= beta,
 * to about 1e-12; 0 when even ε = 0 cannot be ruled out. The same
 * argument checks as od_audit_p_value, and beta in (0, 1). */
od_status od_audit_epsilon_lower(int canaries, int guesses, int correct,
                                 double delta, double beta, double *eps_out);

typedef struct od_audit_config {
    int canaries;             /* m */
    int guesses;              /* r, even, <= m */
    int base_examples;        /* ordinary training examples */
    int features;             /* d: features of the ordinary examples */
    int classes;
    int steps;
    double sampling_rate;     /* q */
    double clip_norm;         /* C */
    double noise_multiplier;  /* σ; 0: calibrated to target_epsilon */
    double target_epsilon;
    double delta;
    double lr;
    double canary_scale;      /* A */
    double beta;              /* 1 - confidence of the bound */
    uint64_t seed;
    /* Test only: train without clipping while claiming the guarantee. */
    int test_disable_clipping;
} od_audit_config;

/* m 1000, r 200, 500 examples of 20 features in 4 classes, 100 steps at
 * q 0.1, C 1, target ε 2 at δ 1e-5, lr 1, A 100, β 0.05, seed 1. */
void od_audit_config_init(od_audit_config *c);

typedef struct od_audit_result {
    double epsilon_claimed;   /* by the accountant (RDP, improved) */
    double epsilon_lower;     /* ε̂ */
    double noise_multiplier;  /* σ used */
    double sampling_rate;     /* q used: batch / training set size */
    double delta;
    double beta;
    double p_value;           /* od_audit_p_value at the claimed ε, δ */
    int canaries, included, guesses, correct;
} od_audit_result;

/* Train once with canaries and audit. OD_ERR_INVALID for a bad
 * configuration (named field). */
od_status od_audit_run(const od_audit_config *c, od_audit_result *out);

#endif
