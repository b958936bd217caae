"""Which tests consult the data beside the repository (../shared): a record for CI, off unless asked for.

When $AVERIS_RECORD_SHARED names a file, every lookup of the offline corpus or of the evaluation files at their
default place (no $AVERIS_CORPUS, no $AVERIS_EVAL_DATA, no --data) appends the running test's node id to that
file, one a line. The test is the one in $PYTEST_CURRENT_TEST, which the processes a test starts inherit with
the file's name. A lookup in a fixture's setup or teardown records the test's file instead (a fixture of wider
scope serves the file's other tests too); a lookup outside any test records a line that starts with "!".
CI runs the recorded tests a second time as on a fresh clone (AVERIS_CORPUS=none); without the variable this
does nothing.
"""

from __future__ import annotations

import os

ENV = "AVERIS_RECORD_SHARED"


def note(what: str) -> None:
    """Record that the current test looked up `what` (e.g. "corpus") at its default place under ../shared."""
    path = os.environ.get(ENV)
    if not path:
        return
    current = os.environ.get("PYTEST_CURRENT_TEST", "")
    nodeid, _, when = current.rpartition(" (")  # "tests/test_x.py::test_y[p] (call)"
    if not nodeid:
        line = f"!{what} looked up outside a test (pid {os.getpid()})"
    elif when.rstrip(")") == "call":
        line = nodeid
    else:
        line = nodeid.split("::")[0]
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())  # one write on an O_APPEND file: whole lines from every process
    finally:
        os.close(fd)
