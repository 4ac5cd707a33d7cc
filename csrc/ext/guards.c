/*
 * guards.c - context managers entered and left in C, for the changes that
 * must go with their undo whatever a signal handler raises: an RCU
 * read-side section (ReadSection), a temporarily set attribute (Setting) and
 * a MemorySystem transaction (Transaction).
 */
#include "fastpath.h"

/* ------------------------------------------------ signal-safe building blocks
 *
 * A Python signal handler (KeyboardInterrupt from Ctrl-C, or any handler that
 * raises) runs only where the interpreter checks its eval breaker: at a
 * function's entry, at a backward jump and after a call returns.  It never
 * runs inside a C function that calls no Python code.  So two state changes
 * made in one C call can never be split by an async exception, while two
 * made by consecutive Python statements (or a C call and the statement after
 * it) can.  The helpers below give pymem's Python code that one C call
 * wherever a change in C must go with its mirror in Python, or a lock with
 * its unlock.
 */

/* The RCU read-side section as a context manager: `__enter__` and
 * `__exit__` are C, so the lock is taken inside BEFORE_WITH (after which the
 * `with` body's exception handler is already in place) and released by a C
 * `__exit__` that no signal can enter before it unlocks. */
static rcu_fn rcu_lock, rcu_unlock;

typedef struct {
    PyObject_HEAD
    unsigned long owner;     /* thread that entered, when held */
    int held;
} ReadSection;

static PyObject *read_section_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if (!rcu_lock || !rcu_unlock) {
        PyErr_SetString(PyExc_RuntimeError, "pymem._fastpath: RCU functions not set");
        return NULL;
    }
    if (PyTuple_GET_SIZE(args) || (kwds && PyDict_GET_SIZE(kwds))) {
        PyErr_SetString(PyExc_TypeError, "ReadSection() takes no arguments");
        return NULL;
    }
    ReadSection *self = (ReadSection *)type->tp_alloc(type, 0);
    if (self) {
        self->held = 0;
    }
    return (PyObject *)self;
}

static PyObject *read_section_enter(ReadSection *self, PyObject *unused)
{
    (void)unused;
    if (self->held) {
        PyErr_SetString(PyExc_RuntimeError, "this read-side section is already entered");
        return NULL;
    }
    rcu_lock();
    self->owner = PyThread_get_thread_ident();
    self->held = 1;
    Py_RETURN_NONE;
}

static PyObject *read_section_exit(ReadSection *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)args;
    (void)nargs;
    if (self->held) {
        if (self->owner != PyThread_get_thread_ident()) {
            PyErr_SetString(PyExc_RuntimeError,
                            "a read-side section must end in the thread that began it");
            return NULL;
        }
        self->held = 0;
        rcu_unlock();
    }
    Py_RETURN_FALSE;
}

static void read_section_dealloc(ReadSection *self)
{
    /* Entered by hand and dropped: end it if we are its thread (nowhere
     * else can); a section left in another thread is that thread's bug. */
    if (self->held && self->owner == PyThread_get_thread_ident()) {
        rcu_unlock();
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef read_section_methods[] = {
    { "__enter__", (PyCFunction)read_section_enter, METH_NOARGS, "Begin the section." },
    { "__exit__", (PyCFunction)(void (*)(void))read_section_exit, METH_FASTCALL,
      "End the section." },
    { NULL, NULL, 0, NULL },
};

static PyTypeObject ReadSectionType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pymem._fastpath.ReadSection",
    .tp_basicsize = sizeof(ReadSection),
    .tp_dealloc = (destructor)read_section_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "An RCU read-side section for a `with` block (entered and left in C).",
    .tp_new = read_section_new,
    .tp_methods = read_section_methods,
};

PyObject *fp_set_rcu(PyObject *module, PyObject *args)
{
    unsigned long long lock, unlock;
    (void)module;
    if (!PyArg_ParseTuple(args, "KK", &lock, &unlock)) {
        return NULL;
    }
    if (!lock || !unlock) {
        PyErr_SetString(PyExc_ValueError, "set_rcu: NULL function");
        return NULL;
    }
    rcu_lock = (rcu_fn)(uintptr_t)lock;
    rcu_unlock = (rcu_fn)(uintptr_t)unlock;
    Py_RETURN_NONE;
}

/* Whether setting `name` on `obj` runs no Python code: the type's generic
 * setattr, and the attribute a slot or absent from the type (instance dict). */
int fp_plain_attribute(PyObject *obj, PyObject *name)
{
    if (Py_TYPE(obj)->tp_setattro != PyObject_GenericSetAttr || !PyUnicode_Check(name)) {
        return 0;
    }
    PyObject *descr = _PyType_Lookup(Py_TYPE(obj), name);
    return !descr || Py_TYPE(descr) == &PyMemberDescr_Type;
}

/* Setting(obj, name, value): a `with` block during which obj.name (a plain
 * attribute) is `value`; __exit__ puts the old value back.  Both in C: an
 * async exception cannot leave the attribute set, as a Python finally can
 * (an exception at its first line skips the rest of it). */
typedef struct {
    PyObject_HEAD
    PyObject *obj, *name, *value, *saved;
    int entered;
} Setting;

static PyObject *setting_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *obj, *name, *value;
    if ((kwds && PyDict_GET_SIZE(kwds))
        || !PyArg_ParseTuple(args, "OUO:Setting", &obj, &name, &value)) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "Setting() takes no keywords");
        }
        return NULL;
    }
    if (!fp_plain_attribute(obj, name)) {
        PyErr_Format(PyExc_TypeError, "Setting: %R is not a plain attribute", name);
        return NULL;
    }
    Setting *self = (Setting *)type->tp_alloc(type, 0);
    if (self) {
        self->obj = Py_NewRef(obj);
        self->name = Py_NewRef(name);
        self->value = Py_NewRef(value);
    }
    return (PyObject *)self;
}

static PyObject *setting_enter(Setting *self, PyObject *unused)
{
    (void)unused;
    if (self->entered) {
        PyErr_SetString(PyExc_RuntimeError, "Setting already entered");
        return NULL;
    }
    PyObject *saved = PyObject_GenericGetAttr(self->obj, self->name);
    if (!saved) {
        return NULL;
    }
    if (PyObject_GenericSetAttr(self->obj, self->name, self->value) < 0) {
        Py_DECREF(saved);
        return NULL;
    }
    self->saved = saved;
    self->entered = 1;
    Py_RETURN_NONE;
}

static PyObject *setting_exit(Setting *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)args;
    (void)nargs;
    if (self->entered) {
        self->entered = 0;
        PyObject *saved = self->saved;
        self->saved = NULL;
        int rc = PyObject_GenericSetAttr(self->obj, self->name, saved);
        Py_DECREF(saved);
        if (rc < 0) {
            return NULL;
        }
    }
    Py_RETURN_FALSE;
}

static int setting_traverse(Setting *self, visitproc visit, void *arg)
{
    Py_VISIT(self->obj);
    Py_VISIT(self->value);
    Py_VISIT(self->saved);
    return 0;
}

static int setting_clear(Setting *self)
{
    Py_CLEAR(self->obj);
    Py_CLEAR(self->value);
    Py_CLEAR(self->saved);
    return 0;
}

static void setting_dealloc(Setting *self)
{
    PyObject_GC_UnTrack(self);
    setting_clear(self);
    Py_CLEAR(self->name);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef setting_methods[] = {
    { "__enter__", (PyCFunction)setting_enter, METH_NOARGS, "Set the attribute." },
    { "__exit__", (PyCFunction)(void (*)(void))setting_exit, METH_FASTCALL,
      "Put the old value back." },
    { NULL, NULL, 0, NULL },
};

static PyTypeObject SettingType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pymem._fastpath.Setting",
    .tp_basicsize = sizeof(Setting),
    .tp_dealloc = (destructor)setting_dealloc,
    .tp_traverse = (traverseproc)setting_traverse,
    .tp_clear = (inquiry)setting_clear,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Setting(obj, name, value): obj.name is value inside the `with` (C enter/exit).",
    .tp_new = setting_new,
    .tp_methods = setting_methods,
};

/*
 * Transaction(system): a MemorySystem's `with system.transaction()`, entered
 * and left in C.  __enter__ takes system._lock, checks that edits are
 * allowed (system._check_editable) and raises system._depth;
 * __exit__ lowers the depth, commits (system._commit(), Python) when the
 * outermost transaction ends with an update pending, and releases the lock
 * whatever the commit did.  A Python context manager (above all a generator
 * one) can be interrupted after taking the lock and before its exit is set
 * up, or inside its exit before releasing: this one cannot.  An interrupt
 * inside the commit leaves the update pending, for the next end to commit.
 */
typedef struct {
    PyObject_HEAD
    PyObject *system;
    PyObject *lock;          /* the lock taken, while entered */
} Transaction;

static PyObject *str_lock, *str_depth, *str_pending, *str_commit, *str_acquire, *str_release;

static PyObject *transaction_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *system;
    if ((kwds && PyDict_GET_SIZE(kwds)) || !PyArg_ParseTuple(args, "O:Transaction", &system)) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "Transaction() takes no keywords");
        }
        return NULL;
    }
    if (!fp_plain_attribute(system, str_depth)) {
        PyErr_SetString(PyExc_TypeError, "Transaction: _depth is not a plain attribute");
        return NULL;
    }
    Transaction *self = (Transaction *)type->tp_alloc(type, 0);
    if (self) {
        self->system = Py_NewRef(system);
    }
    return (PyObject *)self;
}

/* system._depth += delta; the new depth, or -1 with an error set. */
static long add_depth(PyObject *system, long delta)
{
    PyObject *depth = PyObject_GenericGetAttr(system, str_depth);
    long d = depth ? PyLong_AsLong(depth) : -1;
    Py_XDECREF(depth);
    if (d == -1 && PyErr_Occurred()) {
        return -1;
    }
    PyObject *next = PyLong_FromLong(d + delta);
    int rc = next ? PyObject_GenericSetAttr(system, str_depth, next) : -1;
    Py_XDECREF(next);
    return rc < 0 ? -1 : d + delta;
}

static PyObject *transaction_enter(Transaction *self, PyObject *unused)
{
    (void)unused;
    if (self->lock) {
        PyErr_SetString(PyExc_RuntimeError, "this transaction is already entered");
        return NULL;
    }
    PyObject *lock = PyObject_GetAttr(self->system, str_lock);
    if (!lock) {
        return NULL;
    }
    /* A C lock: acquire runs no Python code, though a signal handler may
     * run (and raise) while it waits, before the lock is taken. */
    PyObject *got = PyObject_CallMethodNoArgs(lock, str_acquire);
    if (!got) {
        Py_DECREF(lock);
        return NULL;
    }
    Py_DECREF(got);
    /* Edits from a listener being told of a change are refused (Python:
     * MemorySystem._check_editable); then the depth goes up. */
    PyObject *checked = PyObject_CallMethod(self->system, "_check_editable", "s",
                                            "a transaction");
    Py_XDECREF(checked);
    if (!checked || add_depth(self->system, 1) < 0) {
        /* Released with the error put aside, then restored. */
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyObject *r = PyObject_CallMethodNoArgs(lock, str_release);
        Py_XDECREF(r);
        PyErr_Clear();
        PyErr_Restore(type, value, tb);
        Py_DECREF(lock);
        return NULL;
    }
    self->lock = lock;
    return Py_NewRef(self->system);
}

static PyObject *transaction_exit(Transaction *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)args;
    (void)nargs;
    PyObject *lock = self->lock;
    if (!lock) {
        Py_RETURN_FALSE;
    }
    self->lock = NULL;
    int failed = 0;
    long depth = add_depth(self->system, -1);
    if (depth < 0) {
        failed = 1;
    } else if (depth == 0) {
        PyObject *pending = PyObject_GetAttr(self->system, str_pending);
        int commit = pending ? PyObject_IsTrue(pending) : -1;
        Py_XDECREF(pending);
        if (commit > 0) {
            PyObject *r = PyObject_CallMethodNoArgs(self->system, str_commit);
            Py_XDECREF(r);
            failed = !r;
        } else if (commit < 0) {
            failed = 1;
        }
    }
    /* Released whatever happened above, keeping its error. */
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject *r = PyObject_CallMethodNoArgs(lock, str_release);
    Py_DECREF(lock);
    if (!r) {
        if (type) {
            PyErr_Clear();
        } else {
            return NULL;
        }
    }
    Py_XDECREF(r);
    PyErr_Restore(type, value, tb);
    if (failed) {
        return NULL;
    }
    Py_RETURN_FALSE;
}

static int transaction_traverse(Transaction *self, visitproc visit, void *arg)
{
    Py_VISIT(self->system);
    Py_VISIT(self->lock);
    return 0;
}

static int transaction_clear(Transaction *self)
{
    Py_CLEAR(self->system);
    Py_CLEAR(self->lock);
    return 0;
}

static void transaction_dealloc(Transaction *self)
{
    PyObject_GC_UnTrack(self);
    transaction_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef transaction_methods[] = {
    { "__enter__", (PyCFunction)transaction_enter, METH_NOARGS, "Begin the transaction." },
    { "__exit__", (PyCFunction)(void (*)(void))transaction_exit, METH_FASTCALL,
      "End it: the outermost end commits." },
    { NULL, NULL, 0, NULL },
};

static PyTypeObject TransactionType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pymem._fastpath.Transaction",
    .tp_basicsize = sizeof(Transaction),
    .tp_dealloc = (destructor)transaction_dealloc,
    .tp_traverse = (traverseproc)transaction_traverse,
    .tp_clear = (inquiry)transaction_clear,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A MemorySystem transaction, entered and left in C (see guards.c).",
    .tp_new = transaction_new,
    .tp_methods = transaction_methods,
};


/* Intern the names Transaction reads, ready the types, add them to the module. */
int fp_guards_init(PyObject *module)
{
    str_lock = PyUnicode_InternFromString("_lock");
    str_depth = PyUnicode_InternFromString("_depth");
    str_pending = PyUnicode_InternFromString("_update_pending");
    str_commit = PyUnicode_InternFromString("_commit");
    str_acquire = PyUnicode_InternFromString("acquire");
    str_release = PyUnicode_InternFromString("release");
    if (!str_lock || !str_depth || !str_pending || !str_commit || !str_acquire || !str_release) {
        return -1;
    }
    if (PyType_Ready(&ReadSectionType) < 0 || PyType_Ready(&SettingType) < 0
        || PyType_Ready(&TransactionType) < 0) {
        return -1;
    }
    if (PyModule_AddObjectRef(module, "ReadSection", (PyObject *)&ReadSectionType) < 0 ||
        PyModule_AddObjectRef(module, "Setting", (PyObject *)&SettingType) < 0 ||
        PyModule_AddObjectRef(module, "Transaction", (PyObject *)&TransactionType) < 0) {
        return -1;
    }
    return 0;
}
