"""What an AMI user of manager.conf receives, decided in Python: the benchmark's mirror of
Asterisk's read classes and advanced event filters (``eventfilter(action(...),name(...),
header(...),method(...))=value``), applied to a recorded unfiltered event stream.

Asterisk sends an event to a session when every class of the event (its ``Privilege``
header, less ``all``) is among the user's ``read`` classes, then when it passes the
filters: with include filters, it must match at least one; it must match no exclude
filter. A filter matches when the event has its name (if given) and its header (if given)
and the header's value (or, with no header, the whole event text) matches the expression
by the method. Legacy regex filters (``eventfilter=...``) are refused, not guessed at.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

METHODS = ("none", "exact", "starts_with", "ends_with", "contains", "regex")
_CRITERION = re.compile(r"(action|name|header|method)\(([^()]*)\)")


@dataclass(frozen=True)
class EventFilter:
    include: bool
    name: str | None
    header: str | None
    method: str
    value: str

    def matches(self, headers: Mapping[str, str], text: str) -> bool:
        if self.name is not None and headers.get("Event") != self.name:
            return False
        if self.header is not None:
            if self.header not in headers:
                return False
            data = headers[self.header]
        else:
            data = text
        if self.method == "none":
            return True
        if self.method == "exact":
            return data == self.value
        if self.method == "starts_with":
            return data.startswith(self.value)
        if self.method == "ends_with":
            return data.endswith(self.value)
        if self.method == "contains":
            return self.value in data
        return re.search(self.value, data) is not None


@dataclass(frozen=True)
class AmiUser:
    """One user section of manager.conf, as far as events are concerned."""

    name: str
    read: frozenset[str]
    filters: tuple[EventFilter, ...] = field(default=())

    def reads(self, headers: Mapping[str, str]) -> bool:
        """The read-class check: every class of the event is one the user may read."""
        privilege = headers.get("Privilege")
        if privilege is None:
            return True
        classes = {c.strip() for c in privilege.split(",")} - {"all", ""}
        return "all" in self.read or classes <= self.read

    def passes_filters(self, headers: Mapping[str, str], text: str = "") -> bool:
        includes = [f for f in self.filters if f.include]
        if includes and not any(f.matches(headers, text) for f in includes):
            return False
        return not any(f.matches(headers, text) for f in self.filters if not f.include)

    def receives(self, headers: Mapping[str, str], text: str = "") -> bool:
        return self.reads(headers) and self.passes_filters(headers, text)


def parse_filter(criteria: str, value: str) -> EventFilter:
    """``action(include),name(Hangup),header(Context),method(starts_with)`` and its value."""
    found: dict[str, str] = {}
    rest = criteria
    for match in _CRITERION.finditer(criteria):
        if match.group(1) in found:
            raise ValueError(f"{match.group(1)}() given twice in eventfilter({criteria})")
        found[match.group(1)] = match.group(2)
        rest = rest.replace(match.group(0), "", 1)
    if rest.replace(",", "").strip():
        raise ValueError(f"unsupported eventfilter criteria: {criteria!r}")
    action = found.get("action", "include")
    method = found.get("method", "none")
    if action not in ("include", "exclude"):
        raise ValueError(f"unsupported eventfilter action: {action!r}")
    if method not in METHODS:
        raise ValueError(f"unsupported eventfilter method: {method!r}")
    if method == "none" and value:
        raise ValueError(f"eventfilter({criteria}) has a value but no method(): ambiguous")
    return EventFilter(action == "include", found.get("name"), found.get("header"), method,
                       value)


def parse_user(text: str, section: int = 0) -> AmiUser:
    """The ``section``-th user section of a manager.conf (or of its Jinja template, whose
    section names and secrets may be placeholders): its read classes and event filters."""
    sections: list[tuple[str, list[str]]] = []
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line or line.startswith(("{%", "#")):
            continue
        if line.startswith("[") and line.endswith("]"):
            sections.append((line[1:-1], []))
        elif sections:
            sections[-1][1].append(line)
    if section >= len(sections):
        raise ValueError(f"no user section #{section}")
    name, lines = sections[section]
    read: set[str] = set()
    filters = []
    for line in lines:
        key, _, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if key == "read":
            read = {c.strip() for c in value.split(",") if c.strip()}
        elif key.startswith("eventfilter(") and key.endswith(")"):
            filters.append(parse_filter(key[len("eventfilter("):-1], value))
        elif key == "eventfilter":
            raise ValueError(f"legacy eventfilter not mirrored: {line!r}")
    return AmiUser(name, frozenset(read), tuple(filters))


def backend_user(template: Path) -> AmiUser:
    """The backend's AMI user as asterisk_conf/manager.conf.j2 defines it."""
    return parse_user(template.read_text(encoding="utf-8"))


def headers_of(raw: str) -> dict[str, str]:
    """An event's headers from its text (the first value of a repeated header)."""
    headers: dict[str, str] = {}
    for line in raw.split("\r\n"):
        key, sep, value = line.partition(": ")
        if sep and key not in headers:
            headers[key] = value
    return headers


def received_by(user: AmiUser, raws: Iterable[str]) -> list[str]:
    """The events of a recorded stream (their raw text) this user would be sent."""
    return [raw for raw in raws if user.receives(headers_of(raw), raw)]
