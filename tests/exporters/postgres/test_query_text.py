"""Statement texts: passwords never survive in any lexical form, and hostile texts stay cheap.

Fuzz tests with bounded examples and a per-example deadline (the old regex took 59 s on a
100 KB run of letters); the real-server side is in test_statements.py and test_server.py.
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from stackwatch.core.postgres.query_text import normalize_query, redact_sql

#: every secret fragment starts with this; nothing else in a generated statement contains it
MARK = "Zq"
# quotes, backslashes, dollars, comment marks and newlines: what breaks a text pattern
_FRAGMENT = st.text(alphabet="abcXYZ019 '\\$*/-\n\"&@=;", max_size=8)
SECRETS = st.lists(_FRAGMENT, min_size=1, max_size=4).map(lambda parts: "".join(MARK + p for p in parts))

# what may stand between the keyword and its literal
GAPS = st.sampled_from(["", " ", "\n", "\t ", " /* c */ ", "/* a /* nested */ b */", " -- note\n", "--\n", "--x\r", "\r\n",
                        "\n/**/\n"])
BUDGET = settings(max_examples=300, deadline=timedelta(milliseconds=500))


def _plain(secret: str) -> str:
    return "'" + secret.replace("'", "''") + "'"


def _escaped(secret: str) -> str:
    return "E'" + secret.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _scs_off(secret: str) -> str:  # a plain literal as standard_conforming_strings=off reads it
    return "'" + secret.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _unicode(secret: str) -> str:
    body = "".join(f"\\{ord(c):04x}" if c in "Zq\\" else c for c in secret)
    return "U&'" + body.replace("'", "''") + "'"


def _dollar(secret: str) -> str:
    tag = "$pw$" if "$pw$" not in secret else "$x$"
    return f"{tag}{secret}{tag}" if "$" not in secret else "$" + "t" * 9 + "$" + secret + "$" + "t" * 9 + "$"


def _continued(secret: str) -> str:
    half = len(secret) // 2
    return _plain(secret[:half]) + "\n" + _plain(MARK + secret[half:])


LITERALS = st.sampled_from([_plain, _escaped, _scs_off, _unicode, _dollar, _continued])
STATEMENTS = st.sampled_from([
    "ALTER ROLE app{gap_before}PASSWORD{gap}{literal}",
    "ALTER ROLE app WITH ENCRYPTED password{gap}{literal} VALID UNTIL 'infinity'",
    "CREATE USER app WITH LOGIN PaSsWoRd{gap}{literal} CONNECTION LIMIT 3",
    "ALTER USER MAPPING FOR app SERVER s OPTIONS (SET password{gap}{literal}, user 'u')",
    'CREATE SERVER s FOREIGN DATA WRAPPER w OPTIONS ("password"{gap}{literal})',
    "SELECT dblink_connect('host=h user=u password={raw} dbname=d')",
])


@BUDGET
@given(SECRETS, STATEMENTS, GAPS, LITERALS, st.sampled_from(["", "\n  ", "SET x = 1; "]))
def test_no_password_survives_in_any_form(secret: str, statement: str, gap: str, literal: object,
                                          prefix: str) -> None:
    raw = secret.replace("'", "''").replace(" ", "")  # a conninfo value inside a plain literal
    quoted = literal(secret)  # type: ignore[operator]
    if not gap and (quoted[0].isalpha() or quoted[0] == "$"):  # PASSWORDE'x', PASSWORD$q$x$q$: one
        # identifier (passworde, password$q$x$q$) to PostgreSQL, a syntax error it never records
        gap = " "
    text = prefix + statement.format(gap_before=" ", gap=gap, literal=quoted, raw=raw)
    for limit in (512, 64, 40):
        out = normalize_query(text, limit)
        assert MARK not in out, (text, out)
        assert len(out.encode()) <= limit


def test_the_reported_forms_are_redacted() -> None:
    for text in ("ALTER ROLE app PASSWORD'hunter2'", "ALTER ROLE app PASSWORD U&'hunter\\0032'",
                 "ALTER ROLE app PASSWORD /* why */ 'hunter2'", "ALTER ROLE app PASSWORD -- why\n'hunter2'",
                 "ALTER ROLE app PASSWORD E'hun\\'ter2'", "ALTER ROLE app PASSWORD $x$hunter2$x$"):
        out = normalize_query(text, 512)
        assert out.startswith("ALTER ROLE app PASSWORD") and out.endswith("'***'"), out
        assert "hunter" not in out and "ter2" not in out


def test_other_literals_and_comments_are_kept() -> None:
    text = "SELECT 'password' AS p, $$x$$ /* password */ FROM t WHERE a = E'\\'' -- end"
    assert redact_sql(text) == text
    assert normalize_query("ALTER ROLE app PASSWORD NULL VALID UNTIL 'infinity'", 512) == \
        "ALTER ROLE app PASSWORD NULL VALID UNTIL 'infinity'"


def test_a_cut_never_leaves_part_of_a_password() -> None:
    """The text is cut before it is scanned: a literal or URL the cut splits is not shown in part."""
    for pad in range(0, 3000, 7):
        text = "SELECT 1 /*" + "x" * pad + "*/; ALTER ROLE app PASSWORD 'Zq-a b c-Zq' " \
               "/* postgresql://u:Zq-url@h/db password=Zq-kv */"
        assert MARK not in normalize_query(text, 512), pad


# -- hostile lengths: linear time, checked with a deadline per example ------------------------
_UNITS = ["a", "a ", "a://", "a://:", "password='", "password ", "/*", "*/", "'", "E'\\", "$a$", "$", '"',
          "U&'", "--", "\n", "postgresql://u:", "@", "é", "password", "PASSWORD"]


@settings(max_examples=40, deadline=timedelta(seconds=1))
@given(st.lists(st.sampled_from(_UNITS), min_size=1, max_size=3))
def test_hundred_kilobyte_texts_are_redacted_in_linear_time(units: list[str]) -> None:
    """100 KB of any mix of what makes a backtracking pattern slow: well under a second each."""
    unit = "".join(units)
    text = unit * (100_000 // len(unit) + 1)
    redact_sql(text)  # the full scan, not only the cut prefix normalize_query reads
    out = normalize_query(text, 512)
    assert len(out.encode()) <= 512 and out.endswith("...")
