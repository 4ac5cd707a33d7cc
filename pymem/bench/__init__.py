"""`pymem bench`: pymem against what a Python user would otherwise use, in one run.

The machine is a real QEMU map (the bundled q35-booted one by default).  Every
operation is timed for pymem and for its peers on the same addresses, drawn
from the machine's layout, so the ratios in the table are the result.  Each
measurement is repeated, pymem and its peers interleaved round-robin in CPU
time (a busy machine slows all of them alike, and other processes do not
count); the table shows the median ns per operation and the spread
(min..max of the repeats).  Every implementation is called the same way: a
bound method or builtin taken once and called straight from the loop.  Peers that are not installed (numpy,
intervaltree, unicorn: `pip install 'pymem-qemu[peers]'`) are left out.

The package: `_core` (results, goals, timing), `_workloads` (addresses,
synthetic machines), `_cases` (lookups, accesses), `_qemu` (beside QEMU's
algorithm), `_unicorn` (the example board), `_commit` (commits), `_run`
(the whole run, the table).

Thread safety:
    A benchmark run is meant for the main thread of a process of its own,
    with nothing else touching the machine it measures: it times accesses,
    lookups and commits on that machine, and the timings assume no other
    thread competes for the GIL.  The results (`Result`, `Case`, `Goal`) are
    plain values.  Times are ns per operation (CPU time, round-robin
    interleaved); ratios are pymem's time over the peer's.
"""
from __future__ import annotations

from ._core import (Timed as Timed, PAGE as PAGE, WINDOW as WINDOW, Result as Result, Case as Case, Goal as Goal, GOALS as GOALS, COMMIT_GOAL_NS as COMMIT_GOAL_NS, SMALL_COMMIT_GOAL_NS as SMALL_COMMIT_GOAL_NS, REGION_GOAL_NS as REGION_GOAL_NS, SCALING_SIZES as SCALING_SIZES, QUICK_SCALING_SIZES as QUICK_SCALING_SIZES, time_per_op as time_per_op, _loop as _loop, _loop_then as _loop_then, _loop_after as _loop_after, _loop_between as _loop_between, time_interleaved as time_interleaved, _row as _row, _repeat as _repeat, run_cases as run_cases)
from ._workloads import (BisectMap as BisectMap, sample_addresses as sample_addresses, _view as _view, memory_space as memory_space, _ram_range as _ram_range, _mmio_range as _mmio_range, subpage_addresses as subpage_addresses, _mix as _mix, _DEVICE_OPS as _DEVICE_OPS, synthetic_system as synthetic_system)
from ._cases import (lookup_cases as lookup_cases, _unicorn as _unicorn, access_cases as access_cases)
from ._qemu import (QEMU_MIXES as QEMU_MIXES, QEMU_GOALS as QEMU_GOALS, qemu_reference as qemu_reference, qemu_lookup_cases as qemu_lookup_cases, qemu_access_cases as qemu_access_cases, python_lookup_cases as python_lookup_cases, qemu_goals as qemu_goals, run_qemu_cases as run_qemu_cases)
from ._unicorn import (_RV32_LOOPS as _RV32_LOOPS, _MMIO_LOOP as _MMIO_LOOP, _MMIO_END as _MMIO_END, _RAM_LOOP as _RAM_LOOP, _RAM_END as _RAM_END, _UC_CODE as _UC_CODE, _UC_DATA as _UC_DATA, _UC_DEVICE as _UC_DEVICE, _UC_WINDOW as _UC_WINDOW, _Register as _Register, unicorn_cases as unicorn_cases)
from ._commit import (commit_case as commit_case, small_commit_cases as small_commit_cases, run_scaling as run_scaling)
from ._run import (check_goals as check_goals, format_table as format_table, load_system as load_system, ExtraRows as ExtraRows, run_bench as run_bench)

__all__ = ['Timed', 'PAGE', 'WINDOW', 'Result', 'Case', 'Goal', 'GOALS', 'COMMIT_GOAL_NS', 'SMALL_COMMIT_GOAL_NS', 'REGION_GOAL_NS', 'SCALING_SIZES', 'QUICK_SCALING_SIZES', 'time_per_op', 'BisectMap', 'sample_addresses', 'memory_space', 'lookup_cases', 'access_cases', 'QEMU_MIXES', 'QEMU_GOALS', 'qemu_reference', 'time_interleaved', 'subpage_addresses', 'qemu_lookup_cases', 'qemu_access_cases', 'python_lookup_cases', 'qemu_goals', 'run_qemu_cases', 'unicorn_cases', 'commit_case', 'small_commit_cases', 'synthetic_system', 'run_scaling', 'run_cases', 'check_goals', 'format_table', 'load_system', 'ExtraRows', 'run_bench']
