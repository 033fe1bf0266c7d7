"""Print the Pipfile's dependencies as pip requirement lines.

The Pipfile is the one place where versions are pinned. Resolving it with pipenv writes a
Pipfile.lock (which we keep out of the repository) and takes a while; pip can install the
same pinned set directly, so `./dev` and the Dockerfile use this instead.

    python scripts/pipfile.py [--dev] [--no-editable] > requirements.txt

--no-editable installs local path entries (the project itself) as regular packages: the
Dockerfile uses it, so the image holds the package and not a link to the build directory.
"""

import argparse
import pathlib
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent


def requirement(name: str, spec, editable: bool = True) -> str:
    """One pip requirement line for a Pipfile entry (a version string or a table)."""
    if isinstance(spec, str):
        return name if spec == "*" else f"{name}{spec}"
    if "path" in spec:
        path = (ROOT / spec["path"]).resolve()
        return f"-e {path}" if spec.get("editable") and editable else str(path)
    extras = f"[{','.join(spec['extras'])}]" if spec.get("extras") else ""
    version = spec.get("version", "*")
    return f"{name}{extras}{'' if version == '*' else version}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", action="store_true", help="include [dev-packages]")
    parser.add_argument("--no-editable", action="store_true", help="install path entries as regular packages")
    args = parser.parse_args()
    pipfile = tomllib.loads((ROOT / "Pipfile").read_text())
    sections = ["packages"] + (["dev-packages"] if args.dev else [])
    for section in sections:
        for name, spec in pipfile.get(section, {}).items():
            print(requirement(name, spec, editable=not args.no_editable))


if __name__ == "__main__":
    main()
