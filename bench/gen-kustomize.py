#!/usr/bin/env python3
"""Generate the kustomize tree that matches a project from bench/gen-project.py.

Usage: python3 bench/gen-kustomize.py OUT_DIR [--services N] [--envs M] [--seed S] [--env ENV]

This is the peer for `tier render`: the same services (built by gen-project.py's
build_model with the same arguments) written the way a kustomize user would keep them.

  OUT_DIR/base/kustomization.yaml        every service, one ConfigMap generator per service
  OUT_DIR/base/services/<svc>.yaml       its Deployment and Service
  OUT_DIR/base/config/<svc>/base.json
  OUT_DIR/overlays/<env>/                one overlay: namespace, an env label, ENV_NAME on
                                         every Deployment, replicas (the `replicas:` field)
                                         and memory (a strategic-merge patch) for the services
                                         the environment overrides, and its <env>.json configs

Render with `kubectl kustomize OUT_DIR/overlays/<env>`.
"""

import argparse
import importlib.util
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def load_gen_project():
    spec = importlib.util.spec_from_file_location("gen_project", os.path.join(HERE, "gen-project.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gp = load_gen_project()


# ---------------------------------------------------------------------------------------
# A small YAML writer: block mappings and sequences, scalars as JSON (valid YAML).


def yaml_scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return json.dumps(v)
    if isinstance(v, str):
        return json.dumps(v)
    if v is None:
        return "null"
    raise TypeError(f"cannot write {type(v).__name__} as a YAML scalar")


def yaml_lines(v, indent=0):
    pad = " " * indent
    out = []
    if isinstance(v, dict):
        if not v:
            return [pad + "{}"]
        for k, x in v.items():
            if isinstance(x, (dict, list)) and x:
                out.append(f"{pad}{k}:")
                out.extend(yaml_lines(x, indent + (2 if isinstance(x, dict) else 0)))
            else:
                out.append(f"{pad}{k}: {yaml_scalar(x) if not isinstance(x, (dict, list)) else ('{}' if isinstance(x, dict) else '[]')}")
    elif isinstance(v, list):
        if not v:
            return [pad + "[]"]
        for x in v:
            if isinstance(x, (dict, list)) and x:
                sub = yaml_lines(x, indent + 2)
                out.append(f"{pad}- {sub[0].lstrip()}")
                out.extend(sub[1:])
            else:
                out.append(f"{pad}- {yaml_scalar(x)}")
    else:
        out.append(pad + yaml_scalar(v))
    return out


def yaml_doc(v):
    return "\n".join(yaml_lines(v)) + "\n"


def yaml_docs(values):
    return "---\n".join(yaml_doc(v) for v in values)


# ---------------------------------------------------------------------------------------
# Kubernetes objects for one service, as tier's kubernetes runtime would describe them.


def env_var_name(service):
    return service.upper().replace("-", "_")


def deployment(svc, ports):
    name = svc["name"]
    f = svc["fields"]
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/version": f["version"]}
    env = [
        {"name": "TIER_SERVICE", "value": name},
        {"name": "PORT", "value": str(f["port"])},
        {"name": "TIER_CONFIG", "value": "/etc/tier/config"},
    ]
    for dep in f.get("depends_on", []):
        env.append({"name": f"{env_var_name(dep)}_URL", "value": f"http://{dep}:{ports[dep]}"})
    for k, v in f.get("env", {}).items():
        env.append({"name": k, "value": v})
    for k, src in f.get("secrets", {}).items():
        env.append({"name": k, "valueFrom": {"secretKeyRef": {"name": f"{name}-secrets", "key": k}}})
    health = f["health"]
    probe = {"httpGet": {"path": health["http"], "port": f["port"]}} if "http" in health else {"tcpSocket": {"port": health["tcp"]}}
    if "interval" in health:
        probe["periodSeconds"] = int(health["interval"].rstrip("s"))
        probe["timeoutSeconds"] = int(health["timeout"].rstrip("s"))
        probe["failureThreshold"] = health["failure_threshold"]
    resources = {"requests": {"memory": f["memory"]}, "limits": {"memory": f["memory"]}}
    if "cpu" in f:
        resources["requests"]["cpu"] = f["cpu"]
    container = {
        "name": name,
        "image": f["image"],
        "ports": [{"name": f.get("protocol", "http"), "containerPort": f["port"]}],
        "env": env,
        "resources": resources,
        "readinessProbe": probe,
        "volumeMounts": [{"name": "config", "mountPath": "/etc/tier/config", "readOnly": True}],
    }
    spec = {
        "replicas": f["replicas"],
        "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
    }
    if "rollout" in f:
        r = f["rollout"]
        spec["strategy"] = {"type": "RollingUpdate",
                            "rollingUpdate": {"maxSurge": r["max_surge"], "maxUnavailable": r["max_unavailable"]}}
        spec["progressDeadlineSeconds"] = int(r["deadline"].rstrip("s"))
    spec["template"] = {
        "metadata": {"labels": labels},
        "spec": {"containers": [container],
                 "volumes": [{"name": "config", "configMap": {"name": f"{name}-config"}}]},
    }
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": labels}, "spec": spec}


def service(svc):
    name = svc["name"]
    f = svc["fields"]
    port = {"name": f.get("protocol", "http"), "port": f["port"], "targetPort": f["port"]}
    spec = {"selector": {"app.kubernetes.io/name": name}, "ports": [port]}
    if "expose" in f:
        spec["type"] = "LoadBalancer"
        port["port"] = f["expose"]
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/name": name}}, "spec": spec}


# ---------------------------------------------------------------------------------------


def pick_env(model, wanted):
    by_name = {e["name"]: e for e in model["envs"]}
    if wanted is not None:
        if wanted not in by_name:
            sys.exit(f"error: no environment {wanted!r}; have {', '.join(by_name)}")
        if by_name[wanted].get("abstract"):
            sys.exit(f"error: {wanted} is abstract")
        return by_name[wanted]
    if "prod-ie" in by_name:
        return by_name["prod-ie"]
    return next(e for e in model["envs"] if not e.get("abstract"))


def write_base(model, out):
    base = os.path.join(out, "base")
    ports = {s["name"]: s["fields"]["port"] for s in model["services"]}
    resources, generators = [], []
    for svc in model["services"]:
        name = svc["name"]
        gp.write_file(os.path.join(base, "services", f"{name}.yaml"), yaml_docs([deployment(svc, ports), service(svc)]))
        gp.write_json(os.path.join(base, "config", name, "base.json"), model["configs"][name]["base"])
        resources.append(f"services/{name}.yaml")
        generators.append({"name": f"{name}-config", "files": [f"base.json=config/{name}/base.json"]})
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "labels": [{"pairs": {"app.kubernetes.io/part-of": model["name"]}}],
        "resources": resources,
        "configMapGenerator": generators,
    }
    gp.write_file(os.path.join(base, "kustomization.yaml"), "# Generated by bench/gen-kustomize.py.\n" + yaml_doc(kustomization))


def write_overlay(model, env, out):
    env_name = env["name"]
    overlay = os.path.join(out, "overlays", env_name)
    chain = []  # env names whose <env>.json configs apply, lowest first
    cur = env_name
    by_name = {e["name"]: e for e in model["envs"]}
    while cur is not None:
        chain.insert(0, cur)
        cur = by_name[cur].get("extends")
    replicas, memory_patches, generators = [], [], []
    for svc in model["services"]:
        name = svc["name"]
        resolved = gp.resolve_service(model, env_name, svc)
        if resolved["replicas"] != svc["fields"]["replicas"]:
            replicas.append({"name": name, "count": resolved["replicas"]})
        if resolved["memory"] != svc["fields"]["memory"]:
            memory_patches.append({
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
                "spec": {"template": {"spec": {"containers": [
                    {"name": name, "resources": {"requests": {"memory": resolved["memory"]},
                                                 "limits": {"memory": resolved["memory"]}}}]}}},
            })
        files = []
        for layer_env in chain:
            config = model["configs"][name].get(layer_env)
            if config is not None:
                gp.write_json(os.path.join(overlay, "config", name, f"{layer_env}.json"), config)
                files.append(f"{layer_env}.json=config/{name}/{layer_env}.json")
        if files:
            generators.append({"name": f"{name}-config", "behavior": "merge", "files": files})
    namespace = env.get("kube", {}).get("namespace", f"{model['name']}-{env_name}")
    env_patch = [{"op": "add", "path": "/spec/template/spec/containers/0/env/-",
                  "value": {"name": "ENV_NAME", "value": env_name}}]
    gp.write_file(os.path.join(overlay, "env-name.yaml"), yaml_doc(env_patch))
    patches = [{"path": "env-name.yaml", "target": {"kind": "Deployment"}}]
    if memory_patches:
        gp.write_file(os.path.join(overlay, "memory.yaml"), yaml_docs(memory_patches))
        patches.append({"path": "memory.yaml"})
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": namespace,
        "resources": ["../../base"],
        "labels": [{"pairs": {"tier.example.test/env": env_name}}],
        "patches": patches,
    }
    if replicas:
        kustomization["replicas"] = replicas
    if generators:
        kustomization["configMapGenerator"] = generators
    gp.write_file(os.path.join(overlay, "kustomization.yaml"), "# Generated by bench/gen-kustomize.py.\n" + yaml_doc(kustomization))
    return len(replicas), len(memory_patches), len(generators)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Generate a kustomize tree matching gen-project.py's project.")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="where to write the tree (new or empty)")
    parser.add_argument("--services", type=int, default=gp.DEFAULT_SERVICES, metavar="N")
    parser.add_argument("--envs", type=int, default=gp.DEFAULT_ENVS, metavar="M")
    parser.add_argument("--seed", type=int, default=gp.DEFAULT_SEED)
    parser.add_argument("--env", default=None, help="the environment of the overlay (default prod-ie)")
    args = parser.parse_args(argv)
    try:
        model = gp.build_model(args.services, args.envs, args.seed)
    except ValueError as e:
        parser.error(str(e))
    env = pick_env(model, args.env)
    gp.ensure_empty_dir(args.out_dir)
    write_base(model, args.out_dir)
    n_replicas, n_memory, n_configs = write_overlay(model, env, args.out_dir)
    print(f"wrote {args.out_dir}: base with {len(model['services'])} Deployments+Services, "
          f"overlays/{env['name']} patching replicas of {n_replicas}, memory of {n_memory}, "
          f"configs of {n_configs}", file=sys.stderr)


if __name__ == "__main__":
    main()
