"""Memory of a process tree (an nginx master and its workers) from /proc, for the benchmarks.

RSS counts every resident page in every process that maps it; PSS splits each shared page among the
processes sharing it, so the PSS of a tree is what the tree costs the machine; USS is what only the
tree's processes hold (private pages). Values in kB, as the kernel reports them.
"""
from __future__ import annotations

import threading
from pathlib import Path


def children(pid: int) -> list[int]:
    """The direct children of pid (an nginx master's workers, cache processes and old workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def memory_kb(pids: list[int]) -> dict[str, int]:
    """RSS, PSS and USS (Private_Clean + Private_Dirty) summed over pids; processes that are gone are skipped."""
    total = {"rss_kb": 0, "pss_kb": 0, "uss_kb": 0, "processes": 0}
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        fields = {}
        for line in text.splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                fields[parts[0].rstrip(":")] = int(parts[1])
        total["rss_kb"] += fields.get("Rss", 0)
        total["pss_kb"] += fields.get("Pss", 0)
        total["uss_kb"] += fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
        total["processes"] += 1
    return total


def tree_memory_kb(master: int) -> dict[str, int]:
    """memory_kb of a master and its direct children."""
    return memory_kb([master, *children(master)])


class PeakSampler:
    """Samples tree_memory_kb(master) every `interval` seconds in a thread until stop(); keeps the peak PSS
    sample and the most processes seen at once (a reload's old workers overlap the new ones)."""

    def __init__(self, master: int, interval: float = 0.5):
        self.master = master
        self.interval = interval
        self.peak: dict[str, int] = {"rss_kb": 0, "pss_kb": 0, "uss_kb": 0, "processes": 0}
        self.most_processes = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            sample = tree_memory_kb(self.master)
            self.samples += 1
            if sample["pss_kb"] > self.peak["pss_kb"]:
                self.peak = sample
            self.most_processes = max(self.most_processes, sample["processes"])
            self._stop.wait(self.interval)

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join(timeout=30)
        return dict(self.peak, most_processes=self.most_processes, samples=self.samples)
