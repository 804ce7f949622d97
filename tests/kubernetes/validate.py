"""Validates Kubernetes objects against the schemas of the Kubernetes versions given.

    python validate.py OBJECTS.json VERSION...

OBJECTS.json is a JSON array of objects (kustomize's output, as tests/it/deploy/kubernetes/
hands it over). Objects of the Prometheus Operator's group are left to
validate-operator-kinds.mjs; any other kind without a schema fails. Validation is strict: a field
the schema does not define is an error, as `kubectl apply` reports it. Prints one line per
problem and exits 1 if there is any.
"""

import json
import sys

import kubernetes_validate

OPERATOR_GROUP = "monitoring.coreos.com/"


def problems(objects, versions):
    for obj in objects:
        name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        if str(obj.get("apiVersion", "")).startswith(OPERATOR_GROUP):
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                yield f"{name} (Kubernetes {version}): {'.'.join(map(str, error.path))}: {error.message}"
            except kubernetes_validate.SchemaNotFoundError:
                yield f"{name} (Kubernetes {version}): no schema for {obj.get('apiVersion')} {obj.get('kind')}"


def main():
    path, versions = sys.argv[1], sys.argv[2:]
    if not versions:
        sys.exit("usage: validate.py OBJECTS.json VERSION...")
    with open(path) as file:
        objects = json.load(file)
    found = list(problems(objects, versions))
    for problem in found:
        print(problem)
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
