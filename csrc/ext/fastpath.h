/*
 * fastpath.h - what the files of the `pymem._fastpath` module share: the C
 * core's function types, the Bound object every builtin is made of, the
 * argument helpers the hot paths inline, and each file's entry points.
 *
 * The module is one extension built from several files (setup.py), one
 * concept each:
 *   fastpath.c  the module: its functions table and init, range_users;
 *   bound.c     the Bound object and bind(), which makes a builtin of a kind;
 *   args.c      argument parsing and the pymem.errors exceptions;
 *   lookup.c    dispatch builtins: lookup, translate, section, and their
 *               result types (Translation, SectionAt);
 *   ram.c       access builtins: fixed-width loads and stores, read, write,
 *               and the rw_* slow-path steps;
 *   device.c    the MMIO path: a load or store handed to a Python device's
 *               callback straight from C;
 *   taps.c      access taps: the TapSet of an address space, its events;
 *   mapping.c   map and unmap (QEMU's address_space_map/unmap), and the
 *               Mapping a mapped view is a window of;
 *   memtx.c     QEMU's calls answering a MemTxResult: rw, load, store with
 *               attributes;
 *   guards.c    C context managers: ReadSection, Setting, Transaction;
 *   atomic.c    atomic() and call_owned(): several changes in one C call;
 *   regionobj.c Region, MemoryRegion's C base: its fields, its node, the
 *               common add_subregion in one C call;
 *   hostmem.c   SlabAllocator: page-aligned memory of small RAM regions;
 *   commit.c    a commit's steps: flatview_roots(), render_view(),
 *               swap_views() (the registry swap, publishes, release).
 * Functions one file calls in another are hidden from other shared objects
 * (FP_INTERNAL); the per-call helpers are static inline here, so the hot
 * paths compile as they did in one file.
 */
#ifndef PYMEM_FASTPATH_H
#define PYMEM_FASTPATH_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdarg.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

#include "pymem.h"
#include "pyaddr.h"

typedef uint32_t (*lookup_fn)(void *obj, uint64_t addr);
typedef uint64_t (*load_fn)(void *obj, uint64_t addr);
typedef int (*load64_fn)(void *obj, uint64_t addr, uint64_t *value);
typedef int (*store_fn)(void *obj, uint64_t addr, uint64_t value);
typedef int (*rw_fn)(void *obj, uint64_t addr, uint8_t *buf, uint64_t len, void *stop);
typedef uint32_t (*translate_fn)(void *obj, uint64_t addr, uint64_t len,
                                 uint64_t *offset_in_region, uint64_t *plen);
typedef void (*section_fn)(void *obj, uint64_t addr, uint64_t len, pm_access *out);
typedef void (*rcu_fn)(void);

#define LOAD_MISS UINT64_MAX  /* no load of 32 bits or fewer can return it */

/* Access kinds a tap filters on: the region's kind, or unassigned space. */
enum {
    FP_KIND_RAM, FP_KIND_ROM, FP_KIND_RAM_DEVICE, FP_KIND_ROM_DEVICE, FP_KIND_IO,
    FP_KIND_IOMMU, FP_KIND_UNASSIGNED, FP_KIND_COUNT
};
#define FP_KIND_BIT(k) (1u << (k))

/* The taps of one address space (taps.c).  The builtins read `n` and
 * `memory_taps` after every access: while both are zero, taps cost nothing
 * more than that read. */
typedef struct TapSet {
    PyObject_HEAD
    PyObject *space;          /* the AddressSpace: events name it */
    PyObject *taps;           /* tuple of Tap, replaced on every change */
    Py_ssize_t n;             /* len(taps) */
    Py_ssize_t memory_taps;   /* taps that may want plain memory pieces */
    PyObject *cached_region;  /* region_kind's last answer */
    int cached_kind;
    PyObject *spare;          /* an event no tap kept, for the next piece */
} TapSet;

/* One piece of an access, as the taps are told of it. */
typedef struct {
    uint64_t addr, offset, value;
    uint32_t size;
    int is_write, has_value, big_endian, mmio, result;
    PyObject *region;         /* borrowed; Py_None: unassigned */
    PyObject *attrs;          /* borrowed; NULL or Py_None: unspecified */
    PyObject *data;           /* borrowed bytes, or NULL: made from value */
} fp_piece;

typedef struct {
    PyObject_HEAD
    void *fn;
    void *obj;
    unsigned width;          /* bytes, for stores: values must fit */
    rcu_fn read_lock, read_unlock;   /* "section" and device calls */
    section_fn device;       /* loads and stores: pm_as_translate, or NULL */
    int big_endian;          /* loads and stores: the access's byte order */
    PyObject *fallback;      /* called as the slow path; may be None */
    PyObject *keepalive;     /* owns the C object `obj` points to */
    TapSet *taps;            /* access builtins: the space's taps, or NULL */
    /* device.c's cache: the last device region's direct callbacks */
    uint32_t dev_region;     /* its id; UINT32_MAX: none */
    unsigned dev_sizes;      /* access sizes one callback answers (bit mask) */
    int dev_unaligned, dev_big;
    int dev_hint;            /* the last access took the device path */
    uint64_t dev_generation; /* ops_generation when remembered */
    PyObject *dev_read, *dev_write;
    PyObject *dev_ref;       /* a weak reference to that region */
    PyObject *dev_offset;    /* the offset int of the last device call (device.c) */
    PyObject *spare_result;  /* load_attrs: its last answer, for reuse (memtx.c) */
    /* mapping.c's cache: the last mapped region's memory, exported */
    uint32_t map_region;     /* its id; UINT32_MAX: none */
    PyObject *map_memory;    /* a mapping.c Export of it */
} Bound;

/* A Bound cleared by the garbage collector (its cycle was unreachable) can
 * only be called from a finalizer of that same garbage: refuse.  Both are
 * tested: a live Bound's fallback is at least None, never NULL. */
#define CHECK_LIVE(self)                                                       \
    do {                                                                       \
        if (!(self)->keepalive || !(self)->fallback) {                         \
            PyErr_SetString(PyExc_ReferenceError, "fast-path object was collected"); \
            return NULL;                                                       \
        }                                                                      \
    } while (0)

/*
 * Arguments.  The builtins take what the Python methods take and refuse what
 * they refuse, with the same errors: an address is an int (not a bool, not
 * an object that only has __index__, such as numpy.uint64) in [0, 2^64).
 * Builtins with a Python slow path hand anything else (bad arguments,
 * keywords) to it, so its checks raise; the others raise here, with the
 * classes of pymem.errors.
 */
static inline int as_address(PyObject *arg, uint64_t *addr)
{
    if (!PyLong_Check(arg) || PyBool_Check(arg)) {
        return -1;
    }
    /* pyaddr.h: the digits read directly on CPython 3.11. */
    if (pm_address_arg(arg, addr) < 0) {
        PyErr_Clear();
        return -1;
    }
    return 0;
}

/*
 * The argument fast path every builtin starts with: a positional call (no
 * keywords) of nmin..nmax arguments whose first `naddr` (those given) are
 * addresses, converted into out[].  0: so; -1: anything else, no error set,
 * for the caller's general parser (lookup, translate) or its Python
 * fallback (SLOW_UNLESS) to take or refuse.
 */
static inline int fp_positional_addresses(PyObject *const *args, Py_ssize_t nargs,
                                          PyObject *kwnames, Py_ssize_t nmin,
                                          Py_ssize_t nmax, Py_ssize_t naddr, uint64_t *out)
{
    if (kwnames || nargs < nmin || nargs > nmax) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < naddr && i < nargs; i++) {
        if (as_address(args[i], &out[i]) < 0) {
            return -1;
        }
    }
    return 0;
}

/* A value to store in `width` bytes: an int (a bool too, as store() takes
 * it) that fits.  0: *out holds it; -1: anything else, no error set (the
 * Python path refuses it by name). */
static inline int fp_store_value(PyObject *arg, unsigned width, uint64_t *out)
{
    if (!PyLong_Check(arg)) {
        return -1;
    }
    unsigned long long v = PyLong_AsUnsignedLongLong(arg);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    if (width < 8 && (v >> (8 * width)) != 0) {
        return -1;
    }
    *out = v;
    return 0;
}

/* Loads and stores: (addr) and (addr, value), positional; anything else
 * (keywords, a bad argument) is the Python slow path's to take or refuse. */
#define SLOW_UNLESS(cond)                                                      \
    do {                                                                       \
        if (!(cond)) {                                                         \
            return PyObject_Vectorcall(self->fallback, args, nargs, kwnames); \
        }                                                                      \
    } while (0)

/* Large copies release the GIL: the buffer is ours (read) or pinned (write). */
#define RELEASE_GIL_BYTES (64 * 1024)

static inline int in_space(uint64_t addr, uint64_t len)
{
    return len != 0 && addr + (len - 1) >= addr;
}

#define FP_INTERNAL __attribute__((visibility("hidden")))

/* args.c */
FP_INTERNAL PyObject *fp_pymem_error(const char *name, PyObject *fallback_type,
                                     const char *fmt, ...);
FP_INTERNAL PyObject *fp_address_error(const char *what, PyObject *arg);
FP_INTERNAL int fp_parse_args(const char *fname, const char *const *names, Py_ssize_t nmin,
                              Py_ssize_t nmax, PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames, PyObject **out);

/* bound.c */
FP_INTERNAL PyObject *fp_bind(PyObject *module, PyObject *args);
FP_INTERNAL int fp_bound_init(void);

/* commit.c */
FP_INTERNAL PyObject *fp_swap_views(PyObject *module, PyObject *args);
FP_INTERNAL PyObject *fp_set_commit_api(PyObject *module, PyObject *args);
FP_INTERNAL PyObject *fp_flatview_roots(PyObject *module, PyObject *spaces);
FP_INTERNAL PyObject *fp_render_view(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
FP_INTERNAL int fp_commit_init(void);

/* lookup.c */
FP_INTERNAL PyObject *fp_call_lookup(PyObject *self_, PyObject *const *args, Py_ssize_t nargs,
                                     PyObject *kwnames);
FP_INTERNAL PyObject *fp_call_translate(PyObject *self_, PyObject *const *args,
                                        Py_ssize_t nargs, PyObject *kwnames);
FP_INTERNAL PyObject *fp_call_section(PyObject *self_, PyObject *const *args, Py_ssize_t nargs);
FP_INTERNAL PyObject *fp_call_space_translate(PyObject *self_, PyObject *const *args,
                                              Py_ssize_t nargs, PyObject *kwnames);
FP_INTERNAL int fp_lookup_init(PyObject *module);

/* ram.c */
FP_INTERNAL PyObject *fp_call_load(PyObject *self_, PyObject *const *args, Py_ssize_t nargs,
                                   PyObject *kwnames);
FP_INTERNAL PyObject *fp_call_load64(PyObject *self_, PyObject *const *args, Py_ssize_t nargs,
                                     PyObject *kwnames);
FP_INTERNAL PyObject *fp_call_store(PyObject *self_, PyObject *const *args, Py_ssize_t nargs,
                                    PyObject *kwnames);
FP_INTERNAL PyObject *fp_call_read(PyObject *self_, PyObject *const *args, Py_ssize_t nargs,
                                   PyObject *kwnames);
FP_INTERNAL PyObject *fp_call_write(PyObject *self_, PyObject *const *args, Py_ssize_t nargs,
                                    PyObject *kwnames);
FP_INTERNAL PyObject *fp_call_rw_read(PyObject *self_, PyObject *const *args, Py_ssize_t nargs);
FP_INTERNAL PyObject *fp_call_rw_write(PyObject *self_, PyObject *const *args, Py_ssize_t nargs);

/* memtx.c */
FP_INTERNAL PyObject *fp_set_memtx(PyObject *module, PyObject *args);
FP_INTERNAL PyObject *fp_call_rw(PyObject *self_, PyObject *const *args, Py_ssize_t nargs,
                                 PyObject *kwnames);
FP_INTERNAL PyObject *fp_call_load_attrs(PyObject *self_, PyObject *const *args,
                                         Py_ssize_t nargs, PyObject *kwnames);
FP_INTERNAL PyObject *fp_call_store_attrs(PyObject *self_, PyObject *const *args,
                                          Py_ssize_t nargs, PyObject *kwnames);

/* mapping.c */
FP_INTERNAL PyObject *fp_mapping(PyObject *module, PyObject *args);
FP_INTERNAL PyObject *fp_call_map(PyObject *self_, PyObject *const *args, Py_ssize_t nargs,
                                  PyObject *kwnames);
FP_INTERNAL PyObject *fp_call_unmap(PyObject *self_, PyObject *const *args, Py_ssize_t nargs,
                                    PyObject *kwnames);
FP_INTERNAL int fp_mapping_init(void);

/* device.c: 1 when handled (*result the answer, or NULL with an error set),
 * 0 to take the fallback. */
FP_INTERNAL int fp_device_load(Bound *self, uint64_t addr, PyObject **result);
FP_INTERNAL int fp_device_store(Bound *self, uint64_t addr, uint64_t value, PyObject **result);
FP_INTERNAL int fp_device_init(void);
FP_INTERNAL void fp_device_forget(Bound *self);
FP_INTERNAL PyObject *fp_ops_changed(PyObject *module, PyObject *unused);

/* taps.c: tell the taps of a piece; -1 with a tap's error set. */
FP_INTERNAL int fp_tap_emit(TapSet *taps, const fp_piece *piece);
FP_INTERNAL int fp_tap_is_set(PyObject *obj);
FP_INTERNAL int fp_taps_init(PyObject *module);

/* guards.c */
FP_INTERNAL PyObject *fp_set_rcu(PyObject *module, PyObject *args);
FP_INTERNAL int fp_plain_attribute(PyObject *obj, PyObject *name);
FP_INTERNAL int fp_guards_init(PyObject *module);

/* atomic.c */
FP_INTERNAL PyObject *fp_atomic(PyObject *module, PyObject *steps);
FP_INTERNAL PyObject *fp_call_owned(PyObject *module, PyObject *args);

/* regionobj.c */
FP_INTERNAL int fp_region_init(PyObject *module);
FP_INTERNAL pm_region *fp_region_node(PyObject *obj);
FP_INTERNAL PyObject *fp_region_dirty_log(PyObject *obj);

/* hostmem.c */
FP_INTERNAL int fp_hostmem_init(PyObject *module);

#endif /* PYMEM_FASTPATH_H */
