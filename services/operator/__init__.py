"""operator: the commands that see, fix, erase, back up and restore — always through the log."""
