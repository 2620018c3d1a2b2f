"""Built-in scorers of the output's form: a regular expression, valid JSON, a JSON Schema.

All are binary: the form is there or it is not. The pattern or schema is part of the
scorer's version (see :mod:`feedbackloop.scoring._options`), so two configurations never
share cached results.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from ..errors import InvalidInput
from ._options import field_reader, scorer_version, want_bool
from .base import ScoreError, ScoreItem, ScorerInfo

__all__ = ["REGEX_FLAGS", "JSONSchema", "JSONValid", "RegexMatch", "parse_json"]

# Flags by their usual one-letter names (as in Perl, JavaScript and Python's inline flags).
REGEX_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}


class RegexMatch:
    """True when ``pattern`` (Python ``re`` syntax) matches somewhere in ``field`` (or the
    whole field with ``full=True``). ``flags`` is a string of letters from ``imsx``."""

    def __init__(self, *, pattern: str, field: str = "output", flags: str = "",
                 full: bool = False) -> None:
        if not isinstance(pattern, str):
            raise InvalidInput("option 'pattern' must be a string", field="pattern")
        if not isinstance(flags, str) or any(f not in REGEX_FLAGS for f in flags):
            raise InvalidInput(f"option 'flags' must be letters from {''.join(REGEX_FLAGS)}; "
                               f"got {flags!r}", field="flags")
        want_bool(full, "full")
        self._read = field_reader(field)
        bits = 0
        for f in flags:
            bits |= REGEX_FLAGS[f]
        try:
            compiled = re.compile(pattern, bits)
        except re.error as exc:
            raise InvalidInput(f"option 'pattern' is not a valid regular expression: {exc}",
                               field="pattern") from None
        self._test = compiled.fullmatch if full else compiled.search
        self._field = field
        options = {"pattern": pattern, "field": field, "flags": "".join(sorted(set(flags))),
                   "full": full}
        self.info = ScorerInfo(
            name="regex_match", version=scorer_version("1", options), output_type="binary",
            needs=frozenset({field}), options=options,
            description=f"The {field} {'matches' if full else 'contains a match of'} "
                        f"/{pattern}/{options['flags']}.")

    def score(self, items: Sequence[ScoreItem]) -> list[Any]:
        test, read = self._test, self._read
        out: list[Any] = []
        for item in items:
            text = read(item)
            out.append(ScoreError(f"no {self._field}") if text is None
                       else test(text) is not None)
        return out


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(text: str) -> Any:
    """Parse strict JSON (RFC 8259): Python's parser also takes NaN and Infinity, which
    other parsers reject, so they are refused here. Raises ValueError."""
    return json.loads(text, parse_constant=_refuse_constant)


class JSONValid:
    """True when the whole output is one strict JSON value (surrounding whitespace allowed;
    NaN and Infinity refused; no Markdown code fences stripped)."""

    def __init__(self) -> None:
        self.info = ScorerInfo(
            name="json_valid", version="1", output_type="binary", needs=frozenset({"output"}),
            description="The output is valid JSON (RFC 8259).")

    def score(self, items: Sequence[ScoreItem]) -> list[Any]:
        out: list[Any] = []
        for item in items:
            text = item.output
            # Every JSON text starts, after whitespace, with one of these: skip the parser
            # (and its exception) for prose, the common case.
            head = text.lstrip(" \t\r\n")[:1]
            if not head or head not in '{["-0123456789tfn':
                out.append(False)
                continue
            try:
                parse_json(text)
            except (ValueError, RecursionError):
                out.append(False)
            else:
                out.append(True)
        return out


class JSONSchema:
    """True when the output is strict JSON valid under ``schema`` (a dict or its JSON text;
    the draft is taken from ``$schema``, 2020-12 by default; ``format`` is not asserted)."""

    def __init__(self, *, schema: dict[str, Any] | str) -> None:
        import jsonschema
        from jsonschema.exceptions import SchemaError
        from jsonschema.validators import validator_for

        if isinstance(schema, str):
            try:
                schema = parse_json(schema)
            except (ValueError, RecursionError) as exc:
                raise InvalidInput(f"option 'schema' is not valid JSON: {exc}",
                                   field="schema") from None
        if not isinstance(schema, dict | bool):
            raise InvalidInput("option 'schema' must be a JSON object (or its text)",
                               field="schema")
        cls = validator_for(schema, default=jsonschema.Draft202012Validator)
        try:
            cls.check_schema(schema)
        except SchemaError as exc:
            where = "/".join(map(str, exc.path)) or "(root)"
            raise InvalidInput(f"option 'schema' is not a valid JSON Schema at {where}: "
                               f"{exc.message}", field="schema") from None
        self._is_valid = cls(schema).is_valid
        options = {"schema": schema}
        self.info = ScorerInfo(
            name="json_schema",
            version=scorer_version("1", options, libraries=("jsonschema",)),
            output_type="binary", needs=frozenset({"output"}), options=options,
            description="The output is JSON valid under the given JSON Schema.")

    def score(self, items: Sequence[ScoreItem]) -> list[Any]:
        out: list[Any] = []
        for item in items:
            try:
                value = parse_json(item.output)
            except (ValueError, RecursionError):
                out.append(False)
                continue
            out.append(bool(self._is_valid(value)))
        return out
