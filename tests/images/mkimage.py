#!/usr/bin/env python3
"""Packs a root filesystem into an OCI image archive (what `ctr images import` and
`kind load image-archive` read), without a container engine. Deterministic: the same inputs give
the same bytes (every mtime 0, entries sorted), so archives can be cached by content.

mkimage.py OUT.tar NAME:TAG [--busybox] [--file SRC=DEST[:MODE]]... [--dir SRC=DEST]...
           [--user UID:GID] [--entrypoint JSON] [--cmd JSON] [--env K=V]... [--workdir DIR]

--busybox adds Debian's busybox-static as /bin/busybox with a link per applet, /etc/passwd and
/etc/group (root, nobody), and /tmp; without it the image holds only what --file and --dir add.
--dir copies a directory tree (e.g. a Python environment) to DEST.
"""
import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

BUSYBOX = "/bin/busybox"


class Layer:
    """One layer's entries, keyed by path, written sorted. A file's bytes are either held (small
    files made here) or read from its source path when the layer is written, so a large tree
    (a Python environment) is streamed, not held in memory."""

    def __init__(self):
        self.entries = {}

    def directory(self, path, mode=0o755):
        path = path.strip("/")
        if not path:
            return
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            parent = "/".join(parts[:i])
            if parent not in self.entries:
                info = tarfile.TarInfo(parent)
                info.type, info.mode = tarfile.DIRTYPE, (mode if i == len(parts) else 0o755)
                self.entries[parent] = (info, None)

    def file(self, path, data, mode=0o644):
        """Adds a file whose contents are `data` (bytes) or the file at `data` (a path)."""
        path = path.strip("/")
        self.directory(os.path.dirname(path))
        info = tarfile.TarInfo(path)
        info.size = len(data) if isinstance(data, bytes) else os.stat(data).st_size
        info.mode = mode
        self.entries[path] = (info, data)

    def symlink(self, path, target):
        path = path.strip("/")
        info = tarfile.TarInfo(path)
        info.type, info.linkname = tarfile.SYMTYPE, target
        self.entries[path] = (info, None)

    def tree(self, src, dest):
        for root, dirs, files in os.walk(src):
            dirs.sort()
            rel = os.path.relpath(root, src)
            base = dest.strip("/") if rel == "." else os.path.join(dest.strip("/"), rel)
            self.directory(base, os.stat(root).st_mode & 0o7777)
            for name in sorted(files) + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
                full = os.path.join(root, name)
                target = os.path.join(base, name)
                if os.path.islink(full):
                    self.symlink(target, os.readlink(full))
                elif os.path.isfile(full):
                    self.file(target, full, os.stat(full).st_mode & 0o7777)

    def write(self, out):
        """Writes the layer as a tar file to `out`; returns its sha256 digest (hex)."""
        with open(out, "wb") as raw:
            hashing = _Hashing(raw)
            with tarfile.open(fileobj=hashing, mode="w", format=tarfile.PAX_FORMAT) as t:
                for path in sorted(self.entries):
                    info, data = self.entries[path]
                    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                    if data is None:
                        t.addfile(info)
                    elif isinstance(data, bytes):
                        t.addfile(info, io.BytesIO(data))
                    else:
                        with open(data, "rb") as f:
                            t.addfile(info, f)
        return hashing.sha256.hexdigest()


class _Hashing(io.RawIOBase):
    """A writable file that hashes what passes through it."""

    def __init__(self, raw):
        self.raw, self.sha256, self.written = raw, hashlib.sha256(), 0

    def writable(self):
        return True

    def tell(self):
        return self.written

    def write(self, b):
        self.sha256.update(b)
        self.written += len(b)
        return self.raw.write(b)


def busybox(layer):
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True)
    with open(BUSYBOX, "rb") as f:
        layer.file("bin/busybox", f.read(), 0o755)
    for applet in applets.stdout.split():
        if applet != "busybox":
            layer.symlink("bin/" + applet, "busybox")
    layer.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    layer.file("etc/group", b"root:x:0:\nnogroup:x:65534:\n")
    for d in ("root", "proc", "sys", "dev", "var"):
        layer.directory(d)
    layer.directory("tmp", 0o1777)


def archive(out, name, layer_path, layer_sha256, config):
    """Writes the OCI archive of one layer (a tar file already written, with its digest)."""
    blobs = {layer_sha256: layer_path}

    def blob(data):
        digest = hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return "sha256:" + digest

    layer_digest = "sha256:" + layer_sha256
    layer_size = os.stat(layer_path).st_size
    config = dict(config, rootfs={"type": "layers", "diff_ids": [layer_digest]})
    config_bytes = json.dumps(config, sort_keys=True).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": blob(config_bytes), "size": len(config_bytes)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": layer_size}],
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
    manifest_digest = blob(manifest_bytes)
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": manifest_digest, "size": len(manifest_bytes),
        "annotations": {"io.containerd.image.name": name,
                        "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1]}}]}
    with tarfile.open(out, "w") as t:
        def add(path, data):
            info = tarfile.TarInfo(path)
            info.mode, info.mtime = 0o644, 0
            if isinstance(data, bytes):
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
            else:
                info.size = os.stat(data).st_size
                with open(data, "rb") as f:
                    t.addfile(info, f)
        add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add("index.json", json.dumps(index, sort_keys=True).encode())
        for digest in sorted(blobs):
            add("blobs/sha256/" + digest, blobs[digest])
    return manifest_digest


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out")
    p.add_argument("name")
    p.add_argument("--busybox", action="store_true")
    p.add_argument("--file", action="append", default=[])
    p.add_argument("--dir", action="append", default=[])
    p.add_argument("--user", default="")
    p.add_argument("--entrypoint", default="null")
    p.add_argument("--cmd", default="null")
    p.add_argument("--env", action="append", default=[])
    p.add_argument("--workdir", default="/")
    a = p.parse_args()
    if ":" not in a.name.rsplit("/", 1)[-1]:
        sys.exit("NAME needs a tag, e.g. tfjob-test.local/busybox:1")
    layer = Layer()
    if a.busybox:
        busybox(layer)
    for spec in a.file:
        src, dest = spec.split("=", 1)
        dest, _, mode = dest.partition(":")
        layer.file(dest, src, int(mode, 8) if mode else os.stat(src).st_mode & 0o7777)
    for spec in a.dir:
        src, dest = spec.split("=", 1)
        layer.tree(src, dest)
    env = ["PATH=/usr/local/bin:/usr/bin:/bin"] + a.env
    config = {"architecture": "amd64", "os": "linux",
              "config": {"Env": env, "Entrypoint": json.loads(a.entrypoint),
                         "Cmd": json.loads(a.cmd), "WorkingDir": a.workdir,
                         **({"User": a.user} if a.user else {})}}
    layer_path = a.out + ".layer"
    try:
        digest = archive(a.out, a.name, layer_path, layer.write(layer_path), config)
    finally:
        if os.path.exists(layer_path):
            os.remove(layer_path)
    print(a.out, a.name, digest)


if __name__ == "__main__":
    main()
