/*
 * memtx.c - QEMU's access calls that answer a MemTxResult, as builtins:
 * `rw(addr, buffer, is_write, attrs=None)` (address_space_rw) and
 * `load(addr, size, big_endian=False, attrs=None)` / `store(addr, value,
 * size, big_endian=False, attrs=None)` (QEMU's address_space_ld and st calls with
 * attributes).
 *
 * Why: in Python each of these validated its arguments, resolved the
 * address and copied through cffi, 20-50x the fixed-width builtins for the
 * same RAM access.  Plain memory ignores the attributes, so when the access
 * is all plain memory (one section for load and store, as QEMU's loads and stores
 * want) it is done here in one C call and answers MemTxResult.OK; anything
 * else (a device, unassigned space, a bad argument, a tap wanting plain
 * memory) goes to the Python method, which starts the access over.
 */
#include "fastpath.h"

static load_fn fixed_loads[9][2];      /* [size][big], sizes 1, 2, 4 */
static load64_fn fixed_load64[2];      /* [big] */
static store_fn fixed_stores[9][2];    /* [size][big], sizes 1, 2, 4, 8 */
static PyObject *ok_result;            /* MemTxResult.OK */
static int ok_is_gc;                   /* it is a GC object (an enum member is) */
/* 1, 2, 4, 8 as Python ints: CPython's small ints are shared objects, so a
 * size given as a literal is recognised by identity before any conversion. */
static PyObject *size_ints[4];

/* set_memtx(ok, ldub, lduw_le, lduw_be, ldl_le, ldl_be, ldq_le, ldq_be,
 *           stb, stw_le, stw_be, stl_le, stl_be, stq_le, stq_be): the
 * core's fixed-width functions (addresses) and the answer for plain memory. */
PyObject *fp_set_memtx(PyObject *module, PyObject *args)
{
    PyObject *ok;
    unsigned long long f[14];
    (void)module;
    if (!PyArg_ParseTuple(args, "OKKKKKKKKKKKKKK:set_memtx", &ok, &f[0], &f[1], &f[2], &f[3],
                          &f[4], &f[5], &f[6], &f[7], &f[8], &f[9], &f[10], &f[11], &f[12],
                          &f[13])) {
        return NULL;
    }
    for (int i = 0; i < 14; i++) {
        if (!f[i]) {
            PyErr_SetString(PyExc_ValueError, "set_memtx: NULL function");
            return NULL;
        }
    }
    fixed_loads[1][0] = fixed_loads[1][1] = (load_fn)(uintptr_t)f[0];
    fixed_loads[2][0] = (load_fn)(uintptr_t)f[1];
    fixed_loads[2][1] = (load_fn)(uintptr_t)f[2];
    fixed_loads[4][0] = (load_fn)(uintptr_t)f[3];
    fixed_loads[4][1] = (load_fn)(uintptr_t)f[4];
    fixed_load64[0] = (load64_fn)(uintptr_t)f[5];
    fixed_load64[1] = (load64_fn)(uintptr_t)f[6];
    fixed_stores[1][0] = fixed_stores[1][1] = (store_fn)(uintptr_t)f[7];
    fixed_stores[2][0] = (store_fn)(uintptr_t)f[8];
    fixed_stores[2][1] = (store_fn)(uintptr_t)f[9];
    fixed_stores[4][0] = (store_fn)(uintptr_t)f[10];
    fixed_stores[4][1] = (store_fn)(uintptr_t)f[11];
    fixed_stores[8][0] = (store_fn)(uintptr_t)f[12];
    fixed_stores[8][1] = (store_fn)(uintptr_t)f[13];
    for (unsigned i = 0; i < 4; i++) {
        if (!size_ints[i] && !(size_ints[i] = PyLong_FromLong(1L << i))) {
            return NULL;
        }
    }
    Py_XSETREF(ok_result, Py_NewRef(ok));
    ok_is_gc = PyObject_IS_GC(ok);
    Py_RETURN_NONE;
}

#define FALLBACK() PyObject_Vectorcall(self->fallback, args, nargs, kwnames)

/*
 * Arguments by name as the Python method takes them, NULL where absent: the
 * caller's own args when all nmax are given positionally (the hot call, no
 * copy), else `buf` filled in.  NULL when they do not parse (the fallback
 * gives the error).
 */
static inline __attribute__((always_inline)) PyObject *const *
memtx_args(const char *fname, const char *const *names, Py_ssize_t nmin, Py_ssize_t nmax,
           PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, PyObject **buf)
{
    if (!kwnames && nargs == nmax) {
        return args;
    }
    if (!kwnames && nargs >= nmin && nargs <= nmax) {
        for (Py_ssize_t i = 0; i < nargs; i++) {
            buf[i] = args[i];
        }
        for (Py_ssize_t i = nargs; i < nmax; i++) {
            buf[i] = NULL;
        }
        return buf;
    }
    if (fp_parse_args(fname, names, nmin, nmax, args, nargs, kwnames, buf) < 0) {
        PyErr_Clear();
        return NULL;
    }
    return buf;
}

/* big_endian as given: 0 or 1, -1 for anything but a bool (or absent/None). */
static int byte_order(PyObject *arg)
{
    if (!arg || arg == Py_False || arg == Py_None) {
        return 0;
    }
    return arg == Py_True ? 1 : -1;
}

/* A size of 1, 2, 4 or 8 given as an int; 0 otherwise. */
static inline unsigned fixed_size(PyObject *arg)
{
    for (unsigned i = 0; i < 4; i++) {
        if (arg == size_ints[i]) {
            return 1u << i;
        }
    }
    uint64_t size;
    if (as_address(arg, &size) < 0) {
        return 0;
    }
    return size == 1 || size == 2 || size == 4 || size == 8 ? (unsigned)size : 0;
}

/*
 * (value, MemTxResult.OK) for `load`.  The tuple of the last call is reused
 * when nobody kept it (the builtin holds the only reference), as CPython's
 * zip and enumerate reuse theirs: `v, r = asp.load(...)` unpacks and drops
 * it, so a loop allocates no tuple.  The value is stolen.
 */
static PyObject *load_answer(Bound *self, PyObject *value)
{
    PyObject *t = self->spare_result;
    if (t && Py_REFCNT(t) == 1) {
        PyObject *old = PyTuple_GET_ITEM(t, 0);
        Py_INCREF(t);
        PyTuple_SET_ITEM(t, 0, value);
        Py_DECREF(old);
        /* The collector untracks a tuple only when none of its items can be
         * tracked: never while OK is a GC object; else it may have. */
        if (!ok_is_gc && !PyObject_GC_IsTracked(t)) {
            PyObject_GC_Track(t);
        }
        return t;
    }
    t = PyTuple_New(2);
    if (!t) {
        Py_DECREF(value);
        return NULL;
    }
    PyTuple_SET_ITEM(t, 0, value);
    PyTuple_SET_ITEM(t, 1, Py_NewRef(ok_result));
    Py_XSETREF(self->spare_result, Py_NewRef(t));
    return t;
}

/* rw(addr, buffer, is_write, attrs=None) -> MemTxResult. */
PyObject *fp_call_rw(PyObject *self_, PyObject *const *args, Py_ssize_t nargs,
                     PyObject *kwnames)
{
    static const char *const names[] = { "addr", "buffer", "is_write", "attrs" };
    Bound *self = (Bound *)self_;
    CHECK_LIVE(self);
    PyObject *buf[4];
    PyObject *const *a;
    uint64_t addr;
    if (!ok_result || !(a = memtx_args("rw", names, 3, 4, args, nargs, kwnames, buf))
        || (self->taps && self->taps->memory_taps) || as_address(a[0], &addr) < 0
        || (a[2] != Py_True && a[2] != Py_False)) {
        return FALLBACK();
    }
    int is_write = a[2] == Py_True;
    Py_buffer view;
    if (PyObject_GetBuffer(a[1], &view, is_write ? PyBUF_SIMPLE : PyBUF_WRITABLE) < 0) {
        PyErr_Clear();   /* the Python method names what is wrong with it */
        return FALLBACK();
    }
    uint64_t len = (uint64_t)view.len;
    int stopped = 1;
    if (in_space(addr, len)) {
        rw_fn fn = (rw_fn)(is_write ? (void *)self->device : self->fn);
        if (len >= RELEASE_GIL_BYTES) {
            Py_BEGIN_ALLOW_THREADS
            stopped = fn(self->obj, addr, view.buf, len, NULL);
            Py_END_ALLOW_THREADS
        } else {
            stopped = fn(self->obj, addr, view.buf, len, NULL);
        }
    }
    PyBuffer_Release(&view);
    if (stopped) {
        return FALLBACK();
    }
    return Py_NewRef(ok_result);
}

/* load(addr, size, big_endian=False, attrs=None) -> (value, MemTxResult). */
PyObject *fp_call_load_attrs(PyObject *self_, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames)
{
    static const char *const names[] = { "addr", "size", "big_endian", "attrs" };
    Bound *self = (Bound *)self_;
    CHECK_LIVE(self);
    PyObject *buf[4];
    PyObject *const *a;
    uint64_t addr, v;
    unsigned size;
    int big;
    if (!ok_result || !(a = memtx_args("load", names, 2, 4, args, nargs, kwnames, buf))
        || (self->taps && self->taps->memory_taps) || as_address(a[0], &addr) < 0
        || !(size = fixed_size(a[1])) || (big = byte_order(a[2])) < 0) {
        return FALLBACK();
    }
    if (size == 8) {
        if (fixed_load64[big](self->obj, addr, &v) != 0) {
            return FALLBACK();
        }
    } else if ((v = fixed_loads[size][big](self->obj, addr)) == LOAD_MISS) {
        return FALLBACK();
    }
    PyObject *value = PyLong_FromUnsignedLongLong(v);
    return value ? load_answer(self, value) : NULL;
}

/* store(addr, value, size, big_endian=False, attrs=None) -> MemTxResult. */
PyObject *fp_call_store_attrs(PyObject *self_, PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames)
{
    static const char *const names[] = { "addr", "value", "size", "big_endian", "attrs" };
    Bound *self = (Bound *)self_;
    CHECK_LIVE(self);
    PyObject *buf[5];
    PyObject *const *a;
    uint64_t addr;
    unsigned size;
    int big;
    uint64_t v;
    if (!ok_result || !(a = memtx_args("store", names, 3, 5, args, nargs, kwnames, buf))
        || (self->taps && self->taps->memory_taps) || as_address(a[0], &addr) < 0
        || !(size = fixed_size(a[2])) || (big = byte_order(a[3])) < 0
        || fp_store_value(a[1], size, &v) < 0
        || fixed_stores[size][big](self->obj, addr, v) != 0) {
        return FALLBACK();
    }
    return Py_NewRef(ok_result);
}
