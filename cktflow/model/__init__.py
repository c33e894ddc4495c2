"""CktGen in cktflow: a spec-conditioned generative model of OCB op-amp circuits (needs torch).

`propose(spec, n)` is the entry point the rest of cktflow uses; `train`, the evaluator, the metrics
and the evaluation protocol live in their own modules. Importing `cktflow` does not import this
package (torch is loaded only by the code that needs it).
"""

from .config import CktGenConfig, LossWeights, TrainConfig, recipe
from .sample import load_model, propose

__all__ = ["CktGenConfig", "LossWeights", "TrainConfig", "recipe", "load_model", "propose"]
