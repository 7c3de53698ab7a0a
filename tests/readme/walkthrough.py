"""Reading the README's commands, and filling in what a reader copies from one answer to the next.

The README marks each block the walkthrough runs with an HTML comment right before its fence:
``<!-- walkthrough: NAME ... -->`` then a ```` ```sh ```` block. A command is one line of the
block, or several joined by a trailing backslash; text from a ``#`` outside quotes is a comment.

What a reader would type differently from the README, and how the test does it for them:

- ``"password": "..."`` is the password the last ``swapd user add`` printed;
- ``sws_...`` is the ``token`` of the last JSON answer that had one (a login or a sign-up);
- ``pay_...`` is the ``id`` of the last JSON answer naming a payment (``pay_`` ids);
- port 8000 (``swapd serve``'s default, ``localhost:8000`` in the curl lines) is a free port
  instead, so that the test never talks to another server on the machine.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field

DEFAULT_PORT = 8000
_MARKED_BLOCK = re.compile(r"<!-- walkthrough: ([\w-]+)[^>]*-->\n```sh\n(.*?)^```", re.S | re.M)
_ENV_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=\S*")
_DEFAULT_ADDRESS = re.compile(rf"\b(localhost|127\.0\.0\.1):{DEFAULT_PORT}\b")
_USER_PASSWORD = re.compile(r"^password \(shown once\): (\S+)$", re.M)
_STATION_PASSWORD = re.compile(r"^password:\s+(\S+)$", re.M)


class WalkthroughError(AssertionError):
    """The README or a command's answer is not what the walkthrough can follow."""


def marked_blocks(readme: str) -> dict[str, list[str]]:
    """The commands of every marked block, by block name, in the README's order."""
    blocks: dict[str, list[str]] = {}
    for name, body in _MARKED_BLOCK.findall(readme):
        if name in blocks:
            raise WalkthroughError(f"the README marks two blocks 'walkthrough: {name}'")
        blocks[name] = commands(body)
    return blocks


def commands(block: str) -> list[str]:
    """The block's commands: comments removed, continued lines joined, blank lines dropped."""
    found: list[str] = []
    pending = ""
    for raw in block.splitlines():
        line = _without_comment(raw).rstrip()
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        line = (pending + line.strip()).strip()
        pending = ""
        if line:
            found.append(line)
    if pending.strip():
        raise WalkthroughError(f"the block ends inside a continued command: {pending.strip()!r}")
    return found


def _without_comment(line: str) -> str:
    quote = ""
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def is_serve(command: str) -> bool:
    """``swapd serve``, possibly after environment assignments (``X=y swapd serve``)."""
    words = shlex.split(command)
    while words and _ENV_ASSIGNMENT.fullmatch(words[0]):
        words = words[1:]
    return words[:2] == ["swapd", "serve"]


@dataclass
class Remembered:
    """What earlier answers said that later commands need."""

    port: int
    user_password: str | None = None
    token: str | None = None
    payment_id: str | None = None
    station_passwords: dict[str, str] = field(default_factory=dict)

    def fill_in(self, command: str) -> str:
        """The command as the reader would type it on this machine (see the module's list)."""
        command = _DEFAULT_ADDRESS.sub(rf"\g<1>:{self.port}", command)
        if is_serve(command):
            command += f" --port {self.port}"
        for placeholder, value, source in (
            ('"password": "..."', self.user_password, "a `swapd user add`"),
            ("sws_...", self.token, "a JSON answer with a token"),
            ("pay_...", self.payment_id, "a JSON answer with a pay_ id"),
        ):
            if placeholder in command:
                if value is None:
                    raise WalkthroughError(f"{placeholder} in {command!r} but no {source} before it")
                filled = f'"password": "{value}"' if placeholder.startswith('"') else value
                command = command.replace(placeholder, filled)
        return command

    def learn(self, command: str, stdout: str) -> None:
        words = shlex.split(command)
        if words[:3] == ["swapd", "station", "add"]:
            found = _STATION_PASSWORD.search(stdout)
            if found is None:
                raise WalkthroughError(f"`{command}` printed no station password:\n{stdout}")
            self.station_passwords[words[3]] = found.group(1)
        elif words[:3] == ["swapd", "user", "add"]:
            found = _USER_PASSWORD.search(stdout)
            if found is None:
                raise WalkthroughError(f"`{command}` printed no password:\n{stdout}")
            self.user_password = found.group(1)
        answer = json_object(stdout)
        if answer is None:
            return
        if isinstance(answer.get("token"), str):
            self.token = answer["token"]
        if isinstance(answer.get("id"), str) and answer["id"].startswith("pay_"):
            self.payment_id = answer["id"]


def json_object(text: str) -> dict[str, object] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def refusal(stdout: str) -> dict[str, object] | None:
    """swapd's API answers every refusal with JSON ``{"code", "detail"}``; curl -s still exits 0."""
    answer = json_object(stdout)
    return answer if answer is not None and {"code", "detail"} <= answer.keys() else None
