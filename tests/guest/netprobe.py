#!/usr/bin/env python3
"""Host side of testos's net scenarios, on the host end of the guest's tap
(run it in the tap's network namespace: `ip netns exec NS python3 netprobe.py
...`).  Frames go out and come in through an AF_PACKET socket bound to the
tap, built and checked byte by byte here, so nothing depends on the host
stack's neighbour table and every checksum the guest wrote is verified.
The probe speaks as a host of its own (PROBE_MAC, --probe-ip, default
198.18.0.3) so the host kernel ignores the guest's replies.

  arp TAP GUEST_IP
      one ARP request; prints `ok arp mac=...`
  echo TAP GUEST_IP [--min 60] [--max 9000] [--kinds icmp,udp] [--window 8]
      an ICMP echo request and a UDP datagram to port 7 of every frame size
      from --min to --max (Ethernet header included, FCS not); each answer
      must come back whole with right IP, ICMP and UDP checksums. Prints
      `ok echo icmp=N udp=N retries=R` or `FAIL ...` (exit 1).
  badsum TAP GUEST_IP
      a UDP datagram with a wrong IP header checksum, an ICMP echo request
      with a wrong ICMP checksum and a UDP datagram to port 7 with a wrong
      UDP checksum: none may be answered; then a good one must be. Prints
      `ok badsum ip icmp udp`.
  odd-frames TAP GUEST_IP [--max 65000]
      frames a NIC must survive, to the guest's MAC: a bare Ethernet header,
      17 bytes, IPv4 cut short, a runt whose IP length runs past its end, a
      short ARP, and UDP frames of 10229, 10240, 16384 and --max bytes (more
      than testos's 10228-byte receive buffers take: the tap needs an MTU of
      --max - 14). None may be answered; then a good one must be. Prints
      `ok odd-frames sent=N`.
  kernel-udp GUEST_IP SIZE...
      UDP datagrams of SIZE payload bytes to port 7 through the host's own
      stack (its ARP, its checksum checks): each echo must come back equal;
      prints `ok kernel-udp n=N retries=R`.
  blast TAP GUEST_IP --seconds S [--frame 60]
      for S seconds sends UDP frames (to the guest's port 9) as fast as it
      can and counts the frames of testos's net-blast it receives; prints
      `ok blast sent=N got=M`.
  flood TAP --seconds S
      broadcast UDP frames every millisecond for S seconds (traffic for the
      receive cases of net-hostile); prints `ok flood sent=N`.
"""
import argparse
import select
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
PACKET_OUTGOING = 4
PROBE_MAC = bytes.fromhex("020000000003")
BCAST = b"\xff" * 6


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ip4(text):
    return socket.inet_aton(text)


class Tap:
    def __init__(self, ifname):
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
        self.sock.bind((ifname, 0))
        self.ifname = ifname

    def send(self, frame):
        self.sock.send(frame)

    def recv(self, timeout):
        """One frame the guest sent (not our own), or None after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                return None
            frame, addr = self.sock.recvfrom(65536)
            if addr[2] != PACKET_OUTGOING:
                return frame


def ip_header(src, dst, proto, plen, ident):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + plen, ident, 0, 64, proto, 0, src, dst)
    return h[:10] + struct.pack("!H", csum(h)) + h[12:]


def udp_packet(src, dst, sport, dport, payload):
    ulen = 8 + len(payload)
    pseudo = src + dst + struct.pack("!BBH", 0, 17, ulen)
    u = struct.pack("!HHHH", sport, dport, ulen, 0) + payload
    c = csum(pseudo + u) or 0xFFFF
    return u[:6] + struct.pack("!H", c) + u[8:]


def arp_resolve(tap, probe_ip, guest_ip, timeout=5.0):
    req = (BCAST + PROBE_MAC + struct.pack("!H", ETH_P_ARP) +
           struct.pack("!HHBBH", 1, ETH_P_IP, 6, 4, 1) + PROBE_MAC + probe_ip +
           b"\0" * 6 + guest_ip)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tap.send(req.ljust(60, b"\0"))
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            f = tap.recv(end - time.monotonic())
            if (f and len(f) >= 42 and f[12:14] == b"\x08\x06" and f[20:22] == b"\0\x02"
                    and f[28:32] == guest_ip and f[0:6] == PROBE_MAC
                    and f[32:38] == PROBE_MAC and f[38:42] == probe_ip):
                return f[22:28]
    return None


PATTERN = bytes((i * 13) & 0xFF for i in range(65536 + 256))


def payload_for(kind, size, n):
    """n bytes that name the request (kind, size) and vary with both."""
    head = struct.pack("!4sI", kind.encode()[:4].ljust(4, b"_"), size)
    body = PATTERN[size % 251:size % 251 + max(0, n - 8)]
    return (head + body)[:n]


def request(kind, size, guest_mac, probe_ip, guest_ip):
    """The frame of `size` bytes asking for an echo, and the reply expected
    (IP payload: the ICMP message or the UDP datagram)."""
    n = size - 14 - 20 - 8
    data = payload_for(kind, size, n)
    if kind == "icmp":
        ident, seq = 0x7E57, size & 0xFFFF
        msg = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + data
        msg = msg[:2] + struct.pack("!H", csum(msg)) + msg[4:]
        ipp = ip_header(probe_ip, guest_ip, 1, len(msg), size & 0xFFFF) + msg
        want = struct.pack("!BBHHH", 0, 0, 0, ident, seq) + data
    else:
        sport = 20000 + size % 40000
        msg = udp_packet(probe_ip, guest_ip, sport, 7, data)
        ipp = ip_header(probe_ip, guest_ip, 17, len(msg), size & 0xFFFF) + msg
        want = (sport, data)
    frame = guest_mac + PROBE_MAC + struct.pack("!H", ETH_P_IP) + ipp
    return frame, want


def parse_reply(f, guest_mac, probe_ip, guest_ip):
    """(kind, key, payload-or-error) for a reply frame from the guest, or None."""
    if len(f) < 34 or f[12:14] != b"\x08\x00" or f[0:6] != PROBE_MAC:
        return None
    ip = f[14:]
    ihl = (ip[0] & 15) * 4
    total = struct.unpack("!H", ip[2:4])[0]
    if ip[0] >> 4 != 4 or ihl < 20 or total > len(ip):
        return ("bad", None, f"bad IP header (len {len(f)})")
    if csum(ip[:ihl]) != 0:
        return ("bad", None, f"IP header checksum wrong (frame {len(f)} bytes)")
    if ip[12:16] != guest_ip or ip[16:20] != probe_ip:
        return ("bad", None, "IP addresses not swapped")
    if f[6:12] != guest_mac:
        return ("bad", None, "source MAC is not the guest's")
    if len(f) < 60:
        return ("bad", None, f"runt frame of {len(f)} bytes")
    body = ip[ihl:total]
    if ip[9] == 1:
        if len(body) < 8 or body[0] != 0:
            return None
        if csum(body) != 0:
            return ("bad", None, f"ICMP checksum wrong ({len(body)} bytes)")
        return ("icmp", struct.unpack("!H", body[6:8])[0], body[:2] + b"\0\0" + body[4:])
    if ip[9] == 17:
        if len(body) < 8:
            return ("bad", None, "UDP datagram too short")
        sport, dport, ulen, c = struct.unpack("!HHHH", body[:8])
        if ulen != len(body):
            return ("bad", None, f"UDP length {ulen} for {len(body)} bytes")
        pseudo = guest_ip + probe_ip + struct.pack("!BBH", 0, 17, ulen)
        if c == 0 or csum(pseudo + body) != 0:
            return ("bad", None, f"UDP checksum wrong or missing ({ulen} bytes)")
        if sport != 7:
            return ("bad", None, f"UDP reply from port {sport}, not 7")
        return ("udp", dport, (dport, body[8:]))
    return None


class Failed(Exception):
    """A command's failure: main prints `FAIL <text>` and exits 1."""


def reach_guest(a):
    """(tap, probe IP, guest IP, guest MAC) with the MAC from ARP; Failed
    when the guest does not answer."""
    tap = Tap(a.tap)
    probe_ip, guest_ip = ip4(a.probe_ip), ip4(a.guest_ip)
    guest_mac = arp_resolve(tap, probe_ip, guest_ip)
    if not guest_mac:
        raise Failed(f"no ARP reply from {a.guest_ip}")
    return tap, probe_ip, guest_ip, guest_mac


def cmd_arp(a):
    guest_mac = reach_guest(a)[3]
    print("ok arp mac=" + ":".join(f"{b:02x}" for b in guest_mac))
    return 0


def cmd_echo(a):
    tap, probe_ip, guest_ip, guest_mac = reach_guest(a)
    kinds = a.kinds.split(",")
    todo = [(k, s) for s in range(a.min, a.max + 1) for k in kinds]
    pending = {}           # (kind, key) -> (size, want, frame, sent_at, tries)
    done = {k: 0 for k in kinds}
    retries = 0
    i = 0
    start = time.monotonic()
    while i < len(todo) or pending:
        while i < len(todo) and len(pending) < a.window:
            kind, size = todo[i]
            frame, want = request(kind, size, guest_mac, probe_ip, guest_ip)
            key = size & 0xFFFF if kind == "icmp" else 20000 + size % 40000
            pending[(kind, key)] = [size, want, frame, time.monotonic(), 1]
            tap.send(frame)
            i += 1
        f = tap.recv(0.2)
        now = time.monotonic()
        if f is not None:
            r = parse_reply(f, guest_mac, probe_ip, guest_ip)
            if r and r[0] == "bad":
                print(f"FAIL {r[2]}")
                return 1
            if r and (r[0], r[1]) in pending:
                size, want, _, _, _ = pending[(r[0], r[1])]
                if r[2] != want:
                    print(f"FAIL {r[0]} echo of a {size}-byte frame differs from the request")
                    return 1
                if len(f) != max(60, size):
                    print(f"FAIL {r[0]} reply to a {size}-byte frame is {len(f)} bytes")
                    return 1
                del pending[(r[0], r[1])]
                done[r[0]] += 1
        for key, p in list(pending.items()):
            if now - p[3] > a.timeout:
                if p[4] >= 3:
                    print(f"FAIL no {key[0]} reply to a {p[0]}-byte frame after 3 tries")
                    return 1
                p[3], p[4] = now, p[4] + 1
                retries += 1
                tap.send(p[2])
    ms = int((time.monotonic() - start) * 1000)
    print("ok echo " + " ".join(f"{k}={done[k]}" for k in kinds) +
          f" retries={retries} ms={ms}")
    return 0


def cmd_badsum(a):
    tap, probe_ip, guest_ip, guest_mac = reach_guest(a)
    bad = {}
    for kind in ("ip", "icmp", "udp"):
        proto = "udp" if kind == "ip" else kind
        frame, _ = request(proto, 100, guest_mac, probe_ip, guest_ip)
        f = bytearray(frame)
        at = {"ip": 14 + 10, "icmp": 34 + 2, "udp": 34 + 6}[kind]
        f[at] ^= 0x5A   # the checksum field, now wrong
        bad[kind] = bytes(f)
    for kind, f in bad.items():
        tap.send(f)
        while True:
            r = tap.recv(0.5)
            if r is None:
                break
            reply = parse_reply(r, guest_mac, probe_ip, guest_ip)
            if reply and reply[0] != "bad":
                print(f"FAIL a frame with a wrong {kind} checksum was answered")
                return 1
    frame, _ = request("udp", 100, guest_mac, probe_ip, guest_ip)
    tap.send(frame)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        r = tap.recv(deadline - time.monotonic())
        reply = r and parse_reply(r, guest_mac, probe_ip, guest_ip)
        if reply and reply[0] == "udp":
            print("ok badsum ip icmp udp")
            return 0
    print("FAIL no answer to a good frame after the bad ones")
    return 1


def cmd_odd_frames(a):
    """Runts and oversize frames to the guest's MAC, then a good echo."""
    tap, probe_ip, guest_ip, guest_mac = reach_guest(a)
    eth = guest_mac + PROBE_MAC
    good, _ = request("udp", 100, guest_mac, probe_ip, guest_ip)
    frames = [eth + b"\x08\x00",                 # header only
              eth + b"\x08\x00" + bytes(3),      # 17 bytes
              good[:40],                         # IPv4 cut inside the UDP header
              good[:59],                         # a runt: IP total length past the end
              eth + b"\x08\x06" + bytes(10)]     # a short ARP
    for size in (10229, 10240, 16384, a.max):
        big, _ = request("udp", size, guest_mac, probe_ip, guest_ip)
        frames.append(big)
    sent = 0
    for f in frames:
        try:
            tap.send(f)
            sent += 1
        except OSError as e:
            print(f"FAIL could not send a {len(f)}-byte frame: {e}")
            return 1
    got_bad = None
    deadline = time.monotonic() + 1
    while time.monotonic() < deadline:
        r = tap.recv(deadline - time.monotonic())
        reply = r and parse_reply(r, guest_mac, probe_ip, guest_ip)
        if reply and reply[0] == "udp" and reply[1] != 20100:
            got_bad = len(r)
    if got_bad:
        print(f"FAIL the guest answered a frame it cannot have received whole ({got_bad})")
        return 1
    tap.send(good)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        r = tap.recv(deadline - time.monotonic())
        reply = r and parse_reply(r, guest_mac, probe_ip, guest_ip)
        if reply and reply[0] == "udp" and reply[1] == 20100:
            print(f"ok odd-frames sent={sent}")
            return 0
    print("FAIL no answer to a good frame after the odd ones")
    return 1


def cmd_kernel_udp(a):
    """UDP echo through the host's own stack (its ARP, its checksum checks)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(a.timeout)
    s.connect((a.guest_ip, 7))
    done = retries = 0
    for n in a.sizes:
        data = payload_for("kern", n, n)
        for attempt in range(3):
            s.send(data)
            try:
                got = s.recv(65536)
            except socket.timeout:
                retries += 1
                continue
            if got != data:
                print(f"FAIL the echo of a {n}-byte datagram differs")
                return 1
            done += 1
            break
        else:
            print(f"FAIL no echo of a {n}-byte datagram after 3 tries")
            return 1
    print(f"ok kernel-udp n={done} retries={retries}")
    return 0


def cmd_blast(a):
    tap = Tap(a.tap)
    probe_ip, guest_ip = ip4(a.probe_ip), ip4(a.guest_ip)
    guest_mac = arp_resolve(tap, probe_ip, guest_ip) if not a.guest_mac else \
        bytes.fromhex(a.guest_mac.replace(":", ""))
    if not guest_mac:
        print(f"FAIL no ARP reply from {a.guest_ip}")
        return 1
    n = a.frame - 42
    frame = (guest_mac + PROBE_MAC + struct.pack("!H", ETH_P_IP) +
             ip_header(probe_ip, guest_ip, 17, 8 + n, 0) +
             udp_packet(probe_ip, guest_ip, 9, 9, bytes(n)))
    tap.sock.setblocking(False)
    sent = got = 0
    end = time.monotonic() + a.seconds
    while time.monotonic() < end:
        for _ in range(64):
            try:
                tap.sock.send(frame)
                sent += 1
            except BlockingIOError:
                break
        for _ in range(256):
            try:
                f, addr = tap.sock.recvfrom(65536)
            except BlockingIOError:
                break
            if addr[2] != PACKET_OUTGOING and f[6:12] == guest_mac and f[12:14] == b"\x08\x00":
                got += 1
    print(f"ok blast sent={sent} got={got}")
    return 0


def cmd_flood(a):
    tap = Tap(a.tap)
    src, dst = ip4(a.probe_ip), ip4("198.18.0.255")
    frame = (BCAST + PROBE_MAC + struct.pack("!H", ETH_P_IP) +
             ip_header(src, dst, 17, 8 + 64, 0) + udp_packet(src, dst, 9, 9, bytes(64)))
    sent = 0
    end = time.monotonic() + a.seconds
    while time.monotonic() < end:
        tap.send(frame)
        sent += 1
        time.sleep(0.001)
    print(f"ok flood sent={sent}")
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("kernel-udp")
    k.add_argument("guest_ip")
    k.add_argument("sizes", type=int, nargs="+")
    k.add_argument("--timeout", type=float, default=2.0)
    for name in ("arp", "echo", "badsum", "odd-frames", "blast", "flood"):
        s = sub.add_parser(name)
        s.add_argument("tap")
        if name != "flood":
            s.add_argument("guest_ip")
        s.add_argument("--probe-ip", default="198.18.0.3")
        if name == "odd-frames":
            s.add_argument("--max", type=int, default=65000,
                           help="the biggest frame (the tap's MTU + 14 at most)")
        if name == "echo":
            s.add_argument("--min", type=int, default=60)
            s.add_argument("--max", type=int, default=9000)
            s.add_argument("--kinds", default="icmp,udp")
            s.add_argument("--window", type=int, default=8)
            s.add_argument("--timeout", type=float, default=1.0)
        if name in ("blast", "flood"):
            s.add_argument("--seconds", type=float, default=5)
        if name == "blast":
            s.add_argument("--frame", type=int, default=60)
            s.add_argument("--guest-mac")
    a = p.parse_args()
    if a.cmd == "echo" and not 60 <= a.min <= a.max <= 9014:
        p.error("sizes must lie in 60..9014")
    cmd = {"arp": cmd_arp, "echo": cmd_echo, "kernel-udp": cmd_kernel_udp,
           "badsum": cmd_badsum, "odd-frames": cmd_odd_frames,
           "blast": cmd_blast, "flood": cmd_flood}[a.cmd]
    try:
        return cmd(a)
    except Failed as e:
        print(f"FAIL {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
