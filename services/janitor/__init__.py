"""janitor: the scheduled clean-up — expire old archives, abort orphan uploads, fail dead exports."""
