/*
 * commit.c - swap_views(): the end of a commit (pymem/address_space.py,
 * MemorySystem._commit) in one C call: the view registry swapped, every
 * address space's new view published to C and pinned, every view's
 * reference count moved, the views whose count reached 0 queued for
 * release, the pending update cleared.
 *
 * Why C: done in Python, this bookkeeping was a dictionary of reference
 * changes, a list of `atomic()` steps and the call (about a third of a small
 * commit); and being one C call, no async exception (Ctrl-C) can fall
 * between its changes, which is what atomic() gave the Python version.
 *
 * Everything that can fail is done before the first change: the arguments
 * are checked, the new counts made and the new retired list built; a
 * publish call that fails (it cannot, given checked arguments) has the
 * publishes made before it undone before the error propagates.  Old values
 * (the replaced registry, pins' old views) are released only after the last
 * change, so a finalizer they trigger sees the whole commit.
 */
#include "fastpath.h"

static PyObject *str_views, *str_retired, *str_pending, *str_view, *str_refs, *str_handle;

/* A view and how its reference count moves. */
typedef struct {
    PyObject *view;          /* borrowed */
    long delta;
    PyObject *refs;          /* the new count, made before any change */
} ref_change;

typedef struct {
    ref_change *items;
    Py_ssize_t n, cap;
} changes;

static int change_ref(changes *c, PyObject *view, long delta)
{
    for (Py_ssize_t i = 0; i < c->n; i++) {
        if (c->items[i].view == view) {
            c->items[i].delta += delta;
            return 0;
        }
    }
    if (c->n == c->cap) {
        Py_ssize_t cap = c->cap ? c->cap * 2 : 8;
        ref_change *items = PyMem_Realloc(c->items, (size_t)cap * sizeof(*items));
        if (!items) {
            PyErr_NoMemory();
            return -1;
        }
        c->items = items;
        c->cap = cap;
    }
    c->items[c->n++] = (ref_change){ view, delta, NULL };
    return 0;
}

static int in_values(PyObject *dict, PyObject *view)
{
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(dict, &pos, &key, &value)) {
        if (value == view) {
            return 1;
        }
    }
    return 0;
}

/*
 * swap_views(system, views, publish, spaces, done): `views` becomes the system's
 * registry (`_views`): views of the old registry that are not in it lose
 * the registry's reference (a new view is born holding it).  `spaces` is a
 * tuple of (pin, handle of the space, view): each pin whose `view` is
 * another view is pointed at it, `publish(handle, view._handle)` (the cffi
 * lib.pm_as_publish) called, and the counts moved (the new view +1, the old
 * -1).  Views reaching 0 are appended to the system's `_retired`; with
 * `done`, `_update_pending` is set False.  Returns None.
 */
PyObject *fp_swap_views(PyObject *module, PyObject *args)
{
    PyObject *system, *views, *publish, *spaces;
    int done_pending;
    (void)module;
    if (!PyArg_ParseTuple(args, "OO!OO!p:swap_views", &system, &PyDict_Type, &views, &publish,
                          &PyTuple_Type, &spaces, &done_pending)) {
        return NULL;
    }
    if (!PyCFunction_Check(publish)) {
        PyErr_SetString(PyExc_TypeError, "swap_views: publish must be a builtin");
        return NULL;
    }
    if (!fp_plain_attribute(system, str_views) || !fp_plain_attribute(system, str_retired)
        || !fp_plain_attribute(system, str_pending)) {
        PyErr_SetString(PyExc_TypeError, "swap_views: the system's _views, _retired and "
                        "_update_pending must be plain attributes");
        return NULL;
    }
    Py_ssize_t nspaces = PyTuple_GET_SIZE(spaces), i;
    changes c = { NULL, 0, 0 };
    PyObject *old_views = NULL, *retired = NULL, *new_retired = NULL;
    PyObject **olds = NULL, **handles = NULL;
    Py_ssize_t *published = NULL;
    Py_ssize_t npublished = 0;
    PyObject *result = NULL;

    old_views = PyObject_GenericGetAttr(system, str_views);
    retired = old_views ? PyObject_GenericGetAttr(system, str_retired) : NULL;
    if (!retired) {
        goto done;
    }
    if (!PyDict_Check(old_views) || !PyList_Check(retired)) {
        PyErr_SetString(PyExc_TypeError, "swap_views: _views must be a dict, _retired a list");
        goto done;
    }
    olds = PyMem_Calloc((size_t)nspaces + 1, sizeof(*olds));
    handles = PyMem_Calloc((size_t)nspaces + 1, sizeof(*handles));
    published = PyMem_Calloc((size_t)nspaces + 1, sizeof(*published));
    if (!olds || !handles || !published) {
        PyErr_NoMemory();
        goto done;
    }
    /* The registry's references. */
    Py_ssize_t pos = 0;
    PyObject *key, *view;
    while (PyDict_Next(old_views, &pos, &key, &view)) {
        if (!in_values(views, view) && change_ref(&c, view, -1) < 0) {
            goto done;
        }
    }
    /* The spaces' references, and what each publishes. */
    for (i = 0; i < nspaces; i++) {
        PyObject *entry = PyTuple_GET_ITEM(spaces, i);
        if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 3
            || !fp_plain_attribute(PyTuple_GET_ITEM(entry, 0), str_view)) {
            PyErr_SetString(PyExc_TypeError, "swap_views: spaces are (pin, handle, view)");
            goto done;
        }
        PyObject *pin = PyTuple_GET_ITEM(entry, 0), *new = PyTuple_GET_ITEM(entry, 2);
        olds[i] = PyObject_GenericGetAttr(pin, str_view);
        if (!olds[i]) {
            goto done;
        }
        if (olds[i] == new) {
            continue;
        }
        handles[i] = PyObject_GetAttr(new, str_handle);
        if (!handles[i]) {
            goto done;
        }
        if (handles[i] == Py_None) {
            PyErr_SetString(PyExc_ValueError, "swap_views: a view to publish was released");
            goto done;
        }
        if (change_ref(&c, new, 1) < 0 || (olds[i] != Py_None && change_ref(&c, olds[i], -1) < 0)) {
            goto done;
        }
    }
    /* The new counts, and the new retired list. */
    new_retired = PySequence_List(retired);
    if (!new_retired) {
        goto done;
    }
    for (i = 0; i < c.n; i++) {
        if (!c.items[i].delta) {
            continue;
        }
        PyObject *refs = PyObject_GetAttr(c.items[i].view, str_refs);
        long n = refs ? PyLong_AsLong(refs) : -1;
        Py_XDECREF(refs);
        if (n == -1 && PyErr_Occurred()) {
            goto done;
        }
        if (!fp_plain_attribute(c.items[i].view, str_refs)) {
            PyErr_SetString(PyExc_TypeError, "swap_views: a view's _refs must be a plain attribute");
            goto done;
        }
        n += c.items[i].delta;
        c.items[i].refs = PyLong_FromLong(n);
        if (!c.items[i].refs || (n == 0 && PyList_Append(new_retired, c.items[i].view) < 0)) {
            goto done;
        }
    }
    /* C first: a publish that fails has the earlier ones undone. */
    for (i = 0; i < nspaces; i++) {
        if (!handles[i]) {
            continue;
        }
        PyObject *entry = PyTuple_GET_ITEM(spaces, i);
        PyObject *r = PyObject_CallFunctionObjArgs(publish, PyTuple_GET_ITEM(entry, 1),
                                                   handles[i], NULL);
        if (!r) {
            PyObject *type, *value, *tb;
            PyErr_Fetch(&type, &value, &tb);
            while (npublished--) {
                Py_ssize_t j = published[npublished];
                PyObject *back = PyObject_GetAttr(olds[j], str_handle);
                PyObject *u = back ? PyObject_CallFunctionObjArgs(
                    publish, PyTuple_GET_ITEM(PyTuple_GET_ITEM(spaces, j), 1), back, NULL) : NULL;
                Py_XDECREF(u);
                Py_XDECREF(back);
                PyErr_Clear();
            }
            PyErr_Restore(type, value, tb);
            goto done;
        }
        Py_DECREF(r);
        published[npublished++] = i;
    }
    /* From here on nothing fails: slots and plain attributes are set. */
    for (i = 0; i < nspaces; i++) {
        if (handles[i]) {
            PyObject *entry = PyTuple_GET_ITEM(spaces, i);
            (void)PyObject_GenericSetAttr(PyTuple_GET_ITEM(entry, 0), str_view,
                                          PyTuple_GET_ITEM(entry, 2));
        }
    }
    for (i = 0; i < c.n; i++) {
        if (c.items[i].refs) {
            (void)PyObject_GenericSetAttr(c.items[i].view, str_refs, c.items[i].refs);
        }
    }
    (void)PyObject_GenericSetAttr(system, str_retired, new_retired);
    (void)PyObject_GenericSetAttr(system, str_views, views);
    if (done_pending) {
        (void)PyObject_GenericSetAttr(system, str_pending, Py_False);
    }
    result = Py_NewRef(Py_None);

done:
    /* Released last: the old registry and views may finalize now. */
    for (i = 0; i < c.n; i++) {
        Py_XDECREF(c.items[i].refs);
    }
    PyMem_Free(c.items);
    for (i = 0; olds && i < nspaces; i++) {
        Py_XDECREF(olds[i]);
        Py_XDECREF(handles[i]);
    }
    PyMem_Free(olds);
    PyMem_Free(handles);
    PyMem_Free(published);
    Py_XDECREF(new_retired);
    Py_XDECREF(retired);
    Py_XDECREF(old_views);
    return result;
}

int fp_commit_init(void)
{
    str_views = PyUnicode_InternFromString("_views");
    str_retired = PyUnicode_InternFromString("_retired");
    str_pending = PyUnicode_InternFromString("_update_pending");
    str_view = PyUnicode_InternFromString("view");
    str_refs = PyUnicode_InternFromString("_refs");
    str_handle = PyUnicode_InternFromString("_handle");
    return str_views && str_retired && str_pending && str_view && str_refs && str_handle ? 0 : -1;
}
