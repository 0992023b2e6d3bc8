"""Message classes built at import from the ``.proto`` files in ``protos/``.

The ``.proto`` files are written by us from the specifications (remote write 1.0/2.0, remote
read, OTLP metrics). No ``protoc`` run is needed: this module reads the small proto3 subset they
use (``syntax``, ``package``, ``message``, ``oneof``, ``repeated``/``optional`` scalar and
message fields) into a ``FileDescriptorProto`` and asks the protobuf runtime (upb) for classes.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    "double": _F.TYPE_DOUBLE,
    "float": _F.TYPE_FLOAT,
    "int64": _F.TYPE_INT64,
    "uint64": _F.TYPE_UINT64,
    "int32": _F.TYPE_INT32,
    "uint32": _F.TYPE_UINT32,
    "sint32": _F.TYPE_SINT32,
    "sint64": _F.TYPE_SINT64,
    "fixed64": _F.TYPE_FIXED64,
    "sfixed64": _F.TYPE_SFIXED64,
    "fixed32": _F.TYPE_FIXED32,
    "sfixed32": _F.TYPE_SFIXED32,
    "bool": _F.TYPE_BOOL,
    "string": _F.TYPE_STRING,
    "bytes": _F.TYPE_BYTES,
}
_TOKEN = re.compile(r'\s*(?:(//[^\n]*)|("[^"]*")|([A-Za-z_][\w.]*)|(\d+)|([{}=;]))', re.S)
PROTO_DIR = Path(__file__).with_name("protos")
_POOL = descriptor_pool.DescriptorPool()


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ValueError(f"proto syntax error at offset {pos}: {text[pos : pos + 20]!r}")
        pos = m.end()
        if m.group(1) is None:
            out.append(m.group(0).strip())
    return out


class _Parser:
    def __init__(self, name: str, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.fdp = descriptor_pb2.FileDescriptorProto(name=name, syntax="proto3")

    def next(self) -> str:
        t = self.toks[self.i]
        self.i += 1
        return t

    def expect(self, tok: str) -> None:
        t = self.next()
        if t != tok:
            raise ValueError(f"expected {tok!r}, found {t!r}")

    def parse(self) -> descriptor_pb2.FileDescriptorProto:
        while self.i < len(self.toks):
            t = self.next()
            if t == "syntax":
                self.expect("=")
                self.next()
                self.expect(";")
            elif t == "package":
                self.fdp.package = self.next()
                self.expect(";")
            elif t == "message":
                self.message()
            else:
                raise ValueError(f"unexpected {t!r}")
        return self.fdp

    def message(self) -> None:
        msg = self.fdp.message_type.add(name=self.next())
        self.expect("{")
        synthetic: list[str] = []
        while (t := self.next()) != "}":
            if t == "oneof":
                idx = len(msg.oneof_decl)
                msg.oneof_decl.add(name=self.next())
                self.expect("{")
                while (u := self.next()) != "}":
                    self.field(msg, u, oneof=idx)
            else:
                self.field(msg, t, synthetic=synthetic)
        for name in synthetic:  # proto3 ``optional``: synthetic oneofs come last
            f = next(f for f in msg.field if f.name == name)
            f.oneof_index = len(msg.oneof_decl)
            msg.oneof_decl.add(name="_" + name)

    def field(
        self, msg: Any, first: str, oneof: int | None = None, synthetic: list[str] | None = None
    ) -> None:
        label, typ = _F.LABEL_OPTIONAL, first
        optional = False
        if first in ("repeated", "optional"):
            label = _F.LABEL_REPEATED if first == "repeated" else _F.LABEL_OPTIONAL
            optional = first == "optional"
            typ = self.next()
        name = self.next()
        self.expect("=")
        number = int(self.next())
        self.expect(";")
        f = msg.field.add(name=name, number=number, label=label)
        if typ in _SCALARS:
            f.type = _SCALARS[typ]
        else:
            f.type = _F.TYPE_MESSAGE
            f.type_name = f".{self.fdp.package}.{typ}"
        if oneof is not None:
            f.oneof_index = oneof
        if optional and synthetic is not None:
            f.proto3_optional = True
            synthetic.append(name)


@cache
def load(filename: str) -> dict[str, Any]:
    """Message classes of ``protos/<filename>`` by short name."""
    fdp = _Parser(filename, (PROTO_DIR / filename).read_text()).parse()
    _POOL.Add(fdp)
    pkg = fdp.package
    return {
        m.name: message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{pkg}.{m.name}"))
        for m in fdp.message_type
    }
