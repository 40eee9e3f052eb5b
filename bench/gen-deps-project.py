#!/usr/bin/env python3
"""Generate a tier project whose services are real tiny Cargo packages, for bench/deps.sh.

    python3 bench/gen-deps-project.py DIR [--services 200] [--library itoa]

Writes DIR/tier.toml (one local environment, every service `command = ["true"]` with
`source = "services/<name>"`) and DIR/services/<name>/{Cargo.toml, src/main.rs}. The
dependencies are the crates this repository's own workspace uses (so that they are in the
local cargo cache and everything works offline), with the same features, and vary by service
kind:

  * 7 in 10 are web services: everything (axum, hyper, tokio, serde_json, clap, miette,
    toml, ...), minus redb in every third one, petgraph in every fourth one, the
    cargo-lock/toml_edit/semver tooling in every fifth one, criterion in every seventh one;
  * 2 in 10 are workers: no HTTP stack (axum, hyper, hyper-util, http-body-util);
  * 1 in 10 is a small command-line tool: clap, serde, toml, miette, thiserror, console and
    a few dev-dependencies, no serde_json and no HTTP stack.

Every Cargo.lock is made by `cargo generate-lockfile --offline`, once per distinct manifest:
services whose manifests differ only in the package name get a copy of that lockfile with the
root package renamed (the same thing cargo would write). Prints a JSON summary on stdout:
lockfile counts, locked packages per service, and how many services lock the library.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

# name -> requirement, the same as /work/main/Cargo.toml's [workspace.dependencies].
DEPS = {
    "axum": '{ version = "0.8", default-features = false, features = ["http1", "json", "tokio", "query"] }',
    "bytes": '"1"',
    "cargo-lock": '{ version = "11", default-features = false }',
    "clap": '{ version = "4.6", features = ["derive", "env", "wrap_help"] }',
    "clap_complete": '"4.6"',
    "console": '"0.16"',
    "http-body-util": '"0.1"',
    "hyper": '{ version = "1", features = ["http1", "server", "client"] }',
    "hyper-util": '{ version = "0.1", features = ["client-legacy", "http1", "server", "tokio"] }',
    "indicatif": '"0.18"',
    "jsonc-parser": '{ version = "0.34", default-features = false }',
    "mimalloc": '{ version = "0.1", default-features = false }',
    "miette": '{ version = "7.6", default-features = false, features = ["derive", "fancy-no-backtrace"] }',
    "nodejs-semver": '"7"',
    "nix": '{ version = "0.32", features = ["signal", "process", "fs", "hostname"] }',
    "petgraph": '{ version = "0.8", default-features = false, features = ["graphmap", "std"] }',
    "redb": '"4"',
    "semver": '{ version = "1", features = ["serde"] }',
    "serde": '{ version = "1", features = ["derive"] }',
    "serde_json": '{ version = "1", features = ["preserve_order"] }',
    "serde-saphyr": '{ version = "2", default-features = false, features = ["serialize"] }',
    "sha2": '"0.11"',
    "strsim": '"0.11"',
    "thiserror": '"2"',
    "tokio": '{ version = "1.54", features = ["rt-multi-thread", "macros", "net", "process", "signal", "time", "io-util", "sync", "fs"] }',
    "tokio-util": '"0.7"',
    "toml_edit": '"0.25"',
    "toml": '{ version = "1.2", default-features = false, features = ["std", "parse", "serde"] }',
}
DEV_DEPS = {
    "assert_cmd": '"2"',
    "criterion": '{ version = "0.8", default-features = false, features = ["cargo_bench_support"] }',
    "insta": '{ version = "1.49", features = ["yaml", "json", "filters"] }',
    "jsonschema": '{ version = "0.61", default-features = false }',
    "predicates": '"3"',
    "proptest": '"1.12"',
    "tempfile": '"3"',
}
HTTP = {"axum", "hyper", "hyper-util", "http-body-util"}
TOOLING = {"cargo-lock", "toml_edit", "semver", "nodejs-semver"}
CLI_DEPS = {"clap", "clap_complete", "serde", "toml", "miette", "thiserror", "console", "strsim"}
CLI_DEV = {"assert_cmd", "predicates", "tempfile", "insta"}


def service_deps(index):
    """(kind, dependencies, dev-dependencies) of service number `index`."""
    kind = {7: "worker", 8: "worker", 9: "tool"}.get(index % 10, "web")
    if kind == "tool":
        return kind, sorted(CLI_DEPS), sorted(CLI_DEV)
    deps, dev = set(DEPS), set(DEV_DEPS)
    if kind == "worker":
        deps -= HTTP
    if index % 3 == 0:
        deps.discard("redb")
    if index % 4 == 0:
        deps.discard("petgraph")
    if index % 5 == 0:
        deps -= TOOLING
    if index % 7 == 0:
        dev.discard("criterion")
    return kind, sorted(deps), sorted(dev)


def manifest(name, deps, dev):
    lines = ["[package]", f'name = "{name}"', 'version = "0.1.0"', 'edition = "2024"',
             "publish = false", "", "# A project of its own, not a member of any workspace above it.",
             "[workspace]", "", "[dependencies]"]
    lines += [f"{dep} = {DEPS[dep]}" for dep in deps]
    lines += ["", "[dev-dependencies]"]
    lines += [f"{dep} = {DEV_DEPS[dep]}" for dep in dev]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("dir")
    parser.add_argument("--services", type=int, default=200)
    parser.add_argument("--library", default="itoa")
    args = parser.parse_args()

    root = args.dir
    os.makedirs(f"{root}/services", exist_ok=True)
    toml = ["[project]", 'name = "deps-bench"', "", "[environments.local]", 'runtime = "local"', ""]
    groups = {}  # (deps, dev) -> [service names], first one is where cargo runs
    kinds = {}
    for index in range(args.services):
        name = f"svc-{index:03d}"
        kind, deps, dev = service_deps(index)
        kinds[kind] = kinds.get(kind, 0) + 1
        directory = f"{root}/services/{name}"
        os.makedirs(f"{directory}/src", exist_ok=True)
        with open(f"{directory}/Cargo.toml", "w") as file:
            file.write(manifest(name, deps, dev))
        with open(f"{directory}/src/main.rs", "w") as file:
            file.write('fn main() {\n    println!("' + name + '");\n}\n')
        groups.setdefault((tuple(deps), tuple(dev)), []).append(name)
        toml += [f"[services.{name}]", 'command = ["true"]', f'source = "services/{name}"', ""]
    with open(f"{root}/tier.toml", "w") as file:
        file.write("\n".join(toml))

    started = time.monotonic()
    for names in groups.values():
        first = names[0]
        subprocess.run(["cargo", "generate-lockfile", "--offline", "--quiet"],
                       cwd=f"{root}/services/{first}", check=True)
        with open(f"{root}/services/{first}/Cargo.lock") as file:
            lock = file.read()
        pattern = f'\nname = "{first}"\nversion = "0.1.0"\n'
        if lock.count(pattern) != 1:
            sys.exit(f"error: root package {first} not found once in its Cargo.lock")
        for name in names[1:]:
            with open(f"{root}/services/{name}/Cargo.lock", "w") as file:
                file.write(lock.replace(pattern, f'\nname = "{name}"\nversion = "0.1.0"\n'))
    cargo_seconds = time.monotonic() - started

    # What the lockfiles say, read without tier or cargo: the expected answer.
    packages, with_library = [], []
    for index in range(args.services):
        name = f"svc-{index:03d}"
        with open(f"{root}/services/{name}/Cargo.lock") as file:
            lock = file.read()
        packages.append(lock.count("[[package]]"))
        if re.search(rf'^name = "{re.escape(args.library)}"$', lock, re.M):
            with_library.append(name)
    json.dump({
        "services": args.services,
        "kinds": kinds,
        "distinct_manifests": len(groups),
        "generate_lockfile_seconds": round(cargo_seconds, 1),
        "packages_min": min(packages),
        "packages_mean": round(statistics.mean(packages), 1),
        "packages_max": max(packages),
        "packages_total": sum(packages),
        "library": args.library,
        "services_locking_library": len(with_library),
    }, sys.stdout)
    print()


if __name__ == "__main__":
    main()
