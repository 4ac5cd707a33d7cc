/*
 * taps.c - access taps: callbacks told of the accesses of an address space,
 * one event per piece as the access path hands it out (a stretch of plain
 * memory, a device access, an unassigned stretch).
 *
 * Why in C: the builtins bound before a tap was added must tell it too, and
 * an address space with no tap must pay nothing.  So every access builtin
 * holds its space's TapSet and reads one counter after its access: zero, and
 * it returns as before.  The device path (device.c) tells the taps from C,
 * so a tap on MMIO costs one event object and one call, not the Python slow
 * path; the Python paths (pymem/access.py) tell them through TapSet.emit.
 *
 * Taps are held in a tuple replaced on every add and remove (with the GIL),
 * so a tap may add or remove taps, itself included, while it is being told:
 * the event goes to the taps installed when it started.  A tap that raises
 * stops the telling and the exception reaches the caller of the access,
 * which is already done (pymem/taps.py says so to users).
 */
#include "fastpath.h"

/* Region kinds, as pymem/region/kinds.py names them, and "unassigned". */
static const char *const kind_names[FP_KIND_COUNT] = {
    "ram", "rom", "ram_device", "rom_device", "io", "iommu", "unassigned",
};
static PyObject *kind_strings[FP_KIND_COUNT];
static PyObject *str_kind;

/* ------------------------------------------------------------------ Tap */

typedef struct {
    PyObject_HEAD
    PyObject *callback;
    uint32_t kinds;      /* FP_KIND_* bits it wants */
    int reads, writes;   /* which directions */
    int mmio_only;       /* only pieces that were not plain memory */
    uint64_t start, last;   /* the addresses it watches, inclusive */
} Tap;

static int tap_traverse(Tap *self, visitproc visit, void *arg)
{
    Py_VISIT(self->callback);
    return 0;
}

static int tap_clear(Tap *self)
{
    Py_CLEAR(self->callback);
    return 0;
}

static void tap_dealloc(Tap *self)
{
    PyObject_GC_UnTrack(self);
    tap_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *tap_get_callback(Tap *self, void *unused)
{
    (void)unused;
    return Py_NewRef(self->callback ? self->callback : Py_None);
}

static PyGetSetDef tap_getset[] = {
    { "callback", (getter)tap_get_callback, NULL, "the tap's callable", NULL },
    { NULL, NULL, NULL, NULL, NULL },
};

static PyTypeObject TapType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pymem._fastpath.Tap",
    .tp_basicsize = sizeof(Tap),
    .tp_dealloc = (destructor)tap_dealloc,
    .tp_traverse = (traverseproc)tap_traverse,
    .tp_clear = (inquiry)tap_clear,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "One installed tap: its callback and filters (see pymem/taps.py).",
    .tp_getset = tap_getset,
};

/* ---------------------------------------------------------- AccessEvent */

/* What a tap is told.  Integers are kept as C values and made into Python
 * ints only when read, so an event nobody looks at costs one allocation. */
typedef struct {
    PyObject_HEAD
    PyObject *space, *region, *attrs, *data;   /* data: NULL until asked */
    uint64_t addr, offset, value;
    uint32_t size;
    uint8_t kind, is_write, has_value, big_endian, mmio;
    int result;
} AccessEvent;

static int event_traverse(AccessEvent *self, visitproc visit, void *arg)
{
    Py_VISIT(self->space);
    Py_VISIT(self->region);
    Py_VISIT(self->attrs);
    return 0;
}

static int event_clear(AccessEvent *self)
{
    Py_CLEAR(self->space);
    Py_CLEAR(self->region);
    Py_CLEAR(self->attrs);
    Py_CLEAR(self->data);
    return 0;
}

static void event_dealloc(AccessEvent *self)
{
    PyObject_GC_UnTrack(self);
    event_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

#define EVENT_GET(name, expr)                                                  \
    static PyObject *event_get_##name(AccessEvent *self, void *unused)         \
    {                                                                          \
        (void)unused;                                                          \
        return expr;                                                           \
    }

EVENT_GET(space, Py_NewRef(self->space))
EVENT_GET(region, Py_NewRef(self->region ? self->region : Py_None))
EVENT_GET(attrs, Py_NewRef(self->attrs ? self->attrs : Py_None))
EVENT_GET(addr, PyLong_FromUnsignedLongLong(self->addr))
EVENT_GET(size, PyLong_FromUnsignedLong(self->size))
EVENT_GET(offset, PyLong_FromUnsignedLongLong(self->offset))
EVENT_GET(is_write, PyBool_FromLong(self->is_write))
EVENT_GET(mmio, PyBool_FromLong(self->mmio))
EVENT_GET(result, PyLong_FromLong(self->result))
/* The kind: found when a tap filtered on it, else asked of the region now. */
static PyObject *event_get_kind(AccessEvent *self, void *unused)
{
    (void)unused;
    if (self->kind < FP_KIND_COUNT) {
        return Py_NewRef(kind_strings[self->kind]);
    }
    if (!self->region || self->region == Py_None) {
        return Py_NewRef(kind_strings[FP_KIND_UNASSIGNED]);
    }
    return PyObject_GetAttr(self->region, str_kind);
}
EVENT_GET(value, self->has_value ? PyLong_FromUnsignedLongLong(self->value) : Py_NewRef(Py_None))

/* The bytes on the bus in address order: given by the path (long pieces) or
 * made from the value in the byte order it was carried in. */
static PyObject *event_get_data(AccessEvent *self, void *unused)
{
    (void)unused;
    if (!self->data) {
        uint8_t bytes[8];
        uint32_t n = self->size <= 8 ? self->size : 8;
        for (uint32_t i = 0; i < n; i++) {
            unsigned shift = 8 * (self->big_endian ? n - 1 - i : i);
            bytes[i] = (uint8_t)(self->value >> shift);
        }
        self->data = PyBytes_FromStringAndSize((const char *)bytes, n);
        if (!self->data) {
            return NULL;
        }
    }
    return Py_NewRef(self->data);
}

/* 0x-prefixed hex of v, as a str (PyUnicode_FromFormat has no %llx). */
static PyObject *hex_of(uint64_t v)
{
    PyObject *n = PyLong_FromUnsignedLongLong(v);
    PyObject *h = n ? PyNumber_ToBase(n, 16) : NULL;
    Py_XDECREF(n);
    return h;
}

static PyObject *event_repr(AccessEvent *self)
{
    PyObject *name = self->region && self->region != Py_None
                     ? PyObject_GetAttrString(self->region, "name")
                     : Py_NewRef(kind_strings[FP_KIND_UNASSIGNED]);
    PyObject *kind = name ? event_get_kind(self, NULL) : NULL;
    PyObject *space = kind ? PyObject_GetAttrString(self->space, "name") : NULL;
    PyObject *addr = space ? hex_of(self->addr) : NULL;
    PyObject *offset = addr ? hex_of(self->offset) : NULL;
    PyObject *r = NULL;
    if (offset) {
        r = PyUnicode_FromFormat("<AccessEvent %R %s %u bytes at %S: %R +%S (%S%s), result %d>",
                                 space, self->is_write ? "write" : "read",
                                 (unsigned)self->size, addr, name, offset, kind,
                                 self->mmio ? ", mmio" : "", self->result);
    }
    Py_XDECREF(name);
    Py_XDECREF(kind);
    Py_XDECREF(space);
    Py_XDECREF(addr);
    Py_XDECREF(offset);
    return r;
}

static PyGetSetDef event_getset[] = {
    { "space", (getter)event_get_space, NULL, "the AddressSpace the piece was made in", NULL },
    { "addr", (getter)event_get_addr, NULL, "the piece's address in `space`", NULL },
    { "size", (getter)event_get_size, NULL, "its length in bytes", NULL },
    { "is_write", (getter)event_get_is_write, NULL, "a write (True) or a read", NULL },
    { "region", (getter)event_get_region, NULL,
      "the MemoryRegion that answered it (None: unassigned space)", NULL },
    { "offset", (getter)event_get_offset, NULL, "the offset of `addr` in the region", NULL },
    { "kind", (getter)event_get_kind, NULL,
      "the region's kind (ram, rom, ram_device, rom_device, io, iommu) or 'unassigned'", NULL },
    { "mmio", (getter)event_get_mmio, NULL,
      "True for a device access or unassigned space, False for plain memory", NULL },
    { "value", (getter)event_get_value, NULL,
      "the value carried, for pieces of at most 8 bytes (a device's value in its byte "
      "order; a load or store's in the access's), else None", NULL },
    { "data", (getter)event_get_data, NULL, "the bytes carried, in address order", NULL },
    { "attrs", (getter)event_get_attrs, NULL,
      "the access's MemTxAttrs (None: unspecified)", NULL },
    { "result", (getter)event_get_result, NULL, "the piece's MemTxResult, as an int", NULL },
    { NULL, NULL, NULL, NULL, NULL },
};

static PyTypeObject AccessEventType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pymem.AccessEvent",
    .tp_basicsize = sizeof(AccessEvent),
    .tp_dealloc = (destructor)event_dealloc,
    .tp_traverse = (traverseproc)event_traverse,
    .tp_clear = (inquiry)event_clear,
    .tp_repr = (reprfunc)event_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "One piece of an access, as a tap is told of it (see pymem/taps.py).",
    .tp_getset = event_getset,
};

/* --------------------------------------------------------------- TapSet */

static int tapset_traverse(TapSet *self, visitproc visit, void *arg)
{
    Py_VISIT(self->space);
    Py_VISIT(self->taps);
    Py_VISIT(self->cached_region);
    Py_VISIT(self->spare);
    return 0;
}

static int tapset_clear(TapSet *self)
{
    Py_CLEAR(self->space);
    Py_CLEAR(self->taps);
    Py_CLEAR(self->cached_region);
    Py_CLEAR(self->spare);
    self->n = 0;
    self->memory_taps = 0;
    return 0;
}

static void tapset_dealloc(TapSet *self)
{
    PyObject_GC_UnTrack(self);
    tapset_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *tapset_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *space;
    if ((kwds && PyDict_GET_SIZE(kwds)) || !PyArg_ParseTuple(args, "O:TapSet", &space)) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "TapSet() takes no keywords");
        }
        return NULL;
    }
    TapSet *self = (TapSet *)type->tp_alloc(type, 0);
    if (!self) {
        return NULL;
    }
    self->space = Py_NewRef(space);
    self->taps = PyTuple_New(0);
    if (!self->taps) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

#define MEMORY_KINDS (FP_KIND_BIT(FP_KIND_RAM) | FP_KIND_BIT(FP_KIND_ROM)                 \
                      | FP_KIND_BIT(FP_KIND_ROM_DEVICE) | FP_KIND_BIT(FP_KIND_RAM_DEVICE))

/* Install `taps` (a new tuple, stolen) and recount. */
static void tapset_set(TapSet *self, PyObject *taps)
{
    Py_ssize_t n = PyTuple_GET_SIZE(taps), memory = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Tap *t = (Tap *)PyTuple_GET_ITEM(taps, i);
        memory += !t->mmio_only && (t->kinds & MEMORY_KINDS);
    }
    PyObject *old = self->taps;
    self->taps = taps;
    self->n = n;
    self->memory_taps = memory;
    Py_XDECREF(old);
}

/* add(callback, kinds, start, last, reads, writes, mmio_only) -> Tap.
 * Checked by pymem/taps.py; here only what C needs. */
static PyObject *tapset_add(TapSet *self, PyObject *args)
{
    PyObject *callback;
    unsigned int kinds;
    unsigned long long start, last;
    int reads, writes, mmio_only;
    if (!PyArg_ParseTuple(args, "OIKKppp:add", &callback, &kinds, &start, &last, &reads,
                          &writes, &mmio_only)) {
        return NULL;
    }
    if (!self->taps) {
        PyErr_SetString(PyExc_ReferenceError, "tap set was collected");
        return NULL;
    }
    if (!PyCallable_Check(callback)) {
        PyErr_SetString(PyExc_TypeError, "a tap must be callable");
        return NULL;
    }
    Tap *tap = PyObject_GC_New(Tap, &TapType);
    if (!tap) {
        return NULL;
    }
    tap->callback = Py_NewRef(callback);
    tap->kinds = kinds;
    tap->start = start;
    tap->last = last;
    tap->reads = reads;
    tap->writes = writes;
    tap->mmio_only = mmio_only;
    PyObject_GC_Track(tap);
    Py_ssize_t n = PyTuple_GET_SIZE(self->taps);
    PyObject *taps = PyTuple_New(n + 1);
    if (!taps) {
        Py_DECREF(tap);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyTuple_SET_ITEM(taps, i, Py_NewRef(PyTuple_GET_ITEM(self->taps, i)));
    }
    PyTuple_SET_ITEM(taps, n, Py_NewRef(tap));
    tapset_set(self, taps);
    return (PyObject *)tap;
}

/* remove(tap) -> bool: whether it was installed. */
static PyObject *tapset_remove(TapSet *self, PyObject *tap)
{
    if (!self->taps) {
        Py_RETURN_FALSE;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(self->taps), at = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (PyTuple_GET_ITEM(self->taps, i) == tap) {
            at = i;
        }
    }
    if (at < 0) {
        Py_RETURN_FALSE;
    }
    PyObject *taps = PyTuple_New(n - 1);
    if (!taps) {
        return NULL;
    }
    for (Py_ssize_t i = 0, j = 0; i < n; i++) {
        if (i != at) {
            PyTuple_SET_ITEM(taps, j++, Py_NewRef(PyTuple_GET_ITEM(self->taps, i)));
        }
    }
    tapset_set(self, taps);
    Py_RETURN_TRUE;
}

/* The FP_KIND_* of a region (None: unassigned), from its `kind`; the last
 * answer is kept, as the same region is usually asked again. */
static int region_kind(TapSet *self, PyObject *region)
{
    if (region == Py_None) {
        return FP_KIND_UNASSIGNED;
    }
    if (region == self->cached_region) {
        return self->cached_kind;
    }
    PyObject *kind = PyObject_GetAttr(region, str_kind);
    if (!kind) {
        return -1;
    }
    int found = -1;
    for (int i = 0; i < FP_KIND_COUNT && found < 0; i++) {
        if (kind == kind_strings[i] || PyUnicode_Compare(kind, kind_strings[i]) == 0) {
            found = i;
        }
    }
    Py_DECREF(kind);
    if (found < 0) {
        if (!PyErr_Occurred()) {
            PyErr_Format(PyExc_ValueError, "tap: region %R has no access kind", region);
        }
        return -1;
    }
    Py_XSETREF(self->cached_region, Py_NewRef(region));
    self->cached_kind = found;
    return found;
}

/*
 * The event for piece p.  Events are immutable to Python, so the last one is
 * reused when no tap kept it (the set holds the only reference): an
 * allocation and a free are most of what a do-nothing tap costs otherwise.
 */
static AccessEvent *make_event(TapSet *self, const fp_piece *p, int kind)
{
    AccessEvent *event = (AccessEvent *)self->spare;
    if (event && Py_REFCNT(event) == 1) {
        self->spare = NULL;
    } else {
        Py_CLEAR(self->spare);
        event = PyObject_GC_New(AccessEvent, &AccessEventType);
        if (!event) {
            return NULL;
        }
        event->space = Py_NewRef(self->space);
        event->region = event->attrs = event->data = NULL;
        PyObject_GC_Track(event);
    }
    event->region = Py_NewRef(p->region);
    event->attrs = p->attrs && p->attrs != Py_None ? Py_NewRef(p->attrs) : NULL;
    event->data = p->data ? Py_NewRef(p->data) : NULL;
    event->addr = p->addr;
    event->offset = p->offset;
    event->value = p->value;
    event->size = p->size;
    event->kind = (uint8_t)(kind < 0 ? FP_KIND_COUNT : kind);   /* COUNT: not yet known */
    event->is_write = (uint8_t)p->is_write;
    event->has_value = (uint8_t)p->has_value;
    event->big_endian = (uint8_t)p->big_endian;
    event->mmio = (uint8_t)p->mmio;
    event->result = p->result;
    return event;
}

/* Done with an event: kept as the spare if no tap holds it, without the
 * piece's objects (a spare must not keep a region alive). */
static void drop_event(TapSet *self, AccessEvent *event)
{
    if (Py_REFCNT(event) == 1 && !self->spare && self->space) {
        Py_CLEAR(event->region);
        Py_CLEAR(event->attrs);
        Py_CLEAR(event->data);
        self->spare = (PyObject *)event;
        return;
    }
    Py_DECREF(event);
}

int fp_tap_emit(TapSet *self, const fp_piece *p)
{
    PyObject *taps = self->taps;
    if (!taps || !self->n) {
        return 0;
    }
    Py_INCREF(taps);   /* a tap may change the set while being told */
    int kind = -1, rc = 0;
    const uint32_t all_kinds = FP_KIND_BIT(FP_KIND_COUNT) - 1;
    AccessEvent *event = NULL;
    uint64_t last = p->addr + (p->size ? p->size - 1 : 0);
    Py_ssize_t n = PyTuple_GET_SIZE(taps);
    for (Py_ssize_t i = 0; i < n; i++) {
        Tap *t = (Tap *)PyTuple_GET_ITEM(taps, i);
        if ((p->is_write ? !t->writes : !t->reads) || (t->mmio_only && !p->mmio)
            || last < t->start || p->addr > t->last) {
            continue;
        }
        /* The region's kind is looked up only for a tap that filters on it. */
        if (t->kinds != all_kinds) {
            if (kind < 0) {
                kind = region_kind(self, p->region);
                if (kind < 0) {
                    rc = -1;
                    break;
                }
            }
            if (!(t->kinds & FP_KIND_BIT(kind))) {
                continue;
            }
        }
        if (!event) {
            event = make_event(self, p, kind);
            if (!event) {
                rc = -1;
                break;
            }
        }
        PyObject *arg = (PyObject *)event;
        PyObject *r = PyObject_Vectorcall(t->callback, &arg, 1, NULL);
        if (!r) {
            rc = -1;
            break;
        }
        Py_DECREF(r);
    }
    if (event) {
        drop_event(self, event);
    }
    Py_DECREF(taps);
    return rc;
}

/* emit(addr, size, is_write, region, offset, value, data, big_endian, attrs,
 * result, mmio): tell the taps of a piece the Python path answered.  value
 * None: a piece longer than 8 bytes, whose bytes are `data`. */
static PyObject *tapset_emit(TapSet *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 11) {
        PyErr_Format(PyExc_TypeError, "emit takes 11 arguments, got %zd", nargs);
        return NULL;
    }
    fp_piece p;
    unsigned long long addr = PyLong_AsUnsignedLongLong(args[0]);
    unsigned long size = PyLong_AsUnsignedLong(args[1]);
    unsigned long long offset = PyLong_AsUnsignedLongLong(args[4]);
    long result = PyLong_AsLong(args[9]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    p.addr = addr;
    p.size = (uint32_t)size;
    p.is_write = PyObject_IsTrue(args[2]) == 1;
    p.region = args[3];
    p.offset = offset;
    p.has_value = args[5] != Py_None;
    p.value = p.has_value ? PyLong_AsUnsignedLongLongMask(args[5]) : 0;
    p.data = args[6] != Py_None ? args[6] : NULL;
    p.big_endian = PyObject_IsTrue(args[7]) == 1;
    p.attrs = args[8];
    p.result = (int)result;
    p.mmio = PyObject_IsTrue(args[10]) == 1;
    if (PyErr_Occurred() || fp_tap_emit(self, &p) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *tapset_get_taps(TapSet *self, void *unused)
{
    (void)unused;
    return Py_NewRef(self->taps ? self->taps : Py_None);
}

static PyObject *tapset_get_memory(TapSet *self, void *unused)
{
    (void)unused;
    return PyBool_FromLong(self->memory_taps != 0);
}

static PyMethodDef tapset_methods[] = {
    { "add", (PyCFunction)tapset_add, METH_VARARGS,
      "add(callback, kinds, start, last, reads, writes, mmio_only) -> Tap" },
    { "remove", (PyCFunction)tapset_remove, METH_O, "remove(tap) -> whether it was installed" },
    { "emit", (PyCFunction)(void (*)(void))tapset_emit, METH_FASTCALL,
      "emit(addr, size, is_write, region, offset, value, data, big_endian, attrs, result, "
      "mmio): tell the taps of one piece" },
    { NULL, NULL, 0, NULL },
};

static PyGetSetDef tapset_getset[] = {
    { "taps", (getter)tapset_get_taps, NULL, "the installed taps, oldest first", NULL },
    { "memory", (getter)tapset_get_memory, NULL,
      "whether a tap may want plain memory pieces", NULL },
    { NULL, NULL, NULL, NULL, NULL },
};

static PyTypeObject TapSetType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pymem._fastpath.TapSet",
    .tp_basicsize = sizeof(TapSet),
    .tp_dealloc = (destructor)tapset_dealloc,
    .tp_traverse = (traverseproc)tapset_traverse,
    .tp_clear = (inquiry)tapset_clear,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "TapSet(space): the taps of one address space (see csrc/ext/taps.c).",
    .tp_new = tapset_new,
    .tp_methods = tapset_methods,
    .tp_getset = tapset_getset,
};

int fp_tap_is_set(PyObject *obj)
{
    return Py_TYPE(obj) == &TapSetType;
}

int fp_taps_init(PyObject *module)
{
    str_kind = PyUnicode_InternFromString("kind");
    if (!str_kind) {
        return -1;
    }
    for (int i = 0; i < FP_KIND_COUNT; i++) {
        kind_strings[i] = PyUnicode_InternFromString(kind_names[i]);
        if (!kind_strings[i]) {
            return -1;
        }
    }
    if (PyType_Ready(&TapType) < 0 || PyType_Ready(&AccessEventType) < 0
        || PyType_Ready(&TapSetType) < 0) {
        return -1;
    }
    if (PyModule_AddObjectRef(module, "Tap", (PyObject *)&TapType) < 0
        || PyModule_AddObjectRef(module, "AccessEvent", (PyObject *)&AccessEventType) < 0
        || PyModule_AddObjectRef(module, "TapSet", (PyObject *)&TapSetType) < 0) {
        return -1;
    }
    return 0;
}
