"""Beam search with a minimum length and no repeated n-grams, as the official captioner decodes.

Scores are summed log-probabilities (no length penalty). A beam that emits the end token is set
aside as a finished hypothesis and its slot refilled from the others; search stops when every
beam has ended or after ``max_length`` tokens, and the best finished (or still running, at the
end) hypothesis wins. The end token is forbidden for the first ``min_length`` tokens, and a token
that would repeat an n-gram already generated is forbidden too.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

NextLogProbs = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def repeated_ngram_tokens(sequence: list[int], n: int) -> list[int]:
    """Tokens that, appended to ``sequence``, would complete an n-gram it already contains."""
    if n < 2 or len(sequence) < n:
        return []
    tail = sequence[len(sequence) - n + 1 :]
    return sorted({sequence[i + n - 1] for i in range(len(sequence) - n + 1) if sequence[i : i + n - 1] == tail})


@torch.no_grad()
def beam_search(
    next_log_probs: NextLogProbs,
    batch_size: int,
    prompt: list[int],
    *,
    end_id: int,
    num_beams: int = 3,
    min_length: int = 5,
    max_length: int = 20,
    no_repeat_ngram: int = 3,
) -> list[list[int]]:
    """Generated tokens (prompt and end token excluded) for each of ``batch_size`` inputs.

    ``next_log_probs(owner, tokens)`` gets, for ``B * num_beams`` rows, the input each row belongs
    to and its tokens so far (prompt included), and returns next-token log-probabilities ``[rows, V]``.
    """
    beams = num_beams
    owner = torch.arange(batch_size).repeat_interleave(beams)
    prompt_ids = torch.tensor(prompt, dtype=torch.long).expand(batch_size * beams, len(prompt))
    generated = torch.empty(batch_size * beams, 0, dtype=torch.long)
    scores = torch.full((batch_size, beams), float("-inf"))
    scores[:, 0] = 0.0  # all beams start identical: expand only one
    alive = torch.ones(batch_size, beams, dtype=torch.bool)
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch_size)]
    for step in range(max_length):
        log_probs = next_log_probs(owner, torch.cat([prompt_ids, generated], dim=1)).float().clone()
        vocab = log_probs.shape[1]
        if step < min_length:
            log_probs[:, end_id] = float("-inf")
        for row, sequence in enumerate(generated.tolist()):
            log_probs[row, repeated_ngram_tokens(sequence, no_repeat_ngram)] = float("-inf")
        total = (scores.view(-1, 1) + log_probs).masked_fill(~alive.view(-1, 1), float("-inf"))
        scores, flat = total.view(batch_size, beams * vocab).topk(beams, dim=1)
        parent = torch.arange(batch_size).view(-1, 1) * beams + torch.div(flat, vocab, rounding_mode="floor")
        token = flat % vocab
        generated = torch.cat([generated[parent.flatten()], token.view(-1, 1)], dim=1)
        ended = (token == end_id) & scores.isfinite()
        for b, k in ended.nonzero().tolist():
            finished[b].append((float(scores[b, k]), generated[b * beams + k, :-1].tolist()))
        alive = scores.isfinite() & ~ended
        if not alive.any():
            break
    for b, k in alive.nonzero().tolist():
        finished[b].append((float(scores[b, k]), generated[b * beams + k].tolist()))
    return [max(candidates, key=lambda c: c[0])[1] if candidates else [] for candidates in finished]
