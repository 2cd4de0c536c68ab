"""`unidual serve RUN`: a local page and JSON API to try a checkpoint on one image or video.

``app.py`` is the FastAPI application (HTTP only: upload limits, status codes), ``worker.py``
the child process that decodes and predicts (so a file that decodes too slowly, or crashes the
decoder, is cut off without taking the server down), ``page.html`` the page, ``commands.py`` the
command. FastAPI / uvicorn / python-multipart come with ``pip install 'unidual[serve]'``.
"""
