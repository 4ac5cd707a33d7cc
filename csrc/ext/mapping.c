/*
 * mapping.c - QEMU's address_space_map/unmap as builtins, and the Mapping a
 * mapped view is a window of.
 *
 * Why: in Python, map made a memoryview slice and remembered it in a dict
 * by id, and unmap looked it up again: 1.6 us a pair, where #12 goal 6 asks
 * for <= 1 us.  Here a view's exporter is a Mapping holding what unmap needs
 * (the region and offset, the direction, the attributes, the address and
 * space for taps), so unmap finds it from the view itself, with no registry:
 * a view that is not a Mapping's, or is another space's, is refused by name.
 *
 * The map builtin takes RAM of one section (ROM and ROM devices in romd mode
 * too, for reading) when no tap wants plain memory, in one call.  Every
 * other map is the Python method's (pymem/access/_mapping.py): bounce
 * buffers for devices and unassigned space (as QEMU bounces), views that
 * span several sections of one region, IOMMU translation, bad arguments.
 * It makes its views with `mapping()` below, so one unmap takes them all.
 * The unmap builtin checks everything before it unmaps (a bad access_len
 * leaves the mapping for a retry), then hands the rest of a write, where
 * there is any (a bounce buffer to write out, dirty pages of a logged
 * region, taps), to its Python fallback, and releases the view.
 *
 * What a map+unmap pair costs beyond CPython's memoryview (a managed buffer
 * and a view, two GC objects, made and freed): a Mapping, its references,
 * one section lookup.  The region's memory is exported once per builtin (an
 * Export, shared by its mappings) rather than once per map; the view is
 * released through memoryview.release's C function, not a method call; and
 * a region's `_dirty_log` is read from its C field.
 */
#include "fastpath.h"

/* One export of some memory's bytes (PyBUF_WRITABLE), held by the mappings
 * made of it and by the map builtin's cache: released when the last goes.
 * Not GC-tracked: it references only the exporter, which cannot reach it. */
typedef struct {
    PyObject_HEAD
    Py_buffer memory;
} Export;

static void export_dealloc(Export *self)
{
    if (self->memory.obj) {
        PyBuffer_Release(&self->memory);
    }
    PyObject_Free(self);
}

static PyTypeObject ExportType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pymem._fastpath.MappingExport",
    .tp_basicsize = sizeof(Export),
    .tp_dealloc = (destructor)export_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "An export of memory that mapped views are windows of (csrc/ext/mapping.c).",
};

/* An Export of `memory`'s bytes; NULL with an error set (not writable). */
static PyObject *export_of(PyObject *memory)
{
    Export *e = PyObject_New(Export, &ExportType);
    if (!e) {
        return NULL;
    }
    if (PyObject_GetBuffer(memory, &e->memory, PyBUF_WRITABLE) < 0) {
        e->memory.obj = NULL;
        Py_DECREF(e);
        return NULL;
    }
    return (PyObject *)e;
}

typedef struct {
    PyObject_HEAD
    PyObject *export;    /* the Export of the bytes (a region's buffer, a bounce
                            buffer), held while the mapping lives */
    char *buf;           /* the mapped window: in export's memory, from start */
    Py_ssize_t len;
    PyObject *owner;     /* the pin of the space map() was called on */
    PyObject *region;    /* the MemoryRegion, or None: a bounce buffer */
    PyObject *attrs;     /* as map() was given them (None: unspecified) */
    PyObject *space;     /* RAM: the space `addr` is in (taps), else None */
    uint64_t offset;     /* in the region; a bounce buffer: the address */
    uint64_t addr;
    int is_write;
    int mapped;          /* until unmap */
    int by_python;       /* made by the Python path: its unmap takes the rest */
    PyObject *view;      /* borrowed: the view map() answered */
} Mapping;

static PyObject *str_dirty_log, *str_buffer;
/* memoryview.release's C function (METH_NOARGS), found once. */
static PyCFunction memoryview_release;

static int mapping_traverse(Mapping *self, visitproc visit, void *arg)
{
    Py_VISIT(self->owner);
    Py_VISIT(self->region);
    Py_VISIT(self->attrs);
    Py_VISIT(self->space);
    return 0;
}

/* The bytes stay exported until dealloc: a view of them may still be read
 * by another finalizer of the same garbage. */
static int mapping_clear(Mapping *self)
{
    Py_CLEAR(self->owner);
    Py_CLEAR(self->region);
    Py_CLEAR(self->attrs);
    Py_CLEAR(self->space);
    return 0;
}

static void mapping_dealloc(Mapping *self)
{
    PyObject_GC_UnTrack(self);
    mapping_clear(self);
    Py_XDECREF(self->export);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int mapping_getbuffer(Mapping *self, Py_buffer *view, int flags)
{
    return PyBuffer_FillInfo(view, (PyObject *)self, self->buf, self->len, 0, flags);
}

static PyBufferProcs mapping_as_buffer = {
    .bf_getbuffer = (getbufferproc)mapping_getbuffer,
};

static PyMemberDef mapping_members[] = {
    { "region", T_OBJECT, offsetof(Mapping, region), READONLY,
      "the MemoryRegion mapped, or None for a bounce buffer" },
    { "offset", T_ULONGLONG, offsetof(Mapping, offset), READONLY,
      "the offset in the region (a bounce buffer: the address)" },
    { "addr", T_ULONGLONG, offsetof(Mapping, addr), READONLY,
      "RAM: the address in `space`" },
    { "space", T_OBJECT, offsetof(Mapping, space), READONLY,
      "RAM: the AddressSpace whose taps are told, else None" },
    { "attrs", T_OBJECT, offsetof(Mapping, attrs), READONLY, "the MemTxAttrs, or None" },
    { "is_write", T_BOOL, offsetof(Mapping, is_write), READONLY, "mapped for writing" },
    { NULL, 0, 0, 0, NULL },
};

static PyTypeObject MappingType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pymem._fastpath.Mapping",
    .tp_basicsize = sizeof(Mapping),
    .tp_dealloc = (destructor)mapping_dealloc,
    .tp_traverse = (traverseproc)mapping_traverse,
    .tp_clear = (inquiry)mapping_clear,
    .tp_as_buffer = &mapping_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "What a view from AddressSpace.map is a window of (see csrc/ext/mapping.c).",
    .tp_members = mapping_members,
};

/*
 * A view of `length` bytes of `export` (an Export) from `start`, as a new
 * Mapping's.  References are taken; `attrs` and `space` may be NULL (None).
 * NULL with an error set (the window outside the memory).
 */
static PyObject *new_view(PyObject *owner, PyObject *export, Py_ssize_t start,
                          Py_ssize_t length, PyObject *region, uint64_t offset, int is_write,
                          PyObject *attrs, uint64_t addr, PyObject *space, int by_python)
{
    Py_buffer *memory = &((Export *)export)->memory;
    if (start < 0 || length < 0 || start > memory->len || length > memory->len - start) {
        PyErr_SetString(PyExc_ValueError, "mapping: the window is outside the memory");
        return NULL;
    }
    Mapping *m = PyObject_GC_New(Mapping, &MappingType);
    if (!m) {
        return NULL;
    }
    m->export = Py_NewRef(export);
    m->buf = (char *)memory->buf + start;
    m->len = length;
    m->owner = Py_NewRef(owner);
    m->region = Py_NewRef(region);
    m->attrs = Py_NewRef(attrs ? attrs : Py_None);
    m->space = Py_NewRef(space ? space : Py_None);
    m->offset = offset;
    m->addr = addr;
    m->is_write = is_write;
    m->mapped = 1;
    m->by_python = by_python;
    PyObject_GC_Track(m);
    PyObject *view = PyMemoryView_FromObject((PyObject *)m);
    m->view = view;
    Py_DECREF(m);   /* the view's buffer holds it */
    return view;
}

/* mapping(owner, memory, start, length, region, offset, is_write, attrs,
 * addr, space) -> memoryview: the Python path's views (see above). */
PyObject *fp_mapping(PyObject *module, PyObject *args)
{
    PyObject *owner, *memory, *region, *attrs, *space;
    Py_ssize_t start, length;
    unsigned long long offset, addr;
    int is_write;
    (void)module;
    if (!PyArg_ParseTuple(args, "OOnnOKpOKO:mapping", &owner, &memory, &start, &length,
                          &region, &offset, &is_write, &attrs, &addr, &space)) {
        return NULL;
    }
    PyObject *export = export_of(memory);
    if (!export) {
        return NULL;
    }
    PyObject *view = new_view(owner, export, start, length, region, offset, is_write, attrs,
                              addr, space, 1);
    Py_DECREF(export);
    return view;
}

/* The section flags a map reads: for writing, RAM that is neither read-only
 * nor a ROM device (QEMU's memory_access_is_direct); for reading, RAM or a
 * ROM device in romd mode; an IOMMU never. */
#define MAP_WRITE_MASK (PM_SECTION_RAM | PM_SECTION_READONLY | PM_SECTION_ROMD | PM_SECTION_IOMMU)

static int map_direct(uint32_t flags, int is_write)
{
    if (is_write) {
        return (flags & MAP_WRITE_MASK) == PM_SECTION_RAM;
    }
    return (flags & (PM_SECTION_RAM | PM_SECTION_ROMD)) && !(flags & PM_SECTION_IOMMU);
}

/* The region's memory (its `_buffer`) as an Export, remembered by region
 * id: a region's memory is fixed when it is made, and ids are never reused.
 * New ref. */
static PyObject *region_memory(Bound *self, PyObject *region, uint32_t id)
{
    if (self->map_region != id || !self->map_memory) {
        PyObject *buffer = PyObject_GetAttr(region, str_buffer);
        PyObject *memory = buffer ? export_of(buffer) : NULL;
        Py_XDECREF(buffer);
        if (!memory) {
            return NULL;
        }
        Py_XSETREF(self->map_memory, memory);
        self->map_region = id;
    }
    return Py_NewRef(self->map_memory);
}

/* map(addr, size, is_write, attrs=None) -> memoryview. */
PyObject *fp_call_map(PyObject *self_, PyObject *const *args, Py_ssize_t nargs,
                      PyObject *kwnames)
{
    Bound *self = (Bound *)self_;
    CHECK_LIVE(self);
    uint64_t a[2];
    SLOW_UNLESS(fp_positional_addresses(args, nargs, kwnames, 3, 4, 2, a) == 0
                && (args[2] == Py_True || args[2] == Py_False));
    uint64_t addr = a[0], size = a[1];
    int is_write = args[2] == Py_True;
    SLOW_UNLESS(in_space(addr, size) && size <= (uint64_t)PY_SSIZE_T_MAX
                && !(self->taps && self->taps->memory_taps));
    pm_access acc;
    self->read_lock();
    ((section_fn)self->fn)(self->obj, addr, size, &acc);
    PyObject *region = (PyObject *)acc.user;
    int direct = region && acc.len >= size && map_direct(acc.flags, is_write);
    if (direct) {
        Py_INCREF(region);
    }
    self->read_unlock();
    /* A destroyed space shows only unassigned space: the method raises. */
    SLOW_UNLESS(direct);
    PyObject *memory = region_memory(self, region, acc.region);
    if (!memory) {
        Py_DECREF(region);
        return NULL;
    }
    PyObject *view = new_view(self->keepalive, memory, (Py_ssize_t)acc.offset, (Py_ssize_t)size,
                              region, acc.offset, is_write, nargs == 4 ? args[3] : NULL, addr,
                              self->taps ? self->taps->space : NULL, 0);
    Py_DECREF(memory);
    Py_DECREF(region);
    return view;
}

/* The Mapping whose view `view` is, if map() on the space pinned by
 * `owner` made it and it is still mapped; else NULL. */
static Mapping *mapping_of(PyObject *view, PyObject *owner)
{
    if (!PyMemoryView_Check(view)
        || (((PyMemoryViewObject *)view)->flags & _Py_MEMORYVIEW_RELEASED)) {
        return NULL;
    }
    PyObject *base = PyMemoryView_GET_BASE(view);
    if (!base || Py_TYPE(base) != &MappingType) {
        return NULL;
    }
    Mapping *m = (Mapping *)base;
    return m->view == view && m->owner == owner && m->mapped ? m : NULL;
}

/* access_len as unmap takes it: None (or absent) for all n bytes, else an
 * int in [0, n].  -1 with the pymem error set. */
static int access_length(PyObject *arg, Py_ssize_t n, Py_ssize_t *out)
{
    if (!arg || arg == Py_None) {
        *out = n;
        return 0;
    }
    if (!PyLong_Check(arg) || PyBool_Check(arg)) {
        fp_pymem_error("ArgumentTypeError", PyExc_TypeError,
                       "unmap: access_len must be an int, not %s", Py_TYPE(arg)->tp_name);
        return -1;
    }
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(arg, &overflow);
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (overflow || v < 0 || v > n) {
        fp_pymem_error("InvalidArgumentError", PyExc_ValueError,
                       "unmap: access_len %S is outside the view's %zd bytes", arg, n);
        return -1;
    }
    *out = (Py_ssize_t)v;
    return 0;
}

/* Whether a write of the mapping's region needs the Python path at unmap:
 * its pages are logged (dirty.set_dirty), or a tap wants plain memory.
 * -1 with an error set. */
static int write_needs_python(Bound *self, Mapping *m)
{
    if (m->by_python || m->region == Py_None || (self->taps && self->taps->memory_taps)) {
        return 1;
    }
    /* A MemoryRegion's field, read in place; getattr for anything else. */
    PyObject *log = fp_region_dirty_log(m->region);
    if (log) {
        return PyObject_IsTrue(log);
    }
    log = PyObject_GetAttr(m->region, str_dirty_log);
    if (!log) {
        return -1;
    }
    int logged = PyObject_IsTrue(log);
    Py_DECREF(log);
    return logged;
}

/* unmap(view, access_len=None): see MapMixin.unmap. */
PyObject *fp_call_unmap(PyObject *self_, PyObject *const *args, Py_ssize_t nargs,
                        PyObject *kwnames)
{
    static const char *const names[] = { "view", "access_len" };
    Bound *self = (Bound *)self_;
    CHECK_LIVE(self);
    PyObject *got[2];
    if (!kwnames && (nargs == 1 || nargs == 2)) {
        got[0] = args[0];
        got[1] = nargs == 2 ? args[1] : NULL;
    } else if (fp_parse_args("unmap", names, 1, 2, args, nargs, kwnames, got) < 0) {
        return NULL;
    }
    PyObject *view = got[0];
    Mapping *m = mapping_of(view, self->keepalive);
    if (!m) {
        return fp_pymem_error("InvalidArgumentError", PyExc_ValueError,
                              "unmap: this view did not come from map() on this address "
                              "space");
    }
    /* Checked before the mapping is given up: a bad access_len leaves it
     * mapped, so the caller can retry (and a bounce buffer keeps its data). */
    Py_ssize_t len;
    if (access_length(got[1], m->len, &len) < 0) {
        return NULL;
    }
    Py_INCREF(m);   /* ours while the view is released */
    m->mapped = 0;
    int rest = m->is_write && len ? write_needs_python(self, m) : 0;
    PyObject *r = NULL;
    if (rest == 1) {
        PyObject *call[3] = { view, (PyObject *)m, PyLong_FromSsize_t(len) };
        r = call[2] ? PyObject_Vectorcall(self->fallback, call, 3, NULL) : NULL;
        Py_XDECREF(call[2]);
        Py_XDECREF(r);
    }
    if (rest == 0 || r) {
        r = memoryview_release(view, NULL);
    }
    Py_DECREF(m);
    return r;
}

int fp_mapping_init(void)
{
    str_dirty_log = PyUnicode_InternFromString("_dirty_log");
    str_buffer = PyUnicode_InternFromString("_buffer");
    if (!str_dirty_log || !str_buffer) {
        return -1;
    }
    for (PyMethodDef *d = PyMemoryView_Type.tp_methods; d && d->ml_name; d++) {
        if (strcmp(d->ml_name, "release") == 0 && d->ml_flags == METH_NOARGS) {
            memoryview_release = d->ml_meth;
        }
    }
    if (!memoryview_release) {
        PyErr_SetString(PyExc_RuntimeError, "pymem._fastpath: memoryview.release not found");
        return -1;
    }
    return PyType_Ready(&ExportType) < 0 ? -1 : PyType_Ready(&MappingType);
}
