#!/usr/bin/env python3
"""Writes a one-layer OCI image archive (the layout `ctr images import` reads) from local files.

    oci-image.py --name oem.local/pause:3 --out pause.tar \
        --file /path/to/pause:/pause:0755 --dir /tmp:1777 --symlink /bin/sh:busybox \
        --entrypoint '["/pause"]' [--cmd '[...]'] [--user 10001:10001] [--workdir /] [--env K=V]

The layer is an uncompressed tar with fixed times and owners, so the same inputs give the same
image digest. No registry and no base image: every file of the image is named here.
"""
import argparse
import hashlib
import io
import json
import os
import tarfile


def blob(out, data):
    digest = hashlib.sha256(data).hexdigest()
    out[f"blobs/sha256/{digest}"] = data
    return f"sha256:{digest}", len(data)


def add(tar, name, kind, mode, data=b"", target="", uid=0):
    info = tarfile.TarInfo(name.lstrip("/"))
    info.mtime, info.uid, info.gid, info.mode = 0, uid, uid, mode
    info.uname = info.gname = ""
    if kind == "dir":
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    elif kind == "link":
        info.type, info.linkname = tarfile.SYMTYPE, target
        tar.addfile(info)
    else:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--file", action="append", default=[], help="SRC:DEST[:MODE]")
    p.add_argument("--content", action="append", default=[], help="DEST:TEXT (mode 0644)")
    p.add_argument("--dir", action="append", default=[], help="DEST[:MODE]")
    p.add_argument("--symlink", action="append", default=[], help="DEST:TARGET")
    p.add_argument("--entrypoint", default="null")
    p.add_argument("--cmd", default="null")
    p.add_argument("--user", default="")
    p.add_argument("--workdir", default="/")
    p.add_argument("--env", action="append", default=["PATH=/bin:/usr/bin"])
    a = p.parse_args()

    layer_buf = io.BytesIO()
    entries = []
    for d in a.dir:
        dest, _, mode = d.partition(":")
        entries.append((dest, "dir", int(mode or "755", 8), b"", ""))
    for f in a.file:
        src, dest, *mode = f.split(":")
        with open(src, "rb") as fh:
            entries.append((dest, "file", int(mode[0] if mode else "755", 8), fh.read(), ""))
    for c in a.content:
        dest, _, text = c.partition(":")
        entries.append((dest, "file", 0o644, text.encode(), ""))
    for s in a.symlink:
        dest, _, target = s.partition(":")
        entries.append((dest, "link", 0o777, b"", target))
    # Parent folders first, each once.
    parents = set()
    for dest, *_ in entries:
        parts = dest.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            parents.add("/" + "/".join(parts[:i]))
    declared = {e[0].rstrip("/") for e in entries if e[1] == "dir"}
    with tarfile.open(fileobj=layer_buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in sorted(parents - declared):
            add(tar, d, "dir", 0o755)
        for dest, kind, mode, data, target in sorted(entries, key=lambda e: e[0]):
            add(tar, dest, kind, mode, data, target)
    layer = layer_buf.getvalue()

    blobs = {}
    layer_digest, layer_size = blob(blobs, layer)
    config = {
        "architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine),
        "os": "linux",
        "config": {
            "Env": a.env,
            "Entrypoint": json.loads(a.entrypoint),
            "Cmd": json.loads(a.cmd),
            "WorkingDir": a.workdir,
            **({"User": a.user} if a.user else {}),
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created_by": "e2e/cluster/oci-image.py"}],
    }
    config_digest, config_size = blob(blobs, json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size}],
    }
    manifest_digest, manifest_size = blob(blobs, json.dumps(manifest, sort_keys=True).encode())
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "annotations": {
                "io.containerd.image.name": a.name,
                "org.opencontainers.image.ref.name": a.name.rsplit(":", 1)[-1],
            },
        }],
    }
    files = {"oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
             "index.json": json.dumps(index, sort_keys=True).encode(), **blobs}
    tmp = a.out + ".tmp"
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("blobs", "blobs/sha256"):
            add(tar, d, "dir", 0o755)
        for name, data in files.items():
            add(tar, name, "file", 0o644, data)
    os.replace(tmp, a.out)
    print(manifest_digest)


if __name__ == "__main__":
    main()
