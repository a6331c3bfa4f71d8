#!/usr/bin/env bash
# ondev must build on aarch64, the phones' own architecture, where none of
# the x86 kernels exist and the portable loops run. This check cross-builds
# every source file with aarch64-linux-gnu-gcc and the flags of the real
# build (-O2 -Wall -Wextra -Werror), and links the engine, which needs
# nothing beyond libc, libm and pthreads, into a shared object that may
# leave no symbol undefined: a kernel referenced from shared code without
# a non-x86 definition fails here, not on the first ARM machine.
#
# The other parts are compiled against this machine's headers of their
# libraries (HDF5, hwloc, OpenSSL, ...), whose arm64 builds are not
# installed, so they are compiled but not linked.
#
# Exit 77 (skipped) when the cross compiler is missing:
#   apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross
set -euo pipefail
src=${ONDEV_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
cc=${ONDEV_AARCH64_CC:-aarch64-linux-gnu-gcc}
if ! command -v "$cc" >/dev/null; then
  echo "check_aarch64: skipped: no $cc (apt-get install gcc-aarch64-linux-gnu)"
  exit 77
fi
# The compiler alone (installed without its recommends) has no C library
# headers; the x86 ones would be picked up in their place and fail deep
# inside glibc's headers.
if ! echo '#include <stdio.h>' | "$cc" -E -x c - >/dev/null 2>&1; then
  echo "check_aarch64: $cc has no C library headers:" \
       "apt-get install libc6-dev-arm64-cross (./setup.sh test installs it)"
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

flags=(-std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -I"$src")
# Library headers after the cross compiler's own (its glibc comes first).
lib_flags=(-I/usr/include/hdf5/serial -idirafter /usr/include
           -idirafter /usr/include/x86_64-linux-gnu)

fail=0
n=0
compile() {   # compile OUT SRC EXTRA_FLAGS...
  local out=$1 file=$2; shift 2
  n=$((n + 1))
  if ! "$cc" "${flags[@]}" "$@" -c "$file" -o "$out" 2> "$tmp/err"; then
    echo "check_aarch64: ${file#"$src"/} does not build for aarch64:"
    cat "$tmp/err"
    fail=1
  fi
}

mkdir -p "$tmp/engine" "$tmp/other"
while IFS= read -r f; do
  compile "$tmp/engine/$(echo "${f#"$src"/}" | tr / _).o" "$f" -fPIC
done < <(find "$src/engine" -name '*.c' | sort)
for part in workloads privacy devices results harness; do
  while IFS= read -r f; do
    compile "$tmp/other/$(echo "${f#"$src"/}" | tr / _).o" "$f" "${lib_flags[@]}"
  done < <(find "$src/$part" -name '*.c' | sort)
done
[ "$fail" = 0 ] || exit 1

if ! "$cc" -shared -Wl,--no-undefined -o "$tmp/libod_engine.so" \
    "$tmp"/engine/*.o -lm -lpthread 2> "$tmp/err"; then
  echo "check_aarch64: the engine does not link for aarch64:"
  cat "$tmp/err"
  exit 1
fi
echo "check_aarch64: $n files built for aarch64; the engine links with no" \
     "undefined symbol"
