"""Peak memory of a call, for the benchmark scripts (tools/benchmark_losses.py, tools/benchmark_step.py)."""

import gc
import re


def _status_bytes(key: str) -> int:
    with open('/proc/self/status') as f:
        return int(re.search(rf'^{key}:\s+(\d+) kB', f.read(), re.M).group(1)) * 1024


def peak_extra_bytes(fn) -> int:
    """Peak resident memory during ``fn()`` above the resident memory before it.

    Linux only: resets the peak (VmHWM) through /proc/self/clear_refs, then reads it back. Meant for a
    process started with glibc's ``MALLOC_MMAP_THRESHOLD_=65536``, where every tensor of 64 KiB or more
    is its own mapping and goes back to the OS when freed, so the resident size follows the live
    tensors and earlier candidates leave nothing behind to reuse.
    """
    gc.collect()
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')
    before = _status_bytes('VmRSS')
    fn()
    return _status_bytes('VmHWM') - before
