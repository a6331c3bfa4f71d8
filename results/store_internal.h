/* Shared between the files of results/: small utilities. */
#ifndef ONDEV_RESULTS_STORE_INTERNAL_H
#define ONDEV_RESULTS_STORE_INTERNAL_H

#include <stddef.h>
#include <stdio.h>

/* Turn off HDF5's own error printing (failures go through od_res_fail). */
void od__res_quiet_hdf5(void);
/* strdup of s, "" for NULL; NULL when out of memory. */
char *od__res_strdup(const char *s);
/* Write the text of a memory buffer to path through "<path>.tmp" and a
 * rename, so that a reader never sees half of it. */
int od__res_write_atomic(const char *path, const char *buf, size_t len);
/* A number for people: %.6g, "n/a" for NaN. */
void od__res_fmt_num(double v, char *buf, size_t len);

#endif
