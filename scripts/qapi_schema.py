"""The QAPI schema in qapi/*.json, read once and compiled into checkers.

Used by scripts/qapi-gen.py (the build: every type a command or an event
names must exist) and by the functional tests (tests/functional/harness.py
checks every QMP reply and event against it).

The schema syntax is QEMU's: Python-like literals, '#' comments, one
expression per top-level brace.  Understood:
  { 'enum': E, 'data': [ values ] }
  { 'struct': S, 'data': { members }, '*base': S2 }
  { 'union': U, 'base': S or { members }, 'discriminator': member,
    'data': { enum value: struct } }
  { 'alternate': A, 'data': { branch: type } }
  { 'command': C, '*data': { members } or S, '*returns': type }
  { 'event': V, '*data': { members } or S }
A member is 'name' (required) or '*name' (optional), its type a name, a
one-element list [ type ], or { 'type': type, 'if': ..., 'features': ... }.
Built-in types: str, int, int8..int64, uint8..uint64, size, number, bool,
null, any.  A command without 'returns' returns {}; an event without
'data' carries no "data" member.

A checker is check(value, path, errors): it appends one line per mismatch
("query-migrate.ram.remaining: expected int, got str") and returns nothing;
compiled checkers are cached per type, so checking costs one call per
value seen."""
import ast
import os
import re

INT_RANGES = {
    "int": (-(1 << 63), (1 << 63) - 1), "int8": (-(1 << 7), (1 << 7) - 1),
    "int16": (-(1 << 15), (1 << 15) - 1), "int32": (-(1 << 31), (1 << 31) - 1),
    "int64": (-(1 << 63), (1 << 63) - 1), "uint8": (0, (1 << 8) - 1),
    "uint16": (0, (1 << 16) - 1), "uint32": (0, (1 << 32) - 1),
    "uint64": (0, (1 << 64) - 1), "size": (0, (1 << 64) - 1),
}
BUILTINS = set(INT_RANGES) | {"str", "number", "bool", "null", "any"}
MEMBER_KEYS = {"type", "if", "features"}
# QEMU's ErrorClass: what an error reply's "class" may be
ERROR_CLASSES = {"GenericError", "CommandNotFound", "DeviceNotActive",
                 "DeviceNotFound", "KVMMissingCap"}


class SchemaError(Exception):
    """The schema itself is wrong (an unknown type, a bad expression)."""


def parse(path):
    """The expressions of one schema file, in order."""
    with open(path) as f:
        text = f.read()
    text = re.sub(r"#[^\n]*", "", text)
    # QEMU's schema spells booleans as JSON does ('gen': false)
    text = re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", text))
    exprs, depth, start = [], 0, None
    for i, ch in enumerate(text):
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                exprs.append(ast.literal_eval(text[start:i + 1]))
    return exprs


def json_type(value):
    """The JSON type of a decoded value, in the schema's words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "array"
    return "object"


def member_type(spec):
    """A member's type, from either of its spellings."""
    if isinstance(spec, dict):
        if not spec.keys() <= MEMBER_KEYS or "type" not in spec:
            raise SchemaError(f"bad member {spec!r} (an inline struct? name it)")
        return spec["type"]
    return spec


class Schema:
    def __init__(self, files):
        self.files = list(files)
        self.enums, self.types, self.commands, self.events = {}, {}, {}, {}
        for path in self.files:
            for e in parse(path):
                self._add(e, path)
        self._checkers = {}
        self._returns, self._event_data = {}, {}
        for name, cmd in self.commands.items():
            for t in self._members(cmd.get("data", {}), f"command {name}").values():
                self._resolve(t, f"command {name}")
            self._returns[name] = self._compile(cmd.get("returns", {}), name)
        for name, ev in self.events.items():
            self._event_data[name] = (self._compile(ev["data"], name)
                                      if "data" in ev else None)
        for name in list(self.types) + list(self.enums):
            self.checker(name)

    def _add(self, e, path):
        for kind in ("enum", "struct", "union", "alternate", "command", "event"):
            if kind in e:
                name = e[kind]
                table = {"enum": self.enums, "command": self.commands,
                         "event": self.events}.get(kind, self.types)
                if name in table or (kind in ("enum", "struct", "union", "alternate")
                                     and (name in self.enums or name in self.types)):
                    raise SchemaError(f"{path}: {name} defined twice")
                table[name] = dict(e, kind=kind)
                return
        raise SchemaError(f"{path}: expression of no known kind: {e!r}")

    # ---- resolving names ----

    def _resolve(self, t, where):
        """Fail unless t names a type the schema knows."""
        if isinstance(t, list):
            if len(t) != 1:
                raise SchemaError(f"{where}: a list type has one element type: {t!r}")
            return self._resolve(t[0], where)
        if isinstance(t, dict):
            for m in t.values():
                self._resolve(member_type(m), where)
            return
        if t not in BUILTINS and t not in self.enums and t not in self.types:
            raise SchemaError(f"{where}: unknown type {t!r}")

    def _members(self, data, where):
        """{name or *name: type} of a members dict or a struct's name."""
        if isinstance(data, str):
            return self._struct_members(data, where)
        return {k: member_type(v) for k, v in data.items()}

    def _struct_members(self, name, where):
        t = self.types.get(name)
        if t is None or t["kind"] != "struct":
            raise SchemaError(f"{where}: {name!r} is not a struct")
        members = {}
        if "base" in t:
            members.update(self._members(t["base"], name))
        for k, v in t.get("data", {}).items():
            members[k] = member_type(v)
        return members

    # ---- compiling checkers ----

    def checker(self, name):
        """The compiled checker of a named type (cached)."""
        if name in self._checkers:
            return self._checkers[name]
        if name in BUILTINS:
            fn = self._builtin(name)
        elif name in self.enums:
            fn = self._enum(name, self.enums[name]["data"])
        elif name in self.types:
            # recursive types (PciDeviceInfo in PciBridgeInfo) meet the
            # placeholder, which forwards to the checker once it is made
            slot = []
            self._checkers[name] = lambda v, p, errs: slot[0](v, p, errs)
            t = self.types[name]
            if t["kind"] == "struct":
                fn = self._object(self._struct_members(name, name), name)
            elif t["kind"] == "union":
                fn = self._union(name, t)
            else:
                fn = self._alternate(name, t)
            slot.append(fn)
        else:
            raise SchemaError(f"unknown type {name!r}")
        self._checkers[name] = fn
        return fn

    def _compile(self, t, where):
        self._resolve(t, where)
        if isinstance(t, list):
            elem = self._compile(t[0], where)

            def check_list(v, p, errs):
                if not isinstance(v, list):
                    errs.append(f"{p}: expected array, got {json_type(v)}")
                    return
                for i, x in enumerate(v):
                    elem(x, f"{p}[{i}]", errs)
            return check_list
        if isinstance(t, dict):
            return self._object(self._members(t, where), where)
        return self.checker(t)

    def _builtin(self, name):
        if name == "any":
            return lambda v, p, errs: None
        if name in INT_RANGES:
            lo, hi = INT_RANGES[name]

            def check_int(v, p, errs):
                if type(v) is not int:
                    errs.append(f"{p}: expected {name}, got {json_type(v)}")
                elif not lo <= v <= hi:
                    errs.append(f"{p}: {v} is out of range for {name}")
            return check_int
        accept = {"str": (str,), "bool": (bool,), "null": (type(None),),
                  "number": (int, float)}[name]

        def check_scalar(v, p, errs):
            if type(v) not in accept:
                errs.append(f"{p}: expected {name}, got {json_type(v)}")
        return check_scalar

    def _enum(self, name, values):
        allowed = set(values)

        def check_enum(v, p, errs):
            if type(v) is not str:
                errs.append(f"{p}: expected {name} (a string), got {json_type(v)}")
            elif v not in allowed:
                errs.append(f"{p}: {v!r} is not a {name} value")
        return check_enum

    def _object(self, members, where):
        """A checker of an object with these members (a struct, a command's
        or an event's anonymous members)."""
        required, fields = [], {}
        for key, t in members.items():
            name = key.lstrip("*")
            fields[name] = self._compile(t, where)
            if not key.startswith("*"):
                required.append(name)

        def check_object(v, p, errs):
            if not isinstance(v, dict):
                errs.append(f"{p}: expected object, got {json_type(v)}")
                return
            for name in required:
                if name not in v:
                    errs.append(f"{p}: missing member '{name}'")
            for name, x in v.items():
                fn = fields.get(name)
                if fn is None:
                    errs.append(f"{p}: unexpected member '{name}'")
                else:
                    fn(x, f"{p}.{name}", errs)
        return check_object

    def _union(self, name, t):
        base = self._members(t["base"], name)
        tag = t["discriminator"]
        tag_type = base.get(tag)
        if tag_type not in self.enums:
            raise SchemaError(f"{name}: discriminator {tag!r} is not an enum member of the base")
        branches = {}
        for value in self.enums[tag_type]["data"]:
            members = dict(base)
            if value in t["data"]:
                members.update(self._struct_members(member_type(t["data"][value]), name))
            branches[value] = self._object(members, name)
        check_base = self._object(base, name)

        def check_union(v, p, errs):
            tag_value = v.get(tag) if isinstance(v, dict) else None
            branch = branches.get(tag_value) if isinstance(tag_value, str) else None
            (branch or check_base)(v, p, errs)
        return check_union

    def _alternate(self, name, t):
        """QEMU picks an alternate's branch by the value's JSON type."""
        by_json = {}
        for spec in t["data"].values():
            bt = member_type(spec)
            if isinstance(bt, list):
                kinds = ("array",)
            elif bt in self.enums or bt == "str":
                kinds = ("str",)
            elif bt in INT_RANGES:
                kinds = ("int",)
            elif bt == "number":
                kinds = ("int", "number")
            elif bt in ("bool", "null"):
                kinds = (bt,)
            else:
                kinds = ("object",)
            for k in kinds:
                by_json.setdefault(k, self._compile(bt, name))

        def check_alternate(v, p, errs):
            fn = by_json.get(json_type(v))
            if fn is None:
                errs.append(f"{p}: {json_type(v)} fits no branch of {name}")
            else:
                fn(v, p, errs)
        return check_alternate

    # ---- whole QMP messages ----

    def check_return(self, command, value):
        """Mismatches of a command's "return" value (a list of lines)."""
        fn = self._returns.get(command)
        if fn is None:
            return [f"{command}: command not in the schema"]
        errs = []
        fn(value, command, errs)
        return errs

    def check_reply(self, command, msg):
        """Mismatches of a whole reply: {"return": ...} to command, or
        {"error": {"class", "desc"}}, with the request's id if it had one.
        command None: the request named no command (only an error fits)."""
        extra = set(msg) - {"return", "error", "id"}
        if extra or ("return" in msg) == ("error" in msg):
            return [f"reply to {command or 'a request'}: not one of "
                    f"return/error (members {sorted(msg)})"]
        if "error" in msg:
            return self.check_error(msg["error"])
        if command is None:
            return ["a return to a request that names no command"]
        return self.check_return(command, msg["return"])

    @staticmethod
    def check_error(err):
        if not isinstance(err, dict) or set(err) != {"class", "desc"}:
            return [f"error: expected members class and desc, got {err!r}"]
        errs = []
        if err["class"] not in ERROR_CLASSES:
            errs.append(f"error.class: {err['class']!r} is not an ErrorClass")
        if not isinstance(err["desc"], str):
            errs.append(f"error.desc: expected str, got {json_type(err['desc'])}")
        return errs

    def check_event(self, msg):
        """Mismatches of an event message: name, timestamp, data."""
        name = msg.get("event")
        if name not in self.events:
            return [f"event {name!r}: not in the schema"]
        errs = []
        ts = msg.get("timestamp")
        if (not isinstance(ts, dict) or set(ts) != {"seconds", "microseconds"}
                or any(type(x) is not int for x in ts.values())):
            errs.append(f"{name}.timestamp: expected seconds and microseconds, got {ts!r}")
        extra = set(msg) - {"event", "timestamp", "data"}
        if extra:
            errs.append(f"{name}: unexpected members {sorted(extra)}")
        fn = self._event_data[name]
        if fn is None:
            if "data" in msg:
                errs.append(f"{name}: has data, the schema declares none")
        elif "data" not in msg:
            errs.append(f"{name}: missing data")
        else:
            fn(msg["data"], f"{name}.data", errs)
        return errs

    def check_greeting(self, msg):
        """The greeting: {"QMP": {"version": VersionInfo, "capabilities":
        [QMPCapability]}}."""
        errs = []
        qmp = msg.get("QMP") if isinstance(msg, dict) else None
        if not isinstance(qmp, dict) or set(msg) != {"QMP"} \
                or set(qmp) != {"version", "capabilities"}:
            return [f"greeting: expected QMP.version and QMP.capabilities, got {msg!r}"]
        self.checker("VersionInfo")(qmp["version"], "greeting.QMP.version", errs)
        self._compile(["QMPCapability"], "greeting")(
            qmp["capabilities"], "greeting.QMP.capabilities", errs)
        return errs


_loaded = {}


def load(qapi_dir=None):
    """The schema of qapi_dir (default: the checkout's qapi/), compiled once
    per process."""
    if qapi_dir is None:
        qapi_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "qapi")
    if qapi_dir not in _loaded:
        files = sorted(os.path.join(qapi_dir, f) for f in os.listdir(qapi_dir)
                       if f.endswith(".json"))
        _loaded[qapi_dir] = Schema(files)
    return _loaded[qapi_dir]
