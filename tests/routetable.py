"""Read what weir-controller published, whichever format: a version 1 routes.json, or a
version 2 index with its host and certificate shards (docs/route-table.md, "Sharded tables").

load(pub) gives one version-1-like dict: the index's keys, "hosts", "backends" and "certs" as
lists of the shards' objects (a hole in "backends" or "certs" is None). Tests that read the table use it instead of parsing
routes.json themselves."""

import hashlib
import json
import pathlib

INDEX = "routes.json"
SHARDS = "shards"


def shard(pub, sid):
    """The object of shard sid; its bytes must hash to its name."""
    data = (pathlib.Path(pub) / SHARDS / f"{sid}.json").read_bytes()
    assert hashlib.sha256(data).hexdigest() == sid, f"shard {sid}: content does not match"
    return json.loads(data)


LISTS = {"hosts": "host_lists", "backends": "backend_lists", "certs": "cert_lists"}


def ids(pub, table, kind, cache=None):
    """The shard ids an index names for kind ("hosts", "backends" or "certs"): in the index, or
    in the id lists it names (docs/route-table.md, "Id lists"). cache: as for host_names."""
    lists = table.get(LISTS[kind], [])
    if not lists:
        return table.get(kind, [])
    cache = {} if cache is None else cache
    out = []
    for lid in lists:
        if lid not in cache:
            cache[lid] = shard(pub, lid)
        out.extend(cache[lid])
    return out


def load(pub):
    pub = pathlib.Path(pub)
    table = json.loads((pub / INDEX).read_text())
    if table.get("version") != 2:
        return table
    for kind, key in LISTS.items():
        table[kind] = ids(pub, table, kind)
        table.pop(key, None)
    table["hosts"] = [shard(pub, sid) for sid in table.get("hosts", [])]
    table["backends"] = [shard(pub, sid) if sid else None for sid in table.get("backends", [])]
    table["certs"] = [shard(pub, sid) if sid else None for sid in table.get("certs", [])]
    return table


def v1_bytes(pub):
    """The published table as version 1 text (for a proxy directory of its own). Refuses a
    table with holes (a fresh publish has none)."""
    table = load(pub)
    if table.get("version") == 2:
        assert None not in table["certs"] + table["backends"], "slots with holes"
        table["version"] = 1
    return json.dumps(table).encode()


def shard_files(pub):
    """Names of the shard files in the publish directory (temporary files included)."""
    d = pathlib.Path(pub) / SHARDS
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def host_names(pub, cache=None):
    """Host names the published table serves. Shards never change, so cache (a dict the caller
    keeps between calls) remembers each host shard's name: polling a big table reads only the
    index and the shards not seen before."""
    pub = pathlib.Path(pub)
    table = json.loads((pub / INDEX).read_text())
    if table.get("version") != 2:
        return {h.get("name", "") for h in table.get("hosts", [])}
    cache = {} if cache is None else cache
    names = set()
    for sid in ids(pub, table, "hosts", cache):
        if sid not in cache:
            cache[sid] = shard(pub, sid).get("name", "")
        names.add(cache[sid])
    return names


def list_files(pub):
    """Names of the id list files among shard_files(pub) (a list's text is a JSON array)."""
    d = pathlib.Path(pub) / SHARDS
    return sorted(n for n in shard_files(pub)
                  if not n.startswith(".") and (d / n).read_bytes()[:1] == b"[")


def published_bytes(pub):
    """Size of the index plus every shard file on disk."""
    pub = pathlib.Path(pub)
    size = (pub / INDEX).stat().st_size
    d = pub / SHARDS
    if d.exists():
        size += sum(p.stat().st_size for p in d.iterdir())
    return size
