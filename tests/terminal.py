"""Run a command with its stderr on a pseudo-terminal, as a user at a shell
sees it (progress is shown only there), its stdout captured."""
from __future__ import annotations

import os
import pty
import subprocess
import threading
from typing import List, Tuple


def run_with_stderr_on_a_terminal(argv: List[str], timeout: float = 600) -> Tuple[int, str, str]:
    """(exit status, stdout, stderr) of `argv`; stderr is a pty, so
    `isatty()` is true in the child."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    chunks: List[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:   # EIO: the child closed its end
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain)
    reader.start()
    out, _ = proc.communicate(timeout=timeout)
    reader.join(timeout)
    os.close(master)
    err = b"".join(chunks).decode().replace("\r\n", "\n")
    return proc.returncode, out.decode(), err
