"""The OpenBLAS kernel sets worth trying on this machine: as installed
(OpenBLAS detects the CPU; "" here) and, where the CPU has AVX-512,
SkylakeX, which Debian's OpenBLAS 0.3.21 does not pick by itself on some
newer CPUs. On a CPU without AVX-512 the SkylakeX kernels die of an illegal
instruction, so they are left out there."""


def cpu_has_avx512():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return "avx512f" in line.split()
    except OSError:
        pass
    return False


def coretypes():
    return ("", "SkylakeX") if cpu_has_avx512() else ("",)
