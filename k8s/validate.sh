#!/usr/bin/env bash
# Validates the Kubernetes manifests offline: renders every kustomization (kubectl's built-in
# kustomize), checks every source manifest and every rendering against the Kubernetes schemas
# (kubernetes-validate --strict, for the oldest and newest versions we support), and checks that
# each overlay's parts agree (check.py). Needs kubectl and the kubernetes-validate package.
set -euo pipefail
cd "$(dirname "$0")"

versions=(1.32.0 1.37.0)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

for k in overlays/dev overlays/production jobs/index jobs/loadtest; do
    kubectl kustomize "$k" > "$out/${k//\//-}.yaml"
    echo "rendered $k: $(grep -c '^kind:' "$out/${k//\//-}.yaml") resources"
done
mapfile -t sources < <(find base overlays jobs -name '*.yaml' ! -name kustomization.yaml | sort)
for v in "${versions[@]}"; do
    kubernetes-validate --strict --quiet -k "$v" "${sources[@]}" "$out"/*.yaml
    echo "valid against Kubernetes $v: ${#sources[@]} source manifests, $(ls "$out" | wc -l) renderings"
done
python3 check.py "$out/overlays-dev.yaml" "$out/overlays-production.yaml"
