#!/usr/bin/env python3
"""Seed corpora for the fuzz targets, from what the project already holds:
the runtime traces (real containerd and Podman inputs), every JSON literal
in the tests' and crates' Rust sources, and README's examples.

    fuzz/seed.py OUT_DIR     # writes OUT_DIR/<target>/<sha1>

run.sh seeds into a scratch directory, fuzzes, then minimises into
fuzz/corpus (the committed corpus)."""
import glob, hashlib, json, os, re, sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
out = sys.argv[1]
seeds = {}

def add(target, data):
    if isinstance(data, str):
        data = data.encode()
    if not data or len(data) > 16384:
        return
    seeds.setdefault(target, set()).add(data)

def dumps(v):
    return json.dumps(v, separators=(",", ":"))

def classify(v):
    if not isinstance(v, dict):
        return
    if v.get("kind") == "cniCacheV1":
        add("libcni_cache", dumps(v))
        return
    if "plugins" in v:
        add("libcni_conflist", dumps(v))
        for p in v["plugins"] if isinstance(v["plugins"], list) else []:
            if isinstance(p, dict):
                q = dict(p, name=v.get("name", "n"), cniVersion=v.get("cniVersion", "1.0.0"))
                classify(q)
        return
    if "type" in v:
        add("net_config", dumps(v))
        add("libcni_conflist", dumps(v))
        ipam = v.get("ipam")
        if isinstance(ipam, dict) and ipam.get("type") == "host-local":
            add("host_local_ranges", dumps(ipam))
        if "prevResult" in v:
            classify(v["prevResult"])
        return
    if any(k in v for k in ("ips", "ip4", "ip6", "interfaces")):
        add("result_convert", dumps(v))
        add("prev_result", dumps(v))
        add("libcni_cache", dumps(v))

def literals(text):
    # r#"..."#, br#"..."#, and plain "..." strings that look like JSON objects.
    for m in re.finditer(r'b?r(#+)"(.*?)"\1', text, re.S):
        yield m.group(2)
    for m in re.finditer(r'(?<![#\w])"((?:[^"\\]|\\.)*)"', text):
        s = m.group(1)
        if s.startswith("{") or s.startswith("["):
            try:
                yield json.loads('"' + s + '"')
            except Exception:
                pass

def json_macros(text):
    # json!({...}) bodies that are plain JSON (no Rust expressions in them).
    for m in re.finditer(r"json!\(", text):
        i, depth = m.end(), 0
        for j in range(i, len(text)):
            c = text[j]
            if c in "([{":
                depth += 1
            elif c in ")]}":
                if depth == 0:
                    yield text[i:j]
                    break
                depth -= 1

for path in glob.glob(os.path.join(root, "**/*.rs"), recursive=True):
    if "/target/" in path or "/fuzz/" in path:
        continue
    text = open(path, encoding="utf-8", errors="replace").read()
    for s in list(literals(text)) + list(json_macros(text)):
        try:
            classify(json.loads(s))
        except Exception:
            pass
        if "=" in s and ";" in s and "{" not in s and len(s) < 400:
            add("cni_args", s)

for path in glob.glob(os.path.join(root, "tests/fixtures/runtime-traces/*/*.json")):
    try:
        v = json.load(open(path))
    except Exception:
        continue
    classify(v)
    env = path[:-5] + ".env"
    if os.path.exists(env):
        for line in open(env):
            if line.startswith("CNI_ARGS="):
                args = line[len("CNI_ARGS="):].rstrip("\n")
                add("cni_args", args)
                if "type" in v:
                    add("net_config", dumps(v).encode() + b"\0" + args.encode())

readme = open(os.path.join(root, "README.md")).read()
for block in re.findall(r"```(?:json)?\n(.*?)```", readme, re.S) + re.findall(r"<<'EOF'\n(.*?)\nEOF", readme, re.S):
    try:
        classify(json.loads(block))
    except Exception:
        pass

for a in ["", "IgnoreUnknown=1", "IP=10.239.0.5", "IP=10.239.0.5,fd00:239::5;MAC=0a:58:0a:ef:00:05",
          "IgnoreUnknown=true;K8S_POD_NAME=p;K8S_POD_NAME=q", "A=1;;B", "=x", "IP=1=2", "GATEWAY=10.239.0.1"]:
    add("cni_args", a)
for ipam in [{"subnet": "10.239.0.0/16"}, {"subnet": "fd00:239::/64", "rangeStart": "fd00:239::ffff:ffff:ffff:0",
              "rangeEnd": "fd00:239::ffff:ffff:ffff:ffff"},
             {"ranges": [[{"subnet": "10.239.1.0/24", "rangeStart": "10.239.1.10", "rangeEnd": "10.239.1.20",
                           "gateway": "10.239.1.1"}, {"subnet": "10.239.2.0/30"}], [{"subnet": "fd00:239::/0"}]],
              "routes": [{"dst": "0.0.0.0/0"}]}]:
    add("host_local_ranges", dumps(ipam))
    add("host_local_ranges", dumps(ipam).encode() + b"\0IP=10.239.1.15;IgnoreUnknown=1")
# host_local_store: [op, name, len, content...] records (see the target).
stores = [b"", b"\x00\x01\x04junk", b"\x03\x08\x00", b"\x03\x0b\x00", b"\x02\x0b\x00", b"\x00\x0d\x03abc",
          b"\x05\x0e\x00\x00\x0f\x02c9", b"\x03\x00\x01x", b"\x00\x07\x0a10.239.0.5", b"\x04\x01\x00\x03\x02\x00",
          b"\x00\x0e\x20" + b"\xff" * 32, b"\x01\x10\x0510.23"]
for s in stores:
    add("host_local_store", s)

cache = {"kind": "cniCacheV1", "containerId": "c1", "config": "eyJuYW1lIjoibiJ9", "ifName": "eth0",
         "networkName": "n", "netns": "/run/netns/x", "cniArgs": [["K8S_POD_NAME", "p"]],
         "capabilityArgs": {"portMappings": [{"hostPort": 80, "containerPort": 8080}]},
         "result": {"cniVersion": "1.0.0", "ips": [{"address": "10.239.0.2/24"}], "dns": {}}}
add("libcni_cache", dumps(cache))
add("libcni_cache", dumps(dict(cache, config=None, cniArgs=None, result=None)))

for target, datas in seeds.items():
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    for data in datas:
        open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb").write(data)
    print(f"{target}: {len(datas)} seeds")
