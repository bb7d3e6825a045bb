#!/usr/bin/python3
"""Unpacks the rootfs of an OCI archive (as written by `buildah push oci-archive:`) into a
directory, layer after layer, applying OCI whiteouts. Usage: oci-unpack.py ARCHIVE DEST"""
import json, os, shutil, sys, tarfile

def blob(t, digest):
    return t.extractfile("blobs/sha256/" + digest.split(":", 1)[1])

def main(archive, dest):
    os.makedirs(dest, exist_ok=True)
    with tarfile.open(archive) as t:
        index = json.load(t.extractfile("index.json"))
        manifest = json.load(blob(t, index["manifests"][0]["digest"]))
        config = json.load(blob(t, manifest["config"]["digest"]))
        # the image's environment, one K=V a line, beside the rootfs (DEST.env)
        with open(dest.rstrip("/") + ".env", "w") as f:
            for kv in config.get("config", {}).get("Env") or []:
                f.write(kv + "\n")
        for layer in manifest["layers"]:
            with tarfile.open(fileobj=blob(t, layer["digest"]), mode="r:*") as lt:
                members = lt.getmembers()
                keep = []
                for m in members:
                    name = os.path.normpath(m.name).lstrip("/")
                    if name.startswith(".."):
                        raise SystemExit(f"unsafe path {m.name}")
                    d, base = os.path.split(name)
                    if base == ".wh..wh..opq":
                        target = os.path.join(dest, d)
                        if os.path.isdir(target):
                            for e in os.listdir(target):
                                p = os.path.join(target, e)
                                shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.unlink(p)
                    elif base.startswith(".wh."):
                        p = os.path.join(dest, d, base[4:])
                        if os.path.isdir(p) and not os.path.islink(p):
                            shutil.rmtree(p)
                        elif os.path.lexists(p):
                            os.unlink(p)
                    else:
                        p = os.path.join(dest, name)
                        # a file replacing a directory (or the reverse) in a later layer
                        if os.path.lexists(p) and not (m.isdir() and os.path.isdir(p)):
                            shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.unlink(p)
                        keep.append(m)
                lt.extractall(dest, members=keep, numeric_owner=True)

if __name__ == "__main__":
    main(*sys.argv[1:])
