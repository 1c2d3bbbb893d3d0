"""Cost reports: aggregation of the ledger (:mod:`.aggregate`), its sources (:mod:`.source`) and
views (:mod:`.render_text` for table/CSV/JSON, :mod:`.render_html` with :mod:`.charts`)."""
