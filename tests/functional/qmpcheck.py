"""Every QMP message a test receives from this VMM, checked against the
schema in qapi/*.json (scripts/qapi_schema.py): each reply against its
command's 'returns' (or as an error: class and desc), each event against
its 'data', the greeting against VersionInfo.  A mismatch raises
AssertionError in the test that received the message, naming the command
or event and the path ("query-migrate.ram.remaining: expected int, got
str").

harness.QmpClient owns one QmpChecker per connection.  The greeting says
who answers: this VMM ("directvisor" in its package) is checked, Debian's
QEMU ("Debian ...") is not (its replies follow QEMU 7.2's schema, not
ours); any other greeting fails.

Replies are paired with requests in order, or by id where the reply has
one.  Requests written raw (send_raw) are cut the way monitor/qmp.c cuts
its input; a value that does not parse is JUNK, answered by parse errors
(never a return)."""
import atexit
import codecs
import collections
import importlib.util
import json
import os
import re
import sys
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load_schema_module():
    name = "qapi_schema"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, os.path.join(ROOT, "scripts", "qapi_schema.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


qapi_schema = _load_schema_module()

# What passed the checks in this process: greetings, returns, errors,
# events (returns and events also per command and event name), and the
# messages left unchecked (from Debian QEMU, or on a connection opted out).
# DV_QMP_CHECK_STATS=FILE writes the counts there (JSON) at exit.
STATS = collections.Counter()


def _write_stats():
    path = os.environ.get("DV_QMP_CHECK_STATS")
    if path:
        with open(path, "w") as f:
            json.dump(dict(STATS), f, sort_keys=True)


atexit.register(_write_stats)

JUNK = object()           # a pending entry: a value that does not parse
NO_ID = object()


def id_key(value):
    """Ids compared as JSON (1, 1.0 and true are different ids)."""
    return json.dumps(value, sort_keys=True)


class QmpDrift(AssertionError):
    pass


def fail(what, errors, msg):
    shown = json.dumps(msg)
    if len(shown) > 400:
        shown = shown[:400] + "..."
    raise QmpDrift(f"QMP {what} does not match qapi/ schema: "
                   + "; ".join(errors[:8]) + ("; ..." if len(errors) > 8 else "")
                   + f"\n  message: {shown}")


class RawRequests:
    """Cuts bytes written raw into the values the VMM makes of them, as
    monitor/qmp.c does: a complete JSON value is one request (a number or
    literal that ends the input may go on); a bad bracketed value ends at
    its closing bracket, other junk before the next '{' or '['; a newline
    ends either; a value still open after 1 MiB loses the rest of its line."""

    PENDING_MAX = 1 << 20          # monitor-int.h QMP_MAX_PENDING_INPUT
    JUNK_WAIT = 4096               # qmp.c QMP_MAX_JUNK_WAIT
    SPACE = re.compile(r"[ \t\n\r\f\v]*")
    BRACKETED = re.compile(r'[\[\]{}"\\\n]')
    SCALAR_END = re.compile(r"[{\[\n]")

    def __init__(self):
        self.decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self.json = json.JSONDecoder()
        self.text = ""
        self.discarding = False

    def feed(self, data):
        """The values (or JUNK) completed by data, in order."""
        self.text += self.decoder.decode(data)
        out = []
        if self.discarding:
            nl = self.text.find("\n")
            if nl < 0:
                self.text = ""
                return out
            self.text = self.text[nl + 1:]
            self.discarding = False
        text, pos = self.text, 0
        while True:
            pos = self.SPACE.match(text, pos).end()
            if pos >= len(text):
                break
            value, end, cut = self.decode_at(text, pos)
            if end is None:
                bad_end = None if cut else self.bad_value_end(text, pos)
                if bad_end is None:
                    bracketed = text[pos] in "{["
                    wait = self.PENDING_MAX if cut or bracketed else self.JUNK_WAIT
                    if len(text) - pos > wait:
                        out.append(JUNK)           # "input too long"
                        self.discarding = True
                        pos = len(text)
                    break
                out.append(JUNK)
                pos = bad_end
                continue
            if end == len(text) and not isinstance(value, (dict, list, str)):
                break                              # "12" may be "123"
            out.append(value)
            pos = end
        self.text = text[pos:]
        return out

    def decode_at(self, text, pos):
        """(value, end, None) for the value at pos, or (None, None, cut):
        cut when the error may only be the input ending too early.  Decoded
        through a growing window: the decoder's error costs a count of the
        lines before it, which over megabytes of junk adds up."""
        size = 4096
        while True:
            window = text[pos:pos + size]
            truncated = pos + size < len(text)
            try:
                value, end = self.json.raw_decode(window)
            except json.JSONDecodeError as e:
                cut = e.pos >= len(window) or e.msg.startswith("Unterminated string")
                if truncated and (cut or e.pos >= len(window) - 64):
                    size *= 4
                    continue
                return None, None, cut
            if truncated and end >= len(window) - 64:
                size *= 4                      # a number may go on
                continue
            return value, pos + end, None

    def bad_value_end(self, text, pos):
        if text[pos] not in "{[":
            m = self.SCALAR_END.search(text, pos + 1)
            if m is None:
                return None
            return m.end() if m.group() == "\n" else m.start()
        depth, in_string, skip = 0, False, 0
        for m in self.BRACKETED.finditer(text, pos):
            c, i = m.group(), m.start()
            if i < skip:
                continue
            if c == "\n":
                return i + 1
            if in_string:
                if c == "\\":
                    skip = i + 2
                elif c == '"':
                    in_string = False
            elif c == '"':
                in_string = True
            elif c in "{[":
                depth += 1
            elif c in "}]":
                depth -= 1
                if depth == 0:
                    return i + 1
        return None


class QmpChecker:
    """The checks of one QMP connection (see the module's comment)."""

    def __init__(self, check=None, stats=STATS):
        """check: None decides from the greeting; False checks nothing.
        stats: where the counts go (the process's STATS by default)."""
        self.check = check
        self.stats = stats
        # a test may read replies in one thread while it writes in another
        self.lock = threading.Lock()
        self.greeted = False
        self.pending = collections.deque()
        self.raw = None
        self.schema = qapi_schema.load() if check is not False else None

    # ---- what the test sent ----

    def sent(self, value):
        """A value written as one JSON text: one request."""
        if self.check is False:
            return
        with self.lock:
            self.expect(value)

    def expect(self, value):
        if isinstance(value, dict):
            name = value.get("execute")
            self.pending.append((name if isinstance(name, str) else None,
                                 id_key(value["id"]) if "id" in value else NO_ID))
        else:
            self.pending.append((None, NO_ID))

    def sent_raw(self, data):
        if self.check is False:
            return
        if self.raw is None:
            self.raw = RawRequests()
        values = self.raw.feed(data)
        with self.lock:
            for value in values:
                if value is JUNK:
                    self.pending.append((JUNK, NO_ID))
                else:
                    self.expect(value)

    # ---- what arrived ----

    def received(self, msg):
        if not self.greeted:
            self.greeted = True
            return self.greeting(msg)
        if self.check is False:
            self.stats["unchecked"] += 1
            return
        if isinstance(msg, dict) and "event" in msg:
            errors = self.schema.check_event(msg)
            if errors:
                fail(f"event {msg.get('event')}", errors, msg)
            self.stats["events"] += 1
            self.stats[f"event {msg['event']}"] += 1
            return
        with self.lock:
            name = self.pair(msg)
        errors = self.schema.check_reply(name, msg) if isinstance(msg, dict) \
            else [f"a reply that is not an object: {msg!r}"]
        if errors:
            fail(f"reply to {name or 'a request naming no command'}", errors, msg)
        if "error" in msg:
            self.stats["errors"] += 1
        else:
            self.stats["returns"] += 1
            self.stats[f"return {name}"] += 1

    def greeting(self, msg):
        qmp = msg.get("QMP") if isinstance(msg, dict) else None
        version = qmp.get("version") if isinstance(qmp, dict) else None
        package = version.get("package") if isinstance(version, dict) else None
        if self.check is None:
            if isinstance(package, str) and "directvisor" in package:
                self.check = True
            elif isinstance(package, str) and package.startswith("Debian "):
                self.check = False           # Debian's QEMU: not our schema
                self.schema = None
            else:
                fail("greeting", ["neither this VMM's (package 'directvisor ...') "
                                  "nor Debian QEMU's (package 'Debian ...')"], msg)
        if self.check:
            errors = self.schema.check_greeting(msg)
            if errors:
                fail("greeting", errors, msg)
            self.stats["greetings"] += 1
        else:
            self.stats["unchecked"] += 1

    def pair(self, msg):
        """The command a reply answers (None: a request naming none), and
        the pending requests it accounts for dropped."""
        is_return = isinstance(msg, dict) and "return" in msg
        if isinstance(msg, dict) and "id" in msg:
            key = id_key(msg["id"])
            for i, (name, rid) in enumerate(self.pending):
                if name is not JUNK and rid == key:
                    for _ in range(i + 1):
                        self.pending.popleft()
                    return name
            if is_return:
                fail("reply", [f"its id {msg['id']!r} is no pending request's"], msg)
            return None
        if not is_return:
            # an error: the next request's, unless junk ahead of it is
            # still being answered (one bad value may get several)
            if self.pending and self.pending[0][0] is not JUNK:
                return self.pending.popleft()[0]
            return None
        while self.pending and self.pending[0][0] is JUNK:
            self.pending.popleft()
        if not self.pending:
            fail("reply", ["a return with no request pending"], msg)
        name, rid = self.pending.popleft()
        if rid is not NO_ID:
            fail(f"reply to {name}", ["the request's id is missing"], msg)
        return name


def check_exchange(sent, lines, stats=STATS):
    """Check an exchange made without QmpClient (nc, a bare socket): the
    bytes written and every line read back, the greeting first."""
    c = QmpChecker(stats=stats)
    c.sent_raw(sent)
    for line in lines:
        c.received(json.loads(line))
