/*
 * fastpath.c - the `pymem._fastpath` module: one-argument Python builtins bound
 * to a C core function and its object, for the calls an emulator makes millions
 * of times (lookup, RAM loads and stores).
 *
 * Why it exists: a cffi call with two arguments costs about 80 ns of argument
 * handling before the C function runs, more than the whole pure-Python bisect
 * lookup it must beat.  A builtin with METH_O / METH_FASTCALL costs about 30 ns.
 * This module holds no C core code: it calls the core through function pointers
 * taken from `pymem._native` (so there is one RCU registry, not two), and falls
 * back to a Python callable when the core answers "not in C" (MMIO and friends).
 */
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

static PyStructSequence_Field section_fields[] = {
    { "region", "the region object (None: unassigned space)" },
    { "offset", "the address's offset in the region" },
    { "len", "how much of the asked length stays inside the section" },
    { "flags", "the section's PM_SECTION_* flags" },
    { NULL, NULL },
};

static PyStructSequence_Desc section_desc = {
    "pymem.SectionAt",
    "The section under an address in an address space's current view.",
    section_fields, 4,
};

static PyTypeObject *SectionAtType;

static PyStructSequence_Field translation_fields[] = {
    { "section", "the section index" },
    { "offset_in_region", "the address's offset in the section's region" },
    { "length", "how much of the asked length stays inside the section" },
    { NULL, NULL },
};

static PyStructSequence_Desc translation_desc = {
    "pymem.Translation",
    "What translate answers: section, offset in its region, length inside it.",
    translation_fields, 3,
};

static PyTypeObject *TranslationType;

/*
 * Translations are made and dropped once per `translate` call, and CPython's
 * PyStructSequence_New and its dealloc look the field counts up in the
 * type's dict every time (n_fields, n_sequence_fields: ~540 instructions, 40%
 * of a call on 3.11).  A Translation has exactly its 3 visible fields, so it
 * is allocated here as the tuple-shaped object a struct sequence is, and freed
 * by translation_dealloc, which does what the generic dealloc does for 3
 * fields.  It stays a struct sequence in every other respect.
 */
#define TRANSLATION_FIELDS 3

static PyObject *translation_new(uint32_t section, uint64_t offset, uint64_t length)
{
    PyObject *items[TRANSLATION_FIELDS] = {
        PyLong_FromUnsignedLong(section), PyLong_FromUnsignedLongLong(offset),
        PyLong_FromUnsignedLongLong(length) };
    if (!items[0] || !items[1] || !items[2]) {
        for (int i = 0; i < TRANSLATION_FIELDS; i++) {
            Py_XDECREF(items[i]);
        }
        return NULL;
    }
    PyStructSequence *t = PyObject_GC_NewVar(PyStructSequence, TranslationType,
                                             TRANSLATION_FIELDS);
    if (!t) {
        for (int i = 0; i < TRANSLATION_FIELDS; i++) {
            Py_DECREF(items[i]);
        }
        return NULL;
    }
    for (int i = 0; i < TRANSLATION_FIELDS; i++) {
        t->ob_item[i] = items[i];
    }
    PyObject_GC_Track(t);
    return (PyObject *)t;
}

static void translation_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    for (int i = 0; i < TRANSLATION_FIELDS; i++) {
        Py_XDECREF(((PyStructSequence *)self)->ob_item[i]);
    }
    PyObject_GC_Del(self);
    Py_DECREF(tp);   /* a heap type: each instance holds a reference */
}

#define LOAD_MISS UINT64_MAX  /* no load of 32 bits or fewer can return it */

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
} Bound;

/* Attribute names the device path reads, interned once. */
static PyObject *str_ops, *str_direct, *str_recorder;

/* Bound takes part in garbage collection: what it keeps alive (an address
 * space's view, the regions behind it) can lead back to the object holding
 * the builtin, and such a cycle must stay collectable. */
static int bound_traverse(Bound *self, visitproc visit, void *arg)
{
    Py_VISIT(self->fallback);
    Py_VISIT(self->keepalive);
    return 0;
}

static int bound_clear(Bound *self)
{
    /* keepalive first: CHECK_LIVE refuses calls from the moment it is gone. */
    Py_CLEAR(self->keepalive);
    Py_CLEAR(self->fallback);
    return 0;
}

static void bound_dealloc(Bound *self)
{
    PyObject_GC_UnTrack(self);
    bound_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject BoundType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pymem._fastpath.Bound",
    .tp_basicsize = sizeof(Bound),
    .tp_dealloc = (destructor)bound_dealloc,
    .tp_traverse = (traverseproc)bound_traverse,
    .tp_clear = (inquiry)bound_clear,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A C function and its object, bound for the fast path.",
};

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
static int as_address(PyObject *arg, uint64_t *addr)
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

/* Raise pymem.errors.<name>(message) (`fallback_type` if that cannot be had). */
static PyObject *pymem_error(const char *name, PyObject *fallback_type, const char *fmt, ...)
{
    va_list va;
    va_start(va, fmt);
    PyObject *msg = PyUnicode_FromFormatV(fmt, va);
    va_end(va);
    if (!msg) {
        return NULL;
    }
    PyObject *module = PyImport_ImportModule("pymem.errors");
    PyObject *type = module ? PyObject_GetAttrString(module, name) : NULL;
    Py_XDECREF(module);
    if (!type) {
        PyErr_Clear();
        Py_INCREF(fallback_type);
        type = fallback_type;
    }
    PyErr_SetObject(type, msg);
    Py_DECREF(type);
    Py_DECREF(msg);
    return NULL;
}

/* The error for an argument as_address refused, as pymem/access.py words it. */
static PyObject *address_error(const char *what, PyObject *arg)
{
    if (!PyLong_Check(arg) || PyBool_Check(arg)) {
        return pymem_error("ArgumentTypeError", PyExc_TypeError, "%s must be an int, not %s",
                           what, Py_TYPE(arg)->tp_name);
    }
    PyObject *hex = PyNumber_ToBase(arg, 16);
    if (!hex) {
        return NULL;
    }
    pymem_error("InvalidArgumentError", PyExc_ValueError, "%s %U is outside the 64-bit space",
                what, hex);
    Py_DECREF(hex);
    return NULL;
}

/* Positional and keyword arguments into out[] (borrowed) by `names`, as a
 * Python function with those parameters would take them; TypeError (the
 * interpreter's own) otherwise. */
static int parse_args(const char *fname, const char *const *names, Py_ssize_t nmin,
                      Py_ssize_t nmax, PyObject *const *args, Py_ssize_t nargs,
                      PyObject *kwnames, PyObject **out)
{
    for (Py_ssize_t i = 0; i < nmax; i++) {
        out[i] = i < nargs ? args[i] : NULL;
    }
    if (nargs > nmax) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most %zd arguments (%zd given)",
                     fname, nmax, nargs);
        return -1;
    }
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        Py_ssize_t i = 0;
        while (i < nmax && PyUnicode_CompareWithASCIIString(key, names[i]) != 0) {
            i++;
        }
        if (i == nmax) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'",
                         fname, key);
            return -1;
        }
        if (out[i]) {
            PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'",
                         fname, names[i]);
            return -1;
        }
        out[i] = args[nargs + k];
    }
    for (Py_ssize_t i = 0; i < nmin; i++) {
        if (!out[i]) {
            PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'", fname,
                         names[i]);
            return -1;
        }
    }
    return 0;
}

/*
 * The device path of a fixed-width load or store that is not plain memory:
 * when the section under addr is a device whose ops take this access in one
 * callback (MemoryRegionOps.direct: callbacks without attributes, the size
 * both valid and implemented, aligned unless the device takes unaligned
 * accesses), call it from here, as the Python slow path would, without the
 * Python frames in between.  Anything else (IOMMUs, RAM behind a read-only
 * alias, accesses to split, unassigned space, an address space being
 * recorded) is left to the fallback.  Returns the ops' `direct` tuple (a new
 * reference) and the offset in the region, or NULL, with no error set, to
 * mean "take the fallback".
 */
static PyObject *direct_device(Bound *self, uint64_t addr, uint32_t refused_flags,
                               uint64_t *offset)
{
    if (addr + (self->width - 1) < addr) {
        return NULL;   /* runs past 2^64: the slow path refuses it */
    }
    PyObject *recorder = PyObject_GetAttr(self->keepalive, str_recorder);
    if (!recorder) {
        PyErr_Clear();
        return NULL;
    }
    int recording = recorder != Py_None;
    Py_DECREF(recorder);
    if (recording) {
        return NULL;
    }
    pm_access acc;
    /* As in call_section: the region must be ours before the view can go. */
    self->read_lock();
    self->device(self->obj, addr, self->width, &acc);
    PyObject *region = (PyObject *)acc.user;
    if (!region || (acc.flags & refused_flags)) {
        self->read_unlock();
        return NULL;
    }
    Py_INCREF(region);
    self->read_unlock();
    PyObject *ops = PyObject_GetAttr(region, str_ops);
    Py_DECREF(region);
    PyObject *direct = ops && ops != Py_None ? PyObject_GetAttr(ops, str_direct) : NULL;
    Py_XDECREF(ops);
    if (!direct) {
        PyErr_Clear();
        return NULL;
    }
    /* (read, write, mask of direct sizes, unaligned, big-endian device) */
    if (!PyTuple_Check(direct) || PyTuple_GET_SIZE(direct) != 5) {
        Py_DECREF(direct);
        return NULL;
    }
    unsigned long sizes = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(direct, 2));
    int unaligned = PyTuple_GET_ITEM(direct, 3) == Py_True;
    if (PyErr_Occurred() || !(sizes & self->width)
        || (!unaligned && (acc.offset & (self->width - 1)))) {
        PyErr_Clear();
        Py_DECREF(direct);
        return NULL;
    }
    *offset = acc.offset;
    return direct;
}

static uint64_t swap_bytes(uint64_t v, unsigned width)
{
    switch (width) {
    case 2:
        return __builtin_bswap16((uint16_t)v);
    case 4:
        return __builtin_bswap32((uint32_t)v);
    case 8:
        return __builtin_bswap64(v);
    default:
        return v;
    }
}

/* Set the error for a device read callback that answered `value`, not an
 * int: pymem.access.device_answer_error builds it (an ArgumentTypeError
 * naming the region, found in the pin's view). */
static void answer_error(Bound *self, uint64_t addr, PyObject *value)
{
    PyObject *module = PyImport_ImportModule("pymem.access");
    PyObject *make = module ? PyObject_GetAttrString(module, "device_answer_error") : NULL;
    Py_XDECREF(module);
    PyObject *exc = make ? PyObject_CallFunction(make, "OKIO", self->keepalive,
                                                 (unsigned long long)addr, self->width,
                                                 value) : NULL;
    Py_XDECREF(make);
    if (exc) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
}

/* 1: handled (*result is the value, or NULL with the callback's error set);
 * 0: take the fallback. */
static int device_load(Bound *self, uint64_t addr, PyObject **result)
{
    uint64_t offset;
    if (!self->device) {
        return 0;
    }
    PyObject *direct = direct_device(self, addr, PM_SECTION_RAM | PM_SECTION_ROMD
                                     | PM_SECTION_IOMMU, &offset);
    if (!direct) {
        return 0;
    }
    *result = NULL;
    PyObject *args[2] = { PyLong_FromUnsignedLongLong(offset),
                          PyLong_FromUnsignedLong(self->width) };
    PyObject *got = args[0] && args[1]
                    ? PyObject_Vectorcall(PyTuple_GET_ITEM(direct, 0), args, 2, NULL) : NULL;
    Py_XDECREF(args[0]);
    Py_XDECREF(args[1]);
    int device_big = PyTuple_GET_ITEM(direct, 4) == Py_True;
    Py_DECREF(direct);
    if (!got) {
        return 1;
    }
    uint64_t mask = self->width == 8 ? UINT64_MAX : (UINT64_C(1) << (8 * self->width)) - 1;
    if (!PyLong_Check(got)) {
        /* What the Python path takes (mmio.callback_value): anything with
         * __index__; anything else is the device model's bug, reported as
         * pymem.access.device_answer_error words it, naming the region. */
        PyObject *index = PyNumber_Index(got);
        if (!index) {
            PyErr_Clear();
            answer_error(self, addr, got);
            Py_DECREF(got);
            return 1;
        }
        Py_DECREF(got);
        got = index;
    }
    uint64_t v = PyLong_AsUnsignedLongLongMask(got) & mask;
    Py_DECREF(got);
    if (PyErr_Occurred()) {
        return 1;
    }
    if (device_big != self->big_endian) {
        v = swap_bytes(v, self->width);
    }
    *result = PyLong_FromUnsignedLongLong(v);
    return 1;
}

static int device_store(Bound *self, uint64_t addr, uint64_t value, PyObject **result)
{
    uint64_t offset;
    if (!self->device) {
        return 0;
    }
    /* RAM and IOMMU sections are the fallback's; a ROM device takes writes
     * through its ops in either mode. */
    PyObject *direct = direct_device(self, addr, PM_SECTION_RAM | PM_SECTION_IOMMU, &offset);
    if (!direct) {
        return 0;
    }
    *result = NULL;
    if ((PyTuple_GET_ITEM(direct, 4) == Py_True) != self->big_endian) {
        value = swap_bytes(value, self->width);
    }
    PyObject *args[3] = { PyLong_FromUnsignedLongLong(offset),
                          PyLong_FromUnsignedLongLong(value),
                          PyLong_FromUnsignedLong(self->width) };
    PyObject *got = args[0] && args[1] && args[2]
                    ? PyObject_Vectorcall(PyTuple_GET_ITEM(direct, 1), args, 3, NULL) : NULL;
    for (int i = 0; i < 3; i++) {
        Py_XDECREF(args[i]);
    }
    Py_DECREF(direct);
    if (got) {
        /* The callback's answer is ignored, as QEMU ignores a plain write's. */
        Py_DECREF(got);
        Py_INCREF(Py_None);
        *result = Py_None;
    }
    return 1;
}

static PyObject *call_lookup(PyObject *self_, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames)
{
    static const char *const names[] = { "addr" };
    Bound *self = (Bound *)self_;
    CHECK_LIVE(self);
    PyObject *arg;
    uint64_t addr;
    if (parse_args("lookup", names, 1, 1, args, nargs, kwnames, &arg) < 0) {
        return NULL;
    }
    if (as_address(arg, &addr) < 0) {
        return address_error("address", arg);
    }
    return PyLong_FromUnsignedLong(((lookup_fn)self->fn)(self->obj, addr));
}

/* Loads and stores: (addr) and (addr, value), positional; anything else
 * (keywords, a bad argument) is the Python slow path's to take or refuse. */
#define SLOW_UNLESS(cond)                                                      \
    do {                                                                       \
        if (!(cond)) {                                                         \
            return PyObject_Vectorcall(self->fallback, args, nargs, kwnames); \
        }                                                                      \
    } while (0)

static PyObject *call_load(PyObject *self_, PyObject *const *args, Py_ssize_t nargs,
                           PyObject *kwnames)
{
    Bound *self = (Bound *)self_;
    CHECK_LIVE(self);
    uint64_t addr;
    SLOW_UNLESS(nargs == 1 && !kwnames && as_address(args[0], &addr) == 0);
    PyObject *arg = args[0];
    uint64_t v = ((load_fn)self->fn)(self->obj, addr);
    if (v != LOAD_MISS) {
        return PyLong_FromUnsignedLongLong(v);
    }
    PyObject *result;
    if (device_load(self, addr, &result)) {
        return result;
    }
    return PyObject_CallOneArg(self->fallback, arg);
}

static PyObject *call_load64(PyObject *self_, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames)
{
    Bound *self = (Bound *)self_;
    CHECK_LIVE(self);
    uint64_t addr, v;
    SLOW_UNLESS(nargs == 1 && !kwnames && as_address(args[0], &addr) == 0);
    PyObject *arg = args[0];
    if (((load64_fn)self->fn)(self->obj, addr, &v) == 0) {
        return PyLong_FromUnsignedLongLong(v);
    }
    PyObject *result;
    if (device_load(self, addr, &result)) {
        return result;
    }
    return PyObject_CallOneArg(self->fallback, arg);
}

static PyObject *call_store(PyObject *self_, PyObject *const *args, Py_ssize_t nargs,
                            PyObject *kwnames)
{
    Bound *self = (Bound *)self_;
    CHECK_LIVE(self);
    uint64_t addr, value;
    SLOW_UNLESS(nargs == 2 && !kwnames && as_address(args[0], &addr) == 0);
    /* A value is an int (a bool too, as store() takes it) that fits. */
    SLOW_UNLESS(PyLong_Check(args[1]));
    unsigned long long v = PyLong_AsUnsignedLongLong(args[1]);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        SLOW_UNLESS(0);
    }
    SLOW_UNLESS(self->width == 8 || (v >> (8 * self->width)) == 0);
    value = v;
    if (((store_fn)self->fn)(self->obj, addr, value) == 0) {
        Py_RETURN_NONE;
    }
    PyObject *result;
    if (device_store(self, addr, value, &result)) {
        return result;
    }
    return PyObject_Vectorcall(self->fallback, args, 2, NULL);
}

static PyObject *call_translate(PyObject *self_, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames)
{
    static const char *const names[] = { "addr", "length" };
    Bound *self = (Bound *)self_;
    CHECK_LIVE(self);
    uint64_t addr, len = 1, offset, plen;
    PyObject *got[2];
    if (parse_args("translate", names, 1, 2, args, nargs, kwnames, got) < 0) {
        return NULL;
    }
    if (as_address(got[0], &addr) < 0) {
        return address_error("address", got[0]);
    }
    if (got[1] && as_address(got[1], &len) < 0) {
        return address_error("length", got[1]);
    }
    uint32_t s = ((translate_fn)self->fn)(self->obj, addr, len, &offset, &plen);
    return translation_new(s, offset, plen);
}

/* Large copies release the GIL: the buffer is ours (read) or pinned (write). */
#define RELEASE_GIL_BYTES (64 * 1024)

static int in_space(uint64_t addr, uint64_t len)
{
    return len != 0 && addr + (len - 1) >= addr;
}

/* (addr, size): one C call when it is all plain memory, else the fallback. */
static PyObject *call_read(PyObject *self_, PyObject *const *args, Py_ssize_t nargs,
                           PyObject *kwnames)
{
    Bound *self = (Bound *)self_;
    CHECK_LIVE(self);
    uint64_t addr, len;
    /* Keywords (attrs=...) and anything unusual: AccessMixin.read. */
    SLOW_UNLESS(nargs == 2 && !kwnames && as_address(args[0], &addr) == 0
                && as_address(args[1], &len) == 0);
    SLOW_UNLESS(in_space(addr, len) && len <= (uint64_t)PY_SSIZE_T_MAX);
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)len);
    if (!out) {
        if (!PyErr_ExceptionMatches(PyExc_MemoryError)) {
            return NULL;
        }
        /* No memory for that size: AccessMixin.read says so by name
         * (OutOfMemoryError naming the access). */
        PyErr_Clear();
        return PyObject_Vectorcall(self->fallback, args, nargs, kwnames);
    }
    uint8_t *buf = (uint8_t *)PyBytes_AS_STRING(out);
    int stopped;
    if (len >= RELEASE_GIL_BYTES) {
        Py_BEGIN_ALLOW_THREADS
        stopped = ((rw_fn)self->fn)(self->obj, addr, buf, len, NULL);
        Py_END_ALLOW_THREADS
    } else {
        stopped = ((rw_fn)self->fn)(self->obj, addr, buf, len, NULL);
    }
    if (!stopped) {
        return out;
    }
    Py_DECREF(out);
    return PyObject_Vectorcall(self->fallback, args, nargs, kwnames);
}

/* (addr, data): one C call when it is all plain memory, else the fallback,
 * which starts over (rewriting the same bytes C already wrote). */
static PyObject *call_write(PyObject *self_, PyObject *const *args, Py_ssize_t nargs,
                            PyObject *kwnames)
{
    Bound *self = (Bound *)self_;
    CHECK_LIVE(self);
    uint64_t addr;
    Py_buffer view;
    /* Keywords (attrs=...), buffers other than bytes: AccessMixin.write. */
    SLOW_UNLESS(nargs == 2 && !kwnames && PyBytes_CheckExact(args[1])
                && as_address(args[0], &addr) == 0);
    if (PyObject_GetBuffer(args[1], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    int stopped = 1;
    uint64_t len = (uint64_t)view.len;
    if (in_space(addr, len)) {
        if (len >= RELEASE_GIL_BYTES) {
            Py_BEGIN_ALLOW_THREADS
            stopped = ((rw_fn)self->fn)(self->obj, addr, view.buf, len, NULL);
            Py_END_ALLOW_THREADS
        } else {
            stopped = ((rw_fn)self->fn)(self->obj, addr, view.buf, len, NULL);
        }
    }
    PyBuffer_Release(&view);
    if (!stopped) {
        Py_RETURN_NONE;
    }
    return PyObject_Vectorcall(self->fallback, args, nargs, kwnames);
}

/*
 * (addr, size): the section under addr, with its region object.  The region
 * is the section's `user` pointer, alive while its view is; the read-side
 * section spans the lookup and the incref, so the view cannot be reclaimed
 * in between (the reclaimer waits for us without the GIL).
 */
static PyObject *call_section(PyObject *self_, PyObject *const *args, Py_ssize_t nargs)
{
    Bound *self = (Bound *)self_;
    CHECK_LIVE(self);
    uint64_t addr, len;
    pm_access acc;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "expected (addr, size), got %zd arguments", nargs);
        return NULL;
    }
    if (as_address(args[0], &addr) < 0) {
        return address_error("address", args[0]);
    }
    if (as_address(args[1], &len) < 0) {
        return address_error("length", args[1]);
    }
    self->read_lock();
    ((section_fn)self->fn)(self->obj, addr, len, &acc);
    PyObject *region = acc.user ? (PyObject *)acc.user : Py_None;
    Py_INCREF(region);
    self->read_unlock();
    PyObject *t = PyStructSequence_New(SectionAtType);
    if (!t) {
        Py_DECREF(region);
        return NULL;
    }
    PyStructSequence_SET_ITEM(t, 0, region);
    PyStructSequence_SET_ITEM(t, 1, PyLong_FromUnsignedLongLong(acc.offset));
    PyStructSequence_SET_ITEM(t, 2, PyLong_FromUnsignedLongLong(acc.len));
    PyStructSequence_SET_ITEM(t, 3, PyLong_FromUnsignedLong(acc.flags));
    if (PyErr_Occurred()) {
        Py_DECREF(t);
        return NULL;
    }
    return t;
}

/*
 * (addr, buffer, start): one step of the slow path of `rw` (pymem/access.py):
 * the access of buffer[start:] at addr, in C as far as it is plain memory.
 * None when C did it all; else (done, region, offset, len, flags) of the
 * piece where it stopped, as pm_access says.  Like `section`, it takes the
 * read-side section, makes the stopping region ours and leaves the section
 * in this one call: no bytecode boundary (where a signal handler may raise)
 * lies between the lock and the unlock, so an interrupt cannot leak a
 * section or leave a region unowned.
 */
static PyObject *rw_step(Bound *self, PyObject *const *args, Py_ssize_t nargs, int is_write)
{
    CHECK_LIVE(self);
    uint64_t addr;
    Py_ssize_t start;
    Py_buffer view;
    pm_access acc;
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "expected (addr, buffer, start), got %zd arguments", nargs);
        return NULL;
    }
    if (as_address(args[0], &addr) < 0) {
        return NULL;
    }
    start = PyLong_AsSsize_t(args[2]);
    if (start == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &view, is_write ? PyBUF_SIMPLE : PyBUF_WRITABLE) < 0) {
        return NULL;
    }
    if (start < 0 || start > view.len) {
        PyBuffer_Release(&view);
        PyErr_Format(PyExc_ValueError, "start %zd is outside the buffer", start);
        return NULL;
    }
    uint8_t *buf = (uint8_t *)view.buf + start;
    uint64_t len = (uint64_t)(view.len - start);
    int stopped = 0;
    PyObject *region = NULL;
    self->read_lock();
    if (len) {
        if (len >= RELEASE_GIL_BYTES) {
            Py_BEGIN_ALLOW_THREADS
            stopped = ((rw_fn)self->fn)(self->obj, addr, buf, len, &acc);
            Py_END_ALLOW_THREADS
        } else {
            stopped = ((rw_fn)self->fn)(self->obj, addr, buf, len, &acc);
        }
    }
    if (stopped) {
        /* The region is the section's `user`, alive while the view is. */
        region = acc.user ? (PyObject *)acc.user : Py_None;
        Py_INCREF(region);
    }
    self->read_unlock();
    PyBuffer_Release(&view);
    if (!stopped) {
        Py_RETURN_NONE;
    }
    return Py_BuildValue("(KNKKk)", (unsigned long long)acc.done, region,
                         (unsigned long long)acc.offset, (unsigned long long)acc.len,
                         (unsigned long)acc.flags);
}

static PyObject *call_rw_read(PyObject *self_, PyObject *const *args, Py_ssize_t nargs)
{
    return rw_step((Bound *)self_, args, nargs, 0);
}

static PyObject *call_rw_write(PyObject *self_, PyObject *const *args, Py_ssize_t nargs)
{
    return rw_step((Bound *)self_, args, nargs, 1);
}

#define FAST_KW(f) (PyCFunction)(void (*)(void))(f), METH_FASTCALL | METH_KEYWORDS

static PyMethodDef kinds[] = {
    { "rw_read", (PyCFunction)(void (*)(void))call_rw_read, METH_FASTCALL,
      "One slow-path read step (addr, buffer, start)." },
    { "rw_write", (PyCFunction)(void (*)(void))call_rw_write, METH_FASTCALL,
      "One slow-path write step (addr, buffer, start)." },
    { "section", (PyCFunction)(void (*)(void))call_section, METH_FASTCALL,
      "The section under (addr, size)." },
    { "read", FAST_KW(call_read), "read(addr, size, attrs=None)." },
    { "write", FAST_KW(call_write), "write(addr, data, attrs=None)." },
    { "translate", FAST_KW(call_translate), "translate(addr, length=1): Translation." },
    { "lookup", FAST_KW(call_lookup), "lookup(addr): the section index of an address." },
    { "load", FAST_KW(call_load), "load(addr): a load of up to 4 bytes." },
    { "load64", FAST_KW(call_load64), "load(addr): a load of 8 bytes." },
    { "store", FAST_KW(call_store), "store(addr, value)." },
};

static PyObject *bind(PyObject *module, PyObject *args)
{
    const char *kind;
    unsigned long long fn, obj, read_lock = 0, read_unlock = 0, device = 0;
    unsigned width;
    int big_endian = 0;
    PyObject *fallback, *keepalive;
    (void)module;
    if (!PyArg_ParseTuple(args, "sKKIOO|KKKp", &kind, &fn, &obj, &width, &fallback,
                          &keepalive, &read_lock, &read_unlock, &device, &big_endian)) {
        return NULL;
    }
    PyMethodDef *def = NULL;
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (strcmp(kinds[i].ml_name, kind) == 0) {
            def = &kinds[i];
        }
    }
    if (!def) {
        PyErr_Format(PyExc_ValueError, "unknown fast-path kind %s", kind);
        return NULL;
    }
    if (!fn || !obj) {
        PyErr_SetString(PyExc_ValueError, "fast path bound to a NULL function or object");
        return NULL;
    }
    int is_section = strcmp(kind, "section") == 0 || strncmp(kind, "rw_", 3) == 0;
    if (is_section && (!read_lock || !read_unlock)) {
        PyErr_SetString(PyExc_ValueError, "a section builtin needs the RCU lock functions");
        return NULL;
    }
    int is_access = strcmp(kind, "load") == 0 || strcmp(kind, "load64") == 0 ||
                    strcmp(kind, "store") == 0;
    if (device && (!is_access || !read_lock || !read_unlock ||
                   (width != 1 && width != 2 && width != 4 && width != 8))) {
        PyErr_SetString(PyExc_ValueError, "a device path needs a load or store of 1, 2, 4 "
                        "or 8 bytes and the RCU lock functions");
        return NULL;
    }
    int needs_fallback = strcmp(kind, "lookup") != 0 && strcmp(kind, "translate") != 0 &&
                         !is_section;
    if (needs_fallback && !PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_TypeError, "fallback must be callable");
        return NULL;
    }
    Bound *b = PyObject_GC_New(Bound, &BoundType);
    if (!b) {
        return NULL;
    }
    b->fn = (void *)(uintptr_t)fn;
    b->obj = (void *)(uintptr_t)obj;
    b->width = width;
    b->read_lock = (rcu_fn)(uintptr_t)read_lock;
    b->read_unlock = (rcu_fn)(uintptr_t)read_unlock;
    b->device = (section_fn)(uintptr_t)device;
    b->big_endian = big_endian;
    Py_INCREF(fallback);
    b->fallback = fallback;
    Py_INCREF(keepalive);
    b->keepalive = keepalive;
    PyObject_GC_Track(b);
    PyObject *f = PyCFunction_New(def, (PyObject *)b);
    Py_DECREF(b);
    return f;
}

/*
 * The `user` objects of an array of rendered ranges (pm_render), as a list:
 * a FlatView holds it to keep every region its dispatch reaches alive.  The
 * caller guarantees the objects are alive now (it holds their tree).
 */
static PyObject *range_users(PyObject *module, PyObject *args)
{
    unsigned long long address;
    Py_ssize_t n;
    (void)module;
    if (!PyArg_ParseTuple(args, "Kn", &address, &n)) {
        return NULL;
    }
    if (n < 0 || (n && !address)) {
        PyErr_SetString(PyExc_ValueError, "range_users: bad array");
        return NULL;
    }
    const pm_range *ranges = (const pm_range *)(uintptr_t)address;
    PyObject *list = PyList_New(n);
    if (!list) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *user = ranges[i].user ? (PyObject *)ranges[i].user : Py_None;
        Py_INCREF(user);
        PyList_SET_ITEM(list, i, user);
    }
    return list;
}

/* ------------------------------------------------ signal-safe building blocks
 *
 * A Python signal handler (KeyboardInterrupt from Ctrl-C, or any handler that
 * raises) runs only where the interpreter checks its eval breaker: at a
 * function's entry, at a backward jump and after a call returns.  It never
 * runs inside a C function that calls no Python code.  So two state changes
 * made in one C call can never be split by an async exception, while two
 * made by consecutive Python statements (or a C call and the statement after
 * it) can.  The helpers below give pymem's Python code that one C call
 * wherever a change in C must go with its mirror in Python, or a lock with
 * its unlock.
 */

/* The RCU read-side section as a context manager: `__enter__` and
 * `__exit__` are C, so the lock is taken inside BEFORE_WITH (after which the
 * `with` body's exception handler is already in place) and released by a C
 * `__exit__` that no signal can enter before it unlocks. */
static rcu_fn rcu_lock, rcu_unlock;

typedef struct {
    PyObject_HEAD
    unsigned long owner;     /* thread that entered, when held */
    int held;
} ReadSection;

static PyObject *read_section_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if (!rcu_lock || !rcu_unlock) {
        PyErr_SetString(PyExc_RuntimeError, "pymem._fastpath: RCU functions not set");
        return NULL;
    }
    if (PyTuple_GET_SIZE(args) || (kwds && PyDict_GET_SIZE(kwds))) {
        PyErr_SetString(PyExc_TypeError, "ReadSection() takes no arguments");
        return NULL;
    }
    ReadSection *self = (ReadSection *)type->tp_alloc(type, 0);
    if (self) {
        self->held = 0;
    }
    return (PyObject *)self;
}

static PyObject *read_section_enter(ReadSection *self, PyObject *unused)
{
    (void)unused;
    if (self->held) {
        PyErr_SetString(PyExc_RuntimeError, "this read-side section is already entered");
        return NULL;
    }
    rcu_lock();
    self->owner = PyThread_get_thread_ident();
    self->held = 1;
    Py_RETURN_NONE;
}

static PyObject *read_section_exit(ReadSection *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)args;
    (void)nargs;
    if (self->held) {
        if (self->owner != PyThread_get_thread_ident()) {
            PyErr_SetString(PyExc_RuntimeError,
                            "a read-side section must end in the thread that began it");
            return NULL;
        }
        self->held = 0;
        rcu_unlock();
    }
    Py_RETURN_FALSE;
}

static void read_section_dealloc(ReadSection *self)
{
    /* Entered by hand and dropped: end it if we are its thread (nowhere
     * else can); a section left in another thread is that thread's bug. */
    if (self->held && self->owner == PyThread_get_thread_ident()) {
        rcu_unlock();
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef read_section_methods[] = {
    { "__enter__", (PyCFunction)read_section_enter, METH_NOARGS, "Begin the section." },
    { "__exit__", (PyCFunction)(void (*)(void))read_section_exit, METH_FASTCALL,
      "End the section." },
    { NULL, NULL, 0, NULL },
};

static PyTypeObject ReadSectionType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pymem._fastpath.ReadSection",
    .tp_basicsize = sizeof(ReadSection),
    .tp_dealloc = (destructor)read_section_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "An RCU read-side section for a `with` block (entered and left in C).",
    .tp_new = read_section_new,
    .tp_methods = read_section_methods,
};

static PyObject *set_rcu(PyObject *module, PyObject *args)
{
    unsigned long long lock, unlock;
    (void)module;
    if (!PyArg_ParseTuple(args, "KK", &lock, &unlock)) {
        return NULL;
    }
    if (!lock || !unlock) {
        PyErr_SetString(PyExc_ValueError, "set_rcu: NULL function");
        return NULL;
    }
    rcu_lock = (rcu_fn)(uintptr_t)lock;
    rcu_unlock = (rcu_fn)(uintptr_t)unlock;
    Py_RETURN_NONE;
}

/* Whether setting `name` on `obj` runs no Python code: the type's generic
 * setattr, and the attribute a slot or absent from the type (instance dict). */
static int plain_attribute(PyObject *obj, PyObject *name)
{
    if (Py_TYPE(obj)->tp_setattro != PyObject_GenericSetAttr || !PyUnicode_Check(name)) {
        return 0;
    }
    PyObject *descr = _PyType_Lookup(Py_TYPE(obj), name);
    return !descr || Py_TYPE(descr) == &PyMemberDescr_Type;
}

/* Setting(obj, name, value): a `with` block during which obj.name (a plain
 * attribute) is `value`; __exit__ puts the old value back.  Both in C: an
 * async exception cannot leave the attribute set, as a Python finally can
 * (an exception at its first line skips the rest of it). */
typedef struct {
    PyObject_HEAD
    PyObject *obj, *name, *value, *saved;
    int entered;
} Setting;

static int plain_attribute(PyObject *obj, PyObject *name);

static PyObject *setting_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *obj, *name, *value;
    if ((kwds && PyDict_GET_SIZE(kwds))
        || !PyArg_ParseTuple(args, "OUO:Setting", &obj, &name, &value)) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "Setting() takes no keywords");
        }
        return NULL;
    }
    if (!plain_attribute(obj, name)) {
        PyErr_Format(PyExc_TypeError, "Setting: %R is not a plain attribute", name);
        return NULL;
    }
    Setting *self = (Setting *)type->tp_alloc(type, 0);
    if (self) {
        self->obj = Py_NewRef(obj);
        self->name = Py_NewRef(name);
        self->value = Py_NewRef(value);
    }
    return (PyObject *)self;
}

static PyObject *setting_enter(Setting *self, PyObject *unused)
{
    (void)unused;
    if (self->entered) {
        PyErr_SetString(PyExc_RuntimeError, "Setting already entered");
        return NULL;
    }
    PyObject *saved = PyObject_GenericGetAttr(self->obj, self->name);
    if (!saved) {
        return NULL;
    }
    if (PyObject_GenericSetAttr(self->obj, self->name, self->value) < 0) {
        Py_DECREF(saved);
        return NULL;
    }
    self->saved = saved;
    self->entered = 1;
    Py_RETURN_NONE;
}

static PyObject *setting_exit(Setting *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)args;
    (void)nargs;
    if (self->entered) {
        self->entered = 0;
        PyObject *saved = self->saved;
        self->saved = NULL;
        int rc = PyObject_GenericSetAttr(self->obj, self->name, saved);
        Py_DECREF(saved);
        if (rc < 0) {
            return NULL;
        }
    }
    Py_RETURN_FALSE;
}

static int setting_traverse(Setting *self, visitproc visit, void *arg)
{
    Py_VISIT(self->obj);
    Py_VISIT(self->value);
    Py_VISIT(self->saved);
    return 0;
}

static int setting_clear(Setting *self)
{
    Py_CLEAR(self->obj);
    Py_CLEAR(self->value);
    Py_CLEAR(self->saved);
    return 0;
}

static void setting_dealloc(Setting *self)
{
    PyObject_GC_UnTrack(self);
    setting_clear(self);
    Py_CLEAR(self->name);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef setting_methods[] = {
    { "__enter__", (PyCFunction)setting_enter, METH_NOARGS, "Set the attribute." },
    { "__exit__", (PyCFunction)(void (*)(void))setting_exit, METH_FASTCALL,
      "Put the old value back." },
    { NULL, NULL, 0, NULL },
};

static PyTypeObject SettingType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pymem._fastpath.Setting",
    .tp_basicsize = sizeof(Setting),
    .tp_dealloc = (destructor)setting_dealloc,
    .tp_traverse = (traverseproc)setting_traverse,
    .tp_clear = (inquiry)setting_clear,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Setting(obj, name, value): obj.name is value inside the `with` (C enter/exit).",
    .tp_new = setting_new,
    .tp_methods = setting_methods,
};

/*
 * Transaction(system): a MemorySystem's `with system.transaction()`, entered
 * and left in C.  __enter__ takes system._lock, checks that edits are
 * allowed (system._check_editable) and raises system._depth;
 * __exit__ lowers the depth, commits (system._commit(), Python) when the
 * outermost transaction ends with an update pending, and releases the lock
 * whatever the commit did.  A Python context manager (above all a generator
 * one) can be interrupted after taking the lock and before its exit is set
 * up, or inside its exit before releasing: this one cannot.  An interrupt
 * inside the commit leaves the update pending, for the next end to commit.
 */
typedef struct {
    PyObject_HEAD
    PyObject *system;
    PyObject *lock;          /* the lock taken, while entered */
} Transaction;

static PyObject *str_lock, *str_depth, *str_pending, *str_commit, *str_acquire, *str_release;

static PyObject *transaction_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *system;
    if ((kwds && PyDict_GET_SIZE(kwds)) || !PyArg_ParseTuple(args, "O:Transaction", &system)) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "Transaction() takes no keywords");
        }
        return NULL;
    }
    if (!plain_attribute(system, str_depth)) {
        PyErr_SetString(PyExc_TypeError, "Transaction: _depth is not a plain attribute");
        return NULL;
    }
    Transaction *self = (Transaction *)type->tp_alloc(type, 0);
    if (self) {
        self->system = Py_NewRef(system);
    }
    return (PyObject *)self;
}

/* system._depth += delta; the new depth, or -1 with an error set. */
static long add_depth(PyObject *system, long delta)
{
    PyObject *depth = PyObject_GenericGetAttr(system, str_depth);
    long d = depth ? PyLong_AsLong(depth) : -1;
    Py_XDECREF(depth);
    if (d == -1 && PyErr_Occurred()) {
        return -1;
    }
    PyObject *next = PyLong_FromLong(d + delta);
    int rc = next ? PyObject_GenericSetAttr(system, str_depth, next) : -1;
    Py_XDECREF(next);
    return rc < 0 ? -1 : d + delta;
}

static PyObject *transaction_enter(Transaction *self, PyObject *unused)
{
    (void)unused;
    if (self->lock) {
        PyErr_SetString(PyExc_RuntimeError, "this transaction is already entered");
        return NULL;
    }
    PyObject *lock = PyObject_GetAttr(self->system, str_lock);
    if (!lock) {
        return NULL;
    }
    /* A C lock: acquire runs no Python code, though a signal handler may
     * run (and raise) while it waits, before the lock is taken. */
    PyObject *got = PyObject_CallMethodNoArgs(lock, str_acquire);
    if (!got) {
        Py_DECREF(lock);
        return NULL;
    }
    Py_DECREF(got);
    /* Edits from a listener being told of a change are refused (Python:
     * MemorySystem._check_editable); then the depth goes up. */
    PyObject *checked = PyObject_CallMethod(self->system, "_check_editable", "s",
                                            "a transaction");
    Py_XDECREF(checked);
    if (!checked || add_depth(self->system, 1) < 0) {
        /* Released with the error put aside, then restored. */
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyObject *r = PyObject_CallMethodNoArgs(lock, str_release);
        Py_XDECREF(r);
        PyErr_Clear();
        PyErr_Restore(type, value, tb);
        Py_DECREF(lock);
        return NULL;
    }
    self->lock = lock;
    return Py_NewRef(self->system);
}

static PyObject *transaction_exit(Transaction *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)args;
    (void)nargs;
    PyObject *lock = self->lock;
    if (!lock) {
        Py_RETURN_FALSE;
    }
    self->lock = NULL;
    int failed = 0;
    long depth = add_depth(self->system, -1);
    if (depth < 0) {
        failed = 1;
    } else if (depth == 0) {
        PyObject *pending = PyObject_GetAttr(self->system, str_pending);
        int commit = pending ? PyObject_IsTrue(pending) : -1;
        Py_XDECREF(pending);
        if (commit > 0) {
            PyObject *r = PyObject_CallMethodNoArgs(self->system, str_commit);
            Py_XDECREF(r);
            failed = !r;
        } else if (commit < 0) {
            failed = 1;
        }
    }
    /* Released whatever happened above, keeping its error. */
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject *r = PyObject_CallMethodNoArgs(lock, str_release);
    Py_DECREF(lock);
    if (!r) {
        if (type) {
            PyErr_Clear();
        } else {
            return NULL;
        }
    }
    Py_XDECREF(r);
    PyErr_Restore(type, value, tb);
    if (failed) {
        return NULL;
    }
    Py_RETURN_FALSE;
}

static int transaction_traverse(Transaction *self, visitproc visit, void *arg)
{
    Py_VISIT(self->system);
    Py_VISIT(self->lock);
    return 0;
}

static int transaction_clear(Transaction *self)
{
    Py_CLEAR(self->system);
    Py_CLEAR(self->lock);
    return 0;
}

static void transaction_dealloc(Transaction *self)
{
    PyObject_GC_UnTrack(self);
    transaction_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef transaction_methods[] = {
    { "__enter__", (PyCFunction)transaction_enter, METH_NOARGS, "Begin the transaction." },
    { "__exit__", (PyCFunction)(void (*)(void))transaction_exit, METH_FASTCALL,
      "End it: the outermost end commits." },
    { NULL, NULL, 0, NULL },
};

static PyTypeObject TransactionType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pymem._fastpath.Transaction",
    .tp_basicsize = sizeof(Transaction),
    .tp_dealloc = (destructor)transaction_dealloc,
    .tp_traverse = (traverseproc)transaction_traverse,
    .tp_clear = (inquiry)transaction_clear,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A MemorySystem transaction, entered and left in C (see fastpath.c).",
    .tp_new = transaction_new,
    .tp_methods = transaction_methods,
};

/* Check a plain step: ("=", obj, name, value) or (builtin, arg, ...). */
static int check_step(PyObject *step)
{
    if (!PyTuple_Check(step) || PyTuple_GET_SIZE(step) < 1) {
        return 0;
    }
    PyObject *head = PyTuple_GET_ITEM(step, 0);
    if (PyUnicode_Check(head)) {
        return PyTuple_GET_SIZE(step) == 4 && !PyUnicode_CompareWithASCIIString(head, "=")
               && plain_attribute(PyTuple_GET_ITEM(step, 1), PyTuple_GET_ITEM(step, 2));
    }
    return PyCFunction_Check(head);
}

/* Run a checked plain step.  Returns what to release later (the old value
 * or the call's answer), NULL with an error set, or NULL with *status set
 * to a call's non-zero int answer. */
static PyObject *run_step(PyObject *step, long *status)
{
    PyObject *head = PyTuple_GET_ITEM(step, 0);
    PyObject *kept;
    *status = 0;
    if (PyUnicode_Check(head)) {
        PyObject *obj = PyTuple_GET_ITEM(step, 1), *name = PyTuple_GET_ITEM(step, 2);
        kept = PyObject_GenericGetAttr(obj, name);
        if (!kept) {
            if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
                return NULL;
            }
            PyErr_Clear();
            kept = Py_NewRef(Py_None);
        }
        if (PyObject_GenericSetAttr(obj, name, PyTuple_GET_ITEM(step, 3)) < 0) {
            Py_DECREF(kept);
            return NULL;
        }
        return kept;
    }
    PyObject *args = PyTuple_GetSlice(step, 1, PyTuple_GET_SIZE(step));
    kept = args ? PyObject_Call(head, args, NULL) : NULL;
    Py_XDECREF(args);
    if (kept && PyLong_CheckExact(kept)) {
        long answer = PyLong_AsLong(kept);
        if (answer == -1 && PyErr_Occurred()) {
            Py_DECREF(kept);
            return NULL;
        }
        if (answer) {
            Py_DECREF(kept);
            *status = answer;
            return NULL;
        }
    }
    return kept;
}

/*
 * atomic(step, ...): run the steps in order, in this one C call, so that no
 * async exception can fall between them.  A step is
 *   ("=", obj, name, value)  set a plain attribute (a slot or instance dict);
 *   (fn, arg, ...)           call a builtin (a cffi `lib` function, a list's
 *                            insert or pop, ...): never Python code;
 *   ("!", step, undo)        a step with the plain step that undoes it.
 * A call answering a non-zero int (a pm_status) or raising stops the run;
 * then the undo steps of the steps done run, last first, and the answer is
 * (index of the failed step, status), or the exception propagates.  Without
 * a failure the answer is None.  Old attribute values and call results are
 * released only after the last step, so a finalizer they trigger sees every
 * change made.
 */
static PyObject *atomic(PyObject *module, PyObject *steps)
{
    (void)module;
    Py_ssize_t n = PyTuple_GET_SIZE(steps), i;
    PyObject *graveyard = PyList_New(0);
    if (!graveyard) {
        return NULL;
    }
    /* Check every step before running any. */
    for (i = 0; i < n; i++) {
        PyObject *step = PyTuple_GET_ITEM(steps, i);
        int ok;
        if (PyTuple_Check(step) && PyTuple_GET_SIZE(step) == 3
            && PyUnicode_Check(PyTuple_GET_ITEM(step, 0))
            && !PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(step, 0), "!")) {
            ok = check_step(PyTuple_GET_ITEM(step, 1)) && check_step(PyTuple_GET_ITEM(step, 2));
        } else {
            ok = check_step(step);
        }
        if (!ok) {
            PyErr_Format(PyExc_TypeError, "atomic: step %zd is neither a plain setattr "
                         "nor a builtin call", i);
            Py_DECREF(graveyard);
            return NULL;
        }
    }
    long status = 0;
    for (i = 0; i < n; i++) {
        PyObject *step = PyTuple_GET_ITEM(steps, i);
        int undoable = PyTuple_GET_SIZE(step) == 3 && PyUnicode_Check(PyTuple_GET_ITEM(step, 0));
        PyObject *kept = run_step(undoable ? PyTuple_GET_ITEM(step, 1) : step, &status);
        if (!kept) {
            break;
        }
        int rc = PyList_Append(graveyard, kept);
        Py_DECREF(kept);   /* on failure: released early, still after its step */
        if (rc < 0) {
            i++;            /* the step itself was done: undo it too */
            break;
        }
    }
    if (i == n) {
        Py_DECREF(graveyard);
        Py_RETURN_NONE;
    }
    /* Undo what was done, last first, keeping the first error. */
    Py_ssize_t failed = i;
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    while (i-- > 0) {
        PyObject *step = PyTuple_GET_ITEM(steps, i);
        if (PyTuple_GET_SIZE(step) == 3 && PyUnicode_Check(PyTuple_GET_ITEM(step, 0))) {
            long ignored;
            PyObject *kept = run_step(PyTuple_GET_ITEM(step, 2), &ignored);
            if (kept && PyList_Append(graveyard, kept) < 0) {
                PyErr_Clear();
            }
            Py_XDECREF(kept);
            PyErr_Clear();
        }
    }
    PyErr_Restore(type, value, tb);
    Py_DECREF(graveyard);
    if (type) {
        return NULL;
    }
    return Py_BuildValue("(nl)", failed, status);
}

/*
 * call_owned(gc, fn, args, outs): call the builtin fn(*args), then wrap what
 * it stored in each out-parameter of `outs` ((holder, destructor) pairs: a
 * cffi `T **` and the function freeing a T *) with gc(pointer, destructor),
 * cffi's ffi.gc.  Returns (fn's answer, owned pointer or None per out).  In
 * one C call, so no async exception can fall between C allocating an object
 * and Python owning it.
 */
static PyObject *call_owned(PyObject *module, PyObject *args)
{
    PyObject *gc, *fn, *fn_args, *outs;
    (void)module;
    if (!PyArg_ParseTuple(args, "OOO!O!", &gc, &fn, &PyTuple_Type, &fn_args,
                          &PyTuple_Type, &outs)) {
        return NULL;
    }
    if (!PyCFunction_Check(fn) || !PyCFunction_Check(gc)) {
        PyErr_SetString(PyExc_TypeError, "call_owned: fn and gc must be builtins");
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(outs);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *out = PyTuple_GET_ITEM(outs, i);
        if (!PyTuple_Check(out) || PyTuple_GET_SIZE(out) != 2) {
            PyErr_SetString(PyExc_TypeError, "call_owned: outs are (holder, destructor)");
            return NULL;
        }
    }
    PyObject *result = PyTuple_New(n + 1);
    if (!result) {
        return NULL;
    }
    PyObject *answer = PyObject_Call(fn, fn_args, NULL);
    if (!answer) {
        Py_DECREF(result);
        return NULL;
    }
    PyTuple_SET_ITEM(result, 0, answer);
    PyObject *zero = PyLong_FromLong(0);
    int failed = !zero;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *out = PyTuple_GET_ITEM(outs, i);
        PyObject *owned = NULL;
        PyObject *ptr = zero ? PyObject_GetItem(PyTuple_GET_ITEM(out, 0), zero) : NULL;
        int nonnull = ptr ? PyObject_IsTrue(ptr) : -1;
        if (nonnull > 0) {
            owned = PyObject_CallFunctionObjArgs(gc, ptr, PyTuple_GET_ITEM(out, 1), NULL);
        } else if (nonnull == 0) {
            owned = Py_NewRef(Py_None);
        }
        Py_XDECREF(ptr);
        if (!owned) {
            /* Out of memory wrapping one: what C made here leaks, the rest
             * are still wrapped (and freed with `result`). */
            failed = 1;
            owned = Py_NewRef(Py_None);
        }
        PyTuple_SET_ITEM(result, i + 1, owned);
    }
    Py_XDECREF(zero);
    if (failed) {
        Py_DECREF(result);
        if (!PyErr_Occurred()) {
            PyErr_NoMemory();
        }
        return NULL;
    }
    return result;
}

static PyMethodDef module_methods[] = {
    { "set_rcu", set_rcu, METH_VARARGS,
      "set_rcu(read_lock_address, read_unlock_address): the functions ReadSection calls" },
    { "atomic", atomic, METH_VARARGS,
      "atomic(step, ...): setattrs and builtin calls in one C call (see fastpath.c)" },
    { "call_owned", call_owned, METH_VARARGS,
      "call_owned(gc, fn, args, outs) -> (answer, owned...): call and own in one C call" },
    { "bind", bind, METH_VARARGS,
      "bind(kind, fn_address, obj_address, width, fallback, keepalive[, read_lock, "
      "read_unlock, device_fn, big_endian]) -> builtin" },
    { "range_users", range_users, METH_VARARGS,
      "range_users(ranges_address, n) -> list of the ranges' user objects" },
    { NULL, NULL, 0, NULL },
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "pymem._fastpath",
    "One-argument builtins bound to C core functions (see csrc/ext/fastpath.c).",
    -1, module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastpath(void)
{
    str_ops = PyUnicode_InternFromString("ops");
    str_direct = PyUnicode_InternFromString("direct");
    str_recorder = PyUnicode_InternFromString("recorder");
    if (!str_ops || !str_direct || !str_recorder) {
        return NULL;
    }
    str_lock = PyUnicode_InternFromString("_lock");
    str_depth = PyUnicode_InternFromString("_depth");
    str_pending = PyUnicode_InternFromString("_update_pending");
    str_commit = PyUnicode_InternFromString("_commit");
    str_acquire = PyUnicode_InternFromString("acquire");
    str_release = PyUnicode_InternFromString("release");
    if (!str_lock || !str_depth || !str_pending || !str_commit || !str_acquire || !str_release) {
        return NULL;
    }
    if (PyType_Ready(&BoundType) < 0 || PyType_Ready(&ReadSectionType) < 0
        || PyType_Ready(&SettingType) < 0 || PyType_Ready(&TransactionType) < 0) {
        return NULL;
    }
    TranslationType = PyStructSequence_NewType(&translation_desc);
    if (!TranslationType) {
        return NULL;
    }
    /* Sized for translation_new; set before any instance exists. */
    if (TranslationType->tp_basicsize != sizeof(PyStructSequence) - sizeof(PyObject *)
        || TranslationType->tp_itemsize != sizeof(PyObject *)) {
        PyErr_SetString(PyExc_SystemError, "unexpected struct sequence layout");
        return NULL;
    }
    TranslationType->tp_dealloc = translation_dealloc;
    SectionAtType = PyStructSequence_NewType(&section_desc);
    if (!SectionAtType) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m && (PyModule_AddObjectRef(m, "Translation", (PyObject *)TranslationType) < 0 ||
              PyModule_AddObjectRef(m, "SectionAt", (PyObject *)SectionAtType) < 0 ||
              PyModule_AddObjectRef(m, "ReadSection", (PyObject *)&ReadSectionType) < 0 ||
              PyModule_AddObjectRef(m, "Setting", (PyObject *)&SettingType) < 0 ||
              PyModule_AddObjectRef(m, "Transaction", (PyObject *)&TransactionType) < 0)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
