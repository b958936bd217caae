"""The tests of CI's first pass that looked up ../shared (averis/_shared_record.py), one a line, for the second.

Deduplicated in first-seen order; a test whose file is listed (a lookup in a fixture) is left to its file.
Fails when the record is missing (the recording is broken) or holds a lookup outside any test.
"""

import sys
from pathlib import Path

record = Path(sys.argv[1])
if not record.is_file():
    sys.exit(f"{record} is missing: the first pass recorded nothing, not even an empty file "
             "(tests/conftest.py starts it when AVERIS_RECORD_SHARED is set)")
lines = list(dict.fromkeys(line for line in record.read_text().splitlines() if line))
outside = [line for line in lines if line.startswith("!")]
if outside:
    sys.exit("../shared was looked up outside any test, so which tests depend on it is unknown:\n" + "\n".join(outside))
files = {line for line in lines if "::" not in line}
for line in lines:
    if line in files or line.split("::")[0] not in files:
        print(line)
