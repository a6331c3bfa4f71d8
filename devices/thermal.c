/* The thermal model: two lumped RC nodes (SoC and skin) in series to
 * ambient, integrated exactly for piecewise-constant power.
 *
 * With x = T - T_amb for both nodes, the system is x' = A x + b P with
 *   A = [ -g/C_soc          g/C_soc          ]    g = 1 / R_ss
 *       [  g/C_skin  -(g + h)/C_skin          ]    h = 1 / R_sa
 *   b = [ 1/C_soc, 0 ].
 * Its fixed point under constant P is x* = (P (R_ss + R_sa), P R_sa), and
 * x(t) = x* + exp(A t) (x(0) - x*). A has two distinct negative real
 * eigenvalues (its discriminant (a11 - a22)^2 + 4 a12 a21 is positive), so
 * exp(A t) follows from Sylvester's formula:
 *   exp(A t) = (e^{l1 t} (A - l2 I) - e^{l2 t} (A - l1 I)) / (l1 - l2). */
#include <math.h>

#include "devices/device.h"

void od_dev_thermal_init(od_dev_thermal *t, const od_dev_profile *p,
                         double ambient_c)
{
    t->r_ss_c_per_w = p->r_soc_skin_c_per_w;
    t->r_sa_c_per_w = p->r_skin_amb_c_per_w;
    t->c_soc_j_per_c = p->c_soc_j_per_c;
    t->c_skin_j_per_c = p->c_skin_j_per_c;
    t->ambient_c = ambient_c;
    t->soc_c = ambient_c;
    t->skin_c = ambient_c;
}

void od_dev_thermal_steady(const od_dev_thermal *t, double power_w,
                           double *soc_c, double *skin_c)
{
    *skin_c = t->ambient_c + power_w * t->r_sa_c_per_w;
    *soc_c = t->ambient_c + power_w * (t->r_ss_c_per_w + t->r_sa_c_per_w);
}

void od_dev_thermal_advance(od_dev_thermal *t, double power_w, double dt_s)
{
    OD_DEV_ASSERT(dt_s >= 0.0);
    OD_DEV_ASSERT(t->r_ss_c_per_w > 0 && t->r_sa_c_per_w > 0);
    OD_DEV_ASSERT(t->c_soc_j_per_c > 0 && t->c_skin_j_per_c > 0);
    if (dt_s == 0.0)
        return;

    double g = 1.0 / t->r_ss_c_per_w, h = 1.0 / t->r_sa_c_per_w;
    double a11 = -g / t->c_soc_j_per_c, a12 = g / t->c_soc_j_per_c;
    double a21 = g / t->c_skin_j_per_c, a22 = -(g + h) / t->c_skin_j_per_c;

    /* Eigenvalues l1 > l2, both negative. */
    double tr = a11 + a22;
    double disc = sqrt((a11 - a22) * (a11 - a22) + 4.0 * a12 * a21);
    double l1 = 0.5 * (tr + disc), l2 = 0.5 * (tr - disc);

    /* Deviation from the fixed point under this power. */
    double soc_ss, skin_ss;
    od_dev_thermal_steady(t, power_w, &soc_ss, &skin_ss);
    double y1 = t->soc_c - soc_ss, y2 = t->skin_c - skin_ss;

    /* exp(A dt) y by Sylvester's formula. */
    double e1 = exp(l1 * dt_s), e2 = exp(l2 * dt_s), d = l1 - l2;
    double m11 = (e1 * (a11 - l2) - e2 * (a11 - l1)) / d;
    double m12 = (e1 - e2) * a12 / d;
    double m21 = (e1 - e2) * a21 / d;
    double m22 = (e1 * (a22 - l2) - e2 * (a22 - l1)) / d;

    t->soc_c = soc_ss + m11 * y1 + m12 * y2;
    t->skin_c = skin_ss + m21 * y1 + m22 * y2;
}
