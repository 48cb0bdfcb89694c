"""Fine-tuning recipes beside weights files: read them (untrusted) and say when a run differs from them."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pyapprox import io as pio
from pyapprox.errors import PyapproxError

RECIPE_KIND = "pyapprox-finetune"


def finetune_recipe(weights: str | Path | None) -> dict | None:
    """The recipe ``W.json`` of fine-tuned weights ``W.pt``, or None when there is none or it is another kind
    of recipe. Raises when it claims to be a fine-tuning recipe but is malformed or belongs to another file."""
    if not weights:
        return None
    path = Path(weights).with_suffix(".json")
    if not path.is_file():
        return None
    data = pio.read_json(path, "weights recipe")
    if not isinstance(data, dict) or data.get("kind") != RECIPE_KIND:
        return None
    plan = data.get("plan")
    ok = (isinstance(data.get("sha256"), str) and isinstance(plan, dict)
          and isinstance(plan.get("assignment"), dict)
          and all(isinstance(k, str) and isinstance(v, str) for k, v in plan["assignment"].items())
          and isinstance(data.get("accelerator"), dict) and isinstance(data.get("multipliers"), dict)
          and all(isinstance(k, str) and isinstance(v, str) for k, v in data["multipliers"].items())
          and isinstance(plan.get("rules"), list)
          and all(isinstance(r, list) and len(r) == 2 and all(isinstance(x, str) for x in r) for r in plan["rules"])
          and isinstance(data.get("finetune"), dict))
    if not ok:
        raise PyapproxError(f"weights recipe {path}: malformed fine-tuning recipe (expected sha256, plan.rules, "
                            f"plan.assignment, accelerator, multipliers and finetune)")
    digest = hashlib.sha256(Path(weights).read_bytes()).hexdigest()
    if digest != data["sha256"]:
        raise PyapproxError(f"weights {weights}: SHA-256 {digest[:16]}... does not match its recipe {path.name} "
                            f"({data['sha256'][:16]}...): the file was changed after fine-tuning; remove or fix the "
                            f"recipe")
    return data


def plan_note(recipe: dict | None, assignment: dict, accelerator: dict, digests: dict | None = None) -> str | None:
    """One line saying how a run differs from what the weights were fine-tuned for (None when it does not):
    ``assignment`` {layer: multiplier} of the run, its accelerator settings and its multipliers' table digests."""
    if recipe is None:
        return None
    trained = {k: v for k, v in recipe["plan"]["assignment"].items() if v != "exact"}
    used = {k: v for k, v in assignment.items() if v != "exact"}
    diffs = []
    if trained != used:
        changed = sorted(set(trained) ^ set(used) | {k for k in set(trained) & set(used) if trained[k] != used[k]})
        diffs.append(f"{len(changed)} layer(s) use another multiplier (e.g. {changed[0]}: fine-tuned for "
                     f"{trained.get(changed[0], 'exact')}, now {used.get(changed[0], 'exact')})")
    if digests:
        other = sorted(m for m, d in digests.items() if m in recipe["multipliers"] and recipe["multipliers"][m] != d)
        if other:
            diffs.append(f"the table of {', '.join(other)} differs from the one fine-tuned with")
    if recipe["accelerator"] != accelerator:
        keys = sorted(k for k in set(accelerator) | set(recipe["accelerator"])
                      if accelerator.get(k) != recipe["accelerator"].get(k))
        diffs.append(f"accelerator settings differ ({', '.join(keys)})")
    if not diffs:
        return None
    return "note: these weights were fine-tuned for another configuration: " + "; ".join(diffs)
