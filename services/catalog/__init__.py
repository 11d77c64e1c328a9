"""catalog: freezes a snapshot of what an export contains (ExportRequested → ExportCataloged)."""
