"""The keys of a config tree as `--help` lists them: name, type, default, and the comment written beside the field.

The comments live in the dataclass source, so the listing cannot drift from the code. A comment-only line belongs
to the field above it when that field's own line has a comment (a continuation), else to the field below.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import textwrap
import tokenize
import typing

from smvl.config import field_default


def field_comments(cls) -> dict[str, str]:
    source = textwrap.dedent(inspect.getsource(cls))
    comments: dict[int, str] = {}
    code_rows: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER):
            code_rows.add(tok.start[0])
    fields = [n for n in ast.parse(source).body[0].body if isinstance(n, ast.AnnAssign)]
    text: dict[str, list[str]] = {n.target.id: [] for n in fields}
    previous, previous_end = None, ast.parse(source).body[0].lineno
    for node in fields:
        name = node.target.id
        trailing_above = previous is not None and any(
            r in comments and r in code_rows for r in range(previous.lineno, previous.end_lineno + 1))
        for row in range(previous_end + 1, node.lineno):
            if row in comments and row not in code_rows:
                text[previous.target.id if trailing_above else name].append(comments[row])
        text[name] += [comments[r] for r in range(node.lineno, node.end_lineno + 1) if r in comments]
        previous, previous_end = node, node.end_lineno
    return {name: " ".join(parts) for name, parts in text.items()}


def _show(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if dataclasses.is_dataclass(value):  # a default with parts (the demo's lr), as YAML would write it
        return "{" + ", ".join(f"{k}: {v:g}" for k, v in vars(value).items() if v is not None) + "}"
    return repr(value) if value == "" else str(value)


def key_rows(cls, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(dotted key, type, default, comment) for every leaf field; nested sections are flattened."""
    hints = typing.get_type_hints(cls)
    comments = field_comments(cls)
    rows = []
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            rows += key_rows(hints[f.name], f"{prefix}{f.name}.")
            continue
        default = field_default(f)
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        rows.append((prefix + f.name, kind, _show(default), comments.get(f.name, "")))
    return rows


def keys_table(cls) -> str:
    rows = key_rows(cls)
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"  {k:<{widths[0]}}  {t:<{widths[1]}}  {d:<{widths[2]}}  {c}".rstrip() for k, t, d, c in rows]
    return "config keys (--key value or --key=value; bare names work when unique):\n" + "\n".join(lines)
