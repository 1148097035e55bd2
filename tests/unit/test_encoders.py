"""The variant SAEs: construction from a baseline, encoding, registry, SAE Bench's own checks."""

import pytest
import sae_bench.custom_saes.base_sae as base_sae_module
import torch
from sae_bench.custom_saes.relu_sae import ReluSAE
from transformer_lens import HookedTransformer, HookedTransformerConfig

from workflow_scripts.saes import pursuit as P
from workflow_scripts.saes.architectures import REGISTRY, family_class
from workflow_scripts.saes.derive import derive_variant
from workflow_scripts.saes.encoders import IHTPSAE, MPSAE, MPSAENonNeg

D_IN, D_SAE = 16, 64


def relu_sae(seed=0, d_in=D_IN, d_sae=D_SAE, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    sae = ReluSAE(d_in, d_sae, "tiny-model", hook_layer=0, device="cpu", dtype=torch.float32)
    with torch.no_grad():
        sae.W_dec.copy_(torch.nn.functional.normalize(torch.randn(d_sae, d_in, generator=g), dim=1))
        sae.W_enc.copy_(torch.randn(d_in, d_sae, generator=g) * 0.3)
        sae.b_enc.copy_(torch.randn(d_sae, generator=g) * 0.1)
        sae.b_dec.copy_(torch.randn(d_in, generator=g) * 0.1)
    sae.cfg.architecture = "standard"
    return sae.to(dtype=dtype)


def test_registry_lists_the_three_families():
    families = {f: family_class(f) for f in ("ihtp", "mpsae", "mpsae_nonneg")}
    assert {f: (c, c.param_name, c.architecture) for f, c in families.items()} == {
        "ihtp": (IHTPSAE, "k", "ihtp"),
        "mpsae": (MPSAE, "s", "mpsae"),
        "mpsae_nonneg": (MPSAENonNeg, "s", "mpsae_nonneg"),
    }
    for family, cls in families.items():  # registered as architectures, by their own label
        assert REGISTRY[family].cls is cls and REGISTRY[family].positional == (cls.param_name,)


@pytest.mark.parametrize("family,param", [("ihtp", 3), ("mpsae", 7), ("mpsae_nonneg", 5)])
def test_derive_variant_copies_weights_and_config(family, param):
    base = relu_sae()
    base.cfg.hook_name = "blocks.0.hook_mlp_out"
    sae = derive_variant(family, param, base)
    assert isinstance(sae, family_class(family))
    assert sae.cfg.architecture == family
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        assert torch.equal(getattr(sae, name), getattr(base, name))
        assert getattr(sae, name).data_ptr() != getattr(base, name).data_ptr()  # a copy
    for field in ("model_name", "hook_layer", "hook_name", "d_in", "d_sae"):
        assert getattr(sae.cfg, field) == getattr(base.cfg, field)
    pname = family_class(family).param_name
    assert pname in dict(sae.named_buffers()) and int(sae.state_dict()[pname]) == param
    assert sae.W_dec.dtype == base.W_dec.dtype and sae.W_dec.device == base.W_dec.device


def test_derive_variant_rejects_unknown_family_and_bad_param():
    with pytest.raises(ValueError, match=r"ihtp.*mpsae.*mpsae_nonneg"):
        derive_variant("mp", 10, relu_sae())
    with pytest.raises(ValueError, match="positive"):
        derive_variant("ihtp", 0, relu_sae())


def test_encode_uses_the_decoder_on_centred_input():
    base = relu_sae(seed=1)
    x = torch.randn(3, 10, D_IN, generator=torch.Generator().manual_seed(2))
    xc = x - base.b_dec
    mp, nn_mp, ih = (
        derive_variant(f, p, base) for f, p in (("mpsae", 9), ("mpsae_nonneg", 9), ("ihtp", 2))
    )
    torch.testing.assert_close(
        mp.encode(x), P.matching_pursuit_reference(xc, base.W_dec, 9), atol=1e-4, rtol=0
    )
    z = nn_mp.encode(x)
    assert (z >= 0).all()
    torch.testing.assert_close(
        z, P.matching_pursuit_reference(xc, base.W_dec, 9, nonneg=True), atol=1e-4, rtol=0
    )
    zi = ih.encode(x)
    ref = P.ihtp_reference(xc, base.W_dec, 2)
    assert ((zi - ref) @ base.W_dec).norm() < 1e-4 * (ref @ base.W_dec).norm()
    # (N, d_in) input: MP per token, IHTP as one sequence
    torch.testing.assert_close(mp.encode(x.reshape(-1, D_IN)), mp.encode(x).reshape(-1, D_SAE))
    torch.testing.assert_close(ih.encode(x[0]), zi[0], atol=1e-5, rtol=1e-5)
    # forward = decode(encode)
    torch.testing.assert_close(mp(x), mp.encode(x) @ base.W_dec + base.b_dec)


def test_bf16_input_and_bf16_sae():
    base = relu_sae(seed=3)
    x = torch.randn(2, 8, D_IN, generator=torch.Generator().manual_seed(4))
    for fam, p in (("mpsae", 6), ("ihtp", 2)):
        sae = derive_variant(fam, p, base)
        assert sae.encode(x.bfloat16()).dtype == torch.float32  # like ReluSAE, promotes
        assert torch.isfinite(sae(x.bfloat16())).all()
        sae16 = derive_variant(fam, p, relu_sae(seed=3, dtype=torch.bfloat16))
        out = sae16(x.bfloat16())
        assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()


def test_gram_cache_follows_decoder_changes():
    sae = derive_variant("mpsae", 5, relu_sae(seed=5))
    g1 = sae.gram()
    assert sae.gram() is g1
    with torch.no_grad():
        sae.W_dec.mul_(-1)
    torch.testing.assert_close(sae.gram(), sae.W_dec @ sae.W_dec.T)
    assert sae.gram() is not g1


def tiny_model():
    cfg = HookedTransformerConfig(
        n_layers=2,
        d_model=D_IN,
        n_ctx=256,
        d_head=4,
        n_heads=4,
        d_vocab=128,
        act_fn="relu",
        d_mlp=32,
        seed=0,
    )
    return HookedTransformer(cfg)


class CharTokenModel:
    """Stands in for HookedTransformer.from_pretrained: tokenises by characters (no download),
    then runs the real tiny HookedTransformer."""

    def __init__(self, model):
        self.model = model

    def run_with_cache(self, text, prepend_bos=True, **kwargs):
        ids = [ord(c) % self.model.cfg.d_vocab for c in text]
        tokens = torch.tensor([([0] if prepend_bos else []) + ids])
        return self.model.run_with_cache(tokens, **kwargs)


@pytest.mark.filterwarnings("ignore:HookedTransformer is deprecated:DeprecationWarning")
@pytest.mark.parametrize("family,param", [("ihtp", 3), ("mpsae", 8), ("mpsae_nonneg", 8)])
def test_sae_bench_test_sae_on_tiny_local_model(family, param, monkeypatch):
    model = tiny_model()
    requested = []

    def fake_from_pretrained(name, device=None, **kwargs):
        requested.append(name)
        return CharTokenModel(model)

    monkeypatch.setattr(base_sae_module.HookedTransformer, "from_pretrained", fake_from_pretrained)
    sae = derive_variant(family, param, relu_sae(seed=6))
    sae.test_sae("tiny-model")  # SAE Bench's shape checks and encode/decode/forward agreement
    assert requested == ["tiny-model"]

    # the same on real cached activations, explicitly
    _, cache = CharTokenModel(model).run_with_cache(
        "hello tiny world", names_filter=[sae.cfg.hook_name]
    )
    acts = cache[sae.cfg.hook_name]  # (1, L, d_in)
    z = sae.encode(acts)
    assert z.shape == (*acts.shape[:2], D_SAE)
    assert sae.decode(z).shape == acts.shape
    torch.testing.assert_close(sae(acts.reshape(-1, D_IN)).reshape(acts.shape), sae.decode(z))
    assert sae.check_decoder_norms()
