/*
 * ucplan.c - the binding's map plan, in C (part of `pymem._ucglue`):
 * where two FlatViews' ranges differ, in whole unicorn pages, and which
 * unicorn mappings (RAM/ROM onto the regions' memory, MMIO for the rest) a
 * span of pages needs.  ucmap.c applies them; changed_spans() and plan()
 * show them to Python (tests, and the binding's docs).
 */
#include "ucglue.h"

int ucspans_push(ucspans *s, uint64_t first, u128 end)
{
    if (s->n == s->cap) {
        Py_ssize_t cap = s->cap ? s->cap * 2 : 8;
        ucspan *grown = PyMem_Realloc(s->at, (size_t)cap * sizeof(*grown));
        if (!grown) {
            PyErr_NoMemory();
            return -1;
        }
        s->at = grown;
        s->cap = cap;
    }
    s->at[s->n++] = (ucspan){ first, end };
    return 0;
}

void ucspans_free(ucspans *s)
{
    PyMem_Free(s->at);
    *s = (ucspans){ 0 };
}

static int span_order(const void *a, const void *b)
{
    uint64_t x = ((const ucspan *)a)->first, y = ((const ucspan *)b)->first;
    return x < y ? -1 : x > y;
}

void ucspans_merge(ucspans *s)
{
    if (s->n > 1) {
        qsort(s->at, (size_t)s->n, sizeof(*s->at), span_order);
    }
    Py_ssize_t out = 0;
    for (Py_ssize_t k = 0; k < s->n; k++) {
        if (out && s->at[k].first <= s->at[out - 1].end) {
            if (s->at[k].end > s->at[out - 1].end) {
                s->at[out - 1].end = s->at[k].end;
            }
        } else {
            s->at[out++] = s->at[k];
        }
    }
    s->n = out;
}

/* Whether two views' ranges map the same thing the same way (QEMU's
 * flatrange_equal, plus what unicorn's map depends on: the host memory and
 * the dirty-log mask, whose change moves a write hook). */
static bool range_equal(const pm_range *a, const pm_range *b)
{
    return a->start == b->start && a->last == b->last && a->offset == b->offset
           && a->region == b->region && a->flags == b->flags && a->host == b->host
           && a->dirty_mask == b->dirty_mask;
}

/* The ranges come from a walk of both views in address order as QEMU's
 * address_space_update_topology_pass makes it: an old range that is not in
 * the new view (deleted), a new range that was not in the old one (added). */
int ucplan_changed(const pm_range *old, Py_ssize_t old_n, const pm_range *new,
                   Py_ssize_t new_n, uint64_t page, ucspans *out)
{
    Py_ssize_t i = 0, j = 0;
    while (i < old_n || j < new_n) {
        const pm_range *a = i < old_n ? &old[i] : NULL;
        const pm_range *b = j < new_n ? &new[j] : NULL;
        const pm_range *changed;
        if (a && (!b || a->start < b->start || (a->start == b->start && !range_equal(a, b)))) {
            changed = a;
            i++;
        } else if (a && b && range_equal(a, b)) {
            i++;
            j++;
            continue;
        } else {
            changed = b;
            j++;
        }
        if (ucspans_push(out, changed->start & ~(page - 1),
                         ((u128)changed->last + page) / page * page) < 0) {
            return -1;
        }
    }
    return 0;
}

PyObject *ucglue_end_to_long(u128 end)
{
    if (end <= UINT64_MAX) {
        return PyLong_FromUnsignedLongLong((unsigned long long)end);
    }
    PyObject *last = PyLong_FromUnsignedLongLong(UINT64_MAX), *one = PyLong_FromLong(1);
    PyObject *r = last && one ? PyNumber_Add(last, one) : NULL;
    Py_XDECREF(last);
    Py_XDECREF(one);
    return r;
}

/*
 * changed_spans(old, old_n, new, new_n, page) -> [(lo, hi)]: where two
 * views' ranges differ, widened to whole pages of `page` bytes, in address
 * order and merged (hi exclusive, up to 2^64).  `old` and `new` are
 * pm_range arrays (their addresses; 0 with a count of 0 for none), alive
 * for the call.
 */
PyObject *ucplan_changed_spans(PyObject *module, PyObject *args)
{
    unsigned long long old_addr, new_addr, page;
    Py_ssize_t old_n, new_n;
    (void)module;
    if (!PyArg_ParseTuple(args, "KnKnK:changed_spans", &old_addr, &old_n, &new_addr, &new_n,
                          &page)) {
        return NULL;
    }
    if (old_n < 0 || new_n < 0 || (old_n && !old_addr) || (new_n && !new_addr) || !page
        || (page & (page - 1))) {
        PyErr_SetString(PyExc_ValueError,
                        "changed_spans: a view with ranges but no array, or a bad page size");
        return NULL;
    }
    ucspans spans = { 0 };
    if (ucplan_changed((const pm_range *)(uintptr_t)old_addr, old_n,
                       (const pm_range *)(uintptr_t)new_addr, new_n, page, &spans) < 0) {
        ucspans_free(&spans);
        return NULL;
    }
    ucspans_merge(&spans);
    PyObject *out = PyList_New(spans.n);
    for (Py_ssize_t k = 0; out && k < spans.n; k++) {
        PyObject *t = Py_BuildValue("(KN)", (unsigned long long)spans.at[k].first,
                                    ucglue_end_to_long(spans.at[k].end));
        if (!t) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, k, t);
    }
    ucspans_free(&spans);
    return out;
}

void ucplan_free(ucplan_t *p)
{
    PyMem_Free(p->at);
    *p = (ucplan_t){ 0 };
}

/* Append one mapping; MMIO that reaches the MMIO mapping before it widens
 * that one (pages several ranges share are one MMIO mapping). */
static int plan_add(ucplan_t *p, u128 first, u128 end, Py_ssize_t index, const pm_range *r)
{
    if (index < 0 && p->n && p->at[p->n - 1].index < 0 && first <= p->at[p->n - 1].end) {
        if (end > p->at[p->n - 1].end) {
            p->at[p->n - 1].end = end;
        }
        return 0;
    }
    if (p->n == p->cap) {
        Py_ssize_t cap = p->cap ? p->cap * 2 : 8;
        ucmapping *grown = PyMem_Realloc(p->at, (size_t)cap * sizeof(*grown));
        if (!grown) {
            PyErr_NoMemory();
            return -1;
        }
        p->at = grown;
        p->cap = cap;
    }
    ucmapping m = { (uint64_t)first, end, index, 0, 0, 0, 0 };
    if (index >= 0) {
        uint64_t delta = (uint64_t)first - r->start;
        m.host = (uint64_t)((uintptr_t)r->host + r->offset + delta);
        m.flags = r->flags;
        m.offset = r->offset + delta;
        m.dirty_mask = r->dirty_mask;
    }
    p->at[p->n++] = m;
    return 0;
}

/* A mapping with index >= 0 maps ranges[index]'s memory and covers whole
 * pages of it whose memory starts on a host page; everything else
 * (devices, the partial pages around memory) is MMIO. */
int ucplan_make(const pm_range *ranges, Py_ssize_t n, uint64_t lo, uint64_t hi, uint64_t page,
                ucplan_t *out)
{
    out->n = 0;
    /* The first range that ends at or after lo. */
    Py_ssize_t a = 0, b = n;
    while (a < b) {
        Py_ssize_t mid = a + (b - a) / 2;
        if (ranges[mid].last < lo) {
            a = mid + 1;
        } else {
            b = mid;
        }
    }
    const u128 pg = page;
    for (Py_ssize_t i = a; i < n && ranges[i].start <= hi; i++) {
        const pm_range *r = &ranges[i];
        u128 s = r->start > lo ? r->start : lo;
        u128 e = (u128)(r->last < hi ? r->last : hi) + 1;       /* exclusive */
        u128 first = (s + pg - 1) / pg * pg, last = e / pg * pg;
        bool memory = (r->flags & (PM_SECTION_RAM | PM_SECTION_ROMD))
                      && !(r->flags & PM_SECTION_IOMMU) && r->host && r->user
                      && ((uintptr_t)r->host + r->offset + (uint64_t)(first - r->start))
                             % page == 0;
        int st = 0;
        if (first < last && memory) {
            if (s < first) {
                st = plan_add(out, s / pg * pg, first, -1, r);
            }
            if (!st) {
                st = plan_add(out, first, last, i, r);
            }
            if (!st && last < e) {
                st = plan_add(out, last, (e + pg - 1) / pg * pg, -1, r);
            }
        } else {
            st = plan_add(out, s / pg * pg, (e + pg - 1) / pg * pg, -1, r);
        }
        if (st < 0) {
            return -1;
        }
    }
    return 0;
}

/*
 * plan(ranges, n, first, last, page) -> [(first, last, index, host, flags,
 * offset, dirty_mask)]: the unicorn mappings [first, last] needs, from the
 * view's ranges that overlap it, page-aligned, in address order (index -1
 * and host 0 for MMIO).
 */
PyObject *ucplan_plan(PyObject *module, PyObject *args)
{
    unsigned long long addr, lo, hi, page;
    Py_ssize_t n;
    (void)module;
    if (!PyArg_ParseTuple(args, "KnKKK:plan", &addr, &n, &lo, &hi, &page)) {
        return NULL;
    }
    if (n < 0 || (n && !addr) || !page || (page & (page - 1)) || hi < lo) {
        PyErr_SetString(PyExc_ValueError, "plan: bad view or span");
        return NULL;
    }
    ucplan_t p = { 0 };
    if (ucplan_make((const pm_range *)(uintptr_t)addr, n, lo, hi, page, &p) < 0) {
        ucplan_free(&p);
        return NULL;
    }
    PyObject *out = PyList_New(p.n);
    for (Py_ssize_t k = 0; out && k < p.n; k++) {
        const ucmapping *m = &p.at[k];
        PyObject *t = Py_BuildValue("(KKnKIKI)", (unsigned long long)m->first,
                                    (unsigned long long)(m->end - 1), m->index,
                                    (unsigned long long)m->host, (unsigned)m->flags,
                                    (unsigned long long)m->offset, (unsigned)m->dirty_mask);
        if (!t) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, k, t);
    }
    ucplan_free(&p);
    return out;
}
