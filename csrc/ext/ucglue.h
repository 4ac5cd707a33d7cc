/*
 * ucglue.h - what the files of the `pymem._ucglue` module share (setup.py
 * builds it from ucglue.c: callbacks and their objects; ucplan.c: where two
 * views differ and which unicorn mappings a span needs; ucmap.c: the
 * binding's unicorn map, applied in C).
 */
#ifndef PYMEM_UCGLUE_H
#define PYMEM_UCGLUE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdbool.h>
#include <stdint.h>

#include "pymem.h"

/*
 * A Port is one binding's way into its address space: the bound load and
 * store builtins of each size (in the guest's byte order) and the Python
 * callable told of an access that failed.  `busy` counts accesses in
 * progress and `active` is the address of the innermost one, so the binding
 * can tell which unicorn mapping must not be unmapped under unicorn's feet.
 */
typedef struct {
    PyObject_HEAD
    PyObject *loads[4];
    PyObject *stores[4];
    PyObject *on_error;      /* on_error(exception, addr, size, is_write) */
    int busy;
    unsigned long long active;
} Port;

/*
 * A Window is one unicorn MMIO mapping: the guest address it starts at (its
 * callbacks get offsets from there) and its port.  Its address is the
 * mapping's user data, so the binding keeps it alive while mapped.
 */
typedef struct {
    PyObject_HEAD
    Port *port;
    unsigned long long base;
} Window;

extern PyTypeObject PortType, WindowType, DirtyRangeType, MapperType;

/* unicorn's uc_cb_mmio_read_t and uc_cb_mmio_write_t, user data a Window;
 * uc_cb_hookmem_t for UC_HOOK_MEM_WRITE, user data a DirtyRange. */
uint64_t ucglue_mmio_read(void *uc, uint64_t offset, unsigned size, void *user);
void ucglue_mmio_write(void *uc, uint64_t offset, unsigned size, uint64_t value, void *user);
void ucglue_dirty_write(void *uc, int type, uint64_t address, int size, int64_t value,
                        void *user);

typedef unsigned __int128 u128;

/* A span of whole pages: [first, end), end up to 2^64. */
typedef struct {
    uint64_t first;
    u128 end;
} ucspan;

/* A growable array of spans (PyMem memory); zero-initialised is empty. */
typedef struct {
    ucspan *at;
    Py_ssize_t n, cap;
} ucspans;

int ucspans_push(ucspans *s, uint64_t first, u128 end);
void ucspans_free(ucspans *s);
/* Sort by first and merge those that overlap or touch. */
void ucspans_merge(ucspans *s);

/* Append to `out` the spans where the views' ranges differ, whole pages of
 * `page` bytes, not sorted or merged.  -1 (MemoryError) on failure. */
int ucplan_changed(const pm_range *old, Py_ssize_t old_n, const pm_range *new,
                   Py_ssize_t new_n, uint64_t page, ucspans *out);

/* One unicorn mapping of a plan: [first, end); index -1 is MMIO, else the
 * memory of ranges[index] from host address `host` (`offset` into its
 * region). */
typedef struct {
    uint64_t first;
    u128 end;
    Py_ssize_t index;
    uint64_t host;
    uint32_t flags;
    uint64_t offset;
    uint32_t dirty_mask;
} ucmapping;

typedef struct {
    ucmapping *at;
    Py_ssize_t n, cap;
} ucplan_t;

/* Replace `out`'s contents with the mappings [lo, hi] (inclusive) needs.
 * -1 (MemoryError) on failure. */
int ucplan_make(const pm_range *ranges, Py_ssize_t n, uint64_t lo, uint64_t hi, uint64_t page,
                ucplan_t *out);
void ucplan_free(ucplan_t *p);

/* hi as a Python int, 2^64 included. */
PyObject *ucglue_end_to_long(u128 end);

/* The module functions ucplan.c defines. */
PyObject *ucplan_changed_spans(PyObject *module, PyObject *args);
PyObject *ucplan_plan(PyObject *module, PyObject *args);

#endif
