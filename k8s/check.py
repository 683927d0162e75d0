#!/usr/bin/env python3
"""Checks a rendered overlay for what the schemas cannot see: that its parts agree.

Usage: check.py RENDERED.yaml

- every shard 0..N-1 has a StatefulSet, both headless Services and a PodDisruptionBudget,
  and the roots are told N shards;
- the indexer's topology (ConfigMap fanout-topology) lists exactly each StatefulSet's replicas
  by their stable names, so the indexer writes to every replica and only to real ones;
- no PodDisruptionBudget lets a drain take a shard's last replica unless it has only one;
- every container has resource requests and limits, probes where it serves, and runs as
  non-root.
"""

import re
import sys
import tomllib

import yaml


def fail(message):
    print(f"check.py: {message}", file=sys.stderr)
    sys.exit(1)


def main(path):
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d

    sets = by_kind.get("StatefulSet", {})
    shards = sorted(int(re.fullmatch(r"fanout-leaf-(\d+)", n).group(1)) for n in sets)
    if shards != list(range(len(shards))) or not shards:
        fail(f"leaf StatefulSets must be fanout-leaf-0..N-1, found {sorted(sets)}")
    services = by_kind.get("Service", {})
    pdbs = by_kind.get("PodDisruptionBudget", {})
    root_config = next(
        (c for n, c in by_kind.get("ConfigMap", {}).items() if n.startswith("fanout-root")), None
    )
    if root_config is None:
        fail("no fanout-root ConfigMap")
    if int(root_config["data"]["FANOUT_ROOT_NUM_SHARDS"]) != len(shards):
        fail(f"roots are told {root_config['data']['FANOUT_ROOT_NUM_SHARDS']} shards, there are {len(shards)}")

    topology = tomllib.loads(by_kind["ConfigMap"]["fanout-topology"]["data"]["topology.toml"])
    listed = {s["id"]: s["replicas"] for s in topology["shard"]}
    for shard in shards:
        name = f"fanout-leaf-{shard}"
        sts = sets[name]
        replicas = sts["spec"]["replicas"]
        if sts["spec"]["serviceName"] != name or name not in services:
            fail(f"{name}: needs its governing headless Service {name}")
        if not services[name]["spec"].get("publishNotReadyAddresses"):
            fail(f"{name}: the governing Service must publish not-ready replicas for the indexer")
        if f"fanout-leaf-ready-{shard}" not in services:
            fail(f"{name}: no fanout-leaf-ready-{shard} Service for the roots")
        env = {e["name"]: e.get("value") for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}
        if env.get("FANOUT_LEAF_SHARD") != str(shard):
            fail(f"{name}: FANOUT_LEAF_SHARD is {env.get('FANOUT_LEAF_SHARD')}")
        want = [f"{name}-{i}.{name}:7000" for i in range(replicas)]
        if listed.get(shard) != want:
            fail(f"topology.toml shard {shard} lists {listed.get(shard)}, the StatefulSet has {want}")
        pdb = pdbs.get(name)
        if pdb is None:
            fail(f"{name}: no PodDisruptionBudget")
        if replicas > 1 and not 1 <= pdb["spec"].get("minAvailable", 0) < replicas:
            fail(f"{name}: with {replicas} replicas minAvailable must be 1..{replicas - 1}")
    if set(listed) != set(shards):
        fail(f"topology.toml names shards {sorted(listed)}, the StatefulSets {shards}")

    for kind in ("StatefulSet", "Deployment"):
        for name, d in by_kind.get(kind, {}).items():
            pod = d["spec"]["template"]["spec"]
            if not pod.get("securityContext", {}).get("runAsNonRoot"):
                fail(f"{name}: must run as non-root")
            for c in pod["containers"]:
                res = c.get("resources", {})
                if not res.get("requests") or not res.get("limits"):
                    fail(f"{name}/{c['name']}: needs resource requests and limits")
                if "readinessProbe" not in c or "livenessProbe" not in c:
                    fail(f"{name}/{c['name']}: needs readiness and liveness probes")
    print(f"check.py: {path}: {len(shards)} shards, parts agree")


if __name__ == "__main__":
    for p in sys.argv[1:]:
        main(p)
