#!/usr/bin/env python3
"""Validate a Compose file against the Compose Specification's JSON schema, offline.

    check_compose.py [docker-compose.yml]

The schema is the one check-jsonschema (PyPI) vendors from the compose-spec project
(compose-spec/compose-spec, schema/compose-spec.json); this script checks that it is that schema
and that it matches the checksum shipped beside it. Like Compose, it interpolates ${VAR:-default}
forms before validating, with an empty environment so that the file must work as committed.
It then checks what the schema cannot: files the services mount or read exist, named volumes
and depends_on targets are declared, images are pinned, and every service has a healthcheck.

Needs PyYAML, jsonschema and check-jsonschema (monitoring/check_compose.sh installs them).
Exit status: 0 valid, 1 invalid, 2 usage or set-up errors.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_PACKAGE = "check_jsonschema.builtin_schemas.vendor"
SCHEMA_FILE = "compose-spec.json"
CHECKSUM_FILE = "sha256/compose-spec.sha256"

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, ${NAME:+alt},
# ${NAME+alt}, $NAME and $$ (a literal dollar).
INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*)|(?P<invalid>))"
)


class CheckError(Exception):
    pass


def load_schema() -> dict[str, Any]:
    vendor = resources.files(SCHEMA_PACKAGE)
    raw = (vendor / SCHEMA_FILE).read_bytes()
    expected = (vendor / CHECKSUM_FILE).read_text().strip()
    actual = hashlib.sha256(raw).hexdigest()
    if actual != expected:
        raise CheckError(f"vendored {SCHEMA_FILE} has sha256 {actual}, its package says {expected}")
    schema = json.loads(raw)
    if schema.get("$id") != "compose_spec.json" or schema.get("title") != "Compose Specification":
        raise CheckError(f"vendored {SCHEMA_FILE} is not the Compose Specification schema")
    return schema


def interpolate(value: Any, env: dict[str, str], errors: list[str], where: str = "") -> Any:
    if isinstance(value, dict):
        return {k: interpolate(v, env, errors, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, errors, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def replace(m: re.Match[str]) -> str:
        if m.group("escaped"):
            return "$"
        if m.group("named"):
            return env.get(m.group("named"), "")
        name = m.group("braced")
        if name is None:
            errors.append(f"{where}: invalid interpolation in {value!r}")
            return m.group(0)
        op, arg, current = m.group("op"), m.group("arg") or "", env.get(name)
        if op is None:
            return current or ""
        unset_or_empty = not current if op.startswith(":") else current is None
        if op.endswith("-"):
            return arg if unset_or_empty else current
        if op.endswith("?"):
            if unset_or_empty:
                errors.append(f"{where}: ${{{name}}} is required: {arg or 'not set'}")
            return current or ""
        return "" if unset_or_empty else arg  # the + forms

    return INTERPOLATION.sub(replace, value)


def schema_errors(schema: dict[str, Any], document: Any) -> list[str]:
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    found = []
    for error in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path))):
        path = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        found.append(f"{path}: {error.message}")
    return found


def bind_sources(service: dict[str, Any]) -> list[str]:
    sources = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source = volume.split(":", 1)[0] if ":" in volume else ""
        elif volume.get("type") == "bind":
            source = volume.get("source", "")
        else:
            continue
        if source.startswith((".", "/", "~")):
            sources.append(source)
    return sources


def named_volumes(service: dict[str, Any]) -> list[str]:
    names = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source = volume.split(":", 1)[0] if ":" in volume else ""
        elif volume.get("type", "volume") == "volume":
            source = volume.get("source", "")
        else:
            continue
        if source and not source.startswith((".", "/", "~")):
            names.append(source)
    return names


def env_files(service: dict[str, Any]) -> list[tuple[str, bool]]:
    value = service.get("env_file")
    entries = [value] if isinstance(value, str) else value or []
    return [(e, True) if isinstance(e, str) else (e["path"], e.get("required", True)) for e in entries]


def semantic_errors(compose: dict[str, Any], base: Path) -> list[str]:
    errors = []
    if "version" in compose:
        errors.append("top level: `version` is obsolete in the Compose Specification; remove it")
    services = compose.get("services") or {}
    declared_volumes = set(compose.get("volumes") or {})
    for name, service in services.items():
        where = f"services.{name}"
        image = service.get("image", "")
        if image and "build" not in service:
            tag = image.rsplit("/", 1)[-1]
            if "@" not in tag and (":" not in tag or tag.endswith(":latest")):
                errors.append(f"{where}.image: {image!r} is not pinned to a version")
        if "healthcheck" not in service:
            errors.append(f"{where}: no healthcheck")
        for source in bind_sources(service):
            if not (base / source).expanduser().exists():
                errors.append(f"{where}.volumes: {source} does not exist")
        for volume in named_volumes(service):
            if volume not in declared_volumes:
                errors.append(f"{where}.volumes: named volume {volume!r} is not declared under volumes")
        for path, required in env_files(service):
            if required and not (base / path).exists():
                errors.append(f"{where}.env_file: {path} does not exist")
        depends = service.get("depends_on") or []
        for other in depends if isinstance(depends, list) else depends.keys():
            if other not in services:
                errors.append(f"{where}.depends_on: no service {other!r}")
        build = service.get("build")
        if isinstance(build, dict):
            context = base / build.get("context", ".")
            dockerfile = context / build.get("dockerfile", "Dockerfile")
            if "dockerfile_inline" not in build and not dockerfile.exists():
                errors.append(f"{where}.build: {dockerfile.relative_to(base)} does not exist")
    return errors


def main(argv: list[str]) -> int:
    if len(argv) > 1 or (argv and argv[0].startswith("-")):
        print(__doc__, file=sys.stderr)
        return 2
    path = Path(argv[0] if argv else "docker-compose.yml")
    try:
        schema = load_schema()
        with path.open(encoding="utf-8") as f:
            raw = yaml.safe_load(f)
    except (OSError, yaml.YAMLError, CheckError, ModuleNotFoundError) as e:
        print(f"{path}: {e}", file=sys.stderr)
        return 2
    if not isinstance(raw, dict):
        print(f"{path}: not a YAML mapping", file=sys.stderr)
        return 1

    errors: list[str] = []
    compose = interpolate(raw, {}, errors)
    errors += schema_errors(schema, compose)
    if not errors:
        errors += semantic_errors(compose, path.resolve().parent)
    if errors:
        print(f"{path}: {len(errors)} problem(s):", file=sys.stderr)
        for error in errors:
            print(f"  {error}", file=sys.stderr)
        return 1
    print(f"{path}: valid against the Compose Specification schema ({len(compose.get('services', {}))} services)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
