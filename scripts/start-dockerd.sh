#!/usr/bin/env bash
# Start dockerd in the background if it is not answering. This machine's
# bounding set lacks CAP_SYS_RESOURCE, so a runc wrapper that removes that
# capability from every container spec is registered as the default runtime
# (it is what lets --privileged containers, such as kind nodes, start here).
set -euo pipefail
CACHE="${WEIR_CACHE:-/var/cache/weir}"
mkdir -p "$CACHE/docker" /etc/docker
# The wrapper is (re)written on every call, so a running dockerd picks up a
# newer version with the next container; dockerd itself need not restart.
wrapper=/usr/local/bin/weir-runc
cat >"$wrapper.tmp" <<'WRAP'
#!/usr/bin/env python3
# runc wrapper: this machine's bounding set lacks CAP_SYS_RESOURCE, so remove
# it from the specs runc is handed: the bundle's config.json on create/run,
# and the process file of `runc exec --process FILE` (docker exec into a
# --privileged container passes every capability there too).
import json, os, sys

args = sys.argv[1:]


def option(name):
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def without_sys_resource(path, caps_of):
    with open(path) as f:
        doc = json.load(f)
    caps = caps_of(doc)
    for k in list(caps):
        caps[k] = [c for c in caps[k] if c != "CAP_SYS_RESOURCE"]
    with open(path, "w") as f:
        json.dump(doc, f)


bundle, process = option("--bundle"), option("--process")
if bundle and ("create" in args or "run" in args):
    without_sys_resource(os.path.join(bundle, "config.json"),
                         lambda d: d.get("process", {}).get("capabilities", {}))
if process and "exec" in args:
    without_sys_resource(process, lambda d: d.get("capabilities", {}))
os.execv("/usr/bin/runc", ["runc"] + args)
WRAP
chmod +x "$wrapper.tmp"
mv "$wrapper.tmp" "$wrapper"
if docker info >/dev/null 2>&1; then
	exit 0
fi
cat >/etc/docker/daemon.json <<JSON
{"runtimes": {"weir-runc": {"path": "$wrapper"}}, "default-runtime": "weir-runc"}
JSON
nohup dockerd --data-root "$CACHE/docker" >"$CACHE/docker/dockerd.log" 2>&1 &
for _ in $(seq 1 60); do
	docker info >/dev/null 2>&1 && exit 0
	sleep 1
done
echo "dockerd did not start; see $CACHE/docker/dockerd.log" >&2
exit 1
