#!/usr/bin/env python3
"""tests/real/debmirror.py — the test-local Debian overlay mirror the `real` group installs from.

This machine's Debian archive does not serve every component the official Debian 13 installer
downloads after boot (../shared/notes/real-installers.md): its kernel's module udebs are not in
the udeb index at all, and a few udebs (e2fsprogs-udeb, libmount1-udeb) answer 404. The overlay
supplies them, built from the archive's regular packages, and passes everything else through.

  debmirror.py build CACHEDIR      builds CACHEDIR/overlay (idempotent; downloads into CACHEDIR)
  debmirror.py serve CACHEDIR --netns NS --listen ADDR:PORT --log FILE [--pidfile F]
                                   answers HTTP inside network namespace NS: paths present in the
                                   overlay from it, every other path from the archive

The overlay holds the suite's Release with the udeb index lines rewritten (the installer's
net-retriever reads Release, without Release.gpg: it is told debian-installer/allow_unauthenticated
for this mirror), the rewritten udeb index and the built udebs under pool/isoforge/. InRelease is
the archive's own, signed: debootstrap and the installed system's apt read it and the regular
indices it names, unchanged (apt refuses an unsigned Release, whatever the preseed says).

The listening socket is made inside the namespace (setns), the upstream connections in the
namespace the server was started in: the namespace needs no route to the outside, the host no
forwarding or NAT.
"""
import argparse
import ctypes
import gzip
import hashlib
import http.client
import io
import lzma
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SUITE = "trixie"
ARCHIVE = os.environ.get("ISOFORGE_REAL_ARCHIVE", "http://deb.debian.org/debian")
NETBOOT = ("pool/main/d/debian-installer-netboot-images/"
           "debian-installer-13-netboot-amd64_20250803+deb13u8_all.deb")
# The regular packages the missing non-kernel udebs are rebuilt from (file base names looked up
# in all of them), by udeb: the udebs the installer asks for that this archive answers 404 for
# and its initrd does not already hold (found by a HEAD of each +deb13uN / +bN udeb the index
# lists; see tests/real/README.md).
REBUILT = {
    "e2fsprogs-udeb": ["pool/main/e/e2fsprogs/e2fsprogs_1.47.2-3+b12_amd64.deb",
                       "pool/main/e/e2fsprogs/libext2fs2t64_1.47.2-3+b12_amd64.deb",
                       "pool/main/e/e2fsprogs/libcom-err2_1.47.2-3+b12_amd64.deb",
                       "pool/main/e/e2fsprogs/libss2_1.47.2-3+b12_amd64.deb"],
    "libmount1-udeb": ["pool/main/u/util-linux/libmount1_2.41.5-0+deb13u1_amd64.deb"],
    "libfdisk1-udeb": ["pool/main/u/util-linux/libfdisk1_2.41.5-0+deb13u1_amd64.deb"],
    "libsmartcols1-udeb": ["pool/main/u/util-linux/libsmartcols1_2.41.5-0+deb13u1_amd64.deb"],
    "fdisk-udeb": ["pool/main/u/util-linux/fdisk_2.41.5-0+deb13u1_amd64.deb"],
    "eject-udeb": ["pool/main/u/util-linux/eject_2.41.5-0+deb13u1_amd64.deb"],
    "xfsprogs-udeb": ["pool/main/x/xfsprogs/xfsprogs_6.13.0-2+deb13u1_amd64.deb"],
    "ntfs-3g-udeb": ["pool/main/n/ntfs-3g/ntfs-3g_2022.10.3-5+deb13u2_amd64.deb",
                     "pool/main/n/ntfs-3g/libntfs-3g89t64_2022.10.3-5+deb13u2_amd64.deb"],
}
UDEB_INDEX = "main/debian-installer/binary-amd64/Packages"


def log(*a):
    print("debmirror:", *a, file=sys.stderr, flush=True)


def fetch(cache, path):
    """The archive's file at path, downloaded once into cache/dl/ (atomically)."""
    local = os.path.join(cache, "dl", path.replace("/", "_"))
    if os.path.exists(local):
        return local
    os.makedirs(os.path.dirname(local), exist_ok=True)
    url = ARCHIVE + "/" + urllib.parse.quote(path)
    log("fetching", path)
    with urllib.request.urlopen(url, timeout=120) as r, open(local + ".tmp", "wb") as f:
        shutil.copyfileobj(r, f, 1 << 20)
    os.rename(local + ".tmp", local)
    return local


def stanzas(text):
    return [s for s in text.strip("\n").split("\n\n") if s.strip()]


def field(stanza, name):
    m = re.search(r"^%s: (.*)$" % re.escape(name), stanza, re.M)
    return m.group(1) if m else None


def set_field(stanza, name, value):
    return re.sub(r"^%s: .*$" % re.escape(name), "%s: %s" % (name, value), stanza, flags=re.M)


def deb_members(deb, dest):
    """Unpacks a .deb's data into dest (dpkg-deb, an argv child)."""
    subprocess.run(["dpkg-deb", "-x", deb, dest], check=True)


def build_udeb(outdir, stanza, tree):
    """dpkg-deb -b of tree with a control file from the index stanza; returns the stanza with
    Filename, Size, MD5sum, SHA256 of the new file."""
    pkg, ver, arch = field(stanza, "Package"), field(stanza, "Version"), field(stanza, "Architecture")
    os.makedirs(os.path.join(tree, "DEBIAN"), exist_ok=True)
    keep = ("Package", "Source", "Version", "Architecture", "Maintainer", "Installed-Size",
            "Depends", "Provides", "Section", "Priority", "Description")
    lines = [l for l in stanza.split("\n") if l.split(":", 1)[0] in keep]
    with open(os.path.join(tree, "DEBIAN", "control"), "w") as f:
        f.write("\n".join(lines) + "\n")
    name = "%s_%s_%s.udeb" % (pkg, re.sub(r"^\d+:", "", ver), arch)
    out = os.path.join(outdir, "pool", "isoforge", name)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zxz", "-b", tree, out], check=True,
                   stdout=subprocess.DEVNULL)
    data = open(out, "rb").read()
    s = set_field(stanza, "Filename", "pool/isoforge/" + name)
    s = set_field(s, "Size", str(len(data)))
    s = set_field(s, "MD5sum", hashlib.md5(data).hexdigest())
    s = set_field(s, "SHA256", hashlib.sha256(data).hexdigest())
    s = "\n".join(l for l in s.split("\n") if not l.startswith(("SHA1:", "Description-md5:")))
    return s


def build(cache):
    overlay = os.path.join(cache, "overlay")
    stamp = os.path.join(overlay, "stamp")
    key = hashlib.sha256(open(__file__, "rb").read()).hexdigest()[:16]
    if os.path.exists(stamp) and open(stamp).read().strip() == key:
        log("overlay up to date in", overlay)
        return
    tmp = overlay + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    work = os.path.join(cache, "work")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)

    # the installer's kernel ABI: the netboot initrd's kernel-image udeb
    nb = os.path.join(work, "netboot")
    deb_members(fetch(cache, NETBOOT), nb)
    initrd = os.path.join(nb, "usr/lib/debian-installer/images/13/amd64/text/debian-installer/"
                          "amd64/initrd.gz")
    cp = subprocess.run(["cpio", "-i", "--quiet", "--to-stdout", "var/lib/dpkg/status"],
                        input=gzip.open(initrd).read(), stdout=subprocess.PIPE, check=True)
    installed = set(re.findall(r"^Package: (\S+)$", cp.stdout.decode(), re.M))
    abi = next(p for p in installed if p.startswith("kernel-image-")).split("kernel-image-")[1]
    abi = abi[:-len("-di")]                       # 6.12.117+deb13-amd64
    kver = abi.split("+")[0]                      # 6.12.117
    log("installer kernel ABI", abi)

    release = open(fetch(cache, "dists/%s/Release" % SUITE), "rb").read().decode()
    index = lzma.open(fetch(cache, "dists/%s/%s.xz" % (SUITE, UDEB_INDEX))).read().decode()
    entries = stanzas(index)
    names = {field(s, "Package") for s in entries}
    contents = gzip.open(fetch(cache, "dists/%s/main/Contents-udeb-amd64.gz" % SUITE)).read().decode()

    # a module udeb ABI the index has, as the template of the missing ones
    abis = sorted({m.group(1) for m in re.finditer(r"^kernel-image-(\S+)-di$", "\n".join(names), re.M)})
    have = abi in abis
    donor = [a for a in abis if a != abi][-1] if not have else None
    new = []
    if not have:
        # linux-image of the installer's kernel: the module files
        ver = "%s-1" % kver
        kdeb = fetch(cache, "pool/main/l/linux-signed-amd64/linux-image-%s_%s_amd64.deb" % (abi, ver))
        kroot = os.path.join(work, "kernel")
        deb_members(kdeb, kroot)
        mods = {}
        for dp, _, fs in os.walk(os.path.join(kroot, "usr/lib/modules", abi)):
            for f in fs:
                mods[os.path.relpath(os.path.join(dp, f), os.path.join(kroot, "usr/lib/modules", abi))] = os.path.join(dp, f)
        files = {}
        for line in contents.split("\n"):
            m = re.match(r"^(\S+)\s+(\S+)$", line)
            if not m:
                continue
            for loc in m.group(2).split(","):
                pkg = loc.split("/")[-1]
                if pkg.endswith("-%s-di" % donor):
                    files.setdefault(pkg, []).append(m.group(1))
        donor_entries = [s for s in entries if field(s, "Package").endswith("-%s-di" % donor)]
        for s in donor_entries:
            pkg = field(s, "Package")
            target = pkg.replace(donor, abi)
            if target in installed:
                continue
            t = s.replace(donor, abi).replace(field(s, "Version"), ver)
            t = re.sub(r"^Source: .*$", "Source: linux-signed-amd64 (%s+1)" % kver, t, flags=re.M)
            tree = os.path.join(work, "udeb", target)
            missing = 0
            for path in files.get(pkg, []):
                rel = path.replace(donor, abi)
                inmod = re.sub(r"^(usr/)?lib/modules/%s/" % re.escape(abi), "", rel)
                src = mods.get(inmod)
                if src is None:
                    missing += 1
                    continue
                dst = os.path.join(tree, rel)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copy2(src, dst)
            if missing:
                log("%s: %d module(s) not in the kernel package" % (target, missing))
            os.makedirs(tree, exist_ok=True)
            new.append(build_udeb(tmp, t, tree))
        log("built %d module udebs for %s from linux-image-%s" % (len(new), abi, abi))

    # the udebs whose pool files the archive does not serve, from their regular packages
    rebuilt = {}
    for udeb, debs in REBUILT.items():
        s = next(x for x in entries if field(x, "Package") == udeb)
        root = os.path.join(work, "deb-" + udeb)
        for d in debs:
            deb_members(fetch(cache, d), root)
        byname = {}
        for dp, _, fs in os.walk(root):
            for f in fs:
                byname.setdefault(f, os.path.join(dp, f))
            for f in os.listdir(dp):
                if os.path.islink(os.path.join(dp, f)):
                    byname.setdefault(f, os.path.join(dp, f))
        tree = os.path.join(work, "udeb", udeb)
        for line in contents.split("\n"):
            m = re.match(r"^(\S+)\s+(\S+)$", line)
            if not m or not any(l.split("/")[-1] == udeb for l in m.group(2).split(",")):
                continue
            path = m.group(1)
            src = byname.get(os.path.basename(path))
            if src is None:
                log("%s: %s not in %s" % (udeb, path, debs))
                continue
            dst = os.path.join(tree, path)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if os.path.islink(src):
                os.symlink(os.readlink(src), dst)
            else:
                shutil.copy2(src, dst)
        rebuilt[udeb] = build_udeb(tmp, s, tree)
    log("rebuilt", ", ".join(sorted(rebuilt)))

    out = [rebuilt.get(field(s, "Package"), s) for s in entries] + new
    text = ("\n\n".join(out) + "\n").encode()
    d = os.path.join(tmp, "dists", SUITE, os.path.dirname(UDEB_INDEX))
    os.makedirs(d)
    variants = {"Packages": text, "Packages.gz": gzip.compress(text, 9, mtime=0),
                "Packages.xz": lzma.compress(text)}
    for n, data in variants.items():
        open(os.path.join(d, n), "wb").write(data)
    # Release: the udeb index lines with the new hashes, the rest as the archive has it
    lines = []
    for line in release.split("\n"):
        m = re.match(r"^ ([0-9a-f]+)\s+(\d+) (\S+)$", line)
        if m and m.group(3).startswith(os.path.dirname(UDEB_INDEX) + "/Packages"):
            data = variants[m.group(3).rsplit("/", 1)[1]]
            algo = {32: hashlib.md5, 64: hashlib.sha256}.get(len(m.group(1)))
            if algo is None:
                continue
            line = " %s %16d %s" % (algo(data).hexdigest(), len(data), m.group(3))
        lines.append(line)
    open(os.path.join(tmp, "dists", SUITE, "Release"), "w").write("\n".join(lines))
    open(os.path.join(tmp, "stamp"), "w").write(key + "\n")
    shutil.rmtree(overlay, ignore_errors=True)
    os.rename(tmp, overlay)
    shutil.rmtree(work, ignore_errors=True)
    log("overlay ready in", overlay)


# ---- the proxy ----

CLONE_NEWNET = 0x40000000


def setns(fd):
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    overlay = None
    upstream = None
    logf = None

    def log_message(self, fmt, *args):
        pass

    def record(self, code, src, size):
        line = "%s %s %d %s %d\n" % (time.strftime("%H:%M:%S"), self.path, code, src, size)
        with Handler.lock:
            Handler.logf.write(line)
            Handler.logf.flush()

    def do_HEAD(self):
        self.answer(head=True)

    def do_GET(self):
        self.answer(head=False)

    def answer(self, head):
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        rel = path[len("/debian/"):] if path.startswith("/debian/") else None
        if rel is None or ".." in rel.split("/"):
            self.send_error(404)
            self.record(404, "-", 0)
            return
        # the suite by its alias too (an installer asks for dists/stable or dists/trixie)
        if rel.startswith("dists/stable/"):
            rel = "dists/%s/" % SUITE + rel[len("dists/stable/"):]
        # the overlay's Release is not signed: no Release.gpg (the installer's net-retriever is
        # told allow_unauthenticated). InRelease passes through from the archive: signed, with
        # the archive's own hashes of the regular indices, which is what debootstrap and the
        # target's apt read (they never read the udeb index)
        if rel == "dists/%s/Release.gpg" % SUITE:
            self.send_error(404)
            self.record(404, "overlay", 0)
            return
        local = os.path.join(Handler.overlay, rel)
        if os.path.isfile(local):
            data = open(local, "rb").read()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if not head:
                self.wfile.write(data)
            self.record(200, "overlay", len(data))
            return
        u = urllib.parse.urlsplit(Handler.upstream)
        conn = http.client.HTTPConnection(Handler.upstream_addr[0], Handler.upstream_addr[1],
                                          timeout=120)
        conn.sock = Handler.connect()
        try:
            conn.request("HEAD" if head else "GET", u.path + "/" + urllib.parse.quote(rel),
                         headers={"Host": u.hostname})
            r = conn.getresponse()
            self.send_response(r.status)
            n = r.getheader("Content-Length")
            body = None
            if n is None and not head:
                body = r.read()
                n = str(len(body))
            self.send_header("Content-Length", n or "0")
            for h in ("Content-Type", "Last-Modified", "ETag"):
                if r.getheader(h):
                    self.send_header(h, r.getheader(h))
            self.end_headers()
            size = 0
            if not head:
                if body is not None:
                    self.wfile.write(body)
                    size = len(body)
                else:
                    while True:
                        chunk = r.read(1 << 16)
                        if not chunk:
                            break
                        self.wfile.write(chunk)
                        size += len(chunk)
            self.record(r.status, "archive", size)
        finally:
            conn.close()


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self):
        # HTTPServer's own looks the host name up: no resolver in the namespace
        import socketserver
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


def serve(cache, netns, listen, logpath, pidfile):
    overlay = os.path.join(cache, "overlay")
    if not os.path.isdir(overlay):
        sys.exit("debmirror: no overlay in %s (run build first)" % cache)
    host, port = listen.rsplit(":", 1)
    u = urllib.parse.urlsplit(ARCHIVE)
    addr = (u.hostname, u.port or 80)
    # resolve and connect upstream from here (the namespace we started in)
    here = os.open("/proc/self/ns/net", os.O_RDONLY)
    there = os.open("/run/netns/" + netns, os.O_RDONLY)
    infos = socket.getaddrinfo(addr[0], addr[1], socket.AF_INET, socket.SOCK_STREAM)
    lock = threading.Lock()

    def connect():
        # sockets live in the namespace current when they are made
        with lock:
            return socket.create_connection(infos[0][4], timeout=120)

    setns(there)
    srv = Server((host, int(port)), Handler)
    setns(here)
    os.close(there)
    Handler.overlay = overlay
    Handler.upstream = ARCHIVE
    Handler.upstream_addr = addr
    Handler.connect = staticmethod(connect)
    Handler.logf = open(logpath, "a")
    Handler.lock = threading.Lock()
    if pidfile:
        open(pidfile, "w").write("%d\n" % os.getpid())
    log("serving %s on %s in netns %s, the rest from %s" % (overlay, listen, netns, ARCHIVE))
    srv.serve_forever()


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("cache")
    s = sub.add_parser("serve")
    s.add_argument("cache")
    s.add_argument("--netns", required=True)
    s.add_argument("--listen", required=True)
    s.add_argument("--log", required=True)
    s.add_argument("--pidfile")
    a = ap.parse_args()
    if a.cmd == "build":
        build(os.path.abspath(a.cache))
    else:
        serve(os.path.abspath(a.cache), a.netns, a.listen, a.log, a.pidfile)


if __name__ == "__main__":
    main()
