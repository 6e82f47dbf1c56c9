"""scripts/qapi_introspect.py: query-qmp-schema's answer in QEMU's format,
built from a schema.  Pure Python, no binary needed."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "scripts"))

import qapi_introspect  # noqa: E402
import qapi_schema  # noqa: E402

SMALL = [
    {"enum": "Colour", "data": ["red", "green"]},
    {"struct": "Paint", "data": {"colour": "Colour", "*coats": "uint8"}},
    {"struct": "Base", "data": {"kind": "Colour", "*id": "str"}},
    {"struct": "Red", "data": {"shade": "int"}},
    {"union": "Thing", "base": "Base", "discriminator": "kind", "data": {"red": "Red"}},
    {"alternate": "StrOrPaint", "data": {"s": "str", "p": "Paint"}},
    {"command": "query-paint", "returns": ["Paint"]},
    {"command": "paint", "data": {"what": "StrOrPaint", "*sizes": ["int16"]}},
    {"command": "get-thing", "data": {"id": "str"}, "returns": "Thing"},
    {"event": "PAINTED", "data": {"colour": "Colour"}},
    {"event": "DRY"},
]


def test_commands_and_events_first_types_numbered_in_order_of_use():
    out = qapi_introspect.build(SMALL)
    names = [e["name"] for e in out]
    assert names[:5] == ["query-paint", "paint", "get-thing", "PAINTED", "DRY"]
    by = {e["name"]: e for e in out}
    # the empty object is "0", first used as query-paint's arguments
    assert by["query-paint"] == {"name": "query-paint", "meta-type": "command",
                                 "arg-type": "0", "ret-type": "[1]"}
    assert by["0"] == {"name": "0", "meta-type": "object", "members": []}
    assert by["[1]"] == {"name": "[1]", "meta-type": "array", "element-type": "1"}
    assert by["DRY"] == {"name": "DRY", "meta-type": "event", "arg-type": "0"}
    # no type keeps its own name; built-ins do, every integer type is 'int'
    assert not {"Paint", "Colour", "Thing", "uint8", "int16"} & set(names)
    assert by["int"] == {"name": "int", "meta-type": "builtin", "json-type": "int"}
    assert by["str"]["json-type"] == "string"


def test_members_optional_defaults_enums_unions_alternates():
    by = {e["name"]: e for e in qapi_introspect.build(SMALL)}
    paint = by[by[by["query-paint"]["ret-type"]]["element-type"]]
    colour = paint["members"][0]["type"]
    assert paint["members"] == [{"name": "colour", "type": colour},
                                {"name": "coats", "type": "int", "default": None}]
    assert by[colour] == {"name": colour, "meta-type": "enum",
                          "members": [{"name": "red"}, {"name": "green"}],
                          "values": ["red", "green"]}
    args = by[by["paint"]["arg-type"]]
    assert [m["name"] for m in args["members"]] == ["what", "sizes"]
    assert args["members"][1] == {"name": "sizes", "type": "[int]", "default": None}
    alt = by[args["members"][0]["type"]]
    assert alt["meta-type"] == "alternate"
    assert alt["members"] == [{"type": "str"}, {"type": paint["name"]}]
    thing = by[by["get-thing"]["ret-type"]]
    assert thing["tag"] == "kind"
    assert [m["name"] for m in thing["members"]] == ["kind", "id"]
    red = by[thing["variants"][0]["type"]]
    assert thing["variants"][0]["case"] == "red"
    assert red["members"] == [{"name": "shade", "type": "int"}]
    # every type named is described exactly once
    names = [e["name"] for e in qapi_introspect.build(SMALL)]
    assert len(names) == len(set(names))
    for e in by.values():
        for key in ("arg-type", "ret-type", "element-type"):
            if key in e:
                assert e[key] in by, e


def test_this_vmms_introspection_is_its_own_schemainfo():
    """The answer query-qmp-schema gives passes the schema's own checker
    for SchemaInfo, and names each command and event once."""
    schema = qapi_schema.load()
    exprs = []
    for f in schema.files:
        exprs += qapi_schema.parse(f)
    out = qapi_introspect.build(exprs)
    assert schema.check_return("query-qmp-schema", out) == []
    commands = [e["name"] for e in out if e["meta-type"] == "command"]
    events = [e["name"] for e in out if e["meta-type"] == "event"]
    assert sorted(commands) == sorted(schema.commands)
    assert sorted(events) == sorted(schema.events)
