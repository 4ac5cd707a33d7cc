/*
 * device.c - the MMIO path of the fixed-width builtins: a load or store whose
 * section is a device taking the access in one callback is handed to that
 * callback from C, with no Python frames in between.  Everything the device
 * path does not take goes back to the builtin's Python fallback.
 */
#include "fastpath.h"

/* Attribute names the device path reads, interned once. */
static PyObject *str_ops, *str_direct, *str_recorder;

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
int fp_device_load(Bound *self, uint64_t addr, PyObject **result)
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

int fp_device_store(Bound *self, uint64_t addr, uint64_t value, PyObject **result)
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


int fp_device_init(void)
{
    str_ops = PyUnicode_InternFromString("ops");
    str_direct = PyUnicode_InternFromString("direct");
    str_recorder = PyUnicode_InternFromString("recorder");
    return str_ops && str_direct && str_recorder ? 0 : -1;
}
