/* Checkpoints: a model's parameters, optionally its optimiser's state, and
 * the training step, in one binary file protected by a CRC-32.
 *
 * Layout (integers and floats in the writer's byte order, which the
 * endianness marker records; docs/engine.md has the full table):
 *   "ODCKPT\r\n" magic, u32 version, u32 marker 0x01020304,
 *   u64 file bytes, u64 step, u32 parameter count,
 *   per parameter: u32 name length, name, u32 ndim, u32 dims[ndim],
 *                  u32 trainable, f32 data[size]
 *   u32 optimiser present; when 1: u32 kind, the configuration, u64 steps,
 *   u32 slots, per parameter: u32 has state, u64 steps, f32 slots x size
 *   u32 CRC-32 (IEEE 802.3) of every byte before it.
 *
 * Save writes a temporary file next to the target, flushes it to disk and
 * renames it over the target, so the target name never holds half a file.
 * Load checks everything (magic, version, byte order, length, checksum, and
 * that names, shapes and count match the model and the optimiser) before it
 * writes anything: on failure the model and optimiser are as they were. */
#ifndef ONDEV_ENGINE_CHECKPOINT_H
#define ONDEV_ENGINE_CHECKPOINT_H

#include "engine/model.h"
#include "engine/optim.h"

#define OD_CHECKPOINT_VERSION 1u

/* o may be NULL: parameters and step only. */
od_status od_checkpoint_save(const char *path, const od_model *m,
                             const od_optim *o, uint64_t step);

/* o may be NULL: any optimiser state in the file is ignored. With o, the file
 * must hold state of the same kind and slot count (OD_ERR_MISMATCH
 * otherwise). step may be NULL. Errors: OD_ERR_IO (cannot open or read),
 * OD_ERR_FORMAT (not a checkpoint, other version or byte order, truncated,
 * checksum mismatch), OD_ERR_MISMATCH (model or optimiser differs); the
 * message names the file and, for mismatches, the parameter. */
od_status od_checkpoint_load(const char *path, od_model *m, od_optim *o,
                             uint64_t *step);

/* CRC-32 as in zlib and PNG (reflected polynomial 0xEDB88320): pass 0 as crc
 * for the first block, then the previous result to continue. */
uint32_t od_crc32(uint32_t crc, const void *data, size_t n);

#endif
