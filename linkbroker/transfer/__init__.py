"""Moving data in and out: export, import from other tools, backup and restore.

The modules here run their own SQL for bulk reads and writes, as tokens.py does for
its table: a million rows through the store one at a time would take minutes.

    fields.py   the columns that travel, and the checks every value passes
    export.py   links (and their history and clicks) to JSON Lines or CSV
    sources.py  recognising a file's format and reading its rows
    d1.py       reading `wrangler d1 export` SQL dumps
    rows.py     checking one imported row as `shorten` would
    importer.py checking rows in one thread and writing chunks in another
    chunks.py   sorting one chunk's rows against the database and writing them
    quick.py    the insert-first road for rows that carry a slug
    backup.py   online backups, and restoring one into the live database
"""
