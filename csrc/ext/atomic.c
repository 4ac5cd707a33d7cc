/*
 * atomic.c - several state changes in one C call: atomic() runs plain
 * setattrs and builtin calls with their undo steps, call_owned() calls a C
 * function and wraps what it allocated in ffi.gc.  Why one C call is safe
 * from async exceptions: see the signal-safe building blocks in guards.c.
 */
#include "fastpath.h"

/* Check a plain step: ("=", obj, name, value) or (builtin, arg, ...). */
static int check_step(PyObject *step)
{
    if (!PyTuple_Check(step) || PyTuple_GET_SIZE(step) < 1) {
        return 0;
    }
    PyObject *head = PyTuple_GET_ITEM(step, 0);
    if (PyUnicode_Check(head)) {
        return PyTuple_GET_SIZE(step) == 4 && !PyUnicode_CompareWithASCIIString(head, "=")
               && fp_plain_attribute(PyTuple_GET_ITEM(step, 1), PyTuple_GET_ITEM(step, 2));
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
 * fp_atomic(step, ...): run the steps in order, in this one C call, so that no
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
PyObject *fp_atomic(PyObject *module, PyObject *steps)
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
 * fp_call_owned(gc, fn, args, outs): call the builtin fn(*args), then wrap what
 * it stored in each out-parameter of `outs` ((holder, destructor) pairs: a
 * cffi `T **` and the function freeing a T *) with gc(pointer, destructor),
 * cffi's ffi.gc.  Returns (fn's answer, owned pointer or None per out).  In
 * one C call, so no async exception can fall between C allocating an object
 * and Python owning it.
 */
PyObject *fp_call_owned(PyObject *module, PyObject *args)
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

