"""How a lane decodes several chats' next tokens: all in one batch, or one after another in turn.

Either way every chat gets one token a step and the same logits bit for bit (engines.lane), so the
choice is only about speed, and it depends on the machine. Where decoding is bound by reading the
weights (several cores, a bigger model), one batch reads them once for all the rows. On 2 cores
with the embedded 270M model it is bound by arithmetic: a row costs the same in a batch as alone,
and llama.cpp's batched kernels (llamafile's tinyBLAS, made for prompts) cost more per row than
its one-row kernels: per token 25 ms in a batch of 2, 18 ms in one of 7, against 13 ms alone (one
thread, measured). So each way's time per token is measured, the faster one is used, and every
PERIOD steps the other one is tried for PROBE steps, so a change in the machine's load is noticed.
"""

from __future__ import annotations

from assistant.engines.threads import MovingCosts

BATCH, TURNS, MEASURED = "batch", "turns", "measured"  # MEASURED: whichever is faster now
PERIOD = 64  # steps between probes of the other way
PROBE = 2  # steps decoded the other way per probe


class StepModeChooser(MovingCosts):
    """Shared by an engine's lanes: the machine is the same for all of them. The ways are BATCH
    and TURNS, recorded as a step's time per chat."""

    def choose(self, step: int) -> str:
        """The way to decode step `step` of a lane with several chats."""
        known = self.costs()
        for mode in (BATCH, TURNS):  # each way is measured before either is preferred
            if mode not in known:
                return mode
        best = min(known, key=known.get)
        return (TURNS if best == BATCH else BATCH) if step % PERIOD >= PERIOD - PROBE else best

