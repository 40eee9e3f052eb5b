#!/usr/bin/env python3
"""Check a tier project directory against the project-file vocabulary, independently of tier.

Usage: python3 bench/check-project.py PROJECT_DIR [PROJECT_DIR ...]

Used to test bench/gen-project.py and examples/sample-app without the tier binary: parses
tier.toml and envs/*.toml (tomllib, Python 3.11+) and every config JSON, rejects unknown keys
and bad values, and checks names (DNS-1035), depends_on (known services, no cycle),
extends/promote_from (known, no loop), kube settings of kubernetes environments, and that no
two exposed services share a host port within one resolved environment. Exit 1 on a problem.
"""

import json
import os
import re
import sys

try:
    import tomllib
except ImportError:  # Python < 3.11
    sys.exit("check-project.py needs Python 3.11+ (tomllib)")

DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
QUANTITY_MEM = re.compile(r"^[0-9]+(Ki|Mi|Gi|Ti|k|M|G|T)?$")
QUANTITY_CPU = re.compile(r"^[0-9]+(\.[0-9]+)?m?$")
DURATION = re.compile(r"^[0-9]+(ms|s|m|h)$")

PROJECT_KEYS = {"name", "ordering", "on_failure"}
ENV_KEYS = {"runtime", "promote_from", "protected", "region", "kube", "extends", "abstract"}
SERVICE_KEYS = {"command", "image", "version", "source", "test", "port", "expose", "replicas",
                "memory", "cpu", "protocol", "restart", "depends_on", "config", "health",
                "rollout", "env", "secrets"}
FLAG_KEYS = {"default", "description"}


class Checker:
    def __init__(self, root):
        self.root = root
        self.problems = []

    def bad(self, where, msg):
        self.problems.append(f"{where}: {msg}")

    def keys(self, where, table, allowed):
        if not isinstance(table, dict):
            self.bad(where, "must be a table")
            return False
        for k in table:
            if k not in allowed:
                self.bad(where, f"unknown key {k!r}")
        return True

    def port(self, where, v):
        if not (isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 65535):
            self.bad(where, f"port must be an integer 1-65535, got {v!r}")

    def load_toml(self, rel):
        try:
            with open(os.path.join(self.root, rel), "rb") as f:
                return tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as e:
            self.bad(rel, f"cannot parse: {e}")
            return {}

    def check_service(self, where, svc, services, partial):
        if not self.keys(where, svc, SERVICE_KEYS):
            return
        for k, v in svc.items():
            w = f"{where}.{k}"
            if k == "command":
                if not (isinstance(v, list) and v and all(isinstance(x, str) for x in v)):
                    self.bad(w, "must be a non-empty array of strings")
            elif k in ("image", "version", "source", "test"):
                if not isinstance(v, str):
                    self.bad(w, "must be a string")
            elif k in ("port", "expose"):
                self.port(w, v)
            elif k == "replicas":
                if not (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
                    self.bad(w, "must be an integer >= 0")
            elif k == "memory":
                if not (isinstance(v, str) and QUANTITY_MEM.match(v)):
                    self.bad(w, f"bad memory quantity {v!r}")
            elif k == "cpu":
                if not (isinstance(v, str) and QUANTITY_CPU.match(v)):
                    self.bad(w, f"bad cpu quantity {v!r}")
            elif k == "protocol":
                if v not in ("http", "tcp"):
                    self.bad(w, f"must be http or tcp, got {v!r}")
            elif k == "restart":
                if v not in ("always", "on-failure", "never"):
                    self.bad(w, f"bad restart policy {v!r}")
            elif k == "depends_on":
                if not (isinstance(v, list) and all(isinstance(x, str) for x in v)):
                    self.bad(w, "must be an array of service names")
                else:
                    for dep in v:
                        if dep not in services:
                            self.bad(w, f"depends on unknown service {dep!r}")
            elif k == "config":
                if not isinstance(v, str):
                    self.bad(w, "must be a path")
                elif not os.path.isfile(os.path.join(self.root, v, "base.json")):
                    self.bad(w, f"{v}/base.json does not exist")
            elif k == "health":
                if self.keys(w, v, {"http", "tcp", "interval", "timeout", "failure_threshold"}):
                    if ("http" in v) == ("tcp" in v):
                        self.bad(w, "needs exactly one of http or tcp")
                    if "http" in v and not (isinstance(v["http"], str) and v["http"].startswith("/")):
                        self.bad(w, "http must be a path starting with /")
                    if "tcp" in v:
                        self.port(w + ".tcp", v["tcp"])
                    for d in ("interval", "timeout"):
                        if d in v and not (isinstance(v[d], str) and DURATION.match(v[d])):
                            self.bad(w, f"bad duration {d} = {v[d]!r}")
                    if "failure_threshold" in v and not (isinstance(v["failure_threshold"], int) and v["failure_threshold"] >= 1):
                        self.bad(w, "failure_threshold must be an integer >= 1")
            elif k == "rollout":
                if self.keys(w, v, {"max_surge", "max_unavailable", "deadline"}):
                    for n in ("max_surge", "max_unavailable"):
                        if n in v and not (isinstance(v[n], int) and v[n] >= 0):
                            self.bad(w, f"{n} must be an integer >= 0")
                    if "deadline" in v and not (isinstance(v["deadline"], str) and DURATION.match(v["deadline"])):
                        self.bad(w, "bad deadline")
            elif k == "env":
                if not (isinstance(v, dict) and all(isinstance(x, str) for x in v.values())):
                    self.bad(w, "must be a table of strings")
            elif k == "secrets":
                if isinstance(v, dict):
                    for name, src in v.items():
                        if not (isinstance(src, dict) and len(src) == 1 and set(src) <= {"env", "file"}):
                            self.bad(f"{w}.{name}", "must be { env = \"VAR\" } or { file = \"path\" }")
                else:
                    self.bad(w, "must be a table")
        if not partial:
            if "command" not in svc and "image" not in svc:
                self.bad(where, "needs command or image")

    def check_flags(self, where, flags):
        for name, flag in flags.items():
            if self.keys(f"{where}.{name}", flag, FLAG_KEYS):
                if "default" in flag and not isinstance(flag["default"], (bool, str, int, float)):
                    self.bad(f"{where}.{name}.default", "must be a bool, string or number")

    def run(self):
        top = self.load_toml("tier.toml")
        for k in top:
            if k not in ("project", "environments", "services", "flags"):
                self.bad("tier.toml", f"unknown table {k!r}")
        project = top.get("project", {})
        self.keys("tier.toml [project]", project, PROJECT_KEYS)
        if not isinstance(project.get("name"), str):
            self.bad("tier.toml [project]", "name is required")
        envs = top.get("environments", {})
        services = top.get("services", {})
        flags = top.get("flags", {})
        for name in list(envs) + list(services):
            if not DNS_1035.match(name):
                self.bad("tier.toml", f"{name!r} is not a DNS-1035 label")
        for name, env in envs.items():
            where = f"tier.toml [environments.{name}]"
            if not self.keys(where, env, ENV_KEYS):
                continue
            runtime = env.get("runtime", "local")
            if runtime not in ("local", "kubernetes"):
                self.bad(where, f"bad runtime {runtime!r}")
            if runtime == "kubernetes":
                kube = env.get("kube")
                if not (isinstance(kube, dict) and isinstance(kube.get("context"), str) and isinstance(kube.get("namespace"), str)):
                    self.bad(where, "kubernetes needs kube = { context, namespace }")
                elif not DNS_1035.match(kube["namespace"]):
                    self.bad(where, f"namespace {kube['namespace']!r} is not a DNS-1035 label")
            for ref in ("promote_from", "extends"):
                if ref in env and env[ref] not in envs:
                    self.bad(where, f"{ref} names unknown environment {env[ref]!r}")
        for ref in ("promote_from", "extends"):
            for name in envs:
                seen, cur = [], name
                while cur in envs and ref in envs[cur]:
                    if cur in seen:
                        self.bad("tier.toml", f"{ref} loop: {' -> '.join(seen + [cur])}")
                        break
                    seen.append(cur)
                    cur = envs[cur][ref]
        namespaces = [e["kube"]["namespace"] for e in envs.values() if isinstance(e.get("kube"), dict) and "namespace" in e["kube"]]
        if len(namespaces) != len(set(namespaces)):
            self.bad("tier.toml", "two kubernetes environments share a namespace")
        self.check_flags("tier.toml [flags]", flags)
        for name, svc in services.items():
            self.check_service(f"tier.toml [services.{name}]", svc, services, partial=False)
        self.check_dag(services)

        overrides = {}
        env_dir = os.path.join(self.root, "envs")
        if os.path.isdir(env_dir):
            for fname in sorted(os.listdir(env_dir)):
                rel = f"envs/{fname}"
                env_name = fname[:-5] if fname.endswith(".toml") else None
                if env_name not in envs:
                    self.bad(rel, "does not belong to a declared environment")
                    continue
                data = self.load_toml(rel)
                overrides[env_name] = data
                for k in data:
                    if k not in ("project", "services", "flags"):
                        self.bad(rel, f"unknown table {k!r}")
                if "project" in data:
                    self.keys(f"{rel} [project]", data["project"], PROJECT_KEYS - {"name"})
                self.check_flags(f"{rel} [flags]", data.get("flags", {}))
                for sname, svc in data.get("services", {}).items():
                    if sname not in services:
                        self.bad(rel, f"overrides unknown service {sname!r}")
                    else:
                        self.check_service(f"{rel} [services.{sname}]", svc, services, partial=True)

        for env_name, env in envs.items():
            if env.get("abstract"):
                continue
            chain, cur = [], env_name
            while cur is not None and cur not in chain:
                chain.append(cur)
                cur = envs.get(cur, {}).get("extends")
            resolved = {n: dict(s) for n, s in services.items()}
            for layer in reversed(chain):
                for sname, svc in overrides.get(layer, {}).get("services", {}).items():
                    if sname in resolved:
                        resolved[sname].update(svc)
            ports = {}
            for sname, svc in resolved.items():
                if "expose" in svc:
                    if svc["expose"] in ports:
                        self.bad(f"environment {env_name}", f"{sname} and {ports[svc['expose']]} both expose {svc['expose']}")
                    ports[svc["expose"]] = sname

        config_dir = os.path.join(self.root, "config")
        if os.path.isdir(config_dir):
            for dirpath, _, files in os.walk(config_dir):
                for fname in files:
                    path = os.path.join(dirpath, fname)
                    rel = os.path.relpath(path, self.root)
                    if not fname.endswith(".json"):
                        continue
                    stem = fname[:-5]
                    if stem != "base" and stem not in envs:
                        self.bad(rel, "is neither base.json nor <env>.json of a declared environment")
                    try:
                        with open(path, encoding="utf-8") as f:
                            value = json.load(f)
                        if not isinstance(value, dict):
                            self.bad(rel, "must hold a JSON object")
                    except (OSError, ValueError) as e:
                        self.bad(rel, f"invalid JSON: {e}")
        return self.summary(envs, services, overrides)

    def check_dag(self, services):
        state = {}
        for start in services:
            if state.get(start):
                continue
            stack = [(start, iter(services[start].get("depends_on", [])))]
            state[start] = 1
            path = [start]
            while stack:
                node, deps = stack[-1]
                dep = next(deps, None)
                if dep is None:
                    state[node] = 2
                    stack.pop()
                    path.pop()
                elif dep in services:
                    if state.get(dep) == 1:
                        self.bad("tier.toml", f"depends_on cycle: {' -> '.join(path[path.index(dep):] + [dep])}")
                    elif not state.get(dep):
                        state[dep] = 1
                        path.append(dep)
                        stack.append((dep, iter(services[dep].get("depends_on", []))))

    def summary(self, envs, services, overrides):
        edges = sum(len(s.get("depends_on", [])) for s in services.values())
        depth = {}
        for name in services:  # services are checked acyclic; memoised longest chain
            stack = [name]
            while stack:
                cur = stack[-1]
                deps = [d for d in services[cur].get("depends_on", []) if d in services]
                todo = [d for d in deps if d not in depth]
                if todo and not self.problems:
                    stack.extend(todo)
                    continue
                depth[cur] = 1 + max((depth.get(d, 0) for d in deps), default=0)
                stack.pop()
        return (f"{len(services)} services, {len(envs)} environments, {len(overrides)} override files, "
                f"{edges} depends_on edges, longest chain {max(depth.values(), default=0)}")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__.strip().splitlines()[2])
    failed = False
    for root in sys.argv[1:]:
        checker = Checker(root)
        summary = checker.run()
        if checker.problems:
            failed = True
            print(f"{root}: {len(checker.problems)} problem(s)")
            for p in checker.problems:
                print(f"  {p}")
        else:
            print(f"{root}: ok ({summary})")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
