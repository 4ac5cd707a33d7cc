/*
 * regionobj.c - `_fastpath.Region`, the C base of pymem's MemoryRegion: its
 * fields, its C node, and the common add_subregion, each made in one C call.
 *
 * Why it exists (issue 12 goal 7): a region made and added in Python cost
 * ~60 calls and 10-25 us (a cffi pointer owned through ffi.gc, a weakref
 * registry entry, 22 slot stores, a dozen checks, two atomic() steps); QEMU
 * does it in a few hundred nanoseconds.  Here the object and its pm_region
 * node are made together and freed together (tp_dealloc), the fields are C
 * members (the same names and semantics as the __slots__ they replace, so
 * the Python layer reads and writes them as before), and add_subregion does
 * its checks and the three-part edit (the Python list, the C child array,
 * the child's links) in one C call.
 *
 * Everything unusual goes to Python: a bad argument, an add into a
 * MemorySystem outside a transaction this thread holds (it commits at once)
 * or of RAM not yet in it (adoption makes its dirty log), a subregion with
 * links of its own (cycle and alias-loop checks), a lock another thread
 * holds.  Inside a transaction, the fast path adopts the region (sets its
 * system) and marks the update pending, as MemorySystem._adopt and
 * _add_subregion do, holding the system's lock as they do.  The fast
 * path calls `self._add_subregion(...)` then, which checks, words the errors
 * and edits as before; so C decides only "plainly fine", never an error.
 *
 * Signal safety: no Python code runs between the first change and the last
 * (RLock.acquire(False) is C and never waits), so a signal sees the tree
 * before the add or after it, as the atomic() steps gave before.
 *
 * The core is reached through function pointers (set_region_api), as the
 * other builtins reach it: one copy of the core in the process.
 */
#include "fastpath.h"

typedef pm_status (*region_new_fn)(uint32_t, uint32_t, uint64_t, int, void *, pm_region **);
typedef void (*region_free_fn)(pm_region *);
typedef pm_status (*region_insert_fn)(pm_region *, size_t, pm_region *);
typedef pm_status (*region_remove_fn)(pm_region *, size_t);
typedef void (*region_set_addr_fn)(pm_region *, uint64_t);
typedef void (*region_set_alias_fn)(pm_region *, pm_region *, uint64_t);
typedef void (*region_set_memory_fn)(pm_region *, uint8_t *);
typedef void (*region_info_fn)(const pm_region *, pm_region_info *);

/* What set_region_api gave: the core's region functions and the Python
 * objects the fast paths compare with or call. */
static struct {
    region_new_fn new_;
    region_free_fn free_;
    region_insert_fn insert_sub;
    region_remove_fn remove_sub;
    region_set_addr_fn set_addr;
    region_set_alias_fn set_alias;
    region_set_memory_fn set_memory;
    region_info_fn info;
    PyObject *kinds;        /* {kind: (kind, flags, romd)} */
    PyObject *alias_kind;   /* the ALIAS string */
    PyObject *ram_kind;     /* the RAM string */
    PyObject *str_lock, *str_depth, *str_notifying, *str_pending, *str_acquire, *str_release;
    PyObject *node_cast;    /* address -> cffi `pm_region *` */
    PyObject *refuse_new;   /* (name, size, kind) -> raises the Python error */
    PyObject *lock_acquire, *lock_release;   /* TREE_LOCK's bound methods */
    PyObject *registry;     /* {id: address of the live region} (by_id) */
    PyObject *zero, *size_2_64;
    uint32_t no_region;
} api;

static uint32_t next_id = 1;

typedef struct {
    PyObject_HEAD
    pm_region *node;
    PyObject *node_cdata;     /* made on first use of `_node` */
    PyObject *weakrefs;
    int registered;           /* in api.registry */
    /* The fields, C members named as the slots they replace. */
    PyObject *id, *name, *size, *kind, *ops, *readonly, *romd, *enabled, *priority, *addr,
             *container, *alias, *alias_offset, *subs, *nonvolatile, *dirty_log, *translate,
             *target, *buffer, *system, *on_loop;
} Region;

static PyTypeObject RegionType;

#define FIELD(name, member) { name, T_OBJECT_EX, offsetof(Region, member), 0, NULL }

static PyMemberDef region_members[] = {
    /* The id is C's and by_id's key: fixed. */
    { "_id", T_OBJECT_EX, offsetof(Region, id), READONLY, NULL },
    FIELD("_name", name), FIELD("_size", size), FIELD("_kind", kind),
    FIELD("_ops", ops), FIELD("_readonly", readonly), FIELD("_romd", romd),
    FIELD("_enabled", enabled), FIELD("_priority", priority), FIELD("_addr", addr),
    FIELD("_container", container), FIELD("_alias", alias),
    FIELD("_alias_offset", alias_offset), FIELD("_subs", subs),
    FIELD("_nonvolatile", nonvolatile), FIELD("_dirty_log", dirty_log),
    FIELD("_translate", translate), FIELD("_target", target), FIELD("_buffer", buffer),
    FIELD("_system", system), FIELD("_on_loop", on_loop),
    { NULL, 0, 0, 0, NULL },
};

/* Every object field, for traverse and clear. */
#define FOR_EACH_FIELD(X)                                                      \
    X(id) X(name) X(size) X(kind) X(ops) X(readonly) X(romd) X(enabled)        \
    X(priority) X(addr) X(container) X(alias) X(alias_offset) X(subs)          \
    X(nonvolatile) X(dirty_log) X(translate) X(target) X(buffer) X(system)     \
    X(on_loop) X(node_cdata)

static int api_ready(void)
{
    if (!api.new_) {
        PyErr_SetString(PyExc_RuntimeError, "pymem._fastpath: set_region_api not called");
        return 0;
    }
    return 1;
}

/* Raise the Python layer's error for arguments C did not take. */
static PyObject *refuse_new(PyObject *name, PyObject *size, PyObject *kind)
{
    PyObject *answer = PyObject_CallFunctionObjArgs(api.refuse_new, name, size, kind, NULL);
    if (answer) {
        Py_DECREF(answer);
        PyErr_SetString(PyExc_SystemError, "Region: arguments refused without an error");
    }
    return NULL;
}

/* A size as the node takes it: 0 .. 2^64 (2^64 as *is_2_64). */
static int node_size(PyObject *size, uint64_t *out, int *is_2_64)
{
    if (!PyLong_Check(size) || PyBool_Check(size)) {
        return -1;
    }
    *is_2_64 = 0;
    *out = PyLong_AsUnsignedLongLong(size);
    if (*out == (uint64_t)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        int eq = PyObject_RichCompareBool(size, api.size_2_64, Py_EQ);
        if (eq != 1) {
            PyErr_Clear();
            return -1;
        }
        *out = 0;
        *is_2_64 = 1;
    }
    return 0;
}

/* Region(name, size, kind): a region at offset 0, enabled, with no
 * subregions, and its C node.  The checks and their errors are the Python
 * layer's (refuse_new); C takes only what they accept. */
static PyObject *region_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *name, *size, *kind;
    if (!api_ready()) {
        return NULL;
    }
    if ((kwds && PyDict_GET_SIZE(kwds)) || PyTuple_GET_SIZE(args) != 3) {
        PyErr_SetString(PyExc_TypeError, "Region(name, size, kind) takes 3 positional "
                        "arguments");
        return NULL;
    }
    name = PyTuple_GET_ITEM(args, 0);
    size = PyTuple_GET_ITEM(args, 1);
    kind = PyTuple_GET_ITEM(args, 2);
    PyObject *entry = PyUnicode_Check(kind) ? PyDict_GetItemWithError(api.kinds, kind) : NULL;
    uint64_t nsize;
    int is_2_64;
    if (PyErr_Occurred()) {
        return NULL;
    }
    if (!PyUnicode_Check(name) || !entry || node_size(size, &nsize, &is_2_64) < 0
        || next_id >= api.no_region) {
        return refuse_new(name, size, kind);
    }
    unsigned long flags = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(entry, 1));
    if (flags == (unsigned long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *id = PyLong_FromUnsignedLong(next_id);
    PyObject *subs = PyList_New(0);
    Region *self = subs && id ? (Region *)type->tp_alloc(type, 0) : NULL;
    if (!self) {
        Py_XDECREF(id);
        Py_XDECREF(subs);
        return NULL;
    }
    self->id = id;
    self->subs = subs;
    /* C hands `user` back in every range the region renders: the object. */
    if (api.new_(next_id, (uint32_t)flags, nsize, is_2_64, self, &self->node) != PM_OK) {
        Py_DECREF(self);
        return fp_pymem_error("OutOfMemoryError", PyExc_MemoryError,
                              "creating region %R: out of memory", name);
    }
    PyObject *address = PyLong_FromVoidPtr(self);
    if (!address || PyDict_SetItem(api.registry, id, address) < 0) {
        Py_XDECREF(address);
        Py_DECREF(self);
        return NULL;
    }
    Py_DECREF(address);
    self->registered = 1;
    next_id++;
    self->name = Py_NewRef(name);
    self->size = Py_NewRef(size);
    self->kind = Py_NewRef(PyTuple_GET_ITEM(entry, 0));
    self->ops = Py_NewRef(Py_None);
    self->readonly = Py_NewRef(Py_False);
    self->romd = Py_NewRef(PyTuple_GET_ITEM(entry, 2));
    self->enabled = Py_NewRef(Py_True);
    self->priority = Py_NewRef(api.zero);
    self->addr = Py_NewRef(api.zero);
    self->container = Py_NewRef(Py_None);
    self->alias = Py_NewRef(Py_None);
    self->alias_offset = Py_NewRef(api.zero);
    self->nonvolatile = Py_NewRef(Py_False);
    self->dirty_log = Py_NewRef(api.zero);
    self->translate = Py_NewRef(Py_None);
    self->target = Py_NewRef(Py_None);
    self->buffer = Py_NewRef(Py_None);
    self->system = Py_NewRef(Py_None);
    self->on_loop = Py_NewRef(Py_False);
    return (PyObject *)self;
}

static void unregister(Region *self)
{
    if (self->registered) {
        self->registered = 0;
        PyObject *error_type, *error_value, *error_tb;
        PyErr_Fetch(&error_type, &error_value, &error_tb);
        if (PyDict_DelItem(api.registry, self->id) < 0) {
            PyErr_Clear();
        }
        PyErr_Restore(error_type, error_value, error_tb);
    }
}

static int region_traverse(Region *self, visitproc visit, void *arg)
{
#define VISIT(f) Py_VISIT(self->f);
    FOR_EACH_FIELD(VISIT)
#undef VISIT
    return 0;
}

/* Collecting a cycle: the node lets go of its children and target before
 * the fields do (C never points at a node freed under it), and by_id stops
 * answering, as a weak registry would. */
static int region_clear(Region *self)
{
    if (self->node) {
        pm_region_info info;
        api.info(self->node, &info);
        while (info.nsubs) {
            api.remove_sub(self->node, --info.nsubs);
        }
        api.set_alias(self->node, NULL, 0);
    }
    if (self->id) {
        unregister(self);
    }
#define CLEAR(f) Py_CLEAR(self->f);
    FOR_EACH_FIELD(CLEAR)
#undef CLEAR
    return 0;
}

static void region_dealloc(Region *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakrefs) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    if (self->id) {
        unregister(self);
    }
    pm_region *node = self->node;
    self->node = NULL;
    region_clear(self);
    /* After the fields: the children's nodes may go with them, ours last
     * (freeing a node reads no other). */
    if (node) {
        api.free_(node);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* `_node`: the node as a cffi `pm_region *` (for the core's cffi calls),
 * made once.  Valid while the region lives, which its users ensure. */
static PyObject *region_get_node(Region *self, void *closure)
{
    (void)closure;
    if (!self->node_cdata) {
        PyObject *address = PyLong_FromVoidPtr(self->node);
        if (!address) {
            return NULL;
        }
        PyObject *cdata = PyObject_CallOneArg(api.node_cast, address);
        Py_DECREF(address);
        if (!cdata) {
            return NULL;
        }
        if (!self->node_cdata) {
            self->node_cdata = cdata;
        } else {
            Py_DECREF(cdata);
        }
    }
    return Py_NewRef(self->node_cdata);
}

static PyGetSetDef region_getset[] = {
    { "_node", (getter)region_get_node, NULL,
      "The region's C node, a cffi `pm_region *` (read-only; valid while the region lives).",
      NULL },
    { NULL, NULL, NULL, NULL, NULL },
};

static void replace(PyObject **field, PyObject *value, PyObject **graveyard)
{
    *graveyard = *field;
    *field = Py_NewRef(value);
}

/* region._init_alias(target, offset): a new alias's link and window, in the
 * node and the fields at once.  For the constructor only: checked there. */
static PyObject *region_init_alias(Region *self, PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t offset;
    if (nargs != 2 || !PyObject_TypeCheck(args[0], &RegionType)
        || as_address(args[1], &offset) < 0) {
        PyErr_SetString(PyExc_TypeError, "_init_alias(target: Region, offset: int)");
        return NULL;
    }
    PyObject *old_alias, *old_offset;
    api.set_alias(self->node, ((Region *)args[0])->node, offset);
    replace(&self->alias, args[0], &old_alias);
    replace(&self->alias_offset, args[1], &old_offset);
    Py_XDECREF(old_alias);
    Py_XDECREF(old_offset);
    Py_RETURN_NONE;
}

/* region._set_memory(buffer): the region's memory, a writable contiguous
 * buffer (a memoryview): kept in `_buffer`, its address in the node.  The
 * buffer export is not held: the memoryview keeps the memory in place. */
static PyObject *region_set_memory(Region *self, PyObject *buffer)
{
    Py_buffer view;
    if (PyObject_GetBuffer(buffer, &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) {
        return NULL;
    }
    PyObject *old;
    api.set_memory(self->node, (uint8_t *)view.buf);
    PyBuffer_Release(&view);
    replace(&self->buffer, buffer, &old);
    Py_XDECREF(old);
    Py_RETURN_NONE;
}

/* A priority the fast path takes: an int that fits 32 bits. */
static int priority_arg(PyObject *arg, long *out)
{
    int overflow;
    if (!PyLong_Check(arg) || PyBool_Check(arg)) {
        return -1;
    }
    *out = PyLong_AsLongAndOverflow(arg, &overflow);
    if (overflow || (*out == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return -1;
    }
    return *out >= INT32_MIN && *out <= INT32_MAX ? 0 : -1;
}

/* Where the new subregion goes in the reversed list (lowest priority first,
 * oldest first among equals): after every sibling of lower or equal
 * priority.  -1: a sibling C cannot read (the Python path will). */
static Py_ssize_t insert_index(PyObject *subs, long priority)
{
    Py_ssize_t lo = 0, hi = PyList_GET_SIZE(subs);
    long last;
    if (hi == 0) {
        return 0;
    }
    PyObject *tail = PyList_GET_ITEM(subs, hi - 1);
    if (!PyObject_TypeCheck(tail, &RegionType)
        || priority_arg(((Region *)tail)->priority, &last) < 0) {
        return -1;
    }
    if (last <= priority) {
        return hi;   /* the common add: an append */
    }
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        PyObject *sub = PyList_GET_ITEM(subs, mid);
        long p;
        if (!PyObject_TypeCheck(sub, &RegionType)
            || priority_arg(((Region *)sub)->priority, &p) < 0) {
            return -1;
        }
        if (priority < p) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return lo;
}

static PyObject *add_slow(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames)
{
    PyObject *method = PyObject_GetAttrString(self, "_add_subregion");
    if (!method) {
        return NULL;
    }
    PyObject *answer = PyObject_Vectorcall(method, args, nargs, kwnames);
    Py_DECREF(method);
    return answer;
}

/* Take a lock if it is free (or already this thread's: an RLock) without
 * waiting; 1 if taken. */
static int try_lock(PyObject *acquire)
{
    PyObject *got = PyObject_CallOneArg(acquire, Py_False);
    if (!got) {
        PyErr_Clear();
        return 0;
    }
    int taken = got == Py_True;
    Py_DECREF(got);
    return taken;
}

static void unlock(PyObject *release)
{
    PyObject *released = PyObject_CallNoArgs(release);
    Py_XDECREF(released);
    PyErr_Clear();
}

/* A plain int attribute of the system (no Python code runs to read it). */
static int system_int(PyObject *system, PyObject *name, long *out)
{
    if (!fp_plain_attribute(system, name)) {
        return -1;
    }
    PyObject *value = PyObject_GenericGetAttr(system, name);
    if (!value || !PyLong_CheckExact(value)) {
        Py_XDECREF(value);
        PyErr_Clear();
        return -1;
    }
    *out = PyLong_AsLong(value);
    Py_DECREF(value);
    if (*out == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    return 0;
}

/* The container's system, when the add may happen in it here: inside a
 * transaction this thread holds (so the add commits at its end, not now),
 * with no listener being told of a change.  Its lock's release method when
 * taken (the caller releases it), NULL for the Python path. */
static PyObject *lock_open_transaction(PyObject *system)
{
    long depth, notifying;
    PyObject *lock = fp_plain_attribute(system, api.str_lock)
                     ? PyObject_GenericGetAttr(system, api.str_lock) : NULL;
    PyObject *acquire = lock ? PyObject_GetAttr(lock, api.str_acquire) : NULL;
    PyObject *release = acquire ? PyObject_GetAttr(lock, api.str_release) : NULL;
    Py_XDECREF(lock);
    int taken = release && PyCFunction_Check(acquire) && PyCFunction_Check(release)
                && try_lock(acquire);
    Py_XDECREF(acquire);
    if (!taken) {
        Py_XDECREF(release);
        PyErr_Clear();
        return NULL;
    }
    /* Held: a transaction open now is this thread's (it holds the lock). */
    if (system_int(system, api.str_depth, &depth) < 0 || depth <= 0
        || system_int(system, api.str_notifying, &notifying) < 0 || notifying
        || !fp_plain_attribute(system, api.str_pending)) {
        unlock(release);
        Py_DECREF(release);
        return NULL;
    }
    return release;
}

/* The plainly fine add (see the top of the file), or -1 to take the
 * Python path; it never raises. */
static int add_fast(Region *self, PyObject *offset_arg, PyObject *region_arg,
                    PyObject *priority_obj)
{
    uint64_t offset, size, old_addr;
    long priority;
    int is_2_64;
    if (!PyObject_TypeCheck(region_arg, &RegionType) || region_arg == (PyObject *)self) {
        return -1;
    }
    Region *region = (Region *)region_arg;
    if (!self->node || !region->node || !self->kind || !region->size || !region->container
        || !self->system || !region->system || !region->subs || !region->alias
        || !self->subs || !PyList_CheckExact(self->subs) || !PyList_CheckExact(region->subs)
        || !region->kind || !region->addr || !region->enabled || !self->enabled) {
        return -1;   /* cleared by a collection, or fields edited behind our back */
    }
    PyObject *system = self->system;
    if (as_address(offset_arg, &offset) < 0 || priority_arg(priority_obj, &priority) < 0
        || node_size(region->size, &size, &is_2_64) < 0 || is_2_64
        || (offset && size > UINT64_MAX - offset + 1)
        || self->kind == api.alias_kind || region->container != Py_None
        || (region->system != Py_None && region->system != system)
        || PyList_GET_SIZE(region->subs)) {
        return -1;
    }
    /* Adopting RAM makes its dirty log (Python: pymem/dirty.py). */
    if (system != Py_None && region->system == Py_None && region->kind == api.ram_kind) {
        return -1;
    }
    /* No chain of links leads from the region back to us (no cycle, no
     * alias loop): it has no subregions, and it is no alias or an alias of
     * a region without links of its own (already in our system, if any:
     * adoption takes what an alias reaches). */
    if (region->alias != Py_None) {
        Region *target = (Region *)region->alias;
        if (!PyObject_TypeCheck(region->alias, &RegionType) || target == self
            || !target->subs || !PyList_CheckExact(target->subs)
            || PyList_GET_SIZE(target->subs) || target->alias != Py_None
            || target->system != system) {
            return -1;
        }
    }
    Py_ssize_t index = insert_index(self->subs, priority);
    if (index < 0) {
        return -1;
    }
    /* QEMU re-renders only when both are enabled; a view root's own address
     * also counts, so a root that moved re-renders too (as _add_subregion). */
    if (!PyBool_Check(region->enabled) || !PyBool_Check(self->enabled)
        || as_address(region->addr, &old_addr) < 0) {
        return -1;
    }
    int pending = region->enabled == Py_True
                  && (self->enabled == Py_True || old_addr != offset);
    /* The system's lock, then the tree lock (the house order), each taken
     * only if free now, never waited for: the tree lock because a render
     * without the GIL may walk this tree. */
    PyObject *system_release = NULL;
    if (system != Py_None) {
        system_release = lock_open_transaction(system);
        if (!system_release) {
            return -1;
        }
    }
    int done = -1;
    if (try_lock(api.lock_acquire)) {
        /* Set first: a commit for nothing is harmless, a missed one is not. */
        if ((!pending || system == Py_None
             || PyObject_GenericSetAttr(system, api.str_pending, Py_True) == 0)
            && PyList_Insert(self->subs, index, region_arg) == 0) {
            if (api.insert_sub(self->node, (size_t)index, region->node) == PM_OK) {
                PyObject *old[4];
                replace(&region->system, system, &old[0]);
                replace(&region->container, (PyObject *)self, &old[1]);
                replace(&region->priority, priority_obj, &old[2]);
                replace(&region->addr, offset_arg, &old[3]);
                api.set_addr(region->node, offset);
                for (int i = 0; i < 4; i++) {
                    Py_DECREF(old[i]);   /* None, the system and ints: no finalizer runs */
                }
                done = 0;
            } else if (PySequence_DelItem(self->subs, index) < 0) {
                PyErr_Clear();   /* cannot fail: the index was just inserted */
            }
        }
        PyErr_Clear();
        unlock(api.lock_release);
    }
    if (system_release) {
        unlock(system_release);
        Py_DECREF(system_release);
    }
    return done;
}

/* add_subregion(offset, region, priority=0) */
static PyObject *region_add_subregion(Region *self, PyObject *const *args, Py_ssize_t nargs,
                                      PyObject *kwnames)
{
    PyObject *priority = api.zero;
    if (!api_ready()) {
        return NULL;
    }
    if (kwnames) {
        if (nargs != 2 || PyTuple_GET_SIZE(kwnames) != 1
            || PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "priority")) {
            return add_slow((PyObject *)self, args, nargs, kwnames);
        }
        priority = args[2];
    } else if (nargs == 3) {
        priority = args[2];
    } else if (nargs != 2) {
        return add_slow((PyObject *)self, args, nargs, kwnames);
    }
    if (add_fast(self, args[0], args[1], priority) < 0) {
        return add_slow((PyObject *)self, args, nargs, kwnames);
    }
    Py_RETURN_NONE;
}

static PyMethodDef region_methods[] = {
    { "add_subregion", (PyCFunction)(void (*)(void))region_add_subregion,
      METH_FASTCALL | METH_KEYWORDS,
      "add_subregion($self, offset, region, priority=0)\n"
      "--\n"
      "\n"
      "Map `region` at `offset` inside this one; higher `priority` wins overlaps,\n"
      "and among equals the region added last wins (QEMU's order).\n"
      "\n"
      "The plain add (no MemorySystem, a subregion without links of its\n"
      "own) is one C call; everything else goes to MemoryRegion._add_subregion.\n"
      "\n"
      "`offset` is bytes from this region's start, 0 <= offset and\n"
      "offset + region.size <= 2^64; `priority` a signed 32-bit int.\n"
      "\n"
      "An edit: it raises what every edit raises (see `MemoryRegion`), and:\n"
      "\n"
      "Raises:\n"
      "    ArgumentTypeError: `region` is not a MemoryRegion, or `offset` or\n"
      "        `priority` not an int.\n"
      "    TopologyError: `offset` or `priority` out of range, this region is an\n"
      "        alias, `region` already has a container, the two belong to\n"
      "        different MemorySystems, the edit would make a cycle of subregions,\n"
      "        or an alias loop that never ends (nothing changes)." },
    { "_init_alias", (PyCFunction)(void (*)(void))region_init_alias, METH_FASTCALL,
      "_init_alias(target, offset): a new alias's target and window (constructors only)" },
    { "_set_memory", (PyCFunction)region_set_memory, METH_O,
      "_set_memory(buffer): the region's memory, a writable contiguous buffer" },
    { NULL, NULL, 0, NULL },
};

static PyTypeObject RegionType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pymem._fastpath.Region",
    .tp_basicsize = sizeof(Region),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The C base of MemoryRegion: its fields and C node (see csrc/ext/regionobj.c).",
    .tp_new = region_new,
    .tp_dealloc = (destructor)region_dealloc,
    .tp_traverse = (traverseproc)region_traverse,
    .tp_clear = (inquiry)region_clear,
    .tp_weaklistoffset = offsetof(Region, weakrefs),
    .tp_members = region_members,
    .tp_getset = region_getset,
    .tp_methods = region_methods,
};

/* region_by_id(id): the live region with this id, or None. */
static PyObject *region_by_id(PyObject *module, PyObject *id)
{
    (void)module;
    if (!api_ready()) {
        return NULL;
    }
    PyObject *address = PyDict_GetItemWithError(api.registry, id);
    if (!address) {
        return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
    }
    PyObject *region = PyLong_AsVoidPtr(address);
    return region ? Py_NewRef(region) : NULL;
}

/*
 * set_region_api(functions, kinds, alias_kind, ram_kind, node_cast, refuse_new,
 * tree_lock, no_region): `functions` the addresses of pm_region_new, _free, _insert_sub,
 * _remove_sub, _set_addr, _set_alias, _set_memory and _info_get; `kinds`
 * {kind: (kind, flags, romd)}.  Once, when pymem.region is imported.
 */
static PyObject *set_region_api(PyObject *module, PyObject *args)
{
    PyObject *functions, *kinds, *alias_kind, *ram_kind, *node_cast, *refuse, *lock;
    unsigned long no_region;
    void *fns[8];
    (void)module;
    if (!PyArg_ParseTuple(args, "O!O!UUOOOk", &PyTuple_Type, &functions, &PyDict_Type, &kinds,
                          &alias_kind, &ram_kind, &node_cast, &refuse, &lock, &no_region)) {
        return NULL;
    }
    if (PyTuple_GET_SIZE(functions) != 8) {
        PyErr_SetString(PyExc_TypeError, "set_region_api: 8 function addresses");
        return NULL;
    }
    for (int i = 0; i < 8; i++) {
        fns[i] = PyLong_AsVoidPtr(PyTuple_GET_ITEM(functions, i));
        if (!fns[i]) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_ValueError, "set_region_api: a NULL function");
            }
            return NULL;
        }
    }
    if (api.new_) {
        PyErr_SetString(PyExc_RuntimeError, "set_region_api: already set");
        return NULL;
    }
    PyObject *acquire = PyObject_GetAttrString(lock, "acquire");
    PyObject *release = acquire ? PyObject_GetAttrString(lock, "release") : NULL;
    PyObject *registry = PyDict_New();
    PyObject *zero = PyLong_FromLong(0);
    PyObject *size_2_64 = PyLong_FromString("10000000000000000", NULL, 16);
    api.str_lock = PyUnicode_InternFromString("_lock");
    api.str_depth = PyUnicode_InternFromString("_depth");
    api.str_notifying = PyUnicode_InternFromString("_notifying");
    api.str_pending = PyUnicode_InternFromString("_update_pending");
    api.str_acquire = PyUnicode_InternFromString("acquire");
    api.str_release = PyUnicode_InternFromString("release");
    if (!release || !registry || !zero || !size_2_64 || !api.str_lock || !api.str_depth
        || !api.str_notifying || !api.str_pending || !api.str_acquire || !api.str_release) {
        Py_XDECREF(acquire);
        Py_XDECREF(release);
        Py_XDECREF(registry);
        Py_XDECREF(zero);
        Py_XDECREF(size_2_64);
        return NULL;
    }
    api.kinds = Py_NewRef(kinds);
    api.alias_kind = Py_NewRef(alias_kind);
    api.ram_kind = Py_NewRef(ram_kind);
    api.node_cast = Py_NewRef(node_cast);
    api.refuse_new = Py_NewRef(refuse);
    api.lock_acquire = acquire;
    api.lock_release = release;
    api.registry = registry;
    api.zero = zero;
    api.size_2_64 = size_2_64;
    api.no_region = (uint32_t)no_region;
    api.free_ = (region_free_fn)fns[1];
    api.insert_sub = (region_insert_fn)fns[2];
    api.remove_sub = (region_remove_fn)fns[3];
    api.set_addr = (region_set_addr_fn)fns[4];
    api.set_alias = (region_set_alias_fn)fns[5];
    api.set_memory = (region_set_memory_fn)fns[6];
    api.info = (region_info_fn)fns[7];
    api.new_ = (region_new_fn)fns[0];   /* last: api_ready() */
    Py_RETURN_NONE;
}

static PyMethodDef regionobj_functions[] = {
    { "set_region_api", set_region_api, METH_VARARGS,
      "set_region_api(functions, kinds, alias_kind, ram_kind, node_cast, refuse_new, "
      "tree_lock, no_region): the core's region functions (see regionobj.c)" },
    { "region_by_id", region_by_id, METH_O,
      "region_by_id(id) -> the live Region with this id, or None" },
    { NULL, NULL, 0, NULL },
};

/* The C node of a Region (a MemoryRegion), or NULL if `obj` is not one. */
pm_region *fp_region_node(PyObject *obj)
{
    return PyObject_TypeCheck(obj, &RegionType) ? ((Region *)obj)->node : NULL;
}

/* The region's `_dirty_log` field (borrowed) when `obj` is a Region whose
 * field is set; NULL otherwise, no error set (the caller asks getattr). */
PyObject *fp_region_dirty_log(PyObject *obj)
{
    return PyObject_TypeCheck(obj, &RegionType) ? ((Region *)obj)->dirty_log : NULL;
}

int fp_region_init(PyObject *module)
{
    if (PyType_Ready(&RegionType) < 0 || PyModule_AddFunctions(module, regionobj_functions) < 0) {
        return -1;
    }
    Py_INCREF(&RegionType);
    if (PyModule_AddObject(module, "Region", (PyObject *)&RegionType) < 0) {
        Py_DECREF(&RegionType);
        return -1;
    }
    return 0;
}
