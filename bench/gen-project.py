#!/usr/bin/env python3
"""Generate a large, valid tier project for benchmarks.

Usage: python3 bench/gen-project.py OUT_DIR [--services N] [--envs M] [--seed S]

The output is deterministic for a given (N, M, S). With the defaults (1000 services,
10 environments) it has:

- environments dev and stage (local), an abstract prod (kubernetes) extended by prod-ie,
  prod-us, prod-eu, prod-ap, and team environments that alternate local and kubernetes;
  every kubernetes environment has its own kube context and namespace;
- services whose depends_on edges form a DAG (each depends on 0-3 lower-numbered services);
- a config directory per service (base.json plus <env>.json for a few environments);
- a handful of exposed services, each with a host port that is distinct within every
  environment and across environments (so local environments can run side by side);
- envs/<env>.toml for every environment, changing replicas and memory of some services.

gen-kustomize.py imports build_model() and resolve_service() from this file so that the
kustomize tree it writes describes the same services.
"""

import argparse
import json
import os
import random
import re
import sys

DEFAULT_SERVICES = 1000
DEFAULT_ENVS = 10
DEFAULT_SEED = 20261126

# The number of exposed services (fewer when there are fewer services).
EXPOSED_SERVICES = 8
# Host ports for exposed services start here: one block of EXPOSED_SERVICES ports for
# tier.toml and one for each environment.
EXPOSE_BASE_PORT = 20000

SERVICE_PREFIXES = [
    "api", "auth", "billing", "cart", "catalog", "checkout", "search", "notify",
    "orders", "payments", "profile", "inventory", "ledger", "media", "report",
    "shipping", "pricing", "reviews", "gateway", "worker",
]
REGIONS = [
    ("ie", "eu-west-1"), ("us", "us-east-2"), ("eu", "eu-central-1"),
    ("ap", "ap-southeast-1"), ("br", "sa-east-1"), ("ca", "ca-central-1"),
    ("jp", "ap-northeast-1"), ("au", "ap-southeast-2"), ("in", "ap-south-1"),
    ("za", "af-south-1"),
]
TEAMS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
MEMORY = ["64Mi", "128Mi", "256Mi", "512Mi"]
BIG_MEMORY = ["256Mi", "512Mi", "1Gi"]
CPU = ["100m", "250m", "500m", "1"]

DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


# ---------------------------------------------------------------------------------------
# The model: plain dicts and lists, in the order they are written.


def environment_plan(count):
    """Return [(name, kind)] for `count` environments; kind is dev/stage/prod/region/team."""
    if count < 1:
        raise ValueError("--envs must be at least 1")
    plan = [("dev", "dev"), ("stage", "stage"), ("prod", "prod")][:count]
    rest = count - len(plan)
    teams = rest // 2
    regions = rest - teams
    for i in range(regions):
        code = REGIONS[i][0] if i < len(REGIONS) else f"r{i + 1}"
        plan.append((f"prod-{code}", "region"))
    for i in range(teams):
        team = TEAMS[i] if i < len(TEAMS) else f"t{i + 1}"
        plan.append((f"team-{team}", "team"))
    return plan


def build_environments(count):
    envs = []
    previous_region = None
    team_index = 0
    for index, (name, kind) in enumerate(environment_plan(count)):
        env = {"name": name}
        if kind == "dev":
            env["runtime"] = "local"
        elif kind == "stage":
            env["runtime"] = "local"
            env["promote_from"] = "dev"
        elif kind == "prod":
            env["runtime"] = "kubernetes"
            env["abstract"] = True
            env["kube"] = {"context": "prod-admin", "namespace": "bench-prod"}
        elif kind == "region":
            code = name[len("prod-"):]
            region = dict(REGIONS).get(code, f"region-{code}")
            env["runtime"] = "kubernetes"
            env["extends"] = "prod"
            # Regions are promoted one after another: stage -> prod-ie -> prod-us -> ...
            env["promote_from"] = previous_region or "stage"
            env["protected"] = True
            env["region"] = region
            env["kube"] = {"context": f"{name}-admin", "namespace": f"bench-{name}"}
            previous_region = name
        else:
            runtime = "local" if team_index % 2 == 0 else "kubernetes"
            env["runtime"] = runtime
            if runtime == "kubernetes":
                env["kube"] = {"context": "shared-dev", "namespace": f"bench-{name}"}
            team_index += 1
        env["index"] = index
        envs.append(env)
    return envs


def service_names(count):
    width = max(4, len(str(count - 1)))
    return [f"{SERVICE_PREFIXES[i % len(SERVICE_PREFIXES)]}-{i:0{width}d}" for i in range(count)]


def build_services(rng, names):
    services = []
    for i, name in enumerate(names):
        # 0-3 dependencies, all on lower-numbered services, mostly recent ones so that the
        # graph is deep rather than a wide star around service 0.
        wanted = min(i, rng.choice([0, 1, 1, 2, 2, 3]))
        window = range(max(0, i - 60), i)
        deps = sorted(rng.sample(window, min(wanted, len(window))))
        tcp = rng.random() < 0.1
        port = rng.choice([8080, 8080, 8080, 9000, 3000]) if not tcp else rng.choice([5432, 6379, 7000])
        version = f"{rng.randint(0, 3)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}"
        svc = {
            "command": [f"bin/{name}", "--listen", "0.0.0.0"],
            "image": f"registry.example.test/bench/{name}:{version}",
            "version": version,
            "port": port,
            "replicas": rng.randint(1, 3),
            "memory": rng.choice(MEMORY),
        }
        if rng.random() < 0.5:
            svc["cpu"] = rng.choice(CPU)
        if tcp:
            svc["protocol"] = "tcp"
            svc["health"] = {"tcp": port}
        else:
            svc["protocol"] = "http"
            health = {"http": "/healthz"}
            if rng.random() < 0.3:
                health.update({"interval": "5s", "timeout": "1s", "failure_threshold": 3})
            svc["health"] = health
        if rng.random() < 0.3:
            svc["restart"] = rng.choice(["always", "on-failure"])
        if rng.random() < 0.2:
            svc["rollout"] = {"max_surge": 1, "max_unavailable": 0, "deadline": "60s"}
        if rng.random() < 0.1:
            svc["test"] = f"bin/{name} --self-test"
        if deps:
            svc["depends_on"] = [names[d] for d in deps]
        svc["config"] = f"config/{name}"
        if rng.random() < 0.4:
            svc["env"] = {"LOG_LEVEL": rng.choice(["info", "warn", "debug"]), "WORKERS": str(rng.randint(1, 8))}
        if rng.random() < 0.15:
            var = name.upper().replace("-", "_")
            svc["secrets"] = {"DB_PASSWORD": {"env": f"{var}_DB_PASSWORD"}}
        services.append({"name": name, "fields": svc})
    return services


def build_flags(rng, count):
    flags = []
    for i in range(count):
        kind = i % 3
        if kind == 0:
            default = rng.random() < 0.5
        elif kind == 1:
            default = rng.choice(["off", "canary", "beta"])
        else:
            default = rng.randint(1, 100)
        flags.append({"name": f"flag-{i:02d}", "default": default,
                      "description": f"benchmark flag {i} ({type(default).__name__})"})
    return flags


def build_overrides(rng, envs, services, flags, exposed):
    """envs/<env>.toml content for every environment: {env: {"project", "services", "flags"}}."""
    names = [s["name"] for s in services]
    overrides = {}
    for env in envs:
        kind = env["name"].split("-")[0]
        project = {}
        changed = {}

        def touch(name):
            return changed.setdefault(name, {})

        if env["name"] == "dev":
            for name in rng.sample(names, len(names) // 20):
                touch(name).update({"replicas": 1, "memory": "64Mi"})
        elif env["name"] == "stage":
            for name in rng.sample(names, len(names) // 20):
                touch(name)["replicas"] = 2
        elif env["name"] == "prod":
            project["on_failure"] = "halt"
            for name in rng.sample(names, len(names) // 10):
                touch(name).update({"replicas": rng.randint(3, 6), "memory": rng.choice(BIG_MEMORY)})
        elif kind == "prod":
            for name in rng.sample(names, len(names) // 50):
                touch(name)["replicas"] = rng.randint(4, 8)
        else:
            project["ordering"] = False
            for name in rng.sample(names, len(names) // 50):
                touch(name)["memory"] = rng.choice(MEMORY)
        # Every environment gets its own block of host ports for the exposed services.
        for k, name in enumerate(exposed):
            touch(name)["expose"] = expose_port(env["index"] + 1, k)
        env_flags = {}
        for flag in rng.sample(flags, min(len(flags), 3)):
            default = flag["default"]
            if isinstance(default, bool):
                env_flags[flag["name"]] = not default
            elif isinstance(default, str):
                env_flags[flag["name"]] = "on"
            else:
                env_flags[flag["name"]] = default + 1
        # Keep the service order of tier.toml.
        ordered = {name: changed[name] for name in names if name in changed}
        overrides[env["name"]] = {"project": project, "services": ordered, "flags": env_flags}
    return overrides


def build_configs(rng, services, envs):
    env_names = [e["name"] for e in envs]
    configs = {}
    for svc in services:
        name = svc["name"]
        fields = svc["fields"]
        base = {
            "service": name,
            "log": {"level": "info", "format": "json"},
            "limits": {"max_connections": rng.choice([64, 128, 256]), "timeout_ms": rng.choice([500, 1000, 2000])},
            "upstreams": fields.get("depends_on", []),
            "features": {"cache": rng.random() < 0.5, "batch_size": rng.randint(10, 100)},
        }
        files = {"base": base}
        for env_name in rng.sample(env_names, min(len(env_names), rng.randint(1, 3))):
            if env_name == "dev" or env_name.startswith("team-"):
                files[env_name] = {"log": {"level": "debug"}, "features": {"cache": False}}
            else:
                files[env_name] = {"limits": {"max_connections": base["limits"]["max_connections"] * 4},
                                   "env_label": env_name}
        configs[name] = files
    return configs


def expose_port(block, k):
    return EXPOSE_BASE_PORT + block * EXPOSED_SERVICES + k


def build_model(n_services=DEFAULT_SERVICES, n_envs=DEFAULT_ENVS, seed=DEFAULT_SEED):
    if n_services < 1:
        raise ValueError("--services must be at least 1")
    if expose_port(n_envs + 1, 0) > 65535:
        raise ValueError(f"--envs {n_envs} leaves no room for distinct host ports")
    rng = random.Random(seed)
    envs = build_environments(n_envs)
    names = service_names(n_services)
    services = build_services(rng, names)
    flags = build_flags(rng, 12)
    exposed = sorted(rng.sample(names, min(EXPOSED_SERVICES, len(names))), key=names.index)
    for k, name in enumerate(exposed):
        services[names.index(name)]["fields"]["expose"] = expose_port(0, k)
    overrides = build_overrides(rng, envs, services, flags, exposed)
    configs = build_configs(rng, services, envs)
    return {"name": "bench", "envs": envs, "services": services, "flags": flags,
            "overrides": overrides, "configs": configs, "exposed": exposed}


def env_layers(model, env_name):
    """Override layers for an environment, lowest first (a parent's file under its own)."""
    by_name = {e["name"]: e for e in model["envs"]}
    chain = []
    name = env_name
    while name is not None:
        chain.append(name)
        name = by_name[name].get("extends")
    return [model["overrides"][n] for n in reversed(chain)]


def resolve_service(model, env_name, svc):
    """The fields of one service in one environment (overrides replace whole values)."""
    fields = dict(svc["fields"])
    for layer in env_layers(model, env_name):
        fields.update(layer["services"].get(svc["name"], {}))
    return fields


# ---------------------------------------------------------------------------------------
# TOML and JSON output.

BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_string(s):
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def toml_key(k):
    return k if BARE_KEY.match(k) else toml_string(k)


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return toml_string(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        if not v:
            return "{}"
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def toml_table(lines, header, fields):
    lines.append(f"[{header}]")
    for k, v in fields.items():
        lines.append(f"{toml_key(k)} = {toml_value(v)}")
    lines.append("")


def render_tier_toml(model):
    lines = [
        "# Generated by bench/gen-project.py: a benchmark project, not an example to copy.",
        "",
    ]
    toml_table(lines, "project", {"name": model["name"]})
    for env in model["envs"]:
        fields = {k: v for k, v in env.items() if k not in ("name", "index")}
        toml_table(lines, f"environments.{env['name']}", fields)
    for flag in model["flags"]:
        toml_table(lines, f"flags.{flag['name']}", {"default": flag["default"], "description": flag["description"]})
    for svc in model["services"]:
        toml_table(lines, f"services.{svc['name']}", svc["fields"])
    return "\n".join(lines)


def render_override(env_name, override):
    lines = [f"# Generated by bench/gen-project.py: overrides for {env_name}.", ""]
    if override["project"]:
        toml_table(lines, "project", override["project"])
    for name, fields in override["flags"].items():
        toml_table(lines, f"flags.{name}", {"default": fields})
    for name, fields in override["services"].items():
        toml_table(lines, f"services.{name}", fields)
    return "\n".join(lines)


def write_file(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def write_json(path, value):
    write_file(path, json.dumps(value, indent=2) + "\n")


def check_names(model):
    names = [e["name"] for e in model["envs"]] + [s["name"] for s in model["services"]] + [f["name"] for f in model["flags"]]
    bad = [n for n in names if not DNS_1035.match(n)]
    if bad:
        raise ValueError(f"not DNS-1035 labels: {bad[:5]}")


def ensure_empty_dir(path):
    if os.path.exists(path):
        if not os.path.isdir(path):
            sys.exit(f"error: {path} exists and is not a directory")
        if os.listdir(path):
            sys.exit(f"error: {path} is not empty; pick a new or empty directory")
    os.makedirs(path, exist_ok=True)


def write_project(model, out):
    write_file(os.path.join(out, "tier.toml"), render_tier_toml(model))
    for env_name, override in model["overrides"].items():
        write_file(os.path.join(out, "envs", f"{env_name}.toml"), render_override(env_name, override))
    for name, files in model["configs"].items():
        for which, value in files.items():
            write_json(os.path.join(out, "config", name, f"{which}.json"), value)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Generate a large tier project for benchmarks.")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="where to write the project (new or empty)")
    parser.add_argument("--services", type=int, default=DEFAULT_SERVICES, metavar="N")
    parser.add_argument("--envs", type=int, default=DEFAULT_ENVS, metavar="M")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    try:
        model = build_model(args.services, args.envs, args.seed)
        check_names(model)
    except ValueError as e:
        parser.error(str(e))
    ensure_empty_dir(args.out_dir)
    write_project(model, args.out_dir)
    edges = sum(len(s["fields"].get("depends_on", [])) for s in model["services"])
    print(f"wrote {args.out_dir}: {len(model['services'])} services, {len(model['envs'])} environments, "
          f"{edges} depends_on edges, {len(model['exposed'])} exposed services", file=sys.stderr)


if __name__ == "__main__":
    main()
