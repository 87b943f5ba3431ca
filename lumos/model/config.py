"""ModelArgs: the numbers that define a Llama-2 model, and their HF / Meta spellings.

Meta's params.json and HF's config.json describe the same model in different words. The one
non-obvious quantity is the SwiGLU width: Meta derives it from `dim`, `multiple_of` and
`ffn_dim_multiplier`, HF stores it directly as `intermediate_size`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass
class ModelArgs:
    dim: int = 4096
    n_layers: int = 32
    n_heads: int = 32
    n_kv_heads: int | None = None  # None = n_heads (no grouped-query attention)
    vocab_size: int = 32000
    multiple_of: int = 256  # SwiGLU width is rounded up to a multiple of this
    ffn_dim_multiplier: float | None = None  # 70B: 1.3
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    max_seq_len: int = 4096
    tie_word_embeddings: bool = False  # output shares tok_embeddings.weight (tiny demo models)
    ffn_hidden_dim: int | None = None  # explicit SwiGLU width; overrides the multiple_of rule

    def __post_init__(self):
        for name in ("dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "multiple_of", "max_seq_len",
                     "ffn_hidden_dim"):
            v = getattr(self, name)
            # n_layers may be 0: embeddings straight into the output head (a bigram model, used in tests)
            low = 0 if name == "n_layers" else 1
            if v is not None and (type(v) is not int or v < low):
                raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
        if self.dim % self.n_heads:
            raise ValueError(f"dim {self.dim} is not divisible by n_heads {self.n_heads}")
        if self.n_heads % self.kv_heads:
            raise ValueError(f"n_heads {self.n_heads} is not divisible by n_kv_heads {self.kv_heads}")
        if self.head_dim % 2:
            raise ValueError(f"head_dim {self.head_dim} must be even for rotary embeddings")

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def kv_heads(self) -> int:
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads

    @property
    def hidden_dim(self) -> int:
        """SwiGLU width, Meta's rule: 2/3 of 4*dim (same parameter count as a 4*dim GELU MLP),
        times ffn_dim_multiplier, rounded up to multiple_of. 7B: 11008, 13B: 13824, 70B: 28672."""
        if self.ffn_hidden_dim is not None:
            return self.ffn_hidden_dim
        return _meta_hidden_dim(self.dim, self.multiple_of, self.ffn_dim_multiplier)

    @classmethod
    def preset(cls, name: str) -> "ModelArgs":
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        return cls(**PRESETS[name])

    @classmethod
    def from_meta_params(cls, params: dict) -> "ModelArgs":
        """Meta's params.json. Its vocab_size is -1 (the tokenizer decides); we take 32000 then."""
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in params.items() if k in known}
        if kw.get("vocab_size", -1) <= 0:
            kw["vocab_size"] = 32000
        return cls(**kw)

    @classmethod
    def from_hf_config(cls, cfg: dict) -> "ModelArgs":
        """HF config.json (transformers 4.x: `rope_theta`; 5.x: `rope_parameters.rope_theta`)."""
        if cfg.get("model_type", "llama") != "llama":
            raise ValueError(f"config.json model_type is {cfg['model_type']!r}, expected 'llama'")
        rope = cfg.get("rope_parameters") or {}
        scaling = cfg.get("rope_scaling") or {}
        rope_type = rope.get("rope_type", scaling.get("rope_type", scaling.get("type", "default")))
        if rope_type != "default":
            raise ValueError(f"rope scaling {rope_type!r} is not supported (Llama-2 has none)")
        dim, inter = cfg["hidden_size"], cfg["intermediate_size"]
        args = dict(
            dim=dim,
            n_layers=cfg["num_hidden_layers"],
            n_heads=cfg["num_attention_heads"],
            n_kv_heads=cfg.get("num_key_value_heads") or None,
            vocab_size=cfg["vocab_size"],
            norm_eps=cfg.get("rms_norm_eps", 1e-5),
            rope_theta=float(rope.get("rope_theta", cfg.get("rope_theta", 10000.0))),
            max_seq_len=cfg.get("max_position_embeddings", 4096),
            tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        )
        if args["n_kv_heads"] == args["n_heads"]:
            args["n_kv_heads"] = None
        cls(**args, ffn_hidden_dim=inter)  # checks every field before the arithmetic below
        # Recover Meta's (multiple_of, ffn_dim_multiplier) when one of the released rules gives
        # exactly intermediate_size; otherwise keep the width explicitly.
        for multiple_of, mult in ((256, None), (4096, 1.3), (256, 1.3)):
            if _meta_hidden_dim(dim, multiple_of, mult) == inter:
                return cls(**args, multiple_of=multiple_of, ffn_dim_multiplier=mult)
        return cls(**args, ffn_hidden_dim=inter)

    def to_meta_params(self) -> dict:
        """params.json as Meta writes it (plus rope_theta and max_seq_len, which it reads back).
        Tied embeddings are not a params.json notion: a Meta checkpoint stores output.weight."""
        if self.hidden_dim != _meta_hidden_dim(self.dim, self.multiple_of, self.ffn_dim_multiplier):
            raise ValueError(f"SwiGLU width {self.hidden_dim} is not expressible in Meta's params.json "
                             f"(multiple_of {self.multiple_of}, ffn_dim_multiplier {self.ffn_dim_multiplier})")
        return {k: v for k, v in asdict(self).items() if k not in ("ffn_hidden_dim", "tie_word_embeddings")}

    def to_hf_config(self, dtype: str = "float32") -> dict:
        """A config.json that transformers 4.x and 5.x both read as this LlamaForCausalLM."""
        return {
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_size": self.dim,
            "intermediate_size": self.hidden_dim,
            "num_hidden_layers": self.n_layers,
            "num_attention_heads": self.n_heads,
            "num_key_value_heads": self.kv_heads,
            "head_dim": self.head_dim,
            "vocab_size": self.vocab_size,
            "rms_norm_eps": self.norm_eps,
            "rope_theta": self.rope_theta,
            "rope_scaling": None,
            "max_position_embeddings": self.max_seq_len,
            "tie_word_embeddings": self.tie_word_embeddings,
            "hidden_act": "silu",
            "attention_bias": False,
            "attention_dropout": 0.0,
            "mlp_bias": False,
            "initializer_range": 0.02,
            "pretraining_tp": 1,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "use_cache": True,
            "torch_dtype": dtype,  # transformers 4.x name
            "dtype": dtype,  # transformers 5.x name
        }


def _meta_hidden_dim(dim: int, multiple_of: int, ffn_dim_multiplier: float | None) -> int:
    hidden = int(2 * (4 * dim) / 3)
    if ffn_dim_multiplier is not None:
        hidden = int(ffn_dim_multiplier * hidden)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


PRESETS = {
    "llama2-7b": dict(dim=4096, n_layers=32, n_heads=32, vocab_size=32000),
    "llama2-13b": dict(dim=5120, n_layers=40, n_heads=40, vocab_size=32000),
    "llama2-70b": dict(dim=8192, n_layers=80, n_heads=64, n_kv_heads=8, vocab_size=32000,
                       ffn_dim_multiplier=1.3, multiple_of=4096),
    # A few million parameters: tests and CPU demos. Tied embeddings keep the 32000-row table
    # from dominating (32000 * 256 = 8.2M). hidden_dim 768.
    "tiny": dict(dim=256, n_layers=4, n_heads=8, n_kv_heads=4, vocab_size=32000, multiple_of=256,
                 max_seq_len=2048, tie_word_embeddings=True),
}
