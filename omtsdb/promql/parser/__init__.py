"""PromQL parser: Lark grammar -> frozen AST, type checks, printer. Never imports numpy.

``parse(query)`` returns an AST or raises :class:`omtsdb.errors.ParseError` with Prometheus's
message form ``<line>:<col>: parse error: <what>``.
"""

from __future__ import annotations

import threading
from importlib import resources
from pathlib import Path

from lark import Lark, Token
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)

from omtsdb.errors import OmtsdbError, ParseError
from omtsdb.model.labels import Labels
from omtsdb.model.matchers import MatchType
from omtsdb.promql.parser.ast import Expr, ValueType
from omtsdb.promql.parser.durations import format_duration, parse_duration
from omtsdb.promql.parser.printer import format_expr
from omtsdb.promql.parser.transform import SemanticError, ToAST, semantic_to_parse_error
from omtsdb.promql.parser.types import expr_type

__all__ = [
    "Expr",
    "ValueType",
    "expr_type",
    "format_duration",
    "format_expr",
    "parse",
    "parse_duration",
    "parse_metric",
]

_lock = threading.Lock()
_parser: Lark | None = None


def _grammar_text() -> str:
    try:
        return resources.files("omtsdb").joinpath("grammar/promql.lark").read_text()
    except (FileNotFoundError, NotADirectoryError):
        return (Path(__file__).resolve().parents[3] / "grammar" / "promql.lark").read_text()


def _get_parser() -> Lark:
    global _parser
    if _parser is None:
        with _lock:
            if _parser is None:
                _parser = Lark(
                    _grammar_text(),
                    parser="lalr",
                    lexer="contextual",
                    propagate_positions=True,
                    maybe_placeholders=True,
                    cache=True,
                )
    return _parser


def _where(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return line, col


_TOKEN_NAMES = {
    "RPAR": '")"',
    "LPAR": '"("',
    "RBRACE": '"}"',
    "LBRACE": '"{"',
    "RSQB": '"]"',
    "LSQB": '"["',
    "COMMA": '","',
    "$END": "end of input",
}


def _syntax_error(text: str, e: UnexpectedInput) -> ParseError:
    pos = getattr(e, "pos_in_stream", None) or 0
    if isinstance(e, UnexpectedEOF) or (isinstance(e, UnexpectedToken) and e.token.type == "$END"):
        pos = len(text)
        msg = _eof_message(text)
    elif isinstance(e, UnexpectedToken):
        tok: Token = e.token
        pos = tok.start_pos or 0
        shown = _TOKEN_NAMES.get(tok.type, repr(str(tok)).replace("'", '"'))
        msg = f"unexpected {shown}"
    elif isinstance(e, UnexpectedCharacters):
        ch = text[pos] if pos < len(text) else ""
        msg = (
            f"unexpected character: {ch!r}".replace("'", '"')
            if ch != '"'
            else "unterminated quoted string"
        )
    else:
        msg = "syntax error"
    line, col = _where(text, pos)
    return ParseError(f"{line}:{col}: parse error: {msg}", line=line, column=col, start=pos)


def _eof_message(text: str) -> str:
    """What Prometheus's lexer says at an unexpected end: which bracket is still open."""
    stack: list[str] = []
    quote = ""
    i = 0
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\" and quote != "`":
                i += 2
                continue
            if c == quote:
                quote = ""
        elif c in "\"'`":
            quote = c
        elif c == "#":
            nl = text.find("\n", i)
            i = len(text) if nl < 0 else nl
        elif c in "([{":
            stack.append(c)
        elif c in ")]}" and stack:
            stack.pop()
        i += 1
    if quote:
        return "unterminated quoted string"
    if stack:
        return {
            "(": "unclosed left parenthesis",
            "{": "unexpected end of input inside braces",
            "[": "unclosed left bracket",
        }[stack[-1]]
    return "unexpected end of input"


def parse(query: str, *, experimental: bool = False) -> Expr:
    """Parse a PromQL expression. Raises ParseError."""
    if not query.strip():
        raise ParseError("unknown position: parse error: no expression found in input")
    try:
        tree = _get_parser().parse(query)
    except UnexpectedInput as e:
        raise _syntax_error(query, e) from None
    try:
        builder = ToAST(query, experimental)
        expr: Expr = builder.finish(builder.transform(tree))
    except SemanticError as e:
        raise semantic_to_parse_error(query, e) from None
    except VisitError as e:
        inner = e.orig_exc
        if isinstance(inner, SemanticError):
            raise semantic_to_parse_error(query, inner) from None
        if isinstance(inner, OmtsdbError):
            raise ParseError(f"1:1: parse error: {inner}", line=1, column=1) from None
        raise
    return expr


def parse_metric(text: str) -> Labels:
    """A series like ``foo{a="b"}`` (as in .test ``load`` lines) into Labels."""
    from omtsdb.model.selector import parse_selector

    ms = parse_selector(text, allow_empty=True)
    if any(m.type is not MatchType.EQ for m in ms):
        raise ParseError(f"1:1: parse error: not a series description: {text}")
    return Labels((m.name, m.value) for m in ms)
