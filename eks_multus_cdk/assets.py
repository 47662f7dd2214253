"""Where the runtime files (lambda/, manifests/, userdata/, controller/) are, in a checkout or an installed wheel.

In the repository they sit at the top level, beside the package (the layout the users asked for). The wheel
maps them into `eks_multus_cdk/_assets/` (see pyproject.toml). Paths are relative to this file, never to the
working directory, so an app that imports the library from anywhere finds them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_PACKAGE = Path(__file__).resolve().parent
_ROOTS = (_PACKAGE / "_assets", _PACKAGE.parent)


def asset_path(*parts: str) -> Path:
    """The path of a shipped runtime file or folder, e.g. `asset_path("manifests", "multus")`."""
    tried = [root.joinpath(*parts) for root in _ROOTS]
    for path in tried:
        if path.exists():
            return path
    raise FileNotFoundError(f"{'/'.join(parts)} not found; tried {', '.join(str(p) for p in tried)}")


def lambda_package(package: str) -> dict[str, Any]:
    """`runtime` and `code` of a Python function whose asset is `lambda/<package>` alone (its .py files), for
    `lambda_.Function(..., **lambda_package("eni_attacher"))`. aws-cdk-lib is imported here, not at module level:
    `verify` uses this module without it."""
    from aws_cdk import aws_lambda as lambda_

    return {
        "runtime": lambda_.Runtime.PYTHON_3_14,
        "code": lambda_.Code.from_asset(str(asset_path("lambda")),
                                        exclude=["*", f"!{package}", f"!{package}/*.py"]),
    }
