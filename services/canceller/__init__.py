"""canceller: turns CancelRequested into an aborted upload and ExportCancelled (runs in the assembler
process; every assembler replica also stops its own task on the same event)."""
