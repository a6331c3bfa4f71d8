#include "engine/cpu.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static unsigned long long od__xgetbv0(void)
{
    unsigned eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}

static od_isa od__detect(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return OD_ISA_PORTABLE;
    int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1;
    if (!osxsave || !avx)
        return OD_ISA_PORTABLE;
    unsigned long long xcr0 = od__xgetbv0();
    if ((xcr0 & 0x6) != 0x6) /* XMM and YMM state */
        return OD_ISA_PORTABLE;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return OD_ISA_PORTABLE;
    int avx2 = (b >> 5) & 1;
    int avx512f = (b >> 16) & 1, avx512dq = (b >> 17) & 1;
    int avx512bw = (b >> 30) & 1, avx512vl = (b >> 31) & 1;
    if (avx512f && avx512dq && avx512bw && avx512vl && fma &&
        (xcr0 & 0xe6) == 0xe6) /* plus opmask and ZMM state */
        return OD_ISA_AVX512;
    if (avx2 && fma)
        return OD_ISA_AVX2;
    return OD_ISA_PORTABLE;
}
#else
static od_isa od__detect(void) { return OD_ISA_PORTABLE; }
#endif

static int od__isa_ready;
static od_isa od__isa_detected_v, od__isa_v;

static void od__init(void)
{
    if (od__isa_ready)
        return;
    od__isa_detected_v = od__detect();
    od__isa_v = od__isa_detected_v;
    const char *env = getenv("ONDEV_ISA");
    if (env) {
        od_isa want = od__isa_v;
        if (!strcmp(env, "portable"))
            want = OD_ISA_PORTABLE;
        else if (!strcmp(env, "avx2"))
            want = OD_ISA_AVX2;
        else if (!strcmp(env, "avx512"))
            want = OD_ISA_AVX512;
        if (want < od__isa_v)
            od__isa_v = want;
    }
    od__isa_ready = 1;
}

od_isa od_cpu_isa(void)
{
    od__init();
    return od__isa_v;
}

od_isa od_cpu_isa_detected(void)
{
    od__init();
    return od__isa_detected_v;
}

void od_cpu_set_isa(od_isa isa)
{
    od__init();
    od__isa_v = isa < od__isa_detected_v ? isa : od__isa_detected_v;
}

const char *od_isa_name(od_isa isa)
{
    switch (isa) {
    case OD_ISA_PORTABLE: return "portable";
    case OD_ISA_AVX2: return "avx2";
    case OD_ISA_AVX512: return "avx512";
    }
    return "unknown";
}
