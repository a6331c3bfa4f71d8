/* The battery: charge drawn by the load at the nominal voltage, as an ideal
 * store (linear) or as the kinetic battery model of Manwell and McGowan.
 *
 * Kinetic model: charge sits in two wells, available (share c of the
 * capacity) and bound (1 - c); the load draws from the available well and
 * charge flows from bound to available at rate k (h2 - h1), where the
 * heights are h1 = y1 / c and h2 = y2 / (1 - c). For a constant current I
 * over t, with k' = k / (c (1 - c)) and q0 = y1 + y2 at the start:
 *   y1(t) = y1 e^{-k't} + (q0 k' c - I)(1 - e^{-k't}) / k'
 *           - I c (k't - 1 + e^{-k't}) / k'
 *   y2(t) = y2 e^{-k't} + q0 (1 - c)(1 - e^{-k't})
 *           - I (1 - c)(k't - 1 + e^{-k't}) / k'
 * which conserves y1 + y2 = q0 - I t. Voltage is not modelled. */
#include <math.h>

#include "devices/device.h"

void od_dev_battery_init(od_dev_battery *b, const od_dev_profile *p,
                         od_dev_battery_model model, double soc)
{
    OD_DEV_ASSERT(soc >= 0.0 && soc <= 1.0);
    b->model = model;
    b->capacity_c = p->battery_mah * 3.6;      /* 1 mAh = 3.6 C */
    b->voltage_v = p->battery_v;
    b->kibam_c = p->kibam_c;
    b->kibam_k_per_s = p->kibam_k_per_s;
    b->energy_j = 0.0;
    if (model == OD_DEV_BATTERY_KIBAM) {
        /* Start in equilibrium: both wells at the same height. */
        b->avail_c = soc * b->capacity_c * b->kibam_c;
        b->bound_c = soc * b->capacity_c * (1.0 - b->kibam_c);
    } else {
        b->avail_c = soc * b->capacity_c;
        b->bound_c = 0.0;
    }
}

/* x - 1 + e^{-x}, accurate for small x. */
static double od__ramp(double x)
{
    if (x < 1e-4)
        return x * x * (0.5 - x / 6.0);
    return x - 1.0 + exp(-x);
}

void od_dev_battery_advance(od_dev_battery *b, double load_ma,
                            double charge_ma, double dt_s)
{
    OD_DEV_ASSERT(dt_s >= 0.0 && load_ma >= 0.0 && charge_ma >= 0.0);
    b->energy_j += b->voltage_v * load_ma * 1e-3 * dt_s;
    double i_a = (load_ma - charge_ma) * 1e-3;     /* net draw, amperes */

    if (b->model == OD_DEV_BATTERY_LINEAR || b->kibam_c >= 1.0) {
        b->avail_c -= i_a * dt_s;
        double cap = b->model == OD_DEV_BATTERY_LINEAR
                         ? b->capacity_c
                         : b->capacity_c * b->kibam_c;
        if (b->avail_c > cap)
            b->avail_c = cap;
        if (b->avail_c < 0.0)
            b->avail_c = 0.0;
        return;
    }

    double c = b->kibam_c, k = b->kibam_k_per_s;
    double y1 = b->avail_c, y2 = b->bound_c;
    if (k <= 0.0) {
        y1 -= i_a * dt_s;
    } else {
        double kp = k / (c * (1.0 - c));
        double x = kp * dt_s;
        double decay = exp(-x), rise = -expm1(-x), ramp = od__ramp(x);
        double q0 = y1 + y2;
        double n1 = y1 * decay + (q0 * kp * c - i_a) * rise / kp -
                    i_a * c * ramp / kp;
        double n2 = y2 * decay + q0 * (1.0 - c) * rise -
                    i_a * (1.0 - c) * ramp / kp;
        y1 = n1;
        y2 = n2;
    }
    /* A full or empty well stops the flow: clamp to the physical range. */
    double cap1 = b->capacity_c * c, cap2 = b->capacity_c * (1.0 - c);
    b->avail_c = fmin(fmax(y1, 0.0), cap1);
    b->bound_c = fmin(fmax(y2, 0.0), cap2);
}

double od_dev_battery_soc(const od_dev_battery *b)
{
    return (b->avail_c + b->bound_c) / b->capacity_c;
}

double od_dev_battery_available(const od_dev_battery *b)
{
    return b->avail_c / b->capacity_c;
}
