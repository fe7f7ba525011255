"""``fixtrace audit``: explain a whole image set into a folder that survives interruptions.

``inputs`` streams the images with stable ids, ``engine`` runs them in batches with photos decoded
ahead, ``ledger`` appends one synced JSON line per finished image (``results.jsonl``), ``manifest``
records what was run with what (``manifest.json``), ``pictures`` writes the overlays and thumbnails,
``measures`` the numbers kept per map, ``truth`` the boxes and true classes, ``report`` the static
HTML page (``report.html``), ``command`` the verb.
"""
