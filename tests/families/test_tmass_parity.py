"""Parity of the ``tmass`` head with T-MASS's official code.

Read from github.com/Jiamian-Wang/T-MASS-text-video-retrieval at commit
8bda3f970ee63986b55a29c410ee17553b3a0220: ``modules/stochastic_module.py`` (``LinearCosRadius``,
``StochasticText``), ``model/clip_stochastic.py`` (``CLIPStochastic.forward``), ``modules/loss.py``
(``CLIPLoss``), ``modules/metrics.py`` (``sim_matrix_training``) and ``trainer/trainer_stochastic.py``
(``_train_epoch``: the support-text loss; ``_valid_epoch_step``: the best of ``stochasic_trials``
samples per video). The ``Ref*`` code below re-implements them in their own layout (written here,
not copied); X-Pool's pooling is the independent ``RefXPool`` of test_heads_parity.py. The same
random weights go into both, the same ε is injected (the official code draws it inside
``StochasticText.forward``), and scores, losses and gradients are compared in float64.

Where the official code has no counterpart: a padded frame (the official loader always samples
``num_frames`` frames) is left out of the pooling (X-Pool on the valid frames) and its cosine in the
radius profile is 0 (the official profile padded with zeros); the reference does both explicitly.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from test_heads_parity import RefXPool, perturb
from torch import nn

from vtrbench.factory import create_head, create_loss

D, T = 32, 6
RTOL = 1e-10


class RefLinearCosRadius(nn.Module):
    """stochastic_module.LinearCosRadius: linear_proj (num_frames -> embed_dim), eye-initialised."""

    def __init__(self, num_frames: int, embed_dim: int) -> None:
        super().__init__()
        self.num_frames = num_frames
        self.linear_proj = nn.Linear(num_frames, embed_dim)
        nn.init.eye_(self.linear_proj.weight)
        self.linear_proj.bias.data.fill_(0.0)

    def forward(self, text_embeds, video_embeds, n_valid):
        """text (n, D), video (n, F, D) paired row by row -> (n, embed_dim). ``n_valid``: frames per
        row; the padded ones are cut before normalising and their cosine is 0 (see module doc)."""
        text_embeds = text_embeds / text_embeds.norm(dim=-1, keepdim=True)
        rows = []
        for i in range(text_embeds.shape[0]):
            v = video_embeds[i, : n_valid[i]]
            v = v / v.norm(dim=-1, keepdim=True)
            t = text_embeds[i].unsqueeze(0).repeat(v.shape[0], 1)  # the official repeat over frames
            sims = torch.matmul(t, v.t()).mean(dim=0)
            rows.append(F.pad(sims, (0, self.num_frames - sims.shape[0])))
        return self.linear_proj(torch.stack(rows))


class RefStochasticText(nn.Module):
    def __init__(self, num_frames: int, embed_dim: int) -> None:
        super().__init__()
        self.std_branch = RefLinearCosRadius(num_frames, embed_dim)

    def forward(self, text_features, video_features, n_valid, sigma):
        text_mean = text_features
        log_var = self.std_branch(text_features, video_features, n_valid)
        text_std = torch.exp(log_var)
        return text_mean + sigma * text_std, text_mean, log_var


def ref_pool(xpool: RefXPool, text, frames, n_valid):
    """X-Pool's pooled videos (num_vids, num_texts, D), each video on its valid frames."""
    return torch.stack([xpool.pool(text, frames[j : j + 1, : n_valid[j]])[0] for j in range(frames.shape[0])])


def sim_matrix_training(text_embeds, vid_embeds_pooled):
    text_embeds = text_embeds / text_embeds.norm(dim=-1, keepdim=True)
    vid_embeds_pooled = vid_embeds_pooled / vid_embeds_pooled.norm(dim=-1, keepdim=True)
    return torch.bmm(text_embeds.unsqueeze(1), vid_embeds_pooled.permute(1, 2, 0)).squeeze(1)


def clip_loss(sims, logit_scale):
    logits = sims * logit_scale.exp()
    t2v = -torch.diag(F.log_softmax(logits, dim=1)).mean()
    v2t = -torch.diag(F.log_softmax(logits, dim=0)).mean()
    return (t2v + v2t) / 2.0


def ref_train_step(xpool, stochastic, logit_scale, text, frames, n_valid, sigma, support_loss_weight):
    """trainer_stochastic._train_epoch's loss (text i paired with video i)."""
    pooled = ref_pool(xpool, text, frames, n_valid)
    text_stochastic, _, log_var = stochastic(text, frames, n_valid, sigma)
    output = sim_matrix_training(text_stochastic, pooled)
    loss = clip_loss(output, logit_scale)
    pointer = pooled.mean(dim=1).squeeze() - text
    text_support = pointer / pointer.norm(dim=-1, keepdim=True) * torch.exp(log_var) + text
    output_support = sim_matrix_training(text_support, pooled)
    loss_support = clip_loss(output_support, logit_scale)
    return loss + loss_support * support_loss_weight, output, output_support


def ref_inference(xpool, stochastic, text, frames, n_valid, sigma_per_trial):
    """trainer_stochastic._valid_epoch_step: per video, the trial with the highest cosine with the
    pooled video is selected for each text; sims[t, v] = cos(selected, pooled)."""
    pooled = ref_pool(xpool, text, frames, n_valid)  # (num_vids, num_texts, D)
    sims = torch.empty(text.shape[0], frames.shape[0], dtype=text.dtype)
    for idx_vid in range(frames.shape[0]):
        repeat = frames[idx_vid : idx_vid + 1].tile((text.shape[0], 1, 1))
        valid = [n_valid[idx_vid]] * text.shape[0]
        trials = [stochastic(text, repeat, valid, sigma)[0] for sigma in sigma_per_trial]
        arr = torch.stack(trials, dim=0)
        arr = arr / arr.norm(dim=-1, keepdim=True)
        single = pooled[idx_vid] / pooled[idx_vid].norm(dim=-1, keepdim=True)
        sim_select = torch.sum(torch.mul(arr, single), dim=-1)
        max_indices = torch.argmax(sim_select, dim=0)
        selected = torch.stack([arr[max_indices[i], i, :] for i in range(arr.shape[1])])
        sims[:, idx_vid] = (selected * single).sum(-1)
    return sims


def inputs(seed: int, n_frames: list[int], text_video: list[int]):
    """Captions (one row per caption, several per video) built near their video, frames with ragged
    prefix masks; raw CLIP-like scales (norm ~ 10) so that ε is neither negligible nor dominant."""
    g = torch.Generator().manual_seed(seed)
    nv, qv = len(n_frames), torch.tensor(text_video)
    mask = torch.arange(T)[None] < torch.tensor(n_frames)[:, None]
    frames = torch.randn(nv, T, D, generator=g, dtype=torch.float64) * 2 * mask[..., None]
    text = frames[qv].sum(1) / mask[qv].sum(1, keepdim=True) + torch.randn(len(qv), D, generator=g).double()
    tokens = text[:, None, :].repeat(1, 2, 1)
    tbatch = {
        "tokens": tokens,
        "token_mask": torch.ones(len(qv), 2, dtype=torch.bool),
        "eot": torch.ones(len(qv)).long(),
    }
    return text, tbatch, frames, mask


def pair(seed: int, prior: str = "uniform01", perturbed: bool = True):
    """A reference and a tmass head with the same weights (float64)."""
    torch.manual_seed(seed)
    xpool = RefXPool(D, 2).double().eval()
    stochastic = RefStochasticText(T, D).double()
    head = create_head("tmass", embed_dim=D, heads=2, frames=T, prior=prior).double()
    assert torch.equal(head.radius.linear.weight, stochastic.std_branch.linear_proj.weight.float().double())
    if perturbed:
        perturb(xpool, seed + 1)
        perturb(stochastic, seed + 2)
    head.load_state_dict(xpool.state_dict(), strict=False)
    with torch.no_grad():
        head.radius.linear.weight.copy_(stochastic.std_branch.linear_proj.weight)
        head.radius.linear.bias.copy_(stochastic.std_branch.linear_proj.bias)
        head.log_logit_scale.fill_(math.log(30.0))
    logit_scale = torch.tensor(30.0, dtype=torch.float64).log().requires_grad_()
    return xpool, stochastic, head, logit_scale


def close(got, want, what, scale=None):
    """max |got - want| <= RTOL x the largest |want| (or ``scale``: a gradient that is exactly 0 in
    theory, e.g. of the key bias, which a softmax ignores, is judged against the others)."""
    err = ((got - want).abs().max() / (want.abs().max() if scale is None else scale)).item()
    assert err <= RTOL, f"{what}: relative error {err:.2e}"


CASES = [
    ([6, 6, 6, 6, 6], [0, 1, 2, 3, 4], "uniform01", False),
    ([6, 2, 4, 1, 5], [0, 0, 1, 2, 2, 3, 4], "uniform01", True),
    ([3, 6, 1, 4], [1, 0, 1, 3, 2, 2], "normal", True),
]


@pytest.mark.parametrize(("n_frames", "text_video", "prior", "perturbed"), CASES)
def test_training_logits_losses_and_gradients_match_the_official_trainer(
    n_frames, text_video, prior, perturbed
):
    xpool, stochastic, head, logit_scale = pair(3, prior, perturbed)
    text, tbatch, frames, mask = inputs(4, n_frames, text_video)
    qv = torch.tensor(text_video)
    frames_b, n_valid = frames[qv], [n_frames[j] for j in text_video]  # the batch: caption i, video i
    g = torch.Generator().manual_seed(5)
    sigma = (
        torch.rand(len(qv), D, generator=g).double()
        if prior == "uniform01"
        else torch.randn(len(qv), D, generator=g).double()
    )
    head.draw = lambda shape, generator=None: sigma.clone()  # inject ε
    head.train()
    logits, aux = head.training_logits(tbatch, {"frames": frames_b, "frame_mask": mask[qv]})
    loss_fn = create_loss("infonce")
    loss = loss_fn(logits) + head.aux_weight * loss_fn(aux[0])  # the trainer's sum (runs/train.py)
    loss.backward()
    want_loss, want_out, want_support = ref_train_step(
        xpool, stochastic, logit_scale, text, frames_b, n_valid, sigma, 0.8
    )
    want_loss.backward()
    close(logits, 30.0 * want_out, "main logits")
    close(aux[0], 30.0 * want_support, "support logits")
    close(loss, want_loss, "loss")
    ref_params = dict(xpool.named_parameters()) | {
        "radius.linear.weight": stochastic.std_branch.linear_proj.weight,
        "radius.linear.bias": stochastic.std_branch.linear_proj.bias,
    }
    wants = {
        name: logit_scale.grad if name == "log_logit_scale" else ref_params[name].grad
        for name, _ in head.named_parameters()
        if not name.startswith("text_adapter")
    }
    scale = max(w.abs().max() for w in wants.values())
    for name, p in head.named_parameters():
        if name.startswith("text_adapter"):
            continue  # vtrbench's adapter (identity here) has no official counterpart
        close(p.grad, wants[name], f"gradient of {name}", scale)
    assert wants["radius.linear.weight"].abs().max() > 1e-3 * scale  # the radius is trained


@pytest.mark.parametrize(("n_frames", "text_video", "prior", "perturbed"), CASES)
def test_inference_is_the_best_of_the_samples_as_the_official_evaluation(
    n_frames, text_video, prior, perturbed
):
    xpool, stochastic, head, _ = pair(6, prior, perturbed)
    text, tbatch, frames, mask = inputs(7, n_frames, text_video)
    head.eval()
    with torch.no_grad():
        ts = head.text_state(tbatch)
        vs = head.video_state({"frames": frames, "frame_mask": mask})
        noise = ts["noise"]
        assert noise.shape == (len(text_video), head.samples, D)
        got = head.score_states(ts, vs)
        # the official code draws ε per (video, trial) for all texts; vtrbench's per caption, the
        # same for every video: inject it as each video's trial k
        trials = [noise[:, k, :] for k in range(head.samples)]
        want = ref_inference(xpool, stochastic, text, frames, n_frames, trials)
    close(got, want, "inference scores")
    # not degenerate: the samples matter (the best differs from the first) and scores are not flat
    first = ref_inference(xpool, stochastic, text, frames, n_frames, trials[:1])
    assert (want - first).abs().max() > 1e-3 and want.std() > 1e-2
