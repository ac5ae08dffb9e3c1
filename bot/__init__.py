"""GP Photo Bot: patients send photos of a skin concern to their practice over end-to-end-encrypted Matrix."""

__version__ = "0.2.0"  # the release; CHANGELOG.md says what changed in it
