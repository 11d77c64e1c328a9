"""Grove Export's services: one package per process, each with one composition root."""
