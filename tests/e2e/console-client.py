#!/usr/bin/env python3
"""tests/e2e/console-client.py — the browser's side of isoforge-novncproxy, python3 stdlib only.

  console-client.py HOST PORT TOKEN rfb        websocket + RFB 3.8 as noVNC does it: expects
                                               security type None only, ServerInit, and a
                                               FramebufferUpdate with non-zero pixels; prints
                                               "ok WIDTHxHEIGHT NAME"
  console-client.py HOST PORT TOKEN status     prints the HTTP status of the upgrade request
  console-client.py HOST PORT TOKEN refused    expects the upgrade (101), then a close frame
                                               before any RFB byte; prints "closed CODE REASON"
  console-client.py HOST PORT TOKEN hold FILE  like rfb, then writes FILE and keeps the
                                               console open until the proxy closes it
Exit 0 when what was expected happened, 1 otherwise (with the reason on stderr).
"""
import base64
import hashlib
import os
import socket
import struct
import sys
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def die(msg):
    sys.stderr.write("console-client: %s\n" % msg)
    sys.exit(1)


class WS:
    def __init__(self, host, port, token, timeout=60, origin=None):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.key = base64.b64encode(os.urandom(16))
        req = ("GET /websockify?token=%s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
               "Origin: %s\r\n\r\n" % (token, host, port, self.key.decode(),
                                          origin or "http://%s:%d" % (host, port)))
        self.sock.sendall(req.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            d = self.sock.recv(1)
            if not d:
                break
            head += d
        lines = head.decode("latin-1").split("\r\n")
        if not lines or len(lines[0].split()) < 2:
            die("no HTTP answer: %r" % head)
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for l in lines[1:]:
            if ":" in l:
                k, v = l.split(":", 1)
                self.headers[k.strip().lower()] = v.strip()
        self.payload = b""       # received payload not yet consumed
        self.close = None        # (code, reason) once a close frame came
        self.pongs = []

    def check_upgrade(self):
        if self.status != 101:
            die("upgrade answered %d" % self.status)
        want = base64.b64encode(hashlib.sha1(self.key + GUID).digest()).decode()
        if self.headers.get("sec-websocket-accept") != want:
            die("bad Sec-WebSocket-Accept %r" % self.headers.get("sec-websocket-accept"))
        if self.headers.get("upgrade", "").lower() != "websocket":
            die("no Upgrade: websocket")

    def _exact(self, n):
        b = b""
        while len(b) < n:
            d = self.sock.recv(n - len(b))
            if not d:
                raise EOFError("connection closed")
            b += d
        return b

    def frame(self):
        """Reads one frame into self.payload (binary) or self.close; returns its opcode."""
        h = self._exact(2)
        if h[1] & 0x80:
            die("the server masked a frame")
        op, n = h[0] & 0x0F, h[1] & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._exact(8))[0]
        data = self._exact(n)
        if op == 2:
            self.payload += data
        elif op == 8:
            code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 0
            self.close = (code, data[2:].decode("utf-8", "replace"))
        elif op == 10:
            self.pongs.append(data)
        elif op == 1:
            die("a text frame")
        return op

    def read(self, n):
        while len(self.payload) < n:
            self.frame()
            if self.close is not None:
                raise EOFError("closed by the proxy: %d %s" % self.close)
        b, self.payload = self.payload[:n], self.payload[n:]
        return b

    def send(self, data, op=2, fin=True):
        mask = os.urandom(4)
        n = len(data)
        h = bytes([(0x80 if fin else 0) | op])
        if n < 126:
            h += bytes([0x80 | n])
        elif n < 65536:
            h += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            h += bytes([0x80 | 127]) + struct.pack("!Q", n)
        self.sock.sendall(h + mask + bytes(b ^ mask[i & 3] for i, b in enumerate(data)))


def rfb(ws, deadline_s=120):
    """noVNC's part: RFB 3.8, security None, ClientInit, raw updates until a pixel is lit."""
    ws.send(b"isoforge", op=9)                      # a ping: the proxy answers it
    ver = ws.read(12)
    if ver != b"RFB 003.008\n":
        die("server version %r" % ver)
    ws.send(b"RFB 00", fin=False)                   # a fragmented message, as browsers may
    ws.send(b"3.008\n", op=0)
    n = ws.read(1)[0]
    types = list(ws.read(n))
    if types != [1]:
        die("security types %r, want only None (1)" % types)
    ws.send(bytes([1]))
    res = struct.unpack("!I", ws.read(4))[0]
    if res != 0:
        die("SecurityResult %d" % res)
    ws.send(bytes([1]))                              # ClientInit: shared
    w, h = struct.unpack("!HH", ws.read(4))
    pf = ws.read(16)
    bpp = pf[0]
    name = ws.read(struct.unpack("!I", ws.read(4))[0]).decode("utf-8", "replace")
    if w == 0 or h == 0 or bpp not in (8, 16, 32):
        die("ServerInit %dx%d bpp %d" % (w, h, bpp))
    ws.send(struct.pack("!BBHi", 2, 0, 1, 0))       # SetEncodings: raw only
    end = time.time() + deadline_s
    while time.time() < end:
        ws.send(struct.pack("!BBHHHH", 3, 0, 0, 0, w, h))   # a full update
        lit = False
        while True:
            t = ws.read(1)[0]
            if t == 0:
                break
            if t == 2:          # Bell
                continue
            if t == 3:          # ServerCutText
                ws.read(3)
                ws.read(struct.unpack("!I", ws.read(4))[0])
                continue
            die("server message type %d" % t)
        ws.read(1)
        nrect = struct.unpack("!H", ws.read(2))[0]
        for _ in range(nrect):
            x, y, rw, rh, enc = struct.unpack("!HHHHi", ws.read(12))
            if enc != 0:
                die("encoding %d not asked for" % enc)
            px = ws.read(rw * rh * bpp // 8)
            if any(px):
                lit = True
        if lit:
            if b"isoforge" not in ws.pongs:
                die("no pong to the ping")
            return w, h, name
        time.sleep(1)
    die("no non-zero pixel in %d s" % deadline_s)


def main():
    if len(sys.argv) < 5:
        die("usage: console-client.py HOST PORT TOKEN rfb|status|refused|hold [FILE]")
    host, port, token, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    ws = WS(host, port, token, origin=os.environ.get("CONSOLE_ORIGIN"))
    if mode == "status":
        print(ws.status)
        return
    ws.check_upgrade()
    if mode == "refused":
        try:
            while ws.close is None:
                ws.frame()
                if ws.payload:
                    die("RFB bytes before a refusal: %r" % ws.payload[:12])
        except EOFError:
            die("closed without a close frame")
        print("closed %d %s" % ws.close)
        return
    w, h, name = rfb(ws)
    print("ok %dx%d %s" % (w, h, name), flush=True)
    if mode == "hold":
        open(sys.argv[5], "w").write("open\n")
        try:
            while ws.close is None:
                ws.frame()
        except (EOFError, OSError):
            pass
        print("closed by the proxy", flush=True)


if __name__ == "__main__":
    main()
