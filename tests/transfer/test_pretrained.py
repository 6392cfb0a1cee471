"""The packaged pretrained backbones: all-MiniLM-L6-v2 and EfficientNet-Lite0 (weights on disk)."""

from __future__ import annotations

import torch

from honing import transfer


def test_minilm_probe_embeds_like_mean_pooled_hidden_states_and_lora_is_small():
    import transformers
    model, callbacks = transfer.create("minilm", 2, strategy="probe")
    assert callbacks == [] and model.num_blocks == 7 and model.backbone.feature_dim == 384
    assert model.backbone.blocks[0] == ["embeddings"] and model.backbone.blocks[-1] == ["encoder.layer.5"]
    assert model.backbone.kind == "text" and not model.backbone.training  # frozen: eval mode

    folder = str(transfer.minilm_path())
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    batch = tokenizer(["a short one", "a somewhat longer sentence about transfer learning"],
                      padding="max_length", max_length=24, return_tensors="pt")
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert (mask[0] == 0).sum() > (mask[1] == 0).sum() > 0  # padding columns to trim
    reference = transformers.AutoModel.from_pretrained(folder).eval()
    with torch.no_grad():
        hidden = reference(input_ids=ids, attention_mask=mask).last_hidden_state  # (N, L, 384)
        m = mask.unsqueeze(-1).float()
        expected = (hidden * m).sum(1) / m.sum(1)
        got = model.embed(ids)
        trimmed = model.embed(ids[:, : int(mask.sum(1).max())])
        logits = model(ids)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(trimmed, got, atol=1e-5, rtol=0)
    assert logits.shape == (2, 2)

    lora_model, _ = transfer.create("minilm", 2, strategy="lora")
    adapted = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n, _ in lora_model.named_parameters() if "lora_" in n}
    assert adapted == {"query", "value"}
    total = sum(p.numel() for p in lora_model.parameters())
    assert 0 < lora_model.trainable_parameters() < 0.05 * total


def test_efficientnet_lite0_probe_on_grey_images():
    model, _ = transfer.create("efficientnet-lite0", 10, strategy="probe", image_size=64)
    assert model.num_blocks == 18 and model.backbone.feature_dim == 1280
    out = model(torch.rand(2, 1, 28, 28))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    assert model.trainable_parameters() == 1280 * 10 + 10
