/*
 * commit.c - the steps of a commit (pymem/address_space.py,
 * MemorySystem._commit) that run once per address space or per view, in C:
 *
 *   flatview_roots(spaces)   every space's flat-view root (which spaces
 *                            share a view), one C walk each;
 *   render_view(root, ...)   a view's render and dispatch build, owned by
 *                            cffi objects, with its ranges' regions;
 *   swap_views(...)          the end of the commit: the view registry
 *                            swapped, every address space's new view
 *                            published to C and pinned, every view's
 *                            reference count moved, the views whose count
 *                            reached 0 queued for release (and released at
 *                            once when a grace period can be had without
 *                            waiting), the pending update cleared.
 *
 * Why C: done in Python, these were about half of a commit's cost beside
 * the C render (a dozen Python calls per view, a dictionary of reference
 * changes and a list of `atomic()` steps per commit); and being one C call
 * each, no async exception (Ctrl-C) can fall inside one.
 *
 * swap_views does everything that can fail before the first change: the
 * arguments are checked, the new counts made and the new retired list
 * built; the changes themselves (pointer stores through the core's
 * pm_as_publish, slot stores) cannot fail.  Old values (the replaced
 * registry, pins' old views) are released only after the last change, so
 * a finalizer they trigger sees the whole commit.
 *
 * The core is reached through function pointers (set_commit_api), as the
 * other builtins reach it: one copy of the core in the process.
 */
#include "fastpath.h"

typedef const pm_region *(*flatview_root_fn)(const pm_region *);
typedef void *(*region_user_fn)(const pm_region *);
typedef pm_status (*render_dispatch_fn)(const pm_region *, uint32_t, unsigned, pm_stats *,
                                        pm_range **, size_t *, size_t *, pm_dispatch **);
typedef void (*ranges_free_fn)(pm_range *);
typedef void (*dispatch_release_fn)(pm_stats *, pm_dispatch *);
typedef int (*try_synchronize_fn)(void);
typedef pm_dispatch *(*publish_fn)(pm_as *, pm_dispatch *);

/* What set_commit_api gave. */
static struct {
    flatview_root_fn flatview_root;
    region_user_fn region_user;
    render_dispatch_fn render_dispatch;   /* the one that keeps the GIL */
    ranges_free_fn ranges_free;
    dispatch_release_fn dispatch_release;
    try_synchronize_fn try_synchronize;
    publish_fn publish;
    uint32_t max_alias_visits;
    PyObject *cast, *gc;                  /* ffi.cast, ffi.gc */
    PyObject *range_type, *dispatch_type; /* `pm_range *`, `pm_dispatch *` */
    PyObject *ranges_free_obj;            /* lib.pm_ranges_free: the ranges' destructor */
    PyObject *lock_acquire, *lock_release;   /* TREE_LOCK's bound methods */
} api;

static PyObject *str_views, *str_retired, *str_pending, *str_view, *str_refs, *str_handle,
                *str_root, *str_id, *str_dispatch, *str_pin, *str_cas_address, *str_address;

/*
 * set_commit_api((flatview_root, region_user, render_dispatch, ranges_free,
 * dispatch_release, try_synchronize, as_publish), max_alias_visits, cast, gc,
 * range_type, dispatch_type, ranges_free, tree_lock): the core's functions
 * (their addresses), cffi's cast and gc with the two pointer types the
 * views own, the ranges' destructor and TREE_LOCK.  Called once, at import
 * (pymem/flatview.py).
 */
PyObject *fp_set_commit_api(PyObject *module, PyObject *args)
{
    PyObject *functions, *cast, *gc, *range_type, *dispatch_type, *ranges_free, *lock;
    unsigned long max_visits;
    unsigned long long f[7];
    (void)module;
    if (!PyArg_ParseTuple(args, "O!kOOOOOO:set_commit_api", &PyTuple_Type, &functions,
                          &max_visits, &cast, &gc, &range_type, &dispatch_type, &ranges_free,
                          &lock)) {
        return NULL;
    }
    if (PyTuple_GET_SIZE(functions) != 7) {
        PyErr_SetString(PyExc_TypeError, "set_commit_api: seven function addresses");
        return NULL;
    }
    for (int i = 0; i < 7; i++) {
        f[i] = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(functions, i));
        if (PyErr_Occurred()) {
            return NULL;
        }
        if (!f[i]) {
            PyErr_SetString(PyExc_ValueError, "set_commit_api: a NULL function");
            return NULL;
        }
    }
    PyObject *acquire = PyObject_GetAttrString(lock, "acquire");
    PyObject *release = acquire ? PyObject_GetAttrString(lock, "release") : NULL;
    if (!release) {
        Py_XDECREF(acquire);
        return NULL;
    }
    api.flatview_root = (flatview_root_fn)(uintptr_t)f[0];
    api.region_user = (region_user_fn)(uintptr_t)f[1];
    api.render_dispatch = (render_dispatch_fn)(uintptr_t)f[2];
    api.ranges_free = (ranges_free_fn)(uintptr_t)f[3];
    api.dispatch_release = (dispatch_release_fn)(uintptr_t)f[4];
    api.try_synchronize = (try_synchronize_fn)(uintptr_t)f[5];
    api.publish = (publish_fn)(uintptr_t)f[6];
    api.max_alias_visits = (uint32_t)max_visits;
    Py_XSETREF(api.cast, Py_NewRef(cast));
    Py_XSETREF(api.gc, Py_NewRef(gc));
    Py_XSETREF(api.range_type, Py_NewRef(range_type));
    Py_XSETREF(api.dispatch_type, Py_NewRef(dispatch_type));
    Py_XSETREF(api.ranges_free_obj, Py_NewRef(ranges_free));
    Py_XSETREF(api.lock_acquire, acquire);
    Py_XSETREF(api.lock_release, release);
    Py_RETURN_NONE;
}

static int api_ready(const char *who)
{
    if (!api.render_dispatch) {
        PyErr_Format(PyExc_RuntimeError, "%s: set_commit_api was not called", who);
        return 0;
    }
    return 1;
}

/*
 * flatview_roots(spaces) -> (keys, roots): for each address space of the
 * list, the key of the view it gets (the id of its flat-view root, None
 * when it renders nothing: pm_flatview_root over the C nodes); `roots` maps
 * each key to its root region, in first-use order.
 *
 * No TREE_LOCK: the walk only reads nodes, and every change to a node is
 * made holding the GIL, which this holds (a render running without the
 * GIL elsewhere only reads them too).  The regions it answers are borrowed
 * from the nodes' `user` and alive: the spaces' roots reach them.
 */
PyObject *fp_flatview_roots(PyObject *module, PyObject *spaces)
{
    (void)module;
    if (!api_ready("flatview_roots")) {
        return NULL;
    }
    if (!PyList_Check(spaces)) {
        PyErr_SetString(PyExc_TypeError, "flatview_roots: spaces must be a list");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(spaces);
    PyObject *keys = PyList_New(n), *roots = PyDict_New();
    if (!keys || !roots) {
        goto fail;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *root = PyObject_GetAttr(PyList_GET_ITEM(spaces, i), str_root);
        if (!root) {
            goto fail;
        }
        pm_region *node = fp_region_node(root);
        Py_DECREF(root);
        if (!node) {
            PyErr_SetString(PyExc_TypeError, "flatview_roots: a space's root is not a region");
            goto fail;
        }
        const pm_region *found = api.flatview_root(node);
        PyObject *phys = found ? (PyObject *)api.region_user(found) : NULL;
        PyObject *key = phys ? PyObject_GetAttr(phys, str_id) : Py_NewRef(Py_None);
        if (!key) {
            goto fail;
        }
        PyList_SET_ITEM(keys, i, key);
        if (PyDict_SetDefault(roots, key, phys ? phys : Py_None) == NULL) {
            goto fail;
        }
    }
    PyObject *result = PyTuple_Pack(2, keys, roots);
    Py_DECREF(keys);
    Py_DECREF(roots);
    return result;
fail:
    Py_XDECREF(keys);
    Py_XDECREF(roots);
    return NULL;
}

/* ffi.gc(ffi.cast(type, pointer), destructor): the pointer owned by a
 * cffi object; NULL with an error set (the pointer is then not owned). */
static PyObject *owned(PyObject *type, void *pointer, PyObject *destructor)
{
    PyObject *address = PyLong_FromVoidPtr(pointer);
    PyObject *cdata = address ? PyObject_CallFunctionObjArgs(api.cast, type, address, NULL)
                              : NULL;
    Py_XDECREF(address);
    PyObject *result = cdata ? PyObject_CallFunctionObjArgs(api.gc, cdata, destructor, NULL)
                             : NULL;
    Py_XDECREF(cdata);
    return result;
}

/*
 * render_view(root, page_bits, stats_address, destructor) -> (ranges,
 * regions, dispatch, dispatch's address) or None: what pymem/flatview.py's _render answers for
 * a render with a dispatch, in one C call: under TREE_LOCK, the core's
 * pm_render_dispatch (the one that keeps the GIL) of the region `root`;
 * the ranges (a cffi `pm_range *`, None when there are none, freed by
 * pm_ranges_free) and the dispatch (a cffi `pm_dispatch *`, freed by
 * `destructor`, Dispatch.destructor(stats)) owned as soon as C made them;
 * the region of each range taken before the lock goes, while the tree
 * holds them.  None when the render or the build fails: what C made is
 * freed, and the caller renders again on the Python path, which names the
 * failure.
 */
PyObject *fp_render_view(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    unsigned long page_bits;
    void *stats;
    if (!api_ready("render_view")) {
        return NULL;
    }
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "render_view(root, page_bits, stats_address, destructor)");
        return NULL;
    }
    pm_region *node = fp_region_node(args[0]);
    if (!node) {
        PyErr_SetString(PyExc_TypeError, "render_view: root must be a region");
        return NULL;
    }
    page_bits = PyLong_AsUnsignedLong(args[1]);
    stats = PyLong_AsVoidPtr(args[2]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    PyObject *r = PyObject_CallNoArgs(api.lock_acquire);
    if (!r) {
        return NULL;
    }
    Py_DECREF(r);
    pm_range *ranges = NULL;
    pm_dispatch *built = NULL;
    size_t n = 0, failed = 0;
    pm_status status = api.render_dispatch(node, api.max_alias_visits, (unsigned)page_bits,
                                           (pm_stats *)stats, &ranges, &n, &failed, &built);
    PyObject *array = NULL, *handle = NULL, *regions = NULL, *result = NULL;
    if (status != PM_OK) {
        if (built) {
            api.dispatch_release((pm_stats *)stats, built);
        }
        api.ranges_free(ranges);
        result = Py_NewRef(Py_None);
        goto unlock;
    }
    /* Owned before anything else can fail: each is freed from here on by
     * its object (or right here if wrapping it failed). */
    handle = owned(api.dispatch_type, built, args[3]);
    if (!handle) {
        api.dispatch_release((pm_stats *)stats, built);
    }
    array = ranges ? owned(api.range_type, ranges, api.ranges_free_obj) : Py_NewRef(Py_None);
    if (!array) {
        api.ranges_free(ranges);
    }
    if (!handle || !array) {
        goto unlock;
    }
    regions = PyList_New((Py_ssize_t)n);
    if (!regions) {
        goto unlock;
    }
    for (size_t i = 0; i < n; i++) {
        PyObject *user = ranges[i].user ? (PyObject *)ranges[i].user : Py_None;
        PyList_SET_ITEM(regions, (Py_ssize_t)i, Py_NewRef(user));
    }
    PyObject *address = PyLong_FromVoidPtr(built);
    result = address ? PyTuple_Pack(4, array, regions, handle, address) : NULL;
    Py_XDECREF(address);
unlock:
    Py_XDECREF(array);
    Py_XDECREF(handle);
    Py_XDECREF(regions);
    /* Released whatever happened above, keeping its error. */
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    r = PyObject_CallNoArgs(api.lock_release);
    if (!r) {
        if (type) {
            PyErr_Clear();
        } else {
            Py_XDECREF(result);
            return NULL;
        }
    }
    Py_XDECREF(r);
    PyErr_Restore(type, value, tb);
    return result;
}

/* A view and how its reference count moves. */
typedef struct {
    PyObject *view;          /* borrowed */
    long delta;
    PyObject *refs;          /* the new count, made before any change */
} ref_change;

typedef struct {
    ref_change *items;
    Py_ssize_t n, cap;
} changes;

static int change_ref(changes *c, PyObject *view, long delta)
{
    for (Py_ssize_t i = 0; i < c->n; i++) {
        if (c->items[i].view == view) {
            c->items[i].delta += delta;
            return 0;
        }
    }
    if (c->n == c->cap) {
        Py_ssize_t cap = c->cap ? c->cap * 2 : 8;
        ref_change *items = PyMem_Realloc(c->items, (size_t)cap * sizeof(*items));
        if (!items) {
            PyErr_NoMemory();
            return -1;
        }
        c->items = items;
        c->cap = cap;
    }
    c->items[c->n++] = (ref_change){ view, delta, NULL };
    return 0;
}

static int in_values(PyObject *dict, PyObject *view)
{
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(dict, &pos, &key, &value)) {
        if (value == view) {
            return 1;
        }
    }
    return 0;
}

/*
 * swap_views(system, views, spaces, keys, done, release): `views` becomes the
 * system's registry (`_views`): views of the old registry that are not in
 * it lose the registry's reference (a new view is born holding it).
 * `spaces` is a list of address spaces and `keys` the key in `views` of
 * each one's new view: a space whose pin (`_pin`) holds another view is
 * pointed at the new one, the view's table published to C
 * (pm_as_publish(space._cas_address, view._address)), and the counts moved
 * (the new view +1, the old -1).  Views reaching 0 are appended to the
 * system's `_retired`; with `done`, `_update_pending` is set False.  With
 * `release`, the views in `_retired` are then released (FlatView._release:
 * their `_dispatch` and `_handle` dropped, which frees their tables) and
 * the list emptied, if pm_rcu_try_synchronize says no reader can still
 * hold them; otherwise they stay listed, for MemorySystem._retire to hand
 * to call_rcu.  Returns None.
 */
PyObject *fp_swap_views(PyObject *module, PyObject *args)
{
    PyObject *system, *views, *spaces, *keys;
    int done_pending, release;
    (void)module;
    if (!PyArg_ParseTuple(args, "OO!O!O!pp:swap_views", &system, &PyDict_Type, &views,
                          &PyList_Type, &spaces, &PyList_Type, &keys, &done_pending, &release)) {
        return NULL;
    }
    if (!api_ready("swap_views")) {
        return NULL;
    }
    if (!fp_plain_attribute(system, str_views) || !fp_plain_attribute(system, str_retired)
        || !fp_plain_attribute(system, str_pending)) {
        PyErr_SetString(PyExc_TypeError, "swap_views: the system's _views, _retired and "
                        "_update_pending must be plain attributes");
        return NULL;
    }
    Py_ssize_t nspaces = PyList_GET_SIZE(spaces), i;
    if (PyList_GET_SIZE(keys) != nspaces) {
        PyErr_SetString(PyExc_ValueError, "swap_views: one key per space");
        return NULL;
    }
    changes c = { NULL, 0, 0 };
    PyObject *old_views = NULL, *retired = NULL, *new_retired = NULL;
    /* Per space: its pin and old view (owned), its new view (borrowed from
     * `views`), and what to publish (NULL handle: nothing). */
    typedef struct {
        PyObject *pin, *old, *new;
        pm_as *as;
        pm_dispatch *table;
    } space_swap;
    space_swap *sw = NULL;
    PyObject *result = NULL;

    old_views = PyObject_GenericGetAttr(system, str_views);
    retired = old_views ? PyObject_GenericGetAttr(system, str_retired) : NULL;
    if (!retired) {
        goto done;
    }
    if (!PyDict_Check(old_views) || !PyList_Check(retired)) {
        PyErr_SetString(PyExc_TypeError, "swap_views: _views must be a dict, _retired a list");
        goto done;
    }
    sw = PyMem_Calloc((size_t)nspaces + 1, sizeof(*sw));
    if (!sw) {
        PyErr_NoMemory();
        goto done;
    }
    /* The registry's references. */
    Py_ssize_t pos = 0;
    PyObject *key, *view;
    while (PyDict_Next(old_views, &pos, &key, &view)) {
        if (!in_values(views, view) && change_ref(&c, view, -1) < 0) {
            goto done;
        }
    }
    /* The spaces' references, and what each publishes. */
    for (i = 0; i < nspaces; i++) {
        PyObject *space = PyList_GET_ITEM(spaces, i);
        sw[i].new = PyDict_GetItemWithError(views, PyList_GET_ITEM(keys, i));
        if (!sw[i].new) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_KeyError, "swap_views: a space's key is not in views");
            }
            goto done;
        }
        sw[i].pin = PyObject_GetAttr(space, str_pin);
        if (!sw[i].pin) {
            goto done;
        }
        if (!fp_plain_attribute(sw[i].pin, str_view)) {
            PyErr_SetString(PyExc_TypeError, "swap_views: a pin's view must be a plain attribute");
            goto done;
        }
        sw[i].old = PyObject_GenericGetAttr(sw[i].pin, str_view);
        if (!sw[i].old) {
            goto done;
        }
        if (sw[i].old == sw[i].new) {
            continue;
        }
        PyObject *cas = PyObject_GetAttr(space, str_cas_address);
        PyObject *handle = cas ? PyObject_GetAttr(sw[i].new, str_handle) : NULL;
        PyObject *address = handle ? PyObject_GetAttr(sw[i].new, str_address) : NULL;
        if (address) {
            sw[i].as = PyLong_AsVoidPtr(cas);
            sw[i].table = PyLong_AsVoidPtr(address);
        }
        int released = handle == Py_None;
        Py_XDECREF(cas);
        Py_XDECREF(handle);
        Py_XDECREF(address);
        if (!address || PyErr_Occurred()) {
            goto done;
        }
        if (released || !sw[i].as || !sw[i].table) {
            PyErr_SetString(PyExc_ValueError, "swap_views: a view to publish was released");
            goto done;
        }
        if (change_ref(&c, sw[i].new, 1) < 0
            || (sw[i].old != Py_None && change_ref(&c, sw[i].old, -1) < 0)) {
            goto done;
        }
    }
    /* The new counts, and the new retired list. */
    new_retired = PySequence_List(retired);
    if (!new_retired) {
        goto done;
    }
    for (i = 0; i < c.n; i++) {
        if (!c.items[i].delta) {
            continue;
        }
        PyObject *refs = PyObject_GetAttr(c.items[i].view, str_refs);
        long n = refs ? PyLong_AsLong(refs) : -1;
        Py_XDECREF(refs);
        if (n == -1 && PyErr_Occurred()) {
            goto done;
        }
        if (!fp_plain_attribute(c.items[i].view, str_refs)) {
            PyErr_SetString(PyExc_TypeError, "swap_views: a view's _refs must be a plain attribute");
            goto done;
        }
        n += c.items[i].delta;
        c.items[i].refs = PyLong_FromLong(n);
        if (!c.items[i].refs || (n == 0 && PyList_Append(new_retired, c.items[i].view) < 0)) {
            goto done;
        }
    }
    /* From here on nothing fails: C's publishes (a pointer store each),
     * then slots and plain attributes.  C readers see each space switch
     * as they would one by one. */
    for (i = 0; i < nspaces; i++) {
        if (sw[i].table) {
            (void)api.publish(sw[i].as, sw[i].table);
            (void)PyObject_GenericSetAttr(sw[i].pin, str_view, sw[i].new);
        }
    }
    for (i = 0; i < c.n; i++) {
        if (c.items[i].refs) {
            (void)PyObject_GenericSetAttr(c.items[i].view, str_refs, c.items[i].refs);
        }
    }
    (void)PyObject_GenericSetAttr(system, str_retired, new_retired);
    (void)PyObject_GenericSetAttr(system, str_views, views);
    if (done_pending) {
        (void)PyObject_GenericSetAttr(system, str_pending, Py_False);
    }
    /* Why freeing here is safe: every space now publishes its new view
     * (pm_as_publish stored it with release order, above), so a reader
     * entering a read-side section from now on finds only new views.  The
     * old views' tables can be reachable only from a section that began
     * before; pm_rcu_try_synchronize answers 1 only when no section is open
     * anywhere that began before its counter bump (its fences order that
     * bump after the publishes), and never waits: on 0 the views stay in
     * `_retired`, and MemorySystem._retire hands them to call_rcu. */
    Py_ssize_t nretired = PyList_GET_SIZE(new_retired);
    if (release && nretired && api.try_synchronize) {
        int plain = 1;
        for (i = 0; i < nretired && plain; i++) {
            PyObject *view = PyList_GET_ITEM(new_retired, i);
            plain = fp_plain_attribute(view, str_dispatch) && fp_plain_attribute(view, str_handle);
        }
        if (plain && api.try_synchronize()) {
            /* As FlatView._release: the table goes with the last holder of
             * `_handle` (its ffi.gc destructor, C), usually now. */
            for (i = 0; i < nretired; i++) {
                PyObject *view = PyList_GET_ITEM(new_retired, i);
                (void)PyObject_GenericSetAttr(view, str_dispatch, Py_None);
                (void)PyObject_GenericSetAttr(view, str_handle, Py_None);
            }
            if (PyList_SetSlice(new_retired, 0, nretired, NULL) < 0) {
                /* Left listed: releasing them again later is harmless. */
                PyErr_Clear();
            }
        }
    }
    result = Py_NewRef(Py_None);

done:
    /* Released last: the old registry and views may finalize now. */
    for (i = 0; i < c.n; i++) {
        Py_XDECREF(c.items[i].refs);
    }
    PyMem_Free(c.items);
    for (i = 0; sw && i < nspaces; i++) {
        Py_XDECREF(sw[i].pin);
        Py_XDECREF(sw[i].old);
    }
    PyMem_Free(sw);
    Py_XDECREF(new_retired);
    Py_XDECREF(retired);
    Py_XDECREF(old_views);
    return result;
}

int fp_commit_init(void)
{
    str_views = PyUnicode_InternFromString("_views");
    str_retired = PyUnicode_InternFromString("_retired");
    str_pending = PyUnicode_InternFromString("_update_pending");
    str_view = PyUnicode_InternFromString("view");
    str_refs = PyUnicode_InternFromString("_refs");
    str_handle = PyUnicode_InternFromString("_handle");
    str_root = PyUnicode_InternFromString("root");
    str_id = PyUnicode_InternFromString("_id");
    str_dispatch = PyUnicode_InternFromString("_dispatch");
    str_pin = PyUnicode_InternFromString("_pin");
    str_cas_address = PyUnicode_InternFromString("_cas_address");
    str_address = PyUnicode_InternFromString("_address");
    return str_views && str_retired && str_pending && str_view && str_refs && str_handle
           && str_root && str_id && str_dispatch && str_pin && str_cas_address && str_address
           ? 0 : -1;
}
