"""Drift episodes: a run of ERROR partitions of one check is one event for a person, not many.

A shift of real telemetry lasts days, so a check judged partition by partition says ERROR day
after day; paging on each of them teaches the on-call person to mute the check. An *episode*
groups consecutive ERROR partitions, bridging up to ``bridge`` quiet partitions between two of
them (the same gap the persistence rule tolerates), so the alert sensor pages once when it
starts and sends one recovery when it ends. A new baseline ends the open episode: the shift is
now judged against a reference that may hold it (absorption), and whatever is still wrong
against the new reference is a new episode.

Pure and replayable: the state of partition *n* is a function of the state of partition *n - 1*
and the verdict of *n*, so a Dagster check keeps it in its own result metadata and a benchmark
folds a file's verdicts with the same function.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

EpisodeStatus = Literal["none", "started", "continues", "quiet", "ended"]
_STATUSES = ("none", "started", "continues", "quiet", "ended")


@dataclass(frozen=True)
class EpisodeState:
    """Where one check stands after one partition.

    ``status``: ``started`` (this ERROR opens an episode; ``ended_id`` may name one that a new
    baseline closed just before), ``continues`` (an ERROR inside an open
    episode), ``quiet`` (no ERROR, but the open episode may still go on: fewer than ``bridge``
    quiet partitions so far), ``ended`` (no ERROR and the episode ``ended_id`` is over: a person
    hears a recovery) or ``none``. ``episode_id`` names the open episode (empty when none);
    ``length`` counts its ERROR partitions; ``quiet`` the non-ERROR ones since its last ERROR.
    """

    status: EpisodeStatus = "none"
    episode_id: str = ""
    start: str = ""
    length: int = 0
    quiet: int = 0
    last_error: str = ""
    baseline_sha256: str = ""
    ended_id: str = ""

    @property
    def open(self) -> bool:
        return bool(self.episode_id)

    def to_metadata(self) -> dict[str, Any]:
        """Flat, JSON-able: what a check stores so the next partition can continue from it."""
        return {
            "episode_status": self.status,
            "episode_id": self.episode_id,
            "episode_start": self.start,
            "episode_length": self.length,
            "episode_quiet": self.quiet,
            "episode_last_error": self.last_error,
            "episode_baseline_sha256": self.baseline_sha256,
            "episode_ended": self.ended_id,
        }

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> EpisodeState | None:
        """The state a check stored; None for a result written before episodes existed."""
        status = metadata.get("episode_status")
        if status not in _STATUSES:
            return None
        return cls(
            status=status,
            episode_id=str(metadata.get("episode_id", "") or ""),
            start=str(metadata.get("episode_start", "") or ""),
            length=int(metadata.get("episode_length", 0) or 0),
            quiet=int(metadata.get("episode_quiet", 0) or 0),
            last_error=str(metadata.get("episode_last_error", "") or ""),
            baseline_sha256=str(metadata.get("episode_baseline_sha256", "") or ""),
            ended_id=str(metadata.get("episode_ended", "") or ""),
        )


def episode_id(start: str, baseline_sha256: str) -> str:
    """Readable and unique per check: the first ERROR partition and the baseline it was against."""
    return f"{start}@{baseline_sha256[:8]}" if baseline_sha256 else start


def next_episode(
    previous: EpisodeState | None,
    *,
    partition: str,
    verdict: str,
    baseline_sha256: str = "",
    bridge: int = 1,
) -> EpisodeState:
    """The state after ``partition`` was judged ``verdict``, given the previous partition's state.

    Only ERROR opens or extends an episode; WARN and OK are quiet partitions. A changed
    ``baseline_sha256`` closes the open episode first (a re-baselined check starts afresh).
    """
    if bridge < 0:
        raise ValueError("episodes need bridge >= 0")
    state = previous or EpisodeState()
    absorbed = ""
    if state.open and state.baseline_sha256 != baseline_sha256:
        # A new baseline: the old episode ends with the old reference (a recovery is owed),
        # whatever this partition says against the new one.
        absorbed, state = state.episode_id, EpisodeState()
    if verdict == "error":
        if state.open:
            return EpisodeState(
                status="continues",
                episode_id=state.episode_id,
                start=state.start,
                length=state.length + 1,
                quiet=0,
                last_error=partition,
                baseline_sha256=baseline_sha256,
            )
        return EpisodeState(
            status="started",
            episode_id=episode_id(partition, baseline_sha256),
            start=partition,
            length=1,
            quiet=0,
            last_error=partition,
            baseline_sha256=baseline_sha256,
            ended_id=absorbed,
        )
    if absorbed:
        return EpisodeState(status="ended", baseline_sha256=baseline_sha256, ended_id=absorbed)
    if state.open and state.quiet < bridge:
        return EpisodeState(
            status="quiet",
            episode_id=state.episode_id,
            start=state.start,
            length=state.length,
            quiet=state.quiet + 1,
            last_error=state.last_error,
            baseline_sha256=baseline_sha256,
        )
    if state.open:
        return EpisodeState(
            status="ended", baseline_sha256=baseline_sha256, ended_id=state.episode_id
        )
    return EpisodeState(status="none", baseline_sha256=baseline_sha256)


def fold_episodes(
    verdicts: Iterable[tuple[str, str]], *, baseline_sha256: str = "", bridge: int = 1
) -> list[EpisodeState]:
    """Each partition's state for ``(partition, verdict)`` pairs in partition order."""
    states: list[EpisodeState] = []
    state: EpisodeState | None = None
    for partition, verdict in verdicts:
        state = next_episode(
            state,
            partition=partition,
            verdict=verdict,
            baseline_sha256=baseline_sha256,
            bridge=bridge,
        )
        states.append(state)
    return states
