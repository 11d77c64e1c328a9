"""The content database (SQLite via aiosqlite): tenants, posts, pages, media and Amber files."""
