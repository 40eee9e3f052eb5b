#!/usr/bin/env python3
"""Generate one project twice: as a tier project, and as the kustomize tree a kustomize user
would keep for the same Kubernetes objects. The peer for `tier render <env> --format k8s`.

Usage: python3 bench/gen-kube.py OUT_DIR --services N [--full]

With --full every service also has CPU and memory limits, the restricted security profile
with its own user, named ports, a startup and a liveness probe over gRPC, a scratch volume
and a termination grace; prod adds a strategic merge patch on every Deployment (tier:
`[kube] patches` in envs/prod.toml; kustomize: a patch with a Deployment target).

  OUT_DIR/tier/tier.toml                  N services; dev, stage and prod on kubernetes
  OUT_DIR/tier/envs/{stage,prod}.toml     replicas per service (dev keeps the default of 1)
  OUT_DIR/tier/config/<svc>/{base,dev,stage,prod}.json

  OUT_DIR/kustomize/base/                 per service a Deployment and a Service, and a
                                          ConfigMap generator with the base config
  OUT_DIR/kustomize/overlays/<env>/       namespace, the environment's label, ENV_NAME (a
                                          JSON patch on every Deployment), replicas (the
                                          `replicas:` field) and each service's merged config
                                          (a ConfigMap generator that replaces the base one)

Both render, per environment, a Namespace and per service a ConfigMap, a Deployment (the
same container, variables, probes, resources, volume and rollout settings) and a Service.
kustomize's generators add a content hash to each ConfigMap's name (and rewrite the
Deployments' references to it), which is its way to roll pods on a config change; tier puts
the config's hash on the pod template instead.

Render with `tier render prod --format k8s` in OUT_DIR/tier and
`kubectl kustomize OUT_DIR/kustomize/overlays/prod`.
"""

import argparse
import json
import os

ENVS = ["dev", "stage", "prod"]
REPLICAS = {"dev": 1, "stage": 2, "prod": 3}
PROJECT = "shop"


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def service_name(i):
    return f"svc-{i:04d}"


def base_config(i):
    return {"name": service_name(i), "limits": {"rps": 100, "burst": 10}, "feature": False}


def env_config(env, i):
    return {
        "dev": {"debug": True},
        "stage": {"limits": {"rps": 200}},
        "prod": {"limits": {"rps": 1000 + i}, "feature": True},
    }[env]


def merged(base, over):
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


FULL = False

FULL_SERVICE = (
    'cpu = "100m"\ncpu_limit = "500m"\nmemory_limit = "256Mi"\n'
    "security = { run_as_user = 10001, run_as_group = 10001, fs_group = 10001, read_only_root_filesystem = true }\n"
    "ports = { grpc = 9090 }\n"
    "startup = { grpc = 9090, failure_threshold = 30 }\n"
    'liveness = { grpc = 9090, interval = "10s" }\n'
    'volumes = { scratch = { mount = "/tmp", empty_dir = {} } }\n'
    'termination_grace = "20s"\n'
)

# A service's patch in tier changes its Deployment unless it names another object; kustomize
# takes the target from the kustomization and wants a name in the file all the same.
PATCH_BODY = "spec:\n  template:\n    spec:\n      nodeSelector:\n        pool: prod\n"
PATCH = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ignored\n" + PATCH_BODY


def gen_tier(out, n):
    lines = [f'[project]\nname = "{PROJECT}"\n' + ('security = "restricted"\n' if FULL else "")]
    for env in ENVS:
        lines.append(
            f'[environments.{env}]\nruntime = "kubernetes"\n'
            f'kube = {{ context = "{env}-admin", namespace = "{PROJECT}-{env}" }}\n'
        )
    for i in range(n):
        name = service_name(i)
        lines.append(
            f"[services.{name}]\n"
            f'image = "registry.example.com/{PROJECT}/{name}:1.0.{i}"\n'
            f"port = 8080\n"
            f'memory = "128Mi"\n'
            f'health = {{ http = "/healthz" }}\n'
            f'config = "config/{name}"\n'
            + (FULL_SERVICE if FULL else "")
        )
        write(os.path.join(out, "config", name, "base.json"), json.dumps(base_config(i), indent=2) + "\n")
        for env in ENVS:
            write(os.path.join(out, "config", name, f"{env}.json"), json.dumps(env_config(env, i), indent=2) + "\n")
    write(os.path.join(out, "tier.toml"), "\n".join(lines))
    for env in ["stage", "prod"]:
        text = "".join(
            f"[services.{service_name(i)}]\nreplicas = {REPLICAS[env]}\n"
            + ('patches = ["patches/prod.yaml"]\n' if FULL and env == "prod" else "")
            + "\n"
            for i in range(n)
        )
        write(os.path.join(out, "envs", f"{env}.toml"), text)
    if FULL:
        write(os.path.join(out, "patches", "prod.yaml"), PATCH_BODY)


def labels(name, indent):
    pad = " " * indent
    return (
        f"{pad}app.kubernetes.io/name: {name}\n"
        f"{pad}app.kubernetes.io/part-of: {PROJECT}\n"
        f"{pad}app.kubernetes.io/managed-by: tier\n"
    )


def probe(indent):
    pad = " " * indent
    return (
        f"{pad}httpGet:\n{pad}  path: /healthz\n{pad}  port: 8080\n"
        f"{pad}periodSeconds: 2\n{pad}timeoutSeconds: 1\n{pad}failureThreshold: 3\n"
    )


def grpc_probe(indent, period, failures):
    pad = " " * indent
    return (
        f"{pad}grpc:\n{pad}  port: 9090\n"
        f"{pad}periodSeconds: {period}\n{pad}timeoutSeconds: 1\n{pad}failureThreshold: {failures}\n"
    )


def full_container():
    """The container fields --full adds, in the order tier writes them (sorted on compare)."""
    return (
        "        securityContext:\n          allowPrivilegeEscalation: false\n"
        "          capabilities:\n            drop:\n            - ALL\n"
        "          readOnlyRootFilesystem: true\n          runAsNonRoot: true\n"
        f"        startupProbe:\n{grpc_probe(10, 2, 30)}"
    )


def full_pod():
    return (
        "      automountServiceAccountToken: false\n"
        "      terminationGracePeriodSeconds: 20\n"
        "      securityContext:\n        fsGroup: 10001\n        runAsGroup: 10001\n"
        "        runAsNonRoot: true\n        runAsUser: 10001\n"
        "        seccompProfile:\n          type: RuntimeDefault\n"
    )


def service_yaml(name):
    return (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n"
        f"  name: {name}\n  labels:\n{labels(name, 4)}"
        "spec:\n  replicas: 1\n  progressDeadlineSeconds: 60\n"
        "  strategy:\n    type: RollingUpdate\n    rollingUpdate:\n      maxSurge: 1\n      maxUnavailable: 0\n"
        f"  selector:\n    matchLabels:\n{labels(name, 6)}"
        f"  template:\n    metadata:\n      labels:\n{labels(name, 8)}"
        "    spec:\n      containers:\n"
        f"      - name: {name}\n"
        f"        image: registry.example.com/{PROJECT}/{name}:1.0.{int(name[4:])}\n"
        "        ports:\n        - name: http\n          containerPort: 8080\n          protocol: TCP\n"
        + ("        - name: grpc\n          containerPort: 9090\n          protocol: TCP\n" if FULL else "")
        +
        "        env:\n"
        "        - name: ENV_NAME\n          value: base\n"
        f"        - name: TIER_SERVICE\n          value: {name}\n"
        "        - name: TIER_REPLICA\n          valueFrom:\n            fieldRef:\n              fieldPath: metadata.name\n"
        "        - name: PORT\n          value: \"8080\"\n"
        "        - name: TIER_CONFIG\n          value: /etc/tier/config.json\n"
        + (
            "        resources:\n          requests:\n            cpu: 100m\n            memory: 128Mi\n"
            "          limits:\n            cpu: 500m\n            memory: 256Mi\n"
            if FULL
            else "        resources:\n          requests:\n            memory: 128Mi\n          limits:\n            memory: 128Mi\n"
        )
        + f"        readinessProbe:\n{probe(10)}"
        + (f"        livenessProbe:\n{grpc_probe(10, 10, 3)}" if FULL else f"        livenessProbe:\n{probe(10)}")
        + (full_container() if FULL else "")
        + "        volumeMounts:\n        - name: config\n          mountPath: /etc/tier\n          readOnly: true\n"
        + ("        - name: scratch\n          mountPath: /tmp\n" if FULL else "")
        + (full_pod() if FULL else "")
        + "      volumes:\n      - name: config\n        configMap:\n"
        + f"          name: {name}-config\n"
        + ("      - name: scratch\n        emptyDir: {}\n" if FULL else "")
        +
        "---\n"
        "apiVersion: v1\nkind: Service\nmetadata:\n"
        f"  name: {name}\n  labels:\n{labels(name, 4)}"
        "spec:\n  type: ClusterIP\n"
        f"  selector:\n{labels(name, 4)}"
        "  ports:\n  - name: http\n    port: 8080\n    targetPort: 8080\n    protocol: TCP\n"
        + ("  - name: grpc\n    port: 9090\n    targetPort: 9090\n    protocol: TCP\n" if FULL else "")
    )


def gen_kustomize(out, n):
    base = os.path.join(out, "base")
    resources = []
    generators = []
    for i in range(n):
        name = service_name(i)
        write(os.path.join(base, "services", f"{name}.yaml"), service_yaml(name))
        write(os.path.join(base, "config", name, "config.json"), json.dumps(base_config(i), indent=2) + "\n")
        resources.append(f"- services/{name}.yaml")
        generators.append(
            f"- name: {name}-config\n  files:\n  - config.json=config/{name}/config.json\n"
            f"  options:\n    labels:\n{labels(name, 6)}".rstrip("\n")
        )
    write(
        os.path.join(base, "kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n"
        + "\n".join(resources)
        + "\nconfigMapGenerator:\n"
        + "\n".join(generators)
        + "\n",
    )
    for env in ENVS:
        overlay = os.path.join(out, "overlays", env)
        write(
            os.path.join(overlay, "namespace.yaml"),
            f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {PROJECT}-{env}\n  labels:\n"
            f"    app.kubernetes.io/part-of: {PROJECT}\n    app.kubernetes.io/managed-by: tier\n"
            + (
                "    pod-security.kubernetes.io/enforce: restricted\n"
                "    pod-security.kubernetes.io/warn: restricted\n"
                "    pod-security.kubernetes.io/audit: restricted\n"
                if FULL
                else ""
            ),
        )
        if FULL and env == "prod":
            write(os.path.join(overlay, "prod-patch.yaml"), PATCH)
        write(
            os.path.join(overlay, "env-name.yaml"),
            f"- op: replace\n  path: /spec/template/spec/containers/0/env/0/value\n  value: {env}\n",
        )
        overlay_generators = []
        replicas = []
        for i in range(n):
            name = service_name(i)
            config = merged(base_config(i), env_config(env, i))
            write(os.path.join(overlay, "config", name, "config.json"), json.dumps(config, indent=2) + "\n")
            overlay_generators.append(
                f"- name: {name}-config\n  behavior: replace\n  files:\n  - config.json=config/{name}/config.json\n"
                f"  options:\n    labels:\n{labels(name, 6)}".rstrip("\n")
            )
            replicas.append(f"- name: {name}\n  count: {REPLICAS[env]}")
        write(
            os.path.join(overlay, "kustomization.yaml"),
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
            f"namespace: {PROJECT}-{env}\n"
            "resources:\n- ../../base\n- namespace.yaml\n"
            "labels:\n- pairs:\n    tier.dev/environment: " + env + "\n  includeSelectors: true\n  includeTemplates: true\n"
            "patches:\n- path: env-name.yaml\n  target:\n    kind: Deployment\n"
            + ("- path: prod-patch.yaml\n  target:\n    kind: Deployment\n" if FULL and env == "prod" else "")
            +
            "replicas:\n" + "\n".join(replicas) + "\n"
            "configMapGenerator:\n" + "\n".join(overlay_generators) + "\n",
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--full", action="store_true", help="every workload field, and a patch in prod")
    args = parser.parse_args()
    global FULL
    FULL = args.full
    gen_tier(os.path.join(args.out, "tier"), args.services)
    gen_kustomize(os.path.join(args.out, "kustomize"), args.services)


if __name__ == "__main__":
    main()
