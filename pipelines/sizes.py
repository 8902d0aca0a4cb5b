"""What a causal LM's calibration and eval splits hold, and whether calibration is enough.

Read once the recipe validates (``modelpress validate``, and the plan of ``modelpress run``, whose
notes the summary and the gate report print): the corpus is loaded and split as ``load_data``
will split it, each split packed with the model's tokenizer, and every stage that calibrates
says whether that many sequences are enough (``StageConfig.calibration_warning``). Tasks that do
not read tokens cost nothing here.
"""

from __future__ import annotations

from modelpress.datasets.splits import assign_splits
from modelpress.recipe.schema import RecipeBase
from modelpress.tasks.base import Task


def split_sizes(recipe: RecipeBase, task: Task) -> dict[str, int]:
    """``{calibration,eval}_{documents,sequences,tokens}`` for the recipe's data and split."""
    data = recipe.data
    frame = task.fit_splits(assign_splits(data.load(), data.split, data.seed, data.limit), data.split)
    return task.split_sizes(frame)


def size_notes(recipe: RecipeBase, task: Task) -> list[str]:
    """One line per split's size, then a warning per stage whose calibration is too small."""
    if not task.sized_splits:
        return []
    sizes = split_sizes(recipe, task)
    notes = [f"data: calibration {sizes['calibration_sequences']} sequences ({sizes['calibration_tokens']:,} tokens, "
             f"{sizes['calibration_documents']} documents); eval {sizes['eval_sequences']} sequences "
             f"({sizes['eval_tokens']:,} tokens, {sizes['eval_documents']} documents)"]
    for index, stage in enumerate(recipe.stages):
        warning = stage.config.calibration_warning(sizes["calibration_sequences"], sizes["sequence_tokens"])
        if warning:
            notes.append(f"warning: stages[{index}].{stage.name}: {warning}")
    return notes
