"""The usage dashboard: panel data from the window rows, and the page's own assets.

`data` turns a request's filter into the panels' figures (pure shaping around one query
callable); `assets/` holds the page, its stylesheet and its own small SVG chart code,
shipped as package data so the page works offline. The HTTP routes live in
`stream_app.worker.dashboard_pages`, shared by the worker and `usage-pipeline dashboard`.
"""
