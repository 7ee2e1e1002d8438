#!/usr/bin/env bash
# Start dockerd in the background if it is not answering. This machine's
# bounding set lacks CAP_SYS_RESOURCE, so a runc wrapper that removes that
# capability from every container spec is registered as the default runtime
# (it is what lets --privileged containers, such as kind nodes, start here).
set -euo pipefail
CACHE="${WEIR_CACHE:-/var/cache/weir}"
if docker info >/dev/null 2>&1; then
	exit 0
fi
mkdir -p "$CACHE/docker" /etc/docker
wrapper=/usr/local/bin/weir-runc
cat >"$wrapper" <<'WRAP'
#!/usr/bin/env python3
# runc wrapper: drop CAP_SYS_RESOURCE from the OCI spec before runc sees it.
import json, os, sys
args = sys.argv[1:]
bundle = None
for i, a in enumerate(args):
    if a == "--bundle" and i + 1 < len(args):
        bundle = args[i + 1]
    elif a.startswith("--bundle="):
        bundle = a.split("=", 1)[1]
if bundle and ("create" in args or "run" in args):
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        spec = json.load(f)
    caps = spec.get("process", {}).get("capabilities", {})
    for k in list(caps):
        caps[k] = [c for c in caps[k] if c != "CAP_SYS_RESOURCE"]
    with open(path, "w") as f:
        json.dump(spec, f)
os.execv("/usr/bin/runc", ["runc"] + args)
WRAP
chmod +x "$wrapper"
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
