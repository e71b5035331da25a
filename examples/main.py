# Your application's entry point: uota runs this file in its own thread at boot, next to
# the OTA server. Keep the app in app/app.py; pushes with `uota fast` replace it.
from app import app

app.run()
