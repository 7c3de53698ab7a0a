"""Several server processes (`swapd serve --workers N`) write their JSON log records to one
stderr: each record must reach it in one write, or two processes' records share a line and the
line is not JSON any more (structlog's PrintLogger wrote a record and its newline apart: 2,716
bad lines of 40,000 from two processes here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

WRITER = """
import structlog
from swapd.logs import configure_logging

configure_logging(json_logs=True)
log = structlog.get_logger()
for i in range({count}):
    log.info("station_connected", station_id=f"ST{{i}}", worker="{name}")
"""


def test_two_processes_logging_at_once_keep_one_record_a_line() -> None:
    count = 5_000
    # Both children write to one pipe as their stderr, as workers inherit the server's.
    read_end, write_end = os.pipe()
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER.format(count=count, name=name)], stderr=write_end)
        for name in ("a", "b")
    ]
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        out = pipe.read()  # until both writers have exited
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0]
    records = []
    for line in out.decode().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"not one JSON record: {line[:200]!r}") from None
    assert len(records) == 2 * count
    assert {r["worker"] for r in records} == {"a", "b"}
