/*
 * ucglue.c - the `pymem._ucglue` module: C callbacks that unicorn calls for a
 * guest's device accesses, writes to read-only pages and dirty-logged stores,
 * entering pymem's access path in C (pymem/unicorn.py maps them).
 *
 * Why it exists: a unicorn MMIO callback written in Python costs a ctypes
 * trampoline, then pymem's access builtin, then the device: two crossings into
 * Python per guest access.  Here unicorn calls C, which calls the address
 * space's bound load/store builtin (csrc/ext/fastpath.c: C dispatch, QEMU's
 * access rules, and a device's plain callback called straight from C), so
 * the device's own callback is the only Python code a guest access runs.
 *
 * unicorn is not linked: the callback signatures below are unicorn's
 * (uc_cb_mmio_read_t, uc_cb_mmio_write_t, uc_cb_eventmem_t, uc_cb_hookmem_t),
 * declared here, and pymem/unicorn.py passes these functions' addresses to
 * the library it loaded through ctypes.  unicorn runs the guest with the GIL
 * released (ctypes drops it around uc_emu_start), so every callback that
 * touches Python takes it; the dirty-log callback touches only bytes.
 */
#include "ucglue.h"

#include <structmember.h>

/* The four access sizes, as an index into the builtin tables. */
static int size_index(unsigned size)
{
    switch (size) {
    case 1:
        return 0;
    case 2:
        return 1;
    case 4:
        return 2;
    case 8:
        return 3;
    default:
        return -1;
    }
}

static int port_traverse(Port *self, visitproc visit, void *arg)
{
    for (int i = 0; i < 4; i++) {
        Py_VISIT(self->loads[i]);
        Py_VISIT(self->stores[i]);
    }
    Py_VISIT(self->on_error);
    return 0;
}

static int port_clear(Port *self)
{
    for (int i = 0; i < 4; i++) {
        Py_CLEAR(self->loads[i]);
        Py_CLEAR(self->stores[i]);
    }
    Py_CLEAR(self->on_error);
    return 0;
}

static void port_dealloc(Port *self)
{
    PyObject_GC_UnTrack(self);
    port_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int port_init(Port *self, PyObject *args, PyObject *kwds)
{
    PyObject *loads, *stores, *on_error;
    static char *names[] = { "loads", "stores", "on_error", NULL };
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O!O", names, &PyTuple_Type, &loads,
                                     &PyTuple_Type, &stores, &on_error)) {
        return -1;
    }
    if (PyTuple_GET_SIZE(loads) != 4 || PyTuple_GET_SIZE(stores) != 4) {
        PyErr_SetString(PyExc_ValueError, "Port needs 4 loads and 4 stores (1, 2, 4, 8 bytes)");
        return -1;
    }
    for (int i = 0; i < 4; i++) {
        if (!PyCallable_Check(PyTuple_GET_ITEM(loads, i))
            || !PyCallable_Check(PyTuple_GET_ITEM(stores, i))) {
            PyErr_SetString(PyExc_TypeError, "Port loads and stores must be callable");
            return -1;
        }
    }
    if (!PyCallable_Check(on_error)) {
        PyErr_SetString(PyExc_TypeError, "Port on_error must be callable");
        return -1;
    }
    port_clear(self);
    for (int i = 0; i < 4; i++) {
        self->loads[i] = Py_NewRef(PyTuple_GET_ITEM(loads, i));
        self->stores[i] = Py_NewRef(PyTuple_GET_ITEM(stores, i));
    }
    self->on_error = Py_NewRef(on_error);
    return 0;
}

static PyMemberDef port_members[] = {
    { "busy", T_INT, offsetof(Port, busy), READONLY,
      "guest accesses in progress (callbacks running)" },
    { "active", T_ULONGLONG, offsetof(Port, active), READONLY,
      "guest address of the innermost access in progress" },
    { NULL, 0, 0, 0, NULL },
};

PyTypeObject PortType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pymem._ucglue.Port",
    .tp_basicsize = sizeof(Port),
    .tp_dealloc = (destructor)port_dealloc,
    .tp_traverse = (traverseproc)port_traverse,
    .tp_clear = (inquiry)port_clear,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Port(loads, stores, on_error): a binding's entry into its address space.",
    .tp_init = (initproc)port_init,
    .tp_new = PyType_GenericNew,
    .tp_members = port_members,
};

/* The pending exception goes to on_error with its traceback attached, so it
 * can be raised again later (from uc.emu_start) as it was raised here. */
static void report_error(Port *p, uint64_t addr, unsigned size, int is_write)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb && value) {
        PyException_SetTraceback(value, tb);
    }
    PyObject *args[4] = { value ? value : Py_None, PyLong_FromUnsignedLongLong(addr),
                          PyLong_FromUnsignedLong(size), PyBool_FromLong(is_write) };
    PyObject *got = args[1] && args[2]
                    ? PyObject_Vectorcall(p->on_error, args, 4, NULL) : NULL;
    if (!got) {
        /* Nowhere to raise it: unicorn is between us and the caller. */
        PyErr_WriteUnraisable(p->on_error);
    }
    Py_XDECREF(got);
    Py_XDECREF(args[1]);
    Py_XDECREF(args[2]);
    Py_DECREF(args[3]);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
}

/* With the GIL held. */
static uint64_t port_load(Port *p, uint64_t addr, unsigned size)
{
    int i = size_index(size);
    uint64_t value = 0;
    if (i < 0) {
        PyErr_Format(PyExc_ValueError, "unicorn asked for a %u-byte access", size);
        report_error(p, addr, size, 0);
        return 0;
    }
    PyObject *a = PyLong_FromUnsignedLongLong(addr);
    unsigned long long outer = p->active;
    p->busy++;
    p->active = addr;
    PyObject *got = a ? PyObject_CallOneArg(p->loads[i], a) : NULL;
    p->busy--;
    p->active = outer;
    Py_XDECREF(a);
    if (got) {
        value = PyLong_AsUnsignedLongLongMask(got);
        Py_DECREF(got);
    }
    if (PyErr_Occurred()) {
        report_error(p, addr, size, 0);
        value = 0;
    }
    return value;
}

static void port_store(Port *p, uint64_t addr, unsigned size, uint64_t value)
{
    int i = size_index(size);
    if (i < 0) {
        PyErr_Format(PyExc_ValueError, "unicorn asked for a %u-byte access", size);
        report_error(p, addr, size, 1);
        return;
    }
    if (size < 8) {
        value &= (UINT64_C(1) << (8 * size)) - 1;
    }
    PyObject *args[2] = { PyLong_FromUnsignedLongLong(addr), PyLong_FromUnsignedLongLong(value) };
    unsigned long long outer = p->active;
    p->busy++;
    p->active = addr;
    PyObject *got = args[0] && args[1]
                    ? PyObject_Vectorcall(p->stores[i], args, 2, NULL) : NULL;
    p->busy--;
    p->active = outer;
    Py_XDECREF(args[0]);
    Py_XDECREF(args[1]);
    Py_XDECREF(got);
    if (PyErr_Occurred()) {
        report_error(p, addr, size, 1);
    }
}

static int window_traverse(Window *self, visitproc visit, void *arg)
{
    Py_VISIT(self->port);
    return 0;
}

static int window_clear(Window *self)
{
    Py_CLEAR(self->port);
    return 0;
}

static void window_dealloc(Window *self)
{
    PyObject_GC_UnTrack(self);
    window_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int window_init(Window *self, PyObject *args, PyObject *kwds)
{
    PyObject *port;
    unsigned long long base;
    static char *names[] = { "port", "base", NULL };
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!K", names, &PortType, &port, &base)) {
        return -1;
    }
    Py_XSETREF(self->port, (Port *)Py_NewRef(port));
    self->base = base;
    return 0;
}

static PyMemberDef window_members[] = {
    { "base", T_ULONGLONG, offsetof(Window, base), READONLY, "guest address of offset 0" },
    { NULL, 0, 0, 0, NULL },
};

PyTypeObject WindowType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pymem._ucglue.Window",
    .tp_basicsize = sizeof(Window),
    .tp_dealloc = (destructor)window_dealloc,
    .tp_traverse = (traverseproc)window_traverse,
    .tp_clear = (inquiry)window_clear,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Window(port, base): the user data of one unicorn MMIO mapping.",
    .tp_init = (initproc)window_init,
    .tp_new = PyType_GenericNew,
    .tp_members = window_members,
};

/* unicorn's uc_cb_mmio_read_t and uc_cb_mmio_write_t. */
uint64_t ucglue_mmio_read(void *uc, uint64_t offset, unsigned size, void *user)
{
    Window *w = (Window *)user;
    (void)uc;
    PyGILState_STATE gil = PyGILState_Ensure();
    uint64_t value = w->port ? port_load(w->port, w->base + offset, size) : 0;
    PyGILState_Release(gil);
    return value;
}

void ucglue_mmio_write(void *uc, uint64_t offset, unsigned size, uint64_t value, void *user)
{
    Window *w = (Window *)user;
    (void)uc;
    PyGILState_STATE gil = PyGILState_Ensure();
    if (w->port) {
        port_store(w->port, w->base + offset, size, value);
    }
    PyGILState_Release(gil);
}

/* unicorn's uc_cb_eventmem_t for UC_HOOK_MEM_WRITE_PROT, user data a Port: a
 * store to a page mapped read-only (ROM, a read-only alias, a ROM device in
 * romd mode) goes to the address space, which drops it, sends it to the
 * device, or answers a bus error (then on_error stops the guest).  Handled
 * either way: unicorn then discards the store, the page being read-only. */
static bool write_prot(void *uc, int type, uint64_t address, int size, int64_t value,
                       void *user)
{
    (void)uc;
    (void)type;
    PyGILState_STATE gil = PyGILState_Ensure();
    port_store((Port *)user, address, (unsigned)size, (uint64_t)value);
    PyGILState_Release(gil);
    return true;
}

/*
 * A DirtyRange marks the pages of a RAM region that guest stores reach
 * through one unicorn mapping: a UC_HOOK_MEM_WRITE hook limited to the
 * mapping, with a DirtyRange as user data, added only while the region is
 * logged.  The bytes are the region's dirty log (pymem/dirty.py), kept alive
 * by `keep`; bits are set atomically, as csrc/access.c sets them.
 */
typedef struct {
    PyObject_HEAD
    uint8_t *dirty;
    unsigned long long start;      /* guest address of the mapping */
    unsigned long long size;       /* bytes mapped */
    unsigned long long offset;     /* offset in the region of `start` */
    unsigned page_bits;
    unsigned mask;
    PyObject *keep;
} DirtyRange;

static int dirty_traverse(DirtyRange *self, visitproc visit, void *arg)
{
    Py_VISIT(self->keep);
    return 0;
}

static int dirty_clear(DirtyRange *self)
{
    Py_CLEAR(self->keep);
    return 0;
}

static void dirty_dealloc(DirtyRange *self)
{
    PyObject_GC_UnTrack(self);
    dirty_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int dirty_init(DirtyRange *self, PyObject *args, PyObject *kwds)
{
    unsigned long long dirty, start, size, offset;
    unsigned page_bits, mask;
    PyObject *keep;
    static char *names[] = { "dirty", "start", "size", "offset", "page_bits", "mask",
                             "keep", NULL };
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "KKKKIIO", names, &dirty, &start, &size,
                                     &offset, &page_bits, &mask, &keep)) {
        return -1;
    }
    if (!dirty || !size || page_bits > 30 || mask > 0xff) {
        PyErr_SetString(PyExc_ValueError, "DirtyRange: bad dirty bytes, size, page bits or mask");
        return -1;
    }
    self->dirty = (uint8_t *)(uintptr_t)dirty;
    self->start = start;
    self->size = size;
    self->offset = offset;
    self->page_bits = page_bits;
    self->mask = mask;
    Py_XSETREF(self->keep, Py_NewRef(keep));
    return 0;
}

PyTypeObject DirtyRangeType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pymem._ucglue.DirtyRange",
    .tp_basicsize = sizeof(DirtyRange),
    .tp_dealloc = (destructor)dirty_dealloc,
    .tp_traverse = (traverseproc)dirty_traverse,
    .tp_clear = (inquiry)dirty_clear,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "DirtyRange(dirty, start, size, offset, page_bits, mask, keep).",
    .tp_init = (initproc)dirty_init,
    .tp_new = PyType_GenericNew,
};

/* unicorn's uc_cb_hookmem_t for UC_HOOK_MEM_WRITE; no Python. */
void ucglue_dirty_write(void *uc, int type, uint64_t address, int size, int64_t value,
                        void *user)
{
    DirtyRange *d = (DirtyRange *)user;
    (void)uc;
    (void)type;
    (void)value;
    if (!d->dirty || size <= 0 || address < d->start || address - d->start >= d->size) {
        return;
    }
    uint64_t first = address - d->start;
    uint64_t last = first + (uint64_t)size - 1;
    if (last >= d->size) {
        last = d->size - 1;   /* the rest is another mapping's */
    }
    uint8_t mask = (uint8_t)d->mask;
    for (uint64_t p = (d->offset + first) >> d->page_bits;
         p <= (d->offset + last) >> d->page_bits; p++) {
        if ((__atomic_load_n(&d->dirty[p], __ATOMIC_RELAXED) & mask) != mask) {
            __atomic_or_fetch(&d->dirty[p], mask, __ATOMIC_RELAXED);
        }
    }
}

static PyObject *callbacks(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    return Py_BuildValue("{sKsKsKsK}",
                         "mmio_read", (unsigned long long)(uintptr_t)ucglue_mmio_read,
                         "mmio_write", (unsigned long long)(uintptr_t)ucglue_mmio_write,
                         "write_prot", (unsigned long long)(uintptr_t)write_prot,
                         "dirty_write", (unsigned long long)(uintptr_t)ucglue_dirty_write);
}

static PyMethodDef module_methods[] = {
    { "callbacks", callbacks, METH_NOARGS,
      "callbacks() -> {name: address} of the C callbacks unicorn is given" },
    { "changed_spans", ucplan_changed_spans, METH_VARARGS,
      "changed_spans(old, old_n, new, new_n, page) -> [(lo, hi)] where two views differ" },
    { "plan", ucplan_plan, METH_VARARGS,
      "plan(ranges, n, first, last, page) -> the unicorn mappings [first, last] needs" },
    { NULL, NULL, 0, NULL },
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "pymem._ucglue",
    "C callbacks for unicorn (see csrc/ext/ucglue.c and pymem/unicorn.py).",
    -1, module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__ucglue(void)
{
    if (PyType_Ready(&PortType) < 0 || PyType_Ready(&WindowType) < 0
        || PyType_Ready(&DirtyRangeType) < 0 || PyType_Ready(&MapperType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m && (PyModule_AddObjectRef(m, "Port", (PyObject *)&PortType) < 0
              || PyModule_AddObjectRef(m, "Window", (PyObject *)&WindowType) < 0
              || PyModule_AddObjectRef(m, "DirtyRange", (PyObject *)&DirtyRangeType) < 0
              || PyModule_AddObjectRef(m, "Mapper", (PyObject *)&MapperType) < 0)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
