"""The import rules, in one place (docs/architecture.md): each layer imports only the layers below it, the model
package imports no data-prep or training library, prep loads no torch, and only the engine module loads
deepspeed. Checked on the source (every import, function-level ones included) and in fresh interpreters."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "zhbert"

BASE = {"config", "layout", "files", "device", "steps"}
# layer → the layers it may import (besides itself and BASE); a layer's modules never import one above
ALLOWED = {
    "data": set(),
    "model": set(),
    "export": {"data", "model"},
    "train": {"data", "model", "export"},
    "finetune": {"data", "model", "export", "train.optim"},
    "report": {"train.metrics"},
    "hf": {"data", "model", "export", "finetune"},
    "compare": {"data", "model", "export", "train", "finetune", "report"},
    "demo": {"data", "model", "export", "train", "finetune", "report", "compare"},
    "cli": {"data", "model", "export", "train", "finetune", "report", "compare", "demo", "hf"},
    "__main__": {"cli"},
}


def zhbert_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "zhbert":
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.split(".")[0] == "zhbert"}
    return names


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_module_imports_only_layers_below_it():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        layer = layer_of(module)
        if not layer:
            continue
        for target in zhbert_imports(path):
            to = layer_of(target)
            ok = (to in (layer, "") or to in BASE or to in ALLOWED.get(layer, set())
                  or ".".join(target.split(".")[1:3]) in ALLOWED.get(layer, set()))
            if layer in BASE and to not in BASE and to:
                ok = False
            if not ok:
                wrong.append(f"{module} imports {target}")
    assert not wrong, "\n".join(wrong)
    assert ALLOWED.keys() | BASE >= {layer_of(f"zhbert.{p.stem}") for p in PACKAGE.glob("*.py")} - {"__init__"}


def test_layout_imports_nothing_from_zhbert():
    assert zhbert_imports(PACKAGE / "layout.py") == set()


def loaded(code: str) -> list[str]:
    """The modules of interest a fresh interpreter has loaded after ``code``."""
    done = subprocess.run([sys.executable, "-c", f"{code}; import sys; print(sorted(sys.modules))"],
                          capture_output=True, text=True, check=True, cwd=ROOT)
    return eval(done.stdout.strip().splitlines()[-1])


def test_data_steps_load_no_torch_model_code_or_deepspeed():
    mods = loaded("import zhbert.data.prep, zhbert.data.word_view, zhbert.data.sources, zhbert.data.build")
    assert [m for m in mods if m.startswith(("torch", "zhbert.model", "deepspeed"))] == []


def test_model_package_loads_no_deepspeed_jieba_pypinyin_or_transformers():
    mods = loaded("import zhbert.model, zhbert.model.convert")
    assert sorted({"deepspeed", "jieba", "rjieba", "pypinyin", "transformers"} & set(mods)) == []


def test_only_the_engine_module_loads_deepspeed():
    mods = loaded("import zhbert.train.pretrain, zhbert.train.data, zhbert.export, zhbert.cli, zhbert.compare")
    assert "deepspeed" not in mods
