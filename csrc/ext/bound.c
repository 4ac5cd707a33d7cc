/*
 * bound.c - the Bound object and bind(): a C core function, its object, and
 * what the builtin needs around them (width, byte order, RCU functions, the
 * device path, the Python fallback), made into a builtin of one of the kinds
 * below.  The builtins themselves live in lookup.c and ram.c.
 */
#include "fastpath.h"

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

#define FAST_KW(f) (PyCFunction)(void (*)(void))(f), METH_FASTCALL | METH_KEYWORDS

static PyMethodDef kinds[] = {
    { "rw_read", (PyCFunction)(void (*)(void))fp_call_rw_read, METH_FASTCALL,
      "One slow-path read step (addr, buffer, start)." },
    { "rw_write", (PyCFunction)(void (*)(void))fp_call_rw_write, METH_FASTCALL,
      "One slow-path write step (addr, buffer, start)." },
    { "section", (PyCFunction)(void (*)(void))fp_call_section, METH_FASTCALL,
      "The section under (addr, size)." },
    { "read", FAST_KW(fp_call_read), "read(addr, size, attrs=None)." },
    { "write", FAST_KW(fp_call_write), "write(addr, data, attrs=None)." },
    { "translate", FAST_KW(fp_call_translate), "translate(addr, length=1): Translation." },
    { "lookup", FAST_KW(fp_call_lookup), "lookup(addr): the section index of an address." },
    { "load", FAST_KW(fp_call_load), "load(addr): a load of up to 4 bytes." },
    { "load64", FAST_KW(fp_call_load64), "load(addr): a load of 8 bytes." },
    { "store", FAST_KW(fp_call_store), "store(addr, value)." },
    { "space_translate", FAST_KW(fp_call_space_translate),
      "translate(addr, length=1, is_write=False): (region, offset, length)." },
};

PyObject *fp_bind(PyObject *module, PyObject *args)
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
    int is_section = strcmp(kind, "section") == 0 || strncmp(kind, "rw_", 3) == 0 ||
                     strcmp(kind, "space_translate") == 0;
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
    int needs_fallback = (strcmp(kind, "lookup") != 0 && strcmp(kind, "translate") != 0 &&
                          !is_section) || strcmp(kind, "space_translate") == 0;
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


int fp_bound_init(void)
{
    return PyType_Ready(&BoundType);
}
