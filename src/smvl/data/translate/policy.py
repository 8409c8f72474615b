"""Per-subset translation policy: translate question and answer, the question only, or keep the sample as it is."""

from __future__ import annotations

from pathlib import Path

import yaml

from smvl.errors import UserError

SHIPPED = Path(__file__).with_name("policy.yaml")
MODES = ("both", "question", "keep")


class Policy:
    def __init__(self, modes: dict[str, str], default: str = "both"):
        self.modes, self.default = modes, default

    def __call__(self, subset: str) -> str:
        return self.modes.get(subset, self.default)

    @classmethod
    def load(cls, path: str | Path | None = None) -> "Policy":
        """The shipped policy, or a YAML file of the same shape: `default: MODE` and `MODE: [subsets]`."""
        path = Path(path) if path else SHIPPED
        if not path.is_file():
            raise UserError(f"policy file {path} does not exist")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise UserError(f"policy file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(data, dict) or set(data) - {"default", *MODES}:
            raise UserError(f"policy file {path}: keys are `default` and {', '.join(MODES)}")
        default = data.get("default", "both")
        if default not in MODES:
            raise UserError(f"policy file {path}: default must be one of {', '.join(MODES)}, not {default!r}")
        modes = {}
        for mode in MODES:
            names = data.get(mode) or []
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise UserError(f"policy file {path}: `{mode}` must be a list of subset names")
            for name in names:
                if name in modes:
                    raise UserError(f"policy file {path}: subset {name} is under both {modes[name]} and {mode}")
                modes[name] = mode
        return cls(modes, default)
