/* Which instruction set the optimised kernels use, decided once from CPUID
 * (and the OS's saved-state support for the wider registers). */
#ifndef ONDEV_ENGINE_CPU_H
#define ONDEV_ENGINE_CPU_H

typedef enum od_isa {
    OD_ISA_PORTABLE = 0, /* plain C, any architecture */
    OD_ISA_AVX2,         /* AVX2 + FMA */
    OD_ISA_AVX512,       /* AVX-512 F, BW, DQ, VL */
} od_isa;

/* The best ISA this CPU supports, capped by the environment variable
 * ONDEV_ISA=portable|avx2|avx512 (for testing every path on one machine). */
od_isa od_cpu_isa(void);
/* What the CPU supports, ignoring ONDEV_ISA. */
od_isa od_cpu_isa_detected(void);
/* Force an ISA (tests); one the CPU lacks is capped to what it has. */
void od_cpu_set_isa(od_isa isa);
const char *od_isa_name(od_isa isa);

#endif
