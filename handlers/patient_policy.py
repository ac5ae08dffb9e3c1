"""The practice's rules for patient conversations, as in force now (an admin may change them at run time)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.conversation import Policy
from bot.images import Limits
from storage.practice_config import LiveConfig, PracticeConfig


def patient_policy(config: PracticeConfig, *, test_mode: bool) -> Policy:
    return Policy(
        practice_name=config.practice_name,
        max_photos=config.max_photos,
        test_mode=test_mode,
        media_purge_enabled=bool(config.homeserver_admin_token),
        texts=config.patient_texts(),
        screening_memory=config.screening_memory,
    )


@dataclass
class PolicyInForce:
    config: LiveConfig
    test_mode: bool
    _built: tuple[PracticeConfig, Policy] | None = None

    @property
    def current(self) -> Policy:
        """The conversation's policy (rebuilt only when an admin changed the configuration)."""
        config = self.config.current
        if self._built is None or self._built[0] is not config:
            self._built = (config, patient_policy(config, test_mode=self.test_mode))
        return self._built[1]

    @property
    def limits(self) -> Limits:
        """How large a photo may be, in bytes and in pixels."""
        current = self.config.current
        return Limits(max_bytes=current.max_photo_bytes, max_pixels=current.max_pixels)
