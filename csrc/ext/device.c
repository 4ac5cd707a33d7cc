/*
 * device.c - the MMIO path of the fixed-width builtins: a load or store whose
 * section is a device taking the access in one callback is handed to that
 * callback from C, with no Python frames in between.  Everything the device
 * path does not take goes back to the builtin's Python fallback.
 *
 * What it costs over calling the callback directly: the builtin's call, the
 * section lookup (one RCU read section: after a device access the builtin
 * tries the device first), calling from C rather than from the interpreter
 * (CPython's part, ~1.8x the direct call by itself: docs/performance.md);
 * the region's callbacks are cached in the builtin (remember_device), the
 * offset int is reused while nobody keeps it (offset_int), and a plain
 * answer is handed back as it is (device_answer).
 */
#include "fastpath.h"

/* Attribute names the device path reads, interned once. */
static PyObject *str_ops, *str_direct;

/* Bumped whenever a region is given other ops (pymem.region.set_ops calls
 * ops_changed): every builtin's cached callbacks are then looked up again. */
static uint64_t ops_generation;

PyObject *fp_ops_changed(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    ops_generation++;
    Py_RETURN_NONE;
}

void fp_device_forget(Bound *self)
{
    self->dev_region = UINT32_MAX;
    Py_CLEAR(self->dev_read);
    Py_CLEAR(self->dev_write);
    Py_CLEAR(self->dev_ref);
}

/*
 * Remember `region`'s direct callbacks (MemoryRegionOps.direct: read, write,
 * the sizes one callback answers, unaligned, big-endian) in the builtin, by
 * region id: ids are never reused, and ops change only through set_ops,
 * which bumps ops_generation.  A region without direct callbacks is
 * remembered too (no sizes), so its accesses go to the fallback at once.
 * The region itself is remembered by a weak reference (for the taps' events):
 * the cache must not keep a region the tree has dropped alive.
 */
static void remember_device(Bound *self, PyObject *region, uint32_t id)
{
    fp_device_forget(self);
    self->dev_sizes = 0;
    PyObject *ops = PyObject_GetAttr(region, str_ops);
    PyObject *direct = ops && ops != Py_None ? PyObject_GetAttr(ops, str_direct) : NULL;
    Py_XDECREF(ops);
    PyErr_Clear();
    self->dev_ref = PyWeakref_NewRef(region, NULL);
    if (!self->dev_ref) {
        PyErr_Clear();   /* no weak reference: the region is not remembered */
        Py_XDECREF(direct);
        return;
    }
    if (direct && PyTuple_Check(direct) && PyTuple_GET_SIZE(direct) == 5) {
        unsigned long sizes = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(direct, 2));
        if (PyErr_Occurred()) {
            PyErr_Clear();
        } else {
            self->dev_read = Py_NewRef(PyTuple_GET_ITEM(direct, 0));
            self->dev_write = Py_NewRef(PyTuple_GET_ITEM(direct, 1));
            self->dev_sizes = (unsigned)sizes;
            self->dev_unaligned = PyTuple_GET_ITEM(direct, 3) == Py_True;
            self->dev_big = PyTuple_GET_ITEM(direct, 4) == Py_True;
        }
    }
    Py_XDECREF(direct);
    self->dev_region = id;
    self->dev_generation = ops_generation;
}

/*
 * The device path of a fixed-width load or store that is not plain memory:
 * when the section under addr is a device whose ops take this access in one
 * callback (MemoryRegionOps.direct: callbacks without attributes, the size
 * both valid and implemented, aligned unless the device takes unaligned
 * accesses), call it from here, as the Python slow path would, without the
 * Python frames in between.  Anything else (IOMMUs, RAM behind a read-only
 * alias, accesses to split, unassigned space) is left to the fallback.
 * Returns the region (a new reference) and its offset, the builtin's cache
 * holding the callbacks, or NULL, with no error set, to mean "take the
 * fallback".
 *
 * The lookup is one pm_as_translate (its own read-side section) when the
 * section is the remembered device's: only ids and offsets are read from it,
 * and the region comes from the cache.  Another region is looked up again
 * inside a section held across the incref, as in call_section, so the
 * region is ours before its view can go.
 */
static PyObject *direct_device(Bound *self, uint64_t addr, uint32_t refused_flags,
                               uint64_t *offset)
{
    /* Set again below when this access is a direct device's. */
    self->dev_hint = 0;
    if (addr + (self->width - 1) < addr) {
        return NULL;   /* runs past 2^64: the slow path refuses it */
    }
    pm_access acc;
    PyObject *region = NULL;
    self->device(self->obj, addr, self->width, &acc);
    if (!acc.user || (acc.flags & refused_flags)) {
        return NULL;
    }
    if (acc.region == self->dev_region && self->dev_generation == ops_generation) {
        region = PyWeakref_GET_OBJECT(self->dev_ref);
        region = region != Py_None ? Py_NewRef(region) : NULL;
    }
    if (!region) {
        self->read_lock();
        self->device(self->obj, addr, self->width, &acc);
        region = (PyObject *)acc.user;
        if (!region || (acc.flags & refused_flags)) {
            self->read_unlock();
            return NULL;
        }
        Py_INCREF(region);
        self->read_unlock();
        remember_device(self, region, acc.region);
    }
    if (!(self->dev_sizes & self->width)
        || (!self->dev_unaligned && (acc.offset & (self->width - 1)))) {
        Py_DECREF(region);
        return NULL;
    }
    *offset = acc.offset;
    self->dev_hint = 1;
    return region;
}

/* Tell the taps of a device access done here: `value` in the device's byte
 * order, as the Python path tells them.  -1 with a tap's error set. */
static int tap_device(Bound *self, uint64_t addr, PyObject *region, uint64_t offset,
                      uint64_t value, int is_write, int device_big)
{
    if (!self->taps || !self->taps->n) {
        return 0;
    }
    fp_piece p = {
        .addr = addr, .offset = offset, .value = value, .size = self->width,
        .is_write = is_write, .has_value = 1, .big_endian = device_big, .mmio = 1,
        .region = region,
    };
    return fp_tap_emit(self->taps, &p);
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

/*
 * The offset argument of a device call, as a Python int (new reference).
 * An int is immutable, but one that nobody else holds cannot be seen to
 * change: the builtin keeps the int it passed last and, when the callback
 * did not keep it (the builtin holds the only reference), writes the next
 * offset into its digits instead of freeing it and making another, as
 * load_answer (memtx.c) reuses its tuple.  That is ~150 instructions, an
 * allocation and a free, of an MMIO access.  Only offsets of two 30-bit
 * digits (257 .. 2^60) on CPython 3.11's int layout (pyaddr.h): smaller
 * ones are CPython's shared small ints, larger ones are made afresh.
 */
static PyObject *offset_int(Bound *self, uint64_t offset)
{
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000 && PyLong_SHIFT == 30
    if (offset > 256 && offset < (UINT64_C(1) << 60)) {
        PyObject *o = self->dev_offset;
        if (!o || Py_REFCNT(o) != 1) {
            o = (PyObject *)_PyLong_New(2);
            if (!o) {
                return NULL;
            }
            Py_XSETREF(self->dev_offset, o);
        }
        digit *d = ((PyLongObject *)o)->ob_digit;
        d[0] = (digit)(offset & PyLong_MASK);
        d[1] = (digit)(offset >> PyLong_SHIFT);
        Py_SET_SIZE(o, d[1] ? 2 : 1);
        return Py_NewRef(o);
    }
#endif
    return PyLong_FromUnsignedLongLong(offset);
}

/* 1, 2, 4 and 8 as Python ints, made once: the size argument of every call. */
static PyObject *width_ints[9];

/*
 * What a read callback answered, as the access's value: *v the value in the
 * device's byte order (for the taps) and the answer the builtin returns (a
 * new reference), or NULL with an error set.  The common answer, a plain
 * non-negative int that fits and needs no byte swap, is returned as it is:
 * no new int, no free of the old (the digits read in place, pyaddr.h).
 */
static PyObject *device_answer(Bound *self, uint64_t addr, PyObject *got, int device_big,
                               uint64_t *v)
{
    uint64_t mask = self->width == 8 ? UINT64_MAX : (UINT64_C(1) << (8 * self->width)) - 1;
    if (PyLong_CheckExact(got) && Py_SIZE(got) >= 0 && Py_SIZE(got) <= 2
        && pm_address_arg(got, v) == 0 && *v <= mask && device_big == self->big_endian) {
        return got;
    }
    if (!PyLong_Check(got)) {
        /* What the Python path takes (mmio.callback_value): anything with
         * __index__; anything else is the device model's bug, reported as
         * pymem.access.device_answer_error words it, naming the region. */
        PyObject *index = PyNumber_Index(got);
        if (!index) {
            PyErr_Clear();
            answer_error(self, addr, got);
            Py_DECREF(got);
            return NULL;
        }
        Py_DECREF(got);
        got = index;
    }
    *v = PyLong_AsUnsignedLongLongMask(got) & mask;
    Py_DECREF(got);
    if (PyErr_Occurred()) {
        return NULL;
    }
    return PyLong_FromUnsignedLongLong(device_big != self->big_endian
                                       ? swap_bytes(*v, self->width) : *v);
}

/* 1: handled (*result is the value, or NULL with the callback's error set);
 * 0: take the fallback. */
int fp_device_load(Bound *self, uint64_t addr, PyObject **result)
{
    uint64_t offset, v;
    if (!self->device) {
        return 0;
    }
    PyObject *region = direct_device(self, addr, PM_SECTION_RAM | PM_SECTION_ROMD
                                     | PM_SECTION_IOMMU, &offset);
    if (!region) {
        return 0;
    }
    /* Ours for the call: a nested access may refill the cache. */
    PyObject *read = Py_NewRef(self->dev_read);
    int device_big = self->dev_big;
    /* args[0] is free for a bound method's self (PY_VECTORCALL_ARGUMENTS_OFFSET). */
    PyObject *args[3] = { NULL, offset_int(self, offset), width_ints[self->width] };
    PyObject *got = args[1]
                    ? PyObject_Vectorcall(read, args + 1, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                          NULL)
                    : NULL;
    Py_XDECREF(args[1]);
    Py_DECREF(read);
    PyObject *answer = got ? device_answer(self, addr, got, device_big, &v) : NULL;
    if (answer && tap_device(self, addr, region, offset, v, 0, device_big) < 0) {
        Py_CLEAR(answer);
    }
    Py_DECREF(region);
    *result = answer;
    return 1;
}

int fp_device_store(Bound *self, uint64_t addr, uint64_t value, PyObject **result)
{
    uint64_t offset;
    if (!self->device) {
        return 0;
    }
    /* RAM and IOMMU sections are the fallback's; a ROM device takes writes
     * through its ops in either mode. */
    PyObject *region = direct_device(self, addr, PM_SECTION_RAM | PM_SECTION_IOMMU, &offset);
    if (!region) {
        return 0;
    }
    *result = NULL;
    int device_big = self->dev_big;
    if (device_big != self->big_endian) {
        value = swap_bytes(value, self->width);
    }
    PyObject *write = Py_NewRef(self->dev_write);
    PyObject *args[4] = { NULL, offset_int(self, offset), PyLong_FromUnsignedLongLong(value),
                          width_ints[self->width] };
    PyObject *got = args[1] && args[2]
                    ? PyObject_Vectorcall(write, args + 1, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                          NULL)
                    : NULL;
    Py_XDECREF(args[1]);
    Py_XDECREF(args[2]);
    Py_DECREF(write);
    if (got) {
        /* The callback's answer is ignored, as QEMU ignores a plain write's. */
        Py_DECREF(got);
        if (tap_device(self, addr, region, offset, value, 1, device_big) == 0) {
            *result = Py_NewRef(Py_None);
        }
    }
    Py_DECREF(region);
    return 1;
}

int fp_device_init(void)
{
    str_ops = PyUnicode_InternFromString("ops");
    str_direct = PyUnicode_InternFromString("direct");
    for (unsigned w = 1; w <= 8; w *= 2) {
        if (!(width_ints[w] = PyLong_FromLong((long)w))) {
            return -1;
        }
    }
    return str_ops && str_direct ? 0 : -1;
}
