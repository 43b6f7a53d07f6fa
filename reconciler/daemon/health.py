"""What `GET /healthz` says: whether the daemon does its job, and if not, why."""

from __future__ import annotations

from dataclasses import dataclass

from reconciler import __version__


@dataclass
class Health:
    """What /healthz answers: unhealthy (503) while any of `reasons()` holds, each
    condition cleared by the pass that no longer finds it."""

    libvirt: str = "not connected yet"
    source: str = "not fetched yet"
    last_pass: float = 0.0
    last_error: str = ""
    revision: str = ""
    # Why the last pass did not finish ("" when it did).
    pass_failure: str = ""
    # Why the last status report could not be written or pushed.
    status_failure: str = ""
    # Why the last pass deleted nothing (engine.reconcile.deletions_held_back).
    held_back: str = ""
    # Why the branch head is not applied (repository.verify): the first bad commit.
    unverified: str = ""

    def reasons(self) -> list[str]:
        reasons = [] if self.libvirt == "ok" else [f"libvirt: {self.libvirt}"]
        if self.pass_failure:
            reasons.append(f"pass failed: {self.pass_failure}")
        if self.status_failure:
            reasons.append(f"status not pushed: {self.status_failure}")
        if self.unverified:
            reasons.append(f"head not applied: {self.unverified}")
        if self.held_back:
            reasons.append(f"deletions held back: {self.held_back}")
        return reasons

    def report(self) -> tuple[bool, dict[str, object]]:
        reasons = self.reasons()
        healthy = not reasons
        return healthy, {
            "healthy": healthy,
            "reasons": reasons,
            "libvirt": self.libvirt,
            "source": self.source,
            "revision": self.revision,
            "lastPass": self.last_pass,
            "lastError": self.last_error,
            "version": __version__,
        }
