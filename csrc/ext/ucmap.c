/*
 * ucmap.c - the binding's unicorn map, kept in C (part of `pymem._ucglue`):
 * a Mapper records what a binding mapped into one unicorn engine and, at a
 * commit, remaps where the space's view changed with one call from Python:
 * the changed spans (ucplan.c), widened to the mappings they touch, each
 * unmapped and mapped again from the new view (RAM and ROM zero-copy onto
 * the regions' memory, the rest MMIO through ucglue.c's callbacks).
 *
 * unicorn is not linked: pymem/unicorn.py hands in the addresses of the
 * library functions it loaded through ctypes (uc_mem_unmap, uc_mem_map_ptr,
 * ...), with the signatures unicorn.h gives them (declared below).  Called
 * with the GIL held, as the binding's listener is; unicorn's own calls are
 * short and do not release it.
 *
 * The record stays true whatever fails: a mapping is in `blocks` exactly
 * when unicorn has it.  A mapping unicorn refuses (or whose read-only
 * protection or dirty-log hook fails, then unmapped again) is left out, the
 * rest of the plan is still applied, and the first failure is raised at the
 * end naming its pages.
 */
#include "ucglue.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <structmember.h>

typedef int (*uc_unmap_fn)(void *uc, uint64_t address, uint64_t size);
typedef int (*uc_map_ptr_fn)(void *uc, uint64_t address, uint64_t size, uint32_t perms,
                             void *ptr);
typedef int (*uc_protect_fn)(void *uc, uint64_t address, uint64_t size, uint32_t perms);
typedef int (*uc_mmio_map_fn)(void *uc, uint64_t address, uint64_t size, void *read_cb,
                              void *user_read, void *write_cb, void *user_write);
typedef int (*uc_hook_add_fn)(void *uc, size_t *hook, int type, void *callback, void *user,
                              uint64_t begin, uint64_t end, ...);
typedef int (*uc_hook_del_fn)(void *uc, size_t hook);
typedef int (*uc_emu_stop_fn)(void *uc);
typedef const char *(*uc_strerror_fn)(int code);

enum { KIND_MMIO, KIND_RAM, KIND_ROM };

/* One unicorn mapping the binding made: [start, end). */
typedef struct {
    uint64_t start;
    u128 end;
    int kind;
    bool hooked;       /* a dirty-log hook `hook` covers it */
    size_t hook;
    PyObject *keep;    /* what unicorn's pointer needs alive: the Window, or the region */
    PyObject *dirty;   /* the hook's DirtyRange, or NULL */
} block;

typedef struct {
    PyObject_HEAD
    void *uc;
    uc_unmap_fn unmap;
    uc_map_ptr_fn map_ptr;
    uc_protect_fn protect;
    uc_mmio_map_fn mmio_map;
    uc_hook_add_fn hook_add;
    uc_hook_del_fn hook_del;
    uc_emu_stop_fn emu_stop;
    uc_strerror_fn strerror;
    uint32_t ram_perms, rom_perms;
    int hook_mem_write;
    uint64_t page;
    int can_resume;    /* the guest can be resumed after the instruction it stopped on */
    int resume;        /* apply stopped the guest to remap: resume it (the binding clears it) */
    int applying;
    Port *port;
    PyObject *dirty_for;   /* dirty_for(region, start, size, offset, mask) -> DirtyRange | None */
    PyObject *error;       /* the exception class a refused mapping raises */
    PyObject *name;        /* the address space's name, for messages */
    block *blocks;         /* in address order, not overlapping */
    Py_ssize_t n, cap;
    ucspans deferred;      /* spans kept for later: unicorn was inside an access there */
    ucplan_t plan;         /* scratch */
    PyObject **trash;      /* references dropped at the end of an apply */
    Py_ssize_t trash_n, trash_cap;
} Mapper;

static int mapper_traverse(Mapper *self, visitproc visit, void *arg)
{
    Py_VISIT(self->port);
    Py_VISIT(self->dirty_for);
    Py_VISIT(self->error);
    Py_VISIT(self->name);
    for (Py_ssize_t i = 0; i < self->n; i++) {
        Py_VISIT(self->blocks[i].keep);
        Py_VISIT(self->blocks[i].dirty);
    }
    return 0;
}

/* Drop the references without unmapping (unicorn may be gone already: a
 * binding the collector breaks up); the binding unmaps with unmap_all. */
static int mapper_clear(Mapper *self)
{
    Py_CLEAR(self->port);
    Py_CLEAR(self->dirty_for);
    Py_CLEAR(self->error);
    Py_CLEAR(self->name);
    Py_ssize_t n = self->n;
    self->n = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_CLEAR(self->blocks[i].keep);
        Py_CLEAR(self->blocks[i].dirty);
    }
    return 0;
}

static void mapper_dealloc(Mapper *self)
{
    PyObject_GC_UnTrack(self);
    mapper_clear(self);
    PyMem_Free(self->blocks);
    ucspans_free(&self->deferred);
    ucplan_free(&self->plan);
    PyMem_Free(self->trash);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int mapper_init(Mapper *self, PyObject *args, PyObject *kwds)
{
    unsigned long long uc, page, fn[8];
    unsigned ram_perms, rom_perms;
    int hook_mem_write, can_resume;
    PyObject *port, *dirty_for, *error, *name;
    static char *names[] = { "uc", "functions", "port", "perms", "hook_mem_write", "dirty_for",
                             "error", "name", "page", "can_resume", NULL };
    if (self->uc) {
        PyErr_SetString(PyExc_TypeError, "Mapper is set up once");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "K(KKKKKKKK)O!(II)iOOUKp:Mapper", names, &uc,
                                     &fn[0], &fn[1], &fn[2], &fn[3], &fn[4], &fn[5], &fn[6],
                                     &fn[7], &PortType, &port, &ram_perms, &rom_perms,
                                     &hook_mem_write, &dirty_for, &error, &name, &page,
                                     &can_resume)) {
        return -1;
    }
    if (!uc) {
        PyErr_SetString(PyExc_ValueError, "Mapper: no unicorn engine (uc is 0)");
        return -1;
    }
    for (int i = 0; i < 8; i++) {
        if (!fn[i]) {
            PyErr_Format(PyExc_ValueError, "Mapper: unicorn function %d has no address", i);
            return -1;
        }
    }
    if (!page || (page & (page - 1))) {
        PyErr_Format(PyExc_ValueError, "Mapper: page size %llu is not a power of two", page);
        return -1;
    }
    if (!PyCallable_Check(dirty_for) || !PyExceptionClass_Check(error)) {
        PyErr_SetString(PyExc_TypeError,
                        "Mapper: dirty_for must be callable and error an exception class");
        return -1;
    }
    self->uc = (void *)(uintptr_t)uc;
    self->unmap = (uc_unmap_fn)(uintptr_t)fn[0];
    self->map_ptr = (uc_map_ptr_fn)(uintptr_t)fn[1];
    self->protect = (uc_protect_fn)(uintptr_t)fn[2];
    self->mmio_map = (uc_mmio_map_fn)(uintptr_t)fn[3];
    self->hook_add = (uc_hook_add_fn)(uintptr_t)fn[4];
    self->hook_del = (uc_hook_del_fn)(uintptr_t)fn[5];
    self->emu_stop = (uc_emu_stop_fn)(uintptr_t)fn[6];
    self->strerror = (uc_strerror_fn)(uintptr_t)fn[7];
    self->ram_perms = ram_perms;
    self->rom_perms = rom_perms;
    self->hook_mem_write = hook_mem_write;
    self->page = page;
    self->can_resume = can_resume;
    self->port = (Port *)Py_NewRef(port);
    self->dirty_for = Py_NewRef(dirty_for);
    self->error = Py_NewRef(error);
    self->name = Py_NewRef(name);
    return 0;
}

/* Drop `obj` once the apply is over (a region's last reference may run
 * Python code; the block array is then consistent again). */
static void drop_later(Mapper *self, PyObject *obj)
{
    if (!obj) {
        return;
    }
    if (self->trash_n == self->trash_cap) {
        Py_ssize_t cap = self->trash_cap ? self->trash_cap * 2 : 16;
        PyObject **grown = PyMem_Realloc(self->trash, (size_t)cap * sizeof(*grown));
        if (!grown) {
            Py_DECREF(obj);   /* no room: drop it now */
            return;
        }
        self->trash = grown;
        self->trash_cap = cap;
    }
    self->trash[self->trash_n++] = obj;
}

static void empty_trash(Mapper *self)
{
    while (self->trash_n) {
        Py_DECREF(self->trash[--self->trash_n]);
    }
}

/* Unmap one block (its hook first) and let go of what it kept. */
static void release(Mapper *self, block *b)
{
    if (b->hooked) {
        self->hook_del(self->uc, b->hook);
    }
    self->unmap(self->uc, b->start, (uint64_t)(b->end - b->start));
    drop_later(self, b->keep);
    drop_later(self, b->dirty);
    b->keep = b->dirty = NULL;
}

/* The first block whose start is at or after addr. */
static Py_ssize_t first_at(const Mapper *self, u128 addr)
{
    Py_ssize_t a = 0, b = self->n;
    while (a < b) {
        Py_ssize_t mid = a + (b - a) / 2;
        if ((u128)self->blocks[mid].start < addr) {
            a = mid + 1;
        } else {
            b = mid;
        }
    }
    return a;
}

static int insert_block(Mapper *self, Py_ssize_t at, const block *b)
{
    if (self->n == self->cap) {
        Py_ssize_t cap = self->cap ? self->cap * 2 : 16;
        block *grown = PyMem_Realloc(self->blocks, (size_t)cap * sizeof(*grown));
        if (!grown) {
            PyErr_NoMemory();
            return -1;
        }
        self->blocks = grown;
        self->cap = cap;
    }
    if (at < self->n) {
        memmove(&self->blocks[at + 1], &self->blocks[at],
                (size_t)(self->n - at) * sizeof(block));
    }
    self->blocks[at] = *b;
    self->n++;
    return 0;
}

/* The first failure of an apply: a unicorn error code for pages, or a
 * Python exception (code -1). */
typedef struct {
    int failures;
    int code;
    uint64_t start;
    u128 end;
    PyObject *type, *value, *tb;
} failure;

static void fail(failure *f, int code, uint64_t start, u128 end)
{
    if (!f->failures++) {
        f->code = code;
        f->start = start;
        f->end = end;
        if (code < 0) {
            PyErr_Fetch(&f->type, &f->value, &f->tb);
        }
    } else if (code < 0) {
        PyErr_Clear();
    }
}

static void format_end(char *buf, size_t size, u128 end)
{
    if (end > UINT64_MAX) {
        snprintf(buf, size, "0x10000000000000000");
    } else {
        snprintf(buf, size, "%#" PRIx64, (uint64_t)end);
    }
}

/* Raise the first failure (-1), or return 0 if there was none. */
static int raise_failure(Mapper *self, failure *f)
{
    if (!f->failures) {
        return 0;
    }
    if (f->code < 0) {
        PyErr_Restore(f->type, f->value, f->tb);
        return -1;
    }
    char where[80], end[24];
    format_end(end, sizeof end, f->end);
    snprintf(where, sizeof where, "[%#" PRIx64 ", %s)", f->start, end);
    const char *why = self->strerror(f->code);
    if (f->failures > 1) {
        PyErr_Format(self->error, "unicorn: cannot map %s of address space %R: %s (%d); "
                     "%d more mappings failed and are left unmapped", where, self->name,
                     why ? why : "?", f->code, f->failures - 1);
    } else {
        PyErr_Format(self->error, "unicorn: cannot map %s of address space %R: %s (%d)", where,
                     self->name, why ? why : "?", f->code);
    }
    return -1;
}

/* unicorn's UC_ERR_ARG: what a mapping too large for unicorn's size is. */
#define UC_ERR_ARG 15

/* Map one mapping of the plan; on success fill *b and return 0, else
 * record the failure (nothing stays mapped) and return 1; -1 only for a
 * failure to allocate. */
static int map_one(Mapper *self, const ucmapping *m, const pm_range *ranges, block *b,
                   failure *f)
{
    u128 size128 = m->end - m->first;
    if (size128 > UINT64_MAX) {
        fail(f, UC_ERR_ARG, m->first, m->end);
        return 1;
    }
    uint64_t size = (uint64_t)size128;
    *b = (block){ m->first, m->end, KIND_MMIO, false, 0, NULL, NULL };
    if (m->index < 0) {
        Window *w = (Window *)WindowType.tp_alloc(&WindowType, 0);
        if (!w) {
            return -1;
        }
        w->port = (Port *)Py_NewRef(self->port);
        w->base = m->first;
        int err = self->mmio_map(self->uc, m->first, size, (void *)ucglue_mmio_read, w,
                                 (void *)ucglue_mmio_write, w);
        if (err) {
            Py_DECREF(w);
            fail(f, err, m->first, m->end);
            return 1;
        }
        b->keep = (PyObject *)w;
        return 0;
    }
    const pm_range *r = &ranges[m->index];
    bool writable = (m->flags & PM_SECTION_RAM)
                    && !(m->flags & (PM_SECTION_READONLY | PM_SECTION_ROMD));
    uint32_t perms = writable ? self->ram_perms : self->rom_perms;
    int err = self->map_ptr(self->uc, m->first, size, perms, (void *)(uintptr_t)m->host);
    if (err) {
        fail(f, err, m->first, m->end);
        return 1;
    }
    if (!writable) {
        /* Makes unicorn's pages read-only (TLB_DISCARD_WRITE): a store the
         * write-protect hook answered changes nothing. */
        err = self->protect(self->uc, m->first, size, perms);
        if (err) {
            self->unmap(self->uc, m->first, size);
            fail(f, err, m->first, m->end);
            return 1;
        }
    }
    b->kind = writable ? KIND_RAM : KIND_ROM;
    PyObject *region = (PyObject *)r->user;
    if (writable && m->dirty_mask) {
        PyObject *dirty = PyObject_CallFunction(self->dirty_for, "OKKKI", region,
                                                (unsigned long long)m->first,
                                                (unsigned long long)size,
                                                (unsigned long long)m->offset,
                                                (unsigned)m->dirty_mask);
        if (!dirty) {
            self->unmap(self->uc, m->first, size);
            fail(f, -1, m->first, m->end);
            return 1;
        }
        if (dirty != Py_None) {
            if (!PyObject_TypeCheck(dirty, &DirtyRangeType)) {
                Py_DECREF(dirty);
                self->unmap(self->uc, m->first, size);
                PyErr_SetString(PyExc_TypeError, "Mapper: dirty_for returned no DirtyRange");
                fail(f, -1, m->first, m->end);
                return 1;
            }
            err = self->hook_add(self->uc, &b->hook, self->hook_mem_write,
                                 (void *)ucglue_dirty_write, dirty, m->first,
                                 (uint64_t)(m->end - 1));
            if (err) {
                Py_DECREF(dirty);
                self->unmap(self->uc, m->first, size);
                fail(f, err, m->first, m->end);
                return 1;
            }
            b->hooked = true;
            b->dirty = dirty;
        } else {
            Py_DECREF(dirty);
        }
    }
    b->keep = Py_NewRef(region);
    return 0;
}

/* Remap the spans (sorted, merged) from the view's ranges. */
static int remap(Mapper *self, ucspans *spans, const pm_range *ranges, Py_ssize_t n)
{
    /* Widen each span to the mappings it overlaps, then merge again. */
    for (Py_ssize_t k = 0; k < spans->n; k++) {
        ucspan *s = &spans->at[k];
        Py_ssize_t i = first_at(self, (u128)s->first + 1) - 1;   /* last start <= first */
        if (i >= 0 && self->blocks[i].end > s->first) {
            s->first = self->blocks[i].start;
        }
        Py_ssize_t j = first_at(self, s->end) - 1;                /* last start < end */
        if (j >= 0 && self->blocks[j].end > s->end) {
            s->end = self->blocks[j].end;
        }
    }
    ucspans_merge(spans);
    Port *port = self->port;
    if (port->busy) {
        /* unicorn is inside an access to the mapping under `active`:
         * unmapping it now would free what unicorn uses once we return.  It
         * stays until emulation returns (or the next commit): an MMIO
         * mapping dispatches by address into the current view, so it stays
         * right; a read-only RAM one (a store to ROM or romd) reads its old
         * memory until then. */
        uint64_t active = port->active;
        Py_ssize_t out = 0;
        for (Py_ssize_t k = 0; k < spans->n; k++) {
            ucspan s = spans->at[k];
            if (s.first <= active && (u128)active < s.end) {
                if (ucspans_push(&self->deferred, s.first, s.end) < 0) {
                    return -1;
                }
                Py_ssize_t i = first_at(self, (u128)active + 1) - 1;
                bool mmio = i >= 0 && self->blocks[i].end > active
                            && self->blocks[i].kind == KIND_MMIO;
                if (!mmio && self->can_resume) {
                    /* A read-only RAM mapping would be read stale: stop the
                     * guest after this store (unicorn stops with the PC on
                     * it, the store done) and resume at the next one. */
                    self->resume = 1;
                    self->emu_stop(self->uc);
                }
            } else {
                spans->at[out++] = s;
            }
        }
        spans->n = out;
    }
    failure f = { 0 };
    int st = 0;
    for (Py_ssize_t k = 0; k < spans->n && !st; k++) {
        ucspan s = spans->at[k];
        Py_ssize_t lo = first_at(self, s.first), hi = first_at(self, s.end);
        for (Py_ssize_t i = lo; i < hi; i++) {
            release(self, &self->blocks[i]);
        }
        if (hi > lo) {
            memmove(&self->blocks[lo], &self->blocks[hi],
                    (size_t)(self->n - hi) * sizeof(block));
            self->n -= hi - lo;
        }
        if (ucplan_make(ranges, n, s.first, (uint64_t)(s.end - 1), self->page, &self->plan) < 0) {
            st = -1;
            break;
        }
        Py_ssize_t at = lo;
        for (Py_ssize_t p = 0; p < self->plan.n; p++) {
            block b;
            int got = map_one(self, &self->plan.at[p], ranges, &b, &f);
            if (got < 0 || (got == 0 && insert_block(self, at, &b) < 0)) {
                if (got == 0) {
                    release(self, &b);
                }
                st = -1;
                break;
            }
            at += got == 0;
        }
    }
    if (st < 0) {
        Py_XDECREF(f.type);
        Py_XDECREF(f.value);
        Py_XDECREF(f.tb);
        return -1;
    }
    return raise_failure(self, &f);
}

static int view_args(PyObject *addr_obj, Py_ssize_t n, const pm_range **out)
{
    unsigned long long addr = PyLong_AsUnsignedLongLong(addr_obj);
    if (PyErr_Occurred()) {
        return -1;
    }
    if (n < 0 || (n && !addr)) {
        PyErr_SetString(PyExc_ValueError, "Mapper: a view with ranges but no array");
        return -1;
    }
    *out = (const pm_range *)(uintptr_t)addr;
    return 0;
}

static int enter(Mapper *self)
{
    if (!self->uc) {
        PyErr_SetString(PyExc_ValueError, "Mapper is not set up");
        return -1;
    }
    if (self->applying) {
        PyErr_SetString(PyExc_RuntimeError, "Mapper: a remap from inside a remap");
        return -1;
    }
    self->applying = 1;
    return 0;
}

static void leave(Mapper *self)
{
    self->applying = 0;
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    empty_trash(self);
    PyErr_Restore(type, value, tb);
}

/* apply(old, old_n, new, new_n): remap where the views differ, and the
 * spans deferred earlier. */
static PyObject *mapper_apply(Mapper *self, PyObject *const *args, Py_ssize_t nargs)
{
    const pm_range *old, *new;
    Py_ssize_t old_n, new_n;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "apply(old, old_n, new, new_n)");
        return NULL;
    }
    old_n = PyLong_AsSsize_t(args[1]);
    new_n = PyLong_AsSsize_t(args[3]);
    if ((old_n == -1 || new_n == -1) && PyErr_Occurred()) {
        return NULL;
    }
    if (view_args(args[0], old_n, &old) < 0 || view_args(args[2], new_n, &new) < 0
        || enter(self) < 0) {
        return NULL;
    }
    ucspans spans = self->deferred;
    self->deferred = (ucspans){ 0 };
    int st = ucplan_changed(old, old_n, new, new_n, self->page, &spans);
    if (!st && spans.n) {
        ucspans_merge(&spans);
        st = remap(self, &spans, new, new_n);
    }
    ucspans_free(&spans);
    leave(self);
    return st < 0 ? NULL : Py_NewRef(Py_None);
}

/* apply_deferred(new, new_n): remap the spans deferred earlier. */
static PyObject *mapper_apply_deferred(Mapper *self, PyObject *const *args, Py_ssize_t nargs)
{
    const pm_range *new;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "apply_deferred(new, new_n)");
        return NULL;
    }
    Py_ssize_t new_n = PyLong_AsSsize_t(args[1]);
    if ((new_n == -1 && PyErr_Occurred()) || view_args(args[0], new_n, &new) < 0
        || enter(self) < 0) {
        return NULL;
    }
    ucspans spans = self->deferred;
    self->deferred = (ucspans){ 0 };
    int st = 0;
    if (spans.n) {
        ucspans_merge(&spans);
        st = remap(self, &spans, new, new_n);
    }
    ucspans_free(&spans);
    leave(self);
    return st < 0 ? NULL : Py_NewRef(Py_None);
}

/* unmap_all(): unmap everything (hooks first) and forget what was deferred. */
static PyObject *mapper_unmap_all(Mapper *self, PyObject *unused)
{
    (void)unused;
    if (enter(self) < 0) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < self->n; i++) {
        release(self, &self->blocks[i]);
    }
    self->n = 0;
    self->deferred.n = 0;
    leave(self);
    Py_RETURN_NONE;
}

/* mappings() -> [(start, end, "ram" | "rom" | "mmio")] in address order. */
static PyObject *mapper_mappings(Mapper *self, PyObject *unused)
{
    static const char *kinds[] = { "mmio", "ram", "rom" };
    (void)unused;
    PyObject *out = PyList_New(self->n);
    for (Py_ssize_t i = 0; out && i < self->n; i++) {
        const block *b = &self->blocks[i];
        PyObject *t = Py_BuildValue("(KNs)", (unsigned long long)b->start,
                                    ucglue_end_to_long(b->end), kinds[b->kind]);
        if (!t) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, i, t);
    }
    return out;
}

static PyObject *mapper_get_dirty_hooks(Mapper *self, void *closure)
{
    (void)closure;
    Py_ssize_t count = 0;
    for (Py_ssize_t i = 0; i < self->n; i++) {
        count += self->blocks[i].hooked;
    }
    return PyLong_FromSsize_t(count);
}

static PyObject *mapper_get_deferred(Mapper *self, void *closure)
{
    (void)closure;
    return PyLong_FromSsize_t(self->deferred.n);
}

static PyMethodDef mapper_methods[] = {
    { "apply", (PyCFunction)(void (*)(void))mapper_apply, METH_FASTCALL,
      "apply(old, old_n, new, new_n): remap where two views' ranges differ" },
    { "apply_deferred", (PyCFunction)(void (*)(void))mapper_apply_deferred, METH_FASTCALL,
      "apply_deferred(new, new_n): remap the spans kept for later" },
    { "unmap_all", (PyCFunction)mapper_unmap_all, METH_NOARGS,
      "unmap_all(): unmap everything mapped" },
    { "mappings", (PyCFunction)mapper_mappings, METH_NOARGS,
      "mappings() -> [(start, end, kind)] in address order" },
    { NULL, NULL, 0, NULL },
};

static PyGetSetDef mapper_getset[] = {
    { "dirty_hooks", (getter)mapper_get_dirty_hooks, NULL,
      "how many mappings carry a dirty-log hook", NULL },
    { "deferred", (getter)mapper_get_deferred, NULL,
      "how many spans wait for the access in progress to end", NULL },
    { NULL, NULL, NULL, NULL, NULL },
};

static PyMemberDef mapper_members[] = {
    { "resume", T_INT, offsetof(Mapper, resume), 0,
      "1 after a remap stopped the guest to be resumed at its next instruction" },
    { NULL, 0, 0, 0, NULL },
};

PyTypeObject MapperType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pymem._ucglue.Mapper",
    .tp_basicsize = sizeof(Mapper),
    .tp_dealloc = (destructor)mapper_dealloc,
    .tp_traverse = (traverseproc)mapper_traverse,
    .tp_clear = (inquiry)mapper_clear,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Mapper(uc, functions, port, perms, hook_mem_write, dirty_for, error, name, page,"
              " can_resume): a binding's unicorn map, remapped in C.",
    .tp_init = (initproc)mapper_init,
    .tp_new = PyType_GenericNew,
    .tp_methods = mapper_methods,
    .tp_getset = mapper_getset,
    .tp_members = mapper_members,
};
