#!/usr/bin/env python3
"""Check that two renders hold the same Kubernetes objects.

Usage: python3 bench/kube-compare.py TIER.yaml KUSTOMIZE.yaml

The two differ only where each tool has its own way to roll pods on a config change:
kustomize appends a content hash to a generated ConfigMap's name (and rewrites references to
it), tier annotates the pod template with the config's hash. Both are normalised away; the
config.json texts are compared as JSON. Exits 1 and names the first difference otherwise.
"""

import json
import re
import sys

import yaml


def load(path):
    objects = {}
    with open(path) as f:
        for document in yaml.safe_load_all(f):
            if not document:
                continue
            text = re.sub(r'"([a-z0-9-]+-config)-[a-z0-9]{10}"', r'"\1"', json.dumps(document, sort_keys=True))
            document = json.loads(text)
            template = document.get("spec", {}).get("template", {})
            template.get("metadata", {}).pop("annotations", None)
            if document["kind"] == "ConfigMap":
                document["data"] = {key: json.loads(value) for key, value in document["data"].items()}
            objects[(document["kind"], document["metadata"]["name"])] = document
    return objects


def main():
    tier, kustomize = load(sys.argv[1]), load(sys.argv[2])
    if sorted(tier) != sorted(kustomize):
        print(f"different objects: {sorted(set(tier) ^ set(kustomize))[:5]}", file=sys.stderr)
        sys.exit(1)
    for key in sorted(tier):
        if tier[key] != kustomize[key]:
            print(f"{key[0]} {key[1]} differs", file=sys.stderr)
            sys.exit(1)
    print(f"same {len(tier)} objects", file=sys.stderr)


if __name__ == "__main__":
    main()
