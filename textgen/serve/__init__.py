"""`textgen serve`: trained runs as a web service and a playground page.

models.py (the runs, loaded once) -> engine.py (one batching thread per generator) ->
requests.py (bodies checked, fields named) -> app.py (the ASGI app) -> page.html.
"""
