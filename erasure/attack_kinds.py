"""The attacks' names, and which model each one's artefact is found on.

Kept apart from erasure.attacks (which imports torch and the models) because the Snakefile reads these
names every time it builds the DAG, and the robustness table needs them without any model code."""
# The attacks whose artefact is a set of prompts (drawn and scored on any model); revival's is a model.
PROMPT_ATTACKS = ("none", "inversion", "ringabell", "unlearndiff")
MODEL_AGNOSTIC = ("none", "ringabell")   # their artefacts do not depend on the model: found once, on "original"


def source_of(attack: str, method: str) -> str:
    """The model an attack's artefact was found on when `method` is attacked."""
    return "original" if attack in MODEL_AGNOSTIC else method
