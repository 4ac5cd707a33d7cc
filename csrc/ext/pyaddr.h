/*
 * pyaddr.h - a Python int to a 64-bit guest address, fast.
 *
 * Why: PyLong_AsUnsignedLongLong goes through _PyLong_AsByteArray for any int
 * of two digits or more (>= 2^30), 112-180 instructions per call, which was
 * most of a `Dispatch.lookup` on addresses above 1 GiB (PCI holes, MMIO, RAM
 * above 4 GiB).  On CPython 3.11, whose int layout is a signed digit count in
 * ob_size and 30-bit digits, an exact non-negative int of up to three digits
 * is read here directly; everything else (negative numbers, bools and other
 * subclasses, ints of 2^64 and more, other Python versions) takes the
 * documented call, so errors and accepted types stay exactly what they were:
 * a non-int is a TypeError, anything outside [0, 2^64) a ValueError.
 */
#ifndef PYMEM_PYADDR_H
#define PYMEM_PYADDR_H

#include <Python.h>
#include <stdint.h>

static int pm_address_arg_slow(PyObject *arg, uint64_t *addr)
{
    unsigned long long v = PyLong_AsUnsignedLongLong(arg);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
            /* The same error the Python paths give for the same mistake. */
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "%S is outside the 64-bit space", arg);
        }
        return -1;
    }
    *addr = v;
    return 0;
}

static inline int pm_address_arg(PyObject *arg, uint64_t *addr)
{
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000 && PyLong_SHIFT == 30
    if (PyLong_CheckExact(arg)) {
        const digit *d = ((PyLongObject *)arg)->ob_digit;
        switch (Py_SIZE(arg)) {
        case 0:
            *addr = 0;
            return 0;
        case 1:
            *addr = d[0];
            return 0;
        case 2:
            *addr = d[0] | (uint64_t)d[1] << 30;
            return 0;
        case 3:
            /* 60 bits from the first two digits: 4 more fit. */
            if (d[2] < 16) {
                *addr = d[0] | (uint64_t)d[1] << 30 | (uint64_t)d[2] << 60;
                return 0;
            }
            break;
        default:
            break;
        }
    }
#endif
    return pm_address_arg_slow(arg, addr);
}

#endif /* PYMEM_PYADDR_H */
