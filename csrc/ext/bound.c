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
    Py_VISIT((PyObject *)self->taps);
    Py_VISIT(self->dev_read);
    Py_VISIT(self->dev_write);
    Py_VISIT(self->dev_ref);
    Py_VISIT(self->spare_result);
    Py_VISIT(self->map_memory);
    Py_VISIT(self->dev_offset);
    return 0;
}

static int bound_clear(Bound *self)
{
    /* keepalive first: CHECK_LIVE refuses calls from the moment it is gone. */
    Py_CLEAR(self->keepalive);
    Py_CLEAR(self->fallback);
    Py_CLEAR(self->taps);
    Py_CLEAR(self->spare_result);
    Py_CLEAR(self->map_memory);
    Py_CLEAR(self->dev_offset);
    fp_device_forget(self);
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
    { "rw", FAST_KW(fp_call_rw), "rw(addr, buffer, is_write, attrs=None) -> MemTxResult." },
    { "load_attrs", FAST_KW(fp_call_load_attrs),
      "load(addr, size, big_endian=False, attrs=None) -> (value, MemTxResult)." },
    { "store_attrs", FAST_KW(fp_call_store_attrs),
      "store(addr, value, size, big_endian=False, attrs=None) -> MemTxResult." },
    { "map", FAST_KW(fp_call_map), "map(addr, size, is_write, attrs=None) -> memoryview." },
    { "unmap", FAST_KW(fp_call_unmap), "unmap(view, access_len=None)." },
};

PyObject *fp_bind(PyObject *module, PyObject *args)
{
    const char *kind;
    unsigned long long fn, obj, read_lock = 0, read_unlock = 0, device = 0;
    unsigned width;
    int big_endian = 0;
    PyObject *fallback, *keepalive, *taps = Py_None;
    (void)module;
    if (!PyArg_ParseTuple(args, "sKKIOO|KKKpO", &kind, &fn, &obj, &width, &fallback,
                          &keepalive, &read_lock, &read_unlock, &device, &big_endian, &taps)) {
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
                     strcmp(kind, "space_translate") == 0 || strcmp(kind, "map") == 0;
    if (is_section && (!read_lock || !read_unlock)) {
        PyErr_SetString(PyExc_ValueError, "a section builtin needs the RCU lock functions");
        return NULL;
    }
    int is_access = strcmp(kind, "load") == 0 || strcmp(kind, "load64") == 0 ||
                    strcmp(kind, "store") == 0;
    int is_rw = strcmp(kind, "rw") == 0;
    if (is_rw && !device) {
        PyErr_SetString(PyExc_ValueError, "rw needs the write function (device_fn)");
        return NULL;
    }
    if (device && !is_rw && (!is_access || !read_lock || !read_unlock ||
                             (width != 1 && width != 2 && width != 4 && width != 8))) {
        PyErr_SetString(PyExc_ValueError, "a device path needs a load or store of 1, 2, 4 "
                        "or 8 bytes and the RCU lock functions");
        return NULL;
    }
    int is_bulk = strcmp(kind, "read") == 0 || strcmp(kind, "write") == 0 || is_rw
                  || strcmp(kind, "load_attrs") == 0 || strcmp(kind, "store_attrs") == 0
                  || strcmp(kind, "map") == 0 || strcmp(kind, "unmap") == 0;
    if (taps != Py_None && (!fp_tap_is_set(taps) || !(is_access || is_bulk))) {
        PyErr_SetString(PyExc_ValueError, "taps: a TapSet, for loads, stores, read and write");
        return NULL;
    }
    if (taps != Py_None && !is_bulk && (!device || !read_lock || !read_unlock)) {
        /* A tapped RAM load or store looks its section up for the event. */
        PyErr_SetString(PyExc_ValueError, "a tapped load or store needs the device path");
        return NULL;
    }
    int needs_fallback = (strcmp(kind, "lookup") != 0 && strcmp(kind, "translate") != 0 &&
                          !is_section) || strcmp(kind, "space_translate") == 0
                         || strcmp(kind, "map") == 0;
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
    b->taps = taps != Py_None ? (TapSet *)Py_NewRef(taps) : NULL;
    b->dev_region = UINT32_MAX;
    b->dev_read = b->dev_write = b->dev_ref = b->spare_result = b->map_memory = NULL;
    b->dev_offset = NULL;
    b->map_region = UINT32_MAX;
    b->dev_sizes = 0;
    b->dev_unaligned = b->dev_big = b->dev_hint = 0;
    b->dev_generation = 0;
    PyObject_GC_Track(b);
    PyObject *f = PyCFunction_New(def, (PyObject *)b);
    Py_DECREF(b);
    return f;
}


int fp_bound_init(void)
{
    return PyType_Ready(&BoundType);
}
