from typing import Any, Callable, Dict, List, Tuple, final

@final
class Port:
    busy: int
    active: int
    def __init__(self, loads: Tuple[Callable[[int], int], ...],
                 stores: Tuple[Callable[[int, int], None], ...],
                 on_error: Callable[[BaseException, int, int, bool], None]) -> None: ...

@final
class Window:
    base: int
    def __init__(self, port: Port, base: int) -> None: ...

@final
class DirtyRange:
    def __init__(self, dirty: int, start: int, size: int, offset: int, page_bits: int,
                 mask: int, keep: Any) -> None: ...

def callbacks() -> Dict[str, int]: ...
def changed_spans(old: int, old_n: int, new: int, new_n: int,
                  page: int) -> List[Tuple[int, int]]: ...
def plan(ranges: int, n: int, first: int, last: int,
         page: int) -> List[Tuple[int, int, int, int, int, int, int]]: ...
