from typing import Any, Callable, Dict, Tuple, final

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
