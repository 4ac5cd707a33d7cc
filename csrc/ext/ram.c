/*
 * ram.c - the access builtins: fixed-width loads and stores (`ldl_le` and
 * friends), `read` and `write` of a byte range, and the `rw_*` steps the
 * Python slow path of `rw` takes.  Each does the access in one C call when it
 * is plain memory; a device gets the MMIO path (device.c) and anything else
 * the Python fallback.
 */
#include "fastpath.h"

/* While a tap may want plain memory: the taps' flag, read after the access. */
#define MEMORY_TAPPED(self) ((self)->taps && (self)->taps->memory_taps)

/*
 * Tell the taps of a plain-memory load or store the builtin just did, and
 * answer `answer` (stolen).  The event's region and offset are those of the
 * section under addr when the taps are told: a commit between the access and
 * this lookup (another thread's) names the new view's section.
 */
static PyObject *tap_memory(Bound *self, uint64_t addr, uint64_t value, int is_write,
                            PyObject *answer)
{
    pm_access acc;
    if (!answer) {
        return NULL;
    }
    self->read_lock();
    self->device(self->obj, addr, self->width, &acc);
    PyObject *region = Py_NewRef(acc.user ? (PyObject *)acc.user : Py_None);
    self->read_unlock();
    fp_piece p = {
        .addr = addr, .offset = acc.offset, .value = value, .size = self->width,
        .is_write = is_write, .has_value = 1, .big_endian = self->big_endian,
        .region = region,
    };
    int rc = fp_tap_emit(self->taps, &p);
    Py_DECREF(region);
    if (rc < 0) {
        Py_DECREF(answer);
        return NULL;
    }
    return answer;
}

/*
 * A fixed-width load, `wide` (8 bytes: the core answers through *value) or
 * not (up to 4 bytes: LOAD_MISS is the miss); both builtins are this body,
 * inlined with `wide` a constant.
 */
static inline __attribute__((always_inline)) PyObject *
call_load(PyObject *self_, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, int wide)
{
    Bound *self = (Bound *)self_;
    CHECK_LIVE(self);
    uint64_t addr, v;
    SLOW_UNLESS(fp_positional_addresses(args, nargs, kwnames, 1, 1, 1, &addr) == 0);
    PyObject *result;
    /* Where the last access was a device, this one likely is too: the
     * device path first saves the failed RAM access (device.c). */
    int tried = self->dev_hint;
    if (tried && fp_device_load(self, addr, &result)) {
        return result;
    }
    int hit;
    if (wide) {
        hit = ((load64_fn)self->fn)(self->obj, addr, &v) == 0;
    } else {
        v = ((load_fn)self->fn)(self->obj, addr);
        hit = v != LOAD_MISS;
    }
    if (hit) {
        if (MEMORY_TAPPED(self)) {
            return tap_memory(self, addr, v, 0, PyLong_FromUnsignedLongLong(v));
        }
        return PyLong_FromUnsignedLongLong(v);
    }
    if (!tried && fp_device_load(self, addr, &result)) {
        return result;
    }
    return PyObject_CallOneArg(self->fallback, args[0]);
}

PyObject *fp_call_load(PyObject *self_, PyObject *const *args, Py_ssize_t nargs,
                       PyObject *kwnames)
{
    return call_load(self_, args, nargs, kwnames, 0);
}

PyObject *fp_call_load64(PyObject *self_, PyObject *const *args, Py_ssize_t nargs,
                         PyObject *kwnames)
{
    return call_load(self_, args, nargs, kwnames, 1);
}

PyObject *fp_call_store(PyObject *self_, PyObject *const *args, Py_ssize_t nargs,
                        PyObject *kwnames)
{
    Bound *self = (Bound *)self_;
    CHECK_LIVE(self);
    uint64_t addr, value;
    SLOW_UNLESS(fp_positional_addresses(args, nargs, kwnames, 2, 2, 1, &addr) == 0
                && fp_store_value(args[1], self->width, &value) == 0);
    PyObject *result;
    int tried = self->dev_hint;
    if (tried && fp_device_store(self, addr, value, &result)) {
        return result;
    }
    if (((store_fn)self->fn)(self->obj, addr, value) == 0) {
        if (MEMORY_TAPPED(self)) {
            return tap_memory(self, addr, value, 1, Py_NewRef(Py_None));
        }
        Py_RETURN_NONE;
    }
    if (!tried && fp_device_store(self, addr, value, &result)) {
        return result;
    }
    return PyObject_Vectorcall(self->fallback, args, 2, NULL);
}

/* (addr, size): one C call when it is all plain memory, else the fallback. */
PyObject *fp_call_read(PyObject *self_, PyObject *const *args, Py_ssize_t nargs,
                           PyObject *kwnames)
{
    Bound *self = (Bound *)self_;
    CHECK_LIVE(self);
    uint64_t a[2];
    /* Keywords (attrs=...) and anything unusual: AccessMixin.read. */
    SLOW_UNLESS(fp_positional_addresses(args, nargs, kwnames, 2, 2, 2, a) == 0);
    uint64_t addr = a[0], len = a[1];
    SLOW_UNLESS(in_space(addr, len) && len <= (uint64_t)PY_SSIZE_T_MAX);
    /* Tapped: the Python path hands out each piece. */
    SLOW_UNLESS(!MEMORY_TAPPED(self));
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
PyObject *fp_call_write(PyObject *self_, PyObject *const *args, Py_ssize_t nargs,
                            PyObject *kwnames)
{
    Bound *self = (Bound *)self_;
    CHECK_LIVE(self);
    uint64_t addr;
    Py_buffer view;
    /* Keywords (attrs=...), buffers other than bytes: AccessMixin.write. */
    SLOW_UNLESS(fp_positional_addresses(args, nargs, kwnames, 2, 2, 1, &addr) == 0
                && PyBytes_CheckExact(args[1]) && !MEMORY_TAPPED(self));
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

PyObject *fp_call_rw_read(PyObject *self_, PyObject *const *args, Py_ssize_t nargs)
{
    return rw_step((Bound *)self_, args, nargs, 0);
}

PyObject *fp_call_rw_write(PyObject *self_, PyObject *const *args, Py_ssize_t nargs)
{
    return rw_step((Bound *)self_, args, nargs, 1);
}

