"""The reusable Llama-2: config, transformer, KV cache, decoding, tokenizer, checkpoint I/O.
Imports only torch, sentencepiece and safetensors (never the rest of the project)."""
from .config import ModelArgs
from .generate import Generation, decode_tokens, generate
from .kv_cache import KVCache
from .llama import Transformer
from .tokenizer import Tokenizer

__all__ = ["ModelArgs", "Transformer", "KVCache", "Tokenizer", "Generation", "generate", "decode_tokens"]
