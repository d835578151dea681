"""Command-line options with environment twins and ``*_FILE`` secrets, declared as data.

Every option is one :class:`Option` row, declared on the dataclass field it fills
(:func:`stackwatch.core.option_fields.option`) or, for a command's flat options, in a table.
The same rows build the argparse parser, resolve values (flag, else environment, else
``<ENV>_FILE``, else default) and render the README's option table, so the three can never
disagree.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import yaml

from stackwatch.core.redact import redact_text

__all__ = ["Option", "OptionError", "SafeArgumentParser", "SafeValueError", "add_options", "default_value",
           "from_environment", "markdown_table", "non_negative_float", "positive_int", "positive_float", "ratio",
           "read_yaml", "regex", "resolve_options"]


class OptionError(ValueError):
    """A bad option value; the message names the flag or variable and the (redacted) value."""


class SafeValueError(ValueError):
    """A parse error whose message is known to hold no secret (e.g. an invalid DSN, its password
    masked): shown even for ``secret`` options, whose other parse errors are not echoed."""


@dataclass(frozen=True)
class Option:
    """One flag and its environment twin (``flag`` None: a setting read from the environment only).

    ``repeat`` options collect every occurrence; from the environment their values are
    separated by newlines (``split`` overrides that, e.g. ``","`` for names).
    ``secret`` options also read ``<ENV>_FILE`` and are never echoed in errors.
    ``fallback`` is a more general variable read when ``env`` is unset (OpenTelemetry's
    ``OTEL_PYTHON_EXCLUDED_URLS`` behind ``OTEL_PYTHON_FASTAPI_EXCLUDED_URLS``).
    ``coerce``: a value given in code that is not a string goes through ``parse`` too (lists, sets).
    """

    flag: str | None
    env: str
    help: str = ""
    default: Any = None
    parse: Callable[[str], Any] = str
    repeat: bool = False
    secret: bool = False
    split: str = "\n"
    metavar: str | None = None
    fallback: str | None = None
    coerce: bool = False

    @property
    def dest(self) -> str:
        """The key of its value: the flag's name with underscores (the variable's, lower case,
        for a setting without a flag)."""
        return (self.flag or self.env.lower()).lstrip("-").replace("-", "_").replace(".", "_")


def positive_int(text: str) -> int:
    """Parser for counts and sizes."""
    value = int(text)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def positive_float(text: str) -> float:
    """Parser for durations in seconds (``inf`` and ``nan`` are not durations)."""
    value = float(text)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError("must be a positive, finite number")
    return value


def non_negative_float(text: str) -> float:
    """Parser for durations where 0 means "off" (``inf`` and ``nan`` are not durations)."""
    value = float(text)
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError("must be a finite number >= 0")
    return value


def ratio(text: str) -> float:
    """Parser for shares and sample rates: a number from 0 to 1."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise ValueError("must be a number between 0 and 1")
    return value


def regex(text: str) -> re.Pattern[str]:
    """Parser for regular expressions; the error says why the pattern does not compile."""
    try:
        return re.compile(text)
    except re.error as error:
        raise ValueError(f"not a regular expression: {error}") from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in a mapping is an error (PyYAML keeps
    the last one silently: a second entry of the same name would replace the first)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) or key is None:
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {redact_text(str(key))!r}", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep)


def read_yaml(path: str, option: str) -> Any:
    """The YAML document in the file an option names (``--targets-file``, ``--web.config.file``).

    Errors name the option, the file and the line and column of a syntax error, never the line
    itself: PyYAML quotes it, and in a targets file it may hold a DSN with its password.
    """
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise OptionError(f"{option}: cannot read {redact_text(path)!r}: {error.strerror}") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = "" if mark is None else f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = redact_text(str(getattr(error, "problem", None) or "syntax error"))
        raise OptionError(f"{option}: {redact_text(path)!r} is not valid YAML{where}: {problem}") from None


class SafeArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose errors never echo a value from the command line.

    argparse quotes what it did not expect (``unrecognized arguments: ...``, ``invalid choice``,
    ``ambiguous option: --pg=...``, ``ignored explicit argument``), and that is often a DSN
    with its password: a mistyped ``--postgres-dsnn=postgresql://u:pw@h`` or a stray positional.
    Every command-line word that is not a known flag or command is hidden in the message; a
    flag-like word keeps its name (``--postgres-dsnn=<hidden>``).
    """

    _argv: Sequence[str] = ()

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        self._argv = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:
        super().error(_hide_words(message, self._argv, self._known_words()))

    def _known_words(self) -> set[str]:
        known = set(self._option_string_actions)
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                known |= set(action.choices)
        return known


_FLAG_NAME = re.compile(r"--[A-Za-z0-9][A-Za-z0-9._-]*")


def _hide_words(message: str, argv: Sequence[str], known: set[str]) -> str:
    """``message`` with every word of ``argv`` (as given and as ``repr`` quotes it) hidden."""
    shown: dict[str, str] = {}
    for word in argv:
        if word in known:
            continue
        flag, equals, value = word.partition("=")
        if _FLAG_NAME.fullmatch(flag):
            shown[word] = flag + ("=<hidden>" if equals else "")
            if equals:
                shown.setdefault(value, "<hidden>")
        else:
            shown[word] = "<hidden>"
            if word.startswith("-") and not word.startswith("--"):  # -hVALUE: argparse quotes VALUE,
                start = 2  # after as many more one-letter flags as it read there (-hhVALUE)
                while start < len(word) and "-" + word[start] in known:
                    start += 1
                shown.setdefault(word[start:], "<hidden>")
    marks: list[str] = []
    for word in sorted((w for w in shown if w and shown[w] != w), key=len, reverse=True):
        for form in {word, repr(word)[1:-1]}:
            message = message.replace(form, f"\0{len(marks)}\0")
        marks.append(shown[word])
    for index, replacement in enumerate(marks):
        message = message.replace(f"\0{index}\0", replacement)
    return redact_text(message)


def add_options(parser: argparse.ArgumentParser, options: Sequence[Option], title: str) -> None:
    """Add ``options`` to ``parser`` under a titled group; defaults resolve later."""
    group = parser.add_argument_group(title)
    for opt in options:
        if opt.flag is None:
            raise TypeError(f"{opt.env} is a setting without a flag: it has no place on a command line")
        env = f"${opt.env}" + (f" or ${opt.env}_FILE" if opt.secret else "")
        default = "" if opt.default in (None, [], "") else f"; default {opt.default}"
        group.add_argument(opt.flag, dest=opt.dest, action="append" if opt.repeat else "store",
                           default=None, metavar=opt.metavar,
                           help=f"{opt.help} ({env}{default})".replace("%", "%%"))


def _parse(opt: Option, raw: str, source: str) -> Any:
    try:
        return opt.parse(raw)
    except (ValueError, TypeError) as error:
        shown = "<redacted>" if opt.secret else repr(redact_text(raw))  # a DSN given to the wrong flag
        detail = "" if opt.secret and not isinstance(error, SafeValueError) else f": {redact_text(str(error))}"
        raise OptionError(f"{source}: invalid value {shown}{detail}") from None


def resolve_options(options: Sequence[Option], namespace: argparse.Namespace,
                    environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Values by ``dest``: the flag wins, then the variable, then ``<ENV>_FILE``, then the default."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for opt in options:
        given = _given(opt, namespace, env)
        if given is None:
            values[opt.dest] = default_value(opt)
            continue
        raws, source = given
        parsed = [_parse(opt, raw, source) for raw in raws]
        values[opt.dest] = parsed if opt.repeat else parsed[0]
    return values


def _given(opt: Option, namespace: argparse.Namespace, env: Mapping[str, str]) -> tuple[list[str], str] | None:
    """The raw values of ``opt`` and where they came from (the flag, the variable or its file)."""
    given = getattr(namespace, opt.dest, None)
    if given is not None:
        return (given if opt.repeat else [given]), str(opt.flag)
    found = from_environment(opt, env)
    if found is None:
        return None
    text, variable = found
    return _split(opt, text), f"${variable}"


def from_environment(opt: Option, env: Mapping[str, str], keep_empty: bool = False) -> tuple[str, str] | None:
    """The raw text of ``opt`` in ``env`` and the variable it came from: ``opt.env``, else its
    ``fallback``, else (secrets) the file ``<ENV>_FILE`` names; None when none is set.

    An empty variable counts as unset unless ``keep_empty`` (the instrumentation parses it, as
    the OpenTelemetry SDK does: ``STACKWATCH_METRICS_PORT=`` is no port).
    """
    def given(name: str | None) -> bool:
        return name is not None and (name in env if keep_empty else bool(env.get(name)))

    for name in (opt.env, opt.fallback):
        if given(name):
            return env[str(name)], str(name)
    if opt.secret and given(opt.env + "_FILE"):
        path = env[opt.env + "_FILE"]
        try:
            return Path(path).read_text(), opt.env + "_FILE"
        except OSError as error:
            raise OptionError(f"${opt.env}_FILE: cannot read {redact_text(path)!r}: {error.strerror}") from None
    return None


def default_value(opt: Option) -> Any:
    """The value of ``opt`` when nothing sets it; a string default is written as a user would type
    it and parsed like their input."""
    default = opt.default
    if isinstance(default, str):
        default = _parse(opt, default, f"default of {opt.flag or opt.env}")
    return list(default or []) if opt.repeat else default


def _split(opt: Option, text: str) -> list[str]:
    if not opt.repeat:
        return [text.strip()]
    return [part.strip() for part in text.split(opt.split) if part.strip()]


def markdown_table(options: Sequence[Option], keywords: Sequence[str] | None = None) -> str:
    """The README table of flags (or, given ``keywords``, the settings' keyword names), variables,
    defaults and meanings."""
    rows = [f"| {'flag' if keywords is None else 'keyword'} | environment | default | meaning |", "|---|---|---|---|"]
    for index, opt in enumerate(options):
        name = opt.flag if keywords is None else keywords[index]
        env = (f"`{opt.env}`" + (f", `{opt.env}_FILE`" if opt.secret else "")
               + (f", else `{opt.fallback}`" if opt.fallback else ""))
        default = "" if opt.default in (None, [], "") else f"`{opt.default}`"
        rows.append(f"| `{name}` | {env} | {default} | {opt.help}{' (repeatable)' if opt.repeat else ''} |")
    return "\n".join(rows)
