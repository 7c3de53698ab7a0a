"""Loading a scenario file: TOML, checked completely before anything runs."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from swapd.domain.errors import InvalidInput
from swapd.scenario.expect import Expect
from swapd.scenario.fields import Fields, describe_value, suggestion
from swapd.scenario.steps import ACTIONS, Action

STEP_KINDS = (*ACTIONS, "expect")
_ERROR_CODE_RE = re.compile(r"^[a-z][a-z_]{0,59}$")


@dataclass(frozen=True, slots=True)
class Step:
    number: int  # 1-based, as people count the [[step]] tables in the file
    kind: str
    action: Action | Expect
    note: str | None = None
    error: str | None = None  # the error code this step is expected to fail with


@dataclass(frozen=True, slots=True)
class Scenario:
    path: Path
    title: str
    description: str | None
    start: datetime
    steps: tuple[Step, ...]


def load(path: Path) -> Scenario:
    """Read and check a scenario; any problem is one :class:`InvalidInput` naming step and field."""
    name = path.name
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"no such scenario file: {path}") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{name}: not UTF-8 text") from None
    except OSError as error:
        raise InvalidInput(f"cannot read {path}: {error.strerror or error}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InvalidInput(f"{name}: not valid TOML: {error}") from None
    return parse(data, path)


def parse(data: dict[str, object], path: Path) -> Scenario:
    name = path.name
    top = Fields(data, name)
    title = top.text("title", path.stem)
    description = top.optional_text("description")
    start = top.instant("start")
    raw_steps = top.raw("step")
    top.finish()
    if not isinstance(raw_steps, list) or not raw_steps:
        raise top.error("step", "give the steps as [[step]] tables, at least one")
    steps = []
    # The last step that did something: what an ``expect.result`` checks.
    previous: tuple[int, type[Action]] | None = None
    for number, raw in enumerate(raw_steps, 1):
        where = f"{name} step {number}"
        if not isinstance(raw, dict):
            raise InvalidInput(f"{where}: must be a table ([[step]]), got {describe_value(raw)}")
        kind = raw.get("do")
        if kind is None:
            raise InvalidInput(f"{where}: required field 'do' missing (what the step does)")
        if not isinstance(kind, str) or kind not in STEP_KINDS:
            hint = suggestion(kind, STEP_KINDS) if isinstance(kind, str) else ""
            raise InvalidInput(f"{where}: unknown step {describe_value(kind)}{hint}")
        fields = Fields(raw, f"{where} ({kind})")
        fields.raw("do")
        note = fields.optional_text("note")
        step: Step
        if kind == "expect":
            step = Step(number, kind, Expect.parse(fields, previous), note)
        else:
            error = fields.optional_text("error")
            if error is not None and not _ERROR_CODE_RE.fullmatch(error):
                raise fields.error("error", f"must be an error code such as conflict, got {error!r}")
            action = ACTIONS[kind].parse(fields, number)
            step = Step(number, kind, action, note, error)
            if not action.moves_clock:
                previous = (number, type(action))
        fields.finish()
        steps.append(step)
    return Scenario(path, title, description, start, tuple(steps))
