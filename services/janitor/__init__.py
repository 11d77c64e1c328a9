"""janitor: the scheduled clean-up — expire old archives, abort orphan uploads, fail dead exports.

``main`` the entry points and composition root; ``run`` one run, top to bottom, over ``job`` (what
every pass acts with, and its one rule each for appends and errors); the passes ``alive`` (exports not
over: fail a dead step, finish an abandoned cancel) and ``sweep`` (the store: expire, sweep, abort,
forget); ``requests`` which exports the log holds; ``decide`` every rule, pure; ``summary`` the
tally and its words.
"""
