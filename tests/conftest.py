"""Shared test fixtures."""

import os
from pathlib import Path

import pytest
import torch

from averis import _shared_record


def pytest_configure(config):
    # CI's first pass names a file in $AVERIS_RECORD_SHARED: the tests that look up ../shared are recorded there
    # (averis._shared_record) and run again without it. The main process starts the file empty; the workers
    # of pytest-xdist and the processes the tests start append to it.
    record = os.environ.get(_shared_record.ENV)
    if record and not hasattr(config, "workerinput"):
        Path(record).write_text("")
    # Under pytest-xdist the workers share the cores: threads of their own each (OpenMP threads that wait for a
    # core another process holds spin), passed on to the processes the tests start. An explicit
    # OMP_NUM_THREADS wins.
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    if workers.isdigit() and "OMP_NUM_THREADS" not in os.environ:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        threads = max(1, cores // int(workers))
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)


def pytest_terminal_summary(terminalreporter, config):
    record = os.environ.get(_shared_record.ENV)
    if record and not hasattr(config, "workerinput") and Path(record).is_file():
        lines = set(Path(record).read_text().splitlines())
        terminalreporter.write_line(f"{len(lines)} tests or test files looked up ../shared (recorded in {record})")


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors gain nothing from threads, and on a shared 2-core machine OpenMP threads thrash."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
