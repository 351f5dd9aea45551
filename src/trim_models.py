"""Writes trimmed botocore service models into a function's artefact (run by src/Makefile).

Building a client loads its service's whole model: SSM's is 790 KB of JSON, of which the
functions call one operation. The artefact carries, for the services in
``shared.clients.TRIMMED_OPERATIONS``, a model holding only the operations listed there and the
shapes they reach; ``shared.clients`` puts that folder first on botocore's search path, so the
endpoint rules and every other service still come from the runtime's own botocore. A call to an
operation left out fails at once ("has no attribute"), which the artefact tests would show.

Usage: python trim_models.py ARTIFACTS_DIR  (the models are read from this interpreter's botocore)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import botocore.loaders

sys.path.insert(0, str(Path(__file__).parent))
from shared.clients import MODELS_DIR_NAME, TRIMMED_OPERATIONS


def trim(model: dict[str, Any], operations: tuple[str, ...]) -> dict[str, Any]:
    """The model with only ``operations`` and the shapes they reach (inputs, outputs, errors)."""
    missing = [name for name in operations if name not in model["operations"]]
    if missing:
        raise SystemExit(f"trim_models: not in the model: {', '.join(missing)}")
    shapes: dict[str, Any] = {}

    def reach(name: str) -> None:
        if name in shapes:
            return
        shape = model["shapes"][name]
        shapes[name] = shape
        for member in shape.get("members", {}).values():
            reach(member["shape"])
        for key in ("member", "key", "value"):
            if key in shape:
                reach(shape[key]["shape"])

    kept = {name: model["operations"][name] for name in operations}
    for operation in kept.values():
        for key in ("input", "output"):
            if key in operation:
                reach(operation[key]["shape"])
        for error in operation.get("errors", []):
            reach(error["shape"])
    return {**model, "operations": kept, "shapes": shapes}


def main(artifacts_dir: str) -> int:
    loader = botocore.loaders.create_loader()
    for service, operations in TRIMMED_OPERATIONS.items():
        version = loader.determine_latest_version(service, "service-2")
        model = loader.load_service_model(service, "service-2", version)
        target = Path(artifacts_dir) / "shared" / MODELS_DIR_NAME / service / version
        target.mkdir(parents=True, exist_ok=True)
        trimmed = trim(model, operations)
        (target / "service-2.json").write_text(json.dumps(trimmed, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
