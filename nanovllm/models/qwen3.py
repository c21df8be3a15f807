"""The Qwen3 decoder (and its Qwen2 and Llama cousins), built from the layers package.

Shape of one step: token ids ``[tokens]`` -> embeddings ``[tokens, hidden]`` -> N
decoder layers -> final RMSNorm -> hidden states ``[tokens, hidden]``. The batch is
*flat*: the new tokens of all sequences are packed end to end, with no padding; the
``StepInputs`` say which rows belong to which sequence. Logits are computed
separately (``compute_logits``) and only for the rows that will be sampled.

Each decoder layer is pre-norm: ``x + attention(norm(x))`` then ``x + mlp(norm(x))``,
with the residual additions fused into the following RMSNorm.
"""

import torch
import torch.nn.functional as F
from torch import nn

from nanovllm.kernels.qk_norm_rotary import qk_norm_rotary
from nanovllm.layers.attention import Attention, StepInputs
from nanovllm.layers.embed_head import ParallelLMHead, VocabParallelEmbedding
from nanovllm.layers.layernorm import RMSNorm
from nanovllm.layers.linear import (
    WHOLE,
    MergedColumnParallelLinear,
    QKVParallelLinear,
    RowParallelLinear,
    Shard,
)
from nanovllm.layers.rotary_embedding import RotaryEmbedding
from nanovllm.models.model_config import ModelConfig


class Qwen3Attention(nn.Module):
    def __init__(self, config: ModelConfig, rotary: RotaryEmbedding, shard: Shard):
        super().__init__()
        self.qkv_proj = QKVParallelLinear(config.hidden_size, config.head_dim,
                                          config.num_attention_heads,
                                          config.num_key_value_heads, config.qkv_bias, shard)
        # This GPU's heads (all of them without tensor parallelism); KV heads may be
        # replicated rather than split, see QKVParallelLinear.
        self.num_heads = config.num_attention_heads // shard.size
        self.num_kv_heads = self.qkv_proj.num_local_kv_heads
        self.head_dim = config.head_dim
        self.o_proj = RowParallelLinear(config.num_attention_heads * config.head_dim,
                                        config.hidden_size, shard=shard)
        self.rotary_emb = rotary  # one table, shared by every layer
        # Qwen3 normalises every head's query and key before the rotation.
        self.q_norm = RMSNorm(config.head_dim, config.rms_norm_eps) if config.qk_norm else None
        self.k_norm = RMSNorm(config.head_dim, config.rms_norm_eps) if config.qk_norm else None
        self.attn = Attention(self.num_heads, self.num_kv_heads, self.head_dim,
                              normalised_queries=config.qk_norm)

    def forward(self, hidden: torch.Tensor, inputs: StepInputs) -> torch.Tensor:
        q_size, kv_size = self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        q, k, v = self.qkv_proj(hidden).split([q_size, kv_size, kv_size], dim=-1)
        q = q.view(-1, self.num_heads, self.head_dim)
        k = k.view(-1, self.num_kv_heads, self.head_dim)
        v = v.view(-1, self.num_kv_heads, self.head_dim)
        if q.is_cuda:  # the norms and the rotation as one kernel, in place in q and k
            norms = ((None, None, 0.0) if self.q_norm is None
                     else (self.q_norm.weight, self.k_norm.weight, self.q_norm.eps))
            qk_norm_rotary(inputs.positions, q, k, self.rotary_emb.cos, self.rotary_emb.sin,
                           *norms)
        else:
            if self.q_norm is not None:
                q, k = self.q_norm(q), self.k_norm(k)
            q, k = self.rotary_emb(inputs.positions, q, k)
        out = self.attn(q, k, v, inputs)
        return self.o_proj(out.flatten(1))


def silu_and_mul(gate_up: torch.Tensor) -> torch.Tensor:
    """The gate of a gated MLP: ``silu(gate) * up`` decides, feature by feature, how much of
    ``up`` passes through."""
    gate, up = gate_up.chunk(2, dim=-1)
    return F.silu(gate) * up


class Qwen3MLP(nn.Module):
    # Looked up on the instance, so that torch_compile.py can swap in a compiled version.
    act = staticmethod(silu_and_mul)

    def __init__(self, config: ModelConfig, shard: Shard):
        super().__init__()
        # gate and up side by side: one matrix product computes both
        self.gate_up_proj = MergedColumnParallelLinear(config.hidden_size,
                                                       [config.intermediate_size] * 2, shard=shard)
        self.down_proj = RowParallelLinear(config.intermediate_size, config.hidden_size,
                                           shard=shard)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act(self.gate_up_proj(x)))


class Qwen3DecoderLayer(nn.Module):
    def __init__(self, config: ModelConfig, rotary: RotaryEmbedding, shard: Shard):
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = Qwen3Attention(config, rotary, shard)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = Qwen3MLP(config, shard)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor | None, inputs: StepInputs):
        if residual is None:  # first layer: the embeddings are the residual stream
            hidden, residual = self.input_layernorm(hidden), hidden
        else:
            hidden, residual = self.input_layernorm(hidden, residual)
        hidden = self.self_attn(hidden, inputs)
        hidden, residual = self.post_attention_layernorm(hidden, residual)
        return self.mlp(hidden), residual


class Qwen3Model(nn.Module):
    def __init__(self, config: ModelConfig, shard: Shard):
        super().__init__()
        self.embed_tokens = VocabParallelEmbedding(config.vocab_size, config.hidden_size, shard)
        rotary = RotaryEmbedding(config.head_dim, config.max_position_embeddings,
                                 config.rope_theta)
        self.layers = nn.ModuleList(Qwen3DecoderLayer(config, rotary, shard)
                                    for _ in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, inputs: StepInputs) -> torch.Tensor:
        hidden, residual = self.embed_tokens(inputs.input_ids), None
        for layer in self.layers:
            hidden, residual = layer(hidden, residual, inputs)
        hidden, _ = self.norm(hidden, residual)
        return hidden


class Qwen3ForCausalLM(nn.Module):
    # Checkpoint tensor name part -> (our merged parameter's name part, shard in it).
    packed_modules_mapping = {
        "q_proj": ("qkv_proj", "q"),
        "k_proj": ("qkv_proj", "k"),
        "v_proj": ("qkv_proj", "v"),
        "gate_proj": ("gate_up_proj", 0),
        "up_proj": ("gate_up_proj", 1),
    }

    def __init__(self, config: ModelConfig, shard: Shard = WHOLE):
        """``shard``: which part of a tensor-parallel split this process builds."""
        super().__init__()
        self.config = config
        self.model = Qwen3Model(config, shard)
        self.lm_head = ParallelLMHead(config.vocab_size, config.hidden_size, shard)
        if config.tie_word_embeddings:  # one matrix both embeds tokens and scores them
            self.lm_head.weight = self.model.embed_tokens.weight

    def forward(self, inputs: StepInputs) -> torch.Tensor:
        """Hidden states of every token of the step: [tokens, hidden]."""
        return self.model(inputs)

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(hidden)
