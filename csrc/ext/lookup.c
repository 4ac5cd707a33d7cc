/*
 * lookup.c - the dispatch builtins: `lookup` (an address to its section
 * index), `translate` (section, offset in the region, length inside it) and
 * `section` (the section's region object, for the Python slow paths), and
 * the result types they answer with, Translation and SectionAt.
 */
#include "fastpath.h"

static PyStructSequence_Field section_fields[] = {
    { "region", "the region object (None: unassigned space)" },
    { "offset", "the address's offset in the region" },
    { "len", "how much of the asked length stays inside the section" },
    { "flags", "the section's PM_SECTION_* flags" },
    { NULL, NULL },
};

static PyStructSequence_Desc section_desc = {
    "pymem.SectionAt",
    "The section under an address in an address space's current view.",
    section_fields, 4,
};

static PyTypeObject *SectionAtType;

static PyStructSequence_Field translation_fields[] = {
    { "section", "the section index" },
    { "offset_in_region", "the address's offset in the section's region" },
    { "length", "how much of the asked length stays inside the section" },
    { NULL, NULL },
};

static PyStructSequence_Desc translation_desc = {
    "pymem.Translation",
    "What translate answers: section, offset in its region, length inside it.",
    translation_fields, 3,
};

static PyTypeObject *TranslationType;

/*
 * Translations are made and dropped once per `translate` call, and CPython's
 * PyStructSequence_New and its dealloc look the field counts up in the
 * type's dict every time (n_fields, n_sequence_fields: ~540 instructions, 40%
 * of a call on 3.11).  A Translation has exactly its 3 visible fields, so it
 * is allocated here as the tuple-shaped object a struct sequence is, and freed
 * by translation_dealloc, which does what the generic dealloc does for 3
 * fields.  It stays a struct sequence in every other respect.
 */
#define TRANSLATION_FIELDS 3

static PyObject *translation_new(uint32_t section, uint64_t offset, uint64_t length)
{
    PyObject *items[TRANSLATION_FIELDS] = {
        PyLong_FromUnsignedLong(section), PyLong_FromUnsignedLongLong(offset),
        PyLong_FromUnsignedLongLong(length) };
    if (!items[0] || !items[1] || !items[2]) {
        for (int i = 0; i < TRANSLATION_FIELDS; i++) {
            Py_XDECREF(items[i]);
        }
        return NULL;
    }
    PyStructSequence *t = PyObject_GC_NewVar(PyStructSequence, TranslationType,
                                             TRANSLATION_FIELDS);
    if (!t) {
        for (int i = 0; i < TRANSLATION_FIELDS; i++) {
            Py_DECREF(items[i]);
        }
        return NULL;
    }
    for (int i = 0; i < TRANSLATION_FIELDS; i++) {
        t->ob_item[i] = items[i];
    }
    PyObject_GC_Track(t);
    return (PyObject *)t;
}

static void translation_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    for (int i = 0; i < TRANSLATION_FIELDS; i++) {
        Py_XDECREF(((PyStructSequence *)self)->ob_item[i]);
    }
    PyObject_GC_Del(self);
    Py_DECREF(tp);   /* a heap type: each instance holds a reference */
}

PyObject *fp_call_lookup(PyObject *self_, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames)
{
    static const char *const names[] = { "addr" };
    Bound *self = (Bound *)self_;
    CHECK_LIVE(self);
    PyObject *arg;
    uint64_t addr;
    /* lookup(addr), positional, is the call to be fast; keywords and
     * mistakes go through the general parser. */
    if (fp_positional_addresses(args, nargs, kwnames, 1, 1, 1, &addr) < 0) {
        if (fp_parse_args("lookup", names, 1, 1, args, nargs, kwnames, &arg) < 0) {
            return NULL;
        }
        if (as_address(arg, &addr) < 0) {
            return fp_address_error("address", arg);
        }
    }
    return PyLong_FromUnsignedLong(((lookup_fn)self->fn)(self->obj, addr));
}

PyObject *fp_call_translate(PyObject *self_, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames)
{
    static const char *const names[] = { "addr", "length" };
    Bound *self = (Bound *)self_;
    CHECK_LIVE(self);
    uint64_t a[2] = { 0, 1 }, offset, plen;   /* (addr, length=1) */
    PyObject *got[2];
    if (fp_positional_addresses(args, nargs, kwnames, 1, 2, 2, a) < 0) {
        if (fp_parse_args("translate", names, 1, 2, args, nargs, kwnames, got) < 0) {
            return NULL;
        }
        if (as_address(got[0], &a[0]) < 0) {
            return fp_address_error("address", got[0]);
        }
        if (got[1] && as_address(got[1], &a[1]) < 0) {
            return fp_address_error("length", got[1]);
        }
    }
    uint64_t addr = a[0], len = a[1];
    uint32_t s = ((translate_fn)self->fn)(self->obj, addr, len, &offset, &plen);
    return translation_new(s, offset, plen);
}

/*
 * (addr, size): the section under addr, with its region object.  The region
 * is the section's `user` pointer, alive while its view is; the read-side
 * section spans the lookup and the incref, so the view cannot be reclaimed
 * in between (the reclaimer waits for us without the GIL).
 */
PyObject *fp_call_section(PyObject *self_, PyObject *const *args, Py_ssize_t nargs)
{
    Bound *self = (Bound *)self_;
    CHECK_LIVE(self);
    uint64_t addr, len;
    pm_access acc;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "expected (addr, size), got %zd arguments", nargs);
        return NULL;
    }
    if (as_address(args[0], &addr) < 0) {
        return fp_address_error("address", args[0]);
    }
    if (as_address(args[1], &len) < 0) {
        return fp_address_error("length", args[1]);
    }
    self->read_lock();
    ((section_fn)self->fn)(self->obj, addr, len, &acc);
    PyObject *region = acc.user ? (PyObject *)acc.user : Py_None;
    Py_INCREF(region);
    self->read_unlock();
    PyObject *t = PyStructSequence_New(SectionAtType);
    if (!t) {
        Py_DECREF(region);
        return NULL;
    }
    PyStructSequence_SET_ITEM(t, 0, region);
    PyStructSequence_SET_ITEM(t, 1, PyLong_FromUnsignedLongLong(acc.offset));
    PyStructSequence_SET_ITEM(t, 2, PyLong_FromUnsignedLongLong(acc.len));
    PyStructSequence_SET_ITEM(t, 3, PyLong_FromUnsignedLong(acc.flags));
    if (PyErr_Occurred()) {
        Py_DECREF(t);
        return NULL;
    }
    return t;
}

/*
 * AddressSpace.translate(addr, length=1, is_write=False) where it needs no
 * Python: a positional call landing in a region's section that is not an
 * IOMMU.  It answers what the Python method does, (region, offset in it,
 * how much of length stays inside the section), as a plain tuple.  Anything
 * else is the method's (the fallback): keywords, arguments it must check or
 * refuse, IOMMU translation, and unassigned space, which is also all a
 * destroyed space shows, so the method raises for that as before.  The
 * read-side section spans the lookup and the incref, as in `section`.
 */
PyObject *fp_call_space_translate(PyObject *self_, PyObject *const *args, Py_ssize_t nargs,
                                  PyObject *kwnames)
{
    Bound *self = (Bound *)self_;
    CHECK_LIVE(self);
    uint64_t a[2] = { 0, 1 };   /* (addr, length=1) */
    pm_access acc;
    SLOW_UNLESS(fp_positional_addresses(args, nargs, kwnames, 1, 3, 2, a) == 0);
    SLOW_UNLESS(nargs < 3 || PyBool_Check(args[2]));
    uint64_t addr = a[0], len = a[1];
    SLOW_UNLESS(in_space(addr, len ? len : 1));
    self->read_lock();
    ((section_fn)self->fn)(self->obj, addr, len, &acc);
    PyObject *region = (PyObject *)acc.user;
    int direct = region && !(acc.flags & PM_SECTION_IOMMU);
    if (direct) {
        Py_INCREF(region);
    }
    self->read_unlock();
    SLOW_UNLESS(direct);
    PyObject *t = PyTuple_New(3);
    if (!t) {
        Py_DECREF(region);
        return NULL;
    }
    PyTuple_SET_ITEM(t, 0, region);
    PyTuple_SET_ITEM(t, 1, PyLong_FromUnsignedLongLong(acc.offset));
    PyTuple_SET_ITEM(t, 2, PyLong_FromUnsignedLongLong(acc.len));
    if (PyErr_Occurred()) {
        Py_DECREF(t);
        return NULL;
    }
    return t;
}

/* Make the result types and add them to the module. */
int fp_lookup_init(PyObject *module)
{
    TranslationType = PyStructSequence_NewType(&translation_desc);
    if (!TranslationType) {
        return -1;
    }
    /* Sized for translation_new; set before any instance exists. */
    if (TranslationType->tp_basicsize != sizeof(PyStructSequence) - sizeof(PyObject *)
        || TranslationType->tp_itemsize != sizeof(PyObject *)) {
        PyErr_SetString(PyExc_SystemError, "unexpected struct sequence layout");
        return -1;
    }
    TranslationType->tp_dealloc = translation_dealloc;
    SectionAtType = PyStructSequence_NewType(&section_desc);
    if (!SectionAtType) {
        return -1;
    }
    if (PyModule_AddObjectRef(module, "Translation", (PyObject *)TranslationType) < 0 ||
        PyModule_AddObjectRef(module, "SectionAt", (PyObject *)SectionAtType) < 0) {
        return -1;
    }
    return 0;
}
