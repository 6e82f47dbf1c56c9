#!/usr/bin/python3
"""The guest's network outage across a migration, as a figure: run on the
peer, this sends a steady UDP stream to the guest (one datagram every
--interval ms, each with its sequence number), and the guest sends each
one straight back (tests/guest/linux/udpecho.c, `dv-udpecho PORT`, which
the Linux test guest's bond scenario starts).  At the end it reports what
the peer saw come back:

    sent, received, lost      datagrams (lost: sent less those echoed back)
    longest_gap_ms            the longest time between two echoes in a row
    longest_loss_run          the most consecutive sequence numbers lost

A datagram lost on either leg counts; the gap is the outage the guest's
traffic saw, bounded by one interval on each side.

    python3 bench/outage.py --to 198.18.0.2:7777 [--interval 1] [--seconds S]

runs until --seconds have passed or SIGINT/SIGTERM, then prints one JSON
object.  As a module: Stream(host, port).start() ... .stop() -> the same
dict.  Nothing is asserted: this is a measuring tool (issue 16 item 4);
tests/functional/test_failover_manual.py uses it in the rig."""
import argparse
import json
import signal
import socket
import struct
import sys
import threading
import time

MAGIC = b"DVOU"
# A datagram sent this much after its due time went out in a catch-up
# burst: the peer itself (this process) was not scheduled meanwhile.
LATE_S = 0.05
HEADER = struct.Struct("!4sQd")     # magic, sequence, send time (monotonic)


class Stream:
    """A UDP stream to (host, port) and its echoes."""

    def __init__(self, host, port, interval_ms=1.0, size=64):
        self.dest = (host, port)
        self.interval = interval_ms / 1000.0
        self.size = max(size, HEADER.size)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("0.0.0.0", 0))
        self.sock.settimeout(0.05)
        self.stopping = threading.Event()
        self.sent = 0
        self.send_errors = 0
        self.seen = set()
        self.send_times = []        # monotonic time each seq was sent
        self.late = set()           # seqs sent LATE_S or more after their time
        self.arrivals = []          # (monotonic time, seq) of each first echo
        self.lock = threading.Lock()
        self.started = None
        self.threads = []

    def _send(self):
        pad = b"\0" * (self.size - HEADER.size)
        next_at = time.monotonic()
        while not self.stopping.is_set():
            now = time.monotonic()
            # catch up when the scheduler was late: the stream stays steady
            # in sequence numbers, one per interval of wall time
            while next_at <= now:
                try:
                    self.sock.sendto(HEADER.pack(MAGIC, self.sent, now) + pad, self.dest)
                except OSError:
                    self.send_errors += 1
                if now - next_at >= LATE_S:
                    self.late.add(self.sent)
                self.send_times.append(now)
                self.sent += 1
                next_at += self.interval
            time.sleep(max(0.0, next_at - time.monotonic()))

    def _receive(self):
        while not self.stopping.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                continue
            now = time.monotonic()
            if len(data) < HEADER.size:
                continue
            magic, seq, _ = HEADER.unpack_from(data)
            if magic != MAGIC:
                continue
            with self.lock:
                if seq not in self.seen:
                    self.seen.add(seq)
                    self.arrivals.append((now, seq))

    def start(self):
        self.started = time.monotonic()
        self.threads = [threading.Thread(target=f, daemon=True)
                        for f in (self._send, self._receive)]
        for t in self.threads:
            t.start()
        return self

    def received(self):
        with self.lock:
            return len(self.seen)

    def wait_received(self, count, timeout):
        """True once count echoes have come back (bounded by timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.received() >= count:
                return True
            time.sleep(0.05)
        return False

    def stop(self, drain=1.0):
        """Stops sending, waits drain seconds for late echoes, returns the
        figures (a dict)."""
        sender = self.threads[0]
        self.stopping.set()
        sender.join(5)
        # the receiver stopped with the sender: drain what is still on its way
        end = time.monotonic() + drain
        self.sock.settimeout(0.05)
        while time.monotonic() < end:
            try:
                data = self.sock.recv(4096)
            except (socket.timeout, OSError):
                continue
            if len(data) >= HEADER.size:
                magic, seq, _ = HEADER.unpack_from(data)
                if magic == MAGIC and seq not in self.seen:
                    self.seen.add(seq)
                    self.arrivals.append((time.monotonic(), seq))
        self.sock.close()
        return self.result()

    def window(self, t0, t1):
        """sent, received and lost of the datagrams sent between the
        monotonic times t0 and t1."""
        with self.lock:
            seen = set(self.seen)
        seqs = [s for s, t in enumerate(self.send_times[:self.sent]) if t0 <= t < t1]
        got = sum(1 for s in seqs if s in seen)
        late = [s for s in seqs if s in self.late]
        return {"sent": len(seqs), "received": got, "lost": len(seqs) - got,
                "late": len(late), "late_lost": sum(1 for s in late if s not in seen)}

    def gaps(self, n=5):
        """The n longest gaps between echoes in a row: (start, end) in
        monotonic seconds, longest first."""
        with self.lock:
            arrivals = sorted(self.arrivals)
        pairs = [(t1 - t0, t0, t1) for (t0, _), (t1, _) in zip(arrivals, arrivals[1:])]
        return [(a, b) for _, a, b in sorted(pairs, reverse=True)[:n]]

    def result(self):
        with self.lock:
            arrivals = sorted(self.arrivals)
            seqs = sorted(self.seen)
        gap, gap_at = 0.0, None
        for (t0, _), (t1, s1) in zip(arrivals, arrivals[1:]):
            if t1 - t0 > gap:
                gap, gap_at = t1 - t0, t1
        run, prev = 0, -1
        for s in seqs:
            run = max(run, s - prev - 1)
            prev = s
        return {"interval_ms": self.interval * 1000.0, "sent": self.sent,
                "received": len(seqs), "lost": self.sent - len(seqs),
                "send_errors": self.send_errors,
                "sent_late": len(self.late),
                "longest_gap_ms": round(gap * 1000.0, 1),
                "longest_gap_ended_s": round(gap_at - self.started, 3) if gap_at else None,
                "longest_loss_run": run,
                "seconds": round(time.monotonic() - self.started, 3)}


def phases(stream, marks):
    """The stream cut at marks ({name: monotonic time}, e.g. the `marks`
    of tools/dv-migrate-passthrough --json): for each stretch between two
    marks in time order (the first from the stream's start, the last to its
    end), sent/received/lost; and the longest gaps with the stretch each
    began in."""
    order = sorted(marks.items(), key=lambda kv: kv[1])
    bounds = [("stream", stream.started)] + order + [("end", float("inf"))]
    out = {"stretches": [], "gaps": []}
    for (a, ta), (b, tb) in zip(bounds, bounds[1:]):
        w = stream.window(ta, tb)
        w["from"], w["to"] = a, b
        w["seconds"] = round(min(tb, time.monotonic()) - ta, 3)
        out["stretches"].append(w)
    for g0, g1 in stream.gaps():
        where = max((kv for kv in bounds if kv[1] <= g0), key=lambda kv: kv[1])[0]
        out["gaps"].append({"ms": round((g1 - g0) * 1000.0, 1), "after": where,
                            "starts_s_after_mark": round(g0 - dict(bounds)[where], 3)})
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--to", required=True, help="the guest's HOST:PORT (dv-udpecho)")
    p.add_argument("--interval", type=float, default=1.0, help="ms between datagrams (1)")
    p.add_argument("--seconds", type=float, default=0,
                   help="stop after this long (0: at SIGINT/SIGTERM)")
    p.add_argument("--size", type=int, default=64, help="datagram size in bytes (64)")
    args = p.parse_args(argv)
    host, _, port = args.to.rpartition(":")
    if not host or not port.isdigit():
        p.error(f"--to {args.to!r}: HOST:PORT")
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    stream = Stream(host, int(port), args.interval, args.size).start()
    done.wait(args.seconds or None)
    print(json.dumps(stream.stop()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
