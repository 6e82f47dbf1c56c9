"""query-qmp-schema's answer, built from the schema in qapi/*.json.

The output is QEMU's introspection format (its qapi/introspect.json):
a list of SchemaInfo objects, one per command and event under its own
name, then one per type they use, reached breadth-first.  As QEMU does,
type names are hidden behind numbers ("0", "1", ...) handed out in the
order the types are first used, so that clients look at commands and
events rather than at type names; built-in types keep their names, every
integer type is shown as 'int', and an array is '[' element ']'.  An
optional member carries "default": null, as QEMU 7.2 shows it.

Pure: build(exprs) takes the parsed expressions (qapi_schema.parse) and
returns a list of dicts; qapi-gen.py stores its JSON in the binary."""

from qapi_schema import INT_RANGES, member_type

JSON_TYPES = {"str": "string", "number": "number", "int": "int", "bool": "boolean",
              "null": "null", "any": "value"}
EMPTY = ("implicit", "q_empty")


class _Builder:
    def __init__(self, exprs):
        self.enums, self.types, self.entities = {}, {}, []
        for e in exprs:
            if "enum" in e:
                self.enums[e["enum"]] = e
            elif "struct" in e or "union" in e or "alternate" in e:
                self.types[e.get("struct") or e.get("union") or e.get("alternate")] = e
            elif "command" in e or "event" in e:
                self.entities.append(e)
        self.masks = {}     # type key -> its number (an array: its name)
        self.count = 0      # the numbers handed out
        self.queue = []     # type keys used but not yet described
        self.implicit = {}  # implicit object key -> its members dict

    # ---- naming ----

    def _mask(self, key):
        if key not in self.masks:
            self.masks[key] = str(self.count)
            self.count += 1
            self.queue.append(key)
        return self.masks[key]

    def use(self, t, implicit_name=None):
        """The name under which type t appears; t is a type name, a
        one-element list, or (with implicit_name) an inline members dict."""
        if isinstance(t, dict):
            if not t:
                return self._mask(EMPTY)
            key = ("implicit", implicit_name)
            self.implicit[key] = t
            return self._mask(key)
        if isinstance(t, list):
            elem = self.use(t[0])
            name = "[" + elem + "]"
            self._mask_array(name, elem)
            return name
        if t in INT_RANGES:
            t = "int"
        if t in JSON_TYPES:
            key = ("builtin", t)
            if key not in self.masks:
                self.masks[key] = t
                self.queue.append(key)
            return t
        if t not in self.enums and t not in self.types:
            raise KeyError(f"unknown type {t!r}")
        return self._mask(("named", t))

    def _mask_array(self, name, elem):
        key = ("array", name, elem)
        if key not in self.masks:
            self.masks[key] = name
            self.queue.append(key)

    # ---- describing ----

    def members(self, data):
        out = []
        for key, spec in data.items():
            m = {"name": key.lstrip("*"), "type": self.use(member_type(spec))}
            if key.startswith("*"):
                m["default"] = None
            if isinstance(spec, dict) and spec.get("features"):
                m["features"] = list(spec["features"])
            out.append(m)
        return out

    def struct_members(self, name):
        t = self.types[name]
        data = {}
        base = t.get("base")
        if isinstance(base, str):
            data.update(self.struct_members(base))
        elif isinstance(base, dict):
            data.update(base)
        if "struct" in t:
            data.update(t.get("data", {}))  # a union's data are its branches
        return data

    def describe(self, key):
        kind = key[0]
        if kind == "builtin":
            return {"name": key[1], "meta-type": "builtin", "json-type": JSON_TYPES[key[1]]}
        if kind == "array":
            return {"name": key[1], "meta-type": "array", "element-type": key[2]}
        name = self.masks[key]
        if key == EMPTY:
            return {"name": name, "meta-type": "object", "members": []}
        if kind == "implicit":
            return {"name": name, "meta-type": "object",
                    "members": self.members(self.implicit[key])}
        tname = key[1]
        if tname in self.enums:
            values = list(self.enums[tname]["data"])
            return {"name": name, "meta-type": "enum",
                    "members": [{"name": v} for v in values], "values": values}
        t = self.types[tname]
        if "alternate" in t:
            return {"name": name, "meta-type": "alternate",
                    "members": [{"type": self.use(member_type(s))}
                                for s in t["data"].values()]}
        info = {"name": name, "meta-type": "object",
                "members": self.members(self.struct_members(tname))}
        if "union" in t:
            info["tag"] = t["discriminator"]
            info["variants"] = [{"case": case, "type": self.use(member_type(s))}
                                for case, s in t["data"].items()]
        return info

    def entity(self, e):
        if "command" in e:
            name = e["command"]
            info = {"name": name, "meta-type": "command",
                    "arg-type": self.use(e.get("data", {}), f"q_obj_{name}-arg"),
                    "ret-type": self.use(e.get("returns", {}), f"q_obj_{name}-ret")}
            if e.get("allow-oob"):
                info["allow-oob"] = True
        else:
            name = e["event"]
            info = {"name": name, "meta-type": "event",
                    "arg-type": self.use(e.get("data", {}), f"q_obj_{name}-arg")}
        if e.get("features"):
            info["features"] = list(e["features"])
        return info

    def build(self):
        out = [self.entity(e) for e in self.entities]
        while self.queue:
            out.append(self.describe(self.queue.pop(0)))
        return out


def build(exprs):
    """The SchemaInfo list of a schema's expressions (see the module text)."""
    return _Builder(exprs).build()
