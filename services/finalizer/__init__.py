"""finalizer: completes the upload and records the archive (ArchiveAssembled → ExportCompleted)."""
