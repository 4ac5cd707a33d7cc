/*
 * args.c - arguments and errors shared by the builtins: parsing positional
 * and keyword arguments as a Python function would, and raising the
 * pymem.errors exception the Python path raises for the same mistake (the
 * per-call address conversion, as_address, is inline in fastpath.h).
 */
#include "fastpath.h"

/* Raise pymem.errors.<name>(message) (`fallback_type` if that cannot be had). */
PyObject *fp_pymem_error(const char *name, PyObject *fallback_type, const char *fmt, ...)
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
PyObject *fp_address_error(const char *what, PyObject *arg)
{
    if (!PyLong_Check(arg) || PyBool_Check(arg)) {
        return fp_pymem_error("ArgumentTypeError", PyExc_TypeError, "%s must be an int, not %s",
                           what, Py_TYPE(arg)->tp_name);
    }
    PyObject *hex = PyNumber_ToBase(arg, 16);
    if (!hex) {
        return NULL;
    }
    fp_pymem_error("InvalidArgumentError", PyExc_ValueError, "%s %U is outside the 64-bit space",
                what, hex);
    Py_DECREF(hex);
    return NULL;
}

/* Positional and keyword arguments into out[] (borrowed) by `names`, as a
 * Python function with those parameters would take them; TypeError (the
 * interpreter's own) otherwise. */
int fp_parse_args(const char *fname, const char *const *names, Py_ssize_t nmin,
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

