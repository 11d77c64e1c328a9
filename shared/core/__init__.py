"""The pure core: the event contract, the export's lifecycle, the step table, and the rules
every service asks (retry, reasons, the frozen snapshot). No I/O here."""
