"""What the processes of one server know of each other: each worker's state and, if it failed, why.

The board lives in anonymous shared memory made before the workers are forked. Each process writes
only its own slot, so no lock spans processes; any process can read every slot, which is how a
readiness probe answered by one worker speaks for all of them.
"""

from __future__ import annotations

import mmap
import struct

LOADING, READY, FAILED = 0, 1, 2
_ERROR_BYTES = 2048
_SLOT = struct.Struct(f"=Bxxxi{_ERROR_BYTES}s")  # state, pid, error text (UTF-8, NUL-padded)


class Board:
    def __init__(self, workers: int) -> None:
        self.workers = workers
        # Slots 0..workers-1 are the workers; the last one is the supervisor (it loads some models).
        self.slots = workers + 1
        self._memory = mmap.mmap(-1, _SLOT.size * self.slots)

    @property
    def supervisor(self) -> int:
        return self.workers

    def set(self, slot: int, state: int, pid: int, error: str = "") -> None:
        text = error.encode("utf-8")[:_ERROR_BYTES]
        # The state byte goes last, so a reader that sees FAILED also sees the error text.
        _SLOT.pack_into(self._memory, slot * _SLOT.size, LOADING, pid, text)
        self._memory[slot * _SLOT.size] = state

    def state(self, slot: int) -> tuple[int, int, str]:
        state, pid, raw = _SLOT.unpack_from(self._memory, slot * _SLOT.size)
        return state, pid, raw.rstrip(b"\0").decode("utf-8", "replace")

    def all_ready(self) -> bool:
        return all(self.state(slot)[0] == READY for slot in range(self.workers))

    def ready_count(self) -> int:
        return sum(self.state(slot)[0] == READY for slot in range(self.workers))

    def failure(self) -> str | None:
        """The error of the first process whose model failed to load, if any."""
        for slot in range(self.slots):
            state, _, error = self.state(slot)
            if state == FAILED:
                return error
        return None
