"""Parity of the ``ucofia`` head with UCoFiA's own code.

``RefUCoFiA`` re-implements, in the authors' layout and with their parameter names, the forward of
``train/modules/modeling_ucofia.py`` (``UCoFiA._loose_similarity`` with ``sim_header=seqTransf``,
``loose_type``) and ``train/modules/differential_topk.py`` (``VisualTokenSelection``,
``PredictorLG``, ``PerturbedTopK`` with its custom backward) and the loss (``CrossEn`` both ways),
from repository ``Ziyang412/UCoFiA`` at commit 2a0a91d4ccb18c2d793e24c9b214594a67fdc104 (written
here, not copied). Its inputs are what the authors' CLIP returns: the EOT feature, every token's
feature, the frames and per frame ``[CLS, patches]`` flattened frame-major. The seqTransf body
(CLIP4Clip's temporal transformer, shared with the ``seqtransf`` head) is not UCoFiA's code: the
reference runs a copy of the head's encoder in its place, so its gradients are compared too.

vtrbench's one deliberate difference, padding (the authors' inputs have none it could see), is the
lines marked ``# vtrbench: padding``: with full masks they change nothing, and the full-mask cases
are exact parity; the ragged cases check that padding is masked the same way in both. Weights are
perturbed away from the identity start and copied; float64, rtol 1e-9.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vtrbench.factory import create_head, create_loss
from vtrbench.heads import ucofia

NT, NV, L, T, P, D, K = 7, 4, 6, 5, 7, 16, 3


class RefPerturbedTopKFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, k, num_samples, sigma):
        b, d = x.shape
        noise = torch.normal(mean=0.0, std=1.0, size=(b, num_samples, d)).to(dtype=x.dtype, device=x.device)
        perturbed_x = x.unsqueeze(1) + noise * sigma
        indices = torch.topk(perturbed_x, k=k, dim=-1, sorted=False).indices
        indices = torch.sort(indices, dim=-1).values
        perturbed_output = F.one_hot(indices, num_classes=d).to(x.dtype)  # float() in float32 runs
        ctx.num_samples, ctx.sigma = num_samples, sigma
        ctx.perturbed_output, ctx.noise = perturbed_output, noise
        return perturbed_output.mean(dim=1)

    @staticmethod
    def backward(ctx, grad_output):
        expected = (
            torch.einsum("bnkd,bnd->bkd", ctx.perturbed_output, ctx.noise) / ctx.num_samples / ctx.sigma
        )
        return torch.einsum("bkd,bkd->bd", grad_output, expected), None, None, None


class RefPredictorLG(nn.Module):
    def __init__(self, embed_dim):
        super().__init__()
        self.in_conv = nn.Sequential(
            nn.LayerNorm(embed_dim), nn.Linear(embed_dim, embed_dim // 2, bias=False), nn.GELU()
        )
        self.out_conv = nn.Sequential(
            nn.Linear(embed_dim, embed_dim // 2, bias=False),
            nn.GELU(),
            nn.Linear(embed_dim // 2, 1, bias=False),
            nn.Tanh(),
        )

    def forward(self, x):
        x = self.in_conv(x)
        b, n, c = x.size()
        x = torch.cat([x, x[:, :1, :].expand(b, n, c)], dim=-1)
        return self.out_conv(x)


class RefVisualTokenSelection(nn.Module):
    def __init__(self, max_frames, embed_dim, topk, num_samples, sigma):
        super().__init__()
        self.max_frames, self.topk, self.num_samples, self.sigma = max_frames, topk, num_samples, sigma
        self.score_predictor = RefPredictorLG(embed_dim)

    def forward(self, x):
        b, length, d = x.shape
        n = length // self.max_frames
        x = x.reshape(b, -1, n, d).reshape(-1, n, d)
        pred_score = self.score_predictor(x).squeeze()
        spatial = pred_score[:, 1:]
        indicator = RefPerturbedTopKFunction.apply(spatial, self.topk, self.num_samples, self.sigma)
        selected = torch.einsum("bkl,bld->bkd", indicator, x[:, 1:, :])
        out = torch.cat((x[:, :1, :], selected), dim=1)
        return out.reshape(b, self.max_frames, -1, d).reshape(b, -1, d)


def masked(x, mask):  # vtrbench: padding (a no-op with full masks)
    return x.masked_fill(~mask, torch.finfo(x.dtype).min)


class RefUCoFiA(nn.Module):
    def __init__(self, embed_dim, num_words, num_frames, topk, num_samples, sigma, temporal, tau=1e-2):
        super().__init__()
        self.tau = tau  # UCoFiA writes 1e-2 in every softmax
        self.global_mat_weight = nn.Parameter(torch.eye(embed_dim))
        self.global_mat_weight_1 = nn.Parameter(torch.eye(embed_dim))
        self.frame_logit_weight = nn.Parameter(torch.eye(num_frames))
        self.local_mat_weight = nn.Parameter(torch.eye(embed_dim))
        self.local_mat_weight1 = nn.Parameter(torch.eye(embed_dim))
        self.word_mat_weight = nn.Parameter(torch.eye(num_words))
        self.word_mat_weight2 = nn.Parameter(torch.eye(num_words))
        num_pixel = 1 + topk
        self.pixel_mat_weight = nn.Parameter(torch.eye(num_frames * num_pixel))
        self.pixel_mat_weight2 = nn.Parameter(torch.eye(num_frames * num_pixel))
        self.visual_token_selector = RefVisualTokenSelection(num_frames, embed_dim, topk, num_samples, sigma)
        self.transformerClip = temporal  # stands for CLIP4Clip's seqTransf (frame positions + layers)
        self.num_pixel = num_pixel

    def forward(
        self,
        sequence_output,
        seq_features,
        visual_output,
        visual_pixel,
        video_mask,
        attention_mask,
        scale,
        levels=False,
    ):
        tau = self.tau
        visual_pixel_output = self.visual_token_selector(visual_pixel)
        visual_output_original = visual_output
        visual_output = self.transformerClip(visual_output, video_mask)  # + original inside, as seqTransf
        video_mask_f = video_mask.float()
        video_output = visual_output / visual_output.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        video_output = (video_output * video_mask_f[..., None]).sum(1) / video_mask_f.sum(1, keepdim=True)
        video_output = video_output / video_output.norm(dim=-1, keepdim=True)
        norm = visual_output_original.norm(dim=-1, keepdim=True).clamp_min(1e-12)  # vtrbench: padding
        frame_features = visual_output_original / norm
        sentence_output = sequence_output.squeeze(1)
        sentence_output = sentence_output / sentence_output.norm(dim=-1, keepdim=True)
        word_features = seq_features / seq_features.norm(dim=-1, keepdim=True).clamp_min(1e-12)

        video_sentence_logits = scale * torch.matmul(
            torch.matmul(sentence_output, self.global_mat_weight),
            torch.matmul(video_output, self.global_mat_weight_1).t(),
        )
        sf = torch.matmul(sentence_output, frame_features.permute(0, 2, 1))  # (Bv, Bt, T)
        fmask = video_mask[:, None, :]
        first = torch.softmax(masked(sf / tau, fmask), dim=-1)
        second = torch.softmax(masked(torch.matmul(first, self.frame_logit_weight) / tau, fmask), dim=-1)
        sentence_frame_logits = scale * torch.sum(sf.masked_fill(~fmask, 0) * second, dim=-1).t()

        bs_video, num_pixels, dim_video = visual_pixel_output.shape
        bs_text, num_words, dim_text = word_features.shape
        fine = torch.matmul(
            torch.matmul(word_features.view(-1, dim_text), self.local_mat_weight),
            torch.matmul(visual_pixel_output.view(-1, dim_video), self.local_mat_weight1).t(),
        ).view(bs_text, num_words, bs_video, num_pixels)
        pmask = video_mask.repeat_interleave(self.num_pixel, 1)  # vtrbench: padding
        wm = attention_mask[:, :, None, None]  # vtrbench: padding
        pm = pmask[None, None]  # vtrbench: padding
        fine = fine.masked_fill(~(wm & pm), 0)  # vtrbench: padding

        a = torch.softmax(masked(fine / tau, wm), dim=1).permute(0, 2, 3, 1)
        a = torch.softmax(masked(torch.matmul(a, self.word_mat_weight) / tau, wm.permute(0, 2, 3, 1)), dim=-1)
        word_level_logit = torch.sum(a.permute(0, 3, 1, 2) * fine, dim=1)  # (Bt, Bv, N)
        b = torch.softmax(masked(fine / tau, pm), dim=-1)
        b = torch.softmax(masked(torch.matmul(b, self.pixel_mat_weight) / tau, pm), dim=-1)
        frame_level_logit = torch.sum(b * fine, dim=-1)  # (Bt, L, Bv)

        pm2 = pmask[None]  # vtrbench: padding
        c = torch.softmax(masked(word_level_logit / tau, pm2), dim=-1)
        c = torch.softmax(masked(torch.matmul(c, self.pixel_mat_weight2) / tau, pm2), dim=-1)
        sent2frame_logits = torch.sum(c * word_level_logit.masked_fill(~pm2, 0), dim=-1)
        wm2 = attention_mask[:, :, None]  # vtrbench: padding
        e = torch.softmax(masked(frame_level_logit / tau, wm2), dim=1).permute(0, 2, 1)
        e = torch.softmax(masked(torch.matmul(e, self.word_mat_weight2) / tau, wm2.permute(0, 2, 1)), dim=-1)
        video2word_logits = torch.sum(e.permute(0, 2, 1) * frame_level_logit.masked_fill(~wm2, 0), dim=1)

        pixel_word_score = (sent2frame_logits + video2word_logits) / 2
        if levels:  # eval_t2v's _loose_similarity returns the three levels apart
            return video_sentence_logits, sentence_frame_logits, pixel_word_score
        return (video_sentence_logits + sentence_frame_logits + pixel_word_score) / 3


def ref_sinkhorn_knopp(log_sim_matrix, n_iters=4):
    """eval_t2v/main_ucofia.py's sinkhorn_knopp: (text bias, video bias)."""
    m = log_sim_matrix.max()
    sim_matrix = torch.exp(log_sim_matrix - m)
    b = 1 / sim_matrix.sum(0)
    for _ in range(n_iters):
        a = 1 / (sim_matrix @ b)
        b = 1 / (a @ sim_matrix)
    return F.log_softmax(a.log(), dim=0), F.log_softmax(b.log() - m, dim=0)


def ref_loss(sim_matrix):
    def cross_en(s):
        return -torch.diag(F.log_softmax(s, dim=-1)).mean()

    return (cross_en(sim_matrix) + cross_en(sim_matrix.T)) / 2


def copy_into_head(ref: RefUCoFiA, head) -> None:
    pairs = {
        "global_mat_weight": "sentence_proj",
        "global_mat_weight_1": "video_proj",
        "frame_logit_weight": "frame_isa",
        "local_mat_weight": "word_proj",
        "local_mat_weight1": "patch_proj",
        "word_mat_weight": "word_isa",
        "word_mat_weight2": "word_isa2",
        "pixel_mat_weight": "patch_isa",
        "pixel_mat_weight2": "patch_isa2",
        "visual_token_selector.score_predictor.in_conv.0.weight": "selector.norm.weight",
        "visual_token_selector.score_predictor.in_conv.0.bias": "selector.norm.bias",
        "visual_token_selector.score_predictor.in_conv.1.weight": "selector.proj.weight",
        "visual_token_selector.score_predictor.out_conv.0.weight": "selector.hidden.weight",
        "visual_token_selector.score_predictor.out_conv.2.weight": "selector.out.weight",
    }
    ref_params = dict(ref.named_parameters())
    head_params = dict(head.named_parameters())
    with torch.no_grad():
        for r, h in pairs.items():
            head_params[h].copy_(ref_params[r])
    return pairs


def inputs(seed: int, full: bool):
    g = torch.Generator().manual_seed(seed)
    n_words = torch.full((NT,), L) if full else torch.tensor([L, 3, 5, 2, 6, 4, L])
    n_frames = torch.full((NV,), T) if full else torch.tensor([T, 1, 4, 2])
    token_mask = torch.arange(L)[None] < n_words[:, None]
    frame_mask = torch.arange(T)[None] < n_frames[:, None]
    tokens = torch.randn(NT, L, D, generator=g, dtype=torch.float64) * token_mask[..., None]
    frames = torch.randn(NV, T, D, generator=g, dtype=torch.float64) * frame_mask[..., None]
    # small patch tokens: word-patch similarities / tau of order 1-10, so no softmax saturates
    patches = torch.randn(NV, T, P, D, generator=g, dtype=torch.float64) * 0.05
    patches = patches * frame_mask[..., None, None]
    text = {"tokens": tokens, "token_mask": token_mask, "eot": n_words - 1}
    video = {"frames": frames, "frame_mask": frame_mask, "patches": patches}
    return text, video


def build(seed: int, tau: float, samples: int = 20, sigma: float = 0.05, **options):
    torch.manual_seed(seed)
    head = create_head(
        "ucofia",
        **options,
        embed_dim=D,
        isa_words=L,
        isa_frames=T,
        topk=K,
        topk_samples=samples,
        topk_sigma=sigma,
        tau=tau,
        layers=1,
        heads=2,
        max_frames=T,
        logit_scale_init=20.0,
    )
    head = head.double()
    g = torch.Generator().manual_seed(seed + 1)
    ref = RefUCoFiA(D, L, T, K, samples, sigma, copy.deepcopy(head.temporal), tau=tau).double()
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if not name.startswith("transformerClip"):
                p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.1)
    pairs = copy_into_head(ref, head)
    return head, ref, pairs


def ref_scores(ref, head, text, video, rng_seed, levels=False):
    tokens, mask = text["tokens"], text["token_mask"]
    sequence = tokens[torch.arange(NT), text["eot"]][:, None]
    pixel = torch.cat([video["frames"][:, :, None], video["patches"]], 2).reshape(NV, -1, D)
    torch.manual_seed(rng_seed)
    return ref(
        sequence, tokens, video["frames"], pixel, video["frame_mask"], mask, head.logit_scale(), levels
    )


@pytest.mark.parametrize("full", [True, False])
@pytest.mark.parametrize("tau", [0.01, 0.1])
def test_ucofia_training_scores_and_gradients_match_the_authors_code(full, tau):
    head, ref, pairs = build(3, tau)
    head.train()
    ref.train()
    text, video = inputs(5, full)
    torch.manual_seed(11)
    got = head.logit_scale() * head.score(text, video)
    want = ref_scores(ref, head, text, video, 11)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    got.pow(2).sum().backward()
    want.pow(2).sum().backward()
    ref_p, head_p = dict(ref.named_parameters()), dict(head.named_parameters())
    for r, h in pairs.items():
        assert ref_p[r].grad is not None and ref_p[r].grad.abs().sum() > 0, r
        torch.testing.assert_close(head_p[h].grad, ref_p[r].grad, rtol=1e-8, atol=1e-10, msg=r)
    for (_rn, rp), (hn, hp) in zip(
        ref.transformerClip.named_parameters(), head.temporal.named_parameters(), strict=True
    ):
        torch.testing.assert_close(hp.grad, rp.grad, rtol=1e-8, atol=1e-10, msg=hn)


@pytest.mark.parametrize("full", [True, False])
def test_ucofia_loss_matches_crossen_both_ways(full):
    head, ref, pairs = build(4, 0.01)
    text, video = inputs(6, full)
    sq_text = {k: v[:NV] for k, v in text.items()}  # a training batch: one caption per video
    torch.manual_seed(2)
    logits, aux = head.training_logits(sq_text, video)
    assert aux == []
    got = create_loss("infonce")(logits)
    tokens, mask = sq_text["tokens"], sq_text["token_mask"]
    sequence = tokens[torch.arange(NV), sq_text["eot"]][:, None]
    pixel = torch.cat([video["frames"][:, :, None], video["patches"]], 2).reshape(NV, -1, D)
    torch.manual_seed(2)
    want = ref_loss(
        ref(sequence, tokens, video["frames"], pixel, video["frame_mask"], mask, head.logit_scale())
    )
    torch.testing.assert_close(got, want, rtol=1e-10, atol=0)
    got.backward()
    want.backward()
    ref_p, head_p = dict(ref.named_parameters()), dict(head.named_parameters())
    for r, h in pairs.items():
        torch.testing.assert_close(head_p[h].grad, ref_p[r].grad, rtol=1e-8, atol=1e-10, msg=r)


def test_evaluation_selection_is_the_noise_free_top_k():
    """In evaluation the head picks the plain top-k (a deliberate difference, docs/heads.md): the
    reference with sigma -> 0 (all samples agree) gives the same scores."""
    head, ref, _ = build(7, 0.01, samples=3, sigma=1e-12)
    head.eval()
    text, video = inputs(8, False)
    got = head.logit_scale() * head.score(text, video)
    want = ref_scores(ref, head, text, video, 0)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("full", [True, False])
@pytest.mark.parametrize("tau", [0.01, 1.0])
@pytest.mark.parametrize("videos_per_chunk", [1, 3, NV])
def test_evaluation_scores_match_the_authors_code_for_every_chunk(full, tau, videos_per_chunk, monkeypatch):
    """Without autograd the head builds the word-patch similarities a few videos at a time
    (``EVAL_CHUNK`` elements): one video per chunk, 3 then 1, and the whole block all give the
    authors' scores. At tau = 1 no softmax saturates, so a token or word left unmasked shows."""
    per_video = NT * L * T * (1 + K)  # captions x words (one caption is full) x tokens per video
    monkeypatch.setattr(ucofia, "EVAL_CHUNK", videos_per_chunk * per_video)
    head, ref, _ = build(7, tau, samples=3, sigma=1e-12)
    head.eval()
    text, video = inputs(8, full)
    with torch.no_grad():
        got = head.logit_scale() * head.score(text, video)
        want = ref_scores(ref, head, text, video, 0)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("iters", [4, 9])
def test_sinkhorn_bank_inference_matches_the_authors_eval(iters):
    """``sinkhorn=bank``: eval_t2v/main_ucofia.py's inference, each level's bank-caption x gallery
    logits through ``sinkhorn_knopp``, the video bias added per level, then the average."""
    head, ref, _ = build(9, 0.01, samples=3, sigma=1e-12, sinkhorn="bank", sinkhorn_iters=iters)
    head.eval()
    bank, video = inputs(10, False)
    test, _ = inputs(11, False)
    with torch.no_grad():
        state = head.gallery_state(head.video_state(video), head.text_state(bank), (2, 3))
        got = head.logit_scale() * head.score_states(head.text_state(test), state)
        plain = head.logit_scale() * head.score_states(head.text_state(test), head.video_state(video))
        biases = [ref_sinkhorn_knopp(m, iters)[1] for m in ref_scores(ref, head, bank, video, 0, levels=True)]
        levels = ref_scores(ref, head, test, video, 0, levels=True)
        want = sum(lv + b[None, :] for lv, b in zip(levels, biases, strict=True)) / 3
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    assert not torch.allclose(got, plain)  # the bias is not a no-op on these inputs
