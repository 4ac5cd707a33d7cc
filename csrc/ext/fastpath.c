/*
 * fastpath.c - the `pymem._fastpath` module: one-argument Python builtins bound
 * to a C core function and its object, for the calls an emulator makes millions
 * of times (lookup, RAM loads and stores).
 *
 * Why it exists: a cffi call with two arguments costs about 80 ns of argument
 * handling before the C function runs, more than the whole pure-Python bisect
 * lookup it must beat.  A builtin with METH_O / METH_FASTCALL costs about 30 ns.
 * This module holds no C core code: it calls the core through function pointers
 * taken from `pymem._native` (so there is one RCU registry, not two), and falls
 * back to a Python callable when the core answers "not in C" (MMIO and friends).
 *
 * This file is the module itself (its functions table and init) and
 * range_users; fastpath.h lists the files that make up the rest, one concept
 * each.
 */
#include "fastpath.h"

/*
 * The `user` objects of an array of rendered ranges (pm_render), as a list:
 * a FlatView holds it to keep every region its dispatch reaches alive.  The
 * caller guarantees the objects are alive now (it holds their tree).
 */
static PyObject *range_users(PyObject *module, PyObject *args)
{
    unsigned long long address;
    Py_ssize_t n;
    (void)module;
    if (!PyArg_ParseTuple(args, "Kn", &address, &n)) {
        return NULL;
    }
    if (n < 0 || (n && !address)) {
        PyErr_SetString(PyExc_ValueError, "range_users: bad array");
        return NULL;
    }
    const pm_range *ranges = (const pm_range *)(uintptr_t)address;
    PyObject *list = PyList_New(n);
    if (!list) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *user = ranges[i].user ? (PyObject *)ranges[i].user : Py_None;
        Py_INCREF(user);
        PyList_SET_ITEM(list, i, user);
    }
    return list;
}

static PyMethodDef module_methods[] = {
    { "set_rcu", fp_set_rcu, METH_VARARGS,
      "set_rcu(read_lock_address, read_unlock_address): the functions ReadSection calls" },
    { "atomic", fp_atomic, METH_VARARGS,
      "atomic(step, ...): setattrs and builtin calls in one C call (see atomic.c)" },
    { "call_owned", fp_call_owned, METH_VARARGS,
      "call_owned(gc, fn, args, outs) -> (answer, owned...): call and own in one C call" },
    { "bind", fp_bind, METH_VARARGS,
      "bind(kind, fn_address, obj_address, width, fallback, keepalive[, read_lock, "
      "read_unlock, device_fn, big_endian, taps]) -> builtin" },
    { "set_memtx", fp_set_memtx, METH_VARARGS,
      "set_memtx(ok, ldub, ..., stq_be): MemTxResult.OK and the core's fixed-width "
      "functions, for rw/load/store (see memtx.c)" },
    { "ops_changed", fp_ops_changed, METH_NOARGS,
      "ops_changed(): a region was given other ops (the builtins forget their cached callbacks)" },
    { "mapping", fp_mapping, METH_VARARGS,
      "mapping(owner, memory, start, length, region, offset, is_write, attrs, addr, space) "
      "-> memoryview: a view unmap takes (see mapping.c)" },
    { "swap_views", fp_swap_views, METH_VARARGS,
      "swap_views(system, views, spaces, keys, done, release): a commit's registry swap, "
      "publishes and reference counts in one C call (see commit.c)" },
    { "set_commit_api", fp_set_commit_api, METH_VARARGS,
      "set_commit_api(functions, max_alias_visits, cast, gc, range_type, dispatch_type, "
      "ranges_free, tree_lock): what commit.c calls" },
    { "flatview_roots", fp_flatview_roots, METH_O,
      "flatview_roots(spaces) -> (keys, roots): each space's view key and the roots (commit.c)" },
    { "render_view", (PyCFunction)(void (*)(void))fp_render_view, METH_FASTCALL,
      "render_view(root, page_bits, stats_address, destructor) -> (ranges, regions, dispatch) "
      "or None (commit.c)" },
    { "range_users", range_users, METH_VARARGS,
      "range_users(ranges_address, n) -> list of the ranges' user objects" },
    { NULL, NULL, 0, NULL },
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "pymem._fastpath",
    "One-argument builtins bound to C core functions (see csrc/ext/fastpath.c).",
    -1, module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastpath(void)
{
    if (fp_device_init() < 0 || fp_bound_init() < 0 || fp_mapping_init() < 0
        || fp_commit_init() < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m && (fp_lookup_init(m) < 0 || fp_guards_init(m) < 0 || fp_taps_init(m) < 0
              || fp_region_init(m) < 0 || fp_hostmem_init(m) < 0)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
