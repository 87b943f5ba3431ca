"""The reusable Llama: config, transformer, KV cache, decoding, tokenizers (SentencePiece, byte-level
BPE), checkpoint I/O, the GGUF reader and the SmolLM2 base. Imports only torch, numpy, sentencepiece,
regex and safetensors (never the rest of the project)."""
from .config import ModelArgs
from .generate import Generation, decode_tokens, generate
from .kv_cache import KVCache
from .llama import Transformer
from .tokenizer import Tokenizer, load_tokenizer

__all__ = ["ModelArgs", "Transformer", "KVCache", "Tokenizer", "load_tokenizer", "Generation", "generate", "decode_tokens"]
