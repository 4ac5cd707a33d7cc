/*
 * hostmem.c - `_fastpath.SlabAllocator`: page-aligned memory for small RAM and
 * ROM regions, carved from shared anonymous mappings (see pymem/hostmem.py
 * for why: zero-copy mapping into a CPU emulator needs whole host pages, and
 * one mmap per small region would exhaust the process's mappings).
 *
 * A slab is SLAB_PAGES pages of one private anonymous mapping, with a bitmap
 * of the pages handed out; allocate() takes the first run of free pages
 * that fits (newest slab first) and answers a HostBlock, an object exporting
 * exactly the bytes asked for.  When the last reference to a block goes
 * (its memoryviews hold it), its pages are dropped with MADV_DONTNEED (they
 * come back zeroed and cost no memory) and returned to the bitmap; a slab
 * with no page handed out is unmapped.
 *
 * No lock: every change runs with the GIL held and calls no Python code
 * between its first and last step, so threads (and a fork taken between two
 * bytecodes) always see the slabs whole.  Kept in C because the Python
 * version (a lock, a ctypes array per block, a weakref.finalize) cost ~8 us
 * of a ~10 us RAM region.
 */
#include "fastpath.h"

#include <sys/mman.h>
#include <unistd.h>

#define SLAB_PAGES 1024
#define WORDS (SLAB_PAGES / 64)

typedef struct {
    uint8_t *base;
    uint64_t used[WORDS];     /* bit p: page p handed out */
    uint32_t pages_used;
} Slab;

typedef struct {
    PyObject_HEAD
    Slab **slabs;
    Py_ssize_t nslabs, cap;
    size_t page_size;
} SlabAllocator;

typedef struct {
    PyObject_HEAD
    SlabAllocator *owner;     /* kept alive: it owns the slab */
    Slab *slab;
    uint32_t first, pages;
    Py_ssize_t size;
} HostBlock;

static PyTypeObject SlabAllocatorType, HostBlockType;

static int page_used(const Slab *s, uint32_t p)
{
    return (int)((s->used[p / 64] >> (p % 64)) & 1);
}

static void mark(Slab *s, uint32_t first, uint32_t pages, int used)
{
    for (uint32_t p = first; p < first + pages; p++) {
        if (used) {
            s->used[p / 64] |= (uint64_t)1 << (p % 64);
        } else {
            s->used[p / 64] &= ~((uint64_t)1 << (p % 64));
        }
    }
}

/* First run of `pages` free pages, or -1. */
static long first_fit(const Slab *s, uint32_t pages)
{
    if (SLAB_PAGES - s->pages_used < pages) {
        return -1;
    }
    uint32_t run = 0;
    for (uint32_t p = 0; p < SLAB_PAGES; p++) {
        if (p % 64 == 0 && s->used[p / 64] == UINT64_MAX) {
            run = 0;
            p += 63;   /* a full word */
            continue;
        }
        if (page_used(s, p)) {
            run = 0;
        } else if (++run == pages) {
            return (long)(p + 1 - pages);
        }
    }
    return -1;
}

static void slab_unmap(SlabAllocator *self, Slab *s)
{
    for (Py_ssize_t i = 0; i < self->nslabs; i++) {
        if (self->slabs[i] == s) {
            memmove(&self->slabs[i], &self->slabs[i + 1],
                    (size_t)(self->nslabs - i - 1) * sizeof(*self->slabs));
            self->nslabs--;
            break;
        }
    }
    munmap(s->base, SLAB_PAGES * self->page_size);
    PyMem_Free(s);
}

static PyObject *allocator_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if (PyTuple_GET_SIZE(args) || (kwds && PyDict_GET_SIZE(kwds))) {
        PyErr_SetString(PyExc_TypeError, "SlabAllocator() takes no arguments");
        return NULL;
    }
    SlabAllocator *self = (SlabAllocator *)type->tp_alloc(type, 0);
    if (self) {
        long page = sysconf(_SC_PAGESIZE);
        self->page_size = page < 4096 ? 4096 : (size_t)page;
    }
    return (PyObject *)self;
}

static void allocator_dealloc(SlabAllocator *self)
{
    /* Only once no block is alive (each holds the allocator). */
    while (self->nslabs) {
        slab_unmap(self, self->slabs[self->nslabs - 1]);
    }
    PyMem_Free(self->slabs);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* allocate(size) -> memoryview of `size` zeroed bytes starting on a page. */
static PyObject *allocator_allocate(SlabAllocator *self, PyObject *arg)
{
    Py_ssize_t size = PyNumber_AsSsize_t(arg, PyExc_OverflowError);
    if (size == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (size < 0 || (size_t)size > (size_t)SLAB_PAGES * self->page_size) {
        PyErr_Format(PyExc_ValueError, "a slab block holds 0 .. %zu bytes, not %zd",
                     (size_t)SLAB_PAGES * self->page_size, size);
        return NULL;
    }
    uint32_t pages = (uint32_t)((size + self->page_size - 1) / self->page_size);
    if (pages == 0) {
        pages = 1;
    }
    HostBlock *block = PyObject_New(HostBlock, &HostBlockType);
    if (!block) {
        return NULL;
    }
    block->owner = NULL;
    block->slab = NULL;
    Slab *slab = NULL;
    long first = -1;
    for (Py_ssize_t i = self->nslabs - 1; i >= 0 && first < 0; i--) {
        slab = self->slabs[i];
        first = first_fit(slab, pages);
    }
    if (first < 0) {
        if (self->nslabs == self->cap) {
            Py_ssize_t cap = self->cap ? self->cap * 2 : 4;
            Slab **slabs = PyMem_Realloc(self->slabs, (size_t)cap * sizeof(*slabs));
            if (!slabs) {
                Py_DECREF(block);
                return PyErr_NoMemory();
            }
            self->slabs = slabs;
            self->cap = cap;
        }
        slab = PyMem_Calloc(1, sizeof(*slab));
        if (!slab) {
            Py_DECREF(block);
            return PyErr_NoMemory();
        }
        slab->base = mmap(NULL, SLAB_PAGES * self->page_size, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (slab->base == MAP_FAILED) {
            PyMem_Free(slab);
            Py_DECREF(block);
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        self->slabs[self->nslabs++] = slab;
        first = 0;
    }
    mark(slab, (uint32_t)first, pages, 1);
    slab->pages_used += pages;
    block->owner = (SlabAllocator *)Py_NewRef(self);
    block->slab = slab;
    block->first = (uint32_t)first;
    block->pages = pages;
    block->size = size;
    PyObject *view = PyMemoryView_FromObject((PyObject *)block);
    Py_DECREF(block);   /* the view holds it */
    return view;
}

static PyObject *allocator_slab_count(SlabAllocator *self, PyObject *unused)
{
    (void)unused;
    return PyLong_FromSsize_t(self->nslabs);
}

static PyMethodDef allocator_methods[] = {
    { "allocate", (PyCFunction)allocator_allocate, METH_O,
      "allocate(size) -> memoryview of `size` zeroed bytes (0 .. a slab) starting on a "
      "host page; the pages go back to the slab when the last view of them goes" },
    { "slab_count", (PyCFunction)allocator_slab_count, METH_NOARGS,
      "slab_count() -> how many slabs are mapped now" },
    { NULL, NULL, 0, NULL },
};

static PyTypeObject SlabAllocatorType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pymem._fastpath.SlabAllocator",
    .tp_basicsize = sizeof(SlabAllocator),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Page-aligned memories carved from shared slabs (see csrc/ext/hostmem.c).",
    .tp_new = allocator_new,
    .tp_dealloc = (destructor)allocator_dealloc,
    .tp_methods = allocator_methods,
};

static int block_getbuffer(HostBlock *self, Py_buffer *view, int flags)
{
    if (!self->slab) {
        PyErr_SetString(PyExc_BufferError, "HostBlock: no memory");
        view->obj = NULL;
        return -1;
    }
    uint8_t *buf = self->slab->base + (size_t)self->first * self->owner->page_size;
    return PyBuffer_FillInfo(view, (PyObject *)self, buf, self->size, 0, flags);
}

static void block_dealloc(HostBlock *self)
{
    SlabAllocator *owner = self->owner;
    Slab *slab = self->slab;
    if (owner && slab) {
        size_t page = owner->page_size;
        slab->pages_used -= self->pages;
        if (slab->pages_used == 0) {
            slab_unmap(owner, slab);
        } else {
            /* Zeroed for the next owner, and no longer resident. */
            madvise(slab->base + (size_t)self->first * page, (size_t)self->pages * page,
                    MADV_DONTNEED);
            mark(slab, self->first, self->pages, 0);
        }
    }
    Py_XDECREF(owner);
    PyObject_Free(self);
}

static PyBufferProcs block_as_buffer = {
    .bf_getbuffer = (getbufferproc)block_getbuffer,
};

static PyTypeObject HostBlockType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pymem._fastpath.HostBlock",
    .tp_basicsize = sizeof(HostBlock),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Pages of a slab, exported as a buffer (SlabAllocator.allocate's views hold it).",
    .tp_dealloc = (destructor)block_dealloc,
    .tp_as_buffer = &block_as_buffer,
};

int fp_hostmem_init(PyObject *module)
{
    if (PyType_Ready(&SlabAllocatorType) < 0 || PyType_Ready(&HostBlockType) < 0) {
        return -1;
    }
    if (PyModule_AddIntConstant(module, "SLAB_PAGES", SLAB_PAGES) < 0) {
        return -1;
    }
    Py_INCREF(&SlabAllocatorType);
    if (PyModule_AddObject(module, "SlabAllocator", (PyObject *)&SlabAllocatorType) < 0) {
        Py_DECREF(&SlabAllocatorType);
        return -1;
    }
    return 0;
}
