"""Builds the record package a posting carries, from what is stored at the moment it is posted (so it
reflects the latest record version). Refused packages (consent missing, identifiers in a teaching text)
are logged and not posted; the clinician was already told when the command was checked."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.clock import Clock
from bot.executor import CpuPool
from bot.images.size_limits import image_size
from bot.record_package import (
    TEACHING,
    PackageConsent,
    PackageDecision,
    PackagePhoto,
    PackageRefusedError,
    RecordPackage,
    RecordPackageInput,
    build_record_package,
)
from storage.consents import ConsentRepository
from storage.practice_config import LiveConfig
from storage.submissions import SubmissionRepository
from storage.vault import ImageUnreadableError, ImageVault

log = logging.getLogger(__name__)


@dataclass
class RecordPackages:
    submissions: SubmissionRepository
    consents: ConsentRepository
    vault: ImageVault
    pool: CpuPool
    config: LiveConfig
    clock: Clock

    async def build(self, submission_id: str, purpose: str, exported_by: str) -> RecordPackage | None:
        submission = await self.submissions.by_id(submission_id)
        if submission is None:
            return None
        photos = []
        for photo in await self.submissions.photos(submission_id) if submission.has_images else []:
            try:
                data = await self.pool.run(self.vault.get, photo.image_id, photo.image_key)
            except ImageUnreadableError:
                log.warning("a photo of a package could not be read from the vault; it is left out")
                continue
            width, height = await self.pool.run(image_size, data)
            photos.append(PackagePhoto(data, photo.mime, width, height, photo.edits, photo.created_at))
        consents = tuple(
            PackageConsent(c.purpose, c.answer, c.given_by or "", c.answered_at)
            for c in await self.consents.of_submission(submission_id)
            if c.answer and c.answered_at
        )
        decision = submission.decision
        teaching = purpose == TEACHING
        words = await self.submissions.patient_words(submission_id)
        package = RecordPackageInput(
            reference=submission.reference,
            nhs_number=None if teaching else await self.submissions.nhs_number(submission_id),
            practice_name=self.config.current.practice_name,
            submitted_at=submission.created_at,
            description=submission.description,
            decision=PackageDecision(decision.kept, decision.reason, decision.decided_by, decision.decided_at)
            if decision
            else None,
            consents=consents,
            photos=tuple(photos),
            exported_by=exported_by,
            exported_at=self.clock.now(),
            purpose=purpose,
            notes=() if teaching else words.notes,
            captions=() if teaching else words.captions,
        )
        try:
            return await self.pool.run(build_record_package, package)
        except PackageRefusedError as error:
            log.warning("a package could not be built: %s", error.text)
            return None
